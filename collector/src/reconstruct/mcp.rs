//! TODO(issue 3): mcp (placeholder until the parser lands).

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct McpExchange {}
