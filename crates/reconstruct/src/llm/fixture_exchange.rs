//! Test support: [`HttpExchange`] values built from the recorded fixtures under
//! `tests/fixtures/llm/` (see `scripts/regenerate-fixtures-llm.sh`) or from inline
//! bodies. Streamed bodies are split here with a deliberately small SSE/NDJSON splitter; the
//! real one belongs to the HTTP layer.

use std::io::Read;
use std::path::PathBuf;

use serde_json::Value;

use crate::http::{
    header, Completeness, Header, HttpExchange, HttpRequest, HttpResponse, SseEvent, StreamedBody,
};

pub fn fixture_dir(case: &str) -> PathBuf {
    PathBuf::from(env!("AGENTSCOPE_REPO"))
        .join("tests/fixtures/llm")
        .join(case)
}

fn read(case: &str, file: &str) -> Vec<u8> {
    let path = fixture_dir(case).join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn headers_of(meta: &Value) -> Vec<Header> {
    meta["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|pair| Header {
            name: pair[0].as_str().unwrap().to_string(),
            value: pair[1].as_str().unwrap().to_string(),
        })
        .collect()
}

/// The recorded exchange `case` (`<dialect>/<case>`), as the HTTP layer would hand it over:
/// the body decoded, streamed bodies split into messages.
pub fn fixture(case: &str) -> HttpExchange {
    let request_meta: Value = serde_json::from_slice(&read(case, "request.json")).unwrap();
    let response_meta: Value = serde_json::from_slice(&read(case, "response.json")).unwrap();
    let request_body = read(case, "request.body");
    let response_headers = headers_of(&response_meta);
    let mut response_body = read(case, "response.body");
    if header(&response_headers, "content-encoding") == Some("gzip") {
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(response_body.as_slice())
            .read_to_end(&mut decoded)
            .unwrap();
        response_body = decoded;
    }
    let mut ex = exchange(
        request_meta["method"].as_str().unwrap(),
        request_meta["target"].as_str().unwrap(),
        &request_body,
        Some(response_body),
    );
    ex.request.headers = headers_of(&request_meta);
    ex.host = request_meta["host"].as_str().map(str::to_string);
    ex.port = request_meta["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok());
    ex.tls = request_meta["tls"].as_bool().unwrap_or(false);
    let response = ex.response.as_mut().unwrap();
    response.status = u16::try_from(response_meta["status"].as_u64().unwrap()).unwrap();
    response.reason = response_meta["reason"].as_str().unwrap_or("").to_string();
    response.headers = response_headers;
    response.stream = split_stream(response);
    ex
}

/// An exchange with the given request and, when `response_body` is given, a complete 200
/// response carrying it (not split into a stream).
pub fn exchange(
    method: &str,
    target: &str,
    request_body: &[u8],
    response_body: Option<Vec<u8>>,
) -> HttpExchange {
    HttpExchange {
        request: HttpRequest {
            method: method.to_string(),
            target: target.to_string(),
            headers: Vec::new(),
            body: request_body.to_vec(),
            body_len: request_body.len(),
            completeness: Completeness::Complete,
            over_budget: false,
            ts_ns: 0,
        },
        response: response_body.map(|body| HttpResponse {
            status: 200,
            reason: "OK".to_string(),
            headers: Vec::new(),
            body_len: body.len(),
            body,
            stream: None,
            completeness: Completeness::Complete,
            over_budget: false,
            ts_ns: 0,
            end_ts_ns: 0,
        }),
        host: Some("localhost".to_string()),
        port: None,
        tls: false,
        protocol: Default::default(),
    }
}

/// Splits the body by content type, like the HTTP layer: SSE events or NDJSON lines.
pub fn split_stream(response: &HttpResponse) -> Option<StreamedBody> {
    let content_type = response.header("content-type").unwrap_or("");
    let text = String::from_utf8_lossy(&response.body);
    if content_type.starts_with("text/event-stream") {
        Some(StreamedBody::Sse(sse_events(&text)))
    } else if content_type.starts_with("application/x-ndjson") {
        Some(StreamedBody::Ndjson(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect(),
        ))
    } else {
        None
    }
}

fn sse_events(text: &str) -> Vec<SseEvent> {
    let text = text.replace("\r\n", "\n");
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = SseEvent {
                event: None,
                data: String::new(),
                id: None,
            };
            let mut data_lines = Vec::new();
            for line in block.lines() {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => event.event = Some(value.to_string()),
                    "data" => data_lines.push(value),
                    "id" => event.id = Some(value.to_string()),
                    _ => {}
                }
            }
            if data_lines.is_empty() {
                return None;
            }
            event.data = data_lines.join("\n");
            Some(event)
        })
        .collect()
}

/// Keeps the first `keep` messages of a streamed response and flags it truncated, as the
/// HTTP layer does when the connection or capture ends mid-stream.
pub fn truncate_stream(ex: &mut HttpExchange, keep: usize) {
    let response = ex.response.as_mut().unwrap();
    match response.stream.as_mut().expect("a streamed response") {
        StreamedBody::Sse(events) => events.truncate(keep),
        StreamedBody::Ndjson(lines) => lines.truncate(keep),
    }
    response.completeness = Completeness::Truncated;
}

/// How many messages the streamed response holds.
pub fn stream_len(ex: &HttpExchange) -> usize {
    match ex.response.as_ref().and_then(|r| r.stream.as_ref()) {
        Some(StreamedBody::Sse(events)) => events.len(),
        Some(StreamedBody::Ndjson(lines)) => lines.len(),
        None => 0,
    }
}

/// Cuts a non-streamed response body to `len` bytes and flags it truncated.
pub fn truncate_body(ex: &mut HttpExchange, len: usize) {
    let response = ex.response.as_mut().unwrap();
    response.body.truncate(len);
    response.completeness = Completeness::Truncated;
}

/// Replaces the response body, re-splitting it when the content type says it is a stream.
pub fn set_response_body(ex: &mut HttpExchange, body: &[u8]) {
    let response = ex.response.as_mut().unwrap();
    response.body = body.to_vec();
    response.body_len = body.len();
    response.stream = split_stream(response);
}

/// A call's tool calls as (id, name, arguments), for comparing with a literal list.
pub fn tool_call_summary(call: &super::LlmCall) -> Vec<(Option<&str>, &str, &Value)> {
    call.tool_calls
        .iter()
        .map(|c| (c.id.as_deref(), c.name.as_str(), &c.arguments))
        .collect()
}
