//! MCP over Streamable HTTP: the HTTP interpreter that reads JSON-RPC exchanges, and the
//! table of sessions it keeps, told apart by process, role and endpoint. The request body is
//! the client's message, the response a JSON body or an SSE stream of the server's messages.

use std::collections::HashMap;

use super::super::http::{HttpExchange, StreamedBody};
use super::super::http_interpreters::{ExchangeContext, HttpInterpreter};
use super::super::json_read::JsonRead;
use super::super::observation::{ObservationKind, Role};
use super::super::request_json::RequestJson;
use super::stdio_sessions::MAX_MCP_SESSIONS;
use super::{McpExchange, McpSession, McpTransport, Sender};

/// MCP sessions over HTTP are told apart by process, role and endpoint.
type HttpMcpKey = (u32, Role, String);

/// The MCP-over-HTTP interpreter and its sessions (each with when it was last used).
#[derive(Default)]
pub struct McpOverHttp {
    sessions: HashMap<HttpMcpKey, (McpSession, u64)>,
}

impl McpOverHttp {
    pub fn new() -> Self {
        Self::default()
    }

    /// The records a JSON-RPC exchange completes and the session's endpoint
    /// ([`endpoint_url`]), or `None` when it is not MCP.
    fn records(
        &mut self,
        pid: u32,
        role: Role,
        exchange: &HttpExchange,
        request_json: &RequestJson<'_>,
    ) -> Option<(Vec<McpExchange>, String)> {
        // Asked of the body read in place: most bodies are not JSON-RPC (LLM requests), and
        // only those that are become a `serde_json::Value` for the session.
        let is_rpc = request_json.borrowed().is_some_and(|v| {
            v.field("jsonrpc").is_some()
                || v.items()
                    .is_some_and(|a| a.iter().any(|m| m.field("jsonrpc").is_some()))
        });
        let request = if is_rpc { request_json.get() } else { None };
        // GET (the server's message stream) and DELETE (session end) carry no JSON-RPC
        // request but belong to the session named by their Mcp-Session-Id.
        if request.is_none() && exchange.request.header("mcp-session-id").is_none() {
            return None;
        }
        let key = (pid, role, endpoint_url(exchange));
        if !self.sessions.contains_key(&key) && self.sessions.len() >= MAX_MCP_SESSIONS {
            if let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(key, (_, used))| (*used, (*key).clone()))
                .map(|(k, _)| k.clone())
            {
                self.sessions.remove(&oldest);
            }
        }
        let ts = exchange.request.ts_ns;
        let endpoint = key.2.clone();
        let (session, used) = self
            .sessions
            .entry(key)
            .or_insert_with(|| (McpSession::new(McpTransport::Http), ts));
        *used = ts;
        let session_header = exchange.request.header("mcp-session-id").or_else(|| {
            exchange
                .response
                .as_ref()
                .and_then(|r| r.header("mcp-session-id"))
        });
        if let Some(id) = session_header {
            session.set_session_id(id);
        }
        let mut records = match &request {
            Some(request) => session.feed_message(Sender::Client, request, ts),
            None => Vec::new(),
        };
        if let Some(response) = &exchange.response {
            let rts = response.ts_ns;
            match &response.stream {
                Some(StreamedBody::Sse(events)) => {
                    for event in events {
                        if let Ok(message) = serde_json::from_str(&event.data) {
                            records.extend(session.feed_message(Sender::Server, &message, rts));
                        }
                    }
                }
                _ => {
                    if let Some(message) = response.json() {
                        records.extend(session.feed_message(Sender::Server, &message, rts));
                    }
                }
            }
        }
        Some((records, endpoint))
    }
}

impl HttpInterpreter for McpOverHttp {
    fn interpret(
        &mut self,
        exchange: &HttpExchange,
        request_json: &RequestJson<'_>,
        context: &ExchangeContext,
    ) -> Option<Vec<ObservationKind>> {
        let (records, endpoint) =
            self.records(context.pid, context.role, exchange, request_json)?;
        Some(
            records
                .into_iter()
                .map(|record| ObservationKind::Mcp {
                    exchange: Box::new(record),
                    transport: McpTransport::Http,
                    role: context.role,
                    endpoint: Some(endpoint.clone()),
                    peer_pid: None,
                })
                .collect(),
        )
    }
}

/// `http://host[:port]/path` of an exchange, the identity of an HTTP MCP endpoint.
pub fn endpoint_url(exchange: &HttpExchange) -> String {
    let scheme = if exchange.tls { "https" } else { "http" };
    let host = exchange.host.as_deref().unwrap_or("unknown");
    let host = match exchange.port {
        Some(port) if !host.contains(':') => format!("{host}:{port}"),
        _ => host.to_string(),
    };
    format!("{scheme}://{host}{}", exchange.request.path())
}
