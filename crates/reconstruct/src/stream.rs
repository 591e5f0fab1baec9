//! The stream assembler: payload chunks joined per connection (or pipe) and direction.
//!
//! It owns every stream's ordering and gaps (bytes the kernel announced but could not
//! deliver are passed on to the parser as gaps rather than silently concatenated), its share
//! of the memory budget, and the choice of its parser: the protocol is recognised once per
//! stream, from its first bytes ([`recognise_protocol`]; HTTP/2 by its client preface). Parsers are fed through the
//! [`WireParser`] contract; pipes are handed to stdio MCP once their end is known
//! ([`super::mcp::pipe_end`]), because one MCP session spans a server's two pipes.

use std::borrow::Cow;
use std::collections::BTreeMap;

use agentscope_event::pid_keyed::PidMap;

use crate::event::{Direction, Event, EventBody, PayloadSource};
use crate::memory_budget::{Charge, MemoryBudget, Pressure};
use agentscope_event::SocketRef;

use super::event_runs::EventRuns;
use super::http::{self, HttpConnection};
use super::http2::{self, Http2Connection};
use super::mcp::pipe_end::PipeEnd;
use super::mcp::stdio_sessions::ServerEndBytes;
use super::observation::{Actor, EventRange, Peer, Role};
use super::postgres::PostgresConnection;
use super::reconstructor::ReconstructStats;
use super::redis::RedisConnection;
use super::wire::{OverBudget, WireMessage, WireParser};

/// Connections tracked at once. Beyond this the least recently active one is closed (its
/// partial exchanges are flushed, flagged), so memory stays bounded on a busy node.
pub const MAX_CONNECTIONS: usize = 4096;

/// Ordered so that work over several connections happens in the same order in every run: a
/// replay must produce exactly what the live capture did, and hash order differs per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    pid: u32,
    source: SourceKey,
    /// `SSL*` for TLS, the fd otherwise.
    id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum SourceKey {
    Tls,
    Socket,
    Pipe,
}

impl SourceKey {
    /// The least in the order (a process's streams start at it).
    const FIRST: SourceKey = SourceKey::Tls;
}

/// Where the next chunk of a direction should start, to detect holes.
#[derive(Debug, Default, Clone)]
struct CallCursor {
    call_id: u64,
    expected_offset: u64,
    total_len: u64,
    open: bool,
}

/// What a stream was recognised as.
enum Protocol {
    Undecided,
    /// `role` says which side the captured process is: parsers read the client's view.
    Wire {
        parser: Box<dyn WireParser>,
        role: Role,
    },
    /// One end of a pipe (see [`PipeEnd`]).
    Pipe(PipeEnd),
    Opaque,
}

/// One connection's (or pipe's) assembly state.
pub struct Stream {
    /// What a parser that does not charge the budget itself holds.
    charge: Charge,
    fd: i32,
    pub tls: bool,
    pub peer: Option<Peer>,
    protocol: Protocol,
    cursors: [CallCursor; 2],
    /// Events that fed the message in progress, per direction.
    events: [EventRuns; 2],
    pub actor: Actor,
    pub time_offset_ns: u64,
    last_ts_ns: u64,
    /// Chunks that began like the inside of a message (a JSON document, or a piece of a call
    /// after its start) while the stream was still undecided: see
    /// [`MAX_CHUNKS_INSIDE_A_MESSAGE`].
    chunks_inside_a_message: u8,
}

/// How many chunks that begin like the inside of a message (a JSON document: the body of a
/// request or response written on its own, as Python's http.client writes an 8 KiB body after
/// its head; or a piece of a call after its start) a stream may show before one that names its
/// protocol. A capture that begins while a keep-alive connection is mid-request sees the body
/// first; deciding on it alone made such a connection opaque for good, however many requests
/// followed (a third of the starts beside a busy agent). Past this many, the stream is opaque
/// as before.
const MAX_CHUNKS_INSIDE_A_MESSAGE: u8 = 8;

/// Whether `bytes` begin like a JSON document (after blanks): what a body written on its own
/// starts with.
fn begins_like_a_json_document(bytes: &[u8]) -> bool {
    matches!(
        bytes.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

impl Stream {
    /// Which end the captured process is, for a stream with a wire parser.
    pub fn role(&self) -> Option<Role> {
        match &self.protocol {
            Protocol::Wire { role, .. } => Some(*role),
            _ => None,
        }
    }

    /// The events that fed what the stream just produced; the next message starts afresh.
    pub fn take_events(&mut self) -> Vec<EventRange> {
        let mut events: Vec<EventRange> =
            self.events.iter_mut().flat_map(EventRuns::take).collect();
        events.sort_by_key(|r| (r.first, r.last));
        events
    }

    /// The stream ended: its parser's in-flight messages, flagged.
    pub fn finish(&mut self, ts_ns: u64) -> Vec<WireMessage> {
        let mut out = Vec::new();
        if let Protocol::Wire { parser, .. } = &mut self.protocol {
            parser.finish(ts_ns, &mut out);
        }
        out
    }
}

/// What one payload chunk gave.
pub enum Delivery<'a> {
    Nothing,
    /// Messages the stream's parser completed.
    Messages {
        key: StreamKey,
        messages: Vec<WireMessage>,
    },
    /// Bytes of a pipe's server end, for the stdio MCP sessions.
    ServerEnd(ServerEndBytes<'a>),
}

/// Every stream open, bounded by [`MAX_CONNECTIONS`] and the memory budget.
pub struct StreamAssembler {
    budget: MemoryBudget,
    /// Ordered by key: per-process lookups are ranges, and work over several streams
    /// happens in the same order in every run.
    streams: BTreeMap<StreamKey, Stream>,
    /// Plain sockets whose stream turned opaque since last taken, when the live collector
    /// asked for them ([`StreamAssembler::report_opaque_sockets`]).
    opaque_sockets: Option<Vec<SocketRef>>,
}

/// Opaque sockets kept for [`StreamAssembler::take_opaque_sockets`] at most; beyond, the
/// newest are not reported (the kernel then copies them on, as without reporting).
const MAX_OPAQUE_REPORTED: usize = 4096;

/// Keeps a stream that just turned opaque for [`StreamAssembler::take_opaque_sockets`] if it
/// is a plain socket's and reporting is on.
fn note_opaque(
    reported: &mut Option<Vec<SocketRef>>,
    source: PayloadSource,
    pid: u32,
    fd: i32,
    conn_id: u64,
) {
    if let (PayloadSource::Socket, Some(sockets)) = (source, reported.as_mut()) {
        // 0: a socket the kernel saw no connect or accept of; it has no id to name it by.
        if conn_id != 0 && sockets.len() < MAX_OPAQUE_REPORTED {
            sockets.push(SocketRef {
                pid,
                fd,
                id: conn_id,
            });
        }
    }
}

fn direction_slot(direction: Direction) -> usize {
    match direction {
        Direction::Egress => 0,
        _ => 1,
    }
}

impl StreamAssembler {
    pub fn new(budget: &MemoryBudget) -> Self {
        Self {
            budget: budget.clone(),
            streams: BTreeMap::new(),
            opaque_sockets: None,
        }
    }

    /// From now on, keeps each plain socket whose stream turns opaque (its first bytes are no
    /// protocol this reads, or its parser gave up over the memory budget), for the live
    /// collector to stop the kernel copying what follows on it: that would be read and dropped.
    pub fn report_opaque_sockets(&mut self) {
        self.opaque_sockets.get_or_insert_with(Vec::new);
    }

    /// The plain sockets that turned opaque since the last call; none unless
    /// [`StreamAssembler::report_opaque_sockets`] was called.
    pub fn take_opaque_sockets(&mut self) -> Vec<SocketRef> {
        self.opaque_sockets
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// Every stream's key, sorted.
    pub fn keys(&self) -> Vec<StreamKey> {
        self.streams.keys().copied().collect()
    }

    /// The streams of one socket of a process, sorted.
    pub fn keys_of_socket(&self, pid: u32, fd: i32) -> Vec<StreamKey> {
        if fd < 0 {
            return Vec::new();
        }
        self.streams_of(pid)
            .filter(|(_, stream)| stream.fd == fd)
            .map(|(key, _)| *key)
            .collect()
    }

    /// The streams of a process, sorted.
    pub fn keys_of_process(&self, pid: u32) -> Vec<StreamKey> {
        self.streams_of(pid).map(|(key, _)| *key).collect()
    }

    /// A process's streams: keys sort by pid first, so they are one range of the map (a
    /// socket's close looks at its process's few streams, not at every stream open).
    fn streams_of(&self, pid: u32) -> impl Iterator<Item = (&StreamKey, &Stream)> {
        let first = StreamKey {
            pid,
            source: SourceKey::FIRST,
            id: 0,
        };
        self.streams
            .range(first..)
            .take_while(move |(key, _)| key.pid == pid)
    }

    /// Takes a stream out (to close it, or to emit what it produced and put it back).
    pub fn remove(&mut self, key: StreamKey) -> Option<Stream> {
        self.streams.remove(&key)
    }

    pub fn put_back(&mut self, key: StreamKey, stream: Stream) {
        self.streams.insert(key, stream);
    }

    /// Takes out the least recently active stream, to be closed.
    pub fn evict_least_recent(&mut self) -> Option<Stream> {
        let key = self
            .streams
            .iter()
            .min_by_key(|(key, stream)| (stream.last_ts_ns, **key))
            .map(|(key, _)| *key)?;
        self.streams.remove(&key)
    }

    /// Feeds one payload event (`index` is its place in the capture). A new stream beyond
    /// [`MAX_CONNECTIONS`] first pushes out the least recently active one, returned in
    /// `evicted` for the caller to close before anything else.
    pub fn push<'a>(
        &mut self,
        event: &'a Event,
        index: u64,
        peers: &PidMap<(u32, i32), Peer>,
        stats: &mut ReconstructStats,
        evicted: &mut Option<Stream>,
    ) -> Delivery<'a> {
        let EventBody::Data {
            source,
            direction,
            fd,
            conn_id,
            call_id,
            offset,
            total_len,
            last,
            data,
            ..
        } = &event.body
        else {
            return Delivery::Nothing;
        };
        let header = &event.header;
        let (source_key, id) = match source {
            PayloadSource::Tls => (SourceKey::Tls, *conn_id),
            PayloadSource::Socket => (SourceKey::Socket, *fd as u64),
            PayloadSource::Pipe => (SourceKey::Pipe, *fd as u64),
            PayloadSource::Unknown => return Delivery::Nothing,
        };
        if matches!(direction, Direction::Unknown) {
            return Delivery::Nothing;
        }
        let key = StreamKey {
            pid: header.pid,
            source: source_key,
            id,
        };
        stats.payload_bytes += data.len() as u64;
        if !self.streams.contains_key(&key) {
            if self.streams.len() >= MAX_CONNECTIONS {
                *evicted = self.evict_least_recent();
            }
            stats.connections_seen += 1;
            let peer = peers.get(&(header.pid, *fd)).cloned();
            self.streams.insert(
                key,
                Stream {
                    charge: Charge::new(&self.budget),
                    fd: *fd,
                    tls: matches!(source, PayloadSource::Tls),
                    peer,
                    protocol: Protocol::Undecided,
                    cursors: Default::default(),
                    events: Default::default(),
                    actor: Actor::from(header),
                    time_offset_ns: header.time_unix_ns.saturating_sub(header.ts_ns),
                    last_ts_ns: header.ts_ns,
                    chunks_inside_a_message: 0,
                },
            );
        }
        let slot = direction_slot(*direction);
        let Some(stream) = self.streams.get_mut(&key) else {
            return Delivery::Nothing;
        };
        stream.actor = Actor::from(header);
        stream.last_ts_ns = header.ts_ns;
        if stream.fd < 0 && *fd >= 0 {
            stream.fd = *fd;
            stream.peer = peers.get(&(header.pid, *fd)).cloned();
        }
        stream.events[slot].push(index);

        // Holes: the rest of an unfinished earlier call, or chunks missing before this one.
        let cursor = &mut stream.cursors[slot];
        // Lengths come from the kernel but are treated as untrusted: saturate, never wrap.
        let mut gap = 0u64;
        if cursor.open && cursor.call_id != *call_id {
            gap = cursor.total_len.saturating_sub(cursor.expected_offset);
            cursor.open = false;
        }
        if !cursor.open {
            *cursor = CallCursor {
                call_id: *call_id,
                expected_offset: 0,
                total_len: *total_len,
                open: true,
            };
        }
        gap = gap.saturating_add(offset.saturating_sub(cursor.expected_offset));
        cursor.expected_offset = offset.saturating_add(data.len() as u64);
        let mut tail_gap = 0;
        if *last {
            // Bytes beyond the kernel's per-call cap, or chunks dropped at the end of the call.
            tail_gap = total_len.saturating_sub(cursor.expected_offset);
            cursor.open = false;
        }
        stats.gap_bytes = stats.gap_bytes.saturating_add(gap.saturating_add(tail_gap));

        if matches!(stream.protocol, Protocol::Undecided) && matches!(source, PayloadSource::Pipe) {
            stream.protocol = Protocol::Pipe(PipeEnd::new());
        }
        if matches!(stream.protocol, Protocol::Undecided) {
            stream.protocol = recognise_protocol(*direction, data, *offset == 0, &self.budget);
            if matches!(stream.protocol, Protocol::Opaque)
                && stream.chunks_inside_a_message < MAX_CHUNKS_INSIDE_A_MESSAGE
                && (*offset != 0 || begins_like_a_json_document(data))
            {
                // Perhaps a body whose head came before the capture (or a later piece of a
                // call begun before it): wait for a call that starts a message.
                stream.chunks_inside_a_message += 1;
                stream.protocol = Protocol::Undecided;
            }
            match &stream.protocol {
                Protocol::Opaque => {
                    stats.opaque_connections += 1;
                    note_opaque(&mut self.opaque_sockets, *source, header.pid, *fd, *conn_id);
                }
                Protocol::Wire { parser, .. } if parser.attached_mid_connection() => {
                    stats.http2_attached_mid_connection += 1;
                }
                _ => {}
            }
        }
        let ts = header.ts_ns;
        match &mut stream.protocol {
            Protocol::Wire { parser, role } => {
                let direction = client_view(*role, *direction);
                let mut messages = Vec::new();
                if gap > 0 {
                    parser.on_gap(direction, gap, ts, &mut messages);
                }
                parser.on_bytes(direction, ts, data, &mut messages);
                if tail_gap > 0 {
                    parser.on_gap(direction, tail_gap, ts, &mut messages);
                }
                if let Some(held) = parser.held_bytes() {
                    if !stream.charge.try_set(held) {
                        self.budget.note(Pressure::ConnectionEvicted);
                        match parser.on_over_budget(direction, ts, &mut messages) {
                            OverBudget::StopParsing => {
                                stream.protocol = Protocol::Opaque;
                                stream.charge.force_set(0);
                                note_opaque(
                                    &mut self.opaque_sockets,
                                    *source,
                                    header.pid,
                                    *fd,
                                    *conn_id,
                                );
                            }
                            OverBudget::Continue => {
                                stream.charge.force_set(parser.held_bytes().unwrap_or(0));
                            }
                        }
                    }
                }
                if messages.is_empty() {
                    Delivery::Nothing
                } else {
                    Delivery::Messages { key, messages }
                }
            }
            Protocol::Pipe(end) => {
                let mut bytes = Cow::Borrowed(data.as_slice());
                if let PipeEnd::Undecided {
                    buffered,
                    scanned,
                    lines,
                } = end
                {
                    buffered.extend_from_slice(data);
                    if !stream.charge.try_set(buffered.capacity()) {
                        self.budget.note(Pressure::ConnectionEvicted);
                        *end = PipeEnd::Ignored;
                        stream.charge.force_set(0);
                        return Delivery::Nothing;
                    }
                    match PipeEnd::decide(*direction, buffered, scanned, lines) {
                        Some(decided) => {
                            bytes = Cow::Owned(std::mem::take(buffered));
                            *end = decided;
                            stream.charge.force_set(0);
                        }
                        None => return Delivery::Nothing,
                    }
                }
                match end {
                    PipeEnd::Server(sender) => Delivery::ServerEnd(ServerEndBytes {
                        sender: *sender,
                        actor: stream.actor.clone(),
                        time_offset_ns: stream.time_offset_ns,
                        index,
                        bytes,
                        gap: gap.saturating_add(tail_gap),
                        ts_ns: ts,
                    }),
                    _ => Delivery::Nothing,
                }
            }
            Protocol::Undecided | Protocol::Opaque => Delivery::Nothing,
        }
    }
}

/// Direction as seen from the client, which is how the wire-protocol parsers read streams.
fn client_view(role: Role, direction: Direction) -> Direction {
    match (role, direction) {
        (Role::Server, Direction::Egress) => Direction::Ingress,
        (Role::Server, Direction::Ingress) => Direction::Egress,
        (_, other) => other,
    }
}

/// Decides a connection's protocol from the first bytes seen in either direction.
/// `starts_call`: the bytes are the start of a write or read (where frames start).
fn recognise_protocol(
    direction: Direction,
    bytes: &[u8],
    starts_call: bool,
    budget: &MemoryBudget,
) -> Protocol {
    let role = |request_outgoing: bool| {
        if request_outgoing {
            Role::Client
        } else {
            Role::Server
        }
    };
    let egress = matches!(direction, Direction::Egress);
    let wire = |parser: Box<dyn WireParser>, role: Role| Protocol::Wire { parser, role };
    // HTTP/2 is chosen by its preface, never by port: the client sends it first, so whoever
    // sent it is the client. (HTTP/1.1's parser would stop at it: `PRI` is no method it reads.)
    if http2::looks_like_preface(bytes) {
        return wire(Box::new(Http2Connection::with_budget(budget)), role(egress));
    }
    // A server's SETTINGS, sent before it read the preface: the sender is the server.
    if http2::looks_like_server_settings(bytes) {
        return wire(
            Box::new(Http2Connection::with_budget(budget)),
            role(!egress),
        );
    }
    // Frames without a preface: a connection already under way when capture began. Its
    // client is the side whose header block names a request; until a chunk says, wait.
    if starts_call && http2::looks_like_frame_chain(bytes) {
        return match http2::attached_sender_is_client(bytes) {
            Some(sender_is_client) => wire(
                Box::new(Http2Connection::attached(budget)),
                role(egress == sender_is_client),
            ),
            None => Protocol::Undecided,
        };
    }
    if http::looks_like_request(bytes) {
        return wire(Box::new(HttpConnection::with_budget(budget)), role(egress));
    }
    if http::looks_like_response(bytes) {
        // Capture began mid-exchange: the response's sender is the server.
        return wire(Box::new(HttpConnection::with_budget(budget)), role(!egress));
    }
    if PostgresConnection::looks_like_postgres(bytes) {
        return wire(Box::<PostgresConnection>::default(), role(egress));
    }
    if RedisConnection::looks_like_redis(bytes) {
        return wire(Box::<RedisConnection>::default(), role(egress));
    }
    Protocol::Opaque
}
