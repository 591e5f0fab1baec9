//! TODO(issue 3): vector_db (placeholder until the parser lands).

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RetrievalCall {}
