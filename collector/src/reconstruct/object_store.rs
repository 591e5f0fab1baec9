//! TODO(issue 3): object_store
