//! TODO(issue 3): redis
