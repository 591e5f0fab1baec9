//! TODO(issue 3): identity
