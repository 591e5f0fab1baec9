//! TODO(issue 3): redis (placeholder until the parser lands).

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RedisCommand {}
