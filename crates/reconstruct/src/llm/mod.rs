//! LLM API calls recognised in HTTP exchanges.
//!
//! A provider is recognised by host, path and body shape; each dialect's module extracts the
//! same [`LlmCall`]: model, system prompt, the latest user and tool messages, tools offered,
//! tool calls requested and token usage. Field names follow the OpenTelemetry GenAI semantic
//! conventions where one exists.
//!
//! Dialects, one module each: `openai_chat` (Chat Completions, also Azure OpenAI and every
//! OpenAI-compatible server), `openai_responses` (Responses, over HTTP and WebSocket, and the
//! Realtime API's WebSocket events, which share its items and events), `anthropic` (Messages), `gemini`
//! (generateContent and streamGenerateContent, also Vertex AI) and `ollama` (`/api/chat`,
//! `/api/generate`). Which provider a call went to is decided by [`provider`].
//!
//! Recognition looks at the method and path first, so other traffic costs a few string
//! comparisons; only then is the request body parsed.

mod anthropic;
mod gemini;
pub mod history;
mod ollama;
mod openai_chat;
mod openai_responses;
pub mod provider;
mod response_body;

#[cfg(test)]
mod fixture_exchange;
#[cfg(test)]
mod malformed_input;

use serde::Serialize;
use serde_json::Value;

use super::http::{Completeness, HttpExchange};
use super::json_read::{non_empty_text, JsonRead, Shape};
use super::request_json::RequestJson;

/// Which wire dialect the call used.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum LlmApi {
    OpenAiChatCompletions,
    OpenAiResponses,
    /// The Realtime API's conversation over WebSocket, read in the Responses shape
    /// ([`crate::websocket::event_exchanges`]).
    OpenAiRealtime,
    AnthropicMessages,
    GeminiGenerateContent,
    OllamaChat,
    /// Ollama `/api/generate`: a bare prompt, no messages and no tools.
    OllamaGenerate,
}

/// A tool the request offered to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolDefinition {
    pub name: String,
    pub description: Option<String>,
}

/// A tool call the model asked for (`gen_ai.tool.*`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCall {
    /// `gen_ai.tool.call.id`: the provider's id (Gemini may omit it).
    pub id: Option<String>,
    /// `gen_ai.tool.name`
    pub name: String,
    /// `gen_ai.tool.call.arguments`: parsed when they are valid JSON, else the raw string.
    pub arguments: serde_json::Value,
}

/// A tool result the agent sent back to the model (in the request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolResult {
    /// The tool call this answers (`tool_call_id`, `tool_use_id`, `call_id`), when given.
    pub call_id: Option<String>,
    /// The tool's name, when the dialect says it (Gemini, Ollama) or the request holds the
    /// call it answers.
    pub name: Option<String>,
    /// `gen_ai.tool.call.result`, as text.
    pub content: String,
    pub is_error: bool,
    /// The arguments of the call this answers, as the request repeats that call (Gemini: the
    /// model turn's `functionCall` with the same id, else at the same place). What ties a
    /// result to its call when the model gave the call no id and several calls of the same
    /// tool are open (parallel calls); `None` where ids do that (the other dialects).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Usage {
    /// `gen_ai.usage.input_tokens`: every input token, cached ones included (Anthropic reports
    /// cache reads and writes apart; they are added here).
    pub input_tokens: Option<u64>,
    /// `gen_ai.usage.output_tokens`
    pub output_tokens: Option<u64>,
    /// `gen_ai.usage.cache_read.input_tokens`: input tokens served from the provider's cache.
    pub cache_read_input_tokens: Option<u64>,
    /// `gen_ai.usage.cache_creation.input_tokens`: input tokens written to the cache
    /// (Anthropic).
    pub cache_creation_input_tokens: Option<u64>,
}

/// One model invocation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LlmCall {
    pub api: LlmApi,
    /// `gen_ai.provider.name`: see [`provider::provider_name`] for the rule.
    #[serde(rename = "gen_ai.provider.name")]
    pub provider: String,
    /// `gen_ai.operation.name`: chat, generate_content or text_completion.
    #[serde(rename = "gen_ai.operation.name")]
    pub operation: String,
    #[serde(rename = "gen_ai.request.model")]
    pub request_model: Option<String>,
    #[serde(rename = "gen_ai.response.model")]
    pub response_model: Option<String>,
    #[serde(rename = "gen_ai.response.id")]
    pub response_id: Option<String>,
    pub system_prompt: Option<String>,
    /// Text of the last user message in the request that has text.
    pub last_user_message: Option<String>,
    /// Tool results in the request after the last assistant turn: what the agent reports back.
    pub tool_results: Vec<ToolResult>,
    /// The request's messages (system prompt first where the API keeps it apart), one
    /// fingerprint each ([`history::message_history`]): a later request of the same
    /// conversation starts with them. Not serialised.
    #[serde(skip)]
    pub history: Vec<u64>,
    pub tools_offered: Vec<ToolDefinition>,
    pub tool_calls: Vec<ToolCall>,
    /// Text the model produced.
    pub output_text: Option<String>,
    pub usage: Usage,
    #[serde(rename = "gen_ai.response.finish_reasons")]
    pub finish_reasons: Vec<String>,
    /// `error.type`: the provider's error type or status (`rate_limit_error`,
    /// `RESOURCE_EXHAUSTED`, ...) when the API answered with an error, else the HTTP status
    /// code of a non-2xx response.
    #[serde(rename = "error.type")]
    pub error_type: Option<String>,
    /// The response came as a stream (SSE, NDJSON, or Gemini's streamed JSON array).
    pub streamed: bool,
    /// Request or response was truncated or corrupt, or the response never arrived: the fields
    /// above hold what could be recovered.
    pub partial: bool,
}

/// Recognises an LLM API call in an exchange; `None` when the exchange is not one.
pub fn recognise(exchange: &HttpExchange) -> Option<LlmCall> {
    recognise_with_request(exchange, &RequestJson::new(&exchange.request))
}

/// [`recognise`] with the request body parsed by whoever read it first
/// ([`crate::request_json`]); it is parsed here only once the path says which dialect it is.
pub fn recognise_with_request(
    exchange: &HttpExchange,
    request_json: &RequestJson<'_>,
) -> Option<LlmCall> {
    if !exchange.request.method.eq_ignore_ascii_case("POST") {
        return None;
    }
    // The request body as a JSON object; `None` when it is not one. Read in place by the
    // dialects that have moved to that tree ([`crate::json_read`]), else as a `Value`.
    let borrowed = || request_json.borrowed().filter(|body| body.is_object());
    let request = || request_json.get().filter(|body| body.is_object());
    let path = exchange.request.path();
    if path.ends_with("/chat/completions") {
        openai_chat::recognise(exchange, borrowed())
    } else if path.ends_with("/v1/messages") {
        anthropic::recognise(exchange, borrowed())
    } else if path.ends_with("/responses") {
        openai_responses::recognise(exchange, borrowed(), LlmApi::OpenAiResponses)
    } else if path.ends_with("/realtime") {
        openai_responses::recognise(exchange, borrowed(), LlmApi::OpenAiRealtime)
    } else if path.ends_with(":generateContent") || path.ends_with(":streamGenerateContent") {
        gemini::recognise(exchange, request())
    } else if path.ends_with("/api/chat") {
        ollama::recognise(exchange, request(), LlmApi::OllamaChat)
    } else if path.ends_with("/api/generate") {
        ollama::recognise(exchange, request(), LlmApi::OllamaGenerate)
    } else if path.is_empty() && exchange.request.completeness != Completeness::Complete {
        recognise_by_shape(exchange, request_json)
    } else {
        None
    }
}

/// An exchange whose path is unknown — an HTTP/2 request attached mid-connection, its `:path`
/// a reference into the HPACK table sent before capture began — recognised from its bodies
/// alone, and only when request and response agree on one dialect (the request's fields and
/// the response's object type); anything less is not taken for an LLM call.
fn recognise_by_shape(exchange: &HttpExchange, request_json: &RequestJson<'_>) -> Option<LlmCall> {
    let request = request_json.borrowed().filter(|body| body.is_object())?;
    let response = &exchange.response.as_ref()?.body;
    let has = |key: &str| request.field(key).is_some();
    let says = |marker: &str| memchr::memmem::find(response, marker.as_bytes()).is_some();
    if has("model") && has("messages") && says("\"chat.completion") {
        openai_chat::recognise(exchange, Some(request))
    } else if has("model")
        && has("messages")
        && (says("message_start") || says("\"type\":\"message\""))
    {
        anthropic::recognise(exchange, Some(request))
    } else if has("model")
        && has("input")
        && (says("response.created") || says("\"object\":\"response\""))
    {
        openai_responses::recognise(exchange, Some(request), LlmApi::OpenAiResponses)
    } else if has("contents") && says("\"candidates\"") {
        // Gemini does not read the tree in place yet: a `serde_json::Value` of the same body.
        gemini::recognise(exchange, request_json.get())
    } else {
        None
    }
}

impl LlmCall {
    /// An empty call for `exchange`, its provider named by [`provider::provider_name`].
    fn new(api: LlmApi, operation: &str, exchange: &HttpExchange) -> LlmCall {
        LlmCall {
            api,
            provider: provider::provider_name(
                api,
                exchange.host.as_deref(),
                exchange.port,
                exchange.request.path(),
            ),
            operation: operation.to_string(),
            request_model: None,
            response_model: None,
            response_id: None,
            system_prompt: None,
            last_user_message: None,
            tool_results: Vec::new(),
            history: Vec::new(),
            tools_offered: Vec::new(),
            tool_calls: Vec::new(),
            output_text: None,
            usage: Usage::default(),
            finish_reasons: Vec::new(),
            error_type: None,
            streamed: false,
            partial: false,
        }
    }

    /// Flags what the exchange's framing says about completeness and HTTP-level errors; the
    /// dialects add what only the body can tell (a stream without its terminal event).
    fn note_exchange(&mut self, exchange: &HttpExchange) {
        if exchange.request.completeness != Completeness::Complete {
            self.partial = true;
        }
        match &exchange.response {
            None => self.partial = true,
            Some(response) => {
                if response.completeness != Completeness::Complete {
                    self.partial = true;
                }
                if !(200..300).contains(&response.status) && self.error_type.is_none() {
                    self.error_type = Some(response.status.to_string());
                }
            }
        }
    }
}

/// Whether the response arrived with a 2xx status. A non-2xx body that is not JSON (a
/// proxy's HTML page) is an error answer, not a cut one.
fn succeeded(exchange: &HttpExchange) -> bool {
    exchange
        .response
        .as_ref()
        .is_some_and(|r| (200..300).contains(&r.status))
}

/// Whether a request body that did not parse still looks like this dialect: it holds `key`
/// (a quoted JSON key), so the call is reported as partial rather than dropped.
fn unparsed_body_mentions(exchange: &HttpExchange, key: &str) -> bool {
    memchr::memmem::find(&exchange.request.body, key.as_bytes()).is_some()
}

/// A message's `role`, empty when it has none.
fn role<J: JsonRead>(message: &J) -> &str {
    message.field("role").and_then(J::text).unwrap_or("")
}

fn string_field<J: JsonRead>(value: &J, key: &str) -> Option<String> {
    non_empty_text(value.field(key)).map(str::to_string)
}

/// Text of a message content in the shapes providers use: a string, an array of parts (each a
/// string or an object with a string `text`), or one such part object. Parts without text
/// (images, tool blocks) are skipped; text parts are joined with newlines.
fn content_text<J: JsonRead>(content: &J) -> Option<String> {
    let mut texts: Vec<&str> = Vec::new();
    if let Some(s) = content.text() {
        texts.push(s);
    } else if let Some(parts) = content.items() {
        for part in parts {
            if let Some(s) = part.text() {
                texts.push(s);
            } else if let Some(text) = part.field("text").and_then(J::text) {
                texts.push(text);
            }
        }
    } else if let Some(text) = content.field("text").and_then(J::text) {
        texts.push(text);
    }
    let joined = texts.join("\n");
    (!joined.is_empty()).then_some(joined)
}

/// Tool-call arguments as the model sent them: parsed when they are valid JSON, else the raw
/// string (a truncated stream leaves half an object, which stays visible as text).
fn parse_arguments(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}

/// Joins pieces of text, `None` when there is none.
fn join_texts<S: AsRef<str>>(texts: &[S], separator: &str) -> Option<String> {
    let parts: Vec<&str> = texts
        .iter()
        .map(AsRef::as_ref)
        .filter(|t| !t.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(separator))
}

/// A tool's result as text: strings as they are, anything else as compact JSON.
fn result_text<J: JsonRead>(value: &J) -> String {
    match value.shape() {
        Shape::Null => String::new(),
        Shape::Text(s) => s.to_string(),
        Shape::Array(_) => content_text(value).unwrap_or_else(|| value.compact_json()),
        _ => value.compact_json(),
    }
}

/// The provider's error type from a body with a non-null `error`: `error.type`,
/// `error.status`, `error.code`, or a bare `error` string (Ollama).
fn error_type_of(body: &Value) -> Option<String> {
    let error = body.get("error").filter(|e| !e.is_null())?;
    if let Some(text) = error.as_str() {
        return Some(text.to_string());
    }
    ["type", "status", "code"]
        .iter()
        .find_map(|key| match error.get(*key) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        })
        .or_else(|| Some("error".to_string()))
}

fn as_count<J: JsonRead>(value: Option<&J>) -> Option<u64> {
    value.and_then(J::count)
}

#[cfg(test)]
mod tests {
    use super::fixture_exchange::{exchange, fixture};
    use super::*;

    #[test]
    fn non_post_and_unknown_paths_are_not_llm_calls() {
        let mut ex = exchange("GET", "/v1/chat/completions", b"{}", None);
        assert_eq!(recognise(&ex), None);
        ex.request.method = "POST".into();
        ex.request.target = "/v1/chat/completion".into();
        assert_eq!(recognise(&ex), None);
        ex.request.target = "/index.html".into();
        assert_eq!(recognise(&ex), None);
    }

    #[test]
    fn a_body_of_another_shape_on_an_llm_path_is_not_an_llm_call() {
        for path in [
            "/v1/chat/completions",
            "/v1/messages",
            "/v1/responses",
            "/api/chat",
            "/api/generate",
        ] {
            let ex = exchange("POST", path, br#"{"comment": "hello"}"#, None);
            assert_eq!(recognise(&ex), None, "{path}");
            let ex = exchange("POST", path, b"name=value&x=1", None);
            assert_eq!(recognise(&ex), None, "{path}");
        }
    }

    /// A path unknown (an HTTP/2 request read without its HPACK table): the call is
    /// recognised only when request and response agree on a dialect, and only then.
    #[test]
    fn without_a_path_only_agreeing_bodies_make_a_call() {
        let mut ex = fixture("openai_chat/tools_stream");
        ex.request.target = String::new();
        // A whole request with no path is not one of these.
        assert_eq!(recognise(&ex), None);
        ex.request.completeness = Completeness::Truncated;
        let call = recognise(&ex).expect("recognised from the bodies");
        assert_eq!(call.api, LlmApi::OpenAiChatCompletions);
        assert!(call.partial);
        // The same request answered by something else is not an LLM call.
        let mut other = ex.clone();
        if let Some(response) = other.response.as_mut() {
            response.body = br#"{"status":"ok"}"#.to_vec();
            response.stream = None;
        }
        assert_eq!(recognise(&other), None);
        other.response = None;
        assert_eq!(recognise(&other), None);
    }

    #[test]
    fn a_missing_response_makes_the_call_partial() {
        let mut ex = fixture("openai_chat/tools_stream");
        ex.response = None;
        let call = recognise(&ex).unwrap();
        assert!(call.partial);
        assert!(call.streamed, "the request asked for a stream");
        assert_eq!(call.request_model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(call.tools_offered.len(), 3);
        assert!(call.tool_calls.is_empty());
    }

    #[test]
    fn content_text_reads_strings_parts_and_skips_the_rest() {
        let v: Value = serde_json::from_str(
            r#"[{"type":"text","text":"a"},{"type":"image_url","image_url":{}},"b",null,7]"#,
        )
        .unwrap();
        assert_eq!(content_text(&v).as_deref(), Some("a\nb"));
        assert_eq!(content_text(&Value::Null), None);
        assert_eq!(content_text(&Value::from(3)), None);
        assert_eq!(content_text(&Value::from("")), None);
    }

    #[test]
    fn error_types_come_from_each_providers_error_shape() {
        let cases = [
            (
                r#"{"error":{"type":"invalid_request_error","code":"x"}}"#,
                "invalid_request_error",
            ),
            (
                r#"{"type":"error","error":{"type":"overloaded_error"}}"#,
                "overloaded_error",
            ),
            (
                r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED"}}"#,
                "RESOURCE_EXHAUSTED",
            ),
            (r#"{"error":{"code":429}}"#, "429"),
            (r#"{"error":"model 'x' not found"}"#, "model 'x' not found"),
        ];
        for (body, want) in cases {
            let v: Value = serde_json::from_str(body).unwrap();
            assert_eq!(error_type_of(&v).as_deref(), Some(want), "{body}");
        }
        assert_eq!(error_type_of(&Value::Null), None);
        assert_eq!(error_type_of(&serde_json::json!({"error": null})), None);
    }
}
