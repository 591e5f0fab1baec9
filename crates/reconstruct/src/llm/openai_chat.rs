//! OpenAI Chat Completions (`POST .../chat/completions`), as spoken by OpenAI, Azure OpenAI
//! (`/openai/deployments/{deployment}/chat/completions?api-version=...`) and the many
//! OpenAI-compatible servers (vLLM, llama.cpp, LiteLLM, TGI, Ollama's `/v1`).
//!
//! Streamed tool calls arrive in fragments: the first carries `index`, `id` and the function
//! name, later ones only `index` and a piece of `arguments`. Some compatible servers number
//! every parallel call 0 and tell them apart only by `id`, so fragments are joined by
//! (choice, index, id): a fragment with an id joins the call with that id, one without joins
//! the latest call at its index. The stream ends with `data: [DONE]`; with
//! `stream_options.include_usage` the chunk before it has no choices and carries the usage.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::response_body::{self, ResponseBody, StreamMessage};
use super::{
    as_count, content_text, error_type_of, join_texts, non_empty_text, parse_arguments, role,
    string_field, succeeded, unparsed_body_mentions, LlmApi, LlmCall, ToolCall, ToolDefinition,
    ToolResult, Usage,
};
use crate::http::HttpExchange;
use crate::json_read::{BorrowedJson, JsonRead, Shape};

/// `request` is the body read in place (most requests on a node are this dialect's) or, for
/// an exchange recognised by its shape, either tree.
pub(super) fn recognise<J: JsonRead>(
    exchange: &HttpExchange,
    request: Option<&J>,
) -> Option<LlmCall> {
    match &request {
        Some(body) if body.field("messages").and_then(J::items).is_none() => return None,
        None if !unparsed_body_mentions(exchange, "\"messages\"") => return None,
        _ => {}
    }
    let mut call = LlmCall::new(LlmApi::OpenAiChatCompletions, "chat", exchange);
    call.request_model = azure_deployment(exchange.request.path()).map(str::to_string);
    if let Some(body) = &request {
        read_request(*body, &mut call);
    }
    call.streamed = request
        .and_then(|b| b.field("stream"))
        .and_then(J::flag)
        .unwrap_or(false);
    match response_body::read(exchange.response.as_ref()) {
        ResponseBody::Missing => {}
        ResponseBody::Document(body) => {
            call.streamed = false;
            read_completion(&body, &mut call);
        }
        ResponseBody::Stream(messages) => {
            call.streamed = true;
            read_stream(&messages, &mut call);
        }
        ResponseBody::Unreadable => call.partial |= succeeded(exchange),
    }
    call.note_exchange(exchange);
    Some(call)
}

/// The deployment name in an Azure OpenAI path: the model when the body names none.
fn azure_deployment(path: &str) -> Option<&str> {
    let rest = path.split("/openai/deployments/").nth(1)?;
    rest.split('/').next().filter(|d| !d.is_empty())
}

fn read_request<J: JsonRead>(body: &J, call: &mut LlmCall) {
    call.history = super::history::message_history(body, &["messages"]);
    if let Some(model) = string_field(body, "model") {
        call.request_model = Some(model);
    }
    let messages = body
        .field("messages")
        .and_then(J::items)
        .unwrap_or_default();

    let system: Vec<String> = messages
        .iter()
        .filter(|m| matches!(role(*m), "system" | "developer"))
        .filter_map(|m| m.field("content").and_then(content_text))
        .collect();
    call.system_prompt = join_texts(&system, "\n");
    call.last_user_message = messages
        .iter()
        .rev()
        .filter(|m| role(*m) == "user")
        .find_map(|m| m.field("content").and_then(content_text));

    // Names of the calls the assistant made, so results can say which tool they answer.
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    for message in messages.iter().filter(|m| role(*m) == "assistant") {
        for tool_call in message
            .field("tool_calls")
            .and_then(J::items)
            .into_iter()
            .flatten()
        {
            let id = non_empty_text(tool_call.field("id"));
            let name = non_empty_text(tool_call.field("function").and_then(|f| f.field("name")));
            if let (Some(id), Some(name)) = (id, name) {
                names.insert(id, name);
            }
        }
    }
    let after_assistant = messages
        .iter()
        .rposition(|m| role(m) == "assistant")
        .map_or(0, |i| i + 1);
    for message in messages.get(after_assistant..).unwrap_or_default() {
        // "function" is the legacy (pre-tools) role for a function's result.
        if !matches!(role(message), "tool" | "function") {
            continue;
        }
        let call_id = string_field(message, "tool_call_id");
        let name = string_field(message, "name").or_else(|| {
            call_id
                .as_deref()
                .and_then(|id| names.get(id))
                .map(|n| n.to_string())
        });
        call.tool_results.push(ToolResult {
            call_id,
            name,
            content: message
                .field("content")
                .and_then(content_text)
                .unwrap_or_default(),
            is_error: false,
            arguments: None,
        });
    }

    let tools = body.field("tools").and_then(J::items);
    let functions = body.field("functions").and_then(J::items);
    for tool in tools.into_iter().chain(functions).flatten() {
        // {"type":"function","function":{...}}, {"type":"custom","custom":{...}}, or legacy
        // `functions[]` entries that are the definition itself.
        let definition = tool
            .field("function")
            .or_else(|| tool.field("custom"))
            .unwrap_or(tool);
        if let Some(name) = string_field(definition, "name") {
            call.tools_offered.push(ToolDefinition {
                name,
                description: string_field(definition, "description"),
            });
        }
    }
}

fn read_usage<J: JsonRead>(usage: &J, call: &mut LlmCall) {
    if !matches!(usage.shape(), Shape::Object) {
        return;
    }
    call.usage = Usage {
        input_tokens: as_count(usage.field("prompt_tokens")),
        output_tokens: as_count(usage.field("completion_tokens")),
        cache_read_input_tokens: as_count(
            usage
                .field("prompt_tokens_details")
                .and_then(|d| d.field("cached_tokens")),
        ),
        cache_creation_input_tokens: None,
    };
}

/// A non-streamed completion (or an error body).
fn read_completion(body: &Value, call: &mut LlmCall) {
    if let Some(error) = error_type_of(body) {
        call.error_type = Some(error);
        return;
    }
    call.response_id = string_field(body, "id");
    call.response_model = string_field(body, "model");
    let mut texts = Vec::new();
    for choice in body
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let message = choice.get("message").unwrap_or(&Value::Null);
        if let Some(text) = message.get("content").and_then(content_text) {
            texts.push(text);
        }
        for tool_call in message
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let function = tool_call.get("function").unwrap_or(&Value::Null);
            call.tool_calls.push(ToolCall {
                id: string_field(tool_call, "id"),
                name: string_field(function, "name").unwrap_or_default(),
                arguments: arguments_value(function.get("arguments")),
            });
        }
        if let Some(function) = message.get("function_call").filter(|f| f.is_object()) {
            call.tool_calls.push(ToolCall {
                id: None,
                name: string_field(function, "name").unwrap_or_default(),
                arguments: arguments_value(function.get("arguments")),
            });
        }
        if let Some(reason) = string_field(choice, "finish_reason") {
            call.finish_reasons.push(reason);
        }
    }
    call.output_text = join_texts(&texts, "\n");
    if let Some(usage) = body.get("usage") {
        read_usage(usage, call);
    }
}

/// Arguments as sent: a JSON string to parse, or (some compatible servers) already an object.
fn arguments_value(arguments: Option<&Value>) -> Value {
    match arguments {
        Some(Value::String(raw)) => parse_arguments(raw),
        Some(other) => other.clone(),
        None => Value::Null,
    }
}

/// A streamed tool call being reassembled from its fragments (its choice and index are in
/// [`FragmentedCalls`]' tables).
struct FragmentedCall {
    id: Option<String>,
    name: String,
    arguments: String,
}

/// The tool calls of a stream being reassembled, in the order they began, with the two ways a
/// fragment names the call it continues looked up in tables rather than by walking the calls:
/// a server that streams one call a chunk (a hostile one, or thousands of parallel calls) made
/// that walk quadratic, about 40 million comparisons for the 9,000 calls a 2 MiB body holds.
#[derive(Default)]
struct FragmentedCalls {
    calls: Vec<FragmentedCall>,
    /// By choice, then id: the first call that began with them (choice first, so a fragment is
    /// looked up by its id without a key built for it).
    by_id: HashMap<u64, HashMap<String, usize>>,
    /// By choice and index: the last call that began with them.
    by_index: HashMap<(u64, Option<u64>), usize>,
}

impl FragmentedCalls {
    /// The call a fragment continues: the first of its choice with its id when it has one,
    /// else the last of its choice with its index.
    fn find(&self, choice: u64, index: Option<u64>, id: Option<&str>) -> Option<usize> {
        match id {
            Some(id) => self.by_id.get(&choice)?.get(id).copied(),
            None => self.by_index.get(&(choice, index)).copied(),
        }
    }

    /// Begins a call; returns its place.
    fn begin(&mut self, choice: u64, index: Option<u64>, id: Option<&str>) -> usize {
        let slot = self.calls.len();
        self.calls.push(FragmentedCall {
            id: id.map(str::to_string),
            name: String::new(),
            arguments: String::new(),
        });
        self.by_index.insert((choice, index), slot);
        if let Some(id) = id {
            self.by_id
                .entry(choice)
                .or_default()
                .entry(id.to_string())
                .or_insert(slot);
        }
        slot
    }
}

fn read_stream(messages: &[StreamMessage<'_>], call: &mut LlmCall) {
    let mut done = false;
    let mut texts: BTreeMap<u64, String> = BTreeMap::new();
    let mut finish: BTreeMap<u64, String> = BTreeMap::new();
    let mut calls = FragmentedCalls::default();
    for message in messages {
        if message.data.trim() == "[DONE]" {
            done = true;
            break;
        }
        // Read in place: chunks are many and small (see `crate::json_read`).
        let Some(chunk) = message.borrowed_json() else {
            // A corrupt chunk: what follows may still be read, but the result is incomplete.
            call.partial = true;
            continue;
        };
        if chunk.field("error").is_some_and(|e| !e.is_null()) {
            // Rare: read by the dialects' one reader of error bodies.
            call.error_type = error_type_of(&Value::from(&chunk));
            continue;
        }
        if call.response_id.is_none() {
            call.response_id = string_field(&chunk, "id");
        }
        if let Some(model) = non_empty_text(chunk.field("model")) {
            if call.response_model.as_deref() != Some(model) {
                call.response_model = Some(model.to_string());
            }
        }
        if let Some(usage) = chunk.field("usage") {
            read_usage(usage, call);
        }
        let choices = chunk.field("choices").and_then(JsonRead::items);
        for (position, choice) in choices.into_iter().flatten().enumerate() {
            let choice_index = as_count(choice.field("index")).unwrap_or(position as u64);
            let delta = choice.field("delta");
            if let Some(text) = delta
                .and_then(|d| d.field("content"))
                .and_then(JsonRead::text)
            {
                texts.entry(choice_index).or_default().push_str(text);
            }
            let fragments = delta
                .and_then(|d| d.field("tool_calls"))
                .and_then(JsonRead::items);
            for fragment in fragments.into_iter().flatten() {
                add_fragment(
                    &mut calls,
                    choice_index,
                    as_count(fragment.field("index")),
                    non_empty_text(fragment.field("id")),
                    fragment.field("function"),
                );
            }
            if let Some(function) = delta
                .and_then(|d| d.field("function_call"))
                .filter(|f| f.is_object())
            {
                // Legacy streamed function_call: one call per choice, no index, no id.
                add_fragment(&mut calls, choice_index, Some(0), None, Some(function));
            }
            if let Some(reason) = string_field(choice, "finish_reason") {
                finish.insert(choice_index, reason);
            }
        }
    }
    if !done {
        call.partial = true;
    }
    let texts: Vec<String> = texts.into_values().collect();
    call.output_text = join_texts(&texts, "\n");
    call.finish_reasons = finish.into_values().collect();
    call.tool_calls = calls
        .calls
        .into_iter()
        .map(|c| ToolCall {
            id: c.id,
            name: c.name,
            arguments: parse_arguments(&c.arguments),
        })
        .collect();
}

/// Joins a tool-call fragment (its `index`, `id` and `function`) to the call it continues.
fn add_fragment(
    calls: &mut FragmentedCalls,
    choice: u64,
    index: Option<u64>,
    id: Option<&str>,
    function: Option<&BorrowedJson<'_>>,
) {
    let slot = match calls.find(choice, index, id) {
        Some(slot) => slot,
        None => calls.begin(choice, index, id),
    };
    let Some(entry) = calls.calls.get_mut(slot) else {
        return;
    };
    let Some(function) = function else {
        return;
    };
    if let Some(name) = non_empty_text(function.field("name")) {
        // Servers that repeat the name on every fragment must not make it "readread".
        if entry.name.is_empty() {
            entry.name = name.to_string();
        }
    }
    match function.field("arguments") {
        Some(BorrowedJson::Str(piece)) => entry.arguments.push_str(piece),
        // Some servers send arguments as an object in one fragment (written as serde_json
        // writes it, keys sorted).
        Some(object @ BorrowedJson::Object(_)) => entry.arguments = object.compact_json(),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixture_exchange::{
        exchange, fixture, set_response_body, stream_len, tool_call_summary, truncate_body,
        truncate_stream,
    };
    use super::super::recognise;
    use super::*;
    use crate::http::Completeness;

    const SYSTEM: &str = "You are a careful test agent. Use the tools you are given.";
    const USER: &str = "Read /etc/hostname and list /tmp, please.";

    /// The recorded tool-call exchange with its response replaced by a stream of `chunks`
    /// (then `[DONE]`), recognised.
    fn recognise_chunks(chunks: &[serde_json::Value]) -> LlmCall {
        let mut body = String::new();
        for chunk in chunks {
            body.push_str(&format!("data: {chunk}\n\n"));
        }
        body.push_str("data: [DONE]\n\n");
        let mut ex = fixture("openai_chat/tools_stream");
        set_response_body(&mut ex, body.as_bytes());
        recognise(&ex).unwrap()
    }

    fn offered_names(call: &LlmCall) -> Vec<&str> {
        call.tools_offered.iter().map(|t| t.name.as_str()).collect()
    }

    fn scenario_calls() -> Vec<ToolCall> {
        vec![
            ToolCall {
                id: Some("call_1".into()),
                name: "read_file".into(),
                arguments: json!({"path": "/etc/hostname"}),
            },
            ToolCall {
                id: Some("call_2".into()),
                name: "run_command".into(),
                arguments: json!({"argv": ["ls", "-la", "/tmp"], "cwd": "/"}),
            },
        ]
    }

    #[test]
    fn streamed_tool_calls_are_joined_from_fragments_with_usage() {
        let call = recognise(&fixture("openai_chat/tools_stream")).unwrap();
        assert_eq!(call.api, LlmApi::OpenAiChatCompletions);
        assert_eq!(call.provider, "localhost");
        assert_eq!(call.operation, "chat");
        assert_eq!(call.request_model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(call.response_model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(call.response_id.as_deref(), Some("chatcmpl-mock-1"));
        assert_eq!(call.system_prompt.as_deref(), Some(SYSTEM));
        assert_eq!(call.last_user_message.as_deref(), Some(USER));
        assert!(call.tool_results.is_empty());
        assert_eq!(
            offered_names(&call),
            ["read_file", "run_command", "fetch_url"]
        );
        assert_eq!(
            call.tools_offered[0].description.as_deref(),
            Some("Read a file from the local disk and return its text.")
        );
        assert_eq!(call.tool_calls, scenario_calls());
        assert_eq!(call.output_text, None);
        assert_eq!(call.finish_reasons, ["tool_calls"]);
        // include_usage: the last chunk before [DONE] has no choices and carries the usage.
        assert_eq!(call.usage.input_tokens, Some(895 / 4));
        assert!(call.usage.output_tokens.is_some_and(|n| n > 0));
        assert_eq!(call.error_type, None);
        assert!(call.streamed);
        assert!(!call.partial);
    }

    #[test]
    fn parallel_calls_that_reuse_index_zero_are_told_apart_by_id() {
        let ex = fixture("openai_chat/tools_stream_reused_index");
        // The recording really does number both calls 0.
        let body = String::from_utf8_lossy(&ex.response.as_ref().unwrap().body).into_owned();
        assert!(body.contains(r#""index": 0, "id": "call_2""#));
        let call = recognise(&ex).unwrap();
        assert_eq!(call.request_model.as_deref(), Some("qwen2.5-coder"));
        assert_eq!(call.tool_calls, scenario_calls());
        assert_eq!(call.usage, Usage::default(), "no include_usage requested");
        assert!(!call.partial);
    }

    #[test]
    fn fragments_of_interleaved_calls_join_by_index_and_id() {
        // Hand-built chunks: ids repeated on every fragment by one server style, missing on
        // others, two calls interleaved at different indexes, a name repeated.
        let chunks = [
            json!({"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","function":{"name":"one","arguments":"{\"x\""}}]}}]}),
            json!({"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"two","arguments":""}}]}}]}),
            json!({"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]}),
            json!({"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","function":{"name":"two","arguments":"[1,"}}]}}]}),
            json!({"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"2]"}}]}}]}),
            json!({"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}),
        ];
        let call = recognise_chunks(&chunks);
        assert_eq!(
            call.tool_calls,
            [
                ToolCall {
                    id: Some("a".into()),
                    name: "one".into(),
                    arguments: json!({"x": 1})
                },
                ToolCall {
                    id: Some("b".into()),
                    name: "two".into(),
                    arguments: json!([1, 2])
                },
            ]
        );
        assert!(!call.partial);
    }

    /// Which call a fragment continues: by id the first of its choice that began with it (a
    /// later index does not matter), without one the last of its choice that began with its
    /// index; the same id in another choice is another call.
    #[test]
    fn fragments_find_their_call_by_id_first_then_by_the_latest_index() {
        let fragment = |choice: u64, fragment: serde_json::Value| json!({"id":"c","choices":[{"index":choice,"delta":{"tool_calls":[fragment]}}]});
        let chunks = [
            fragment(
                0,
                json!({"index":0,"id":"a","function":{"name":"one","arguments":"{\"x\""}}),
            ),
            fragment(0, json!({"index":0,"function":{"arguments":":1}"}})),
            fragment(
                0,
                json!({"index":0,"id":"b","function":{"name":"two","arguments":"["}}),
            ),
            fragment(0, json!({"index":0,"function":{"arguments":"2"}})),
            fragment(
                1,
                json!({"index":0,"id":"a","function":{"name":"three","arguments":"{}"}}),
            ),
            fragment(0, json!({"index":5,"id":"b","function":{"arguments":"]"}})),
        ];
        let call = recognise_chunks(&chunks);
        assert_eq!(
            tool_call_summary(&call),
            [
                (Some("a"), "one", &json!({"x": 1})),
                (Some("b"), "two", &json!([2])),
                (Some("a"), "three", &json!({})),
            ]
        );
    }

    /// A server streaming one call a chunk (tests/agents/hostile.py `huge-tool-call`): every
    /// call is its own, in order (what this costs: the `llm_recognise` bench).
    #[test]
    fn thousands_of_calls_one_a_chunk_are_each_kept_in_order() {
        let chunks: Vec<serde_json::Value> = (0..3000)
            .map(|i| {
                json!({"id":"c","choices":[{"index":0,"delta":{"tool_calls":[
                    {"index":i,"id":format!("call_{i}"),"function":{"name":format!("tool_{}", i % 97),"arguments":"{}"}}]}}]})
            })
            .collect();
        let call = recognise_chunks(&chunks);
        assert_eq!(call.tool_calls.len(), 3000);
        for (i, tool) in call.tool_calls.iter().enumerate() {
            assert_eq!(tool.id.as_deref(), Some(format!("call_{i}").as_str()));
            assert_eq!(tool.name, format!("tool_{}", i % 97));
        }
    }

    #[test]
    fn tool_results_after_the_last_assistant_turn_gzip_response() {
        let ex = fixture("openai_chat/results_json_gzip");
        let response = ex.response.as_ref().unwrap();
        assert_eq!(response.header("content-encoding"), Some("gzip"));
        let call = recognise(&ex).unwrap();
        assert_eq!(
            call.tool_results,
            [
                ToolResult {
                    call_id: Some("call_1".into()),
                    name: Some("read_file".into()),
                    content: "build-host-7\n".into(),
                    is_error: false,
                    arguments: None,
                },
                ToolResult {
                    call_id: Some("call_2".into()),
                    name: Some("run_command".into()),
                    content: "total 0\ndrwxrwxrwt 2 root root 40 .".into(),
                    is_error: false,
                    arguments: None,
                },
            ]
        );
        assert_eq!(call.last_user_message.as_deref(), Some(USER));
        assert_eq!(
            call.output_text.as_deref(),
            Some("All done. [results: read_file=build-host-7; run_command=total 0 drwxrwxrwt 2 root root 40 .]")
        );
        assert!(call.tool_calls.is_empty());
        assert_eq!(call.finish_reasons, ["stop"]);
        assert_eq!(call.response_id.as_deref(), Some("chatcmpl-mock-2"));
        assert_eq!(call.usage.input_tokens, Some(1338 / 4));
        assert!(!call.streamed);
        assert!(!call.partial);
    }

    #[test]
    fn content_parts_and_developer_messages() {
        let call = recognise(&fixture("openai_chat/hello_json")).unwrap();
        assert_eq!(call.system_prompt.as_deref(), Some("Be brief."));
        assert_eq!(call.last_user_message.as_deref(), Some("Say hello."));
        assert!(call.tools_offered.is_empty());
        assert_eq!(
            call.output_text.as_deref(),
            Some("Hello from the agentscope mock LLM. No tools were needed.")
        );
        assert_eq!(call.finish_reasons, ["stop"]);
        assert!(!call.streamed && !call.partial);
    }

    #[test]
    fn azure_deployment_names_the_model_and_the_provider() {
        let call = recognise(&fixture("openai_chat/azure_deployment_stream")).unwrap();
        assert_eq!(call.provider, "azure.ai.openai");
        assert_eq!(call.request_model.as_deref(), Some("gpt-4o-prod"));
        assert_eq!(call.response_model.as_deref(), Some("gpt-4o-prod"));
        let names: Vec<&str> = call.tool_calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["read_file", "run_command", "fetch_url"]);
        assert_eq!(
            call.tool_calls[0].arguments,
            json!({"path": "/srv/data/report.csv"})
        );
        assert_eq!(call.usage, Usage::default());
        assert!(call.streamed && !call.partial);
    }

    #[test]
    fn docs_example_stream_with_tool_call() {
        let call = recognise(&fixture("openai_chat/docs_stream_tool_call")).unwrap();
        assert_eq!(call.provider, "openai");
        assert_eq!(call.request_model.as_deref(), Some("gpt-4.1"));
        assert_eq!(
            call.last_user_message.as_deref(),
            Some("What is the weather like in Paris today?")
        );
        assert_eq!(
            call.tool_calls,
            [ToolCall {
                id: Some("call_DdmO9pD3xa9XTPNJ32zg2hcA".into()),
                name: "get_weather".into(),
                arguments: json!({"location": "Paris, France"}),
            }]
        );
        assert_eq!(call.finish_reasons, ["tool_calls"]);
        assert!(call.streamed && !call.partial);
    }

    #[test]
    fn a_stream_cut_mid_arguments_is_partial_and_keeps_the_raw_arguments() {
        let mut ex = fixture("openai_chat/tools_stream");
        // Keep the first call whole and the second's first argument fragment only.
        truncate_stream(&mut ex, 7);
        let call = recognise(&ex).unwrap();
        assert!(call.partial);
        assert_eq!(call.tool_calls.len(), 2);
        assert_eq!(
            call.tool_calls[0].arguments,
            json!({"path": "/etc/hostname"})
        );
        assert_eq!(call.tool_calls[1].name, "run_command");
        assert_eq!(call.tool_calls[1].arguments, json!("{\"argv\": [\"ls\","));
        assert!(call.finish_reasons.is_empty());
        assert_eq!(call.response_id.as_deref(), Some("chatcmpl-mock-1"));
    }

    #[test]
    fn a_stream_without_done_is_partial_even_when_the_framing_looked_complete() {
        let mut ex = fixture("openai_chat/tools_stream");
        let n = stream_len(&ex);
        truncate_stream(&mut ex, n - 1);
        ex.response.as_mut().unwrap().completeness = Completeness::Complete;
        let call = recognise(&ex).unwrap();
        assert!(call.partial);
        assert_eq!(call.tool_calls, scenario_calls());
    }

    #[test]
    fn a_cut_json_response_is_partial_with_the_request_fields() {
        let mut ex = fixture("openai_chat/hello_json");
        truncate_body(&mut ex, 40);
        let call = recognise(&ex).unwrap();
        assert!(call.partial);
        assert_eq!(call.output_text, None);
        assert_eq!(call.last_user_message.as_deref(), Some("Say hello."));
    }

    #[test]
    fn a_truncated_request_is_still_recognised_as_partial() {
        let full = fixture("openai_chat/tools_stream");
        let mut ex = full.clone();
        ex.request.body.truncate(300);
        ex.request.completeness = Completeness::Truncated;
        let call = recognise(&ex).unwrap();
        assert!(call.partial);
        assert_eq!(call.request_model, None);
        // The response still tells what the model did.
        assert_eq!(call.tool_calls, scenario_calls());
        assert_eq!(call.response_model.as_deref(), Some("gpt-4o-mini"));
    }

    #[test]
    fn error_responses_carry_the_error_type() {
        let body = br#"{"error":{"message":"Rate limit reached","type":"rate_limit_error","code":"rate_limit_exceeded"}}"#;
        let mut ex = exchange(
            "POST",
            "/v1/chat/completions",
            br#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
            Some(body.to_vec()),
        );
        ex.response.as_mut().unwrap().status = 429;
        let call = recognise(&ex).unwrap();
        assert_eq!(call.error_type.as_deref(), Some("rate_limit_error"));
        assert!(!call.streamed, "asked for a stream, got a JSON error");
        assert!(!call.partial);

        // A proxy's HTML error page: an error answer, not a cut one.
        let mut ex = ex.clone();
        let response = ex.response.as_mut().unwrap();
        response.status = 502;
        response.body = b"<html>Bad Gateway</html>".to_vec();
        let call = recognise(&ex).unwrap();
        assert_eq!(call.error_type.as_deref(), Some("502"));
        assert!(!call.partial);

        // An error in the middle of a stream.
        let mut ex = fixture("openai_chat/tools_stream");
        set_response_body(
            &mut ex,
            b"data: {\"error\":{\"type\":\"server_error\",\"message\":\"boom\"}}\n\ndata: [DONE]\n\n",
        );
        let call = recognise(&ex).unwrap();
        assert_eq!(call.error_type.as_deref(), Some("server_error"));
        assert!(call.tool_calls.is_empty());
    }

    #[test]
    fn odd_shapes_do_not_panic_and_keep_what_they_can() {
        let request = json!({
            "model": 7,
            "messages": [null, {"role": "user"}, {"role": "user", "content": null},
                         {"role": "assistant", "tool_calls": [null, {"id": 3}]},
                         {"role": "tool", "content": {"unexpected": true}},
                         {"role": "tool", "tool_call_id": "x", "content": [{"type": "text", "text": "ok"}]}],
            "tools": [null, {"type": "function"}, {"type": "function", "function": {"name": "f", "description": null}}]
        });
        let response = json!({"choices": [null, {"message": {"content": [1, {"text": "hi"}],
            "tool_calls": [{"function": {"name": "f", "arguments": {"already": "object"}}}]},
            "finish_reason": "stop"}], "usage": {"prompt_tokens": -1, "completion_tokens": "2"}});
        let ex = exchange(
            "POST",
            "/v1/chat/completions",
            request.to_string().as_bytes(),
            Some(response.to_string().into_bytes()),
        );
        let call = recognise(&ex).unwrap();
        assert_eq!(call.request_model, None);
        assert_eq!(call.tool_results.len(), 2);
        assert_eq!(call.tool_results[0].content, "");
        assert_eq!(call.tool_results[1].content, "ok");
        assert_eq!(offered_names(&call), ["f"]);
        assert_eq!(call.output_text.as_deref(), Some("hi"));
        assert_eq!(call.tool_calls[0].arguments, json!({"already": "object"}));
        assert_eq!(call.usage.input_tokens, None);
        assert!(!call.partial);
    }
}
