//! MCP (Model Context Protocol): JSON-RPC 2.0 messages between an agent and a tool server,
//! turned into typed records of what was asked and answered.
//!
//! Two transports feed it. On stdio, [`StdioFramer`] cuts a pipe's byte stream into its
//! newline-delimited messages; [`StdioMcpConnection`] couples two framers (one per direction)
//! with a session. On Streamable HTTP the HTTP layer hands over request bodies and response
//! JSON (or SSE `data`) directly to [`McpSession::feed_message`].
//!
//! [`McpSession`] classifies each message (request, notification, response, error, batch),
//! pairs requests with their responses by id and the direction they travelled, and emits one
//! [`McpExchange`] per request/response pair or notification: `initialize`, `tools/list`,
//! `tools/call`, `resources/read` and `prompts/get` get typed details, other methods are kept by
//! name with their raw params and result. Capture can start or stop mid-session and lose bytes,
//! so nothing here trusts its input: unparseable lines, responses without a request and requests
//! never answered all become records flagged `partial`, never a panic.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::event::Direction;

pub mod http_sessions;
pub mod pipe_end;
pub mod stdio_sessions;

/// Longest stdio line [`StdioFramer::new`] buffers before giving up on it. MCP messages carry
/// whole files and tool outputs, so this is generous; the bound only stops a stream with no
/// newline from growing without limit.
pub const DEFAULT_MAX_LINE: usize = 32 * 1024 * 1024;

/// Requests waiting for an answer per session; beyond this the oldest is reported unanswered.
pub const MAX_PENDING_REQUESTS: usize = 4096;

mod framing;
mod messages;
mod session;
mod stdio;
#[cfg(test)]
mod tests;

#[allow(unused_imports)]
use framing::*;
pub use framing::{StdioFrame, StdioFramer};
#[allow(unused_imports)]
use messages::*;
pub use messages::{
    ExchangeKind, Implementation, InitializeDetail, JsonRpcError, McpDetail, McpExchange,
    McpTransport, PromptGetDetail, ResourceContent, ResourceReadDetail, SchemaSummary, Sender,
    ToolAnnotations, ToolCallDetail, ToolInfo, ToolsListDetail,
};
pub use session::McpSession;
#[allow(unused_imports)]
use session::*;
pub use stdio::StdioMcpConnection;
#[allow(unused_imports)]
use stdio::*;
