//! LLM API calls recognised in HTTP exchanges.
//!
//! A provider is recognised by host, path and body shape; each dialect's module extracts the
//! same [`LlmCall`]: model, system prompt, the latest user and tool messages, tools offered,
//! tool calls requested and token usage. Field names follow the OpenTelemetry GenAI semantic
//! conventions where one exists.

use serde::Serialize;

use super::http::HttpExchange;

/// Which wire dialect the call used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LlmApi {
    OpenAiChatCompletions,
    OpenAiResponses,
    AnthropicMessages,
    GeminiGenerateContent,
    OllamaChat,
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
    /// The tool's name, when the dialect says it (Gemini, Ollama).
    pub name: Option<String>,
    /// `gen_ai.tool.call.result`, as text.
    pub content: String,
    pub is_error: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Usage {
    /// `gen_ai.usage.input_tokens`
    pub input_tokens: Option<u64>,
    /// `gen_ai.usage.output_tokens`
    pub output_tokens: Option<u64>,
}

/// One model invocation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LlmCall {
    pub api: LlmApi,
    /// `gen_ai.provider.name`: openai, anthropic, gcp.gemini, ollama; for OpenAI-dialect
    /// servers on other hosts (vLLM, llama.cpp, LiteLLM) the host name.
    #[serde(rename = "gen_ai.provider.name")]
    pub provider: String,
    /// `gen_ai.operation.name`: chat or generate_content.
    #[serde(rename = "gen_ai.operation.name")]
    pub operation: String,
    #[serde(rename = "gen_ai.request.model")]
    pub request_model: Option<String>,
    #[serde(rename = "gen_ai.response.model")]
    pub response_model: Option<String>,
    #[serde(rename = "gen_ai.response.id")]
    pub response_id: Option<String>,
    pub system_prompt: Option<String>,
    /// Text of the last user message in the request.
    pub last_user_message: Option<String>,
    /// Tool results in the request after the last assistant turn: what the agent reports back.
    pub tool_results: Vec<ToolResult>,
    pub tools_offered: Vec<ToolDefinition>,
    pub tool_calls: Vec<ToolCall>,
    /// Text the model produced.
    pub output_text: Option<String>,
    pub usage: Usage,
    #[serde(rename = "gen_ai.response.finish_reasons")]
    pub finish_reasons: Vec<String>,
    /// The response came as a stream (SSE or NDJSON).
    pub streamed: bool,
    /// Request or response was truncated or corrupt, or the response never arrived: the fields
    /// above hold what could be recovered.
    pub partial: bool,
}

/// Recognises an LLM API call in an exchange; `None` when the exchange is not one.
pub fn recognise(exchange: &HttpExchange) -> Option<LlmCall> {
    let _ = exchange;
    None
}
