//! What redaction costs per LLM exchange, the collector's largest userspace cost per agent
//! request (a perf profile of `collect` under `agent_overhead`'s Python agent put a third of
//! its CPU in the byte-level scanner). Input: the recorded LLM exchanges of
//! tests/fixtures/llm (real requests and responses of the mock LLM server, every dialect),
//! laid out as an HTTP/1.1 client writes and reads them.
//!
//! - `events`: the collector's pass ([`EventRedactor`]) over each exchange as two `data`
//!   events, the request (head and body) and the response (head and body), one stream each way.
//! - `exchange`: reconstruction's pass over the same exchange ([`redact_header_value`] on every
//!   header, [`redact_in_place`] on both bodies), what `reconstruct::redaction` does.
//!
//! - `long_prompt_request`: the collector's pass over one request whose user message is 8 KiB
//!   of prose (this repository's README), the shape of `agent_overhead`'s requests: an agent
//!   sending a long document or conversation.
//! - `python_agent_exchange`: the collector's pass over one exchange of `agent_overhead`'s Python
//!   agent exactly as the kernel delivers it (the request's head and its 8 KiB body as two
//!   writes, the Go server's response as one read), on a redactor that has seen the exchanges
//!   before (the streams' carried bytes in place): what the live collector spends per request
//!   of that benchmark.
//!
//! Run: `cargo bench -p agentscope-redact --bench payload_redaction`.

use agentscope_event::event::{Direction, Event, EventBody, Header, PayloadSource};
use agentscope_redact::{redact_header_value, redact_in_place, EventRedactor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::Value;

/// One recorded exchange: its headers each way and the bytes each way.
struct Exchange {
    headers: Vec<(String, String)>,
    request_body: Vec<u8>,
    response_body: Vec<u8>,
    request: Vec<u8>,
    response: Vec<u8>,
}

fn header_pairs(message: &Value) -> Vec<(String, String)> {
    message["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|pair| {
            (
                pair[0].as_str().unwrap_or_default().to_string(),
                pair[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn head(first_line: &str, headers: &[(String, String)]) -> Vec<u8> {
    let mut head = format!("{first_line}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

fn exchanges() -> Vec<Exchange> {
    let root = format!("{}/tests/fixtures/llm", env!("AGENTSCOPE_REPO"));
    let mut cases: Vec<_> = walk(&root).collect();
    cases.sort();
    cases
        .into_iter()
        .map(|dir| {
            let read = |name: &str| std::fs::read(format!("{dir}/{name}")).unwrap();
            let request: Value = serde_json::from_slice(&read("request.json")).unwrap();
            let response: Value = serde_json::from_slice(&read("response.json")).unwrap();
            let (request_headers, response_headers) =
                (header_pairs(&request), header_pairs(&response));
            let (request_body, response_body) = (read("request.body"), read("response.body"));
            let mut request_bytes = head(
                &format!(
                    "{} {} HTTP/1.1",
                    request["method"].as_str().unwrap(),
                    request["target"].as_str().unwrap()
                ),
                &request_headers,
            );
            request_bytes.extend_from_slice(&request_body);
            let mut response_bytes = head(
                &format!(
                    "HTTP/1.1 {} {}",
                    response["status"],
                    response["reason"].as_str().unwrap_or("OK")
                ),
                &response_headers,
            );
            response_bytes.extend_from_slice(&response_body);
            Exchange {
                headers: request_headers
                    .into_iter()
                    .chain(response_headers)
                    .collect(),
                request_body,
                response_body,
                request: request_bytes,
                response: response_bytes,
            }
        })
        .collect()
}

/// Every `<dialect>/<case>` directory holding a request.
fn walk(root: &str) -> impl Iterator<Item = String> {
    std::fs::read_dir(root)
        .unwrap()
        .flatten()
        .filter(|dialect| dialect.path().is_dir())
        .flat_map(|dialect| std::fs::read_dir(dialect.path()).unwrap().flatten())
        .map(|case| case.path().display().to_string())
        .filter(|case| std::path::Path::new(&format!("{case}/request.body")).exists())
}

fn data_event(fd: i32, direction: Direction, data: &[u8]) -> Event {
    Event {
        header: Header {
            ts_ns: 1,
            time_unix_ns: 1,
            pid: 4242,
            tid: 4242,
            ppid: 1,
            uid: 0,
            gid: 0,
            cgroup_id: 1,
            comm: "python3".into(),
        },
        body: EventBody::whole_call(
            PayloadSource::Tls,
            direction,
            fd,
            0,
            fd as u64,
            data.to_vec(),
        ),
    }
}

fn bench(c: &mut Criterion) {
    let exchanges = exchanges();
    assert!(exchanges.len() >= 20, "the recorded exchanges are found");
    let events: Vec<Event> = exchanges
        .iter()
        .enumerate()
        .flat_map(|(i, exchange)| {
            let fd = 3 + i as i32;
            [
                data_event(fd, Direction::Egress, &exchange.request),
                data_event(fd, Direction::Ingress, &exchange.response),
            ]
        })
        .collect();
    let bytes: usize = exchanges
        .iter()
        .map(|e| e.request.len() + e.response.len())
        .sum();
    let mut group = c.benchmark_group("payload_redaction");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("events", |b| {
        b.iter(|| {
            let mut redactor = EventRedactor::default();
            events
                .iter()
                .map(|event| redactor.redact(&mut event.clone()))
                .sum::<usize>()
        })
    });
    group.bench_function("exchange", |b| {
        b.iter(|| {
            exchanges
                .iter()
                .map(|exchange| {
                    let headers = exchange
                        .headers
                        .iter()
                        .map(|(name, value)| redact_header_value(name, value).len())
                        .sum::<usize>();
                    let mut request = exchange.request_body.clone();
                    let mut response = exchange.response_body.clone();
                    headers + redact_in_place(&mut request) + redact_in_place(&mut response)
                })
                .sum::<usize>()
        })
    });
    group.finish();

    let request = long_prompt_request();
    let mut group = c.benchmark_group("payload_redaction");
    group.throughput(Throughput::Bytes(request.len() as u64));
    let event = data_event(3, Direction::Egress, &request);
    group.bench_function("long_prompt_request", |b| {
        b.iter(|| EventRedactor::default().redact(&mut event.clone()))
    });
    group.finish();

    let exchange = python_agent_exchange();
    let mut group = c.benchmark_group("payload_redaction");
    group.throughput(Throughput::Bytes(
        exchange.iter().map(|(_, bytes)| bytes.len() as u64).sum(),
    ));
    let exchange: Vec<Event> = exchange
        .iter()
        .map(|(direction, bytes)| data_event(3, *direction, bytes))
        .collect();
    let mut redactor = EventRedactor::default();
    for event in &exchange {
        redactor.redact(&mut event.clone());
    }
    group.bench_function("python_agent_exchange", |b| {
        b.iter(|| {
            exchange
                .iter()
                .map(|event| redactor.redact(&mut event.clone()))
                .sum::<usize>()
        })
    });
    group.finish();
}

/// One exchange of crates/cli/benches/agent_overhead.rs's Python agent
/// (tests/agents/https_post_client.py, 8 KiB requests) with its server (tests/agents/https_post),
/// as the collector receives it: http.client writes the head and the body separately, and the
/// response arrives in one read.
fn python_agent_exchange() -> Vec<(Direction, Vec<u8>)> {
    const SIZE: usize = 8192;
    let (open, close) = (
        r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a careful coding agent."},{"role":"user","content":""#,
        r#""}]}"#,
    );
    let filler = "Summarise the build log and list the failing tests. ".repeat(SIZE / 52 + 1);
    let body = format!(
        "{open}{}{close}",
        &filler[..SIZE - open.len() - close.len()]
    );
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost:33041\r\n\
         Accept-Encoding: identity\r\nContent-Length: {}\r\n\
         Content-Type: application/json\r\n\r\n",
        body.len()
    );
    let answer = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1764892800,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"The report is ready: three files changed, all tests pass, nothing else to do."},"finish_reason":"stop"}],"usage":{"prompt_tokens":2048,"completion_tokens":19,"total_tokens":2067}}"#;
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
         Date: Mon, 07 Dec 2026 11:07:44 GMT\r\nContent-Length: {}\r\n\r\n{answer}",
        answer.len()
    );
    vec![
        (Direction::Egress, head.into_bytes()),
        (Direction::Egress, body.into_bytes()),
        (Direction::Ingress, response.into_bytes()),
    ]
}

/// A chat-completion request (headers as Python's http.client sends them) whose user message
/// is the first 8 KiB of the README.
fn long_prompt_request() -> Vec<u8> {
    let readme = std::fs::read_to_string(format!("{}/README.md", env!("AGENTSCOPE_REPO"))).unwrap();
    let prose: String = readme.chars().take(8192).collect();
    let body = serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a careful coding agent."},
            {"role": "user", "content": prose},
        ],
    })
    .to_string();
    let mut request = head(
        "POST /v1/chat/completions HTTP/1.1",
        &[
            ("Host".into(), "127.0.0.1:8443".into()),
            ("Accept-Encoding".into(), "identity".into()),
            ("Content-Length".into(), body.len().to_string()),
            ("Content-Type".into(), "application/json".into()),
        ],
    );
    request.extend_from_slice(body.as_bytes());
    request
}

criterion_group!(benches, bench);
criterion_main!(benches);
