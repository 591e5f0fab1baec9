//! Property tests: arbitrary, oddly shaped, cut or corrupted input never panics any dialect,
//! and a cut exchange is always reported as partial.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::fixture_exchange::{exchange, fixture, split_stream, stream_len, truncate_stream};
use super::{recognise, LlmApi};
use crate::http::{Completeness, HttpExchange, SseEvent, StreamedBody};

/// One path per dialect (and both Gemini methods).
const PATHS: &[(&str, LlmApi)] = &[
    ("/v1/chat/completions", LlmApi::OpenAiChatCompletions),
    (
        "/openai/deployments/d/chat/completions",
        LlmApi::OpenAiChatCompletions,
    ),
    ("/v1/responses", LlmApi::OpenAiResponses),
    ("/v1/messages", LlmApi::AnthropicMessages),
    (
        "/v1beta/models/m:generateContent",
        LlmApi::GeminiGenerateContent,
    ),
    (
        "/v1beta/models/m:streamGenerateContent",
        LlmApi::GeminiGenerateContent,
    ),
    ("/api/chat", LlmApi::OllamaChat),
    ("/api/generate", LlmApi::OllamaGenerate),
];

/// Every recorded and documented fixture.
const FIXTURES: &[&str] = &[
    "openai_chat/tools_stream",
    "openai_chat/tools_stream_reused_index",
    "openai_chat/results_json_gzip",
    "openai_chat/hello_json",
    "openai_chat/azure_deployment_stream",
    "openai_chat/docs_stream_tool_call",
    "openai_responses/tools_stream",
    "openai_responses/results_json",
    "openai_responses/text_stream",
    "openai_responses/docs_function_call",
    "openai_responses/docs_stream_function_call",
    "anthropic/tools_stream",
    "anthropic/results_stream",
    "anthropic/tools_json",
    "anthropic/docs_stream_tool_use",
    "gemini/tools_json",
    "gemini/tools_stream_sse",
    "gemini/results_stream_array",
    "gemini/vertex_snake_case_json",
    "gemini/docs_function_call",
    "ollama/tools_stream",
    "ollama/results_json",
    "ollama/generate_stream",
    "ollama/docs_tool_call",
];

/// Keys and string values the dialects look for, so generated documents reach deep paths.
const KEYS: &[&str] = &[
    "model",
    "messages",
    "role",
    "content",
    "text",
    "type",
    "tools",
    "function",
    "name",
    "description",
    "arguments",
    "tool_calls",
    "tool_call_id",
    "id",
    "index",
    "choices",
    "delta",
    "message",
    "finish_reason",
    "usage",
    "prompt_tokens",
    "completion_tokens",
    "input",
    "instructions",
    "output",
    "call_id",
    "output_index",
    "item",
    "item_id",
    "response",
    "system",
    "tool_use_id",
    "is_error",
    "input_json_delta",
    "partial_json",
    "content_block",
    "stop_reason",
    "contents",
    "parts",
    "systemInstruction",
    "functionDeclarations",
    "functionCall",
    "functionResponse",
    "args",
    "candidates",
    "finishReason",
    "usageMetadata",
    "promptTokenCount",
    "done",
    "done_reason",
    "prompt",
    "eval_count",
    "error",
    "stream",
    "status",
    "incomplete_details",
    "reason",
    "tool_name",
    "custom",
    "thought",
];
const WORDS: &[&str] = &[
    "user",
    "assistant",
    "system",
    "developer",
    "tool",
    "model",
    "function",
    "function_call",
    "function_call_output",
    "message",
    "text",
    "tool_use",
    "tool_result",
    "text_delta",
    "input_json_delta",
    "message_start",
    "content_block_start",
    "content_block_delta",
    "message_delta",
    "message_stop",
    "response.output_item.added",
    "response.completed",
    "response.output_text.delta",
    "response.function_call_arguments.delta",
    "error",
    "[DONE]",
    "{\"a\":",
    "",
    "STOP",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(WORDS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|entries| {
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<String, Value>>(),
                )
            }),
        ]
    })
}

fn completeness() -> impl Strategy<Value = Completeness> {
    prop_oneof![
        Just(Completeness::Complete),
        Just(Completeness::Truncated),
        Just(Completeness::Corrupt),
    ]
}

fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        json_value().prop_map(|v| v.to_string().into_bytes()),
    ]
}

/// A response stream: SSE events or NDJSON lines holding JSON documents or garbage.
fn streamed_body() -> impl Strategy<Value = Option<StreamedBody>> {
    let message = prop_oneof![json_value().prop_map(|v| v.to_string()), ".{0,40}"];
    prop_oneof![
        Just(None),
        prop::collection::vec(
            (
                prop::option::of(prop::sample::select(WORDS)),
                message.clone()
            ),
            0..12
        )
        .prop_map(|events| Some(StreamedBody::Sse(
            events
                .into_iter()
                .map(|(event, data)| SseEvent {
                    event: event.map(str::to_string),
                    data,
                    id: None,
                })
                .collect()
        ))),
        prop::collection::vec(message, 0..12).prop_map(|lines| Some(StreamedBody::Ndjson(lines))),
    ]
}

fn check_dialect(ex: &HttpExchange, api: LlmApi) {
    if let Some(call) = recognise(ex) {
        assert_eq!(call.api, api);
        if ex.response.is_none() || ex.request.completeness != Completeness::Complete {
            assert!(call.partial);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bodies_never_panic(
        path in prop::sample::select(PATHS),
        method in prop::sample::select(&["POST", "post", "GET", "PUT"][..]),
        request in body_bytes(),
        response in prop::option::of(body_bytes()),
        stream in streamed_body(),
        status in prop::sample::select(&[200u16, 201, 400, 429, 500][..]),
        request_completeness in completeness(),
        response_completeness in completeness(),
        host in prop::option::of(prop::sample::select(&["api.openai.com", "localhost:11434", "[::1", ":", ""][..])),
    ) {
        let (path, api) = path;
        let mut ex = exchange(method, path, &request, response);
        ex.request.completeness = request_completeness;
        ex.host = host.map(str::to_string);
        if let Some(r) = ex.response.as_mut() {
            r.stream = stream;
            r.status = status;
            r.completeness = response_completeness;
        }
        check_dialect(&ex, api);
    }

    #[test]
    fn cut_recorded_streams_are_partial(case in prop::sample::select(FIXTURES), cut in 0.0f64..1.0) {
        let mut ex = fixture(case);
        let n = stream_len(&ex);
        prop_assume!(n > 0);
        let keep = ((n as f64) * cut) as usize;
        truncate_stream(&mut ex, keep);
        let call = recognise(&ex).expect("still an LLM call");
        prop_assert!(call.partial);
    }

    #[test]
    fn cut_recorded_bodies_are_partial(
        case in prop::sample::select(FIXTURES),
        request_cut in prop::option::of(0.0f64..1.0),
        response_cut in 0.0f64..1.0,
    ) {
        let mut ex = fixture(case);
        let request_len = ex.request.body.len();
        if let Some(cut) = request_cut {
            ex.request.body.truncate(((request_len as f64) * cut) as usize);
            ex.request.completeness = Completeness::Truncated;
        }
        let response = ex.response.as_mut().unwrap();
        let len = ((response.body.len() as f64) * response_cut) as usize;
        response.body.truncate(len);
        response.completeness = Completeness::Truncated;
        response.stream = split_stream(response);
        // A request cut before its first key no longer says what it is; anything else must
        // still be recognised, as partial.
        if let Some(call) = recognise(&ex) {
            prop_assert!(call.partial);
        } else {
            prop_assert!(request_cut.is_some());
        }
    }

    #[test]
    fn corrupted_recorded_exchanges_never_panic(
        case in prop::sample::select(FIXTURES),
        flips in prop::collection::vec((0.0f64..1.0, any::<u8>()), 1..8),
        in_request in any::<bool>(),
    ) {
        let mut ex = fixture(case);
        let api = recognise(&ex).expect("fixture is an LLM call").api;
        let body = if in_request {
            &mut ex.request.body
        } else {
            &mut ex.response.as_mut().unwrap().body
        };
        for (at, byte) in flips {
            if !body.is_empty() {
                let last = body.len() - 1;
                let i = ((body.len() as f64) * at) as usize;
                body[i.min(last)] = byte;
            }
        }
        let response = ex.response.as_mut().unwrap();
        response.stream = split_stream(response);
        check_dialect(&ex, api);
    }
}

#[test]
fn every_fixture_is_recognised_complete() {
    for case in FIXTURES {
        let call = recognise(&fixture(case)).unwrap_or_else(|| panic!("{case} not recognised"));
        assert!(!call.partial, "{case} is partial: {call:?}");
        assert_eq!(call.error_type, None, "{case}");
        assert!(call.request_model.is_some(), "{case}");
        assert!(
            call.output_text.is_some() || !call.tool_calls.is_empty(),
            "{case} produced nothing"
        );
    }
}
