//! Cost of LLM call recognition per HTTP exchange: non-LLM traffic (which must stay cheap),
//! recorded streamed tool-call exchanges, and an agent-sized request (256 KiB conversation).
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

    let big = big_conversation();
    group.throughput(Throughput::Bytes(big.request.body.len() as u64));
    group.bench_function("openai_chat_256k_conversation", |b| {
        b.iter(|| recognise(black_box(&big)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
