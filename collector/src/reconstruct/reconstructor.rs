//! The reconstruction driver: consumes [`Event`]s in order and emits [`Observation`]s.
//!
//! It keeps its own process table and connection table, built only from the events it is
//! given, so a live capture and a replay of its recording produce the same observations.
//! Payload chunks are joined per connection and direction, gaps (bytes the kernel could not
//! deliver) are passed on to the protocol parsers as gaps rather than silently concatenated,
//! and each connection's protocol is recognised from its first bytes.

use std::collections::HashMap;

use crate::event::{Direction, Event, EventBody, PayloadSource};
use crate::memory_budget::{self, Charge, MemoryBudget, Pressure};
use crate::process_table::ProcessTable;
use crate::redact;

use super::file_access;
use super::http::{self, HttpConnection, HttpExchange, PairedExchange, Side};
use super::llm;
use super::mcp::{self, McpSession, McpTransport, Sender, StdioMcpConnection};
use super::object_store;
use super::observation::{Actor, EventRange, Observation, ObservationKind, Peer, Role};
use super::postgres::PostgresConnection;
use super::redis::RedisConnection;
use super::vector_db;

/// Connections tracked at once. Beyond this the least recently active one is closed (its
/// partial exchanges are flushed, flagged), so memory stays bounded on a busy node.
pub const MAX_CONNECTIONS: usize = 4096;

#[derive(Debug, Clone)]
pub struct ReconstructOptions {
    /// Mask credentials in reconstructed headers and bodies (on by default). Chunk-level
    /// redaction in the collector cannot see secrets split across chunks or inside
    /// compressed bodies; this pass can.
    pub redact_secrets: bool,
    /// The pipeline's memory budget in bytes ([`crate::memory_budget`]): reconstruction is
    /// where captured bytes come in, and the model and detection charge the same budget.
    pub memory_budget: usize,
}

impl Default for ReconstructOptions {
    fn default() -> Self {
        Self {
            redact_secrets: true,
            memory_budget: memory_budget::DEFAULT_MEMORY_BUDGET,
        }
    }
}

/// Counters that say how much of the input was understood.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReconstructStats {
    pub events: u64,
    pub payload_bytes: u64,
    /// Bytes announced by the kernel but never delivered (ring full, 1.5 MiB cap).
    pub gap_bytes: u64,
    pub connections_seen: u64,
    /// Connections closed early because [`MAX_CONNECTIONS`] were open.
    pub connections_evicted: u64,
    pub http_exchanges: u64,
    /// Exchanges with a truncated or corrupt part.
    pub partial_exchanges: u64,
    pub llm_calls: u64,
    pub sql_statements: u64,
    pub redis_commands: u64,
    pub mcp_messages: u64,
    /// Connections whose bytes matched no protocol we parse.
    pub opaque_connections: u64,
}

/// Ordered so that work over several connections happens in the same order in every run: a
/// replay must produce exactly what the live capture did, and hash order differs per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct ConnectionKey {
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

/// Where the next chunk of a direction should start, to detect holes.
#[derive(Debug, Default, Clone)]
struct CallCursor {
    call_id: u64,
    expected_offset: u64,
    total_len: u64,
    open: bool,
}

enum Protocol {
    Undecided,
    Http {
        parser: Box<HttpConnection>,
        role: Role,
    },
    /// `role` says which side the captured process is: parsers expect the client's view.
    Postgres {
        parser: Box<PostgresConnection>,
        role: Role,
    },
    Redis {
        parser: Box<RedisConnection>,
        role: Role,
    },
    /// One end of a pipe. MCP over stdio is read at the server, whose stdin carries the
    /// client's messages and whose stdout its own (SDKs move them off fds 0 and 1, so the fd
    /// says nothing). The first message on an end tells which side it is: a request only
    /// clients send, read by this process, makes it the server.
    Pipe(PipeEnd),
    Opaque,
}

enum PipeEnd {
    /// Bytes kept until a whole line shows whose messages these are. `scanned` is how much
    /// of `buffered` (whole lines) has been looked at, `lines` how many JSON lines it held.
    Undecided {
        buffered: Vec<u8>,
        scanned: usize,
        lines: usize,
    },
    /// The server's end: messages written by this sender.
    Server(Sender),
    /// The client's end (the server's end carries the same session) or not MCP.
    Ignored,
}

/// Bytes and lines looked at before an undecided pipe end is given up.
const PIPE_DECIDE_BYTES: usize = 256 << 10;
const PIPE_DECIDE_LINES: usize = 16;

impl PipeEnd {
    /// Decides from the complete lines not looked at yet, if any tells.
    fn decide(
        direction: Direction,
        buffered: &[u8],
        scanned: &mut usize,
        lines: &mut usize,
    ) -> Option<PipeEnd> {
        while let Some(end) = memchr::memchr(b'\n', &buffered[*scanned..]) {
            let line = &buffered[*scanned..*scanned + end];
            *scanned += end + 1;
            if *lines >= PIPE_DECIDE_LINES {
                return Some(PipeEnd::Ignored);
            }
            let Ok(message) = serde_json::from_slice::<serde_json::Value>(line) else {
                continue;
            };
            *lines += 1;
            let Some(writer) = Sender::guess_from_message(&message) else {
                continue;
            };
            let ours = matches!(direction, Direction::Egress);
            return Some(match (writer, ours) {
                // The server reads the client's requests and writes its own answers.
                (Sender::Client, false) | (Sender::Server, true) => PipeEnd::Server(writer),
                _ => PipeEnd::Ignored,
            });
        }
        (buffered.len() > PIPE_DECIDE_BYTES).then_some(PipeEnd::Ignored)
    }
}

/// An MCP stdio server's session, keyed by the server's pid.
struct StdioSession {
    charge: Charge,
    connection: StdioMcpConnection,
    /// A real JSON-RPC message was seen: before that, JSON on stdio is someone's output.
    speaks_mcp: bool,
    actor: Actor,
    time_offset_ns: u64,
    events: Option<EventRange>,
    last_ts_ns: u64,
}

/// MCP sessions over HTTP are told apart by process, role and endpoint.
type HttpMcpKey = (u32, Role, String);

/// MCP sessions kept per kind; the least recently used beyond this are dropped.
const MAX_MCP_SESSIONS: usize = 1024;

struct Connection {
    /// What a non-HTTP parser holds (HTTP charges its own, finer-grained).
    charge: Charge,
    fd: i32,
    tls: bool,
    peer: Option<Peer>,
    protocol: Protocol,
    cursors: [CallCursor; 2],
    /// Events that fed the exchange in progress, per direction.
    events: [Option<EventRange>; 2],
    actor: Actor,
    time_offset_ns: u64,
    last_ts_ns: u64,
}

pub struct Reconstructor {
    /// Shared with the model and detection (see [`Reconstructor::budget`]).
    budget: MemoryBudget,
    options: ReconstructOptions,
    processes: ProcessTable,
    connections: HashMap<ConnectionKey, Connection>,
    /// Peers of sockets by (pid, fd), from connect and accept.
    peers: HashMap<(u32, i32), Peer>,
    next_index: u64,
    stats: ReconstructStats,
    stdio_sessions: HashMap<u32, StdioSession>,
    http_mcp_sessions: HashMap<HttpMcpKey, (McpSession, u64)>,
}

fn direction_slot(direction: Direction) -> usize {
    match direction {
        Direction::Egress => 0,
        _ => 1,
    }
}

impl Reconstructor {
    pub fn new(options: ReconstructOptions) -> Self {
        Self {
            budget: MemoryBudget::new(options.memory_budget),
            options,
            processes: ProcessTable::default(),
            connections: HashMap::new(),
            peers: HashMap::new(),
            next_index: 0,
            stats: ReconstructStats::default(),
            stdio_sessions: HashMap::new(),
            http_mcp_sessions: HashMap::new(),
        }
    }

    /// The memory budget everything downstream of this reconstructor charges.
    pub fn budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// Starts from a process table built elsewhere (the live collector's).
    pub fn set_processes(&mut self, processes: ProcessTable) {
        self.processes = processes;
    }

    pub fn processes(&self) -> &ProcessTable {
        &self.processes
    }

    /// Socket peers known from connect and accept, as (pid, fd, peer), sorted.
    pub fn peers(&self) -> Vec<(u32, i32, Peer)> {
        let mut peers: Vec<_> = self
            .peers
            .iter()
            .map(|(&(pid, fd), peer)| (pid, fd, peer.clone()))
            .collect();
        peers.sort_unstable_by_key(|p| (p.0, p.1));
        peers
    }

    /// Starts from state saved in a capture's keyframe: the process table, socket peers and
    /// the index the next event has in the whole capture (observations refer to events by
    /// that index). Exchanges that were in flight at the keyframe cannot be resumed.
    pub fn restore(
        &mut self,
        processes: ProcessTable,
        peers: impl IntoIterator<Item = (u32, i32, Peer)>,
        next_index: u64,
    ) {
        self.processes = processes;
        self.peers = peers
            .into_iter()
            .map(|(pid, fd, peer)| ((pid, fd), peer))
            .collect();
        self.next_index = next_index;
    }

    /// Index (in the whole capture) the next event gets.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    pub fn stats(&self) -> &ReconstructStats {
        &self.stats
    }

    /// Consumes one event; returns the observations it completed.
    pub fn push(&mut self, event: &Event) -> Vec<Observation> {
        let index = self.next_index;
        self.next_index += 1;
        self.stats.events += 1;
        let header = &event.header;
        self.processes
            .learn(header.pid, header.ppid, header.comm.as_str());
        self.processes.update(event);
        let mut out = Vec::new();
        let simple = |kind: ObservationKind| Observation {
            ts_ns: header.ts_ns,
            time_unix_ns: header.time_unix_ns,
            actor: Actor::from(header),
            events: vec![EventRange::single(index)],
            kind,
        };
        match &event.body {
            EventBody::Exec { filename, argv, .. } => out.push(simple(ObservationKind::Exec {
                filename: filename.clone(),
                argv: argv.clone(),
            })),
            // Only the main thread's exit ends the process; other threads exit on their own.
            EventBody::Exit { exit_code } if header.pid == header.tid => {
                self.close_process(header.pid, header.ts_ns, &mut out);
                out.push(simple(ObservationKind::Exit {
                    exit_code: *exit_code,
                }));
            }
            EventBody::Open {
                path, flags, ret, ..
            } if *ret >= 0 => {
                let write = (flags & (libc::O_WRONLY | libc::O_RDWR | libc::O_CREAT)) != 0;
                out.push(simple(ObservationKind::FileOpen {
                    path: path.clone(),
                    class: file_access::classify(path),
                    write,
                }));
            }
            EventBody::Connect {
                fd,
                addr,
                port,
                ret,
                ..
            } if *ret == 0 || *ret == -libc::EINPROGRESS => {
                let peer = Peer {
                    addr: addr.clone(),
                    port: *port,
                };
                self.reset_socket(header.pid, *fd, header.ts_ns, &mut out);
                self.peers.insert((header.pid, *fd), peer.clone());
                out.push(simple(ObservationKind::Connect { peer }));
            }
            EventBody::Accept {
                addr, port, ret, ..
            } if *ret >= 0 => {
                self.reset_socket(header.pid, *ret, header.ts_ns, &mut out);
                self.peers.insert(
                    (header.pid, *ret),
                    Peer {
                        addr: addr.clone(),
                        port: *port,
                    },
                );
            }
            EventBody::Close { fd } => {
                self.reset_socket(header.pid, *fd, header.ts_ns, &mut out);
                self.peers.remove(&(header.pid, *fd));
            }
            EventBody::Dns { queries, .. } if !queries.is_empty() => {
                out.push(simple(ObservationKind::Dns {
                    queries: queries.clone(),
                }))
            }
            EventBody::Data { .. } => {
                self.push_data(event, index, &mut out);
                self.enforce_budget(event.header.ts_ns, &mut out);
            }
            _ => {}
        }
        out
    }

    /// Flushes every connection (capture stopped): in-flight exchanges come out flagged.
    pub fn finish(&mut self, ts_ns: u64) -> Vec<Observation> {
        let mut out = Vec::new();
        let mut keys: Vec<_> = self.connections.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            self.close_connection(key, ts_ns, &mut out);
        }
        let mut servers: Vec<u32> = self.stdio_sessions.keys().copied().collect();
        servers.sort_unstable();
        for pid in servers {
            self.finish_stdio(pid, ts_ns, &mut out);
        }
        out
    }

    fn finish_stdio(&mut self, server_pid: u32, ts_ns: u64, out: &mut Vec<Observation>) {
        if let Some(mut session) = self.stdio_sessions.remove(&server_pid) {
            let exchanges = session.connection.finish(ts_ns);
            self.emit_stdio(server_pid, &mut session, exchanges, out);
        }
    }

    fn reset_socket(&mut self, pid: u32, fd: i32, ts_ns: u64, out: &mut Vec<Observation>) {
        let mut keys: Vec<_> = self
            .connections
            .iter()
            .filter(|(key, conn)| key.pid == pid && conn.fd == fd && fd >= 0)
            .map(|(key, _)| *key)
            .collect();
        keys.sort_unstable();
        for key in keys {
            self.close_connection(key, ts_ns, out);
        }
    }

    fn close_process(&mut self, pid: u32, ts_ns: u64, out: &mut Vec<Observation>) {
        let mut keys: Vec<_> = self
            .connections
            .keys()
            .filter(|key| key.pid == pid)
            .copied()
            .collect();
        keys.sort_unstable();
        for key in keys {
            self.close_connection(key, ts_ns, out);
        }
        self.finish_stdio(pid, ts_ns, out);
        self.peers.retain(|(p, _), _| *p != pid);
    }

    fn close_connection(&mut self, key: ConnectionKey, ts_ns: u64, out: &mut Vec<Observation>) {
        let Some(mut conn) = self.connections.remove(&key) else {
            return;
        };
        let exchanges = match &mut conn.protocol {
            Protocol::Http { parser, .. } => parser.close(ts_ns),
            Protocol::Postgres { parser, .. } => {
                let statements = parser.finish();
                self.emit_sql(&mut conn, statements, out);
                Vec::new()
            }
            Protocol::Redis { parser, .. } => {
                let commands = parser.finish();
                self.emit_redis(&mut conn, commands, out);
                Vec::new()
            }
            _ => Vec::new(),
        };
        self.emit_http(&mut conn, exchanges, out);
    }

    fn push_data(&mut self, event: &Event, index: u64, out: &mut Vec<Observation>) {
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
            return;
        };
        let header = &event.header;
        let (source_key, id) = match source {
            PayloadSource::Tls => (SourceKey::Tls, *conn_id),
            PayloadSource::Socket => (SourceKey::Socket, *fd as u64),
            PayloadSource::Pipe => (SourceKey::Pipe, *fd as u64),
            PayloadSource::Unknown => return,
        };
        if matches!(direction, Direction::Unknown) {
            return;
        }
        let key = ConnectionKey {
            pid: header.pid,
            source: source_key,
            id,
        };
        self.stats.payload_bytes += data.len() as u64;
        if !self.connections.contains_key(&key) {
            if self.connections.len() >= MAX_CONNECTIONS {
                self.evict_one(header.ts_ns, out);
            }
            self.stats.connections_seen += 1;
            let peer = self.peers.get(&(header.pid, *fd)).cloned();
            self.connections.insert(
                key,
                Connection {
                    charge: Charge::new(&self.budget),
                    fd: *fd,
                    tls: matches!(source, PayloadSource::Tls),
                    peer,
                    protocol: Protocol::Undecided,
                    cursors: Default::default(),
                    events: [None, None],
                    actor: Actor::from(header),
                    time_offset_ns: header.time_unix_ns.saturating_sub(header.ts_ns),
                    last_ts_ns: header.ts_ns,
                },
            );
        }
        let slot = direction_slot(*direction);
        let Some(conn) = self.connections.get_mut(&key) else {
            return;
        };
        conn.actor = Actor::from(header);
        conn.last_ts_ns = header.ts_ns;
        if conn.fd < 0 && *fd >= 0 {
            conn.fd = *fd;
            conn.peer = self.peers.get(&(header.pid, *fd)).cloned();
        }
        match conn.events[slot].as_mut() {
            Some(range) => range.extend(index),
            None => conn.events[slot] = Some(EventRange::single(index)),
        }

        // Holes: the rest of an unfinished earlier call, or chunks missing before this one.
        let cursor = &mut conn.cursors[slot];
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
        self.stats.gap_bytes = self
            .stats
            .gap_bytes
            .saturating_add(gap.saturating_add(tail_gap));

        if matches!(conn.protocol, Protocol::Undecided) && matches!(source, PayloadSource::Pipe) {
            conn.protocol = Protocol::Pipe(PipeEnd::Undecided {
                buffered: Vec::new(),
                scanned: 0,
                lines: 0,
            });
        }
        if matches!(conn.protocol, Protocol::Undecided) {
            conn.protocol = recognise_protocol(*direction, data, &self.budget);
            if matches!(conn.protocol, Protocol::Opaque) {
                self.stats.opaque_connections += 1;
            }
        }
        let ts = header.ts_ns;
        let mut exchanges = Vec::new();
        let mut statements = Vec::new();
        let mut commands = Vec::new();
        match &mut conn.protocol {
            Protocol::Http { parser, role } => {
                let side = http_side(*role, *direction);
                if gap > 0 {
                    exchanges.extend(parser.gap(side, gap, ts));
                }
                exchanges.extend(parser.feed(side, data, ts));
                if tail_gap > 0 {
                    exchanges.extend(parser.gap(side, tail_gap, ts));
                }
            }
            Protocol::Postgres { parser, role } => {
                statements = parser.feed(client_view(*role, *direction), data, ts);
                if !conn.charge.try_set(parser.held_bytes()) {
                    // Over budget: what is in flight is flushed (flagged as cut) and the rest
                    // of this connection is not parsed.
                    self.budget.note(Pressure::ConnectionEvicted);
                    statements.extend(parser.finish());
                    conn.protocol = Protocol::Opaque;
                    conn.charge.force_set(0);
                }
            }
            Protocol::Redis { parser, role } => {
                commands = parser.feed(client_view(*role, *direction), data, ts);
                if !conn.charge.try_set(parser.held_bytes()) {
                    self.budget.note(Pressure::ConnectionEvicted);
                    commands.extend(parser.finish());
                    conn.protocol = Protocol::Opaque;
                    conn.charge.force_set(0);
                }
            }
            Protocol::Pipe(end) => {
                let mut bytes = std::borrow::Cow::Borrowed(data.as_slice());
                if let PipeEnd::Undecided {
                    buffered,
                    scanned,
                    lines,
                } = end
                {
                    buffered.extend_from_slice(data);
                    if !conn.charge.try_set(buffered.capacity()) {
                        self.budget.note(Pressure::ConnectionEvicted);
                        *end = PipeEnd::Ignored;
                        conn.charge.force_set(0);
                        return;
                    }
                    match PipeEnd::decide(*direction, buffered, scanned, lines) {
                        Some(decided) => {
                            bytes = std::borrow::Cow::Owned(std::mem::take(buffered));
                            *end = decided;
                            conn.charge.force_set(0);
                        }
                        None => return,
                    }
                }
                if let PipeEnd::Server(sender) = end {
                    let sender = *sender;
                    let actor = conn.actor.clone();
                    let offset = conn.time_offset_ns;
                    self.push_stdio(
                        sender,
                        actor,
                        offset,
                        index,
                        &bytes,
                        gap.saturating_add(tail_gap),
                        ts,
                        out,
                    );
                }
                return;
            }
            Protocol::Undecided | Protocol::Opaque => {}
        }
        if !exchanges.is_empty() || !statements.is_empty() || !commands.is_empty() {
            let mut conn = self.connections.remove(&key).expect("present");
            self.emit_http(&mut conn, exchanges, out);
            self.emit_sql(&mut conn, statements, out);
            self.emit_redis(&mut conn, commands, out);
            self.connections.insert(key, conn);
        }
    }

    fn emit_sql(
        &mut self,
        conn: &mut Connection,
        statements: Vec<super::postgres::SqlStatement>,
        out: &mut Vec<Observation>,
    ) {
        self.stats.sql_statements += statements.len() as u64;
        emit_records(conn, statements, out, |statement, peer| {
            (
                statement.ts_ns,
                ObservationKind::Sql {
                    statement: Box::new(statement),
                    peer,
                },
            )
        });
    }

    fn emit_redis(
        &mut self,
        conn: &mut Connection,
        commands: Vec<super::redis::RedisCommand>,
        out: &mut Vec<Observation>,
    ) {
        self.stats.redis_commands += commands.len() as u64;
        emit_records(conn, commands, out, |command, peer| {
            (
                command.ts_ns,
                ObservationKind::Redis {
                    command: Box::new(command),
                    peer,
                },
            )
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn push_stdio(
        &mut self,
        sender: Sender,
        actor: Actor,
        time_offset_ns: u64,
        index: u64,
        data: &[u8],
        gap: u64,
        ts: u64,
        out: &mut Vec<Observation>,
    ) {
        let server_pid = actor.pid;
        if !self.stdio_sessions.contains_key(&server_pid)
            && self.stdio_sessions.len() >= MAX_MCP_SESSIONS
        {
            if let Some(oldest) = self
                .stdio_sessions
                .iter()
                .min_by_key(|(pid, session)| (session.last_ts_ns, **pid))
                .map(|(pid, _)| *pid)
            {
                self.finish_stdio(oldest, ts, out);
            }
        }
        let session = self
            .stdio_sessions
            .entry(server_pid)
            .or_insert_with(|| StdioSession {
                charge: Charge::new(&self.budget),
                connection: StdioMcpConnection::new(),
                speaks_mcp: false,
                actor: actor.clone(),
                time_offset_ns,
                events: None,
                last_ts_ns: ts,
            });
        session.actor = actor;
        session.last_ts_ns = ts;
        match session.events.as_mut() {
            Some(range) => range.extend(index),
            None => session.events = Some(EventRange::single(index)),
        }
        let mut exchanges = Vec::new();
        if gap > 0 {
            exchanges.extend(session.connection.mark_gap(sender, ts));
        }
        exchanges.extend(session.connection.feed_bytes(sender, data, ts));
        if !session.charge.try_set(session.connection.held_bytes()) {
            // The session's unfinished line does not fit: drop what it holds and go on from
            // the next line, as after lost bytes.
            self.budget.note(Pressure::ConnectionEvicted);
            exchanges.extend(session.connection.drop_buffers(sender, ts));
            session.charge.force_set(session.connection.held_bytes());
        }
        if exchanges.is_empty() {
            return;
        }
        let mut session = self.stdio_sessions.remove(&server_pid).expect("present");
        self.emit_stdio(server_pid, &mut session, exchanges, out);
        self.stdio_sessions.insert(server_pid, session);
    }

    /// Stdio MCP records are reported as the client's (the agent that spawned the server),
    /// with the server as peer: the client is the one a model directs.
    fn emit_stdio(
        &mut self,
        server_pid: u32,
        session: &mut StdioSession,
        exchanges: Vec<mcp::McpExchange>,
        out: &mut Vec<Observation>,
    ) {
        let events: Vec<EventRange> = session.events.take().into_iter().collect();
        let client_pid = self.processes.ppid(server_pid);
        let client = self.processes.get(client_pid);
        let actor = Actor {
            pid: client_pid,
            ppid: self.processes.ppid(client_pid),
            comm: client.map_or_else(String::new, |p| p.comm.clone()),
            ..session.actor.clone()
        };
        let server = self.processes.get(server_pid);
        let endpoint =
            server.map(|p| crate::program::program_of(p.exe.as_deref(), &p.argv, &p.comm));
        for exchange in exchanges {
            if exchange.kind != mcp::ExchangeKind::Invalid {
                session.speaks_mcp = true;
            }
            if !session.speaks_mcp {
                continue;
            }
            self.stats.mcp_messages += 1;
            let ts_ns = exchange
                .request_ts_ns
                .or(exchange.response_ts_ns)
                .unwrap_or(0);
            out.push(Observation {
                ts_ns,
                time_unix_ns: ts_ns.saturating_add(session.time_offset_ns),
                actor: actor.clone(),
                events: events.clone(),
                kind: ObservationKind::Mcp {
                    exchange: Box::new(exchange),
                    transport: McpTransport::Stdio,
                    role: Role::Client,
                    endpoint: endpoint.clone(),
                    peer_pid: Some(server_pid),
                },
            });
        }
    }

    /// A JSON-RPC exchange over HTTP (MCP Streamable HTTP): the request body is the client's
    /// message, the response a JSON body or an SSE stream of the server's messages.
    fn http_mcp(
        &mut self,
        conn: &Connection,
        role: Role,
        exchange: &HttpExchange,
    ) -> Option<Vec<mcp::McpExchange>> {
        let is_rpc = |v: &serde_json::Value| {
            v.get("jsonrpc").is_some()
                || v.as_array()
                    .is_some_and(|a| a.iter().any(|m| m.get("jsonrpc").is_some()))
        };
        let request = exchange.request.json().filter(is_rpc);
        // GET (the server's message stream) and DELETE (session end) carry no JSON-RPC
        // request but belong to the session named by their Mcp-Session-Id.
        if request.is_none() && exchange.request.header("mcp-session-id").is_none() {
            return None;
        }
        let endpoint = endpoint_url(exchange);
        let key = (conn.actor.pid, role, endpoint);
        if !self.http_mcp_sessions.contains_key(&key)
            && self.http_mcp_sessions.len() >= MAX_MCP_SESSIONS
        {
            if let Some(oldest) = self
                .http_mcp_sessions
                .iter()
                .min_by_key(|(key, (_, used))| (*used, (*key).clone()))
                .map(|(k, _)| k.clone())
            {
                self.http_mcp_sessions.remove(&oldest);
            }
        }
        let ts = exchange.request.ts_ns;
        let (session, used) = self
            .http_mcp_sessions
            .entry(key)
            .or_insert_with(|| (McpSession::new(McpTransport::Http), ts));
        *used = ts;
        let session_header = exchange.request.header("mcp-session-id").or_else(|| {
            exchange
                .response
                .as_ref()
                .and_then(|r| r.header("mcp-session-id"))
        });
        if let Some(id) = session_header {
            session.set_session_id(id);
        }
        let mut records = match &request {
            Some(request) => session.feed_message(Sender::Client, request, ts),
            None => Vec::new(),
        };
        if let Some(response) = &exchange.response {
            let rts = response.ts_ns;
            match &response.stream {
                Some(http::StreamedBody::Sse(events)) => {
                    for event in events {
                        if let Ok(message) = serde_json::from_str(&event.data) {
                            records.extend(session.feed_message(Sender::Server, &message, rts));
                        }
                    }
                }
                _ => {
                    if let Some(message) = response.json() {
                        records.extend(session.feed_message(Sender::Server, &message, rts));
                    }
                }
            }
        }
        Some(records)
    }

    /// Parsers charge what they cannot refuse (message heads, requests waiting for their
    /// answer) even past the limit; if that happened, the least recently active connections
    /// are flushed (their exchanges come out flagged) until the pipeline is within its share.
    fn enforce_budget(&mut self, ts_ns: u64, out: &mut Vec<Observation>) {
        while self.budget.used() > self.budget.held_limit() && !self.connections.is_empty() {
            self.budget.note(Pressure::ConnectionEvicted);
            self.evict_one(ts_ns, out);
        }
    }

    fn evict_one(&mut self, ts_ns: u64, out: &mut Vec<Observation>) {
        if let Some(key) = self
            .connections
            .iter()
            .min_by_key(|(key, conn)| (conn.last_ts_ns, **key))
            .map(|(key, _)| *key)
        {
            self.stats.connections_evicted += 1;
            self.close_connection(key, ts_ns, out);
        }
    }

    /// Interpreters parse bodies as JSON; a body whose parsed tree would not fit the working
    /// room of the budget (millions of tiny values) is not handed on: it is emptied and
    /// flagged, its length kept.
    fn limit_parse_cost(&self, exchange: &mut HttpExchange) {
        let room = self.budget.budget() / 8;
        if memory_budget::json_text_tree_bytes(&exchange.request.body) > room {
            exchange.request.body = Vec::new();
            exchange.request.completeness = http::Completeness::Truncated;
            if !exchange.request.over_budget {
                exchange.request.over_budget = true;
                self.budget.note(Pressure::BodyTruncated);
            }
        }
        if let Some(response) = exchange.response.as_mut() {
            if memory_budget::json_text_tree_bytes(&response.body) > room {
                response.body = Vec::new();
                response.completeness = http::Completeness::Truncated;
                if !response.over_budget {
                    response.over_budget = true;
                    self.budget.note(Pressure::BodyTruncated);
                }
            }
        }
    }

    fn emit_http(
        &mut self,
        conn: &mut Connection,
        exchanges: Vec<PairedExchange>,
        out: &mut Vec<Observation>,
    ) {
        let Protocol::Http { role, .. } = conn.protocol else {
            return;
        };
        if exchanges.is_empty() {
            return;
        }
        let events = take_events(conn);
        for paired in exchanges {
            self.stats.http_exchanges += 1;
            let mut exchange = HttpExchange {
                host: paired
                    .request
                    .header("host")
                    .map(str::to_string)
                    .or_else(|| conn.peer.as_ref().map(|p| p.addr.clone())),
                port: conn.peer.as_ref().map(|p| p.port),
                tls: conn.tls,
                request: paired.request,
                response: paired.response,
            };
            self.limit_parse_cost(&mut exchange);
            if self.options.redact_secrets {
                redact_exchange(&mut exchange);
            }
            let partial = exchange.request.completeness != http::Completeness::Complete
                || exchange
                    .response
                    .as_ref()
                    .is_none_or(|r| r.completeness != http::Completeness::Complete);
            if partial {
                self.stats.partial_exchanges += 1;
            }
            let ts_ns = exchange.request.ts_ns;
            if let Some(records) = self.http_mcp(conn, role, &exchange) {
                let endpoint = endpoint_url(&exchange);
                for record in records {
                    self.stats.mcp_messages += 1;
                    out.push(Observation {
                        ts_ns,
                        time_unix_ns: ts_ns.saturating_add(conn.time_offset_ns),
                        actor: conn.actor.clone(),
                        events: events.clone(),
                        kind: ObservationKind::Mcp {
                            exchange: Box::new(record),
                            transport: McpTransport::Http,
                            role,
                            endpoint: Some(endpoint.clone()),
                            peer_pid: None,
                        },
                    });
                }
                continue;
            }
            // The serving side of an LLM API (a model server on the node) is not an agent.
            let llm_call = match role {
                Role::Client => llm::recognise(&exchange),
                Role::Server => None,
            };
            let object_access = (role == Role::Client && llm_call.is_none())
                .then(|| object_store::recognise(&exchange))
                .flatten();
            let retrieval = (role == Role::Client && llm_call.is_none() && object_access.is_none())
                .then(|| vector_db::recognise(&exchange))
                .flatten();
            let kind = if let Some(access) = object_access {
                ObservationKind::ObjectStore {
                    access: Box::new(access),
                }
            } else if let Some(call) = retrieval {
                ObservationKind::Retrieval {
                    call: Box::new(call),
                }
            } else {
                match llm_call {
                    Some(mut call) => {
                        self.stats.llm_calls += 1;
                        if self.options.redact_secrets {
                            redact_llm_call(&mut call);
                        }
                        ObservationKind::Llm {
                            call: Box::new(call),
                            host: exchange.host.clone(),
                            port: exchange.port,
                            user_agent: exchange.request.header("user-agent").map(str::to_string),
                            end_ts_ns: exchange
                                .response
                                .as_ref()
                                .map_or(ts_ns, |r| r.end_ts_ns.max(r.ts_ns)),
                        }
                    }
                    None => ObservationKind::Http {
                        exchange: Box::new(exchange),
                        role,
                    },
                }
            };
            out.push(Observation {
                ts_ns,
                time_unix_ns: ts_ns.saturating_add(conn.time_offset_ns),
                actor: conn.actor.clone(),
                events: events.clone(),
                kind,
            });
        }
    }
}

/// `http://host[:port]/path` of an exchange, the identity of an HTTP MCP endpoint.
fn endpoint_url(exchange: &HttpExchange) -> String {
    let scheme = if exchange.tls { "https" } else { "http" };
    let host = exchange.host.as_deref().unwrap_or("unknown");
    let host = match exchange.port {
        Some(port) if !host.contains(':') => format!("{host}:{port}"),
        _ => host.to_string(),
    };
    format!("{scheme}://{host}{}", exchange.request.path())
}

/// One observation per wire-protocol record of a connection, all citing the events that fed
/// them.
fn emit_records<T>(
    conn: &mut Connection,
    records: Vec<T>,
    out: &mut Vec<Observation>,
    kind: impl Fn(T, Option<Peer>) -> (u64, ObservationKind),
) {
    if records.is_empty() {
        return;
    }
    let events = take_events(conn);
    for record in records {
        let (ts_ns, kind) = kind(record, conn.peer.clone());
        out.push(Observation {
            ts_ns,
            time_unix_ns: ts_ns.saturating_add(conn.time_offset_ns),
            actor: conn.actor.clone(),
            events: events.clone(),
            kind,
        });
    }
}

/// The events that fed what a connection just produced; the next record starts afresh.
fn take_events(conn: &mut Connection) -> Vec<EventRange> {
    conn.events.iter_mut().filter_map(Option::take).collect()
}

/// Direction as seen from the client, which is how the wire-protocol parsers read streams.
fn client_view(role: Role, direction: Direction) -> Direction {
    match (role, direction) {
        (Role::Server, Direction::Egress) => Direction::Ingress,
        (Role::Server, Direction::Ingress) => Direction::Egress,
        (_, other) => other,
    }
}

fn http_side(role: Role, direction: Direction) -> Side {
    match (role, direction) {
        (Role::Client, Direction::Egress) | (Role::Server, Direction::Ingress) => Side::Request,
        _ => Side::Response,
    }
}

/// Decides a connection's protocol from the first bytes seen in either direction.
fn recognise_protocol(direction: Direction, bytes: &[u8], budget: &MemoryBudget) -> Protocol {
    let role = |request_outgoing: bool| {
        if request_outgoing {
            Role::Client
        } else {
            Role::Server
        }
    };
    let egress = matches!(direction, Direction::Egress);
    if http::looks_like_request(bytes) {
        return Protocol::Http {
            parser: Box::new(HttpConnection::with_budget(budget)),
            role: role(egress),
        };
    }
    if http::looks_like_response(bytes) {
        // Capture began mid-exchange: the response's sender is the server.
        return Protocol::Http {
            parser: Box::new(HttpConnection::with_budget(budget)),
            role: role(!egress),
        };
    }
    if PostgresConnection::looks_like_postgres(bytes) {
        return Protocol::Postgres {
            parser: Box::new(PostgresConnection::new()),
            role: role(egress),
        };
    }
    if RedisConnection::looks_like_redis(bytes) {
        return Protocol::Redis {
            parser: Box::new(RedisConnection::new()),
            role: role(egress),
        };
    }
    Protocol::Opaque
}

fn redact_exchange(exchange: &mut HttpExchange) {
    let headers = exchange.request.headers.iter_mut().chain(
        exchange
            .response
            .iter_mut()
            .flat_map(|r| r.headers.iter_mut()),
    );
    for header in headers {
        header.value = redact::redact_header_value(&header.name, &header.value);
    }
    redact_string(&mut exchange.request.target);
    redact::redact_in_place(&mut exchange.request.body);
    if let Some(response) = exchange.response.as_mut() {
        redact::redact_in_place(&mut response.body);
        match response.stream.as_mut() {
            Some(http::StreamedBody::Sse(events)) => {
                events.iter_mut().for_each(|e| redact_string(&mut e.data))
            }
            Some(http::StreamedBody::Ndjson(lines)) => lines.iter_mut().for_each(redact_string),
            None => {}
        }
    }
}

fn redact_string(text: &mut String) {
    let mut bytes = std::mem::take(text).into_bytes();
    redact::redact_in_place(&mut bytes);
    *text = String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
}

/// Text a model streamed in fragments (tool-call arguments, output) is whole only once the
/// call is assembled: a secret split across events is masked here.
fn redact_llm_call(call: &mut llm::LlmCall) {
    for tool_call in &mut call.tool_calls {
        redact::redact_json(&mut tool_call.arguments);
    }
    for result in &mut call.tool_results {
        redact_string(&mut result.content);
    }
    for text in [
        &mut call.output_text,
        &mut call.last_user_message,
        &mut call.system_prompt,
    ]
    .into_iter()
    .flatten()
    {
        redact_string(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_json::events_from_json_lines;

    fn observations(fixture: &str) -> (Vec<Observation>, ReconstructStats) {
        let mut reconstructor = Reconstructor::new(ReconstructOptions::default());
        let mut out = Vec::new();
        let events = events_from_json_lines(fixture).unwrap();
        let last = events.last().map_or(0, |e| e.header.ts_ns);
        for event in &events {
            out.extend(reconstructor.push(event));
        }
        out.extend(reconstructor.finish(last));
        (out, reconstructor.stats().clone())
    }

    fn llm_calls(observations: &[Observation]) -> Vec<&crate::reconstruct::llm::LlmCall> {
        observations
            .iter()
            .filter_map(|o| match &o.kind {
                ObservationKind::Llm { call, .. } => Some(call.as_ref()),
                _ => None,
            })
            .collect()
    }

    /// Captured by the real collector: the Python agent (system libssl) streaming two chat
    /// completions with tool calls between them.
    #[test]
    fn python_agent_capture_gives_two_llm_calls_and_its_tool_actions() {
        let (observations, stats) = observations(include_str!(
            "../../tests/fixtures/capture/python_chat_stream.jsonl"
        ));
        let calls = llm_calls(&observations);
        assert_eq!(calls.len(), 2, "{observations:#?}");
        assert_eq!(
            (
                stats.http_exchanges,
                stats.partial_exchanges,
                stats.gap_bytes
            ),
            (2, 0, 0)
        );
        let first = calls[0];
        assert!(first.streamed && !first.partial);
        assert_eq!(first.request_model.as_deref(), Some("gpt-4o-mini"));
        let names: Vec<_> = first.tool_calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["run_command", "read_file", "fetch_url"]);
        assert_eq!(first.tool_calls[1].arguments["path"], "/etc/hostname");
        assert!(first.tool_calls.iter().all(|c| c.id.is_some()));
        let second = calls[1];
        assert_eq!(second.tool_results.len(), 3);
        let ids: Vec<_> = second
            .tool_results
            .iter()
            .map(|r| r.call_id.clone())
            .collect();
        let requested: Vec<_> = first.tool_calls.iter().map(|c| c.id.clone()).collect();
        assert_eq!(ids, requested);
        assert!(second
            .output_text
            .as_deref()
            .is_some_and(|t| t.starts_with("Done")));
        assert!(observations.iter().any(|o| matches!(&o.kind,
            ObservationKind::Exec { filename, .. } if filename == "/bin/echo")));
        assert!(observations.iter().any(|o| matches!(&o.kind,
            ObservationKind::FileOpen { path, .. } if path == "/etc/hostname")));
    }

    proptest::proptest! {
        /// Damaged or hostile event streams (odd offsets, lengths, fds, sources, bytes) never
        /// panic the reconstructor.
        #[test]
        fn arbitrary_payload_events_never_panic(
            chunks in proptest::collection::vec(
                (0u8..4, proptest::bool::ANY, -2i32..8, 0u64..4, proptest::num::u64::ANY,
                 proptest::num::u64::ANY, proptest::bool::ANY,
                 proptest::collection::vec(proptest::num::u8::ANY, 0..64)),
                0..40),
            prefix in proptest::sample::select(vec![
                &b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5\r\n\r\n"[..],
                &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
                &b"\x00\x00\x00\x08\x04\xd2\x16\x2f"[..],
                &b"*1\r\n$4\r\nPING\r\n"[..],
                &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}\n"[..],
                &b""[..],
            ]),
        ) {
            let base: Event = events_from_json_lines(include_str!(
                "../../tests/fixtures/capture/python_chat_stream.jsonl"
            ))
            .unwrap()
            .into_iter()
            .find(|e| matches!(e.body, EventBody::Data { .. }))
            .unwrap();
            let mut reconstructor = Reconstructor::new(ReconstructOptions::default());
            for (i, (source, egress, fd, call, offset, total, last, bytes)) in chunks.into_iter().enumerate() {
                let mut event = base.clone();
                event.header.ts_ns = i as u64;
                let mut data = if i == 0 { prefix.to_vec() } else { Vec::new() };
                data.extend(bytes);
                event.body = EventBody::Data {
                    source: [PayloadSource::Tls, PayloadSource::Socket, PayloadSource::Pipe, PayloadSource::Unknown][source as usize],
                    direction: if egress { Direction::Egress } else { Direction::Ingress },
                    fd,
                    conn_id: 7,
                    call_id: call,
                    seq: 0,
                    offset,
                    total_len: total,
                    lost_bytes: 0,
                    last,
                    data,
                };
                reconstructor.push(&event);
            }
            reconstructor.finish(u64::MAX);
        }
    }

    /// Lines that do not tell a pipe end's side (pings) arrive one per chunk before the
    /// first request: each is counted once, so the end is still recognised.
    #[test]
    fn pipe_end_is_decided_after_many_undecided_lines_in_separate_chunks() {
        let base: Event = events_from_json_lines(include_str!(
            "../../tests/fixtures/mcp/stdio-pipe-events.jsonl"
        ))
        .unwrap()
        .into_iter()
        .find(|e| {
            matches!(
                e.body,
                EventBody::Data {
                    direction: Direction::Ingress,
                    ..
                }
            ) && e.header.pid == 18206
        })
        .unwrap();
        let mut lines: Vec<String> = (0..10)
            .map(|id| format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"ping\"}}\n"))
            .collect();
        lines.push(
            "{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"initialize\",\"params\":{}}\n".into(),
        );
        let mut reconstructor = Reconstructor::new(ReconstructOptions::default());
        let mut out = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let mut event = base.clone();
            if let EventBody::Data {
                call_id,
                data,
                total_len,
                offset,
                seq,
                last,
                ..
            } = &mut event.body
            {
                *call_id = i as u64 + 1;
                *data = line.as_bytes().to_vec();
                *total_len = data.len() as u64;
                *offset = 0;
                *seq = 0;
                *last = true;
            }
            out.extend(reconstructor.push(&event));
        }
        out.extend(reconstructor.finish(u64::MAX));
        let methods: Vec<_> = mcp_records(&out).into_iter().map(|r| r.3).collect();
        assert!(methods.contains(&"initialize".to_string()), "{methods:?}");
    }

    /// A worker thread exiting mid-response must not end the process's connections.
    #[test]
    fn a_thread_exit_does_not_cut_the_process_connections() {
        let mut events = events_from_json_lines(include_str!(
            "../../tests/fixtures/capture/python_chat_stream.jsonl"
        ))
        .unwrap();
        let at = events
            .iter()
            .position(|e| {
                matches!(
                    e.body,
                    EventBody::Data {
                        direction: Direction::Ingress,
                        ..
                    }
                )
            })
            .unwrap();
        let mut thread_exit = events[at].clone();
        thread_exit.header.tid += 1;
        thread_exit.body = EventBody::Exit { exit_code: Some(0) };
        events.insert(at + 1, thread_exit);
        let mut reconstructor = Reconstructor::new(ReconstructOptions::default());
        let mut out = Vec::new();
        for event in &events {
            out.extend(reconstructor.push(event));
        }
        out.extend(reconstructor.finish(u64::MAX));
        assert_eq!(llm_calls(&out).len(), 2);
        assert_eq!(reconstructor.stats().partial_exchanges, 0);
    }

    /// Node keeps TLS in memory BIOs: no fd, chunks keyed by the SSL pointer only.
    #[test]
    fn node_agent_capture_without_fds_is_reconstructed() {
        let (observations, stats) = observations(include_str!(
            "../../tests/fixtures/capture/node_chat_stream.jsonl"
        ));
        let calls = llm_calls(&observations);
        assert_eq!(calls.len(), 2);
        assert_eq!(stats.partial_exchanges, 0);
        assert_eq!(calls[0].tool_calls.len(), 3);
        assert_eq!(calls[1].tool_results.len(), 3);
    }

    #[test]
    fn large_request_body_over_several_chunks_is_joined() {
        let (observations, stats) = observations(include_str!(
            "../../tests/fixtures/capture/python_chat.jsonl"
        ));
        let calls = llm_calls(&observations);
        assert_eq!(calls.len(), 2);
        assert!(calls.iter().all(|c| !c.partial && !c.streamed));
        // The 40 KiB padding travels in the user message.
        assert!(calls[0]
            .last_user_message
            .as_ref()
            .is_some_and(|m| m.len() > 40_000));
        assert_eq!(stats.gap_bytes, 0);
    }

    #[test]
    fn lost_chunks_become_gaps_and_flag_the_exchange() {
        let mut events = events_from_json_lines(include_str!(
            "../../tests/fixtures/capture/python_chat.jsonl"
        ))
        .unwrap();
        // Drop the middle chunk of the first multi-chunk call, as a full ring buffer would.
        let position = events
            .iter()
            .position(|e| matches!(e.body, EventBody::Data { seq: 1, .. }))
            .expect("a call with several chunks");
        events.remove(position);
        let mut reconstructor = Reconstructor::new(ReconstructOptions::default());
        let mut out = Vec::new();
        for event in &events {
            out.extend(reconstructor.push(event));
        }
        out.extend(reconstructor.finish(u64::MAX));
        assert_eq!(reconstructor.stats().gap_bytes, 16384);
        let calls = llm_calls(&out);
        assert!(calls[0].partial, "{:#?}", calls[0]);
        // The connection stays in sync: the next exchange is whole.
        assert!(!calls.last().unwrap().partial);
    }

    /// (actor pid, role, peer pid, method, tool name) of each MCP record.
    type McpSummary = (u32, Role, Option<u32>, String, Option<String>);

    fn mcp_records(observations: &[Observation]) -> Vec<McpSummary> {
        observations
            .iter()
            .filter_map(|o| match &o.kind {
                ObservationKind::Mcp {
                    exchange,
                    role,
                    peer_pid,
                    ..
                } => Some((
                    o.actor.pid,
                    *role,
                    *peer_pid,
                    exchange.method.clone().unwrap_or_default(),
                    exchange.tool_name.clone(),
                )),
                _ => None,
            })
            .collect()
    }

    /// Both ends of a stdio session were captured (the SDK server reads fd 6, writes fd 7):
    /// each message is reported once, for the client, with the server as peer.
    #[test]
    fn stdio_mcp_is_read_at_the_server_and_reported_for_the_client() {
        let (observations, _) = observations(include_str!(
            "../../tests/fixtures/mcp/stdio-pipe-events.jsonl"
        ));
        let records = mcp_records(&observations);
        let methods: Vec<&str> = records.iter().map(|r| r.3.as_str()).collect();
        assert_eq!(
            methods,
            [
                "initialize",
                "notifications/initialized",
                "tools/list",
                "tools/call",
                "tools/call",
                "resources/read",
                "prompts/get"
            ],
            "{records:#?}"
        );
        assert!(records
            .iter()
            .all(|r| r.0 == 18202 && r.1 == Role::Client && r.2 == Some(18206)));
        let calls: Vec<_> = observations
            .iter()
            .filter_map(|o| match &o.kind {
                ObservationKind::Mcp { exchange, .. } => match &exchange.detail {
                    mcp::McpDetail::ToolsCall(call) => Some(call.clone()),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        let dump: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/mcp/client-dump.json"))
                .unwrap();
        assert_eq!(calls[0].name.as_deref(), Some("read_file"));
        assert_eq!(
            calls[0].result_text.as_deref(),
            dump["read_file"]["content"][0]["text"].as_str()
        );
        assert_eq!(calls[1].is_error, Some(true));
    }

    /// Streamable HTTP: the client's and the server's views of the same session.
    #[test]
    fn streamable_http_mcp_is_reconstructed_at_both_ends() {
        let (observations, _) = observations(include_str!(
            "../../tests/fixtures/mcp/http-socket-events.jsonl"
        ));
        let records = mcp_records(&observations);
        let client: Vec<_> = records.iter().filter(|r| r.1 == Role::Client).collect();
        let server: Vec<_> = records.iter().filter(|r| r.1 == Role::Server).collect();
        assert!(client.iter().all(|r| r.0 == 18202));
        assert!(server.iter().all(|r| r.0 == 18190));
        for side in [&client, &server] {
            let methods: Vec<&str> = side.iter().map(|r| r.3.as_str()).collect();
            assert!(methods.contains(&"initialize"), "{records:#?}");
            assert!(side
                .iter()
                .any(|r| r.3 == "tools/call" && r.4.as_deref() == Some("echo")));
        }
        // JSON-RPC over HTTP is MCP, not a plain API call or an LLM call.
        assert!(!observations.iter().any(|o| matches!(
            o.kind,
            ObservationKind::Http { .. } | ObservationKind::Llm { .. }
        )));
    }

    /// psql against a real PostgreSQL, captured by the collector.
    #[test]
    fn postgres_capture_gives_statements_with_tables() {
        let (observations, stats) = observations(include_str!(
            "../../tests/fixtures/postgres/simple_query.jsonl"
        ));
        let statements: Vec<_> = observations
            .iter()
            .filter_map(|o| match &o.kind {
                ObservationKind::Sql { statement, peer } => Some((statement, peer)),
                _ => None,
            })
            .collect();
        assert!(stats.sql_statements > 0);
        assert_eq!(stats.sql_statements as usize, statements.len());
        assert!(
            statements
                .iter()
                .any(|(s, _)| s.tables.iter().any(|t| t.contains("customers"))),
            "{statements:#?}"
        );
        assert!(statements
            .iter()
            .all(|(s, _)| s.database.as_deref() == Some("crm")));
    }
}
