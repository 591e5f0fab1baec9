//! WebSocket reconstruction throughput against HTTP/1.1 on the same payloads.
//!
//! One OpenAI Responses call: a 64 KiB JSON request and a streamed answer of 400
//! `response.output_text.delta` events, fed in 16 KiB pieces through `HttpConnection` (the
//! stream assembler's parser for both) and reconstructed into the exchange the Responses
//! dialect reads:
//! - `responses_stream/http1_sse`: `POST /v1/responses`, the answer as chunked Server-Sent
//!   Events (one chunk per event);
//! - `responses_stream/websocket`: the upgrade and its `101`, `response.create` in one masked
//!   text frame, one text frame per event;
//! - `responses_stream/websocket_deflate`: the same with permessage-deflate and context
//!   takeover in both directions (what the `websockets` library and browsers negotiate).
//!
//! Throughput is counted in the JSON bytes the call carries (the same for all three).
//!
//! Run: `cargo bench -p agentscope-reconstruct --bench websocket_reassembly` (or `make bench`).

use agentscope_reconstruct::http::{HttpConnection, Side};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const FEED: usize = 16 << 10;
const EVENTS: usize = 400;
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The request's JSON and the events' JSON.
fn payloads() -> (String, Vec<String>) {
    let filler = "0123456789abcdef".repeat(4096);
    let request = format!(
        r#"{{"model":"gpt-5-codex","stream":true,"input":[{{"role":"user","content":"{filler}"}}]}}"#
    );
    let mut events = vec![
        r#"{"type":"response.created","response":{"id":"resp_1","model":"gpt-5-codex","status":"in_progress","output":[]}}"#.to_string(),
    ];
    events.extend((0..EVENTS - 2).map(|i| {
        format!(
            r#"{{"type":"response.output_text.delta","output_index":0,"content_index":0,"item_id":"msg_1","delta":"token {i} of the answer "}}"#
        )
    }));
    events.push(
        r#"{"type":"response.completed","response":{"id":"resp_1","model":"gpt-5-codex","status":"completed","output":[],"usage":{"input_tokens":16400,"output_tokens":400}}}"#.to_string(),
    );
    (request, events)
}

fn http1_bytes(request: &str, events: &[String]) -> (Vec<u8>, Vec<u8>) {
    let mut client = format!(
        "POST /v1/responses HTTP/1.1\r\nHost: api.openai.com\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        request.len()
    )
    .into_bytes();
    client.extend(request.as_bytes());
    let mut server =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for event in events {
        let kind = event[9..].split('"').next().unwrap_or("");
        let sse = format!("event: {kind}\ndata: {event}\n\n");
        server.extend(format!("{:x}\r\n", sse.len()).as_bytes());
        server.extend(sse.as_bytes());
        server.extend(b"\r\n");
    }
    server.extend(b"0\r\n\r\n");
    (client, server)
}

fn frame(rsv1: bool, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | (u8::from(rsv1) << 6) | 0x1];
    let masked = u8::from(mask.is_some()) << 7;
    match payload.len() {
        n if n < 126 => out.push(masked | n as u8),
        n if n <= 0xffff => {
            out.push(masked | 126);
            out.extend((n as u16).to_be_bytes());
        }
        n => {
            out.push(masked | 127);
            out.extend((n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend(key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend(payload),
    }
    out
}

/// One message compressed as permessage-deflate sends it (sync flush, tail removed).
fn deflate(compressor: &mut flate2::Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1024);
    loop {
        let before = compressor.total_in();
        compressor
            .compress_vec(data, &mut out, flate2::FlushCompress::Sync)
            .unwrap();
        if compressor.total_in() - before == data.len() as u64 && out.len() < out.capacity() {
            break;
        }
        out.reserve(out.capacity());
    }
    out.truncate(out.len() - 4);
    out
}

fn websocket_bytes(request: &str, events: &[String], compressed: bool) -> (Vec<u8>, Vec<u8>) {
    let extensions = if compressed {
        "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    } else {
        ""
    };
    let mut client = format!(
        "GET /v1/responses HTTP/1.1\r\nHost: api.openai.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extensions}\r\n"
    )
    .into_bytes();
    let mut server = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n{extensions}\r\n"
    )
    .into_bytes();
    let create = format!(r#"{{"type":"response.create",{}"#, &request[1..]);
    let mut client_compressor = flate2::Compress::new(flate2::Compression::default(), false);
    let mut server_compressor = flate2::Compress::new(flate2::Compression::default(), false);
    let message = |compressor: &mut flate2::Compress, text: &str, mask| {
        if compressed {
            frame(true, mask, &deflate(compressor, text.as_bytes()))
        } else {
            frame(false, mask, text.as_bytes())
        }
    };
    client.extend(message(&mut client_compressor, &create, Some(MASK)));
    for event in events {
        server.extend(message(&mut server_compressor, event, None));
    }
    (client, server)
}

fn reconstruct(client: &[u8], server: &[u8]) -> usize {
    let mut connection = HttpConnection::new();
    let mut exchanges = connection.feed(Side::Request, client, 1).len();
    for piece in server.chunks(FEED) {
        exchanges += connection.feed(Side::Response, piece, 2).len();
    }
    exchanges += connection.close(3).len();
    exchanges
}

fn bench(c: &mut Criterion) {
    let (request, events) = payloads();
    let json_bytes = request.len() + events.iter().map(String::len).sum::<usize>();
    let mut group = c.benchmark_group("responses_stream");
    group.throughput(Throughput::Bytes(json_bytes as u64));
    for (name, (client, server)) in [
        ("http1_sse", http1_bytes(&request, &events)),
        ("websocket", websocket_bytes(&request, &events, false)),
        (
            "websocket_deflate",
            websocket_bytes(&request, &events, true),
        ),
    ] {
        assert_eq!(reconstruct(&client, &server), 1, "{name}");
        group.bench_function(name, |b| {
            b.iter(|| reconstruct(black_box(&client), black_box(&server)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
