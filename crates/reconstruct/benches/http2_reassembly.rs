//! HTTP/2 reconstruction throughput, and HTTP/2 against HTTP/1.1 on the same payloads.
//!
//! - `go_fixture`: the captured Go agent (tests/fixtures/http2/go_streaming_tool_calls.jsonl:
//!   three streamed conversations interleaved on one connection) through `Http2Connection`,
//!   as the collector delivered it.
//! - `llm_stream/{http1,http2}`: one LLM call with a 64 KiB JSON request and a streamed
//!   answer of 400 Server-Sent Events, framed as HTTP/1.1 (Content-Length request, chunked
//!   response, one chunk per event) and as HTTP/2 (HPACK heads, one DATA frame per event),
//!   fed in 16 KiB pieces; each run reconstructs the exchange and splits its events.
//! - `hpack/go_first_request`: decoding the Go agent's first request header block (all
//!   literals, Huffman-coded, nothing indexed yet) with a fresh decoder: the per-exchange
//!   cost that dominates small exchanges.
//!
//! Run: `cargo bench -p agentscope-reconstruct --bench http2_reassembly` (or `make bench`).

use agentscope_event::event::Direction;
use agentscope_reconstruct::http::{HttpConnection, Side};
use agentscope_reconstruct::http2::header_block::BlockDecoder;
use agentscope_reconstruct::http2::Http2Connection;
use base64::Engine;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const FEED: usize = 16 << 10;
const EVENTS: usize = 400;

fn fixture_chunks() -> Vec<(Direction, Vec<u8>, u64)> {
    include_str!(concat!(
        env!("AGENTSCOPE_REPO"),
        "/tests/fixtures/http2/go_streaming_tool_calls.jsonl"
    ))
    .lines()
    .map(|line| {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        let direction = if event["direction"] == "egress" {
            Direction::Egress
        } else {
            Direction::Ingress
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(event["data_b64"].as_str().unwrap())
            .unwrap();
        (direction, bytes, event["ts_ns"].as_u64().unwrap())
    })
    .collect()
}

/// The request body and the event-stream body both framings carry.
fn payloads() -> (Vec<u8>, Vec<Vec<u8>>) {
    let filler = "0123456789abcdef".repeat(4096);
    let request = format!(
        r#"{{"model":"gpt-4o","stream":true,"messages":[{{"role":"user","content":"{filler}"}}]}}"#
    )
    .into_bytes();
    let events = (0..EVENTS)
        .map(|i| {
            format!(
                "data: {{\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token {i} of the answer\"}}}}]}}\n\n"
            )
            .into_bytes()
        })
        .collect();
    (request, events)
}

fn http1_bytes(request: &[u8], events: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
    let mut client = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nContent-Type: application/json\r\nAuthorization: Bearer sk-bench\r\nContent-Length: {}\r\n\r\n",
        request.len()
    )
    .into_bytes();
    client.extend(request);
    let mut server =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for event in events {
        server.extend(format!("{:x}\r\n", event.len()).as_bytes());
        server.extend(event);
        server.extend(b"\r\n");
    }
    server.extend(b"0\r\n\r\n");
    (client, server)
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend(stream.to_be_bytes());
    out.extend(payload);
    out
}

fn http2_bytes(request: &[u8], events: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
    let mut encoder = loona_hpack::Encoder::new();
    let mut client = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    client.extend(frame(4, 0, 0, &[]));
    let head = encoder.encode([
        (&b":method"[..], &b"POST"[..]),
        (b":scheme", b"https"),
        (b":path", b"/v1/chat/completions"),
        (b":authority", b"api.openai.com"),
        (b"content-type", b"application/json"),
        (b"authorization", b"Bearer sk-bench"),
    ]);
    client.extend(frame(1, 0x4, 1, &head));
    for (i, piece) in request.chunks(16 << 10).enumerate() {
        let last = (i + 1) * (16 << 10) >= request.len();
        client.extend(frame(0, if last { 0x1 } else { 0 }, 1, piece));
    }
    let mut server = frame(4, 0, 0, &[]);
    let mut decoder_side = loona_hpack::Encoder::new();
    let head = decoder_side.encode([
        (&b":status"[..], &b"200"[..]),
        (b"content-type", b"text/event-stream"),
    ]);
    server.extend(frame(1, 0x4, 1, &head));
    for event in events {
        server.extend(frame(0, 0, 1, event));
    }
    server.extend(frame(0, 0x1, 1, &[]));
    (client, server)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("http2_reassembly");
    let chunks = fixture_chunks();
    let total: usize = chunks.iter().map(|(_, b, _)| b.len()).sum();
    group.throughput(Throughput::Bytes(total as u64));
    group.bench_function("go_fixture", |b| {
        b.iter(|| {
            let mut connection = Http2Connection::new();
            let mut exchanges = 0;
            for (direction, bytes, ts) in &chunks {
                exchanges += connection.feed(*direction, bytes, *ts).len();
            }
            assert_eq!(exchanges, 6);
            black_box(exchanges)
        })
    });

    // The first HEADERS frame the Go agent sent, after the preface.
    let egress: Vec<u8> = chunks
        .iter()
        .filter(|(d, _, _)| *d == Direction::Egress)
        .flat_map(|(_, b, _)| b.clone())
        .collect();
    let mut at = 24;
    let block = loop {
        let len = (usize::from(egress[at]) << 16)
            | (usize::from(egress[at + 1]) << 8)
            | usize::from(egress[at + 2]);
        if egress[at + 3] == 1 {
            break egress[at + 9..at + 9 + len].to_vec();
        }
        at += 9 + len;
    };
    group.throughput(Throughput::Bytes(block.len() as u64));
    group.bench_function("hpack/go_first_request", |b| {
        b.iter(|| {
            let decoded = BlockDecoder::new().decode(&block).unwrap();
            assert!(decoded.fields.len() >= 6);
            black_box(decoded)
        })
    });

    let (request, events) = payloads();
    let (h1_client, h1_server) = http1_bytes(&request, &events);
    let (h2_client, h2_server) = http2_bytes(&request, &events);
    group.throughput(Throughput::Bytes(
        (h1_client.len() + h1_server.len()) as u64,
    ));
    group.bench_function("llm_stream/http1", |b| {
        b.iter(|| {
            let mut connection = HttpConnection::new();
            for piece in h1_client.chunks(FEED) {
                connection.feed(Side::Request, piece, 1);
            }
            let mut done = Vec::new();
            for piece in h1_server.chunks(FEED) {
                done.extend(connection.feed(Side::Response, piece, 2));
            }
            assert_eq!(done.len(), 1);
            black_box(done)
        })
    });
    group.throughput(Throughput::Bytes(
        (h2_client.len() + h2_server.len()) as u64,
    ));
    group.bench_function("llm_stream/http2", |b| {
        b.iter(|| {
            let mut connection = Http2Connection::new();
            for piece in h2_client.chunks(FEED) {
                connection.feed(Direction::Egress, piece, 1);
            }
            let mut done = Vec::new();
            for piece in h2_server.chunks(FEED) {
                done.extend(connection.feed(Direction::Ingress, piece, 2));
            }
            assert_eq!(done.len(), 1);
            black_box(done)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
