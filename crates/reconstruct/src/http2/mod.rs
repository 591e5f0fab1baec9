//! HTTP/2 exchanges reassembled from a connection's two byte streams (RFC 9113).
//!
//! Each direction is read on its own: frames by [`frame`], header blocks by
//! [`header_block`] (HPACK, one decoder per direction, never shared across connections).
//! Every stream the client opens becomes one request/response exchange, the same
//! [`PairedExchange`] HTTP/1.1 produces, content-decoded and split into Server-Sent Events or
//! NDJSON by the same code ([`crate::http::finish_request`], [`crate::http::finish_response`]),
//! so the LLM, MCP, vector-database and object-store interpreters apply unchanged.
//! Pseudo-headers stay in the header list as sent (`:method`, `:path`, `:authority`,
//! `:status`); trailers (gRPC's `grpc-status`) are appended to it.
//!
//! What cannot be known is said, never guessed:
//! - bytes lost inside a DATA payload cut that stream's body (flagged truncated) and the
//!   reading goes on; bytes lost anywhere else lose the direction's frame boundaries and make
//!   its HPACK table unknowable: every message in flight that way is flagged, and the
//!   direction is not read further ([`Http2Connection::degraded`] says why);
//! - broken framing or HPACK (a hostile or corrupt peer) drops the connection's state: what
//!   is in flight comes out flagged corrupt, and nothing further is parsed.
//!
//! Memory stays bounded: at most [`MAX_STREAMS`] streams in flight (the oldest is flushed,
//! flagged, to make room), header blocks and lists bounded in [`header_block`], control
//! frames in [`frame`], each body at the budget's largest message, and what the connection
//! holds is reported to the stream assembler, which charges it to the memory budget.

pub mod frame;
pub mod header_block;
pub use agentscope_http2_wire::huffman;

use std::collections::BTreeMap;

use crate::event::Direction;
use crate::http::{self, Completeness, MessageHead, PairedExchange, RawMessage};
use crate::memory_budget::{MemoryBudget, Pressure};
use crate::websocket::{self, Handshake, WebSocketExchanges};
use crate::wire::{OverBudget, WireMessage, WireParser};

use frame::{flag, kind, FrameEvent, FrameHeader, FrameReader, GapEffect};
use header_block::{BlockDecoder, DecodedBlock};

/// Streams in flight per connection. Servers commonly allow 100 to 250 concurrent streams;
/// beyond this the oldest is flushed (flagged truncated) to make room.
pub const MAX_STREAMS: usize = 256;

pub use agentscope_http2_wire::frame::{
    looks_like_frame_chain, looks_like_preface, looks_like_server_settings,
};

/// Who sent `bytes`, the first seen of a connection already under way that are a chain of
/// frames ([`looks_like_frame_chain`]): the client when its first header block holds request
/// pseudo-headers (`:method`, `:path`), the server when it holds `:status` (read without the
/// dynamic table, which is unknown). `None` when the bytes hold no header block that says.
pub fn attached_sender_is_client(bytes: &[u8]) -> Option<bool> {
    let mut at = 0;
    while let Some(raw) = bytes
        .get(at..at + frame::HEADER_LEN)
        .and_then(|b| <&[u8; frame::HEADER_LEN]>::try_from(b).ok())
    {
        let header = FrameHeader::parse(raw);
        let payload_at = at + frame::HEADER_LEN;
        at = payload_at + header.length;
        if header.kind == kind::PUSH_PROMISE {
            return Some(false);
        }
        if header.kind != kind::HEADERS {
            continue;
        }
        let payload = bytes.get(payload_at..at.min(bytes.len()))?;
        let range = frame::header_fragment(&header, payload).ok()?;
        let decoded = header_block::decode_without_table(&payload[range]);
        let has = |name: &str| decoded.fields.iter().any(|f| f.name == name);
        if has(":method") || has(":path") {
            return Some(true);
        }
        if has(":status") {
            return Some(false);
        }
    }
    None
}

const CLIENT: usize = 0;
const SERVER: usize = 1;

fn slot(direction: Direction) -> usize {
    match direction {
        Direction::Egress => CLIENT,
        _ => SERVER,
    }
}

/// One request or response of a stream, as framed so far.
#[derive(Debug)]
struct Message {
    /// Set by the message's HEADERS; `None` until then (or if they were never captured).
    head: Option<MessageHead>,
    body: Vec<u8>,
    completeness: Completeness,
    over_budget: bool,
    /// END_STREAM was seen.
    ended: bool,
    ts_ns: u64,
    end_ts_ns: u64,
}

impl Message {
    fn new(ts_ns: u64) -> Self {
        Self {
            head: None,
            body: Vec::new(),
            completeness: Completeness::Complete,
            over_budget: false,
            ended: false,
            ts_ns,
            end_ts_ns: ts_ns,
        }
    }

    fn held_bytes(&self) -> usize {
        96 + self.head.as_ref().map_or(0, MessageHead::held_bytes) + self.body.capacity()
    }

    fn flag(&mut self, completeness: Completeness) {
        if completeness == Completeness::Corrupt || self.completeness == Completeness::Complete {
            self.completeness = completeness;
        }
    }

    /// The framed message, flagged truncated if it never ended.
    fn into_raw(mut self) -> RawMessage {
        if !self.ended {
            self.flag(Completeness::Truncated);
        }
        RawMessage {
            head: self.head.unwrap_or_else(|| MessageHead {
                method: String::new(),
                target: String::new(),
                status: 0,
                reason: String::new(),
                headers: Vec::new(),
            }),
            body: self.body,
            completeness: self.completeness,
            over_budget: self.over_budget,
            ts_ns: self.ts_ns,
            end_ts_ns: self.end_ts_ns,
        }
    }
}

/// One stream: the client's request and the server's response.
#[derive(Debug)]
struct Stream {
    messages: [Message; 2],
    /// Set when the server accepted an extended CONNECT for WebSocket (RFC 8441): the
    /// stream's DATA in both directions are WebSocket frames, read there.
    websocket: Option<Box<WebSocketExchanges>>,
}

/// A header block waiting for its CONTINUATION frames.
#[derive(Debug)]
struct PendingBlock {
    stream_id: u32,
    /// PUSH_PROMISE blocks are decoded (they change the table) and dropped.
    promise: bool,
    end_stream: bool,
    fragment: Vec<u8>,
}

/// One HTTP/2 connection, read from both directions (client's view).
#[derive(Debug)]
pub struct Http2Connection {
    budget: MemoryBudget,
    max_body: usize,
    readers: [FrameReader; 2],
    decoders: [BlockDecoder; 2],
    pending: [Option<PendingBlock>; 2],
    streams: BTreeMap<u32, Stream>,
    /// The highest stream the client opened: a HEADERS at or below it on a stream no longer
    /// tracked is a late trailer, not a new request.
    last_opened: u32,
    done: Vec<PairedExchange>,
    /// Why the connection's state was dropped (broken framing or HPACK).
    failed: Option<String>,
    /// Why part of the connection could not be followed (bytes lost).
    degraded: Option<String>,
    /// Attached mid-connection ([`Self::attached`]).
    attached: bool,
    /// Stream 1's request, read in HTTP/1.1 before an h2c upgrade ([`Self::upgraded`]).
    upgraded_request: Option<http::HttpRequest>,
}

impl Default for Http2Connection {
    fn default() -> Self {
        Self::new()
    }
}

impl Http2Connection {
    /// A connection charging the default budget (tests and tools).
    pub fn new() -> Self {
        Self::with_budget(&MemoryBudget::default())
    }

    /// A connection opened with the client preface (both directions seen from the start).
    pub fn with_budget(budget: &MemoryBudget) -> Self {
        Self {
            budget: budget.clone(),
            max_body: budget.max_message_bytes(),
            readers: [FrameReader::new(true), FrameReader::new(false)],
            decoders: [BlockDecoder::new(), BlockDecoder::new()],
            pending: [None, None],
            streams: BTreeMap::new(),
            last_opened: 0,
            done: Vec::new(),
            failed: None,
            degraded: None,
            attached: false,
            upgraded_request: None,
        }
    }

    /// A connection already under way when capture began (no preface seen): both senders'
    /// HPACK tables are unknown, so header blocks yield what they carry by themselves
    /// (static-table references and literals); a request whose block referred to the unknown
    /// table is flagged truncated; streams opened before are not followed (their late frames
    /// are dropped), and a new stream is only taken from a block that names a request.
    pub fn attached(budget: &MemoryBudget) -> Self {
        let mut connection = Self::with_budget(budget);
        connection.readers = [FrameReader::new(false), FrameReader::new(false)];
        for decoder in &mut connection.decoders {
            decoder.lose_table("attached mid-connection: the dynamic table is unknown");
        }
        connection.attached = true;
        connection
    }

    /// The connection an `Upgrade: h2c` switched to (RFC 7540 §3.2): `request`, read in
    /// HTTP/1.1, is stream 1, whose response comes in HTTP/2; the client's preface follows.
    pub fn upgraded(budget: &MemoryBudget, request: http::HttpRequest, ts_ns: u64) -> Self {
        let mut connection = Self::with_budget(budget);
        let mut stream = Stream {
            messages: [Message::new(ts_ns), Message::new(ts_ns)],
            websocket: None,
        };
        stream.messages[CLIENT].ended = true;
        connection.streams.insert(1, stream);
        connection.last_opened = 1;
        connection.upgraded_request = Some(request);
        connection
    }

    /// Whether the connection was attached mid-way ([`Self::attached`]).
    pub fn is_attached(&self) -> bool {
        self.attached
    }

    /// Why the connection could not be followed whole, if it could not: its state dropped
    /// after broken framing or HPACK, or a direction lost after missing bytes.
    pub fn degraded(&self) -> Option<&str> {
        self.failed.as_deref().or(self.degraded.as_deref())
    }

    /// Streams in flight.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Heap the connection holds.
    pub fn held(&self) -> usize {
        self.streams
            .values()
            .map(|s| {
                64 + s.messages[0].held_bytes()
                    + s.messages[1].held_bytes()
                    + s.websocket.as_ref().map_or(0, |w| w.held_bytes())
            })
            .sum::<usize>()
            + self
                .readers
                .iter()
                .map(FrameReader::held_bytes)
                .sum::<usize>()
            + self
                .decoders
                .iter()
                .map(BlockDecoder::held_bytes)
                .sum::<usize>()
            + self
                .pending
                .iter()
                .flatten()
                .map(|p| p.fragment.capacity())
                .sum::<usize>()
    }

    /// Bytes of one direction (client's view).
    pub fn feed(&mut self, direction: Direction, bytes: &[u8], ts_ns: u64) -> Vec<PairedExchange> {
        let side = slot(direction);
        let mut input = bytes;
        while self.failed.is_none() {
            let Some(event) = self.readers[side].next(&mut input) else {
                break;
            };
            self.on_event(side, event, ts_ns);
        }
        std::mem::take(&mut self.done)
    }

    /// `len` bytes of one direction were lost.
    pub fn gap(&mut self, direction: Direction, len: u64, ts_ns: u64) -> Vec<PairedExchange> {
        let side = slot(direction);
        if self.failed.is_some() || self.readers[side].is_lost() {
            return std::mem::take(&mut self.done);
        }
        match self.readers[side].gap(len) {
            GapEffect::InData(stream_id) => {
                if let Some(websocket) = self
                    .streams
                    .get_mut(&stream_id)
                    .and_then(|s| s.websocket.as_mut())
                {
                    let exchanges = websocket.gap(direction, len, ts_ns);
                    self.done.extend(exchanges);
                } else if let Some(stream) = self.streams.get_mut(&stream_id) {
                    let message = &mut stream.messages[side];
                    message.flag(Completeness::Truncated);
                    message.end_ts_ns = ts_ns;
                }
            }
            GapEffect::None => {}
            GapEffect::LostSync => {
                let who = if side == CLIENT { "client" } else { "server" };
                let reason = format!(
                    "{len} bytes from the {who} were lost outside a DATA payload: its frames and HPACK table are unknown from there on"
                );
                self.decoders[side].lose_table(reason.clone());
                self.pending[side] = None;
                for stream in self.streams.values_mut() {
                    if !stream.messages[side].ended {
                        stream.messages[side].flag(Completeness::Truncated);
                    }
                }
                self.degraded.get_or_insert(reason);
            }
        }
        std::mem::take(&mut self.done)
    }

    /// The connection ended: every stream in flight comes out, flagged.
    pub fn close(&mut self, _ts_ns: u64) -> Vec<PairedExchange> {
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            self.emit(id);
        }
        std::mem::take(&mut self.done)
    }

    fn on_event(&mut self, side: usize, event: FrameEvent<'_>, ts_ns: u64) {
        match event {
            FrameEvent::Data { stream_id, bytes } => {
                if self.pending[side].is_some() {
                    return self.fail("DATA inside a header block (CONTINUATION expected)");
                }
                if let Some(stream) = self.streams.get_mut(&stream_id) {
                    if let Some(websocket) = stream.websocket.as_mut() {
                        let direction = if side == CLIENT {
                            Direction::Egress
                        } else {
                            Direction::Ingress
                        };
                        let exchanges = websocket.feed(direction, bytes, ts_ns);
                        self.done.extend(exchanges);
                        return;
                    }
                    append_body(
                        &mut stream.messages[side],
                        bytes,
                        self.max_body,
                        &self.budget,
                        ts_ns,
                    );
                }
            }
            FrameEvent::DataEnd {
                stream_id,
                end_stream,
            } => {
                if end_stream {
                    self.end_message(side, stream_id, ts_ns);
                }
            }
            FrameEvent::Frame { header, payload } => self.on_frame(side, header, payload, ts_ns),
            FrameEvent::Error(reason) => self.fail(&reason),
        }
    }

    fn on_frame(&mut self, side: usize, header: FrameHeader, payload: Vec<u8>, ts_ns: u64) {
        if let Some(pending) = &self.pending[side] {
            if header.kind != kind::CONTINUATION || header.stream_id != pending.stream_id {
                return self.fail(&format!(
                    "frame of type {:#x} on stream {} inside the header block of stream {} (CONTINUATION expected)",
                    header.kind, header.stream_id, pending.stream_id
                ));
            }
        }
        match header.kind {
            kind::HEADERS | kind::PUSH_PROMISE => {
                if header.stream_id == 0 {
                    return self.fail("header block on stream 0");
                }
                let range = match frame::header_fragment(&header, &payload) {
                    Ok(range) => range,
                    Err(reason) => {
                        return self.fail(&format!("stream {}: {reason}", header.stream_id))
                    }
                };
                let mut fragment = payload;
                fragment.truncate(range.end);
                fragment.drain(..range.start);
                let block = PendingBlock {
                    stream_id: header.stream_id,
                    promise: header.kind == kind::PUSH_PROMISE,
                    end_stream: header.kind == kind::HEADERS && header.has(flag::END_STREAM),
                    fragment,
                };
                if header.has(flag::END_HEADERS) {
                    self.on_block(side, block, ts_ns);
                } else {
                    self.pending[side] = Some(block);
                }
            }
            kind::CONTINUATION => {
                let Some(mut block) = self.pending[side].take() else {
                    return self.fail(&format!(
                        "CONTINUATION on stream {} without a header block",
                        header.stream_id
                    ));
                };
                if block.fragment.len() + payload.len() > header_block::MAX_BLOCK_BYTES {
                    return self.fail(&format!(
                        "header block of stream {} exceeds {} bytes",
                        header.stream_id,
                        header_block::MAX_BLOCK_BYTES
                    ));
                }
                block.fragment.extend_from_slice(&payload);
                if header.has(flag::END_HEADERS) {
                    self.on_block(side, block, ts_ns);
                } else {
                    self.pending[side] = Some(block);
                }
            }
            kind::RST_STREAM => {
                let Some(stream) = self.streams.get_mut(&header.stream_id) else {
                    return;
                };
                let [request, response] = &mut stream.messages;
                // The two directions are captured apart: a client's reset of a stream whose
                // request is whole may be read before the answer that crossed it (curl resets
                // streams it has read to the end). That answer is waited for; the stream
                // comes out with it, or when the connection ends.
                if side == CLIENT && request.ended && response.head.is_none() {
                    return;
                }
                for message in &mut stream.messages {
                    message.end_ts_ns = message.end_ts_ns.max(ts_ns);
                }
                self.emit(header.stream_id);
            }
            // The server's GOAWAY: the client's streams above the last one it processed were
            // never answered. (The client's GOAWAY is about server-pushed streams.)
            kind::GOAWAY if side == SERVER => {
                if let Some(last) = payload.get(..4) {
                    let last =
                        u32::from_be_bytes([last[0], last[1], last[2], last[3]]) & 0x7fff_ffff;
                    let unanswered: Vec<u32> = self
                        .streams
                        .range(last.saturating_add(1)..)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in unanswered {
                        self.emit(id);
                    }
                }
            }
            // SETTINGS, PING, WINDOW_UPDATE, PRIORITY and extension frames carry nothing an
            // exchange needs. A peer's SETTINGS_HEADER_TABLE_SIZE only bounds the table the
            // other side may use, and any use of it is announced in-band by a size update.
            _ => {}
        }
    }

    fn on_block(&mut self, side: usize, block: PendingBlock, ts_ns: u64) {
        let decoded = match self.decoders[side].decode(&block.fragment) {
            Ok(decoded) => decoded,
            Err(reason) => return self.fail(&format!("stream {}: {reason}", block.stream_id)),
        };
        if block.promise {
            return;
        }
        let stream_id = block.stream_id;
        if side == CLIENT && !self.streams.contains_key(&stream_id) {
            if stream_id <= self.last_opened || stream_id.is_multiple_of(2) {
                return;
            }
            // Attached mid-way, a client block on a stream not seen opening may be the
            // trailers of a request sent before: only a block that names a request opens one.
            let names_request = decoded
                .fields
                .iter()
                .any(|f| f.name == ":method" || f.name == ":path");
            if self.attached && !names_request {
                return;
            }
            self.last_opened = stream_id;
            if self.streams.len() >= MAX_STREAMS {
                if let Some(oldest) = self.streams.keys().next().copied() {
                    self.budget.note(Pressure::BodyTruncated);
                    self.emit(oldest);
                }
            }
            self.streams.insert(
                stream_id,
                Stream {
                    messages: [Message::new(ts_ns), Message::new(ts_ns)],
                    websocket: None,
                },
            );
        }
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            // A response to a stream not tracked (flushed, or opened before capture).
            return;
        };
        let message = &mut stream.messages[side];
        if decoded.partial || decoded.cut {
            message.flag(Completeness::Truncated);
        }
        match message.head.as_mut() {
            // A second block: trailers.
            Some(head) => head.headers.extend(decoded.fields),
            None => {
                let head = head_of(decoded);
                // Interim responses (1xx) precede the final one; 101 does not exist in h2.
                if side == SERVER && (100..200).contains(&head.status) {
                    return;
                }
                message.head = Some(head);
                message.ts_ns = ts_ns;
            }
        }
        message.end_ts_ns = ts_ns;
        if side == SERVER && stream.websocket.is_none() {
            self.open_websocket(stream_id, ts_ns);
        }
        if block.end_stream {
            self.end_message(side, stream_id, ts_ns);
        }
    }

    /// The server answered an extended CONNECT for WebSocket: the stream's DATA are frames
    /// from here on (what the client sent before the answer too).
    fn open_websocket(&mut self, stream_id: u32, ts_ns: u64) {
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            return;
        };
        let [request, response] = &mut stream.messages;
        let (Some(request_head), Some(response_head)) = (&request.head, &response.head) else {
            return;
        };
        if !websocket::is_websocket_handshake(
            &request_head.method,
            &request_head.headers,
            response_head.status,
        ) {
            return;
        }
        let handshake = Handshake {
            target: http::header(&request_head.headers, ":path")
                .unwrap_or_default()
                .to_string(),
            request_headers: request_head.headers.clone(),
            response_headers: response_head.headers.clone(),
            ts_ns,
        };
        let mut exchanges = WebSocketExchanges::new(handshake, &self.budget);
        let early = std::mem::take(&mut request.body);
        let done = exchanges.feed(Direction::Egress, &early, ts_ns);
        stream.websocket = Some(Box::new(exchanges));
        self.done.extend(done);
    }

    fn end_message(&mut self, side: usize, stream_id: u32, ts_ns: u64) {
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            return;
        };
        let message = &mut stream.messages[side];
        message.ended = true;
        message.end_ts_ns = message.end_ts_ns.max(ts_ns);
        if side == SERVER {
            self.emit(stream_id);
        }
    }

    /// The stream is done (or given up): its exchange comes out.
    fn emit(&mut self, stream_id: u32) {
        let Some(mut stream) = self.streams.remove(&stream_id) else {
            return;
        };
        if let Some(websocket) = stream.websocket.as_mut() {
            let end = stream.messages[1]
                .end_ts_ns
                .max(stream.messages[0].end_ts_ns);
            self.done.extend(websocket.finish(end));
            // The CONNECT is the WebSocket's handshake: its messages stand for it.
            if websocket.produced_exchanges() {
                return;
            }
        }
        let [request, response] = stream.messages;
        let request = match self.upgraded_request.take().filter(|_| stream_id == 1) {
            Some(upgraded) => upgraded,
            None => {
                let request_seen = request.head.is_some();
                let mut request = http::finish_request(request.into_raw(), self.max_body);
                if !request_seen {
                    request.completeness = Completeness::Truncated;
                }
                request
            }
        };
        let response = response
            .head
            .is_some()
            .then(|| http::finish_response(response.into_raw(), &self.budget));
        self.done.push(PairedExchange {
            request,
            response,
            protocol: http::WireProtocol::H2,
        });
    }

    /// Broken framing or HPACK: the connection's state is dropped, what is in flight comes
    /// out flagged corrupt, and nothing further is parsed.
    fn fail(&mut self, reason: &str) {
        if self.failed.is_some() {
            return;
        }
        self.failed = Some(format!("HTTP/2 connection not followed further: {reason}"));
        for stream in self.streams.values_mut() {
            for message in &mut stream.messages {
                if !message.ended {
                    message.flag(Completeness::Corrupt);
                }
            }
        }
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            self.emit(id);
        }
        self.pending = [None, None];
        self.readers = [FrameReader::new(false), FrameReader::new(false)];
        self.decoders = [BlockDecoder::new(), BlockDecoder::new()];
        for decoder in &mut self.decoders {
            decoder.lose_table("connection dropped");
        }
    }

    /// The memory budget is short: every body in flight is given up (flagged); heads stay, so
    /// exchanges still pair. (Header blocks in progress are kept: dropping one would lose its
    /// sender's HPACK table, and each is bounded by `header_block::MAX_BLOCK_BYTES`.)
    fn shed_bodies(&mut self) {
        for stream in self.streams.values_mut() {
            if let Some(websocket) = stream.websocket.as_mut() {
                websocket.shed();
            }
            for message in &mut stream.messages {
                if !message.body.is_empty() || !message.ended {
                    message.body = Vec::new();
                    message.flag(Completeness::Truncated);
                    if !message.over_budget {
                        message.over_budget = true;
                        self.budget.note(Pressure::BodyTruncated);
                    }
                }
            }
        }
    }
}

/// Appends DATA bytes to a message's body, cut at the largest message the budget allows.
fn append_body(
    message: &mut Message,
    bytes: &[u8],
    max_body: usize,
    budget: &MemoryBudget,
    ts_ns: u64,
) {
    message.end_ts_ns = ts_ns;
    if message.over_budget {
        return;
    }
    let room = max_body.saturating_sub(message.body.len());
    if bytes.len() > room {
        message.body.extend_from_slice(&bytes[..room]);
        message.over_budget = true;
        message.flag(Completeness::Truncated);
        budget.note(Pressure::BodyTruncated);
    } else {
        message.body.extend_from_slice(bytes);
    }
}

/// A message head from a decoded block: pseudo-headers give the method, target and status;
/// every field stays in the header list as sent.
fn head_of(decoded: DecodedBlock) -> MessageHead {
    let value = |name: &str| http::header(&decoded.fields, name).map(str::to_string);
    let method = value(":method").unwrap_or_default();
    let target = if method.eq_ignore_ascii_case("CONNECT") {
        value(":authority")
    } else {
        value(":path")
    }
    .unwrap_or_default();
    let status = value(":status")
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    MessageHead {
        method,
        target,
        status,
        reason: String::new(),
        headers: decoded.fields,
    }
}

/// HTTP/2 as a wire parser: what it holds is reported to the assembler, which charges it;
/// when that does not fit, the bodies in flight are given up and reading goes on.
impl WireParser for Http2Connection {
    fn on_bytes(
        &mut self,
        direction: Direction,
        ts_ns: u64,
        bytes: &[u8],
        out: &mut Vec<WireMessage>,
    ) {
        out.extend(
            self.feed(direction, bytes, ts_ns)
                .into_iter()
                .map(WireMessage::Http),
        );
    }

    fn on_gap(&mut self, direction: Direction, len: u64, ts_ns: u64, out: &mut Vec<WireMessage>) {
        out.extend(
            self.gap(direction, len, ts_ns)
                .into_iter()
                .map(WireMessage::Http),
        );
    }

    fn finish(&mut self, ts_ns: u64, out: &mut Vec<WireMessage>) {
        out.extend(self.close(ts_ns).into_iter().map(WireMessage::Http));
    }

    fn held_bytes(&self) -> Option<usize> {
        Some(self.held())
    }

    fn attached_mid_connection(&self) -> bool {
        self.attached
    }

    fn on_over_budget(
        &mut self,
        _direction: Direction,
        _ts_ns: u64,
        out: &mut Vec<WireMessage>,
    ) -> OverBudget {
        self.shed_bodies();
        out.extend(
            std::mem::take(&mut self.done)
                .into_iter()
                .map(WireMessage::Http),
        );
        OverBudget::Continue
    }
}

#[cfg(test)]
mod tests;
