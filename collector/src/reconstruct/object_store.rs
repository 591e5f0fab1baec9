//! TODO(issue 3): object_store (placeholder until the parser lands).

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ObjectAccess {}
