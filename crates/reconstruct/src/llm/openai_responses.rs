//! OpenAI Responses (`POST /v1/responses`).
//!
//! Conversation state lives in typed items: `input[]` holds messages (`role`, `content`),
//! `function_call` items the model made earlier and `function_call_output` items the agent
//! sends back, joined by `call_id`; `instructions` is the system prompt. The response's
//! `output[]` holds `message` items (`output_text` parts) and `function_call` items.
//!
//! Streams are semantic SSE events: `response.output_item.added` opens an item at an
//! `output_index`, `response.output_text.delta` and `response.function_call_arguments.delta`
//! grow it, the `.done` events and `response.output_item.done` state it whole, and one of
//! `response.completed`, `response.incomplete` or `response.failed` ends the stream with the
//! final response (id, model, usage, status). There is no `[DONE]`.
//!
//! The Realtime API (over WebSocket, [`crate::websocket::event_exchanges`]) shares the items
//! and most events; its stream ends with `response.done`.
//!
//! Finish reasons are the response `status` (`completed`, `failed`, `in_progress`), or the
//! `incomplete_details.reason` of an incomplete one (`max_output_tokens`, `content_filter`).

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::response_body::{self, ResponseBody, StreamMessage};
use super::{
    as_count, content_text, error_type_of, join_texts, non_empty_text, parse_arguments,
    result_text, role, string_field, succeeded, unparsed_body_mentions, LlmApi, LlmCall, ToolCall,
    ToolDefinition, ToolResult, Usage,
};
use crate::http::HttpExchange;
use crate::json_read::JsonRead;

/// `request` is the body read in place, or either tree for an exchange recognised by its shape.
pub(super) fn recognise<J: JsonRead>(
    exchange: &HttpExchange,
    request: Option<&J>,
    api: LlmApi,
) -> Option<LlmCall> {
    match &request {
        Some(body)
            if non_empty_text(body.field("model")).is_none() && body.field("input").is_none() =>
        {
            return None
        }
        None if !((exchange.request.path().ends_with("/v1/responses")
            || exchange.request.path().ends_with("/v1/realtime"))
            && unparsed_body_mentions(exchange, "\"input\"")) =>
        {
            return None
        }
        _ => {}
    }
    let mut call = LlmCall::new(api, "chat", exchange);
    if let Some(body) = &request {
        read_request(*body, &mut call);
        call.streamed = body.field("stream").and_then(J::flag).unwrap_or(false);
    }
    match response_body::read(exchange.response.as_ref()) {
        ResponseBody::Missing => {}
        ResponseBody::Document(body) => {
            call.streamed = false;
            match error_type_of(&body) {
                // An error body has only `error`; a failed response object has a status too.
                Some(error) if body.get("status").is_none() => call.error_type = Some(error),
                _ => read_response(&body, &mut call, true),
            }
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

fn item_type<J: JsonRead>(item: &J) -> &str {
    match item.field("type").and_then(J::text) {
        Some(kind) => kind,
        // Easy-input messages omit the type: `{"role": "user", "content": "..."}`.
        None if item.field("role").is_some() => "message",
        None => "",
    }
}

fn read_request<J: JsonRead>(body: &J, call: &mut LlmCall) {
    call.history = super::history::message_history(body, &["instructions", "input"]);
    call.request_model = string_field(body, "model");
    let mut system = Vec::new();
    // `instructions` is a string in requests; echoed responses may hold it as input items.
    if let Some(instructions) = body.field("instructions") {
        match instructions.items() {
            Some(items) => system.extend(
                items
                    .iter()
                    .filter_map(|i| i.field("content").and_then(content_text)),
            ),
            None => system.extend(content_text(instructions)),
        }
    }
    let input = body.field("input");
    if let Some(text) = input.and_then(J::text) {
        call.last_user_message = (!text.is_empty()).then(|| text.to_string());
    }
    let items = input.and_then(J::items).unwrap_or_default();
    system.extend(
        items
            .iter()
            .filter(|i| item_type(*i) == "message" && matches!(role(*i), "system" | "developer"))
            .filter_map(|i| i.field("content").and_then(content_text)),
    );
    call.system_prompt = join_texts(&system, "\n");
    if call.last_user_message.is_none() {
        call.last_user_message = items
            .iter()
            .rev()
            .filter(|i| item_type(*i) == "message" && role(*i) == "user")
            .find_map(|i| i.field("content").and_then(content_text));
    }

    let names: BTreeMap<&str, &str> = items
        .iter()
        .filter(|i| matches!(item_type(*i), "function_call" | "custom_tool_call"))
        .filter_map(|i| {
            Some((
                non_empty_text(i.field("call_id"))?,
                non_empty_text(i.field("name"))?,
            ))
        })
        .collect();
    // The outputs of the latest model turn: the items after the last message, whatever order
    // the agent interleaved calls and outputs in.
    for item in items.iter().rev() {
        match item_type(item) {
            "message" => break,
            "function_call_output" | "custom_tool_call_output" => {
                let call_id = string_field(item, "call_id");
                let name = call_id
                    .as_deref()
                    .and_then(|id| names.get(id))
                    .map(|n| n.to_string());
                call.tool_results.push(ToolResult {
                    call_id,
                    name,
                    content: item.field("output").map(result_text).unwrap_or_default(),
                    is_error: false,
                    arguments: None,
                });
            }
            _ => {}
        }
    }
    call.tool_results.reverse();

    for tool in body.field("tools").and_then(J::items).into_iter().flatten() {
        // Function and custom tools have a name; hosted tools (web_search, file_search, mcp)
        // are named by their MCP server label or their type.
        let name = string_field(tool, "name")
            .or_else(|| string_field(tool, "server_label"))
            .or_else(|| string_field(tool, "type"));
        if let Some(name) = name {
            call.tools_offered.push(ToolDefinition {
                name,
                description: string_field(tool, "description")
                    .or_else(|| string_field(tool, "server_description")),
            });
        }
    }
}

/// A response object: the non-streamed body, or the one a terminal stream event carries.
/// `with_output` is false when the stream's items were already read event by event and the
/// final object has no output of its own.
fn read_response(response: &Value, call: &mut LlmCall, with_output: bool) {
    if let Some(id) = string_field(response, "id") {
        call.response_id = Some(id);
    }
    if let Some(model) = string_field(response, "model") {
        call.response_model = Some(model);
    }
    if let Some(usage) = response.get("usage").filter(|u| u.is_object()) {
        call.usage = Usage {
            input_tokens: as_count(usage.get("input_tokens")),
            output_tokens: as_count(usage.get("output_tokens")),
            cache_read_input_tokens: as_count(
                usage
                    .get("input_tokens_details")
                    .and_then(|d| d.get("cached_tokens")),
            ),
            cache_creation_input_tokens: None,
        };
    }
    let reason = response
        .get("incomplete_details")
        .and_then(|d| string_field(d, "reason"))
        .or_else(|| string_field(response, "status"));
    call.finish_reasons = reason.into_iter().collect();
    if let Some(error) = error_type_of(response) {
        call.error_type = Some(error);
    }
    if with_output {
        let items: Vec<Value> = response
            .get("output")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let (text, calls) = read_output(items.iter());
        call.output_text = text;
        call.tool_calls = calls;
    }
}

/// Output text and tool calls of output items, in order.
fn read_output<'a>(items: impl Iterator<Item = &'a Value>) -> (Option<String>, Vec<ToolCall>) {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for item in items {
        match item_type(item) {
            "message" => texts.extend(item.get("content").and_then(content_text)),
            "function_call" | "mcp_call" => calls.push(ToolCall {
                // `call_id` is what the agent's function_call_output will name; MCP calls run
                // at OpenAI and only have the item id.
                id: string_field(item, "call_id").or_else(|| string_field(item, "id")),
                name: string_field(item, "name").unwrap_or_default(),
                arguments: arguments_of(item.get("arguments")),
            }),
            "custom_tool_call" => calls.push(ToolCall {
                id: string_field(item, "call_id"),
                name: string_field(item, "name").unwrap_or_default(),
                arguments: arguments_of(item.get("input")),
            }),
            _ => {}
        }
    }
    (join_texts(&texts, "\n"), calls)
}

fn arguments_of(value: Option<&Value>) -> Value {
    match value {
        Some(Value::String(raw)) => parse_arguments(raw),
        Some(other) => other.clone(),
        None => Value::Null,
    }
}

fn read_stream(messages: &[StreamMessage<'_>], call: &mut LlmCall) {
    // Output items by output_index, each kept as a (partial) item object.
    let mut items: BTreeMap<u64, Value> = BTreeMap::new();
    // The output_index of the item last stored with each id, for events that name their item
    // by id only: walking the items for each such event was quadratic in a hostile stream's
    // length (every delta without an index adds an item).
    let mut index_of_id: HashMap<String, u64> = HashMap::new();
    let mut terminal = false;
    let mut final_has_output = false;
    for message in messages {
        let Some(event) = message.json() else {
            call.partial = true;
            continue;
        };
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .or(message.event)
            .unwrap_or("");
        let index = as_count(event.get("output_index")).unwrap_or_else(|| {
            // Without an index, the item with that id (if it still has it), else a new one.
            non_empty_text(event.get("item_id"))
                .and_then(|id| {
                    index_of_id.get(id).copied().filter(|index| {
                        items
                            .get(index)
                            .and_then(|item| non_empty_text(item.get("id")))
                            == Some(id)
                    })
                })
                .unwrap_or_else(|| items.keys().next_back().map_or(0, |k| k + 1))
        });
        match kind {
            "response.created" | "response.in_progress" => {
                if let Some(response) = event.get("response") {
                    read_response(response, call, false);
                    call.finish_reasons.clear();
                }
            }
            "response.output_item.added" | "response.output_item.done" => {
                if let Some(item) = event.get("item").filter(|i| i.is_object()) {
                    if let Some(id) = non_empty_text(item.get("id")) {
                        index_of_id.insert(id.to_string(), index);
                    }
                    items.insert(index, item.clone());
                }
            }
            // `response.text.delta`: the Realtime API's beta name for the same event.
            "response.output_text.delta" | "response.text.delta" => {
                let delta = event.get("delta").and_then(Value::as_str).unwrap_or("");
                let item = items
                    .entry(index)
                    .or_insert_with(|| serde_json::json!({"type": "message"}));
                append_text(item, delta);
            }
            "response.output_text.done" => {
                if let Some(text) = event.get("text").and_then(Value::as_str) {
                    let item = items
                        .entry(index)
                        .or_insert_with(|| serde_json::json!({"type": "message"}));
                    set_text(item, text.to_string());
                }
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                let delta = event.get("delta").and_then(Value::as_str).unwrap_or("");
                let item = items
                    .entry(index)
                    .or_insert_with(|| serde_json::json!({"type": "function_call"}));
                let field = arguments_field(item);
                append_field(item, field, delta);
            }
            "response.function_call_arguments.done" | "response.custom_tool_call_input.done" => {
                let item = items
                    .entry(index)
                    .or_insert_with(|| serde_json::json!({"type": "function_call"}));
                let field = arguments_field(item);
                if let Some(whole) = event.get("arguments").or_else(|| event.get("input")) {
                    set_field(item, field, whole.clone());
                }
            }
            // `response.done`: the Realtime API's one terminal event, whatever the status.
            "response.completed" | "response.incomplete" | "response.failed" | "response.done" => {
                terminal = true;
                if let Some(response) = event.get("response") {
                    final_has_output = response
                        .get("output")
                        .and_then(Value::as_array)
                        .is_some_and(|o| !o.is_empty());
                    read_response(response, call, final_has_output);
                }
            }
            "error" => {
                terminal = true;
                // {"type": "error", "code": ..., "message": ...}
                call.error_type =
                    string_field(&event, "code").or_else(|| Some("error".to_string()));
            }
            _ => {}
        }
    }
    if !final_has_output {
        let (text, calls) = read_output(items.values());
        call.output_text = text;
        call.tool_calls = calls;
    }
    if !terminal {
        call.partial = true;
    }
}

fn arguments_field(item: &Value) -> &'static str {
    if item_type(item) == "custom_tool_call" {
        "input"
    } else {
        "arguments"
    }
}

fn content_text_of(item: &Value) -> String {
    item.get("content")
        .and_then(content_text)
        .unwrap_or_default()
}

/// Adds a delta to an item's text. Written in place once the item's content is the one text
/// part deltas leave: rebuilding the whole text for each delta was quadratic in its length (a
/// long answer streams thousands of deltas; a hostile one, a 32 MiB body of one-byte deltas).
fn append_text(item: &mut Value, delta: &str) {
    if let Some(Value::String(text)) = item
        .get_mut("content")
        .and_then(Value::as_array_mut)
        .filter(|parts| parts.len() == 1)
        .and_then(|parts| parts.first_mut())
        .filter(|part| part.get("type").and_then(Value::as_str) == Some("output_text"))
        .and_then(|part| part.get_mut("text"))
    {
        text.push_str(delta);
        return;
    }
    let text = format!("{}{delta}", content_text_of(item));
    set_text(item, text);
}

/// Adds a delta to an item's string `field` in place; a field that is not a string yet
/// becomes the delta (as the arguments of an item announced without them).
fn append_field(item: &mut Value, field: &str, delta: &str) {
    if let Some(Value::String(grown)) = item.get_mut(field) {
        grown.push_str(delta);
        return;
    }
    set_field(item, field, Value::String(delta.to_string()));
}

fn set_text(item: &mut Value, text: String) {
    set_field(
        item,
        "content",
        serde_json::json!([{ "type": "output_text", "text": text }]),
    );
}

fn set_field(item: &mut Value, field: &str, value: Value) {
    if let Some(object) = item.as_object_mut() {
        object.insert(field.to_string(), value);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixture_exchange::{
        exchange, fixture, set_response_body, stream_len, tool_call_summary, truncate_stream,
    };
    use super::super::recognise;
    use super::*;

    const SYSTEM: &str = "You are a careful test agent. Use the tools you are given.";

    #[test]
    fn streamed_function_calls_with_instructions_and_usage() {
        let call = recognise(&fixture("openai_responses/tools_stream")).unwrap();
        assert_eq!(call.api, LlmApi::OpenAiResponses);
        assert_eq!(call.operation, "chat");
        assert_eq!(call.provider, "localhost");
        assert_eq!(call.request_model.as_deref(), Some("gpt-4.1"));
        assert_eq!(call.response_model.as_deref(), Some("gpt-4.1"));
        assert_eq!(call.response_id.as_deref(), Some("resp_mock_3"));
        assert_eq!(call.system_prompt.as_deref(), Some(SYSTEM));
        assert_eq!(
            call.last_user_message.as_deref(),
            Some("Read /etc/hostname and list /tmp, please.")
        );
        let offered: Vec<_> = call.tools_offered.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(offered, ["read_file", "run_command", "fetch_url"]);
        assert_eq!(
            call.tools_offered[2].description.as_deref(),
            Some("Open a TCP connection to host:port and return the reply.")
        );
        assert_eq!(
            call.tool_calls,
            [
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
        );
        assert_eq!(call.output_text, None);
        assert_eq!(call.finish_reasons, ["completed"]);
        assert_eq!(call.usage.input_tokens, Some(822 / 4));
        assert!(call.usage.output_tokens.is_some());
        assert!(call.streamed && !call.partial);
        assert!(call.tool_results.is_empty());
    }

    #[test]
    fn function_call_outputs_join_their_calls_by_call_id() {
        let call = recognise(&fixture("openai_responses/results_json")).unwrap();
        assert_eq!(
            call.tool_results,
            [
                ToolResult {
                    call_id: Some("call_1".into()),
                    name: Some("read_file".into()),
                    content: "build-host-7".into(),
                    is_error: false,
                    arguments: None,
                },
                ToolResult {
                    call_id: Some("call_2".into()),
                    name: Some("run_command".into()),
                    content: "total 0".into(),
                    is_error: false,
                    arguments: None,
                },
            ]
        );
        assert_eq!(
            call.output_text.as_deref(),
            Some("All done. [results: read_file=build-host-7; run_command=total 0]")
        );
        assert!(call.tool_calls.is_empty());
        assert_eq!(call.response_id.as_deref(), Some("resp_mock_4"));
        assert_eq!(call.finish_reasons, ["completed"]);
        assert!(!call.streamed && !call.partial);
    }

    #[test]
    fn a_string_input_streams_text() {
        let call = recognise(&fixture("openai_responses/text_stream")).unwrap();
        assert_eq!(call.last_user_message.as_deref(), Some("Say hello."));
        assert_eq!(call.system_prompt, None);
        assert_eq!(
            call.output_text.as_deref(),
            Some("Hello from the agentscope mock LLM. No tools were needed.")
        );
        assert!(call.tool_calls.is_empty() && call.tools_offered.is_empty());
        assert!(call.streamed && !call.partial);
    }

    #[test]
    fn docs_example_function_call() {
        let call = recognise(&fixture("openai_responses/docs_function_call")).unwrap();
        assert_eq!(call.provider, "openai");
        assert_eq!(
            call.last_user_message.as_deref(),
            Some("What is the weather like in Paris today?")
        );
        assert_eq!(
            call.tools_offered,
            [ToolDefinition {
                name: "get_weather".into(),
                description: Some("Get current temperature for a given location.".into()),
            }]
        );
        assert_eq!(
            call.tool_calls,
            [ToolCall {
                id: Some("call_12345xyz".into()),
                name: "get_weather".into(),
                arguments: json!({"location": "Paris, France"}),
            }]
        );
        assert!(!call.partial);
    }

    #[test]
    fn docs_example_streamed_function_call() {
        let call = recognise(&fixture("openai_responses/docs_stream_function_call")).unwrap();
        assert_eq!(
            call.tool_calls,
            [ToolCall {
                id: Some("call_1234xyz".into()),
                name: "get_weather".into(),
                arguments: json!({"location": "Paris, France"}),
            }]
        );
        assert_eq!(call.response_id.as_deref(), Some("resp_1234xyz"));
        assert!(call.streamed && !call.partial);
    }

    /// Deltas are joined in order into the item they name, however many: a message's text
    /// announced with an empty part (and the part's other fields), a function call's arguments.
    #[test]
    fn thousands_of_deltas_join_into_their_items() {
        let mut body = String::new();
        let mut event = |kind: &str, data: serde_json::Value| {
            body.push_str(&format!("event: {kind}\ndata: {data}\n\n"));
        };
        event(
            "response.created",
            json!({"type":"response.created","response":{"id":"resp_d","model":"gpt-4.1","output":[]}}),
        );
        event(
            "response.output_item.added",
            json!({"type":"response.output_item.added","output_index":0,
            "item":{"type":"message","id":"msg_1","content":[{"type":"output_text","text":"","annotations":[]}]}}),
        );
        let mut text = String::new();
        for i in 0..2000 {
            let delta = format!("w{i} ");
            text.push_str(&delta);
            event(
                "response.output_text.delta",
                json!({"type":"response.output_text.delta","output_index":0,"delta":delta}),
            );
        }
        event(
            "response.output_item.added",
            json!({"type":"response.output_item.added","output_index":1,
            "item":{"type":"function_call","id":"fc_1","call_id":"call_1","name":"read_file","arguments":""}}),
        );
        let mut arguments = String::from("{\"paths\": [");
        event(
            "response.function_call_arguments.delta",
            json!({"type":"response.function_call_arguments.delta","output_index":1,"delta":arguments.clone()}),
        );
        for i in 0..2000 {
            let delta = format!("{}\"/f{i}\"", if i == 0 { "" } else { "," });
            arguments.push_str(&delta);
            event(
                "response.function_call_arguments.delta",
                json!({"type":"response.function_call_arguments.delta","output_index":1,"delta":delta}),
            );
        }
        arguments.push_str("]}");
        event(
            "response.function_call_arguments.delta",
            json!({"type":"response.function_call_arguments.delta","output_index":1,"delta":"]}"}),
        );
        event(
            "response.completed",
            json!({"type":"response.completed","response":{"id":"resp_d","model":"gpt-4.1","status":"completed","output":[]}}),
        );
        let mut ex = fixture("openai_responses/tools_stream");
        set_response_body(&mut ex, body.as_bytes());
        let call = recognise(&ex).unwrap();
        assert_eq!(call.output_text.as_deref(), Some(text.as_str()));
        assert_eq!(call.tool_calls.len(), 1);
        assert_eq!(call.tool_calls[0].id.as_deref(), Some("call_1"));
        assert_eq!(
            call.tool_calls[0].arguments,
            serde_json::from_str::<serde_json::Value>(&arguments).unwrap()
        );
        assert!(!call.partial);
    }

    /// Events without an `output_index` find their item by `item_id` (interleaved across two
    /// calls here); one naming no known item starts a new one; an id the item at its place no
    /// longer has (the item was replaced) finds nothing there.
    #[test]
    fn events_without_an_index_find_their_item_by_id() {
        let mut body = String::new();
        let mut event = |data: serde_json::Value| {
            body.push_str(&format!(
                "event: {}\ndata: {data}\n\n",
                data["type"].as_str().unwrap()
            ));
        };
        for (id, call_id, name) in [
            ("fc_1", "call_1", "read_file"),
            ("fc_2", "call_2", "list_dir"),
        ] {
            event(json!({"type":"response.output_item.added",
                "item":{"type":"function_call","id":id,"call_id":call_id,"name":name,"arguments":""}}));
        }
        for (id, delta) in [
            ("fc_2", "{\"path\""),
            ("fc_1", "{\"path\": \"/etc/hostname\"}"),
            ("fc_2", ": \"/tmp\"}"),
        ] {
            event(
                json!({"type":"response.function_call_arguments.delta","item_id":id,"delta":delta}),
            );
        }
        // An unknown id: a new (message) item of its own.
        event(json!({"type":"response.output_text.delta","item_id":"msg_9","delta":"done"}));
        // The first item replaced at its place by one without its id: fc_1 is gone.
        event(json!({"type":"response.output_item.done","output_index":0,
            "item":{"type":"function_call","id":"fc_3","call_id":"call_3","name":"read_file","arguments":"{}"}}));
        event(json!({"type":"response.output_text.delta","item_id":"fc_1","delta":" twice"}));
        event(
            json!({"type":"response.completed","response":{"id":"resp_i","status":"completed","output":[]}}),
        );
        let mut ex = fixture("openai_responses/tools_stream");
        set_response_body(&mut ex, body.as_bytes());
        let call = recognise(&ex).unwrap();
        assert_eq!(
            tool_call_summary(&call),
            [
                (Some("call_3"), "read_file", &json!({})),
                (Some("call_2"), "list_dir", &json!({"path": "/tmp"})),
            ]
        );
        assert_eq!(call.output_text.as_deref(), Some("done\n twice"));
        assert!(!call.partial);
    }

    #[test]
    fn a_stream_cut_before_completion_keeps_the_argument_deltas() {
        let mut ex = fixture("openai_responses/tools_stream");
        // response.created, in_progress, item added, two argument deltas.
        truncate_stream(&mut ex, 5);
        let call = recognise(&ex).unwrap();
        assert!(call.partial);
        assert_eq!(call.response_id.as_deref(), Some("resp_mock_3"));
        assert_eq!(call.tool_calls.len(), 1);
        assert_eq!(call.tool_calls[0].id.as_deref(), Some("call_1"));
        assert_eq!(call.tool_calls[0].arguments, json!("{\"path\": \"/etc/hos"));
        assert_eq!(call.usage, Usage::default());
        assert!(call.finish_reasons.is_empty());

        let mut ex = fixture("openai_responses/tools_stream");
        let n = stream_len(&ex);
        truncate_stream(&mut ex, n - 1);
        let call = recognise(&ex).unwrap();
        assert!(call.partial);
        assert_eq!(
            call.tool_calls.len(),
            2,
            "both items were done before the cut"
        );
        assert_eq!(call.tool_calls[1].arguments["cwd"], json!("/"));
    }

    #[test]
    fn interleaved_calls_and_outputs_all_count_as_the_latest_results() {
        let request = json!({"model": "m", "input": [
            {"role": "user", "content": "go"},
            {"type": "function_call", "call_id": "a", "name": "one", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "a", "output": "1"},
            {"type": "function_call", "call_id": "b", "name": "two", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "b",
             "output": [{"type": "input_text", "text": "2"}]},
            {"type": "function_call_output", "call_id": "zzz", "output": {"odd": true}}
        ]});
        let ex = exchange(
            "POST",
            "/v1/responses",
            request.to_string().as_bytes(),
            None,
        );
        let call = recognise(&ex).unwrap();
        let results: Vec<_> = call
            .tool_results
            .iter()
            .map(|r| (r.call_id.as_deref(), r.name.as_deref(), r.content.as_str()))
            .collect();
        assert_eq!(
            results,
            [
                (Some("a"), Some("one"), "1"),
                (Some("b"), Some("two"), "2"),
                (Some("zzz"), None, "{\"odd\":true}"),
            ]
        );
        assert!(call.partial, "no response");
    }

    #[test]
    fn failed_and_error_responses() {
        let request = br#"{"model":"gpt-4.1","input":"hi"}"#;
        let failed = json!({"id": "resp_1", "object": "response", "status": "failed",
            "error": {"code": "server_error", "message": "x"}, "output": []});
        let ex = exchange(
            "POST",
            "/v1/responses",
            request,
            Some(failed.to_string().into_bytes()),
        );
        let call = recognise(&ex).unwrap();
        assert_eq!(call.error_type.as_deref(), Some("server_error"));
        assert_eq!(call.finish_reasons, ["failed"]);
        assert_eq!(call.response_id.as_deref(), Some("resp_1"));

        let error = json!({"error": {"type": "invalid_request_error", "message": "bad"}});
        let mut ex = exchange(
            "POST",
            "/v1/responses",
            request,
            Some(error.to_string().into_bytes()),
        );
        ex.response.as_mut().unwrap().status = 400;
        let call = recognise(&ex).unwrap();
        assert_eq!(call.error_type.as_deref(), Some("invalid_request_error"));
        assert!(call.finish_reasons.is_empty());
        assert!(!call.partial);
    }

    #[test]
    fn incomplete_responses_report_the_reason() {
        let body = json!({"id": "r", "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
            "output": [{"type": "message", "role": "assistant",
                        "content": [{"type": "output_text", "text": "Once upon"}]}]});
        let ex = exchange(
            "POST",
            "/v1/responses",
            br#"{"model":"m","input":"x"}"#,
            Some(body.to_string().into_bytes()),
        );
        let call = recognise(&ex).unwrap();
        assert_eq!(call.finish_reasons, ["max_output_tokens"]);
        assert_eq!(call.output_text.as_deref(), Some("Once upon"));
    }
}
