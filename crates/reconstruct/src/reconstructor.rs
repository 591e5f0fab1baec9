//! The reconstruction driver: consumes [`Event`]s in order and emits [`Observation`]s.
//!
//! It keeps its own process table and socket table, built only from the events it is given,
//! so a live capture and a replay of its recording produce the same observations. It only
//! routes: payload chunks go to the stream assembler ([`super::stream`]), which owns their
//! order, gaps, budget and parser; the messages parsers complete become observations here
//! (HTTP exchanges through the ordered interpreters of [`super::http_interpreters`]); pipe
//! bytes of MCP servers go to the stdio MCP sessions ([`super::mcp::stdio_sessions`]).

use agentscope_event::pid_keyed::PidMap;

use crate::event::{Event, EventBody};
use crate::memory_budget::{self, MemoryBudget, Pressure};
use crate::process_table::ProcessTable;
use agentscope_event::SocketRef;

use super::file_classes::FileClasses;
use super::http::{self, HttpExchange, PairedExchange};
use super::http_interpreters::{self, ExchangeContext, HttpInterpreter};
use super::mcp::stdio_sessions::StdioSessions;
use super::observation::{Actor, EventRange, Observation, ObservationKind, Peer};
use super::postgres::SqlStatement;
use super::redaction;
use super::redis::RedisCommand;
use super::request_json::RequestJson;
use super::stream::{Delivery, Stream, StreamAssembler, StreamKey};
use super::wire::WireMessage;

pub use super::stream::MAX_CONNECTIONS;

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
    /// Connections the kernel sampled out (`--sample-connections`): their connect or accept
    /// is seen, none of their payloads.
    #[serde(skip_serializing_if = "is_zero")]
    pub connections_sampled_out: u64,
    /// HTTP/2 connections recognised from their frames, already under way when capture
    /// began: their header blocks are read without the dynamic table (requests that referred
    /// to it are flagged partial).
    #[serde(skip_serializing_if = "is_zero")]
    pub http2_attached_mid_connection: u64,
    /// Connections still open when capture stopped that were dropped unparsed because the
    /// stop's time ran out ([`Reconstructor::finish_while`]).
    #[serde(skip_serializing_if = "is_zero")]
    pub connections_unflushed_at_stop: u64,
}

/// serde's test for a counter written only once something was counted (here, in the model's
/// stats and in `agentscope coverage`'s report).
pub fn is_zero(value: &u64) -> bool {
    *value == 0
}

pub struct Reconstructor {
    /// Shared with the model and detection (see [`Reconstructor::budget`]).
    budget: MemoryBudget,
    options: ReconstructOptions,
    processes: ProcessTable,
    streams: StreamAssembler,
    /// Peers of sockets by (pid, fd), from connect and accept.
    peers: PidMap<(u32, i32), Peer>,
    next_index: u64,
    stats: ReconstructStats,
    stdio_sessions: StdioSessions,
    /// Tried in order on every HTTP exchange (see [`super::http_interpreters`]).
    interpreters: Vec<Box<dyn HttpInterpreter>>,
    /// Processes the full process table forgot, not yet taken by the pipeline.
    forgotten: Vec<u32>,
    /// Classes of the paths opened so far (a bounded table).
    file_classes: FileClasses,
}

impl Reconstructor {
    pub fn new(options: ReconstructOptions) -> Self {
        let budget = MemoryBudget::new(options.memory_budget);
        Self {
            streams: StreamAssembler::new(&budget),
            stdio_sessions: StdioSessions::new(&budget),
            budget,
            options,
            processes: ProcessTable::default(),
            peers: PidMap::default(),
            next_index: 0,
            stats: ReconstructStats::default(),
            interpreters: http_interpreters::interpreters(),
            forgotten: Vec::new(),
            file_classes: FileClasses::default(),
        }
    }

    /// Processes forgotten since the last call because the process table was full (see
    /// [`crate::process_table::PROCESSES_KEPT`]): whoever keeps state per process forgets
    /// them too. Their socket peers are forgotten here.
    pub fn take_forgotten_processes(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.forgotten)
    }

    /// Keeps the plain sockets that turn opaque from now on, for the live collector to stop
    /// the kernel copying them (see [`StreamAssembler::report_opaque_sockets`]).
    pub fn report_opaque_sockets(&mut self) {
        self.streams.report_opaque_sockets();
    }

    /// Plain sockets that turned opaque since the last call.
    pub fn take_opaque_sockets(&mut self) -> Vec<SocketRef> {
        self.streams.take_opaque_sockets()
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
        let forgotten = self.processes.take_forgotten();
        if !forgotten.is_empty() {
            self.budget
                .note_many(Pressure::ProcessForgotten, forgotten.len() as u64);
            let gone: std::collections::HashSet<u32> = forgotten.iter().copied().collect();
            self.peers.retain(|(pid, _), _| !gone.contains(pid));
            // Bounded like the table: a pipeline that never takes them keeps the latest.
            if self.forgotten.len() > crate::process_table::PROCESSES_KEPT {
                self.forgotten.clear();
            }
            self.forgotten.extend(forgotten);
        }
        let mut out = Vec::new();
        let simple = |kind: ObservationKind| Observation {
            ts_ns: header.ts_ns,
            time_unix_ns: header.time_unix_ns,
            actor: Actor::from(header),
            events: vec![EventRange::single(index)],
            protocol: None,
            kind,
        };
        match &event.body {
            EventBody::Exec { filename, argv, .. } => out.push(simple(ObservationKind::Exec {
                filename: filename.clone(),
                argv: argv.clone(),
            })),
            // The kernel sends an exit only when a process's last thread ends (which may be
            // another thread than its main one: the header's tid is the last).
            EventBody::Exit { exit_code } => {
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
                    class: self.file_classes.classify(path),
                    write,
                }));
            }
            EventBody::Connect {
                fd,
                addr,
                port,
                ret,
                payloads_sampled_out,
                ..
            } if *ret == 0 || *ret == -libc::EINPROGRESS => {
                self.stats.connections_sampled_out += u64::from(*payloads_sampled_out);
                let peer = Peer {
                    addr: addr.clone(),
                    port: *port,
                };
                self.reset_socket(header.pid, *fd, header.ts_ns, &mut out);
                self.peers.insert((header.pid, *fd), peer.clone());
                out.push(simple(ObservationKind::Connect {
                    peer,
                    payloads_sampled_out: *payloads_sampled_out,
                }));
            }
            EventBody::Enforce(decision) => {
                out.push(simple(ObservationKind::Enforce {
                    decision: decision.clone(),
                }));
            }
            EventBody::Package(package) => {
                out.push(simple(ObservationKind::Package {
                    package: package.clone(),
                }));
            }
            EventBody::HostPathWrite {
                path,
                mount_point,
                host_path,
                ..
            } => out.push(simple(ObservationKind::HostPathWrite {
                path: path.clone(),
                mount_point: mount_point.clone(),
                host_path: host_path.clone(),
            })),
            EventBody::EscapeSyscall(call) => out.push(simple(ObservationKind::EscapeSyscall {
                target_lineage: call
                    .target_pid
                    .map(|pid| self.processes.lineage(pid))
                    .unwrap_or_default(),
                call: call.clone(),
            })),
            EventBody::EnforcePolicy(policy) => {
                out.push(simple(ObservationKind::EnforcePolicy {
                    policy: policy.clone(),
                }));
            }
            EventBody::ClusterObjects(objects) => {
                out.push(simple(ObservationKind::ClusterObjects {
                    objects: objects.clone(),
                }));
            }
            EventBody::PayloadsLeftOut {
                opaque_socket_bytes,
                on_request_bytes,
                sampled_out_bytes,
                running,
            } => out.push(simple(ObservationKind::PayloadsLeftOut {
                opaque_socket_bytes: *opaque_socket_bytes,
                on_request_bytes: *on_request_bytes,
                sampled_out_bytes: *sampled_out_bytes,
                running: *running,
            })),
            EventBody::Accept {
                addr,
                port,
                ret,
                payloads_sampled_out,
                ..
            } if *ret >= 0 => {
                self.stats.connections_sampled_out += u64::from(*payloads_sampled_out);
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
            EventBody::TlsHello {
                fd,
                server_name,
                alpn,
                coverage,
                ..
            } => out.push(simple(ObservationKind::TlsHello {
                server_name: server_name.clone(),
                alpn: alpn.clone(),
                peer: self.peers.get(&(header.pid, *fd)).cloned(),
                provider: server_name
                    .as_deref()
                    .and_then(crate::llm::provider::provider_of_host),
                coverage: coverage.clone(),
            })),
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
        self.finish_while(ts_ns, &mut || true)
    }

    /// As [`Reconstructor::finish`], asking `keep_going` before each connection: once it says
    /// no, the connections left are dropped without parsing what they hold (their memory goes
    /// back to the budget) and counted in [`ReconstructStats::connections_unflushed_at_stop`].
    /// A live stop has a second; flushing parses and redacts every half-sent body, which a
    /// node with many open uploads makes long, so the collector stops asking at its deadline
    /// (a recording still holds those connections' bytes). Stdio MCP sessions are always
    /// finished: their messages are small and bounded, and they carry the tool calls.
    pub fn finish_while(
        &mut self,
        ts_ns: u64,
        keep_going: &mut dyn FnMut() -> bool,
    ) -> Vec<Observation> {
        let mut out = Vec::new();
        let mut flushing = true;
        for key in self.streams.keys() {
            flushing = flushing && keep_going();
            if flushing {
                self.close_stream(key, ts_ns, &mut out);
            } else if self.streams.remove(key).is_some() {
                self.stats.connections_unflushed_at_stop += 1;
            }
        }
        self.stdio_sessions.finish_all(
            ts_ns,
            &self.processes,
            &mut self.stats.mcp_messages,
            &mut out,
        );
        out
    }

    fn reset_socket(&mut self, pid: u32, fd: i32, ts_ns: u64, out: &mut Vec<Observation>) {
        for key in self.streams.keys_of_socket(pid, fd) {
            self.close_stream(key, ts_ns, out);
        }
    }

    fn close_process(&mut self, pid: u32, ts_ns: u64, out: &mut Vec<Observation>) {
        for key in self.streams.keys_of_process(pid) {
            self.close_stream(key, ts_ns, out);
        }
        self.stdio_sessions.finish(
            pid,
            ts_ns,
            &self.processes,
            &mut self.stats.mcp_messages,
            out,
        );
        self.peers.retain(|(p, _), _| *p != pid);
    }

    fn close_stream(&mut self, key: StreamKey, ts_ns: u64, out: &mut Vec<Observation>) {
        if let Some(stream) = self.streams.remove(key) {
            self.finish_stream(stream, ts_ns, out);
        }
    }

    fn finish_stream(&mut self, mut stream: Stream, ts_ns: u64, out: &mut Vec<Observation>) {
        let messages = stream.finish(ts_ns);
        self.emit(&mut stream, messages, out);
    }

    fn push_data(&mut self, event: &Event, index: u64, out: &mut Vec<Observation>) {
        let mut evicted = None;
        let delivery = self
            .streams
            .push(event, index, &self.peers, &mut self.stats, &mut evicted);
        if let Some(stream) = evicted {
            self.stats.connections_evicted += 1;
            self.finish_stream(stream, event.header.ts_ns, out);
        }
        match delivery {
            Delivery::Nothing => {}
            Delivery::Messages { key, messages } => {
                if let Some(mut stream) = self.streams.remove(key) {
                    self.emit(&mut stream, messages, out);
                    self.streams.put_back(key, stream);
                }
            }
            Delivery::ServerEnd(bytes) => {
                self.stdio_sessions
                    .push(bytes, &self.processes, &mut self.stats.mcp_messages, out)
            }
        }
    }

    /// Turns what a stream's parser completed into observations. A stream carries one
    /// protocol, so its messages are all of one kind.
    fn emit(
        &mut self,
        stream: &mut Stream,
        messages: Vec<WireMessage>,
        out: &mut Vec<Observation>,
    ) {
        let mut exchanges = Vec::new();
        let mut statements = Vec::new();
        let mut commands = Vec::new();
        for message in messages {
            match message {
                WireMessage::Http(exchange) => exchanges.push(exchange),
                WireMessage::Sql(statement) => statements.push(statement),
                WireMessage::Redis(command) => commands.push(command),
                // Stdio MCP is read by its sessions, never by a connection's parser.
                WireMessage::Mcp(_) => {}
            }
        }
        self.emit_http(stream, exchanges, out);
        self.emit_sql(stream, statements, out);
        self.emit_redis(stream, commands, out);
    }

    fn emit_sql(
        &mut self,
        stream: &mut Stream,
        statements: Vec<SqlStatement>,
        out: &mut Vec<Observation>,
    ) {
        self.stats.sql_statements += statements.len() as u64;
        emit_records(stream, statements, out, |statement, peer| {
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
        stream: &mut Stream,
        commands: Vec<RedisCommand>,
        out: &mut Vec<Observation>,
    ) {
        self.stats.redis_commands += commands.len() as u64;
        emit_records(stream, commands, out, |command, peer| {
            (
                command.ts_ns,
                ObservationKind::Redis {
                    command: Box::new(command),
                    peer,
                },
            )
        });
    }

    /// Parsers charge what they cannot refuse (message heads, requests waiting for their
    /// answer) even past the limit; if that happened, the least recently active connections
    /// are flushed (their exchanges come out flagged) until the pipeline is within its share.
    fn enforce_budget(&mut self, ts_ns: u64, out: &mut Vec<Observation>) {
        while self.budget.used() > self.budget.held_limit() && !self.streams.is_empty() {
            self.budget.note(Pressure::ConnectionEvicted);
            if let Some(stream) = self.streams.evict_least_recent() {
                self.stats.connections_evicted += 1;
                self.finish_stream(stream, ts_ns, out);
            }
        }
    }

    /// Interpreters parse bodies as JSON; a body whose parsed tree would not fit the working
    /// room of the budget (millions of tiny values) is not handed on: it is emptied and
    /// flagged, its length kept.
    fn limit_parse_cost(&self, exchange: &mut HttpExchange) {
        let room = self.budget.budget() / 8;
        if !memory_budget::json_text_tree_fits(&exchange.request.body, room) {
            exchange.request.body = Vec::new();
            exchange.request.completeness = http::Completeness::Truncated;
            if !exchange.request.over_budget {
                exchange.request.over_budget = true;
                self.budget.note(Pressure::BodyTruncated);
            }
        }
        if let Some(response) = exchange.response.as_mut() {
            if !memory_budget::json_text_tree_fits(&response.body, room) {
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
        stream: &mut Stream,
        exchanges: Vec<PairedExchange>,
        out: &mut Vec<Observation>,
    ) {
        let Some(role) = stream.role() else {
            return;
        };
        if exchanges.is_empty() {
            return;
        }
        let events = stream.take_events();
        for paired in exchanges {
            self.stats.http_exchanges += 1;
            let mut exchange = HttpExchange {
                host: paired
                    .request
                    .authority()
                    .map(str::to_string)
                    .or_else(|| stream.peer.as_ref().map(|p| p.addr.clone())),
                port: stream.peer.as_ref().map(|p| p.port),
                tls: stream.tls,
                protocol: paired.protocol.over(stream.tls),
                request: paired.request,
                response: paired.response,
            };
            self.limit_parse_cost(&mut exchange);
            if self.options.redact_secrets {
                redaction::redact_exchange(&mut exchange);
            }
            let partial = exchange.request.completeness != http::Completeness::Complete
                || exchange
                    .response
                    .as_ref()
                    .is_none_or(|r| r.completeness != http::Completeness::Complete);
            if partial {
                self.stats.partial_exchanges += 1;
            }
            let context = ExchangeContext {
                pid: stream.actor.pid,
                role,
                redact_secrets: self.options.redact_secrets,
            };
            let request_json = RequestJson::new(&exchange.request);
            let interpreted = self
                .interpreters
                .iter_mut()
                .find_map(|interpreter| interpreter.interpret(&exchange, &request_json, &context));
            // The parse borrows the body, and the exchange moves into an observation below.
            drop(request_json);
            let ts_ns = exchange.request.ts_ns;
            let exchange_protocol = exchange.protocol;
            // An exchange no interpreter claims stays a plain HTTP exchange.
            let kinds = interpreted.unwrap_or_else(|| {
                vec![ObservationKind::Http {
                    exchange: Box::new(exchange),
                    role,
                }]
            });
            for kind in kinds {
                match &kind {
                    ObservationKind::Mcp { .. } => self.stats.mcp_messages += 1,
                    ObservationKind::Llm { .. } => self.stats.llm_calls += 1,
                    _ => {}
                }
                out.push(Observation {
                    ts_ns,
                    time_unix_ns: ts_ns.saturating_add(stream.time_offset_ns),
                    actor: stream.actor.clone(),
                    events: events.clone(),
                    protocol: Some(exchange_protocol),
                    kind,
                });
            }
        }
    }
}

/// One observation per wire-protocol record of a stream, all citing the events that fed
/// them.
fn emit_records<T>(
    stream: &mut Stream,
    records: Vec<T>,
    out: &mut Vec<Observation>,
    kind: impl Fn(T, Option<Peer>) -> (u64, ObservationKind),
) {
    if records.is_empty() {
        return;
    }
    let events = stream.take_events();
    for record in records {
        let (ts_ns, kind) = kind(record, stream.peer.clone());
        out.push(Observation {
            ts_ns,
            time_unix_ns: ts_ns.saturating_add(stream.time_offset_ns),
            actor: stream.actor.clone(),
            events: events.clone(),
            protocol: None,
            kind,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Direction, PayloadSource};
    use crate::event_json::events_from_json_lines;
    use crate::mcp;
    use crate::Role;

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

    /// The first data event going `direction` in `fixture` (its JSON lines) that `also`
    /// accepts.
    fn first_data_event(
        fixture: &str,
        direction: Direction,
        also: impl Fn(&Event) -> bool,
    ) -> Event {
        events_from_json_lines(fixture)
            .unwrap()
            .into_iter()
            .find(|e| {
                matches!(&e.body, EventBody::Data { direction: d, .. } if *d == direction)
                    && also(e)
            })
            .unwrap()
    }

    /// `base` (a data event) carrying `bytes` as one whole call of its own, `call_id`.
    fn one_whole_call(base: &Event, call_id: u64, bytes: &[u8]) -> Event {
        let mut event = base.clone();
        if let EventBody::Data {
            call_id: id,
            data,
            total_len,
            offset,
            seq,
            last,
            ..
        } = &mut event.body
        {
            *id = call_id;
            *data = bytes.to_vec();
            *total_len = bytes.len() as u64;
            *offset = 0;
            *seq = 0;
            *last = true;
        }
        event
    }

    fn llm_calls(observations: &[Observation]) -> Vec<&crate::llm::LlmCall> {
        observations
            .iter()
            .filter_map(|o| match &o.kind {
                ObservationKind::Llm { call, .. } => Some(call.as_ref()),
                _ => None,
            })
            .collect()
    }

    /// A capture that begins while a keep-alive connection is mid-request sees the request's
    /// body before any head (http.client writes the head and the body apart). The connection
    /// is still read from its next message on: here the Python agent's capture without the
    /// first request's head, whose second chat completion must come out whole.
    #[test]
    fn a_capture_begun_inside_a_request_body_reads_the_next_requests() {
        let fixture = include_str!(concat!(
            env!("AGENTSCOPE_REPO"),
            "/tests/fixtures/capture/python_chat_stream.jsonl"
        ));
        let first_head = fixture
            .lines()
            .position(|line| {
                line.contains(r#""direction":"egress""#) && line.contains(r#""kind":"data""#)
            })
            .expect("the fixture's first request head");
        let begun_inside: String = fixture
            .lines()
            .enumerate()
            .filter(|(i, _)| *i != first_head)
            .map(|(_, line)| format!("{line}\n"))
            .collect();
        let (observations, stats) = observations(&begun_inside);
        assert_eq!(stats.opaque_connections, 0, "{stats:?}");
        let calls = llm_calls(&observations);
        let whole = calls
            .iter()
            .find(|call| call.tool_results.len() == 3)
            .unwrap_or_else(|| panic!("the second call is read: {observations:#?}"));
        assert_eq!(whole.request_model.as_deref(), Some("gpt-4o-mini"));
        assert!(!whole.partial);
    }

    /// Captured by the real collector: the Python agent (system libssl) streaming two chat
    /// completions with tool calls between them.
    #[test]
    fn python_agent_capture_gives_two_llm_calls_and_its_tool_actions() {
        let (observations, stats) = observations(include_str!(concat!(
            env!("AGENTSCOPE_REPO"),
            "/tests/fixtures/capture/python_chat_stream.jsonl"
        )));
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

    /// Captured by the real collector: the Go agent's three streamed conversations on one
    /// HTTP/2 connection (tests/fixtures/http2). The stream assembler picks HTTP/2 from the
    /// preface; each stream is an LLM call, with the host from `:authority`.
    #[test]
    fn http2_capture_gives_an_llm_call_per_stream() {
        let fixture = include_str!(concat!(
            env!("AGENTSCOPE_REPO"),
            "/tests/fixtures/http2/go_streaming_tool_calls.jsonl"
        ));
        let (observations, stats) = observations(fixture);
        let calls = llm_calls(&observations);
        assert_eq!(calls.len(), 6, "{observations:#?}");
        assert_eq!(
            (
                stats.http_exchanges,
                stats.partial_exchanges,
                stats.opaque_connections
            ),
            (6, 0, 0)
        );
        assert_eq!(calls.iter().filter(|c| !c.tool_calls.is_empty()).count(), 3);
        assert!(observations.iter().all(|o| match &o.kind {
            ObservationKind::Llm { host, .. } =>
                host.as_deref().is_some_and(|h| h.starts_with("127.0.0.1:")),
            _ => true,
        }));
        // Captured through TLS, so `h2`; every exchange-borne observation names its protocol.
        assert!(observations.iter().all(|o| match &o.kind {
            ObservationKind::Llm { .. } => o.protocol == Some(http::WireProtocol::H2),
            _ => true,
        }));

        // The same bytes seen from the server's end: the preface arrives, so the captured
        // process serves; its exchanges are read, and they are not its own LLM calls.
        let served = fixture
            .replace("\"direction\":\"egress\"", "\"direction\":\"SWAP\"")
            .replace("\"direction\":\"ingress\"", "\"direction\":\"egress\"")
            .replace("\"direction\":\"SWAP\"", "\"direction\":\"ingress\"");
        let (observations, stats) = self::observations(&served);
        assert_eq!((stats.http_exchanges, stats.llm_calls), (6, 0));
        assert!(observations.iter().any(|o| matches!(
            &o.kind,
            ObservationKind::Http {
                role: Role::Server,
                ..
            }
        )));
    }

    /// Plain sockets whose first bytes are no protocol this reads are reported once, by pid,
    /// fd and socket id, only when asked for; not sockets without an id (connected before
    /// tracing), not pipes, TLS or recognised protocols.
    #[test]
    fn opaque_plain_sockets_are_reported_once_when_asked_for() {
        let base: Event = events_from_json_lines(include_str!(concat!(
            env!("AGENTSCOPE_REPO"),
            "/tests/fixtures/capture/python_chat_stream.jsonl"
        )))
        .unwrap()
        .into_iter()
        .find(|e| matches!(e.body, EventBody::Data { .. }))
        .unwrap();
        let chunk = |source, fd, conn_id, call_id, data: &[u8]| {
            let mut event = base.clone();
            event.body = EventBody::whole_call(
                source,
                Direction::Egress,
                fd,
                conn_id,
                call_id,
                data.to_vec(),
            );
            event
        };
        let binary: &[u8] = b"\x00\x01\x02\x03 replication stream";
        let pid = base.header.pid;
        let events = [
            chunk(PayloadSource::Socket, 5, 41, 1, binary),
            chunk(PayloadSource::Socket, 5, 41, 2, binary),
            chunk(PayloadSource::Socket, 6, 0, 3, binary),
            chunk(
                PayloadSource::Socket,
                7,
                43,
                4,
                b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            ),
            chunk(PayloadSource::Pipe, 8, 0, 5, binary),
            chunk(PayloadSource::Tls, 9, 45, 6, binary),
        ];
        let mut silent = Reconstructor::new(ReconstructOptions::default());
        let mut reporting = Reconstructor::new(ReconstructOptions::default());
        reporting.report_opaque_sockets();
        for event in &events {
            silent.push(event);
            reporting.push(event);
        }
        assert_eq!(silent.take_opaque_sockets(), []);
        assert_eq!(
            reporting.take_opaque_sockets(),
            [SocketRef { pid, fd: 5, id: 41 }]
        );
        assert_eq!(reporting.take_opaque_sockets(), []);
        // What is reconstructed does not depend on it: a replay never reports.
        assert_eq!(silent.stats(), reporting.stats());
    }

    /// The collector started while the Go agent's connection was open: the capture begins at
    /// the write holding stream 3's headers, after the first request filled the client's HPACK
    /// table (`:authority`, `:path` and the rest are references to it from then on). The
    /// connection is recognised from its frames, counted, the requests are read from what the
    /// blocks carry by themselves and flagged partial, the LLM calls are still recognised
    /// (from the body's shape: the path is in the unknown table), and stream 1, opened before,
    /// is not made up.
    #[test]
    fn http2_attached_mid_connection_reads_what_blocks_carry_alone() {
        let fixture = include_str!(concat!(
            env!("AGENTSCOPE_REPO"),
            "/tests/fixtures/http2/go_streaming_tool_calls.jsonl"
        ));
        let lines: Vec<&str> = fixture.lines().collect();
        let events = events_from_json_lines(fixture).unwrap();
        let start = events
            .iter()
            .position(|e| match &e.body {
                EventBody::Data {
                    direction: Direction::Egress,
                    data,
                    ..
                } => data.len() > 9 && data[3] == 1 && data[5..9] == [0, 0, 0, 3],
                _ => false,
            })
            .expect("stream 3's headers");
        let attached = lines[start..].join("\n");
        let (observations, stats) = observations(&attached);
        assert_eq!(stats.http2_attached_mid_connection, 1, "{stats:?}");
        assert_eq!(stats.opaque_connections, 0);
        let calls = llm_calls(&observations);
        assert_eq!(calls.len(), 5, "streams 3 to 11: {observations:#?}");
        assert!(calls
            .iter()
            .all(|c| c.partial && c.request_model.as_deref() == Some("gpt-4o-mini")));
        // Over TLS: `h2`, as from the preface.
        assert!(observations
            .iter()
            .filter(|o| matches!(o.kind, ObservationKind::Llm { .. }))
            .all(|o| o.protocol == Some(crate::http::WireProtocol::H2)));
        assert_eq!(stats.partial_exchanges, stats.http_exchanges, "{stats:?}");
        // Stream 1's late DATA and response are dropped, not paired with a made-up request.
        assert_eq!(stats.http_exchanges, 5, "{stats:?}");
        let graph_json = serde_json::to_value(&stats).unwrap();
        assert_eq!(graph_json["http2_attached_mid_connection"], 1);
        let whole = serde_json::to_value(self::observations(fixture).1).unwrap();
        assert!(
            whole.get("http2_attached_mid_connection").is_none(),
            "{whole}"
        );
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
            let base: Event = events_from_json_lines(include_str!(concat!(env!("AGENTSCOPE_REPO"), "/tests/fixtures/capture/python_chat_stream.jsonl")))
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
        let base = first_data_event(
            include_str!(concat!(
                env!("AGENTSCOPE_REPO"),
                "/tests/fixtures/mcp/stdio-pipe-events.jsonl"
            )),
            Direction::Ingress,
            |e| e.header.pid == 18206,
        );
        let mut lines: Vec<String> = (0..10)
            .map(|id| format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"ping\"}}\n"))
            .collect();
        lines.push(
            "{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"initialize\",\"params\":{}}\n".into(),
        );
        let mut reconstructor = Reconstructor::new(ReconstructOptions::default());
        let mut out = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            out.extend(reconstructor.push(&one_whole_call(&base, i as u64 + 1, line.as_bytes())));
        }
        out.extend(reconstructor.finish(u64::MAX));
        let methods: Vec<_> = mcp_records(&out).into_iter().map(|r| r.3).collect();
        assert!(methods.contains(&"initialize".to_string()), "{methods:?}");
    }

    /// The kernel sends an exit once per process, when its last thread ends, and that thread
    /// need not be the main one (a worker outliving the main thread's `exit_group`): the exit
    /// ends the process's connections all the same, cutting the response in flight.
    #[test]
    fn an_exit_whose_last_thread_is_not_the_main_one_ends_the_process() {
        let mut events = events_from_json_lines(include_str!(concat!(
            env!("AGENTSCOPE_REPO"),
            "/tests/fixtures/capture/python_chat_stream.jsonl"
        )))
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
        let mut exit = events[at].clone();
        exit.header.tid += 1;
        exit.body = EventBody::Exit { exit_code: Some(0) };
        events.truncate(at + 1);
        events.push(exit);
        let mut reconstructor = Reconstructor::new(ReconstructOptions::default());
        let mut at_exit = Vec::new();
        for event in &events {
            at_exit = reconstructor.push(event);
        }
        assert!(
            matches!(
                at_exit.last().map(|o| &o.kind),
                Some(ObservationKind::Exit { .. })
            ),
            "{at_exit:?}"
        );
        // The response was cut by the exit, not left open until the end of the capture.
        assert_eq!(reconstructor.stats().partial_exchanges, 1);
        assert!(reconstructor.finish(u64::MAX).is_empty());
    }

    /// Node keeps TLS in memory BIOs: no fd, chunks keyed by the SSL pointer only.
    #[test]
    fn node_agent_capture_without_fds_is_reconstructed() {
        let (observations, stats) = observations(include_str!(concat!(
            env!("AGENTSCOPE_REPO"),
            "/tests/fixtures/capture/node_chat_stream.jsonl"
        )));
        let calls = llm_calls(&observations);
        assert_eq!(calls.len(), 2);
        assert_eq!(stats.partial_exchanges, 0);
        assert_eq!(calls[0].tool_calls.len(), 3);
        assert_eq!(calls[1].tool_results.len(), 3);
    }

    #[test]
    fn large_request_body_over_several_chunks_is_joined() {
        let (observations, stats) = observations(include_str!(concat!(
            env!("AGENTSCOPE_REPO"),
            "/tests/fixtures/capture/python_chat.jsonl"
        )));
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
        let mut events = events_from_json_lines(include_str!(concat!(
            env!("AGENTSCOPE_REPO"),
            "/tests/fixtures/capture/python_chat.jsonl"
        )))
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
        let (observations, _) = observations(include_str!(concat!(
            env!("AGENTSCOPE_REPO"),
            "/tests/fixtures/mcp/stdio-pipe-events.jsonl"
        )));
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
        let dump: serde_json::Value = serde_json::from_str(include_str!(concat!(
            env!("AGENTSCOPE_REPO"),
            "/tests/fixtures/mcp/client-dump.json"
        )))
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
        let (observations, _) = observations(include_str!(concat!(
            env!("AGENTSCOPE_REPO"),
            "/tests/fixtures/mcp/http-socket-events.jsonl"
        )));
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
        let (observations, stats) = observations(include_str!(concat!(
            env!("AGENTSCOPE_REPO"),
            "/tests/fixtures/postgres/simple_query.jsonl"
        )));
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

    /// A live stop flushes open connections only while it has time: those left are dropped
    /// unparsed, counted, and give their memory back; the ones flushed come out as a plain
    /// finish gives them.
    #[test]
    fn a_finish_that_runs_out_of_time_counts_the_connections_it_left_unparsed() {
        let base = first_data_event(
            include_str!(concat!(
                env!("AGENTSCOPE_REPO"),
                "/tests/fixtures/capture/python_chat_stream.jsonl"
            )),
            Direction::Egress,
            |_| true,
        );
        // Four uploads to an LLM API, each cut after its body's first bytes.
        let half_sent = |connection: u64| {
            let mut event = one_whole_call(
                &base,
                connection + 1,
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\n\
                Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n\
                {\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi",
            );
            if let EventBody::Data { fd, conn_id, .. } = &mut event.body {
                *fd = 100 + connection as i32;
                *conn_id = 0x1000 + connection;
            }
            event
        };
        let run = |keep_going: &mut dyn FnMut() -> bool| {
            let mut reconstructor = Reconstructor::new(ReconstructOptions::default());
            for connection in 0..4 {
                assert!(reconstructor.push(&half_sent(connection)).is_empty());
            }
            assert!(reconstructor.budget().used() > 0);
            let out = reconstructor.finish_while(base.header.ts_ns, keep_going);
            let used = reconstructor.budget().used();
            (out, reconstructor.stats().clone(), used)
        };
        let (all, all_stats, _) = run(&mut || true);
        assert_eq!(all.len(), 4, "{all:#?}");
        assert_eq!(all_stats.connections_unflushed_at_stop, 0);
        let mut asked = 0;
        let (some, stats, used) = run(&mut || {
            asked += 1;
            asked <= 2
        });
        assert_eq!(some.len(), 2, "{some:#?}");
        assert_eq!(stats.connections_unflushed_at_stop, 2, "{stats:?}");
        // Asked once more, then never again.
        assert_eq!(asked, 3);
        assert_eq!(used, 0, "the connections left unparsed still hold memory");
        for (flushed, whole) in some.iter().zip(&all) {
            assert_eq!(format!("{:?}", flushed.kind), format!("{:?}", whole.kind));
        }
    }
}
