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

/// Longest stdio line [`StdioFramer::new`] buffers before giving up on it. MCP messages carry
/// whole files and tool outputs, so this is generous; the bound only stops a stream with no
/// newline from growing without limit.
pub const DEFAULT_MAX_LINE: usize = 32 * 1024 * 1024;

/// Requests waiting for an answer per session; beyond this the oldest is reported unanswered.
pub const MAX_PENDING_REQUESTS: usize = 4096;

// ---------------------------------------------------------------------------------------------
// Stdio framing
// ---------------------------------------------------------------------------------------------

/// One unit cut from a stdio byte stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StdioFrame {
    /// A line that parsed as JSON (not yet checked to be JSON-RPC).
    Message(Value),
    /// A line that is not JSON.
    Malformed {
        /// What serde_json reported.
        error: String,
        /// Bytes of the line, newline excluded.
        len: usize,
    },
    /// A line longer than the framer's bound: its bytes were dropped up to the next newline.
    Oversize { len: usize },
    /// A message cut short: the stream ended ([`StdioFramer::finish`]) or lost bytes
    /// ([`StdioFramer::mark_gap`]) before its newline. `len` bytes of it were kept (0 when the
    /// loss fell between lines).
    Truncated { len: usize },
}

/// Newline-delimited JSON framing (the MCP stdio transport) of a byte stream that arrives in
/// arbitrary pieces: a message may span pieces, a piece may hold several messages.
#[derive(Debug, Clone)]
pub struct StdioFramer {
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    max_line: usize,
    /// Dropping an oversize line: its length so far.
    skipping: Option<usize>,
    /// Bytes were lost since the last line boundary: the next line is either a whole message
    /// (kept if it parses) or the damaged rest of one (dropped; the gap was already reported).
    resync: bool,
}

impl Default for StdioFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl StdioFramer {
    pub fn new() -> Self {
        Self::with_max_line(DEFAULT_MAX_LINE)
    }

    /// A framer that reports lines longer than `max_line` bytes as [`StdioFrame::Oversize`].
    pub fn with_max_line(max_line: usize) -> Self {
        StdioFramer {
            line: Vec::new(),
            max_line,
            skipping: None,
            resync: false,
        }
    }

    /// Bytes held for a line whose newline has not arrived yet.
    pub fn pending_len(&self) -> usize {
        self.line.len()
    }

    /// Feeds the next bytes of the stream; returns the frames they complete.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<StdioFrame> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let newline = memchr::memchr(b'\n', bytes);
            let (piece, rest) = match newline {
                Some(at) => (&bytes[..at], &bytes[at + 1..]),
                None => (bytes, &[][..]),
            };
            bytes = rest;
            let complete = newline.is_some();
            if let Some(skipped) = self.skipping.as_mut() {
                *skipped = skipped.saturating_add(piece.len());
                if complete {
                    let len = *skipped;
                    self.skipping = None;
                    if !std::mem::take(&mut self.resync) {
                        frames.push(StdioFrame::Oversize { len });
                    }
                }
                continue;
            }
            let total = self.line.len().saturating_add(piece.len());
            if total > self.max_line {
                self.line = Vec::new();
                if !complete {
                    self.skipping = Some(total);
                } else if !std::mem::take(&mut self.resync) {
                    frames.push(StdioFrame::Oversize { len: total });
                }
                continue;
            }
            if !complete {
                self.line.extend_from_slice(piece);
                continue;
            }
            let frame = if self.line.is_empty() {
                parse_line(piece)
            } else {
                self.line.extend_from_slice(piece);
                let line = std::mem::take(&mut self.line);
                parse_line(&line)
            };
            let resync = std::mem::take(&mut self.resync);
            match frame {
                Some(StdioFrame::Malformed { .. }) if resync => {}
                Some(frame) => frames.push(frame),
                None => {}
            }
        }
        frames
    }

    /// The capture lost bytes here. Reports the message they damaged (with the bytes of it
    /// that were kept) and resynchronises at the next newline.
    pub fn mark_gap(&mut self) -> StdioFrame {
        let line = std::mem::take(&mut self.line);
        let frame = match self.skipping.take() {
            Some(len) => StdioFrame::Oversize { len },
            None => StdioFrame::Truncated { len: line.len() },
        };
        self.resync = true;
        frame
    }

    /// The stream ended. A last line without its newline is still a message if it parses (the
    /// capture stopped just before the newline); otherwise it is reported truncated.
    pub fn finish(&mut self) -> Option<StdioFrame> {
        let resync = std::mem::take(&mut self.resync);
        if let Some(len) = self.skipping.take() {
            return (!resync).then_some(StdioFrame::Oversize { len });
        }
        let line = std::mem::take(&mut self.line);
        match parse_line(&line)? {
            StdioFrame::Malformed { .. } if resync => None,
            StdioFrame::Malformed { len, .. } => Some(StdioFrame::Truncated { len }),
            frame => Some(frame),
        }
    }
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |at| at + 1);
    &bytes[start..end]
}

/// A complete line (newline excluded): blank lines are not messages.
fn parse_line(line: &[u8]) -> Option<StdioFrame> {
    let text = trim_ascii(line);
    if text.is_empty() {
        return None;
    }
    Some(match serde_json::from_slice::<Value>(text) {
        Ok(value) => StdioFrame::Message(value),
        Err(err) => StdioFrame::Malformed {
            error: err.to_string(),
            len: line.len(),
        },
    })
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// Which end of an MCP session wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sender {
    Client,
    Server,
}

impl Sender {
    pub fn other(self) -> Sender {
        match self {
            Sender::Client => Sender::Server,
            Sender::Server => Sender::Client,
        }
    }

    /// Who wrote the bytes of a captured stream, given whose process it was captured in and in
    /// which direction. At the server ingress is the client's messages (stdio: fd 0; HTTP:
    /// request bodies), egress its own; at the client the reverse. `None` for
    /// [`Direction::Unknown`].
    pub fn of_stream(observed: Sender, direction: Direction) -> Option<Sender> {
        match direction {
            Direction::Egress => Some(observed),
            Direction::Ingress => Some(observed.other()),
            Direction::Unknown => None,
        }
    }

    /// Which end wrote `message`, judged from the message alone, when the process roles are
    /// not known yet: requests that only clients send (`initialize`, `tools/call`, ...) and
    /// the results that only servers send (`serverInfo`, `tools`, `content`, ...).
    /// `None` when the message does not tell (`ping`, notifications, plain responses).
    pub fn guess_from_message(message: &Value) -> Option<Sender> {
        let object = match message {
            Value::Array(items) => return items.iter().find_map(Sender::guess_from_message),
            Value::Object(object) => object,
            _ => return None,
        };
        if let Some(method) = object.get("method").and_then(Value::as_str) {
            let by_client = [
                "initialize",
                "server/discover",
                "tools/list",
                "tools/call",
                "resources/list",
                "resources/read",
                "resources/templates/list",
                "resources/subscribe",
                "prompts/list",
                "prompts/get",
                "completion/complete",
                "logging/setLevel",
                "notifications/initialized",
                "notifications/roots/list_changed",
            ];
            let by_server = [
                "sampling/createMessage",
                "roots/list",
                "elicitation/create",
                "notifications/message",
                "notifications/tools/list_changed",
                "notifications/resources/list_changed",
                "notifications/resources/updated",
                "notifications/prompts/list_changed",
            ];
            return if by_client.contains(&method) {
                Some(Sender::Client)
            } else if by_server.contains(&method) {
                Some(Sender::Server)
            } else {
                None
            };
        }
        let result = object.get("result")?.as_object()?;
        ["serverInfo", "tools", "content", "contents", "messages"]
            .iter()
            .any(|key| result.contains_key(*key))
            .then_some(Sender::Server)
    }
}

/// How the session's messages travel (OpenTelemetry `network.transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum McpTransport {
    /// stdio: `network.transport` = `pipe`.
    #[serde(rename = "pipe")]
    Stdio,
    /// Streamable HTTP (or legacy HTTP+SSE): `network.transport` = `tcp`.
    #[serde(rename = "tcp")]
    Http,
}

/// What a record stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeKind {
    /// A request and its response (a result or a JSON-RPC error).
    Call,
    /// A notification (no response expected).
    Notification,
    /// A request whose response was never seen (capture ended, or evicted). Partial.
    Unanswered,
    /// A response whose request was never seen (capture started mid-session). Partial.
    UnmatchedResponse,
    /// A message that is not JSON-RPC 2.0, or a stdio line that is not JSON. Partial.
    Invalid,
}

/// A JSON-RPC error response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonRpcError {
    pub code: i64,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// A client or server as it names itself (`clientInfo` / `serverInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Implementation {
    pub name: Option<String>,
    pub title: Option<String>,
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct InitializeDetail {
    /// The version the client asked for.
    pub requested_protocol_version: Option<String>,
    /// The version the server chose.
    pub protocol_version: Option<String>,
    pub client: Option<Implementation>,
    pub server: Option<Implementation>,
    pub client_capabilities: Option<Value>,
    pub server_capabilities: Option<Value>,
    /// The server's instructions to the model (text the model will read).
    pub instructions: Option<String>,
}

/// The shape of a tool's `inputSchema`, without its full text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct SchemaSummary {
    /// The schema's `type` (`object` for every well-formed tool).
    #[serde(rename = "type")]
    pub schema_type: Option<String>,
    /// Property names, in the order given.
    pub properties: Vec<String>,
    pub required: Vec<String>,
}

/// A tool's behaviour hints (all advisory; servers are not trusted to tell the truth).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ToolAnnotations {
    pub title: Option<String>,
    pub read_only_hint: Option<bool>,
    pub destructive_hint: Option<bool>,
    pub idempotent_hint: Option<bool>,
    pub open_world_hint: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct ToolInfo {
    pub name: String,
    pub title: Option<String>,
    /// Attacker-controllable text the model reads ("tool poisoning"): kept whole.
    pub description: Option<String>,
    pub input_schema: SchemaSummary,
    pub has_output_schema: bool,
    pub annotations: Option<ToolAnnotations>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct ToolsListDetail {
    pub tools: Vec<ToolInfo>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct ToolCallDetail {
    #[serde(rename = "gen_ai.tool.name")]
    pub name: Option<String>,
    #[serde(rename = "gen_ai.tool.call.arguments")]
    pub arguments: Option<Value>,
    /// The text blocks of the result's `content`, joined with newlines.
    #[serde(rename = "gen_ai.tool.call.result")]
    pub result_text: Option<String>,
    /// `type` of each content block (`text`, `image`, `resource`, `resource_link`, ...).
    pub content_types: Vec<String>,
    pub structured_content: Option<Value>,
    /// The tool reported failure (a tool error, not a protocol error).
    pub is_error: Option<bool>,
}

/// One entry of a `resources/read` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ResourceContent {
    pub uri: Option<String>,
    pub mime_type: Option<String>,
    /// Characters of `text`, for text contents.
    pub text_len: Option<usize>,
    /// Characters of base64 `blob`, for binary contents.
    pub blob_len: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ResourceReadDetail {
    #[serde(rename = "mcp.resource.uri")]
    pub uri: Option<String>,
    pub contents: Vec<ResourceContent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct PromptGetDetail {
    pub name: Option<String>,
    pub arguments: Option<Value>,
    pub description: Option<String>,
    /// Role of each message of the returned prompt.
    pub message_roles: Vec<String>,
}

/// What the method's params and result said, typed for the methods that matter most.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum McpDetail {
    Initialize(InitializeDetail),
    ToolsList(ToolsListDetail),
    ToolsCall(ToolCallDetail),
    ResourcesRead(ResourceReadDetail),
    PromptsGet(PromptGetDetail),
    /// Any other method (or an unmatched response): the raw params and result.
    Other {
        params: Option<Value>,
        result: Option<Value>,
    },
    /// Not JSON-RPC 2.0 (or not JSON): why.
    Invalid {
        reason: String,
    },
}

/// One MCP interaction: a request with its response, a notification, or a flagged fragment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct McpExchange {
    pub kind: ExchangeKind,
    /// The method; `None` for unmatched responses and invalid messages.
    #[serde(rename = "mcp.method.name")]
    pub method: Option<String>,
    /// The request id as text (numbers in decimal); `None` for notifications.
    #[serde(rename = "jsonrpc.request.id")]
    pub request_id: Option<String>,
    /// `Mcp-Session-Id` (Streamable HTTP), when the transport layer set one.
    #[serde(rename = "mcp.session.id")]
    pub session_id: Option<String>,
    #[serde(rename = "network.transport")]
    pub transport: McpTransport,
    /// Who sent the request or notification (for unmatched responses: who would have).
    pub initiator: Sender,
    /// `tools/call`: the tool; also inside `detail`.
    #[serde(rename = "gen_ai.tool.name")]
    pub tool_name: Option<String>,
    /// `resources/read`: the resource; also inside `detail`.
    #[serde(rename = "mcp.resource.uri")]
    pub resource_uri: Option<String>,
    pub request_ts_ns: Option<u64>,
    pub response_ts_ns: Option<u64>,
    /// The JSON-RPC error answered instead of a result.
    pub error: Option<JsonRpcError>,
    /// Something is missing or could not be read: see `kind`.
    pub partial: bool,
    pub detail: McpDetail,
}

// ---------------------------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------------------------

struct PendingRequest {
    method: String,
    request_id: String,
    params: Option<Value>,
    ts_ns: u64,
    /// Upper bound of its heap, for the memory budget.
    held_bytes: usize,
}

/// One client↔server MCP session: classifies messages and pairs requests with responses.
pub struct McpSession {
    transport: McpTransport,
    session_id: Option<String>,
    /// Requests awaiting a response, by (who sent them, id key).
    pending: HashMap<(Sender, String), PendingRequest>,
    /// Arrival order of `pending`, to evict the oldest.
    order: VecDeque<(Sender, String)>,
    client: Option<Implementation>,
    server: Option<Implementation>,
    protocol_version: Option<String>,
    /// Sum of the pending requests' `held_bytes`.
    pending_bytes: usize,
}

impl McpSession {
    /// Upper bound of the heap the pending requests hold.
    pub fn held_bytes(&self) -> usize {
        self.pending_bytes
    }

    fn remove_pending(&mut self, slot: &(Sender, String)) -> Option<PendingRequest> {
        let pending = self.pending.remove(slot)?;
        self.pending_bytes = self.pending_bytes.saturating_sub(pending.held_bytes);
        Some(pending)
    }

    pub fn new(transport: McpTransport) -> Self {
        McpSession {
            transport,
            session_id: None,
            pending: HashMap::new(),
            order: VecDeque::new(),
            client: None,
            server: None,
            protocol_version: None,
            pending_bytes: 0,
        }
    }

    /// Sets the `Mcp-Session-Id` stamped on the following records.
    pub fn set_session_id(&mut self, id: impl Into<String>) {
        self.session_id = Some(id.into());
    }

    /// The client as named in `initialize`, once seen.
    pub fn client_info(&self) -> Option<&Implementation> {
        self.client.as_ref()
    }

    /// The server as named in the `initialize` result, once seen.
    pub fn server_info(&self) -> Option<&Implementation> {
        self.server.as_ref()
    }

    /// The protocol version the server chose in `initialize`.
    pub fn protocol_version(&self) -> Option<&str> {
        self.protocol_version.as_deref()
    }

    /// Requests still waiting for their response.
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// Feeds one JSON message (object or batch array) written by `sender` at `ts_ns`; returns
    /// the records it completes.
    pub fn feed_message(
        &mut self,
        sender: Sender,
        message: &Value,
        ts_ns: u64,
    ) -> Vec<McpExchange> {
        let mut out = Vec::new();
        match message {
            Value::Array(items) if items.is_empty() => {
                out.push(self.invalid(sender, "empty JSON-RPC batch", ts_ns));
            }
            Value::Array(items) => {
                for item in items {
                    self.feed_one(sender, item, ts_ns, &mut out);
                }
            }
            other => self.feed_one(sender, other, ts_ns, &mut out),
        }
        out
    }

    /// Records a stdio line that was not a message (malformed, oversize, truncated) as an
    /// invalid exchange; messages themselves go to [`McpSession::feed_message`].
    pub fn feed_frame(
        &mut self,
        sender: Sender,
        frame: &StdioFrame,
        ts_ns: u64,
    ) -> Vec<McpExchange> {
        match frame {
            StdioFrame::Message(message) => self.feed_message(sender, message, ts_ns),
            StdioFrame::Malformed { error, len } => vec![self.invalid(
                sender,
                &format!("line of {len} bytes is not JSON: {error}"),
                ts_ns,
            )],
            StdioFrame::Oversize { len } => vec![self.invalid(
                sender,
                &format!("line of {len} bytes exceeds the framing limit; dropped"),
                ts_ns,
            )],
            StdioFrame::Truncated { len } => vec![self.invalid(
                sender,
                &format!("message cut after {len} bytes (stream ended or lost bytes)"),
                ts_ns,
            )],
        }
    }

    /// The capture ended: requests never answered become partial records, oldest first.
    pub fn finish(&mut self) -> Vec<McpExchange> {
        let mut out = Vec::new();
        while let Some(key) = self.order.pop_front() {
            if let Some(pending) = self.remove_pending(&key) {
                out.push(self.unanswered(key.0, pending));
            }
        }
        out
    }

    fn feed_one(
        &mut self,
        sender: Sender,
        message: &Value,
        ts_ns: u64,
        out: &mut Vec<McpExchange>,
    ) {
        let Some(object) = message.as_object() else {
            out.push(self.invalid(sender, "JSON-RPC message is not an object", ts_ns));
            return;
        };
        if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            out.push(self.invalid(sender, "missing \"jsonrpc\": \"2.0\"", ts_ns));
            return;
        }
        let id = object.get("id").filter(|id| !id.is_null());
        if let Some(method) = object.get("method") {
            let Some(method) = method.as_str() else {
                out.push(self.invalid(sender, "\"method\" is not a string", ts_ns));
                return;
            };
            let params = object.get("params").cloned();
            match id {
                None => out.push(self.notification(sender, method, params, ts_ns)),
                Some(id) => {
                    let Some((key, request_id)) = id_key(id) else {
                        out.push(self.invalid(
                            sender,
                            "request id is not a string or number",
                            ts_ns,
                        ));
                        return;
                    };
                    if method == "initialize" {
                        self.note_initialize_request(params.as_ref());
                    }
                    let held_bytes = 256
                        + method.len()
                        + 2 * request_id.len()
                        + params
                            .as_ref()
                            .map_or(0, crate::memory_budget::json_value_bytes);
                    let pending = PendingRequest {
                        method: method.to_string(),
                        request_id,
                        params,
                        ts_ns,
                        held_bytes,
                    };
                    let slot = (sender, key);
                    self.pending_bytes += held_bytes;
                    if let Some(previous) = self.pending.insert(slot.clone(), pending) {
                        self.pending_bytes = self.pending_bytes.saturating_sub(previous.held_bytes);
                        // The id was reused before its answer arrived: the earlier request
                        // will never be matched.
                        out.push(self.unanswered(sender, previous));
                        self.order.retain(|k| k != &slot);
                    }
                    self.order.push_back(slot);
                    while self.order.len() > MAX_PENDING_REQUESTS {
                        if let Some(oldest) = self.order.pop_front() {
                            if let Some(evicted) = self.remove_pending(&oldest) {
                                out.push(self.unanswered(oldest.0, evicted));
                            }
                        }
                    }
                }
            }
            return;
        }
        let result = object.get("result");
        let error = object.get("error");
        if result.is_none() && error.is_none() {
            out.push(self.invalid(
                sender,
                "neither a request, a notification nor a response",
                ts_ns,
            ));
            return;
        }
        let error = error.map(parse_error);
        // A response answers a request from the other end.
        let requester = sender.other();
        let matched = id.and_then(id_key).and_then(|(key, _)| {
            let slot = (requester, key);
            let pending = self.remove_pending(&slot)?;
            self.order.retain(|k| k != &slot);
            Some(pending)
        });
        let Some(pending) = matched else {
            out.push(McpExchange {
                kind: ExchangeKind::UnmatchedResponse,
                method: None,
                request_id: id.and_then(id_key).map(|(_, text)| text),
                session_id: self.session_id.clone(),
                transport: self.transport,
                initiator: requester,
                tool_name: None,
                resource_uri: None,
                request_ts_ns: None,
                response_ts_ns: Some(ts_ns),
                error,
                partial: true,
                detail: McpDetail::Other {
                    params: None,
                    result: result.cloned(),
                },
            });
            return;
        };
        if pending.method == "initialize" {
            if let Some(result) = result {
                self.note_initialize_result(result);
            }
        }
        let detail = detail_for(&pending.method, pending.params.as_ref(), result);
        out.push(self.record(
            ExchangeKind::Call,
            requester,
            pending,
            Some(ts_ns),
            error,
            detail,
        ));
    }

    fn note_initialize_request(&mut self, params: Option<&Value>) {
        if let Some(client) = params.and_then(|p| p.get("clientInfo")) {
            self.client = Some(implementation(client));
        }
    }

    fn note_initialize_result(&mut self, result: &Value) {
        if let Some(server) = result.get("serverInfo") {
            self.server = Some(implementation(server));
        }
        if let Some(version) = str_field(result, "protocolVersion") {
            self.protocol_version = Some(version);
        }
    }

    fn record(
        &self,
        kind: ExchangeKind,
        initiator: Sender,
        pending: PendingRequest,
        response_ts_ns: Option<u64>,
        error: Option<JsonRpcError>,
        detail: McpDetail,
    ) -> McpExchange {
        let (tool_name, resource_uri) = match &detail {
            McpDetail::ToolsCall(call) => (call.name.clone(), None),
            McpDetail::ResourcesRead(read) => (None, read.uri.clone()),
            _ => (None, None),
        };
        McpExchange {
            kind,
            method: Some(pending.method),
            request_id: Some(pending.request_id),
            session_id: self.session_id.clone(),
            transport: self.transport,
            initiator,
            tool_name,
            resource_uri,
            request_ts_ns: Some(pending.ts_ns),
            response_ts_ns,
            partial: kind != ExchangeKind::Call,
            error,
            detail,
        }
    }

    fn unanswered(&self, initiator: Sender, pending: PendingRequest) -> McpExchange {
        let detail = detail_for(&pending.method, pending.params.as_ref(), None);
        self.record(
            ExchangeKind::Unanswered,
            initiator,
            pending,
            None,
            None,
            detail,
        )
    }

    fn notification(
        &self,
        sender: Sender,
        method: &str,
        params: Option<Value>,
        ts_ns: u64,
    ) -> McpExchange {
        McpExchange {
            kind: ExchangeKind::Notification,
            method: Some(method.to_string()),
            request_id: None,
            session_id: self.session_id.clone(),
            transport: self.transport,
            initiator: sender,
            tool_name: None,
            resource_uri: None,
            request_ts_ns: Some(ts_ns),
            response_ts_ns: None,
            error: None,
            partial: false,
            detail: McpDetail::Other {
                params,
                result: None,
            },
        }
    }

    fn invalid(&self, sender: Sender, reason: &str, ts_ns: u64) -> McpExchange {
        McpExchange {
            kind: ExchangeKind::Invalid,
            method: None,
            request_id: None,
            session_id: self.session_id.clone(),
            transport: self.transport,
            initiator: sender,
            tool_name: None,
            resource_uri: None,
            request_ts_ns: Some(ts_ns),
            response_ts_ns: None,
            error: None,
            partial: true,
            detail: McpDetail::Invalid {
                reason: reason.to_string(),
            },
        }
    }
}

/// (key that keeps `1` and `"1"` apart, id as text).
fn id_key(id: &Value) -> Option<(String, String)> {
    match id {
        Value::String(text) => Some((format!("s:{text}"), text.clone())),
        Value::Number(number) => Some((format!("n:{number}"), number.to_string())),
        _ => None,
    }
}

fn str_field(value: &Value, key: &str) -> Option<String> {
    value.get(key)?.as_str().map(str::to_string)
}

fn bool_field(value: &Value, key: &str) -> Option<bool> {
    value.get(key)?.as_bool()
}

fn implementation(value: &Value) -> Implementation {
    Implementation {
        name: str_field(value, "name"),
        title: str_field(value, "title"),
        version: str_field(value, "version"),
    }
}

fn parse_error(error: &Value) -> JsonRpcError {
    JsonRpcError {
        code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
        message: str_field(error, "message").unwrap_or_default(),
        data: error.get("data").cloned(),
    }
}

fn detail_for(method: &str, params: Option<&Value>, result: Option<&Value>) -> McpDetail {
    let empty = Value::Object(Map::new());
    let p = params.unwrap_or(&empty);
    let r = result.unwrap_or(&empty);
    match method {
        "initialize" => McpDetail::Initialize(InitializeDetail {
            requested_protocol_version: str_field(p, "protocolVersion"),
            protocol_version: str_field(r, "protocolVersion"),
            client: p.get("clientInfo").map(implementation),
            server: r.get("serverInfo").map(implementation),
            client_capabilities: p.get("capabilities").cloned(),
            server_capabilities: r.get("capabilities").cloned(),
            instructions: str_field(r, "instructions"),
        }),
        "tools/list" => McpDetail::ToolsList(ToolsListDetail {
            tools: r
                .get("tools")
                .and_then(Value::as_array)
                .map(|tools| tools.iter().map(tool_info).collect())
                .unwrap_or_default(),
            next_cursor: str_field(r, "nextCursor"),
        }),
        "tools/call" => {
            let content = r.get("content").and_then(Value::as_array);
            let texts: Vec<&str> = content
                .into_iter()
                .flatten()
                .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|block| block.get("text").and_then(Value::as_str))
                .collect();
            McpDetail::ToolsCall(ToolCallDetail {
                name: str_field(p, "name"),
                arguments: p.get("arguments").cloned(),
                result_text: (!texts.is_empty()).then(|| texts.join("\n")),
                content_types: content
                    .into_iter()
                    .flatten()
                    .map(|block| str_field(block, "type").unwrap_or_default())
                    .collect(),
                structured_content: r.get("structuredContent").cloned(),
                is_error: bool_field(r, "isError"),
            })
        }
        "resources/read" => McpDetail::ResourcesRead(ResourceReadDetail {
            uri: str_field(p, "uri"),
            contents: r
                .get("contents")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|item| ResourceContent {
                    uri: str_field(item, "uri"),
                    mime_type: str_field(item, "mimeType"),
                    text_len: item
                        .get("text")
                        .and_then(Value::as_str)
                        .map(|t| t.chars().count()),
                    blob_len: item
                        .get("blob")
                        .and_then(Value::as_str)
                        .map(|b| b.chars().count()),
                })
                .collect(),
        }),
        "prompts/get" => McpDetail::PromptsGet(PromptGetDetail {
            name: str_field(p, "name"),
            arguments: p.get("arguments").cloned(),
            description: str_field(r, "description"),
            message_roles: r
                .get("messages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|m| str_field(m, "role").unwrap_or_default())
                .collect(),
        }),
        _ => McpDetail::Other {
            params: params.cloned(),
            result: result.cloned(),
        },
    }
}

fn tool_info(tool: &Value) -> ToolInfo {
    let schema = tool.get("inputSchema");
    let names = |value: Option<&Value>| -> Vec<String> {
        match value {
            Some(Value::Object(map)) => map.keys().cloned().collect(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    ToolInfo {
        name: str_field(tool, "name").unwrap_or_default(),
        title: str_field(tool, "title"),
        description: str_field(tool, "description"),
        input_schema: SchemaSummary {
            schema_type: schema.and_then(|s| str_field(s, "type")),
            properties: names(schema.and_then(|s| s.get("properties"))),
            required: names(schema.and_then(|s| s.get("required"))),
        },
        has_output_schema: tool.get("outputSchema").is_some_and(Value::is_object),
        annotations: tool
            .get("annotations")
            .filter(|a| a.is_object())
            .map(|a| ToolAnnotations {
                title: str_field(a, "title"),
                read_only_hint: bool_field(a, "readOnlyHint"),
                destructive_hint: bool_field(a, "destructiveHint"),
                idempotent_hint: bool_field(a, "idempotentHint"),
                open_world_hint: bool_field(a, "openWorldHint"),
            }),
    }
}

// ---------------------------------------------------------------------------------------------
// Stdio connection
// ---------------------------------------------------------------------------------------------

/// An MCP session over stdio: one framer per direction feeding one [`McpSession`].
pub struct StdioMcpConnection {
    session: McpSession,
    from_client: StdioFramer,
    from_server: StdioFramer,
}

impl Default for StdioMcpConnection {
    fn default() -> Self {
        Self::new()
    }
}

impl StdioMcpConnection {
    pub fn new() -> Self {
        StdioMcpConnection {
            session: McpSession::new(McpTransport::Stdio),
            from_client: StdioFramer::new(),
            from_server: StdioFramer::new(),
        }
    }

    pub fn session(&self) -> &McpSession {
        &self.session
    }

    fn framer(&mut self, sender: Sender) -> &mut StdioFramer {
        match sender {
            Sender::Client => &mut self.from_client,
            Sender::Server => &mut self.from_server,
        }
    }

    /// Feeds bytes `sender` wrote (a pipe chunk), captured at `ts_ns`.
    pub fn feed_bytes(&mut self, sender: Sender, bytes: &[u8], ts_ns: u64) -> Vec<McpExchange> {
        let frames = self.framer(sender).push(bytes);
        let mut out = Vec::new();
        for frame in &frames {
            out.extend(self.session.feed_frame(sender, frame, ts_ns));
        }
        out
    }

    /// Bytes `sender` wrote were lost here (the kernel reported `lost_bytes`, or a chunk is
    /// missing): the damaged message is reported and framing resumes at the next line.
    /// Upper bound of the heap the unfinished lines and the session's pending requests hold
    /// (charged to the memory budget by the reconstructor).
    pub fn held_bytes(&self) -> usize {
        self.from_client.line.capacity()
            + self.from_server.line.capacity()
            + self.session.held_bytes()
    }

    /// The memory budget has no room for `sender`'s unfinished line: it is dropped as if its
    /// bytes had been lost, and its allocation returned.
    pub fn drop_buffers(&mut self, sender: Sender, ts_ns: u64) -> Vec<McpExchange> {
        let out = self.mark_gap(sender, ts_ns);
        self.framer(sender).line = Vec::new();
        out
    }

    pub fn mark_gap(&mut self, sender: Sender, ts_ns: u64) -> Vec<McpExchange> {
        let frame = self.framer(sender).mark_gap();
        self.session.feed_frame(sender, &frame, ts_ns)
    }

    /// Both streams ended: flushes cut lines and unanswered requests.
    pub fn finish(&mut self, ts_ns: u64) -> Vec<McpExchange> {
        let mut out = Vec::new();
        for sender in [Sender::Client, Sender::Server] {
            if let Some(frame) = self.framer(sender).finish() {
                out.extend(self.session.feed_frame(sender, &frame, ts_ns));
            }
        }
        out.extend(self.session.finish());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use proptest::prelude::*;
    use serde_json::json;

    fn fixture(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("AGENTSCOPE_REPO"))
            .join("collector/tests/fixtures/mcp")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// A pipe chunk as the collector printed it.
    struct Chunk {
        pid: u64,
        direction: Direction,
        ts_ns: u64,
        bytes: Vec<u8>,
    }

    fn pipe_chunks() -> Vec<Chunk> {
        String::from_utf8(fixture("stdio-pipe-events.jsonl"))
            .unwrap()
            .lines()
            .map(|line| {
                let e: Value = serde_json::from_str(line).unwrap();
                Chunk {
                    pid: e["pid"].as_u64().unwrap(),
                    direction: match e["direction"].as_str().unwrap() {
                        "egress" => Direction::Egress,
                        _ => Direction::Ingress,
                    },
                    ts_ns: e["ts_ns"].as_u64().unwrap(),
                    bytes: base64::engine::general_purpose::STANDARD
                        .decode(e["data_b64"].as_str().unwrap())
                        .unwrap(),
                }
            })
            .collect()
    }

    /// Which captured process is the server: the one whose first ingress message only a client
    /// sends.
    fn server_pid(chunks: &[Chunk]) -> u64 {
        let first = chunks
            .iter()
            .find(|c| c.direction == Direction::Ingress)
            .unwrap();
        let mut framer = StdioFramer::new();
        let StdioFrame::Message(message) = &framer.push(&first.bytes)[0] else {
            panic!("first ingress chunk is a message");
        };
        match Sender::guess_from_message(message) {
            Some(Sender::Client) => first.pid,
            _ => chunks.iter().find(|c| c.pid != first.pid).unwrap().pid,
        }
    }

    fn dump() -> Value {
        serde_json::from_slice(&fixture("client-dump.json")).unwrap()
    }

    /// Feeds the chunks `pid` captured, each cut at `splits` (relative positions), in capture
    /// order, as seen from `observed`.
    fn records_from(
        chunks: &[Chunk],
        pid: u64,
        observed: Sender,
        split: &dyn Fn(&[u8]) -> Vec<usize>,
    ) -> Vec<McpExchange> {
        let mut connection = StdioMcpConnection::new();
        let mut out = Vec::new();
        for chunk in chunks.iter().filter(|c| c.pid == pid) {
            let sender = Sender::of_stream(observed, chunk.direction).unwrap();
            let mut start = 0;
            for end in split(&chunk.bytes).into_iter().chain([chunk.bytes.len()]) {
                let end = end.clamp(start, chunk.bytes.len());
                out.extend(connection.feed_bytes(sender, &chunk.bytes[start..end], chunk.ts_ns));
                start = end;
            }
        }
        out.extend(connection.finish(u64::MAX));
        out
    }

    fn whole(_: &[u8]) -> Vec<usize> {
        Vec::new()
    }

    fn bytewise(bytes: &[u8]) -> Vec<usize> {
        (1..bytes.len()).collect()
    }

    fn without_times(mut records: Vec<McpExchange>) -> Vec<McpExchange> {
        for r in &mut records {
            r.request_ts_ns = None;
            r.response_ts_ns = None;
        }
        records
    }

    fn detail<'a>(records: &'a [McpExchange], method: &str, nth: usize) -> &'a McpDetail {
        &records
            .iter()
            .filter(|r| r.kind == ExchangeKind::Call && r.method.as_deref() == Some(method))
            .nth(nth)
            .unwrap_or_else(|| panic!("no {method} #{nth}"))
            .detail
    }

    #[test]
    fn captured_session_gives_the_records_the_client_saw() {
        let chunks = pipe_chunks();
        let server = server_pid(&chunks);
        let records = records_from(&chunks, server, Sender::Server, &whole);
        let dump = dump();

        assert!(records.iter().all(|r| !r.partial), "{records:#?}");
        let kinds: Vec<(ExchangeKind, Option<&str>)> = records
            .iter()
            .map(|r| (r.kind, r.method.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            [
                (ExchangeKind::Call, Some("initialize")),
                (
                    ExchangeKind::Notification,
                    Some("notifications/initialized")
                ),
                (ExchangeKind::Call, Some("tools/list")),
                (ExchangeKind::Call, Some("tools/call")),
                (ExchangeKind::Call, Some("tools/call")),
                (ExchangeKind::Call, Some("resources/read")),
                (ExchangeKind::Call, Some("prompts/get")),
            ]
        );
        assert!(records.iter().all(|r| r.initiator == Sender::Client));
        assert!(records
            .iter()
            .all(|r| r.transport == McpTransport::Stdio && r.session_id.is_none()));
        for r in records.iter().filter(|r| r.kind == ExchangeKind::Call) {
            assert!(r.response_ts_ns >= r.request_ts_ns, "{r:?}");
        }

        let McpDetail::Initialize(init) = detail(&records, "initialize", 0) else {
            panic!()
        };
        assert_eq!(
            init.protocol_version.as_deref(),
            dump["initialize"]["protocolVersion"].as_str()
        );
        assert_eq!(init.requested_protocol_version, init.protocol_version);
        let server_info = init.server.clone().unwrap();
        assert_eq!(
            server_info.name.as_deref(),
            dump["initialize"]["serverInfo"]["name"].as_str()
        );
        assert_eq!(
            server_info.version.as_deref(),
            dump["initialize"]["serverInfo"]["version"].as_str()
        );
        assert_eq!(
            init.client.as_ref().unwrap().name.as_deref(),
            Some("agentscope-test-agent")
        );
        assert_eq!(
            init.server_capabilities.as_ref(),
            Some(&dump["initialize"]["capabilities"])
        );
        assert_eq!(
            init.instructions.as_deref(),
            dump["initialize"]["instructions"].as_str()
        );

        let McpDetail::ToolsList(list) = detail(&records, "tools/list", 0) else {
            panic!()
        };
        let tool = &dump["tools_list"]["tools"][0];
        assert_eq!(list.tools.len(), 1);
        assert_eq!(list.tools[0].name, tool["name"].as_str().unwrap());
        assert_eq!(list.tools[0].title.as_deref(), tool["title"].as_str());
        assert_eq!(
            list.tools[0].description.as_deref(),
            tool["description"].as_str()
        );
        assert_eq!(
            list.tools[0].input_schema,
            SchemaSummary {
                schema_type: Some("object".into()),
                properties: vec!["path".into()],
                required: vec!["path".into()],
            }
        );
        assert!(list.tools[0].has_output_schema);
        let annotations = list.tools[0].annotations.clone().unwrap();
        assert_eq!(annotations.read_only_hint, Some(true));
        assert_eq!(annotations.open_world_hint, Some(false));

        for (nth, key) in [(0, "read_file"), (1, "read_missing_file")] {
            let McpDetail::ToolsCall(call) = detail(&records, "tools/call", nth) else {
                panic!()
            };
            assert_eq!(call.name.as_deref(), Some("read_file"));
            assert_eq!(
                call.result_text.as_deref(),
                dump[key]["content"][0]["text"].as_str()
            );
            assert_eq!(call.is_error, dump[key]["isError"].as_bool());
            assert_eq!(
                call.structured_content.as_ref(),
                dump[key].get("structuredContent")
            );
            assert_eq!(call.content_types, ["text"]);
        }
        let tool_call = records
            .iter()
            .find(|r| r.method.as_deref() == Some("tools/call"))
            .unwrap();
        assert_eq!(tool_call.tool_name.as_deref(), Some("read_file"));

        let McpDetail::ResourcesRead(read) = detail(&records, "resources/read", 0) else {
            panic!()
        };
        let content = &dump["resource"]["contents"][0];
        assert_eq!(read.uri.as_deref(), content["uri"].as_str());
        assert_eq!(
            read.contents[0].mime_type.as_deref(),
            content["mimeType"].as_str()
        );
        assert_eq!(
            read.contents[0].text_len,
            Some(content["text"].as_str().unwrap().chars().count())
        );

        let McpDetail::PromptsGet(prompt) = detail(&records, "prompts/get", 0) else {
            panic!()
        };
        assert_eq!(prompt.name.as_deref(), Some("summarize_file"));
        assert_eq!(prompt.arguments.as_ref().unwrap()["style"], "terse");
        assert_eq!(
            prompt.description.as_deref(),
            dump["prompt"]["description"].as_str()
        );
        assert_eq!(prompt.message_roles, ["user"]);
    }

    #[test]
    fn client_and_server_views_agree() {
        let chunks = pipe_chunks();
        let server = server_pid(&chunks);
        let client = chunks.iter().find(|c| c.pid != server).unwrap().pid;
        let from_server = without_times(records_from(&chunks, server, Sender::Server, &whole));
        let from_client = without_times(records_from(&chunks, client, Sender::Client, &whole));
        assert_eq!(from_server.len(), 7);
        assert_eq!(from_server, from_client);
    }

    #[test]
    fn chunk_boundaries_do_not_matter() {
        let chunks = pipe_chunks();
        let server = server_pid(&chunks);
        let reference = records_from(&chunks, server, Sender::Server, &whole);
        assert_eq!(
            records_from(&chunks, server, Sender::Server, &bytewise),
            reference
        );
        // Every message at once, as a reader with a big buffer might see it.
        let mut connection = StdioMcpConnection::new();
        let mut records = Vec::new();
        records.extend(connection.feed_bytes(
            Sender::Client,
            &fixture("stdio-client-to-server.ndjson"),
            0,
        ));
        records.extend(connection.feed_bytes(
            Sender::Server,
            &fixture("stdio-server-to-client.ndjson"),
            0,
        ));
        records.extend(connection.finish(0));
        // Fed this way, the notification completes before the initialize call does.
        let sorted = |records: Vec<McpExchange>| {
            let mut records = without_times(records);
            records.sort_by_key(|r| (r.request_id.clone(), r.method.clone()));
            records
        };
        assert_eq!(sorted(records), sorted(reference));
    }

    proptest! {
        #[test]
        fn random_split_points_give_the_same_records(seed in any::<u64>()) {
            let chunks = pipe_chunks();
            let server = server_pid(&chunks);
            let reference = records_from(&chunks, server, Sender::Server, &whole);
            let split = |bytes: &[u8]| -> Vec<usize> {
                let mut state = seed | 1;
                let mut points: Vec<usize> = (0..4)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        (state % (bytes.len() as u64 + 1)) as usize
                    })
                    .collect();
                points.sort_unstable();
                points
            };
            prop_assert_eq!(records_from(&chunks, server, Sender::Server, &split), reference);
        }

        #[test]
        fn truncated_streams_are_flagged_not_fatal(cut in 0usize..4096) {
            let requests = fixture("stdio-client-to-server.ndjson");
            let responses = fixture("stdio-server-to-client.ndjson");
            let cut = cut.min(responses.len());
            let mut connection = StdioMcpConnection::new();
            let mut records = connection.feed_bytes(Sender::Client, &requests, 0);
            records.extend(connection.feed_bytes(Sender::Server, &responses[..cut], 1));
            records.extend(connection.finish(2));
            let calls = records.iter().filter(|r| r.kind == ExchangeKind::Call).count();
            let unanswered = records.iter().filter(|r| r.kind == ExchangeKind::Unanswered).count();
            // Six requests: each is answered or reported unanswered, never lost.
            prop_assert_eq!(calls + unanswered, 6);
            prop_assert!(records.iter().filter(|r| r.kind == ExchangeKind::Unanswered).all(|r| r.partial));
            // Losing only the final newline leaves the last message whole.
            if cut + 1 < responses.len() {
                prop_assert!(unanswered >= 1);
            } else {
                prop_assert_eq!(unanswered, 0);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8)) {
            let mut connection = StdioMcpConnection::new();
            for (i, piece) in pieces.iter().enumerate() {
                let sender = if i % 2 == 0 { Sender::Client } else { Sender::Server };
                let _ = connection.feed_bytes(sender, piece, i as u64);
                if i == 3 {
                    let _ = connection.mark_gap(sender, i as u64);
                }
            }
            let _ = connection.finish(99);
        }

        #[test]
        fn damaged_fixture_never_panics(flip in 0usize..4096, bit in 0u8..8) {
            let mut requests = fixture("stdio-client-to-server.ndjson");
            let at = flip % requests.len();
            requests[at] ^= 1 << bit;
            let mut connection = StdioMcpConnection::new();
            let _ = connection.feed_bytes(Sender::Client, &requests, 0);
            let _ = connection.feed_bytes(Sender::Server, &fixture("stdio-server-to-client.ndjson"), 1);
            let _ = connection.finish(2);
        }
    }

    #[test]
    fn framer_handles_several_lines_partial_lines_and_blank_lines() {
        let mut framer = StdioFramer::new();
        let frames = framer.push(b"{\"a\":1}\n\n  \r\n{\"b\":2}\r\n{\"c\":");
        assert_eq!(
            frames,
            [
                StdioFrame::Message(json!({"a": 1})),
                StdioFrame::Message(json!({"b": 2}))
            ]
        );
        assert_eq!(framer.pending_len(), 5);
        assert_eq!(framer.push(b"3}\n"), [StdioFrame::Message(json!({"c": 3}))]);
        assert_eq!(framer.pending_len(), 0);
        assert_eq!(framer.finish(), None);
    }

    #[test]
    fn framer_reports_malformed_and_cut_lines() {
        let mut framer = StdioFramer::new();
        let frames = framer.push(b"not json\n{\"ok\":true}\n{\"cut\":");
        assert!(matches!(frames[0], StdioFrame::Malformed { len: 8, .. }));
        assert_eq!(frames[1], StdioFrame::Message(json!({"ok": true})));
        assert_eq!(framer.finish(), Some(StdioFrame::Truncated { len: 7 }));
        // A last message whose newline was not captured still counts.
        let mut framer = StdioFramer::new();
        assert!(framer.push(b"{\"last\":1}").is_empty());
        assert_eq!(
            framer.finish(),
            Some(StdioFrame::Message(json!({"last": 1})))
        );
    }

    #[test]
    fn framer_bounds_oversize_lines_and_resumes() {
        let mut framer = StdioFramer::with_max_line(16);
        let mut frames = framer.push(b"{\"big\":\"0123456789");
        frames.extend(framer.push(b"0123456789\"}\n{\"small\":1}\n"));
        assert_eq!(
            frames,
            [
                StdioFrame::Oversize { len: 30 },
                StdioFrame::Message(json!({"small": 1}))
            ]
        );
        assert!(framer.pending_len() <= 16);
        // One piece holding a whole oversize line.
        assert_eq!(
            framer.push(b"{\"big\":\"01234567890123\"}\n"),
            [StdioFrame::Oversize { len: 24 }]
        );
    }

    #[test]
    fn framer_resynchronises_after_a_gap() {
        let mut framer = StdioFramer::new();
        assert!(framer.push(b"{\"id\":1,\"res").is_empty());
        assert_eq!(framer.mark_gap(), StdioFrame::Truncated { len: 12 });
        // The rest of the damaged message is dropped; the next whole one is kept.
        assert_eq!(
            framer.push(b"ult\":{}}\n{\"id\":2}\n"),
            [StdioFrame::Message(json!({"id": 2}))]
        );
        // A gap that fell between lines: the next line is whole and kept.
        assert_eq!(framer.mark_gap(), StdioFrame::Truncated { len: 0 });
        assert_eq!(
            framer.push(b"{\"id\":3}\n"),
            [StdioFrame::Message(json!({"id": 3}))]
        );
    }

    fn feed(session: &mut McpSession, sender: Sender, message: Value) -> Vec<McpExchange> {
        session.feed_message(sender, &message, 0)
    }

    #[test]
    fn errors_orphans_and_unanswered_requests_are_flagged() {
        let mut session = McpSession::new(McpTransport::Http);
        session.set_session_id("abc");
        // A response whose request came before the capture started.
        let orphan = feed(
            &mut session,
            Sender::Server,
            json!({"jsonrpc": "2.0", "id": 7, "result": {}}),
        );
        assert_eq!(orphan[0].kind, ExchangeKind::UnmatchedResponse);
        assert!(orphan[0].partial);
        assert_eq!(orphan[0].request_id.as_deref(), Some("7"));
        assert_eq!(orphan[0].initiator, Sender::Client);

        assert!(feed(
            &mut session,
            Sender::Client,
            json!({"jsonrpc": "2.0", "id": "x1", "method": "tools/call", "params": {"name": "drop_db"}})
        )
        .is_empty());
        let error = feed(
            &mut session,
            Sender::Server,
            json!({"jsonrpc": "2.0", "id": "x1", "error": {"code": -32602, "message": "Unknown tool"}}),
        );
        assert_eq!(error[0].kind, ExchangeKind::Call);
        assert_eq!(error[0].tool_name.as_deref(), Some("drop_db"));
        assert_eq!(error[0].session_id.as_deref(), Some("abc"));
        assert_eq!(
            error[0].error,
            Some(JsonRpcError {
                code: -32602,
                message: "Unknown tool".into(),
                data: None
            })
        );

        assert!(feed(
            &mut session,
            Sender::Client,
            json!({"jsonrpc": "2.0", "id": 9, "method": "resources/read", "params": {"uri": "file:///etc/passwd"}})
        )
        .is_empty());
        assert_eq!(session.pending_requests(), 1);
        let flushed = session.finish();
        assert_eq!(flushed.len(), 1);
        assert_eq!(flushed[0].kind, ExchangeKind::Unanswered);
        assert!(flushed[0].partial);
        assert_eq!(
            flushed[0].resource_uri.as_deref(),
            Some("file:///etc/passwd")
        );
        assert_eq!(session.pending_requests(), 0);
    }

    #[test]
    fn ids_pair_by_type_and_direction() {
        let mut session = McpSession::new(McpTransport::Stdio);
        feed(
            &mut session,
            Sender::Client,
            json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
        );
        // The server asks the client something with the same id: a separate request.
        feed(
            &mut session,
            Sender::Server,
            json!({"jsonrpc": "2.0", "id": 1, "method": "sampling/createMessage", "params": {"maxTokens": 5}}),
        );
        // "1" is not 1.
        let wrong_type = feed(
            &mut session,
            Sender::Server,
            json!({"jsonrpc": "2.0", "id": "1", "result": {}}),
        );
        assert_eq!(wrong_type[0].kind, ExchangeKind::UnmatchedResponse);
        let sampling = feed(
            &mut session,
            Sender::Client,
            json!({"jsonrpc": "2.0", "id": 1, "result": {"role": "assistant"}}),
        );
        assert_eq!(
            sampling[0].method.as_deref(),
            Some("sampling/createMessage")
        );
        assert_eq!(sampling[0].initiator, Sender::Server);
        let ping = feed(
            &mut session,
            Sender::Server,
            json!({"jsonrpc": "2.0", "id": 1, "result": {}}),
        );
        assert_eq!(ping[0].method.as_deref(), Some("ping"));
        assert_eq!(ping[0].initiator, Sender::Client);
        assert!(matches!(ping[0].detail, McpDetail::Other { .. }));
    }

    #[test]
    fn batches_reused_ids_and_invalid_messages() {
        let mut session = McpSession::new(McpTransport::Stdio);
        let batch = json!([
            {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 0}},
            {"jsonrpc": "2.0", "id": 1, "method": "prompts/list"},
            42,
            {"jsonrpc": "1.0", "id": 2, "method": "x"},
            {"jsonrpc": "2.0", "id": {"obj": 1}, "method": "x"},
            {"jsonrpc": "2.0", "id": 3}
        ]);
        let records = feed(&mut session, Sender::Client, batch);
        let kinds: Vec<ExchangeKind> = records.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                ExchangeKind::Notification,
                ExchangeKind::Unanswered,
                ExchangeKind::Invalid,
                ExchangeKind::Invalid,
                ExchangeKind::Invalid,
                ExchangeKind::Invalid
            ]
        );
        assert_eq!(records[1].method.as_deref(), Some("tools/list"));
        let answer = feed(
            &mut session,
            Sender::Server,
            json!([{"jsonrpc": "2.0", "id": 1, "result": {"prompts": []}}]),
        );
        assert_eq!(answer[0].method.as_deref(), Some("prompts/list"));
        assert_eq!(
            feed(&mut session, Sender::Client, json!([]))[0].kind,
            ExchangeKind::Invalid
        );
    }

    #[test]
    fn pending_requests_are_bounded() {
        let mut session = McpSession::new(McpTransport::Stdio);
        let mut evicted = 0;
        for id in 0..MAX_PENDING_REQUESTS + 10 {
            evicted += feed(
                &mut session,
                Sender::Client,
                json!({"jsonrpc": "2.0", "id": id, "method": "ping"}),
            )
            .len();
        }
        assert_eq!(evicted, 10);
        assert_eq!(session.pending_requests(), MAX_PENDING_REQUESTS);
    }

    #[test]
    fn json_names_follow_opentelemetry() {
        let chunks = pipe_chunks();
        let server = server_pid(&chunks);
        let records = records_from(&chunks, server, Sender::Server, &whole);
        let call = records
            .iter()
            .find(|r| r.method.as_deref() == Some("tools/call"))
            .unwrap();
        let json = serde_json::to_value(call).unwrap();
        assert_eq!(json["mcp.method.name"], "tools/call");
        assert_eq!(json["jsonrpc.request.id"], "3");
        assert_eq!(json["gen_ai.tool.name"], "read_file");
        assert_eq!(json["network.transport"], "pipe");
        assert_eq!(json["kind"], "call");
        assert_eq!(json["detail"]["type"], "tools_call");
        assert!(json["detail"]["gen_ai.tool.call.arguments"]["path"].is_string());
        let read = records
            .iter()
            .find(|r| r.method.as_deref() == Some("resources/read"))
            .unwrap();
        assert_eq!(
            serde_json::to_value(read).unwrap()["mcp.resource.uri"],
            "notes://agentscope/today"
        );
    }

    #[test]
    fn sender_helpers() {
        assert_eq!(
            Sender::of_stream(Sender::Server, Direction::Ingress),
            Some(Sender::Client)
        );
        assert_eq!(
            Sender::of_stream(Sender::Client, Direction::Egress),
            Some(Sender::Client)
        );
        assert_eq!(Sender::of_stream(Sender::Client, Direction::Unknown), None);
        assert_eq!(
            Sender::guess_from_message(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize"})),
            Some(Sender::Client)
        );
        assert_eq!(
            Sender::guess_from_message(
                &json!({"jsonrpc": "2.0", "id": 1, "result": {"serverInfo": {}}})
            ),
            Some(Sender::Server)
        );
        assert_eq!(
            Sender::guess_from_message(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})),
            None
        );
    }
}
