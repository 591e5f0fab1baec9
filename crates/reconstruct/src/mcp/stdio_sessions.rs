//! The table of MCP stdio sessions, keyed by the server's pid: a server's stdin and stdout
//! are two pipes (two streams of the assembler) carrying one session, so the session lives
//! here rather than with either stream. Records are reported as the client's (the agent that
//! spawned the server, the one a model directs), with the server as peer.

use agentscope_event::pid_keyed::PidMap;

use crate::event::Direction;
use crate::memory_budget::{Charge, MemoryBudget, Pressure};
use crate::process_table::ProcessTable;

use super::super::event_runs::EventRuns;
use super::super::observation::{Actor, EventRange, Observation, ObservationKind, Role};
use super::super::wire::{OverBudget, WireMessage, WireParser};
use super::{ExchangeKind, McpExchange, McpTransport, Sender, StdioMcpConnection};
use crate::program::program_of;

/// MCP sessions kept per kind; the least recently used beyond this are dropped.
pub const MAX_MCP_SESSIONS: usize = 1024;

/// Bytes read at a pipe's server end, as the stream assembler hands them over.
pub struct ServerEndBytes<'a> {
    /// Who wrote them.
    pub sender: Sender,
    /// The server process (the captured one).
    pub actor: Actor,
    pub time_offset_ns: u64,
    /// Index of the event that carried them.
    pub index: u64,
    pub bytes: std::borrow::Cow<'a, [u8]>,
    /// Bytes of this direction lost before (and at the end of) this chunk.
    pub gap: u64,
    pub ts_ns: u64,
}

/// One MCP stdio server's session.
struct StdioSession {
    charge: Charge,
    connection: StdioMcpConnection,
    /// A real JSON-RPC message was seen: before that, JSON on stdio is someone's output.
    speaks_mcp: bool,
    actor: Actor,
    time_offset_ns: u64,
    events: EventRuns,
    last_ts_ns: u64,
}

/// Every stdio MCP session open, bounded by [`MAX_MCP_SESSIONS`] and the memory budget.
pub struct StdioSessions {
    budget: MemoryBudget,
    sessions: PidMap<u32, StdioSession>,
}

impl StdioSessions {
    pub fn new(budget: &MemoryBudget) -> Self {
        Self {
            budget: budget.clone(),
            sessions: PidMap::default(),
        }
    }

    /// Feeds a server end's bytes to its session; records completed come out as
    /// observations (`mcp_messages` counts them).
    pub fn push(
        &mut self,
        input: ServerEndBytes<'_>,
        processes: &ProcessTable,
        mcp_messages: &mut u64,
        out: &mut Vec<Observation>,
    ) {
        let server_pid = input.actor.pid;
        let ts = input.ts_ns;
        if !self.sessions.contains_key(&server_pid) && self.sessions.len() >= MAX_MCP_SESSIONS {
            if let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(pid, session)| (session.last_ts_ns, **pid))
                .map(|(pid, _)| *pid)
            {
                self.finish(oldest, ts, processes, mcp_messages, out);
            }
        }
        let budget = &self.budget;
        let session = self
            .sessions
            .entry(server_pid)
            .or_insert_with(|| StdioSession {
                charge: Charge::new(budget),
                connection: StdioMcpConnection::new(),
                speaks_mcp: false,
                actor: input.actor.clone(),
                time_offset_ns: input.time_offset_ns,
                events: EventRuns::default(),
                last_ts_ns: ts,
            });
        session.actor = input.actor;
        session.last_ts_ns = ts;
        session.events.push(input.index);
        // The wire parser reads directions from the client's point of view.
        let direction = match input.sender {
            Sender::Client => Direction::Egress,
            Sender::Server => Direction::Ingress,
        };
        let mut messages = Vec::new();
        // The whole chunk's loss, the tail's included, is marked before its bytes, as it
        // always was for stdio.
        if input.gap > 0 {
            session
                .connection
                .on_gap(direction, input.gap, ts, &mut messages);
        }
        session
            .connection
            .on_bytes(direction, ts, &input.bytes, &mut messages);
        let held = WireParser::held_bytes(&session.connection).unwrap_or(0);
        if !session.charge.try_set(held) {
            self.budget.note(Pressure::ConnectionEvicted);
            let after = session
                .connection
                .on_over_budget(direction, ts, &mut messages);
            debug_assert_eq!(after, OverBudget::Continue);
            let held = WireParser::held_bytes(&session.connection).unwrap_or(0);
            session.charge.force_set(held);
        }
        if messages.is_empty() {
            return;
        }
        emit(
            server_pid,
            session,
            mcp_records(messages),
            processes,
            mcp_messages,
            out,
        );
    }

    /// Ends the session of `server_pid` (it exited, or capture stopped).
    pub fn finish(
        &mut self,
        server_pid: u32,
        ts_ns: u64,
        processes: &ProcessTable,
        mcp_messages: &mut u64,
        out: &mut Vec<Observation>,
    ) {
        if let Some(mut session) = self.sessions.remove(&server_pid) {
            let mut messages = Vec::new();
            WireParser::finish(&mut session.connection, ts_ns, &mut messages);
            emit(
                server_pid,
                &mut session,
                mcp_records(messages),
                processes,
                mcp_messages,
                out,
            );
        }
    }

    /// Ends every session, in pid order.
    pub fn finish_all(
        &mut self,
        ts_ns: u64,
        processes: &ProcessTable,
        mcp_messages: &mut u64,
        out: &mut Vec<Observation>,
    ) {
        let mut servers: Vec<u32> = self.sessions.keys().copied().collect();
        servers.sort_unstable();
        for pid in servers {
            self.finish(pid, ts_ns, processes, mcp_messages, out);
        }
    }
}

fn mcp_records(messages: Vec<WireMessage>) -> Vec<McpExchange> {
    messages
        .into_iter()
        .filter_map(|message| match message {
            WireMessage::Mcp(exchange) => Some(exchange),
            _ => None,
        })
        .collect()
}

/// Stdio MCP records are reported as the client's (the agent that spawned the server),
/// with the server as peer: the client is the one a model directs.
fn emit(
    server_pid: u32,
    session: &mut StdioSession,
    exchanges: Vec<McpExchange>,
    processes: &ProcessTable,
    mcp_messages: &mut u64,
    out: &mut Vec<Observation>,
) {
    let events: Vec<EventRange> = session.events.take();
    let client_pid = processes.ppid(server_pid);
    let client = processes.get(client_pid);
    let actor = Actor {
        pid: client_pid,
        ppid: processes.ppid(client_pid),
        comm: client.map_or_else(Default::default, |p| p.comm.clone()),
        ..session.actor.clone()
    };
    let server = processes.get(server_pid);
    let endpoint = server.map(|p| program_of(p.exe.as_deref(), &p.argv, &p.comm));
    for exchange in exchanges {
        if exchange.kind != ExchangeKind::Invalid {
            session.speaks_mcp = true;
        }
        if !session.speaks_mcp {
            continue;
        }
        *mcp_messages += 1;
        let ts_ns = exchange
            .request_ts_ns
            .or(exchange.response_ts_ns)
            .unwrap_or(0);
        out.push(Observation {
            ts_ns,
            time_unix_ns: ts_ns.saturating_add(session.time_offset_ns),
            actor: actor.clone(),
            events: events.clone(),
            protocol: None,
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
