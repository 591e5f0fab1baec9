//! HTTP/1.1 exchanges reassembled from a connection's two byte streams.
//!
//! Requests and responses are framed with `httparse`, paired in order (HTTP/1.1 keep-alive
//! without pipelining surprises: the n-th response answers the n-th request), de-chunked and
//! decoded (gzip, deflate, br, zstd). Streamed bodies (Server-Sent Events, NDJSON) are split
//! into their events so LLM and MCP interpreters never see transport framing.

use serde::Serialize;

use crate::memory_budget::{Charge, MemoryBudget, Pressure};
use crate::websocket::{self, WebSocketExchanges};

/// A header as captured. Names keep their case; look them up with [`header`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// Which wire protocol carried an exchange. Reconstruction gives every version the same
/// exchange shape, so the graph cannot tell them apart except by this (its `protocol`
/// attribute). Names are the ALPN protocol ids (RFC 7301 registry), plus `websocket`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Default)]
pub enum WireProtocol {
    #[default]
    #[serde(rename = "http/1.1")]
    Http1,
    /// HTTP/2 over TLS.
    #[serde(rename = "h2")]
    H2,
    /// HTTP/2 over a plain socket (prior knowledge or an `Upgrade: h2c`).
    #[serde(rename = "h2c")]
    H2c,
    /// Messages of a WebSocket (over HTTP/1.1 Upgrade or HTTP/2 extended CONNECT).
    #[serde(rename = "websocket")]
    WebSocket,
}

impl WireProtocol {
    /// HTTP/2 over TLS is `h2`, over a plain socket `h2c`; other protocols are the same on both.
    pub fn over(self, tls: bool) -> Self {
        match (self, tls) {
            (WireProtocol::H2 | WireProtocol::H2c, true) => WireProtocol::H2,
            (WireProtocol::H2 | WireProtocol::H2c, false) => WireProtocol::H2c,
            (other, _) => other,
        }
    }

    /// The ALPN id (or `websocket`), as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            WireProtocol::Http1 => "http/1.1",
            WireProtocol::H2 => "h2",
            WireProtocol::H2c => "h2c",
            WireProtocol::WebSocket => "websocket",
        }
    }
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
    /// The memory budget cut the body (it is also `truncated`): see docs/events.md.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub over_budget: bool,
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
    /// The memory budget cut the body or its event stream (it is also `truncated`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub over_budget: bool,
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
    /// The wire protocol that carried the exchange.
    pub protocol: WireProtocol,
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

    /// The host the request names: its `Host` header, or HTTP/2's `:authority`.
    pub fn authority(&self) -> Option<&str> {
        self.header("host").or_else(|| self.header(":authority"))
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
        crate::json_read::parse(&self.body)
    }
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        crate::json_read::parse(&self.body)
    }
}

/// Decoded bodies are capped so a hostile or broken stream cannot exhaust memory; a body cut
/// at the cap is marked truncated.
pub const MAX_BODY_BYTES: usize = crate::memory_budget::LARGEST_MESSAGE_BYTES;
/// The most of a body's declared length reserved at its first bytes: LLM requests and MCP
/// messages are a few KiB to tens of KiB, and a declaration above this is met by doubling
/// (`MessageReader::append_body`).
const DECLARED_RESERVE_AT_ONCE: usize = 64 * 1024;
/// Bytes of body per stream message (SSE event, NDJSON line) a stream may average before the
/// budget caps its message count.
const STREAM_MESSAGE_COST: usize = 32;
/// A message head larger than this is not HTTP we can use (servers reject far smaller ones).
const MAX_HEAD_BYTES: usize = 256 << 10;
const MAX_HEADERS: usize = 128;

/// Which message a byte stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

/// True when `bytes` start like an HTTP/1.x request line (a known method and a space).
pub fn looks_like_request(bytes: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"DELETE ",
        b"HEAD ",
        b"PATCH ",
        b"OPTIONS ",
        b"CONNECT ",
        b"TRACE ",
    ];
    METHODS
        .iter()
        .any(|m| bytes.len() >= m.len() && bytes[..m.len()] == **m)
}

/// True when `bytes` start like an HTTP/1.x status line.
pub fn looks_like_response(bytes: &[u8]) -> bool {
    bytes.starts_with(b"HTTP/1.")
}

#[derive(Debug, Clone)]
enum Framing {
    Head,
    Fixed {
        remaining: usize,
    },
    ChunkSize,
    ChunkData {
        remaining: usize,
    },
    ChunkDataEnd,
    Trailers,
    UntilClose,
    /// Lost sync after a gap or garbage: skip to the next plausible message start.
    Resync,
}

/// A message head, whichever HTTP version framed it (HTTP/2 fills it from pseudo-headers).
#[derive(Debug, Clone)]
pub(crate) struct MessageHead {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) status: u16,
    pub(crate) reason: String,
    pub(crate) headers: Vec<Header>,
}

/// A message whose framing is done; content decoding happens in [`finish_request`] and
/// [`finish_response`].
#[derive(Debug, Clone)]
pub(crate) struct RawMessage {
    pub(crate) head: MessageHead,
    pub(crate) body: Vec<u8>,
    pub(crate) completeness: Completeness,
    pub(crate) over_budget: bool,
    pub(crate) ts_ns: u64,
    pub(crate) end_ts_ns: u64,
}

/// Frames one direction of a connection into HTTP messages.
#[derive(Debug)]
struct MessageReader {
    side: Side,
    /// Bytes not parsed yet, kept for the next feed: a head, chunk line or trailer cut by
    /// the read, or what resynchronisation looks at after a gap.
    buf: Vec<u8>,
    framing: Framing,
    current: Option<RawMessage>,
    done: Vec<RawMessage>,
    /// Request methods not answered yet, so a response to HEAD is known to have no body.
    /// Only the response reader uses it.
    pending_methods: std::collections::VecDeque<String>,
    /// Set once the stream switched to a protocol we do not parse (101, CONNECT, HTTP/2).
    switched: bool,
    /// After a switch to WebSocket, the bytes that followed the head, until the connection
    /// knows both heads of the handshake (a WebSocket's first frames may come in the same read
    /// as the `101`, and a client that reads on another thread may have its `101` captured
    /// before its request). Cut at the largest message; what did not fit is counted.
    after_switch: Vec<u8>,
    after_switch_lost: u64,
    /// The switch was to WebSocket: bytes after it are kept in `after_switch`.
    keep_after_switch: bool,
    /// What `buf` and the messages held here take, charged to the memory budget.
    charge: Charge,
    /// Bodies are cut here (the budget's largest message).
    max_body: usize,
}

impl MessageHead {
    /// Upper bound of the heap the head takes.
    pub(crate) fn held_bytes(&self) -> usize {
        128 + self.method.len()
            + self.target.len()
            + self.reason.len()
            + self
                .headers
                .iter()
                .map(|h| 64 + h.name.len() + h.value.len())
                .sum::<usize>()
    }
}

impl RawMessage {
    pub(crate) fn held_bytes(&self) -> usize {
        self.head.held_bytes() + self.body.capacity()
    }
}

impl MessageReader {
    fn new(side: Side, budget: &MemoryBudget) -> Self {
        Self {
            side,
            buf: Vec::new(),
            framing: Framing::Head,
            current: None,
            done: Vec::new(),
            pending_methods: Default::default(),
            switched: false,
            after_switch: Vec::new(),
            after_switch_lost: 0,
            keep_after_switch: false,
            charge: Charge::new(budget),
            max_body: budget.max_message_bytes(),
        }
    }

    /// Heap held by this reader: the unparsed bytes and the messages not handed on yet.
    fn held_bytes(&self) -> usize {
        self.buf.capacity()
            + self.after_switch.capacity()
            + self.current.as_ref().map_or(0, RawMessage::held_bytes)
            + self.done.iter().map(RawMessage::held_bytes).sum::<usize>()
            + self
                .pending_methods
                .iter()
                .map(|m| 32 + m.len())
                .sum::<usize>()
    }

    /// Brings the charge in line with what is kept between feeds. Body growth was checked
    /// where it happened; unparsed bytes kept for the next feed (a head not complete yet) are
    /// dropped, as if lost in capture, when the budget has no room for them.
    fn settle(&mut self, ts_ns: u64) {
        if self.buf.is_empty() && self.buf.capacity() > 16 << 10 {
            self.buf = Vec::new();
        }
        if !self.charge.try_set(self.held_bytes()) {
            let lost = self.buf.len();
            self.buf = Vec::new();
            if lost > 0 {
                self.mark_over_budget();
                self.gap(lost as u64, ts_ns);
            }
            let held = self.held_bytes();
            self.charge.force_set(held);
        }
    }

    /// The budget cut the message in progress: flag it and count it once.
    fn mark_over_budget(&mut self) {
        if let Some(message) = self.current.as_mut() {
            message.completeness = Completeness::Truncated;
            if !message.over_budget {
                message.over_budget = true;
                self.charge.budget().note(Pressure::BodyTruncated);
            }
        }
    }

    fn feed(&mut self, bytes: &[u8], ts_ns: u64) {
        if self.switched {
            if self.keep_after_switch {
                let room = self.max_body.saturating_sub(self.after_switch.len());
                let take = bytes.len().min(room);
                self.after_switch.extend_from_slice(&bytes[..take]);
                self.after_switch_lost += (bytes.len() - take) as u64;
                self.settle(ts_ns);
            }
            return;
        }
        // With nothing left over from the last feed (a body going on, a head arriving whole:
        // most feeds) the bytes are parsed where they are, so a body byte is copied once, into
        // its message, and only what stays unparsed goes into `buf`; otherwise they are
        // appended to the leftover first. `buf` grows here only for the length of this call
        // (one event's bytes); what stays after it is charged in `settle`.
        let mut buf = std::mem::take(&mut self.buf);
        let in_place = buf.is_empty();
        if !in_place {
            buf.extend_from_slice(bytes);
        }
        let data: &[u8] = if in_place { bytes } else { &buf };
        let mut at = 0;
        while at < data.len() && !self.switched {
            match self.step(data, at, ts_ns) {
                Some(next) => at = next,
                None => break,
            }
        }
        if in_place {
            buf.extend_from_slice(&bytes[at..]);
        } else {
            buf.drain(..at);
        }
        if buf.capacity() > 64 << 10 && buf.len() < buf.capacity() / 4 {
            buf.shrink_to_fit();
        }
        self.buf = buf;
        self.settle(ts_ns);
    }

    /// Bytes that never arrived. The message in progress is marked truncated; a known body
    /// length lets us skip the hole and stay in sync, otherwise we resynchronise.
    fn gap(&mut self, lost: u64, ts_ns: u64) {
        if self.switched || lost == 0 {
            return;
        }
        let lost = usize::try_from(lost).unwrap_or(usize::MAX);
        if let Some(message) = self.current.as_mut() {
            message.completeness = Completeness::Truncated;
            message.end_ts_ns = ts_ns;
        }
        match &mut self.framing {
            Framing::Fixed { remaining } if self.buf.is_empty() && *remaining > lost => {
                *remaining -= lost;
            }
            Framing::ChunkData { remaining } if self.buf.is_empty() && *remaining > lost => {
                *remaining -= lost;
            }
            Framing::UntilClose => {}
            Framing::Head if self.current.is_none() && self.buf.is_empty() => {
                self.framing = Framing::Resync;
            }
            _ => {
                self.complete_current(ts_ns);
                self.buf.clear();
                self.framing = Framing::Resync;
            }
        }
    }

    /// The connection ended: whatever is in progress is complete only if it runs to close.
    fn close(&mut self, ts_ns: u64) {
        if let Some(mut message) = self.current.take() {
            if !matches!(self.framing, Framing::UntilClose) {
                message.completeness = Completeness::Truncated;
            }
            message.end_ts_ns = message.end_ts_ns.max(ts_ns);
            self.done.push(message);
        }
        self.framing = Framing::Head;
        self.buf.clear();
    }

    fn complete_current(&mut self, ts_ns: u64) {
        if let Some(mut message) = self.current.take() {
            message.end_ts_ns = message.end_ts_ns.max(ts_ns);
            self.done.push(message);
        }
        self.framing = Framing::Head;
    }

    /// Appends `bytes` (from the bytes being parsed) to the body in progress: every body byte
    /// passes here, and is copied here only.
    ///
    /// Growth is charged to the memory budget before it happens: a body is cut at the
    /// budget's largest message, or where the budget runs out, and flagged.
    ///
    /// `declared_left` is what the head's `Content-Length` says is still to come, these bytes
    /// included: the body's end is known, so growth stops there instead of doubling past it,
    /// and a body of up to [`DECLARED_RESERVE_AT_ONCE`] is reserved whole at its first bytes
    /// (an 8 KiB prompt sent in two writes was copied again when the second one grew it).
    /// Beyond that the declaration is not trusted up front: a peer may declare a gigabyte and
    /// send a byte.
    fn append_body(&mut self, bytes: &[u8], declared_left: Option<usize>, ts_ns: u64) {
        let Self {
            current,
            charge,
            max_body,
            ..
        } = self;
        if let Some(message) = current.as_mut() {
            let room = max_body.saturating_sub(message.body.len());
            let mut take = bytes.len().min(room);
            let need = message.body.len() + take;
            if need > message.body.capacity() {
                let capacity = message.body.capacity();
                // Amortised growth when the budget allows it, else exactly what is needed,
                // else what is left.
                let grown = need.max(capacity * 2);
                let grown = match declared_left {
                    Some(left) => {
                        let end = message.body.len().saturating_add(left);
                        grown
                            .max(end.min(DECLARED_RESERVE_AT_ONCE))
                            .min(end.max(need))
                    }
                    None => grown,
                };
                let doubled = grown.min(*max_body);
                let extra = if charge.try_grow(doubled - capacity) {
                    doubled - capacity
                } else if charge.try_grow(need - capacity) {
                    need - capacity
                } else {
                    let left = charge.budget().available();
                    charge.try_grow(left);
                    take = (capacity + left)
                        .saturating_sub(message.body.len())
                        .min(take);
                    left
                };
                message
                    .body
                    .reserve_exact(capacity + extra - message.body.len());
            }
            if take < bytes.len() {
                if !message.over_budget && (take < room || *max_body < MAX_BODY_BYTES) {
                    message.over_budget = true;
                    charge.budget().note(Pressure::BodyTruncated);
                }
                message.completeness = Completeness::Truncated;
            }
            message.body.extend_from_slice(&bytes[..take]);
            message.end_ts_ns = ts_ns;
        }
    }

    fn mark_corrupt(&mut self) {
        if let Some(message) = self.current.as_mut() {
            message.completeness = Completeness::Corrupt;
        }
    }

    /// Consumes what it can from `data[at..]` (the bytes being parsed: the leftover and this
    /// feed's, or this feed's alone); returns the new position, or `None` when more bytes are
    /// needed.
    fn step(&mut self, data: &[u8], at: usize, ts_ns: u64) -> Option<usize> {
        let available = data.len() - at;
        match self.framing.clone() {
            Framing::Head => self.parse_head(data, at, ts_ns),
            Framing::Fixed { remaining } => {
                let take = remaining.min(available);
                self.append_body(&data[at..at + take], Some(remaining), ts_ns);
                if take == remaining {
                    self.complete_current(ts_ns);
                } else {
                    self.framing = Framing::Fixed {
                        remaining: remaining - take,
                    };
                }
                Some(at + take)
            }
            Framing::UntilClose => {
                self.append_body(&data[at..], None, ts_ns);
                Some(data.len())
            }
            Framing::ChunkSize => match httparse::parse_chunk_size(&data[at..]) {
                Ok(httparse::Status::Complete((used, 0))) => {
                    self.framing = Framing::Trailers;
                    Some(at + used)
                }
                Ok(httparse::Status::Complete((used, size))) => {
                    self.framing = Framing::ChunkData {
                        remaining: usize::try_from(size).unwrap_or(usize::MAX),
                    };
                    Some(at + used)
                }
                Ok(httparse::Status::Partial) if available < 1024 => None,
                _ => {
                    self.mark_corrupt();
                    self.complete_current(ts_ns);
                    self.framing = Framing::Resync;
                    Some(at)
                }
            },
            Framing::ChunkData { remaining } => {
                let take = remaining.min(available);
                // A chunk's end is not the body's: growth capped there would reallocate at
                // every chunk.
                self.append_body(&data[at..at + take], None, ts_ns);
                self.framing = if take == remaining {
                    Framing::ChunkDataEnd
                } else {
                    Framing::ChunkData {
                        remaining: remaining - take,
                    }
                };
                Some(at + take)
            }
            Framing::ChunkDataEnd => {
                if available < 2 {
                    return None;
                }
                if &data[at..at + 2] != b"\r\n" {
                    self.mark_corrupt();
                }
                self.framing = Framing::ChunkSize;
                Some(at + 2)
            }
            Framing::Trailers => {
                // Trailer section: header lines ending with an empty line.
                let rest = &data[at..];
                if rest.starts_with(b"\r\n") {
                    self.complete_current(ts_ns);
                    return Some(at + 2);
                }
                let end = memchr::memmem::find(rest, b"\r\n\r\n")?;
                self.complete_current(ts_ns);
                Some(at + end + 4)
            }
            Framing::Resync => {
                let rest = &data[at..];
                let found = (0..rest.len()).find(|&i| {
                    (i == 0 || rest[i - 1] == b'\n')
                        && match self.side {
                            Side::Request => looks_like_request(&rest[i..]),
                            Side::Response => looks_like_response(&rest[i..]),
                        }
                });
                match found {
                    Some(i) => {
                        self.framing = Framing::Head;
                        Some(at + i)
                    }
                    // Keep a short tail: a message start may straddle this feed and the next.
                    None => Some(at + rest.len().saturating_sub(16)).filter(|&n| n > at),
                }
            }
        }
    }

    fn parse_head(&mut self, data: &[u8], at: usize, ts_ns: u64) -> Option<usize> {
        let rest = &data[at..];
        // Tolerate stray CRLFs between messages (RFC 9112 §2.2).
        if rest.starts_with(b"\r\n") {
            return Some(at + 2);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let parsed = match self.side {
            Side::Request => {
                let mut request = httparse::Request::new(&mut headers);
                match request.parse(rest) {
                    Ok(httparse::Status::Complete(used)) => Some((
                        used,
                        MessageHead {
                            method: request.method.unwrap_or_default().to_string(),
                            target: request.path.unwrap_or_default().to_string(),
                            status: 0,
                            reason: String::new(),
                            headers: owned_headers(request.headers),
                        },
                    )),
                    Ok(httparse::Status::Partial) => None,
                    Err(_) => Some((0, empty_head())),
                }
            }
            Side::Response => {
                let mut response = httparse::Response::new(&mut headers);
                match response.parse(rest) {
                    Ok(httparse::Status::Complete(used)) => Some((
                        used,
                        MessageHead {
                            method: String::new(),
                            target: String::new(),
                            status: response.code.unwrap_or_default(),
                            reason: response.reason.unwrap_or_default().to_string(),
                            headers: owned_headers(response.headers),
                        },
                    )),
                    Ok(httparse::Status::Partial) => None,
                    Err(_) => Some((0, empty_head())),
                }
            }
        };
        let Some((used, head)) = parsed else {
            if rest.len() > MAX_HEAD_BYTES {
                self.framing = Framing::Resync;
                return Some(at + 1);
            }
            return None;
        };
        if used == 0 {
            // Not HTTP here: HTTP/2's preface, or garbage after a gap.
            if rest.starts_with(b"PRI * HTTP/2.0") {
                // After an `Upgrade: h2c` (its `101` not read yet): kept for HTTP/2.
                self.switched = true;
                self.keep_after_switch = true;
                self.after_switch = rest[..rest.len().min(self.max_body)].to_vec();
                return Some(data.len());
            }
            self.framing = Framing::Resync;
            return Some(at + 1);
        }
        let framing = self.body_framing(&head);
        let websocket = match self.side {
            Side::Request => websocket::asks_for_websocket(&head.method, &head.headers),
            Side::Response => head.status == 101 && websocket::accepts_websocket(&head.headers),
        };
        let to_h2c = self.side == Side::Response && switches_to_h2c(&head);
        let upgrade = websocket
            || match self.side {
                Side::Request => head.method.eq_ignore_ascii_case("CONNECT"),
                Side::Response => head.status == 101,
            };
        let message = RawMessage {
            head,
            body: Vec::new(),
            completeness: Completeness::Complete,
            over_budget: false,
            ts_ns,
            end_ts_ns: ts_ns,
        };
        self.current = Some(message);
        match framing {
            Framing::Fixed { remaining: 0 } => self.complete_current(ts_ns),
            other => self.framing = other,
        }
        if upgrade {
            self.complete_current(ts_ns);
            self.switched = true;
            self.keep_after_switch = websocket || to_h2c;
            if self.keep_after_switch {
                self.after_switch = data[at + used..].to_vec();
            }
            return Some(data.len());
        }
        Some(at + used)
    }

    /// RFC 9112 §6.3 message body length, for the message whose head was just parsed.
    fn body_framing(&mut self, head: &MessageHead) -> Framing {
        if self.side == Side::Response {
            let interim = (100..200).contains(&head.status);
            let method = if interim {
                None
            } else {
                self.pending_methods.pop_front()
            };
            if interim
                || head.status == 204
                || head.status == 304
                || method.is_some_and(|m| m.eq_ignore_ascii_case("HEAD"))
            {
                return Framing::Fixed { remaining: 0 };
            }
        }
        let chunked = header(&head.headers, "transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        if chunked {
            return Framing::ChunkSize;
        }
        if let Some(length) = header(&head.headers, "content-length") {
            return match length.trim().parse::<usize>() {
                Ok(remaining) => Framing::Fixed { remaining },
                Err(_) => Framing::UntilClose,
            };
        }
        match self.side {
            Side::Request => Framing::Fixed { remaining: 0 },
            Side::Response => Framing::UntilClose,
        }
    }
}

fn empty_head() -> MessageHead {
    MessageHead {
        method: String::new(),
        target: String::new(),
        status: 0,
        reason: String::new(),
        headers: Vec::new(),
    }
}

fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<Header> {
    headers
        .iter()
        .map(|h| Header {
            name: h.name.to_string(),
            value: text_of(h.value).into_owned(),
        })
        .collect()
}

/// Undoes `Content-Encoding` (possibly several, applied in order). Unknown encodings leave the
/// body as it is and mark it corrupt, since nothing downstream can read it.
fn decode_content(
    body: Vec<u8>,
    encoding: Option<&str>,
    max_body: usize,
) -> (Vec<u8>, Completeness) {
    use std::io::Read as _;
    let Some(encoding) = encoding else {
        return (body, Completeness::Complete);
    };
    let mut body = body;
    let mut completeness = Completeness::Complete;
    // Encodings are listed in the order they were applied; undo them in reverse.
    for coding in encoding.rsplit(',').map(|c| c.trim().to_ascii_lowercase()) {
        let limit = max_body as u64 + 1;
        let mut out = Vec::new();
        let result = match coding.as_str() {
            "" | "identity" => continue,
            "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(&body[..])
                .take(limit)
                .read_to_end(&mut out),
            "deflate" => {
                // "deflate" is zlib-wrapped by the spec, but some servers send raw deflate.
                let zlib = flate2::read::ZlibDecoder::new(&body[..])
                    .take(limit)
                    .read_to_end(&mut out);
                if zlib.is_err() {
                    out.clear();
                    flate2::read::DeflateDecoder::new(&body[..])
                        .take(limit)
                        .read_to_end(&mut out)
                } else {
                    zlib
                }
            }
            "br" => brotli::Decompressor::new(&body[..], 4096)
                .take(limit)
                .read_to_end(&mut out),
            "zstd" => match zstd::stream::read::Decoder::new(&body[..]) {
                Ok(decoder) => decoder.take(limit).read_to_end(&mut out),
                Err(error) => Err(error),
            },
            _ => return (body, Completeness::Corrupt),
        };
        if result.is_err() {
            // A truncated compressed body still yields its decodable prefix.
            completeness = Completeness::Truncated;
            if out.is_empty() {
                return (body, Completeness::Corrupt);
            }
        }
        if out.len() > max_body {
            out.truncate(max_body);
            completeness = Completeness::Truncated;
        }
        body = out;
    }
    (body, completeness)
}

fn worse(a: Completeness, b: Completeness) -> Completeness {
    use Completeness::*;
    match (a, b) {
        (Corrupt, _) | (_, Corrupt) => Corrupt,
        (Truncated, _) | (_, Truncated) => Truncated,
        _ => Complete,
    }
}

fn content_encoding(headers: &[Header]) -> Option<&str> {
    header(headers, "content-encoding")
}

/// Content decoding of a framed request (both HTTP versions).
pub(crate) fn finish_request(message: RawMessage, max_body: usize) -> HttpRequest {
    let (body, decoded) = decode_content(
        message.body,
        content_encoding(&message.head.headers),
        max_body,
    );
    HttpRequest {
        over_budget: message.over_budget,
        method: message.head.method,
        target: message.head.target,
        body_len: body.len(),
        body,
        headers: message.head.headers,
        completeness: worse(message.completeness, decoded),
        ts_ns: message.ts_ns,
    }
}

/// Content decoding and event-stream splitting of a framed response (both HTTP versions).
pub(crate) fn finish_response(message: RawMessage, budget: &MemoryBudget) -> HttpResponse {
    let max_body = budget.max_message_bytes();
    let (body, decoded) = decode_content(
        message.body,
        content_encoding(&message.head.headers),
        max_body,
    );
    let mut completeness = worse(message.completeness, decoded);
    let mut over_budget = message.over_budget;
    let content_type = header(&message.head.headers, "content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    // Each message of a stream takes about a hundred bytes besides its text, so a body of
    // tiny messages would parse into many times its size: the count is capped by the budget.
    let max_messages = (max_body / STREAM_MESSAGE_COST).max(1024);
    let stream = if content_type.starts_with("text/event-stream") {
        let mut events = parse_event_stream_capped(&body, max_messages);
        if events.len() > max_messages {
            events.truncate(max_messages);
            events.shrink_to_fit();
            over_budget = true;
        }
        Some(StreamedBody::Sse(events))
    } else if content_type.starts_with("application/x-ndjson")
        || content_type.starts_with("application/jsonl")
        || content_type.starts_with("application/json-seq")
    {
        let mut lines = split_json_lines_capped(&body, max_messages);
        if lines.len() > max_messages {
            lines.truncate(max_messages);
            lines.shrink_to_fit();
            over_budget = true;
        }
        Some(StreamedBody::Ndjson(lines))
    } else {
        None
    };
    if over_budget && !message.over_budget {
        budget.note(Pressure::BodyTruncated);
    }
    if over_budget {
        completeness = worse(completeness, Completeness::Truncated);
    }
    HttpResponse {
        over_budget,
        status: message.head.status,
        reason: message.head.reason,
        headers: message.head.headers,
        body_len: body.len(),
        body,
        stream,
        completeness,
        ts_ns: message.ts_ns,
        end_ts_ns: message.end_ts_ns,
    }
}

/// Splits a `text/event-stream` body into events (WHATWG HTML §9.2.6). The body is already
/// complete here, so this is a plain pass over its lines; stream-oriented SSE crates expect an
/// async byte stream, which captured bytes are not. A final event without its blank line is
/// still returned: a cut stream keeps what arrived.
pub fn parse_event_stream(body: &[u8]) -> Vec<SseEvent> {
    parse_event_stream_capped(body, usize::MAX)
}

/// [`parse_event_stream`] keeping at most `max_events` events (one more than that means the
/// stream was cut).
fn parse_event_stream_capped(body: &[u8], max_events: usize) -> Vec<SseEvent> {
    let text = text_of(body);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut events = Vec::new();
    let mut event: Option<String> = None;
    let mut data: Option<String> = None;
    let mut id: Option<String> = None;
    let flush = |events: &mut Vec<SseEvent>,
                 event: &mut Option<String>,
                 data: &mut Option<String>,
                 id: &Option<String>| {
        if let Some(data) = data.take() {
            events.push(SseEvent {
                event: event.take(),
                data,
                id: id.clone(),
            });
        }
        *event = None;
    };
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            flush(&mut events, &mut event, &mut data, &id);
            if events.len() > max_events {
                return events;
            }
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => event = Some(value.to_string()),
            "data" => match data.as_mut() {
                Some(existing) => {
                    existing.push('\n');
                    existing.push_str(value);
                }
                None => data = Some(value.to_string()),
            },
            "id" if !value.contains('\0') => id = Some(value.to_string()),
            _ => {}
        }
    }
    flush(&mut events, &mut event, &mut data, &id);
    events
}

/// `bytes` as text, invalid sequences replaced as `String::from_utf8_lossy` does. Valid text
/// (nearly every header and body) is checked by `str::from_utf8`, several bytes at a time,
/// where the lossy walk went a character at a time: a few percent of a replay.
fn text_of(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Splits an NDJSON body into its non-empty lines.
pub fn split_json_lines(body: &[u8]) -> Vec<String> {
    split_json_lines_capped(body, usize::MAX)
}

/// [`split_json_lines`] keeping at most `max_lines + 1` lines.
fn split_json_lines_capped(body: &[u8], max_lines: usize) -> Vec<String> {
    text_of(body)
        .split('\n')
        .map(|line| line.trim_matches(['\r', ' ', '\t', '\u{1e}']))
        .filter(|line| !line.is_empty())
        .take(max_lines.saturating_add(1))
        .map(str::to_string)
        .collect()
}

/// One HTTP/1.1 connection seen from one process: the side that sends requests may be this
/// process (a client, e.g. an agent calling an API) or its peer (a server handling calls).
#[derive(Debug)]
pub struct HttpConnection {
    requests: MessageReader,
    responses: MessageReader,
    unanswered: std::collections::VecDeque<HttpRequest>,
    /// What `unanswered` holds, charged to the memory budget.
    unanswered_charge: Charge,
    budget: MemoryBudget,
    /// Set once a `101` switched the connection to WebSocket: every byte goes there.
    websocket: Option<Box<WebSocketExchanges>>,
    /// A `101` accepting a WebSocket whose upgrade request was not framed yet (captured
    /// after its answer: the client reads on another thread).
    early_handshake: Option<HttpResponse>,
    /// What `websocket` holds, charged to the memory budget.
    websocket_charge: Charge,
    /// After a `101` to `Upgrade: h2c`: the connection goes on in HTTP/2, the upgraded
    /// request being its stream 1 (RFC 7540 §3.2).
    upgraded: Option<Box<crate::http2::Http2Connection>>,
}

impl Default for HttpConnection {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpRequest {
    /// Upper bound of the heap the request takes.
    fn held_bytes(&self) -> usize {
        256 + self.method.len()
            + self.target.len()
            + self.body.capacity()
            + self
                .headers
                .iter()
                .map(|h| 64 + h.name.len() + h.value.len())
                .sum::<usize>()
    }
}

impl HttpConnection {
    /// A connection charging the default budget (tests and tools that parse one exchange).
    pub fn new() -> Self {
        Self::with_budget(&MemoryBudget::default())
    }

    /// A connection whose buffers and bodies are charged to `budget`.
    pub fn with_budget(budget: &MemoryBudget) -> Self {
        Self {
            requests: MessageReader::new(Side::Request, budget),
            responses: MessageReader::new(Side::Response, budget),
            unanswered: Default::default(),
            unanswered_charge: Charge::new(budget),
            budget: budget.clone(),
            websocket: None,
            early_handshake: None,
            websocket_charge: Charge::new(budget),
            upgraded: None,
        }
    }

    /// Bytes this connection holds (charged to its budget).
    pub fn held_bytes(&self) -> usize {
        self.requests.charge.bytes()
            + self.responses.charge.bytes()
            + self.unanswered_charge.bytes()
            + self.websocket_charge.bytes()
    }

    /// Feeds request-side bytes; returns exchanges completed so far.
    pub fn feed(&mut self, side: Side, bytes: &[u8], ts_ns: u64) -> Vec<PairedExchange> {
        if let Some(http2) = self.upgraded.as_mut() {
            return http2.feed(direction_of(side), bytes, ts_ns);
        }
        if let Some(websocket) = self.websocket.as_mut() {
            let out = websocket.feed(direction_of(side), bytes, ts_ns);
            self.settle_websocket();
            return out;
        }
        match side {
            Side::Request => self.requests.feed(bytes, ts_ns),
            Side::Response => {
                // A response's framing depends on its request's method, so requests framed so
                // far must be known first.
                self.sync_methods();
                self.responses.feed(bytes, ts_ns)
            }
        }
        self.take_completed(ts_ns)
    }

    /// Bytes lost in capture on one side.
    pub fn gap(&mut self, side: Side, lost: u64, ts_ns: u64) -> Vec<PairedExchange> {
        if let Some(http2) = self.upgraded.as_mut() {
            return http2.gap(direction_of(side), lost, ts_ns);
        }
        if let Some(websocket) = self.websocket.as_mut() {
            let out = websocket.gap(direction_of(side), lost, ts_ns);
            self.settle_websocket();
            return out;
        }
        match side {
            Side::Request => self.requests.gap(lost, ts_ns),
            Side::Response => self.responses.gap(lost, ts_ns),
        }
        self.take_completed(ts_ns)
    }

    fn settle(&mut self, ts_ns: u64) {
        self.requests.settle(ts_ns);
        self.responses.settle(ts_ns);
        let held: usize = self.unanswered.iter().map(HttpRequest::held_bytes).sum();
        if !self.unanswered_charge.try_set(held) {
            // The newest request waiting for its answer gives up its body.
            if let Some(request) = self.unanswered.back_mut() {
                if !request.body.is_empty() {
                    request.body = Vec::new();
                    request.completeness = Completeness::Truncated;
                    if !request.over_budget {
                        request.over_budget = true;
                        self.budget.note(Pressure::BodyTruncated);
                    }
                }
            }
            let held: usize = self.unanswered.iter().map(HttpRequest::held_bytes).sum();
            self.unanswered_charge.force_set(held);
        }
    }

    /// The connection closed (or capture stopped): flush everything, partial records included.
    pub fn close(&mut self, ts_ns: u64) -> Vec<PairedExchange> {
        if let Some(http2) = self.upgraded.as_mut() {
            return http2.close(ts_ns);
        }
        if let Some(websocket) = self.websocket.as_mut() {
            let out = websocket.finish(ts_ns);
            self.websocket = None;
            self.websocket_charge.force_set(0);
            return out;
        }
        self.requests.close(ts_ns);
        self.sync_methods();
        self.responses.close(ts_ns);
        let mut out = self.take_completed(ts_ns);
        if let Some(response) = self.early_handshake.take() {
            // Its request never came: the handshake alone, as capture saw it.
            self.pair(None, response, ts_ns, &mut out);
            if let Some(websocket) = self.websocket.as_mut() {
                out.extend(websocket.finish(ts_ns));
            }
        }
        for request in self.unanswered.drain(..) {
            out.push(PairedExchange {
                request,
                response: None,
                protocol: WireProtocol::Http1,
            });
        }
        self.settle(ts_ns);
        out
    }

    fn sync_methods(&mut self) {
        for message in self.requests.done.drain(..) {
            self.responses
                .pending_methods
                .push_back(message.head.method.clone());
            self.unanswered
                .push_back(finish_request(message, self.requests.max_body));
        }
    }

    fn take_completed(&mut self, ts_ns: u64) -> Vec<PairedExchange> {
        self.sync_methods();
        let mut out = Vec::new();
        let responses: Vec<RawMessage> = self.responses.done.drain(..).collect();
        for message in responses {
            if (100..200).contains(&message.head.status) && message.head.status != 101 {
                continue;
            }
            if switches_to_h2c(&message.head) && self.upgraded.is_none() {
                if let Some(request) = self.unanswered.pop_front() {
                    out.extend(self.upgrade_to_h2c(request, ts_ns));
                    continue;
                }
            }
            let response = finish_response(message, &self.budget);
            if self.unanswered.is_empty()
                && response.status == 101
                && websocket::accepts_websocket(&response.headers)
            {
                self.early_handshake = Some(response);
                continue;
            }
            let request = self.unanswered.pop_front();
            self.pair(request, response, ts_ns, &mut out);
        }
        if !self.unanswered.is_empty() {
            if let Some(response) = self.early_handshake.take() {
                let request = self.unanswered.pop_front();
                self.pair(request, response, ts_ns, &mut out);
            }
        }
        self.settle(ts_ns);
        out
    }

    /// The server switched to HTTP/2 (`101` to `Upgrade: h2c`): `request` becomes stream 1
    /// of an HTTP/2 connection that reads what follows, starting with the bytes each side
    /// sent after its HTTP/1.1 part.
    fn upgrade_to_h2c(&mut self, request: HttpRequest, ts_ns: u64) -> Vec<PairedExchange> {
        let mut http2 = Box::new(crate::http2::Http2Connection::upgraded(
            &self.budget,
            request,
            ts_ns,
        ));
        let mut out = Vec::new();
        // The client's preface, if already read (held since), or what it had begun.
        if !self.requests.switched {
            self.requests.switched = true;
            self.requests.after_switch = std::mem::take(&mut self.requests.buf);
        }
        for (direction, reader) in [
            (crate::event::Direction::Ingress, &mut self.responses),
            (crate::event::Direction::Egress, &mut self.requests),
        ] {
            reader.keep_after_switch = false;
            let held = std::mem::take(&mut reader.after_switch);
            out.extend(http2.feed(direction, &held, ts_ns));
            let lost = std::mem::take(&mut reader.after_switch_lost);
            if lost > 0 {
                out.extend(http2.gap(direction, lost, ts_ns));
            }
        }
        self.upgraded = Some(http2);
        out
    }

    /// A response with its request (`None`: capture began mid-exchange): an exchange, or the
    /// handshake that switches the connection to WebSocket.
    fn pair(
        &mut self,
        request: Option<HttpRequest>,
        response: HttpResponse,
        ts_ns: u64,
        out: &mut Vec<PairedExchange>,
    ) {
        let request = request.unwrap_or_else(|| HttpRequest {
            method: String::new(),
            target: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
            body_len: 0,
            completeness: Completeness::Truncated,
            over_budget: false,
            ts_ns: response.ts_ns,
        });
        let asked = websocket::asks_for_websocket(&request.method, &request.headers);
        let switches =
            websocket::is_websocket_handshake(&request.method, &request.headers, response.status);
        let paired = PairedExchange {
            request,
            response: Some(response),
            protocol: WireProtocol::Http1,
        };
        if !switches {
            if asked && self.requests.switched {
                // The server did not switch: the client's bytes after its request are HTTP.
                self.requests.switched = false;
                self.requests.keep_after_switch = false;
                let held = std::mem::take(&mut self.requests.after_switch);
                self.requests.feed(&held, ts_ns);
                self.sync_methods();
            }
            out.push(paired);
            return;
        }
        // The connection is a WebSocket from here on; the handshake comes out only if its
        // messages become no exchange of their own (see `WebSocketExchanges`).
        let mut websocket = Box::new(WebSocketExchanges::after_handshake(paired, &self.budget));
        for (direction, reader) in [
            (crate::event::Direction::Egress, &mut self.requests),
            (crate::event::Direction::Ingress, &mut self.responses),
        ] {
            reader.switched = true;
            reader.keep_after_switch = false;
            let held = std::mem::take(&mut reader.after_switch);
            out.extend(websocket.feed(direction, &held, ts_ns));
            let lost = std::mem::take(&mut reader.after_switch_lost);
            if lost > 0 {
                out.extend(websocket.gap(direction, lost, ts_ns));
            }
        }
        self.websocket = Some(websocket);
        self.settle_websocket();
    }

    /// Charges what the WebSocket holds; when it does not fit, what is in flight there is
    /// given up (flagged).
    fn settle_websocket(&mut self) {
        let Some(websocket) = self.websocket.as_mut() else {
            return;
        };
        if !self.websocket_charge.try_set(websocket.held_bytes()) {
            websocket.shed();
            self.websocket_charge.force_set(websocket.held_bytes());
        }
    }
}

/// A request with its response, before connection details are attached.
#[derive(Debug, Clone)]
pub struct PairedExchange {
    pub request: HttpRequest,
    pub response: Option<HttpResponse>,
    /// What the parser read (HTTP/2 without knowing TLS: the reconstructor makes it `h2c`
    /// on a plain socket, see [`WireProtocol::over`]).
    pub protocol: WireProtocol,
}

/// HTTP/1.1 as a wire parser: the client's bytes are requests, the server's responses. It
/// charges the budget itself, message by message, so it never reports bytes to charge.
impl super::wire::WireParser for HttpConnection {
    fn on_bytes(
        &mut self,
        direction: crate::event::Direction,
        ts_ns: u64,
        bytes: &[u8],
        out: &mut Vec<super::wire::WireMessage>,
    ) {
        let exchanges = self.feed(side_of(direction), bytes, ts_ns);
        out.extend(exchanges.into_iter().map(super::wire::WireMessage::Http));
    }

    fn on_gap(
        &mut self,
        direction: crate::event::Direction,
        len: u64,
        ts_ns: u64,
        out: &mut Vec<super::wire::WireMessage>,
    ) {
        let exchanges = self.gap(side_of(direction), len, ts_ns);
        out.extend(exchanges.into_iter().map(super::wire::WireMessage::Http));
    }

    fn finish(&mut self, ts_ns: u64, out: &mut Vec<super::wire::WireMessage>) {
        out.extend(
            self.close(ts_ns)
                .into_iter()
                .map(super::wire::WireMessage::Http),
        );
    }

    fn held_bytes(&self) -> Option<usize> {
        // HTTP/1.1 charges as it reads (see `with_budget`); after an h2c upgrade, HTTP/2
        // reports what it holds, as on a connection that started with it.
        self.upgraded.as_ref().map(|http2| http2.held())
    }

    fn on_over_budget(
        &mut self,
        direction: crate::event::Direction,
        ts_ns: u64,
        out: &mut Vec<super::wire::WireMessage>,
    ) -> super::wire::OverBudget {
        match self.upgraded.as_mut() {
            Some(http2) => http2.on_over_budget(direction, ts_ns, out),
            // Never asked before: HTTP refuses what does not fit as it reads.
            None => super::wire::OverBudget::Continue,
        }
    }
}

/// A `101` switching to HTTP/2 without TLS (`Upgrade: h2c`).
fn switches_to_h2c(head: &MessageHead) -> bool {
    head.status == 101
        && header(&head.headers, "upgrade").is_some_and(|u| u.trim().eq_ignore_ascii_case("h2c"))
}

/// The direction (client's view) that carries a side's messages.
fn direction_of(side: Side) -> crate::event::Direction {
    match side {
        Side::Request => crate::event::Direction::Egress,
        Side::Response => crate::event::Direction::Ingress,
    }
}

/// Which message a direction (client's view) carries.
fn side_of(direction: crate::event::Direction) -> Side {
    match direction {
        crate::event::Direction::Egress => Side::Request,
        _ => Side::Response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Direction;
    use crate::wire::test_harness as harness;
    use proptest::prelude::*;
    use std::io::Write as _;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn chunked(body: &[u8], piece: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for part in body.chunks(piece) {
            out.extend_from_slice(format!("{:x};ext=1\r\n", part.len()).as_bytes());
            out.extend_from_slice(part);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    const SSE: &str = "event: message_start\ndata: {\"a\":1}\n\n: ping comment\r\ndata: line one\r\ndata: line two\r\n\r\ndata: [DONE]\n\n";

    fn sse_exchange_bytes() -> (Vec<u8>, Vec<u8>) {
        let request =
            b"POST /v1/messages HTTP/1.1\r\nHost: api.anthropic.com\r\nContent-Length: 2\r\n\r\n{}"
                .to_vec();
        let mut response = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        response.extend(chunked(SSE.as_bytes(), 7));
        (request, response)
    }

    #[test]
    fn keep_alive_pairs_requests_with_responses_in_order() {
        let mut conn = HttpConnection::new();
        let requests = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcHEAD /c HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(conn.feed(Side::Request, requests, 1).is_empty());
        let responses = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nAHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nBBHTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n";
        let done = conn.feed(Side::Response, responses, 1);
        let summary: Vec<_> = done
            .iter()
            .map(|e| {
                let r = e.response.as_ref().unwrap();
                (
                    e.request.target.as_str(),
                    e.request.body.clone(),
                    r.status,
                    r.body.clone(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("/a", vec![], 200, b"A".to_vec()),
                ("/b", b"abc".to_vec(), 201, b"BB".to_vec()),
                // HEAD: Content-Length describes the resource, there is no body.
                ("/c", vec![], 200, vec![]),
            ]
        );
        assert!(done
            .iter()
            .all(|e| e.request.completeness == Completeness::Complete));
    }

    #[test]
    fn chunked_sse_split_at_every_position_gives_the_same_events() {
        let (request, response) = sse_exchange_bytes();
        let mut reference = HttpConnection::new();
        reference.feed(Side::Request, &request, 1);
        let whole = reference.feed(Side::Response, &response, 2);
        assert_eq!(whole.len(), 1);
        let expected = whole[0].response.clone().unwrap();
        let Some(StreamedBody::Sse(events)) = &expected.stream else {
            panic!("no SSE stream: {expected:?}");
        };
        assert_eq!(
            events,
            &vec![
                SseEvent {
                    event: Some("message_start".into()),
                    data: "{\"a\":1}".into(),
                    id: None
                },
                SseEvent {
                    event: None,
                    data: "line one\nline two".into(),
                    id: None
                },
                SseEvent {
                    event: None,
                    data: "[DONE]".into(),
                    id: None
                },
            ]
        );
        let summarise = |out| {
            harness::exchanges(out)
                .iter()
                .map(|e| {
                    let response = e.response.as_ref().unwrap();
                    (response.stream.clone(), response.completeness)
                })
                .collect::<Vec<_>>()
        };
        harness::assert_same_at_every_cut(
            "sse",
            HttpConnection::new,
            &request,
            &response,
            Direction::Ingress,
            1..response.len(),
            summarise,
            &vec![(expected.stream.clone(), Completeness::Complete)],
        );
    }

    #[test]
    fn byte_by_byte_feeding_matches_whole_feeding() {
        let (request, response) = sse_exchange_bytes();
        let chunks = [
            (Direction::Egress, request, 1),
            (Direction::Ingress, response, 2),
        ];
        let (done, _) = harness::run(HttpConnection::new(), &harness::rechunk(&chunks, 1), 3);
        let done = harness::exchanges(done);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].request.body, b"{}");
        assert!(
            matches!(done[0].response.as_ref().unwrap().stream, Some(StreamedBody::Sse(ref e)) if e.len() == 3)
        );
    }

    #[test]
    fn every_content_encoding_is_decoded() {
        let body = br#"{"model":"gpt-4o","choices":[]}"#.repeat(50);
        let deflate_zlib = {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&body).unwrap();
            e.finish().unwrap()
        };
        let deflate_raw = {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&body).unwrap();
            e.finish().unwrap()
        };
        let br = {
            let mut out = Vec::new();
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(&body).unwrap();
            }
            out
        };
        let zstd = zstd::stream::encode_all(&body[..], 3).unwrap();
        let gzip_then_chunked = gzip(&body);
        for (encoding, encoded, chunk) in [
            ("gzip", gzip(&body), false),
            ("gzip", gzip_then_chunked, true),
            ("deflate", deflate_zlib, false),
            ("deflate", deflate_raw, false),
            ("br", br, false),
            ("zstd", zstd, true),
        ] {
            let mut response =
                format!("HTTP/1.1 200 OK\r\nContent-Encoding: {encoding}\r\n").into_bytes();
            if chunk {
                response.extend(b"Transfer-Encoding: chunked\r\n\r\n");
                response.extend(chunked(&encoded, 100));
            } else {
                response.extend(format!("Content-Length: {}\r\n\r\n", encoded.len()).as_bytes());
                response.extend(&encoded);
            }
            let mut conn = HttpConnection::new();
            conn.feed(Side::Request, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1);
            let done = conn.feed(Side::Response, &response, 2);
            let got = done[0].response.as_ref().unwrap();
            assert_eq!(got.body, body, "{encoding} chunked={chunk}");
            assert_eq!(got.completeness, Completeness::Complete, "{encoding}");
        }
    }

    #[test]
    fn truncated_compressed_body_keeps_its_prefix_and_is_flagged() {
        let body = b"0123456789".repeat(10_000);
        let encoded = gzip(&body);
        let mut response = format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            encoded.len()
        )
        .into_bytes();
        response.extend(&encoded[..encoded.len() / 2]);
        let mut conn = HttpConnection::new();
        conn.feed(Side::Request, b"GET / HTTP/1.1\r\n\r\n", 1);
        assert!(conn.feed(Side::Response, &response, 2).is_empty());
        let done = conn.close(3);
        let got = done[0].response.as_ref().unwrap();
        assert_eq!(got.completeness, Completeness::Truncated);
        assert!(!got.body.is_empty() && body.starts_with(&got.body));
    }

    #[test]
    fn ndjson_stream_is_split_into_lines() {
        let lines = "{\"message\":{\"content\":\"He\"},\"done\":false}\n{\"message\":{\"content\":\"llo\"},\"done\":false}\n{\"done\":true,\"eval_count\":2}\n";
        let mut response =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        response.extend(chunked(lines.as_bytes(), 5));
        let mut conn = HttpConnection::new();
        conn.feed(
            Side::Request,
            b"POST /api/chat HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            1,
        );
        let done = conn.feed(Side::Response, &response, 2);
        let Some(StreamedBody::Ndjson(items)) = &done[0].response.as_ref().unwrap().stream else {
            panic!()
        };
        assert_eq!(items.len(), 3);
        assert!(items[2].contains("eval_count"));
    }

    #[test]
    fn response_cut_by_close_is_truncated_and_unanswered_request_is_kept() {
        let mut conn = HttpConnection::new();
        conn.feed(
            Side::Request,
            b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
            1,
        );
        conn.feed(
            Side::Response,
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            2,
        );
        let done = conn.close(3);
        assert_eq!(done.len(), 2);
        let first = done[0].response.as_ref().unwrap();
        assert_eq!(
            (first.body.as_slice(), first.completeness),
            (&b"abc"[..], Completeness::Truncated)
        );
        assert_eq!(done[1].request.target, "/b");
        assert!(done[1].response.is_none());
    }

    #[test]
    fn response_without_length_runs_until_close() {
        let mut conn = HttpConnection::new();
        conn.feed(Side::Request, b"GET / HTTP/1.0\r\n\r\n", 1);
        conn.feed(Side::Response, b"HTTP/1.0 200 OK\r\n\r\nhello ", 2);
        conn.feed(Side::Response, b"world", 3);
        let done = conn.close(4);
        let got = done[0].response.as_ref().unwrap();
        assert_eq!(
            (got.body.as_slice(), got.completeness),
            (&b"hello world"[..], Completeness::Complete)
        );
    }

    #[test]
    fn a_declared_body_is_reserved_once_and_a_large_declaration_is_not_trusted_up_front() {
        // 8,192 bytes in three writes: reserved whole at the first, never grown (doubling
        // from the first write's 3,000 bytes ended at 12,000, having copied the body twice).
        let mut conn = HttpConnection::new();
        conn.feed(
            Side::Request,
            b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 8192\r\n\r\n",
            1,
        );
        for (i, len) in [3000, 3000, 2192].into_iter().enumerate() {
            conn.feed(Side::Request, &vec![b'a'; len], 2 + i as u64);
        }
        let done = conn.feed(
            Side::Response,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            5,
        );
        assert_eq!(done[0].request.body.len(), 8192);
        assert_eq!(done[0].request.body.capacity(), 8192);

        // A gigabyte declared and ten bytes sent: what is held is bounded by the reservation
        // made at once, not by the declaration.
        let mut conn = HttpConnection::new();
        conn.feed(
            Side::Request,
            b"POST /upload HTTP/1.1\r\nContent-Length: 1000000000\r\n\r\n0123456789",
            1,
        );
        let held = conn.held_bytes();
        assert!(held >= DECLARED_RESERVE_AT_ONCE, "{held}");
        assert!(held < DECLARED_RESERVE_AT_ONCE + 4096, "{held}");
    }

    #[test]
    fn gap_inside_fixed_body_keeps_sync_for_the_next_message() {
        let mut conn = HttpConnection::new();
        conn.feed(
            Side::Request,
            b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123",
            1,
        );
        conn.gap(Side::Request, 4, 2);
        conn.feed(Side::Request, b"89GET /next HTTP/1.1\r\n\r\n", 3);
        let done = conn.feed(
            Side::Response,
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            4,
        );
        assert_eq!(done.len(), 2);
        assert_eq!(done[0].request.completeness, Completeness::Truncated);
        assert_eq!(done[0].request.body, b"012389");
        assert_eq!(done[1].request.target, "/next");
        assert_eq!(done[1].request.completeness, Completeness::Complete);
    }

    #[test]
    fn gap_in_headers_resynchronises_on_the_next_request_line() {
        let mut conn = HttpConnection::new();
        conn.feed(
            Side::Request,
            b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Enc",
            1,
        );
        conn.gap(Side::Request, 100, 2);
        conn.feed(
            Side::Request,
            b"garbage\r\nmore garbage\r\nGET /ok HTTP/1.1\r\nHost: y\r\n\r\n",
            3,
        );
        let done = conn.close(4);
        let targets: Vec<_> = done.iter().map(|e| e.request.target.as_str()).collect();
        assert_eq!(targets, vec!["/ok"]);
    }

    #[test]
    fn corrupt_chunk_size_flags_the_message_and_does_not_panic() {
        let mut conn = HttpConnection::new();
        conn.feed(Side::Request, b"GET / HTTP/1.1\r\n\r\n", 1);
        let done = conn.feed(
            Side::Response,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloZZZZ\r\nnot-hex\r\n",
            2,
        );
        let done: Vec<_> = done.into_iter().chain(conn.close(3)).collect();
        assert_eq!(
            done[0].response.as_ref().unwrap().completeness,
            Completeness::Corrupt
        );
    }

    #[test]
    fn upgrade_and_http2_stop_parsing() {
        let mut conn = HttpConnection::new();
        conn.feed(
            Side::Request,
            b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            1,
        );
        // WebSocket from here on (crate::websocket): the handshake comes out at the end, as
        // its messages are no calls.
        let done = conn.feed(
            Side::Response,
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x05hello",
            2,
        );
        assert!(done.is_empty());
        assert!(conn
            .feed(Side::Response, b"HTTP/1.1 200 OK\r\n\r\n", 3)
            .is_empty());
        let done = conn.close(4);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].response.as_ref().unwrap().status, 101);
        // Any other upgrade (h2c here) is not read further.
        let mut conn = HttpConnection::new();
        conn.feed(Side::Request, b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n", 1);
        let done = conn.feed(
            Side::Response,
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x00\x00",
            2,
        );
        assert_eq!(done.len(), 1);
        assert!(conn
            .feed(Side::Response, b"HTTP/1.1 200 OK\r\n\r\n", 3)
            .is_empty());
        let mut h2 = HttpConnection::new();
        assert!(h2
            .feed(Side::Request, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 1)
            .is_empty());
        assert!(h2.close(2).is_empty());
    }

    /// `Upgrade: h2c` (RFC 7540 §3.2, as `curl --http2 http://…` asks): the request read in
    /// HTTP/1.1 is stream 1, its answer comes in HTTP/2 after the `101`, the client's preface
    /// follows and later streams are HTTP/2 exchanges; the same whatever the cuts.
    #[test]
    fn h2c_upgrade_continues_in_http2_with_the_request_as_stream_1() {
        use agentscope_http2_wire::frame::{encode_frame, flag, kind, PREFACE};
        let body =
            br#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let mut request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        let mut client = PREFACE.to_vec();
        client.extend(encode_frame(kind::SETTINGS, 0, 0, &[]));
        client.extend(encode_frame(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            3,
            &[0x82, 0x84],
        ));
        let mut server =
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                .to_vec();
        server.extend(encode_frame(kind::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
        let mut head = vec![0x88, 0x0f, 0x10, 17];
        head.extend_from_slice(b"text/event-stream");
        server.extend(encode_frame(kind::HEADERS, flag::END_HEADERS, 1, &head));
        server.extend(encode_frame(
            kind::DATA,
            0,
            1,
            b"data: {\"choices\":[]}\n\n",
        ));
        server.extend(encode_frame(
            kind::DATA,
            flag::END_STREAM,
            1,
            b"data: [DONE]\n\n",
        ));
        let later = encode_frame(
            kind::HEADERS,
            flag::END_HEADERS | flag::END_STREAM,
            3,
            &[0x88],
        );

        let run = |cut: usize| {
            let mut conn = HttpConnection::new();
            let mut out = conn.feed(Side::Request, &request, 1);
            out.extend(conn.feed(Side::Response, &server[..cut], 2));
            out.extend(conn.feed(Side::Response, &server[cut..], 3));
            out.extend(conn.feed(Side::Request, &client, 4));
            out.extend(conn.feed(Side::Response, &later, 5));
            out.extend(conn.close(6));
            out
        };
        let exchanges = run(server.len());
        assert_eq!(exchanges.len(), 2, "{exchanges:#?}");
        let first = &exchanges[0];
        assert_eq!(first.protocol, WireProtocol::H2);
        assert_eq!(first.request.target, "/v1/chat/completions");
        assert_eq!(first.request.body, body);
        let response = first.response.as_ref().expect("stream 1's answer");
        assert_eq!(response.status, 200);
        assert_eq!(response.completeness, Completeness::Complete);
        assert!(String::from_utf8_lossy(&response.body).contains("[DONE]"));
        assert_eq!(exchanges[1].request.target, "/");
        assert_eq!(exchanges[1].response.as_ref().map(|r| r.status), Some(200));
        for cut in 0..server.len() {
            let cut_run = run(cut);
            assert_eq!(cut_run.len(), 2, "cut at {cut}");
            assert_eq!(
                cut_run[0]
                    .response
                    .as_ref()
                    .map(|r| (r.status, r.body.clone())),
                first.response.as_ref().map(|r| (r.status, r.body.clone())),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn request_path_strips_query_and_absolute_form() {
        let mut request = HttpRequest {
            method: "GET".into(),
            target: "http://proxy.example/v1/x?y=1".into(),
            headers: vec![],
            body: vec![],
            body_len: 0,
            completeness: Completeness::Complete,
            over_budget: false,
            ts_ns: 0,
        };
        assert_eq!(request.path(), "/v1/x");
        request.target = "/v1beta/models/gemini:streamGenerateContent?alt=sse".into();
        assert_eq!(
            request.path(),
            "/v1beta/models/gemini:streamGenerateContent"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(request in proptest::collection::vec(any::<u8>(), 0..600),
                                       response in proptest::collection::vec(any::<u8>(), 0..600),
                                       split in 0usize..600, gap in 0u64..40) {
            let mut conn = HttpConnection::new();
            let split = split.min(request.len());
            conn.feed(Side::Request, &request[..split], 1);
            conn.gap(Side::Request, gap, 2);
            conn.feed(Side::Request, &request[split..], 3);
            conn.feed(Side::Response, &response, 4);
            conn.close(5);
        }

        #[test]
        fn mutated_valid_exchanges_never_panic(flip in 0usize..400, value in any::<u8>(), split in 0usize..400) {
            let (mut request, mut response) = sse_exchange_bytes();
            request.extend(b"POST /x HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nabcde");
            let len = response.len();
            response[flip % len] = value;
            let mut conn = HttpConnection::new();
            conn.feed(Side::Request, &request, 1);
            let split = split.min(response.len());
            conn.feed(Side::Response, &response[..split], 2);
            conn.feed(Side::Response, &response[split..], 3);
            conn.close(4);
        }
    }
}
