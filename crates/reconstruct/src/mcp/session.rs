//! An MCP session: classifies JSON-RPC messages and pairs requests with their responses by id
//! and direction.

#[allow(unused_imports)]
use super::*;

pub(super) struct PendingRequest {
    pub(super) method: String,
    pub(super) request_id: String,
    pub(super) params: Option<Value>,
    pub(super) ts_ns: u64,
    /// Upper bound of its heap, for the memory budget.
    pub(super) held_bytes: usize,
}

/// One client↔server MCP session: classifies messages and pairs requests with responses.
pub struct McpSession {
    pub(super) transport: McpTransport,
    pub(super) session_id: Option<String>,
    /// Requests awaiting a response, by (who sent them, id key).
    pub(super) pending: HashMap<(Sender, String), PendingRequest>,
    /// Arrival order of `pending`, to evict the oldest.
    pub(super) order: VecDeque<(Sender, String)>,
    pub(super) client: Option<Implementation>,
    pub(super) server: Option<Implementation>,
    pub(super) protocol_version: Option<String>,
    /// Sum of the pending requests' `held_bytes`.
    pub(super) pending_bytes: usize,
}

impl McpSession {
    /// Upper bound of the heap the pending requests hold.
    pub fn held_bytes(&self) -> usize {
        self.pending_bytes
    }

    pub(super) fn remove_pending(&mut self, slot: &(Sender, String)) -> Option<PendingRequest> {
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

    pub(super) fn feed_one(
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

    pub(super) fn note_initialize_request(&mut self, params: Option<&Value>) {
        if let Some(client) = params.and_then(|p| p.get("clientInfo")) {
            self.client = Some(implementation(client));
        }
    }

    pub(super) fn note_initialize_result(&mut self, result: &Value) {
        if let Some(server) = result.get("serverInfo") {
            self.server = Some(implementation(server));
        }
        if let Some(version) = str_field(result, "protocolVersion") {
            self.protocol_version = Some(version);
        }
    }

    pub(super) fn record(
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

    pub(super) fn unanswered(&self, initiator: Sender, pending: PendingRequest) -> McpExchange {
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

    pub(super) fn notification(
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

    pub(super) fn invalid(&self, sender: Sender, reason: &str, ts_ns: u64) -> McpExchange {
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
pub(super) fn id_key(id: &Value) -> Option<(String, String)> {
    match id {
        Value::String(text) => Some((format!("s:{text}"), text.clone())),
        Value::Number(number) => Some((format!("n:{number}"), number.to_string())),
        _ => None,
    }
}

pub(super) fn str_field(value: &Value, key: &str) -> Option<String> {
    value.get(key)?.as_str().map(str::to_string)
}

pub(super) fn bool_field(value: &Value, key: &str) -> Option<bool> {
    value.get(key)?.as_bool()
}

pub(super) fn implementation(value: &Value) -> Implementation {
    Implementation {
        name: str_field(value, "name"),
        title: str_field(value, "title"),
        version: str_field(value, "version"),
    }
}

pub(super) fn parse_error(error: &Value) -> JsonRpcError {
    JsonRpcError {
        code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
        message: str_field(error, "message").unwrap_or_default(),
        data: error.get("data").cloned(),
    }
}

pub(super) fn detail_for(
    method: &str,
    params: Option<&Value>,
    result: Option<&Value>,
) -> McpDetail {
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

pub(super) fn tool_info(tool: &Value) -> ToolInfo {
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
