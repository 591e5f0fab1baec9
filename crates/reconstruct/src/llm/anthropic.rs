//! Anthropic Messages (`POST /v1/messages`).
//!
//! The system prompt is top-level `system` (a string or text blocks); messages hold content
//! blocks. The model asks for tools with `tool_use` blocks (`id`, `name`, `input`); the agent
//! answers in the next user message with `tool_result` blocks (`tool_use_id`, `content`,
//! `is_error`). Streams are SSE: `message_start` (id, model, input usage), per block
//! `content_block_start` → `content_block_delta` (`text_delta`, `input_json_delta` whose
//! `partial_json` pieces join into the tool input) → `content_block_stop`, then
//! `message_delta` (stop_reason, output usage) and `message_stop`, which ends the stream.
//! Input usage counts cache reads and writes too (they are reported apart).

use std::collections::BTreeMap;

use serde_json::Value;

use super::response_body::{self, ResponseBody, StreamMessage};
use super::{
    as_count, content_text, error_type_of, join_texts, non_empty_text, parse_arguments, role,
    string_field, succeeded, unparsed_body_mentions, LlmApi, LlmCall, ToolCall, ToolDefinition,
    ToolResult, Usage,
};
use crate::http::HttpExchange;
use crate::json_read::JsonRead;

/// `request` is the body read in place, or either tree for an exchange recognised by its shape.
pub(super) fn recognise<J: JsonRead>(
    exchange: &HttpExchange,
    request: Option<&J>,
) -> Option<LlmCall> {
    match &request {
        Some(body) if body.field("messages").and_then(J::items).is_none() => return None,
        None if !unparsed_body_mentions(exchange, "\"messages\"") => return None,
        _ => {}
    }
    let mut call = LlmCall::new(LlmApi::AnthropicMessages, "chat", exchange);
    if let Some(body) = &request {
        read_request(*body, &mut call);
        call.streamed = body.field("stream").and_then(J::flag).unwrap_or(false);
    }
    match response_body::read(exchange.response.as_ref()) {
        ResponseBody::Missing => {}
        ResponseBody::Document(body) => {
            call.streamed = false;
            read_message(&body, &mut call);
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

fn blocks<J: JsonRead>(message: &J) -> &[J] {
    message
        .field("content")
        .and_then(J::items)
        .unwrap_or_default()
}

fn block_type<J: JsonRead>(block: &J) -> &str {
    block.field("type").and_then(J::text).unwrap_or("")
}

fn read_request<J: JsonRead>(body: &J, call: &mut LlmCall) {
    call.history = super::history::message_history(body, &["system", "messages"]);
    call.request_model = string_field(body, "model");
    call.system_prompt = body.field("system").and_then(content_text);
    let messages = body
        .field("messages")
        .and_then(J::items)
        .unwrap_or_default();
    call.last_user_message = messages
        .iter()
        .rev()
        .filter(|m| role(*m) == "user")
        .find_map(|m| m.field("content").and_then(content_text));

    let names: BTreeMap<&str, &str> = messages
        .iter()
        .filter(|m| role(*m) == "assistant")
        .flat_map(blocks)
        .filter(|b| matches!(block_type(*b), "tool_use" | "server_tool_use"))
        .filter_map(|b| {
            Some((
                non_empty_text(b.field("id"))?,
                non_empty_text(b.field("name"))?,
            ))
        })
        .collect();
    let after_assistant = messages
        .iter()
        .rposition(|m| role(m) == "assistant")
        .map_or(0, |i| i + 1);
    for block in messages
        .get(after_assistant..)
        .unwrap_or_default()
        .iter()
        .filter(|m| role(*m) == "user")
        .flat_map(blocks)
        .filter(|b| block_type(*b) == "tool_result")
    {
        let call_id = string_field(block, "tool_use_id");
        call.tool_results.push(ToolResult {
            name: call_id
                .as_deref()
                .and_then(|id| names.get(id))
                .map(|n| n.to_string()),
            call_id,
            content: block
                .field("content")
                .and_then(content_text)
                .unwrap_or_default(),
            is_error: block.field("is_error").and_then(J::flag).unwrap_or(false),
            arguments: None,
        });
    }

    for tool in body.field("tools").and_then(J::items).into_iter().flatten() {
        // Server tools (web_search, code_execution) have a name and a versioned type.
        if let Some(name) = string_field(tool, "name").or_else(|| string_field(tool, "type")) {
            call.tools_offered.push(ToolDefinition {
                name,
                description: string_field(tool, "description"),
            });
        }
    }
}

/// Folds a `usage` object into `usage`: fields it has replace earlier ones (message_delta
/// usage is cumulative), cache reads and writes are added into the input total.
fn read_usage(value: &Value, usage: &mut Usage, base_input: &mut Option<u64>) {
    if !value.is_object() {
        return;
    }
    if let Some(n) = as_count(value.get("input_tokens")) {
        *base_input = Some(n);
    }
    if let Some(n) = as_count(value.get("output_tokens")) {
        usage.output_tokens = Some(n);
    }
    if let Some(n) = as_count(value.get("cache_read_input_tokens")) {
        usage.cache_read_input_tokens = Some(n);
    }
    if let Some(n) = as_count(value.get("cache_creation_input_tokens")) {
        usage.cache_creation_input_tokens = Some(n);
    }
    usage.input_tokens = base_input.map(|n| {
        n.saturating_add(usage.cache_read_input_tokens.unwrap_or(0))
            .saturating_add(usage.cache_creation_input_tokens.unwrap_or(0))
    });
}

fn tool_call(block: &Value, arguments: Value) -> ToolCall {
    ToolCall {
        id: string_field(block, "id"),
        name: string_field(block, "name").unwrap_or_default(),
        arguments,
    }
}

/// A non-streamed message, or an error body.
fn read_message(body: &Value, call: &mut LlmCall) {
    if let Some(error) = error_type_of(body) {
        call.error_type = Some(error);
        return;
    }
    call.response_id = string_field(body, "id");
    call.response_model = string_field(body, "model");
    let mut texts = Vec::new();
    for block in blocks(body) {
        match block_type(block) {
            "text" => texts.extend(block.get("text").and_then(Value::as_str)),
            "tool_use" | "server_tool_use" => {
                let input = block.get("input").cloned().unwrap_or(Value::Null);
                call.tool_calls.push(tool_call(block, input));
            }
            _ => {}
        }
    }
    call.output_text = join_texts(&texts, "\n");
    call.finish_reasons = string_field(body, "stop_reason").into_iter().collect();
    let mut base_input = None;
    if let Some(usage) = body.get("usage") {
        read_usage(usage, &mut call.usage, &mut base_input);
    }
}

/// A content block being streamed.
enum StreamedBlock {
    Text(String),
    Tool {
        start: Value,
        partial_json: String,
        had_delta: bool,
    },
    Other,
}

fn read_stream(messages: &[StreamMessage<'_>], call: &mut LlmCall) {
    let mut blocks: BTreeMap<u64, StreamedBlock> = BTreeMap::new();
    let mut base_input = None;
    let mut stopped = false;
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
        let index = as_count(event.get("index")).unwrap_or(0);
        match kind {
            "message_start" => {
                let start = event.get("message").unwrap_or(&Value::Null);
                call.response_id = string_field(start, "id");
                call.response_model = string_field(start, "model");
                if let Some(usage) = start.get("usage") {
                    read_usage(usage, &mut call.usage, &mut base_input);
                }
            }
            "content_block_start" => {
                let block = event.get("content_block").unwrap_or(&Value::Null);
                let streamed = match block_type(block) {
                    "text" => StreamedBlock::Text(
                        block
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    ),
                    "tool_use" | "server_tool_use" => StreamedBlock::Tool {
                        start: block.clone(),
                        partial_json: String::new(),
                        had_delta: false,
                    },
                    _ => StreamedBlock::Other,
                };
                blocks.insert(index, streamed);
            }
            "content_block_delta" => {
                let delta = event.get("delta").unwrap_or(&Value::Null);
                match (blocks.get_mut(&index), block_type(delta)) {
                    (Some(StreamedBlock::Text(text)), "text_delta") => {
                        text.push_str(delta.get("text").and_then(Value::as_str).unwrap_or(""));
                    }
                    (
                        Some(StreamedBlock::Tool {
                            partial_json,
                            had_delta,
                            ..
                        }),
                        "input_json_delta",
                    ) => {
                        *had_delta = true;
                        partial_json.push_str(
                            delta
                                .get("partial_json")
                                .and_then(Value::as_str)
                                .unwrap_or(""),
                        );
                    }
                    // A delta for a block whose start was not seen.
                    (None, _) => call.partial = true,
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = event
                    .get("delta")
                    .and_then(|d| string_field(d, "stop_reason"))
                {
                    call.finish_reasons = vec![reason];
                }
                if let Some(usage) = event.get("usage") {
                    read_usage(usage, &mut call.usage, &mut base_input);
                }
            }
            "message_stop" => stopped = true,
            "error" => {
                call.error_type = error_type_of(&event);
                stopped = true;
            }
            _ => {}
        }
    }
    if !stopped {
        call.partial = true;
    }
    let mut texts = Vec::new();
    for block in blocks.into_values() {
        match block {
            StreamedBlock::Text(text) => texts.push(text),
            StreamedBlock::Tool {
                start,
                partial_json,
                had_delta,
            } => {
                // No input_json_delta means the input was whole in content_block_start.
                let arguments = if had_delta {
                    parse_arguments(&partial_json)
                } else {
                    start.get("input").cloned().unwrap_or(Value::Null)
                };
                call.tool_calls.push(tool_call(&start, arguments));
            }
            StreamedBlock::Other => {}
        }
    }
    call.output_text = join_texts(&texts, "\n");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixture_exchange::{exchange, fixture, set_response_body, truncate_stream};
    use super::super::recognise;
    use super::*;

    const SYSTEM: &str = "You are a careful test agent. Use the tools you are given.";
    const USER: &str = "Read /etc/hostname and list /tmp, please.";

    fn scenario_calls() -> Vec<ToolCall> {
        vec![
            ToolCall {
                id: Some("toolu_mock_1".into()),
                name: "read_file".into(),
                arguments: json!({"path": "/etc/hostname"}),
            },
            ToolCall {
                id: Some("toolu_mock_2".into()),
                name: "run_command".into(),
                arguments: json!({"argv": ["ls", "-la", "/tmp"], "cwd": "/"}),
            },
        ]
    }

    #[test]
    fn streamed_tool_use_joins_input_json_deltas() {
        let call = recognise(&fixture("anthropic/tools_stream")).unwrap();
        assert_eq!(call.api, LlmApi::AnthropicMessages);
        assert_eq!(call.provider, "localhost");
        assert_eq!(call.operation, "chat");
        assert_eq!(call.request_model.as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(call.response_model.as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(call.response_id.as_deref(), Some("msg_mock_5"));
        assert_eq!(call.system_prompt.as_deref(), Some(SYSTEM));
        assert_eq!(call.last_user_message.as_deref(), Some(USER));
        let offered: Vec<_> = call.tools_offered.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(offered, ["read_file", "run_command", "fetch_url"]);
        assert_eq!(
            call.tools_offered[1].description.as_deref(),
            Some("Run a command (argv list) and return its output.")
        );
        assert_eq!(call.tool_calls, scenario_calls());
        assert_eq!(call.output_text.as_deref(), Some("I will use 2 tool(s)."));
        assert_eq!(call.finish_reasons, ["tool_use"]);
        assert_eq!(call.usage.input_tokens, Some(761 / 4));
        assert_eq!(
            call.usage.output_tokens,
            Some(68),
            "message_delta's cumulative count"
        );
        assert!(call.tool_results.is_empty());
        assert!(call.streamed && !call.partial);
    }

    #[test]
    fn tool_results_with_is_error_and_system_blocks() {
        let call = recognise(&fixture("anthropic/results_stream")).unwrap();
        assert_eq!(
            call.system_prompt.as_deref(),
            Some(&*format!("{SYSTEM}\nAnswer in one line."))
        );
        assert_eq!(call.last_user_message.as_deref(), Some(USER));
        assert_eq!(
            call.tool_results,
            [
                ToolResult {
                    call_id: Some("toolu_mock_1".into()),
                    name: Some("read_file".into()),
                    content: "build-host-7".into(),
                    is_error: false,
                    arguments: None,
                },
                ToolResult {
                    call_id: Some("toolu_mock_2".into()),
                    name: Some("run_command".into()),
                    content: "ls: permission denied".into(),
                    is_error: true,
                    arguments: None,
                },
            ]
        );
        assert_eq!(
            call.output_text.as_deref(),
            Some("All done. [results: read_file=build-host-7; run_command=ls: permission denied]")
        );
        assert!(call.tool_calls.is_empty());
        assert_eq!(call.finish_reasons, ["end_turn"]);
        assert!(call.streamed && !call.partial);
    }

    #[test]
    fn non_streamed_message_with_text_and_tool_use() {
        let call = recognise(&fixture("anthropic/tools_json")).unwrap();
        assert_eq!(call.request_model.as_deref(), Some("claude-haiku-4-5"));
        assert_eq!(call.last_user_message.as_deref(), Some(USER));
        let calls: Vec<_> = call
            .tool_calls
            .iter()
            .map(|c| (c.id.as_deref(), c.name.as_str()))
            .collect();
        assert_eq!(
            calls,
            [
                (Some("toolu_mock_1"), "read_file"),
                (Some("toolu_mock_2"), "run_command"),
                (Some("toolu_mock_3"), "fetch_url"),
            ]
        );
        assert_eq!(
            call.tool_calls[0].arguments,
            json!({"path": "/home/agent/.ssh/id_rsa"})
        );
        assert_eq!(
            call.tool_calls[2].arguments,
            json!({"host": "127.0.0.1", "port": 9})
        );
        assert_eq!(call.output_text.as_deref(), Some("I will use 3 tool(s)."));
        assert_eq!(call.finish_reasons, ["tool_use"]);
        assert_eq!(call.usage.input_tokens, Some(825 / 4));
        assert!(!call.streamed && !call.partial);
    }

    #[test]
    fn docs_example_streamed_tool_use() {
        let call = recognise(&fixture("anthropic/docs_stream_tool_use")).unwrap();
        assert_eq!(call.provider, "anthropic");
        assert_eq!(
            call.response_id.as_deref(),
            Some("msg_014p7gG3wDgGV9EUtLvnow3U")
        );
        assert_eq!(
            call.response_model.as_deref(),
            Some("claude-opus-4-1-20250805")
        );
        assert_eq!(
            call.output_text.as_deref(),
            Some("Okay, let's check the weather for San Francisco, CA:")
        );
        assert_eq!(
            call.tool_calls,
            [ToolCall {
                id: Some("toolu_01T1x1fJ34qAmk2tNTrN7Up6".into()),
                name: "get_weather".into(),
                arguments: json!({"location": "San Francisco, CA", "unit": "fahrenheit"}),
            }]
        );
        assert_eq!(call.finish_reasons, ["tool_use"]);
        assert_eq!(call.usage.input_tokens, Some(472));
        assert_eq!(call.usage.output_tokens, Some(89));
        assert!(!call.partial);
    }

    #[test]
    fn a_stream_cut_mid_tool_input_keeps_the_partial_json_as_text() {
        let mut ex = fixture("anthropic/tools_stream");
        // Up to the second input_json_delta of the second tool_use block.
        truncate_stream(&mut ex, 16);
        let call = recognise(&ex).unwrap();
        assert!(call.partial);
        assert_eq!(call.tool_calls.len(), 2);
        assert_eq!(call.tool_calls[0], scenario_calls()[0]);
        assert_eq!(
            call.tool_calls[1].arguments,
            json!("{\"argv\": [\"ls\", \"-la\",")
        );
        assert!(call.finish_reasons.is_empty());
        assert_eq!(
            call.usage.output_tokens,
            Some(1),
            "only message_start's count"
        );
    }

    #[test]
    fn cache_tokens_count_as_input_and_errors_are_typed() {
        let body = json!({"id": "msg_1", "type": "message", "model": "claude", "content": [],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "cache_creation_input_tokens": 100,
                      "cache_read_input_tokens": 1000, "output_tokens": 5}});
        let request = br#"{"model":"claude","messages":[{"role":"user","content":"hi"}]}"#;
        let ex = exchange(
            "POST",
            "/v1/messages",
            request,
            Some(body.to_string().into_bytes()),
        );
        let call = recognise(&ex).unwrap();
        assert_eq!(
            call.usage,
            Usage {
                input_tokens: Some(1110),
                output_tokens: Some(5),
                cache_read_input_tokens: Some(1000),
                cache_creation_input_tokens: Some(100),
            }
        );

        let mut ex = fixture("anthropic/tools_stream");
        set_response_body(
            &mut ex,
            b"event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n",
        );
        let call = recognise(&ex).unwrap();
        assert_eq!(call.error_type.as_deref(), Some("overloaded_error"));
        assert!(!call.partial, "an error event ends the stream");
    }

    #[test]
    fn tool_use_without_deltas_keeps_its_start_input() {
        let mut ex = fixture("anthropic/tools_stream");
        set_response_body(
            &mut ex,
            concat!(
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":3}}}\n\n",
                "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"noop\",\"input\":{}}}\n\n",
                "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":5,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n",
                "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
            )
            .as_bytes(),
        );
        let call = recognise(&ex).unwrap();
        assert_eq!(
            call.tool_calls,
            [ToolCall {
                id: Some("t".into()),
                name: "noop".into(),
                arguments: json!({})
            }]
        );
        assert!(call.partial, "a delta for a block never started");
    }
}
