//! TODO(issue 3): postgres (placeholder until the parser lands).

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SqlStatement {}
