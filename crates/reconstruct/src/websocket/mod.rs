//! WebSocket (RFC 6455) reconstruction: the messages of a connection switched to WebSocket
//! by an HTTP/1.1 upgrade (`Upgrade: websocket`, `101 Switching Protocols`) or of an HTTP/2
//! stream opened by extended CONNECT (RFC 8441, `:protocol websocket`), read from both
//! directions, and what those messages mean ([`event_exchanges`]: the OpenAI Responses and
//! Realtime JSON events, turned into the same request/response exchanges HTTP carries them
//! in, so the LLM dialects read them unchanged).
//!
//! Each direction is framed by [`frame`] (head, extended length, masking), its frames joined
//! into messages here (fragmentation: a text or binary frame without FIN, continuation frames
//! until FIN; control frames may come between them and are read apart), and compressed
//! messages inflated by [`deflate`] (permessage-deflate as the server's handshake answer
//! negotiated it).
//!
//! The framing is ours: the WebSocket crates (`tungstenite`, `fastwebsockets`, `soketto`,
//! `websocket-codec`) are endpoint codecs. They read one side of a connection they take part
//! in (a server refuses unmasked frames, a client masked ones), answer pings and closes, and
//! give up on a connection at its first protocol error; none reads both directions of a
//! connection it does not own, resumes after bytes lost in capture, or bounds inflation per
//! message without closing. Frame parsing is forty lines of RFC 6455 §5.2 (in [`frame`]);
//! DEFLATE itself is flate2's.
//!
//! Hostile or broken input never panics and holds bounded memory: a message is cut at the
//! budget's largest message (and flagged), inflation stops at the same size (a bomb is an
//! error, not memory), control frames are at most 125 bytes, and a direction whose framing
//! breaks, or that loses bytes outside a payload, is not read further: what was in flight
//! comes out flagged.

pub mod deflate;
pub mod event_exchanges;
pub mod frame;

#[cfg(test)]
mod tests;

use crate::event::Direction;
use crate::http::{header, Completeness, Header, PairedExchange};
use crate::memory_budget::{MemoryBudget, Pressure};

use deflate::{Inflater, Negotiated};
use event_exchanges::EventConversation;
use frame::{opcode, FrameEvent, FrameReader, GapEffect};

/// Text or binary, as the message's first frame said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    Binary,
}

/// One data message, reassembled from its frames and inflated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketMessage {
    /// Client's view: `Egress` is what the client sent.
    pub direction: Direction,
    pub kind: MessageKind,
    pub payload: Vec<u8>,
    pub completeness: Completeness,
    /// Why the message is not complete, when it is not.
    pub problem: Option<String>,
    pub ts_ns: u64,
    pub end_ts_ns: u64,
}

/// The message being assembled from frames.
#[derive(Debug)]
struct Assembly {
    kind: MessageKind,
    compressed: bool,
    payload: Vec<u8>,
    completeness: Completeness,
    problem: Option<String>,
    ts_ns: u64,
    end_ts_ns: u64,
}

/// What the current frame's payload goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameTarget {
    /// The message in assembly; `fin` ends it with the frame.
    Message {
        fin: bool,
    },
    Control(u8),
    /// A continuation without a message (capture began inside one): skipped.
    Skip,
}

/// One direction: its frames, the message being assembled, its inflater.
#[derive(Debug)]
struct DirectionReader {
    direction: Direction,
    frames: FrameReader,
    target: FrameTarget,
    assembly: Option<Assembly>,
    control: Vec<u8>,
    inflater: Option<Inflater>,
    closed: bool,
    /// Why the direction is not read further.
    lost: Option<String>,
}

impl DirectionReader {
    fn new(direction: Direction, inflater: Option<Inflater>) -> Self {
        Self {
            direction,
            frames: FrameReader::new(),
            target: FrameTarget::Skip,
            assembly: None,
            control: Vec::new(),
            inflater,
            closed: false,
            lost: None,
        }
    }

    fn held_bytes(&self) -> usize {
        self.frames.held_bytes()
            + self.control.capacity()
            + self.assembly.as_ref().map_or(0, |a| a.payload.capacity())
            + self
                .inflater
                .as_ref()
                .map_or(0, |_| deflate::INFLATER_BYTES)
    }

    fn feed(&mut self, bytes: &[u8], ts_ns: u64, limit: usize, out: &mut Vec<WebSocketMessage>) {
        let mut input = bytes;
        while let Some(event) = self.frames.next(&mut input) {
            match event {
                FrameEvent::Start(header) => {
                    self.control.clear();
                    self.target = if opcode::is_control(header.opcode) {
                        FrameTarget::Control(header.opcode)
                    } else if header.opcode == opcode::CONTINUATION {
                        match self.assembly.as_mut() {
                            Some(assembly) => {
                                assembly.end_ts_ns = ts_ns;
                                FrameTarget::Message { fin: header.fin }
                            }
                            None => FrameTarget::Skip,
                        }
                    } else {
                        if let Some(mut unfinished) = self.assembly.take() {
                            // A new message before the last one's final frame.
                            flag(
                                &mut unfinished,
                                Completeness::Corrupt,
                                "a new message began before this one's final frame",
                            );
                            out.push(self.finish_assembly(unfinished, limit));
                        }
                        let compressed = header.rsv1;
                        let mut assembly = Assembly {
                            kind: if header.opcode == opcode::TEXT {
                                MessageKind::Text
                            } else {
                                MessageKind::Binary
                            },
                            compressed,
                            payload: Vec::new(),
                            completeness: Completeness::Complete,
                            problem: None,
                            ts_ns,
                            end_ts_ns: ts_ns,
                        };
                        if compressed && self.inflater.is_none() {
                            flag(
                                &mut assembly,
                                Completeness::Corrupt,
                                "RSV1 set but permessage-deflate was not negotiated",
                            );
                        }
                        self.assembly = Some(assembly);
                        FrameTarget::Message { fin: header.fin }
                    };
                }
                FrameEvent::Payload(piece) => match self.target {
                    FrameTarget::Message { .. } => {
                        if let Some(assembly) = self.assembly.as_mut() {
                            append_capped(assembly, piece, limit);
                        }
                    }
                    FrameTarget::Control(_) => {
                        let room = frame::MAX_CONTROL_PAYLOAD as usize - self.control.len();
                        self.control
                            .extend_from_slice(&piece[..piece.len().min(room)]);
                    }
                    FrameTarget::Skip => {}
                },
                FrameEvent::End => match self.target {
                    FrameTarget::Message { fin: true } => {
                        if let Some(mut assembly) = self.assembly.take() {
                            assembly.end_ts_ns = ts_ns;
                            out.push(self.finish_assembly(assembly, limit));
                        }
                    }
                    FrameTarget::Control(opcode::CLOSE) => self.closed = true,
                    // Pings and pongs carry nothing a message needs.
                    _ => {}
                },
                FrameEvent::Error(reason) => {
                    self.lose(format!("WebSocket framing broken: {reason}"), limit, out);
                    return;
                }
            }
        }
        self.frames.trim();
    }

    /// The message's frames are all in: inflated if it was compressed.
    fn finish_assembly(&mut self, mut assembly: Assembly, limit: usize) -> WebSocketMessage {
        let mut payload = std::mem::take(&mut assembly.payload);
        if assembly.compressed {
            if let Some(inflater) = self.inflater.as_mut() {
                if assembly.completeness == Completeness::Complete {
                    let (inflated, result) = inflater.inflate(&payload, limit);
                    payload = inflated;
                    if let Err(error) = result {
                        let completeness = match error {
                            deflate::InflateError::TooLarge { .. } => Completeness::Truncated,
                            deflate::InflateError::Corrupt(_) => Completeness::Corrupt,
                        };
                        flag(&mut assembly, completeness, &error.to_string());
                    }
                } else {
                    // A compressed message with bytes missing cannot be inflated, and the
                    // window the next ones refer to is lost with it.
                    inflater.lose_history();
                    payload = Vec::new();
                }
            }
        }
        WebSocketMessage {
            direction: self.direction,
            kind: assembly.kind,
            payload,
            completeness: assembly.completeness,
            problem: assembly.problem,
            ts_ns: assembly.ts_ns,
            end_ts_ns: assembly.end_ts_ns,
        }
    }

    fn gap(&mut self, len: u64, ts_ns: u64, limit: usize, out: &mut Vec<WebSocketMessage>) {
        if self.lost.is_some() || len == 0 {
            return;
        }
        match self.frames.gap(len) {
            GapEffect::InPayload => {
                if let (FrameTarget::Message { .. }, Some(assembly)) =
                    (self.target, self.assembly.as_mut())
                {
                    assembly.end_ts_ns = ts_ns;
                    flag(
                        assembly,
                        Completeness::Truncated,
                        &format!("{len} bytes lost in capture"),
                    );
                }
            }
            GapEffect::LostSync => self.lose(
                format!("{len} bytes lost outside a frame's payload: frame boundaries unknown"),
                limit,
                out,
            ),
        }
    }

    /// Nothing further is read: the message in flight comes out, flagged.
    fn lose(&mut self, reason: String, limit: usize, out: &mut Vec<WebSocketMessage>) {
        self.frames.lose();
        if let Some(mut assembly) = self.assembly.take() {
            flag(&mut assembly, Completeness::Truncated, &reason);
            out.push(self.finish_assembly(assembly, limit));
        }
        self.inflater = None;
        self.lost.get_or_insert(reason);
    }

    fn finish(&mut self, ts_ns: u64, limit: usize, out: &mut Vec<WebSocketMessage>) {
        if let Some(mut assembly) = self.assembly.take() {
            assembly.end_ts_ns = assembly.end_ts_ns.max(ts_ns);
            flag(
                &mut assembly,
                Completeness::Truncated,
                "the connection ended inside the message",
            );
            out.push(self.finish_assembly(assembly, limit));
        }
    }

    /// The budget is short: the message in flight gives up its bytes.
    fn shed(&mut self, budget: &MemoryBudget) {
        if let Some(assembly) = self.assembly.as_mut() {
            if assembly.completeness == Completeness::Complete {
                budget.note(Pressure::BodyTruncated);
            }
            assembly.payload = Vec::new();
            flag(
                assembly,
                Completeness::Truncated,
                "the memory budget was short",
            );
        }
    }
}

fn flag(assembly: &mut Assembly, completeness: Completeness, reason: &str) {
    if completeness == Completeness::Corrupt || assembly.completeness == Completeness::Complete {
        assembly.completeness = completeness;
    }
    assembly.problem.get_or_insert_with(|| reason.to_string());
}

/// Appends payload to a message, cut at `limit` (compressed payloads too: the inflated form
/// is cut at the same size).
fn append_capped(assembly: &mut Assembly, piece: &[u8], limit: usize) {
    let room = limit.saturating_sub(assembly.payload.len());
    if piece.len() > room {
        assembly.payload.extend_from_slice(&piece[..room]);
        flag(
            assembly,
            Completeness::Truncated,
            &format!("message longer than {limit} bytes"),
        );
    } else {
        assembly.payload.extend_from_slice(piece);
    }
}

/// The handshake that opened the WebSocket: what the messages' meaning may depend on.
#[derive(Debug, Clone, Default)]
pub struct Handshake {
    /// The request's target (HTTP/1.1) or `:path` (HTTP/2).
    pub target: String,
    /// The upgrade (or extended CONNECT) request's headers, as captured.
    pub request_headers: Vec<Header>,
    /// The server's answer's headers.
    pub response_headers: Vec<Header>,
    pub ts_ns: u64,
}

/// Both directions of one WebSocket connection (or HTTP/2 stream), client's view.
#[derive(Debug)]
pub struct WebSocketSession {
    budget: MemoryBudget,
    limit: usize,
    readers: [DirectionReader; 2],
    pub negotiated: Negotiated,
}

impl WebSocketSession {
    /// A session whose compression is what the server's `Sec-WebSocket-Extensions` answer
    /// accepted.
    pub fn new(extensions: Option<&str>, budget: &MemoryBudget) -> Self {
        let negotiated = Negotiated::from_response_header(extensions);
        let inflater = |no_takeover: bool| negotiated.deflate.then(|| Inflater::new(!no_takeover));
        Self {
            budget: budget.clone(),
            limit: budget.max_message_bytes(),
            readers: [
                DirectionReader::new(
                    Direction::Egress,
                    inflater(negotiated.client_no_context_takeover),
                ),
                DirectionReader::new(
                    Direction::Ingress,
                    inflater(negotiated.server_no_context_takeover),
                ),
            ],
            negotiated,
        }
    }

    fn reader(&mut self, direction: Direction) -> &mut DirectionReader {
        match direction {
            Direction::Egress => &mut self.readers[0],
            _ => &mut self.readers[1],
        }
    }

    /// Bytes of one direction; the messages they completed, in order.
    pub fn feed(
        &mut self,
        direction: Direction,
        bytes: &[u8],
        ts_ns: u64,
    ) -> Vec<WebSocketMessage> {
        let mut out = Vec::new();
        let limit = self.limit;
        self.reader(direction).feed(bytes, ts_ns, limit, &mut out);
        out
    }

    /// `len` bytes of one direction were lost.
    pub fn gap(&mut self, direction: Direction, len: u64, ts_ns: u64) -> Vec<WebSocketMessage> {
        let mut out = Vec::new();
        let limit = self.limit;
        self.reader(direction).gap(len, ts_ns, limit, &mut out);
        out
    }

    /// The connection ended: messages in flight come out, flagged.
    pub fn finish(&mut self, ts_ns: u64) -> Vec<WebSocketMessage> {
        let mut out = Vec::new();
        let limit = self.limit;
        for reader in &mut self.readers {
            reader.finish(ts_ns, limit, &mut out);
        }
        out
    }

    /// Why a direction is not read further, if one is not.
    pub fn degraded(&self) -> Option<&str> {
        self.readers.iter().find_map(|r| r.lost.as_deref())
    }

    /// Whether a close frame was seen in each direction (client's, server's).
    pub fn closed(&self) -> (bool, bool) {
        (self.readers[0].closed, self.readers[1].closed)
    }

    /// Heap the session holds.
    pub fn held_bytes(&self) -> usize {
        self.readers.iter().map(DirectionReader::held_bytes).sum()
    }

    /// The budget is short: messages in flight give up their bytes (flagged).
    pub fn shed(&mut self) {
        let budget = self.budget.clone();
        for reader in &mut self.readers {
            reader.shed(&budget);
        }
    }
}

fn names_websocket(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        v.split(',')
            .any(|token| token.trim().eq_ignore_ascii_case("websocket"))
    })
}

/// Whether an HTTP/1.1 request asks to switch to WebSocket (`Upgrade: websocket`).
pub fn asks_for_websocket(method: &str, headers: &[Header]) -> bool {
    method.eq_ignore_ascii_case("GET") && names_websocket(header(headers, "upgrade"))
}

/// Whether a `101`'s headers accept a switch to WebSocket (`Upgrade: websocket`, which
/// RFC 6455 §4.2.2 requires of the server's answer).
pub fn accepts_websocket(headers: &[Header]) -> bool {
    names_websocket(header(headers, "upgrade"))
}

/// Whether an exchange switched its connection (HTTP/1.1: `101` to an `Upgrade: websocket`
/// request) or its stream (HTTP/2: a 2xx to an extended CONNECT with `:protocol websocket`)
/// to WebSocket.
pub fn is_websocket_handshake(method: &str, request_headers: &[Header], status: u16) -> bool {
    if method.eq_ignore_ascii_case("CONNECT") {
        (200..300).contains(&status) && names_websocket(header(request_headers, ":protocol"))
    } else {
        status == 101 && asks_for_websocket(method, request_headers)
    }
}

/// A WebSocket connection (or HTTP/2 stream) read into exchanges: its messages
/// ([`WebSocketSession`]) and the event conversation they carry ([`EventConversation`]).
///
/// The handshake exchange (the `101`, or HTTP/2's CONNECT) is the transport's, not a call:
/// once the messages have become an exchange of their own, it is not reported, so an LLM call
/// over WebSocket reads like one over HTTP (only its `protocol` differs). A WebSocket whose
/// messages are not calls still shows as its handshake, when it ends.
#[derive(Debug)]
pub struct WebSocketExchanges {
    session: WebSocketSession,
    conversation: EventConversation,
    /// The HTTP/1.1 handshake exchange, until the messages stand for it.
    handshake_exchange: Option<PairedExchange>,
    produced: bool,
}

impl WebSocketExchanges {
    pub fn new(handshake: Handshake, budget: &MemoryBudget) -> Self {
        let session = WebSocketSession::new(
            header(&handshake.response_headers, "sec-websocket-extensions"),
            budget,
        );
        Self {
            conversation: EventConversation::new(handshake, budget.max_message_bytes()),
            session,
            handshake_exchange: None,
            produced: false,
        }
    }

    /// The WebSocket an HTTP/1.1 `101` exchange opened.
    pub fn after_handshake(exchange: PairedExchange, budget: &MemoryBudget) -> Self {
        let response = exchange.response.as_ref();
        let handshake = Handshake {
            target: exchange.request.target.clone(),
            request_headers: exchange.request.headers.clone(),
            response_headers: response.map(|r| r.headers.clone()).unwrap_or_default(),
            ts_ns: response.map_or(exchange.request.ts_ns, |r| r.ts_ns),
        };
        let mut exchanges = Self::new(handshake, budget);
        exchanges.handshake_exchange = Some(exchange);
        exchanges
    }

    /// Whether the messages became exchanges (then the handshake is not one).
    pub fn produced_exchanges(&self) -> bool {
        self.produced
    }

    fn read(&mut self, messages: Vec<WebSocketMessage>) -> Vec<PairedExchange> {
        let mut out = Vec::new();
        for message in messages {
            self.conversation.on_message(message, &mut out);
        }
        if !out.is_empty() {
            self.produced = true;
            self.handshake_exchange = None;
        }
        out
    }

    /// Bytes of one direction (client's view); the exchanges they completed.
    pub fn feed(&mut self, direction: Direction, bytes: &[u8], ts_ns: u64) -> Vec<PairedExchange> {
        let messages = self.session.feed(direction, bytes, ts_ns);
        self.read(messages)
    }

    pub fn gap(&mut self, direction: Direction, len: u64, ts_ns: u64) -> Vec<PairedExchange> {
        let messages = self.session.gap(direction, len, ts_ns);
        self.read(messages)
    }

    /// The connection (or stream) ended: what is in flight comes out, flagged.
    pub fn finish(&mut self, ts_ns: u64) -> Vec<PairedExchange> {
        let messages = self.session.finish(ts_ns);
        let mut out = self.read(messages);
        self.conversation.finish(&mut out);
        if out.is_empty() && !self.produced {
            out.extend(self.handshake_exchange.take());
        } else {
            self.produced = true;
        }
        out
    }

    pub fn held_bytes(&self) -> usize {
        self.session.held_bytes()
            + self.conversation.held_bytes()
            + self.handshake_exchange.as_ref().map_or(0, |e| {
                e.request.body.capacity()
                    + e.response.as_ref().map_or(0, |r| r.body.capacity())
                    + 64 * (e.request.headers.len() + 8)
            })
    }

    /// The budget is short: what is in flight gives up its bytes (flagged).
    pub fn shed(&mut self) {
        self.session.shed();
        self.conversation.shed();
    }

    /// Why part of the connection could not be followed, if it could not.
    pub fn degraded(&self) -> Option<&str> {
        self.session.degraded()
    }
}
