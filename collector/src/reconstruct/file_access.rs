//! TODO(issue 3): file_access
