//! TODO(issue 3): mcp
