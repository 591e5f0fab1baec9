//! Cost of LLM call recognition per HTTP exchange: non-LLM traffic (which must stay cheap),
//! recorded streamed tool-call exchanges, an agent-sized request (256 KiB conversation), and a
//! hostile stream of one tool call per chunk (tests/agents/hostile.py `huge-tool-call`, as many
//! as a 2 MiB body holds: the largest message a 64 MiB budget lets through), and a Responses API
//! answer streamed in 20,000 small text deltas (a long answer; each delta once rebuilt the
//! whole text), the same number of deltas naming their items by id only (each once walked the
//! items), and a Gemini request answering 9,000 function calls (each answer once walked the
//! calls).
//! Run: `cargo bench -p agentscope-reconstruct --bench llm_recognise`.

use std::path::PathBuf;

use agentscope_reconstruct::http::{
    Completeness, HttpExchange, HttpRequest, HttpResponse, SseEvent, StreamedBody,
};
use agentscope_reconstruct::llm::recognise;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

fn fixture_file(case: &str, file: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("AGENTSCOPE_REPO"))
        .join("tests/fixtures/llm")
        .join(case)
        .join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn exchange(method: &str, target: &str, request: Vec<u8>, response: Vec<u8>) -> HttpExchange {
    HttpExchange {
        request: HttpRequest {
            method: method.to_string(),
            target: target.to_string(),
            headers: Vec::new(),
            body_len: request.len(),
            body: request,
            completeness: Completeness::Complete,
            over_budget: false,
            ts_ns: 0,
        },
        response: Some(HttpResponse {
            status: 200,
            reason: "OK".to_string(),
            headers: Vec::new(),
            body_len: response.len(),
            body: response,
            stream: None,
            completeness: Completeness::Complete,
            over_budget: false,
            ts_ns: 0,
            end_ts_ns: 0,
        }),
        host: Some("localhost".to_string()),
        port: None,
        tls: true,
        protocol: Default::default(),
    }
}

/// A recorded SSE exchange, its body split into events the way the HTTP layer hands it over.
fn sse_fixture(case: &str, target: &str) -> HttpExchange {
    let body = fixture_file(case, "response.body");
    let text = String::from_utf8(body.clone()).unwrap();
    let events = text
        .split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(v.to_string());
                }
            }
            Some(SseEvent {
                event,
                data: data?,
                id: None,
            })
        })
        .collect();
    let mut ex = exchange("POST", target, fixture_file(case, "request.body"), body);
    ex.response.as_mut().unwrap().stream = Some(StreamedBody::Sse(events));
    ex
}

fn big_conversation() -> HttpExchange {
    let mut messages = vec![serde_json::json!({"role": "system", "content": "You are an agent."})];
    for i in 0..128 {
        messages.push(
            serde_json::json!({"role": "user", "content": format!("{i} {}", "x".repeat(1000))}),
        );
        messages.push(serde_json::json!({"role": "assistant", "content": "y".repeat(1000)}));
    }
    let request = serde_json::json!({"model": "gpt-4o", "messages": messages}).to_string();
    let response = fixture_file("openai_chat/hello_json", "response.body");
    exchange(
        "POST",
        "/v1/chat/completions",
        request.into_bytes(),
        response,
    )
}

/// A streamed chat completion of `calls` tool calls, one a chunk, each with its own index and
/// id (the shape of tests/agents/hostile.py `huge-tool-call`).
fn many_tool_calls(calls: usize) -> HttpExchange {
    let mut events: Vec<SseEvent> = (0..calls)
        .map(|i| SseEvent {
            event: None,
            data: serde_json::json!({
                "id": "chatcmpl-huge", "object": "chat.completion.chunk", "model": "gpt-4o",
                "choices": [{"index": 0, "delta": {"tool_calls": [{
                    "index": i, "id": format!("call_{i}"), "type": "function",
                    "function": {"name": format!("tool_{}", i % 97), "arguments": "{}"}}]}}]
            })
            .to_string(),
            id: None,
        })
        .collect();
    events.push(SseEvent {
        event: None,
        data: "[DONE]".to_string(),
        id: None,
    });
    let request = serde_json::json!({"model": "gpt-4o", "stream": true,
        "messages": [{"role": "user", "content": "call every tool"}]})
    .to_string();
    let mut ex = exchange(
        "POST",
        "/v1/chat/completions",
        request.into_bytes(),
        Vec::new(),
    );
    ex.response.as_mut().unwrap().stream = Some(StreamedBody::Sse(events));
    ex
}

/// A Responses API stream of one message whose text comes in `deltas` deltas of a word each.
fn many_text_deltas(deltas: usize) -> HttpExchange {
    let event = |kind: &str, data: serde_json::Value| SseEvent {
        event: Some(kind.to_string()),
        data: data.to_string(),
        id: None,
    };
    let mut events = vec![
        event(
            "response.created",
            serde_json::json!({"type": "response.created",
                "response": {"id": "resp_long", "model": "gpt-4.1", "output": []}}),
        ),
        event(
            "response.output_item.added",
            serde_json::json!({"type": "response.output_item.added", "output_index": 0,
                "item": {"type": "message", "id": "msg_1",
                    "content": [{"type": "output_text", "text": "", "annotations": []}]}}),
        ),
    ];
    for i in 0..deltas {
        events.push(event(
            "response.output_text.delta",
            serde_json::json!({"type": "response.output_text.delta", "output_index": 0,
                "delta": format!("word{i} ")}),
        ));
    }
    events.push(event(
        "response.completed",
        serde_json::json!({"type": "response.completed",
            "response": {"id": "resp_long", "model": "gpt-4.1", "status": "completed", "output": []}}),
    ));
    let request =
        serde_json::json!({"model": "gpt-4.1", "stream": true, "input": "write at length"})
            .to_string();
    let mut ex = exchange("POST", "/v1/responses", request.into_bytes(), Vec::new());
    ex.response.as_mut().unwrap().stream = Some(StreamedBody::Sse(events));
    ex
}

/// A Responses API stream of `deltas` text deltas without an `output_index`, each naming an
/// item by an id no item has (so each starts an item of its own): every such event once walked
/// every item before it.
fn many_unindexed_deltas(deltas: usize) -> HttpExchange {
    let event = |data: serde_json::Value| SseEvent {
        event: Some(data["type"].as_str().unwrap().to_string()),
        data: data.to_string(),
        id: None,
    };
    let mut events: Vec<SseEvent> = (0..deltas)
        .map(|i| {
            event(serde_json::json!({"type": "response.output_text.delta",
                "item_id": format!("msg_{i}"), "delta": "x"}))
        })
        .collect();
    events.push(event(serde_json::json!({"type": "response.completed",
        "response": {"id": "resp_u", "model": "gpt-4.1", "status": "completed", "output": []}})));
    let request =
        serde_json::json!({"model": "gpt-4.1", "stream": true, "input": "hi"}).to_string();
    let mut ex = exchange("POST", "/v1/responses", request.into_bytes(), Vec::new());
    ex.response.as_mut().unwrap().stream = Some(StreamedBody::Sse(events));
    ex
}

/// A Gemini request whose last model turn asked `calls` function calls, each with an id, and
/// whose user turn answers each with a `functionResponse` naming an id no call has (about
/// 1.5 MiB at 9,000): each response once walked every call.
fn many_function_responses(calls: usize) -> HttpExchange {
    let asked: Vec<serde_json::Value> = (0..calls)
        .map(|i| {
            serde_json::json!({"functionCall": {"id": format!("call_{i}"),
                "name": format!("tool_{}", i % 97), "args": {"n": i}}})
        })
        .collect();
    let answers: Vec<serde_json::Value> = (0..calls)
        .map(|i| {
            serde_json::json!({"functionResponse": {"id": format!("other_{i}"),
                "name": format!("tool_{}", i % 97), "response": {"ok": true}}})
        })
        .collect();
    let request = serde_json::json!({"contents": [
        {"role": "user", "parts": [{"text": "call every tool"}]},
        {"role": "model", "parts": asked},
        {"role": "user", "parts": answers},
    ]})
    .to_string();
    exchange(
        "POST",
        "/v1beta/models/gemini-2.5-flash:generateContent",
        request.into_bytes(),
        br#"{"candidates": [{"content": {"role": "model", "parts": [{"text": "done"}]}, "finishReason": "STOP"}]}"#
            .to_vec(),
    )
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("llm_recognise");
    group.throughput(Throughput::Elements(1));

    let static_page = exchange("GET", "/index.html", Vec::new(), b"<html></html>".to_vec());
    group.bench_function("not_llm_get", |b| {
        b.iter(|| recognise(black_box(&static_page)))
    });
    let api_post = exchange(
        "POST",
        "/api/users",
        serde_json::json!({"name": "x".repeat(2000)})
            .to_string()
            .into_bytes(),
        b"{}".to_vec(),
    );
    group.bench_function("not_llm_post_json", |b| {
        b.iter(|| recognise(black_box(&api_post)))
    });

    let openai = sse_fixture("openai_chat/tools_stream", "/v1/chat/completions");
    group.bench_function("openai_chat_stream_tool_calls", |b| {
        b.iter(|| recognise(black_box(&openai)))
    });
    let anthropic = sse_fixture("anthropic/tools_stream", "/v1/messages");
    group.bench_function("anthropic_stream_tool_use", |b| {
        b.iter(|| recognise(black_box(&anthropic)))
    });
    let responses = sse_fixture("openai_responses/tools_stream", "/v1/responses");
    group.bench_function("openai_responses_stream_function_calls", |b| {
        b.iter(|| recognise(black_box(&responses)))
    });

    let hostile = many_tool_calls(9_000);
    group.bench_function("openai_chat_stream_9000_tool_calls", |b| {
        b.iter(|| recognise(black_box(&hostile)))
    });

    let long_answer = many_text_deltas(20_000);
    group.bench_function("openai_responses_stream_20000_text_deltas", |b| {
        b.iter(|| recognise(black_box(&long_answer)))
    });

    let unindexed = many_unindexed_deltas(20_000);
    group.bench_function("openai_responses_stream_20000_unindexed_deltas", |b| {
        b.iter(|| recognise(black_box(&unindexed)))
    });

    let gemini_results = many_function_responses(9_000);
    group.bench_function("gemini_request_9000_function_responses", |b| {
        b.iter(|| recognise(black_box(&gemini_results)))
    });

    let big = big_conversation();
    group.throughput(Throughput::Bytes(big.request.body.len() as u64));
    group.bench_function("openai_chat_256k_conversation", |b| {
        b.iter(|| recognise(black_box(&big)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
