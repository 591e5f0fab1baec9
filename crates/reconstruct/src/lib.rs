//! Reconstruction: from captured payload bytes to protocol records.
//!
//! Payload chunks are joined per connection and direction ([`stream`]), framed as HTTP/1.1
//! ([`http`]), HTTP/2 ([`http2`]) or another wire protocol recognised by its first bytes, and
//! then interpreted: LLM API calls ([`llm`]), MCP JSON-RPC ([`mcp`]), SQL over the PostgreSQL
//! wire protocol ([`postgres`]), Redis commands ([`redis`]), object-store requests
//! ([`object_store`]), vector-database retrieval ([`vector_db`], over gRPC too: [`grpc`]).
//! File opens are classified by [`file_access`].
//! Every parser takes untrusted bytes: malformed or truncated input yields a record flagged as
//! partial, never a panic.

pub mod event_runs;
pub mod file_access;
pub mod file_classes;
pub mod grpc;
pub mod http;
pub mod http2;
pub mod http_interpreters;
mod json_read;
pub mod llm;
pub mod mcp;
pub mod object_store;
pub mod observation;
pub mod postgres;
pub mod reconstructor;
pub mod redaction;
pub mod redis;
pub mod request_json;
pub mod stream;
pub mod vector_db;
pub mod websocket;
pub mod wire;

pub use mcp::McpTransport;
pub use observation::{Actor, EventRange, Observation, ObservationKind, Peer, Role};
#[cfg(test)]
mod memory_budget_tests;
pub use reconstructor::{ReconstructOptions, ReconstructStats, Reconstructor};

// The layers below, under the names this crate's modules use for them.
#[cfg(test)]
pub(crate) use agentscope_event::event_json;
pub(crate) use agentscope_event::{event, process_table, program};
pub(crate) use agentscope_memory_budget as memory_budget;
pub(crate) use agentscope_redact as redact;
