//! TODO(issue 3): postgres
