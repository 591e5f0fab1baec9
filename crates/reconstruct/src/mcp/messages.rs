//! The records MCP yields: who sent a message, exchange kinds and typed details of
//! `initialize`, `tools/list`, `tools/call`, `resources/read` and `prompts/get`.

#[allow(unused_imports)]
use super::*;

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
