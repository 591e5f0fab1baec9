//! Gemini `generateContent` and `streamGenerateContent`, on the Gemini API
//! (`/v1beta/models/{model}:generateContent`) and Vertex AI
//! (`/v1/projects/{p}/locations/{l}/publishers/google/models/{model}:generateContent`).
//!
//! The model is named by the path. Requests hold `systemInstruction`, `contents[]` of
//! `{role: user|model, parts[]}` and `tools[].functionDeclarations[]`; the REST API also
//! accepts the proto field names (`system_instruction`, `function_declarations`), and a single
//! object where a list is expected, so both are read. The model asks for tools with
//! `functionCall {name, args, id?}` parts (usually without ids); results come back as
//! `functionResponse {name, response, id?}` parts, an `error` key in `response` marking a
//! failure. `usageMetadata` gives `promptTokenCount` and `candidatesTokenCount`.
//!
//! `streamGenerateContent?alt=sse` streams one response chunk per SSE event; without
//! `alt=sse` the stream is one JSON array that grows element by element, so a cut array still
//! yields its whole elements. A stream is complete once a chunk carries a `finishReason`.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::response_body::{self, json_array_prefix, ResponseBody};
use super::{
    as_count, content_text, error_type_of, join_texts, result_text, string_field, succeeded,
    unparsed_body_mentions, LlmApi, LlmCall, ToolCall, ToolDefinition, ToolResult, Usage,
};
use crate::http::HttpExchange;

pub(super) fn recognise(exchange: &HttpExchange, request: Option<&Value>) -> Option<LlmCall> {
    let path = exchange.request.path();
    match &request {
        Some(body) if field(body, "contents", "contents").is_none() => return None,
        None if !unparsed_body_mentions(exchange, "\"contents\"") => return None,
        _ => {}
    }
    let mut call = LlmCall::new(LlmApi::GeminiGenerateContent, "generate_content", exchange);
    call.request_model = model_from_path(path).map(str::to_string);
    if let Some(body) = &request {
        read_request(body, &mut call);
    }
    let streaming = path.ends_with(":streamGenerateContent");
    call.streamed = streaming;
    let mut chunks = Chunks::default();
    match response_body::read(exchange.response.as_ref()) {
        ResponseBody::Missing => {}
        ResponseBody::Document(Value::Array(elements)) => {
            for element in &elements {
                chunks.read(element, &mut call);
            }
            // A closed array is a finished stream, whatever its last chunk says.
            chunks.finished = true;
        }
        ResponseBody::Document(body) => {
            chunks.read(&body, &mut call);
            chunks.finished = true;
        }
        ResponseBody::Stream(messages) => {
            call.streamed = true;
            for message in &messages {
                match message.json() {
                    Some(chunk) => chunks.read(&chunk, &mut call),
                    None => call.partial = true,
                }
            }
        }
        ResponseBody::Unreadable => {
            call.partial |= succeeded(exchange);
            if streaming {
                let body = exchange.response.as_ref().map_or(&[][..], |r| &r.body[..]);
                let (elements, _) = json_array_prefix(body);
                for element in &elements {
                    chunks.read(element, &mut call);
                }
            }
        }
    }
    if succeeded(exchange) && !chunks.finished {
        call.partial = true;
    }
    chunks.finish(&mut call);
    call.note_exchange(exchange);
    Some(call)
}

/// The model in a `.../models/{model}:method` path, else the last segment before the method
/// (tuned models, Vertex endpoints).
fn model_from_path(path: &str) -> Option<&str> {
    let (resource, _method) = path.rsplit_once(':')?;
    let model = match resource.rfind("models/") {
        Some(at) => resource.get(at + "models/".len()..)?,
        None => resource.rsplit('/').next()?,
    };
    (!model.is_empty()).then_some(model)
}

/// A field under its JSON (camelCase) or proto (snake_case) name.
fn field<'a>(value: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    value.get(camel).or_else(|| value.get(snake))
}

/// A list, or the single object the REST API accepts in its place.
fn list(value: Option<&Value>) -> &[Value] {
    match value {
        Some(Value::Array(items)) => items,
        Some(single @ Value::Object(_)) => std::slice::from_ref(single),
        _ => &[],
    }
}

fn role(content: &Value) -> &str {
    content
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or("user")
}

/// Text of a Content (`{parts}`), a bare part, or a string.
fn text_of(content: &Value) -> Option<String> {
    match content.get("parts") {
        Some(parts) => {
            let texts: Vec<&str> = list(Some(parts))
                .iter()
                .filter(|p| !is_thought(p))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            join_texts(&texts, "\n")
        }
        None => content_text(content),
    }
}

/// Thinking models mark their thought summaries; they are not output text.
fn is_thought(part: &Value) -> bool {
    part.get("thought")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn read_request(body: &Value, call: &mut LlmCall) {
    call.history = super::history::message_history(
        body,
        &["systemInstruction", "system_instruction", "contents"],
    );
    call.system_prompt = field(body, "systemInstruction", "system_instruction").and_then(text_of);
    let contents = list(body.get("contents"));
    call.last_user_message = contents
        .iter()
        .rev()
        .filter(|c| role(c) == "user")
        .find_map(text_of);
    let after_model = contents
        .iter()
        .rposition(|c| role(c) == "model")
        .map_or(0, |i| i + 1);
    // The calls the results answer, as the request repeats the model's turn.
    let asked: Vec<&Value> = after_model
        .checked_sub(1)
        .and_then(|model_turn| contents.get(model_turn))
        .map(|turn| {
            list(turn.get("parts"))
                .iter()
                .filter_map(|p| field(p, "functionCall", "function_call"))
                .collect()
        })
        .unwrap_or_default();
    let responses = contents
        .get(after_model..)
        .unwrap_or_default()
        .iter()
        .flat_map(|c| list(c.get("parts")))
        .filter_map(|part| field(part, "functionResponse", "function_response"));
    let asked = AskedCalls::new(asked);
    for (place, response) in responses.enumerate() {
        let payload = response.get("response").unwrap_or(&Value::Null);
        let call_id = string_field(response, "id");
        let name = string_field(response, "name");
        call.tool_results.push(ToolResult {
            arguments: asked
                .answered(place, call_id.as_deref(), name.as_deref())
                .and_then(|asked| asked.get("args"))
                .cloned(),
            call_id,
            name,
            content: result_text(payload),
            is_error: payload.get("error").is_some_and(|e| !e.is_null()),
        });
    }
    for tool in list(body.get("tools")) {
        let Some(entries) = tool.as_object() else {
            continue;
        };
        for (key, value) in entries {
            if matches!(
                key.as_str(),
                "functionDeclarations" | "function_declarations"
            ) {
                for declaration in list(Some(value)) {
                    if let Some(name) = string_field(declaration, "name") {
                        call.tools_offered.push(ToolDefinition {
                            name,
                            description: string_field(declaration, "description"),
                        });
                    }
                }
            } else {
                // Built-in tools (googleSearch, codeExecution, urlContext) are named by key.
                call.tools_offered.push(ToolDefinition {
                    name: key.clone(),
                    description: None,
                });
            }
        }
    }
}

/// The `functionCall`s of the model's turn that the request's `functionResponse`s answer, with
/// their ids looked up in a table: walking the calls for each response was quadratic in a
/// hostile request's size (a body of many calls and as many responses naming unknown ids).
struct AskedCalls<'a> {
    in_order: Vec<&'a Value>,
    /// Each id's first call.
    by_id: HashMap<&'a str, &'a Value>,
}

impl<'a> AskedCalls<'a> {
    fn new(in_order: Vec<&'a Value>) -> Self {
        let mut by_id = HashMap::new();
        for &call in &in_order {
            if let Some(id) = call.get("id").and_then(Value::as_str) {
                by_id.entry(id).or_insert(call);
            }
        }
        AskedCalls { in_order, by_id }
    }

    /// The call the `place`-th `functionResponse` answers: the one with its id (Gemini CLI
    /// gives calls ids of its own and repeats them), else the one at the same place, if it
    /// names the same tool.
    fn answered(&self, place: usize, id: Option<&str>, name: Option<&str>) -> Option<&'a Value> {
        if let Some(found) = id.and_then(|id| self.by_id.get(id)) {
            return Some(found);
        }
        self.in_order
            .get(place)
            .copied()
            .filter(|c| c.get("name").and_then(Value::as_str) == name)
    }
}

/// What the response chunks (one, or many when streamed) add up to.
#[derive(Default)]
struct Chunks {
    texts: BTreeMap<u64, String>,
    finish: BTreeMap<u64, String>,
    /// A finishReason, prompt block or error was seen: the stream ended.
    finished: bool,
}

impl Chunks {
    fn read(&mut self, chunk: &Value, call: &mut LlmCall) {
        if let Some(error) = error_type_of(chunk) {
            call.error_type = Some(error);
            self.finished = true;
            return;
        }
        if let Some(id) = string_field(chunk, "responseId") {
            call.response_id = Some(id);
        }
        if let Some(model) = string_field(chunk, "modelVersion") {
            call.response_model = Some(model);
        }
        if let Some(usage) = chunk.get("usageMetadata").filter(|u| u.is_object()) {
            call.usage = Usage {
                input_tokens: as_count(usage.get("promptTokenCount")),
                output_tokens: as_count(usage.get("candidatesTokenCount")),
                cache_read_input_tokens: as_count(usage.get("cachedContentTokenCount")),
                cache_creation_input_tokens: None,
            };
        }
        if let Some(reason) = chunk
            .get("promptFeedback")
            .and_then(|f| string_field(f, "blockReason"))
        {
            self.finish.insert(u64::MAX, reason);
            self.finished = true;
        }
        for (position, candidate) in list(chunk.get("candidates")).iter().enumerate() {
            let index = as_count(candidate.get("index")).unwrap_or(position as u64);
            let parts = candidate.get("content").and_then(|c| c.get("parts"));
            for part in list(parts) {
                if let Some(text) = part.get("text").and_then(Value::as_str) {
                    if !is_thought(part) {
                        self.texts.entry(index).or_default().push_str(text);
                    }
                }
                if let Some(function) = field(part, "functionCall", "function_call") {
                    call.tool_calls.push(ToolCall {
                        id: string_field(function, "id"),
                        name: string_field(function, "name").unwrap_or_default(),
                        arguments: function.get("args").cloned().unwrap_or(Value::Null),
                    });
                }
            }
            if let Some(reason) = string_field(candidate, "finishReason") {
                self.finish.insert(index, reason);
                self.finished = true;
            }
        }
    }

    fn finish(self, call: &mut LlmCall) {
        let texts: Vec<String> = self.texts.into_values().collect();
        call.output_text = join_texts(&texts, "\n");
        call.finish_reasons = self.finish.into_values().collect();
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixture_exchange::{exchange, fixture, truncate_body, truncate_stream};
    use super::super::recognise;
    use super::*;

    const SYSTEM: &str = "You are a careful test agent. Use the tools you are given.";
    const USER: &str = "Read /etc/hostname and list /tmp, please.";

    /// Gemini's calls as the mock makes them: no ids, arguments as objects.
    fn scenario_calls() -> Vec<ToolCall> {
        vec![
            ToolCall {
                id: None,
                name: "read_file".into(),
                arguments: json!({"path": "/etc/hostname"}),
            },
            ToolCall {
                id: None,
                name: "run_command".into(),
                arguments: json!({"argv": ["ls", "-la", "/tmp"], "cwd": "/"}),
            },
        ]
    }

    #[test]
    fn function_calls_without_ids() {
        let call = recognise(&fixture("gemini/tools_json")).unwrap();
        assert_eq!(call.api, LlmApi::GeminiGenerateContent);
        assert_eq!(call.operation, "generate_content");
        assert_eq!(call.provider, "localhost");
        assert_eq!(call.request_model.as_deref(), Some("gemini-2.5-flash"));
        assert_eq!(call.response_model.as_deref(), Some("gemini-2.5-flash"));
        assert_eq!(call.response_id.as_deref(), Some("gemini-mock-7"));
        assert_eq!(call.system_prompt.as_deref(), Some(SYSTEM));
        assert_eq!(call.last_user_message.as_deref(), Some(USER));
        let offered: Vec<_> = call.tools_offered.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(offered, ["read_file", "run_command", "fetch_url"]);
        assert!(call.tools_offered.iter().all(|t| t.description.is_some()));
        assert_eq!(call.tool_calls, scenario_calls());
        assert_eq!(call.output_text, None);
        assert_eq!(call.finish_reasons, ["STOP"]);
        assert_eq!(call.usage.input_tokens, Some(190));
        assert_eq!(call.usage.output_tokens, Some(43));
        assert!(call.tool_results.is_empty());
        assert!(!call.streamed && !call.partial);
    }

    #[test]
    fn sse_stream_of_function_calls() {
        let call = recognise(&fixture("gemini/tools_stream_sse")).unwrap();
        assert_eq!(call.tool_calls, scenario_calls());
        assert_eq!(call.finish_reasons, ["STOP"]);
        assert_eq!(call.response_id.as_deref(), Some("gemini-mock-8"));
        assert_eq!(call.usage.input_tokens, Some(190));
        assert!(call.streamed && !call.partial);
    }

    /// Gemini CLI's second request after two parallel calls of one tool that the model sent
    /// without ids: it repeats the calls under ids of its own and answers them under the same
    /// ids, in whatever order. Each result carries the arguments of the call it answers.
    #[test]
    fn results_carry_the_arguments_of_the_calls_they_answer() {
        let shell = |n: usize, file: &str| {
            json!({"functionCall": {"id": format!("run_shell_command_1796416852875_{n}"),
                                    "name": "run_shell_command",
                                    "args": {"command": format!("cat {file}")}},
                   "thoughtSignature": "skip_thought_signature_validator"})
        };
        let answer = |n: usize, text: &str| {
            json!({"functionResponse": {"id": format!("run_shell_command_1796416852875_{n}"),
                                        "name": "run_shell_command",
                                        "response": {"output": text}}})
        };
        let request = json!({"contents": [
            {"role": "user", "parts": [{"text": "Read both plans."}]},
            {"role": "model", "parts": [shell(0, "/tmp/a.txt"), shell(1, "/tmp/b.txt")]},
            // Answered in the other order, and one without its id (answered by place).
            {"role": "user", "parts": [answer(1, "plan B"), answer(0, "plan A"),
                                       {"functionResponse": {"name": "run_shell_command",
                                                             "response": {"output": "?"}}}]},
        ]});
        let ex = exchange(
            "POST",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            request.to_string().as_bytes(),
            None,
        );
        let call = recognise(&ex).unwrap();
        let answered: Vec<(Option<&str>, &str, Option<&Value>)> = call
            .tool_results
            .iter()
            .map(|r| {
                (
                    r.call_id.as_deref(),
                    r.content.as_str(),
                    r.arguments.as_ref(),
                )
            })
            .collect();
        assert_eq!(
            answered,
            [
                (
                    Some("run_shell_command_1796416852875_1"),
                    r#"{"output":"plan B"}"#,
                    Some(&json!({"command": "cat /tmp/b.txt"}))
                ),
                (
                    Some("run_shell_command_1796416852875_0"),
                    r#"{"output":"plan A"}"#,
                    Some(&json!({"command": "cat /tmp/a.txt"}))
                ),
                // The third place has no call: nothing to tie it to.
                (None, r#"{"output":"?"}"#, None),
            ]
        );
    }

    #[test]
    fn function_responses_and_a_streamed_json_array() {
        let ex = fixture("gemini/results_stream_array");
        assert!(
            ex.response.as_ref().unwrap().stream.is_none(),
            "a JSON array, not SSE"
        );
        let call = recognise(&ex).unwrap();
        assert_eq!(
            call.tool_results,
            [
                // No ids: each answers the call at its place in the model's turn.
                ToolResult {
                    call_id: None,
                    name: Some("read_file".into()),
                    content: r#"{"content":"build-host-7"}"#.into(),
                    is_error: false,
                    arguments: Some(json!({"path": "/etc/hostname"})),
                },
                ToolResult {
                    call_id: None,
                    name: Some("run_command".into()),
                    content: r#"{"error":"permission denied"}"#.into(),
                    is_error: true,
                    arguments: Some(json!({"argv": ["ls"]})),
                },
            ]
        );
        assert_eq!(call.last_user_message.as_deref(), Some(USER));
        assert_eq!(
            call.output_text.as_deref(),
            Some(
                r#"All done. [results: read_file={"content": "build-host-7"}; run_command={"error": "permission denied"}]"#
            )
        );
        assert!(call.tool_calls.is_empty());
        assert_eq!(call.finish_reasons, ["STOP"]);
        assert!(call.streamed && !call.partial);
    }

    #[test]
    fn a_cut_json_array_stream_keeps_its_whole_elements() {
        let mut ex = fixture("gemini/results_stream_array");
        let body = ex.response.as_ref().unwrap().body.clone();
        // Cut inside the third element.
        let third = body.windows(3).rposition(|w| w == b",\r\n").unwrap();
        truncate_body(&mut ex, third + 20);
        let call = recognise(&ex).unwrap();
        assert!(call.partial);
        assert_eq!(
            call.output_text.as_deref(),
            Some(r#"All done. [results: read_file={"content": "build-host-7"}; run_comma"#)
        );
        assert!(call.finish_reasons.is_empty());
        assert_eq!(call.response_id.as_deref(), Some("gemini-mock-9"));
    }

    #[test]
    fn an_sse_stream_without_finish_reason_is_partial() {
        let mut ex = fixture("gemini/tools_stream_sse");
        truncate_stream(&mut ex, 1);
        let call = recognise(&ex).unwrap();
        assert!(call.partial);
        assert_eq!(call.tool_calls, scenario_calls()[..1]);
    }

    #[test]
    fn vertex_path_and_snake_case_request() {
        let call = recognise(&fixture("gemini/vertex_snake_case_json")).unwrap();
        assert_eq!(call.request_model.as_deref(), Some("gemini-2.0-flash"));
        assert_eq!(call.system_prompt.as_deref(), Some(SYSTEM));
        assert_eq!(call.last_user_message.as_deref(), Some("Say hello."));
        assert_eq!(
            call.output_text.as_deref(),
            Some("Hello from the agentscope mock LLM. No tools were needed.")
        );
        assert!(!call.partial);
    }

    #[test]
    fn docs_example_function_call() {
        let call = recognise(&fixture("gemini/docs_function_call")).unwrap();
        assert_eq!(call.provider, "gcp.gemini");
        assert_eq!(call.request_model.as_deref(), Some("gemini-2.5-flash"));
        assert_eq!(
            call.tools_offered,
            [ToolDefinition {
                name: "schedule_meeting".into(),
                description: Some(
                    "Schedules a meeting with specified attendees at a given time and date.".into()
                ),
            }]
        );
        assert_eq!(
            call.tool_calls,
            [ToolCall {
                id: None,
                name: "schedule_meeting".into(),
                arguments: json!({"attendees": ["Bob", "Alice"], "date": "2025-03-27",
                                  "time": "10:00", "topic": "Q3 planning"}),
            }]
        );
        assert_eq!(call.finish_reasons, ["STOP"]);
        assert!(!call.partial);
    }

    #[test]
    fn model_names_from_paths() {
        assert_eq!(
            model_from_path("/v1beta/models/gemini-2.5-pro:generateContent"),
            Some("gemini-2.5-pro")
        );
        assert_eq!(
            model_from_path("/v1/projects/p/locations/l/publishers/google/models/gemini-2.0-flash:streamGenerateContent"),
            Some("gemini-2.0-flash")
        );
        assert_eq!(
            model_from_path("/v1/projects/p/locations/l/endpoints/123:generateContent"),
            Some("123")
        );
        assert_eq!(model_from_path("/v1beta/models/:generateContent"), None);
        assert_eq!(model_from_path("/nothing"), None);
    }

    #[test]
    fn ids_thoughts_errors_and_blocked_prompts() {
        let request = br#"{"contents":{"parts":{"text":"hi"}}}"#;
        let body = json!({"candidates": [{"content": {"parts": [
            {"text": "thinking...", "thought": true}, {"text": "answer"},
            {"functionCall": {"id": "fc-1", "name": "f", "args": {"a": 1}}}]},
            "finishReason": "STOP"}]});
        let ex = exchange(
            "POST",
            "/v1beta/models/m:generateContent",
            request,
            Some(body.to_string().into_bytes()),
        );
        let call = recognise(&ex).unwrap();
        assert_eq!(call.last_user_message.as_deref(), Some("hi"));
        assert_eq!(call.output_text.as_deref(), Some("answer"));
        assert_eq!(call.tool_calls[0].id.as_deref(), Some("fc-1"));

        let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"}});
        let ex = exchange(
            "POST",
            "/v1beta/models/m:generateContent",
            request,
            Some(blocked.to_string().into_bytes()),
        );
        let call = recognise(&ex).unwrap();
        assert_eq!(call.finish_reasons, ["SAFETY"]);
        assert!(!call.partial);

        let error =
            json!({"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}});
        let mut ex = exchange(
            "POST",
            "/v1beta/models/m:streamGenerateContent",
            request,
            Some(format!("[{error}]").into_bytes()),
        );
        ex.response.as_mut().unwrap().status = 429;
        let call = recognise(&ex).unwrap();
        assert_eq!(call.error_type.as_deref(), Some("RESOURCE_EXHAUSTED"));
        assert!(!call.partial);
    }
}
