//! HTTP/1.1 exchanges reassembled from a connection's two byte streams.
//!
//! Requests and responses are framed with `httparse`, paired in order (HTTP/1.1 keep-alive
//! without pipelining surprises: the n-th response answers the n-th request), de-chunked and
//! decoded (gzip, deflate, br, zstd). Streamed bodies (Server-Sent Events, NDJSON) are split
//! into their events so LLM and MCP interpreters never see transport framing.

use serde::Serialize;

/// A header as captured. Names keep their case; look them up with [`header`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// How complete a body is, so interpreters can say how far to trust what they extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Completeness {
    /// Every byte the framing announced was captured and decoded.
    #[default]
    Complete,
    /// The connection ended, or capture lost bytes, before the body was complete.
    Truncated,
    /// The bytes did not follow the framing or encoding they announced.
    Corrupt,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpRequest {
    pub method: String,
    /// Request target as sent: usually origin form (`/v1/chat/completions?x=1`).
    pub target: String,
    pub headers: Vec<Header>,
    /// Body after de-chunking and content decoding.
    #[serde(skip)]
    pub body: Vec<u8>,
    pub body_len: usize,
    pub completeness: Completeness,
    pub ts_ns: u64,
}

/// One Server-Sent Event (fields as in the WHATWG event-stream format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SseEvent {
    /// `event:` field; `None` means the default type, "message".
    pub event: Option<String>,
    /// `data:` lines joined with '\n'.
    pub data: String,
    pub id: Option<String>,
}

/// A response body that arrived as a stream of messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "items", rename_all = "snake_case")]
pub enum StreamedBody {
    /// `text/event-stream`.
    Sse(Vec<SseEvent>),
    /// `application/x-ndjson` (Ollama) or `application/json-seq`: one JSON document per line.
    Ndjson(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<Header>,
    /// Body after de-chunking and content decoding (also for streamed bodies).
    #[serde(skip)]
    pub body: Vec<u8>,
    pub body_len: usize,
    /// Set when the body is an event stream; its messages, in order.
    pub stream: Option<StreamedBody>,
    pub completeness: Completeness,
    pub ts_ns: u64,
    /// When the last body byte was seen.
    pub end_ts_ns: u64,
}

/// A request and, once seen, its response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpExchange {
    pub request: HttpRequest,
    pub response: Option<HttpResponse>,
    /// Host the request was sent to: the `Host` header, else the connected address.
    pub host: Option<String>,
    /// Connected peer port when known (from the connect event).
    pub port: Option<u16>,
    /// True when the bytes arrived through TLS (captured as plaintext from OpenSSL).
    pub tls: bool,
}

/// Case-insensitive header lookup: the first value for `name`.
pub fn header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The path without query string.
    pub fn path(&self) -> &str {
        let target = self.target.as_str();
        // Absolute-form targets (proxies) carry scheme and authority first.
        let target = target
            .strip_prefix("http://")
            .or_else(|| target.strip_prefix("https://"))
            .map(|rest| rest.find('/').map_or("/", |i| &rest[i..]))
            .unwrap_or(target);
        target.split(['?', '#']).next().unwrap_or(target)
    }

    /// The body parsed as JSON, when it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}
