//! Ollama's native API: `POST /api/chat` and `POST /api/generate` (default port 11434).
//!
//! Requests stream unless they say `"stream": false`; a stream is NDJSON (one JSON object per
//! line, not SSE), a non-stream answer one object. Each line carries a piece of
//! `message.content` (chat) or `response` (generate); tool calls come whole in
//! `message.tool_calls[].function.{name, arguments}` with `arguments` an object and usually no
//! id. The last line has `"done": true`, `done_reason`, `prompt_eval_count` (input tokens) and
//! `eval_count` (output tokens). Tool results are `role: "tool"` messages naming the tool in
//! `tool_name` (older clients: `name`). Ollama gives no response id.

use serde_json::Value;

use super::response_body::{self, ResponseBody};
use super::{
    as_count, content_text, error_type_of, join_texts, non_empty_text, parse_arguments, role,
    string_field, succeeded, unparsed_body_mentions, LlmApi, LlmCall, ToolCall, ToolDefinition,
    ToolResult,
};
use crate::http::HttpExchange;

pub(super) fn recognise(
    exchange: &HttpExchange,
    request: Option<&Value>,
    api: LlmApi,
) -> Option<LlmCall> {
    let chat = api == LlmApi::OllamaChat;
    match &request {
        Some(body) => {
            let shaped = if chat {
                body.get("messages").is_some_and(Value::is_array)
            } else {
                body.get("prompt").is_some_and(Value::is_string)
            };
            if non_empty_text(body.get("model")).is_none() || !shaped {
                return None;
            }
        }
        None => {
            let key = if chat { "\"messages\"" } else { "\"prompt\"" };
            if !(unparsed_body_mentions(exchange, "\"model\"")
                && unparsed_body_mentions(exchange, key))
            {
                return None;
            }
        }
    }
    let operation = if chat { "chat" } else { "text_completion" };
    let mut call = LlmCall::new(api, operation, exchange);
    if let Some(body) = &request {
        if chat {
            read_chat_request(body, &mut call);
            call.history = super::history::message_history(*body, &["messages"]);
        } else {
            call.request_model = string_field(*body, "model");
            call.system_prompt = string_field(*body, "system");
            call.last_user_message = string_field(*body, "prompt");
        }
    }
    // Ollama streams unless told not to.
    call.streamed = request
        .as_ref()
        .and_then(|b| b.get("stream"))
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let mut reply = Reply::default();
    match response_body::read(exchange.response.as_ref()) {
        ResponseBody::Missing => {}
        ResponseBody::Document(body) => {
            call.streamed = false;
            reply.read(&body, &mut call);
        }
        ResponseBody::Stream(lines) => {
            call.streamed = true;
            for line in &lines {
                match line.json() {
                    Some(object) => reply.read(&object, &mut call),
                    None => call.partial = true,
                }
            }
        }
        ResponseBody::Unreadable => call.partial |= succeeded(exchange),
    }
    if succeeded(exchange) && !reply.done {
        call.partial = true;
    }
    call.output_text = join_texts(&[reply.text], "");
    call.note_exchange(exchange);
    Some(call)
}

fn read_chat_request(body: &Value, call: &mut LlmCall) {
    call.request_model = string_field(body, "model");
    let empty = Vec::new();
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let system: Vec<String> = messages
        .iter()
        .filter(|m| role(*m) == "system")
        .filter_map(|m| m.get("content").and_then(content_text))
        .collect();
    call.system_prompt = join_texts(&system, "\n");
    call.last_user_message = messages
        .iter()
        .rev()
        .filter(|m| role(*m) == "user")
        .find_map(|m| m.get("content").and_then(content_text));
    let after_assistant = messages
        .iter()
        .rposition(|m| role(m) == "assistant")
        .map_or(0, |i| i + 1);
    for message in messages.get(after_assistant..).unwrap_or_default() {
        if role(message) != "tool" {
            continue;
        }
        call.tool_results.push(ToolResult {
            call_id: string_field(message, "tool_call_id"),
            name: string_field(message, "tool_name").or_else(|| string_field(message, "name")),
            content: message
                .get("content")
                .and_then(content_text)
                .unwrap_or_default(),
            is_error: false,
            arguments: None,
        });
    }
    for tool in body
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let definition = tool.get("function").unwrap_or(tool);
        if let Some(name) = string_field(definition, "name") {
            call.tools_offered.push(ToolDefinition {
                name,
                description: string_field(definition, "description"),
            });
        }
    }
}

/// What the response lines add up to.
#[derive(Default)]
struct Reply {
    text: String,
    done: bool,
}

impl Reply {
    fn read(&mut self, line: &Value, call: &mut LlmCall) {
        if let Some(error) = error_type_of(line) {
            call.error_type = Some(error);
            self.done = true;
            return;
        }
        if let Some(model) = string_field(line, "model") {
            call.response_model = Some(model);
        }
        if let Some(piece) = line.get("response").and_then(Value::as_str) {
            self.text.push_str(piece);
        }
        let message = line.get("message").unwrap_or(&Value::Null);
        if let Some(piece) = message.get("content").and_then(Value::as_str) {
            self.text.push_str(piece);
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
                arguments: match function.get("arguments") {
                    Some(Value::String(raw)) => parse_arguments(raw),
                    Some(other) => other.clone(),
                    None => Value::Null,
                },
            });
        }
        if line.get("done").and_then(Value::as_bool) == Some(true) {
            self.done = true;
            call.finish_reasons = string_field(line, "done_reason").into_iter().collect();
            call.usage.input_tokens = as_count(line.get("prompt_eval_count"));
            call.usage.output_tokens = as_count(line.get("eval_count"));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixture_exchange::{exchange, fixture, truncate_stream};
    use super::super::recognise;
    use super::*;

    #[test]
    fn ndjson_stream_with_object_arguments() {
        let ex = fixture("ollama/tools_stream");
        assert!(!ex.tls);
        let call = recognise(&ex).unwrap();
        assert_eq!(call.api, LlmApi::OllamaChat);
        assert_eq!(call.provider, "ollama");
        assert_eq!(call.operation, "chat");
        assert_eq!(call.request_model.as_deref(), Some("llama3.2"));
        assert_eq!(call.response_model.as_deref(), Some("llama3.2"));
        assert_eq!(call.response_id, None);
        assert_eq!(
            call.system_prompt.as_deref(),
            Some("You are a careful test agent. Use the tools you are given.")
        );
        assert_eq!(
            call.last_user_message.as_deref(),
            Some("Read /etc/hostname and list /tmp, please.")
        );
        let offered: Vec<_> = call.tools_offered.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(offered, ["read_file", "run_command", "fetch_url"]);
        assert_eq!(
            call.tool_calls,
            [
                ToolCall {
                    id: None,
                    name: "read_file".into(),
                    arguments: json!({"path": "/etc/hostname"})
                },
                ToolCall {
                    id: None,
                    name: "run_command".into(),
                    arguments: json!({"argv": ["ls", "-la", "/tmp"], "cwd": "/"}),
                },
            ]
        );
        assert_eq!(call.output_text, None);
        assert_eq!(call.finish_reasons, ["stop"]);
        assert_eq!(call.usage.input_tokens, Some(833 / 4));
        assert!(call.usage.output_tokens.is_some());
        assert!(call.streamed && !call.partial);
    }

    #[test]
    fn tool_results_by_tool_name_and_a_single_json_answer() {
        let call = recognise(&fixture("ollama/results_json")).unwrap();
        assert_eq!(
            call.tool_results,
            [ToolResult {
                call_id: None,
                name: Some("read_file".into()),
                content: "build-host-7".into(),
                is_error: false,
                arguments: None,
            }]
        );
        assert_eq!(
            call.output_text.as_deref(),
            Some("All done. [results: read_file=build-host-7]")
        );
        assert!(call.tool_calls.is_empty());
        assert_eq!(call.finish_reasons, ["stop"]);
        assert_eq!(call.usage.input_tokens, Some(1052 / 4));
        assert!(!call.streamed && !call.partial);
    }

    #[test]
    fn generate_streams_text() {
        let call = recognise(&fixture("ollama/generate_stream")).unwrap();
        assert_eq!(call.api, LlmApi::OllamaGenerate);
        assert_eq!(call.operation, "text_completion");
        assert_eq!(call.provider, "ollama");
        assert_eq!(
            call.system_prompt.as_deref(),
            Some("You are a careful test agent. Use the tools you are given.")
        );
        assert_eq!(
            call.last_user_message.as_deref(),
            Some("Why is the sky blue?")
        );
        assert_eq!(
            call.output_text.as_deref(),
            Some("Generated from: Why is the sky blue?")
        );
        assert_eq!(call.usage.input_tokens, Some(127 / 4));
        assert!(call.streamed && !call.partial);
    }

    #[test]
    fn docs_example_tool_call() {
        let call = recognise(&fixture("ollama/docs_tool_call")).unwrap();
        assert_eq!(call.provider, "ollama");
        assert_eq!(
            call.tool_calls,
            [ToolCall {
                id: None,
                name: "get_current_weather".into(),
                arguments: json!({"format": "celsius", "location": "Paris, FR"}),
            }]
        );
        assert_eq!(call.usage.input_tokens, Some(122));
        assert_eq!(call.usage.output_tokens, Some(33));
        assert!(!call.streamed && !call.partial);
    }

    #[test]
    fn a_stream_without_done_is_partial() {
        let mut ex = fixture("ollama/generate_stream");
        truncate_stream(&mut ex, 2);
        let call = recognise(&ex).unwrap();
        assert!(call.partial);
        assert_eq!(
            call.output_text.as_deref(),
            Some("Generated from: Why is t")
        );
        assert!(call.finish_reasons.is_empty());
        assert_eq!(call.usage.input_tokens, None);
    }

    #[test]
    fn ndjson_without_its_content_type_is_still_read_line_by_line() {
        let mut ex = fixture("ollama/tools_stream");
        ex.response.as_mut().unwrap().stream = None;
        let call = recognise(&ex).unwrap();
        assert_eq!(call.tool_calls.len(), 2);
        assert!(call.streamed && !call.partial);
    }

    #[test]
    fn errors_and_other_apps_on_api_chat() {
        let mut ex = exchange(
            "POST",
            "/api/chat",
            br#"{"model":"nope","messages":[]}"#,
            Some(br#"{"error":"model 'nope' not found"}"#.to_vec()),
        );
        ex.response.as_mut().unwrap().status = 404;
        let call = recognise(&ex).unwrap();
        assert_eq!(call.error_type.as_deref(), Some("model 'nope' not found"));
        assert!(!call.partial);

        // A web app's own /api/chat without Ollama's shape.
        let ex = exchange("POST", "/api/chat", br#"{"message":"hi","room":7}"#, None);
        assert_eq!(recognise(&ex), None);
    }
}
