//! TODO(issue 3): vector_db
