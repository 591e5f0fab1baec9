//! The console's memory of what each agent did: a bounded log of observations per agent, in
//! the order they happened (event time; the pipeline may produce them later, see
//! [`AgentLog::push`]), each with its one-line summary made once on arrival
//! (the timeline then never formats more than the rows on screen).
//!
//! Observations arrive attributed by the pipeline; what a process did before it was known as
//! an agent's arrives again, marked `earlier`, once it is, and goes into the log in time order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use agentscope_analysis::model::NodeKind;
use agentscope_reconstruct::file_access::FileCategory;
use agentscope_reconstruct::mcp::McpDetail;
use agentscope_reconstruct::{Observation, ObservationKind};

use super::format::{format_bytes, one_line};
use super::source::SourcedObservation;

/// Longest summary kept (characters); the detail pane has the rest.
const SUMMARY_CHARS: usize = 240;

/// What kind of thing an entry is, for its tag and colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    Llm,
    Mcp,
    Exec,
    File,
    Sql,
    Redis,
    Http,
    Object,
    Retrieval,
    Net,
    Exit,
}

impl EntryKind {
    pub fn tag(self) -> &'static str {
        match self {
            EntryKind::Llm => "LLM",
            EntryKind::Mcp => "MCP",
            EntryKind::Exec => "EXEC",
            EntryKind::File => "FILE",
            EntryKind::Sql => "SQL",
            EntryKind::Redis => "REDIS",
            EntryKind::Http => "HTTP",
            EntryKind::Object => "OBJ",
            EntryKind::Retrieval => "RAG",
            EntryKind::Net => "NET",
            EntryKind::Exit => "EXIT",
        }
    }

    /// The graph node kind whose colour the tag takes (`None`: muted).
    pub fn colour_of(self) -> Option<NodeKind> {
        match self {
            EntryKind::Llm => Some(NodeKind::Model),
            EntryKind::Mcp => Some(NodeKind::McpServer),
            EntryKind::Exec => Some(NodeKind::Command),
            EntryKind::File
            | EntryKind::Sql
            | EntryKind::Redis
            | EntryKind::Object
            | EntryKind::Retrieval => Some(NodeKind::Data),
            EntryKind::Http => Some(NodeKind::Api),
            EntryKind::Net | EntryKind::Exit => None,
        }
    }
}

/// The run of an agent an entry belongs to, as the pipeline decided it
/// ([`agentscope_analysis::pipeline::AttributedObservation::session`]): the pid of the agent's
/// outermost process, and the number the console gives it (1, 2, … per agent, in the order
/// the sessions first appeared) so a column of `s1`/`s2` tells them apart; and the
/// conversation within the session
/// ([`agentscope_analysis::pipeline::AttributedObservation::conversation`]), so one process
/// holding several conversations shows `s1`, `s1.2`, `s1.3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTag {
    pub number: u32,
    pub pid: u32,
    /// From 1; the first conversation is shown as the session alone.
    pub conversation: u32,
}

impl SessionTag {
    /// `s1` (the session's first conversation) or `s1.2` (its second).
    pub fn label(&self) -> String {
        if self.conversation <= 1 {
            format!("s{}", self.number)
        } else {
            format!("s{}.{}", self.number, self.conversation)
        }
    }

    /// Session, then conversation: the order `S` groups rows in.
    pub fn order(&self) -> (u32, u32) {
        (self.number, self.conversation)
    }
}

/// One observation in an agent's log.
#[derive(Debug, Clone)]
pub struct LoggedObservation {
    pub observation: Arc<Observation>,
    pub kind: EntryKind,
    pub summary: String,
    /// Rough bytes held, for the per-agent budget.
    pub size: usize,
    /// Numbered when the entry joins its agent's log.
    pub session: Option<SessionTag>,
}

impl LoggedObservation {
    /// `None` for what the timeline does not show (runtime noise: library loads, /proc).
    pub fn new(observation: Observation) -> Option<Self> {
        let (kind, summary) = summarise(&observation)?;
        let size = approx_size(&observation) + summary.len();
        Some(Self {
            observation: Arc::new(observation),
            kind,
            summary: one_line(&summary, SUMMARY_CHARS),
            size,
            session: None,
        })
    }
}

/// One agent's log. Entries have absolute positions: the first entry ever logged is 0, and
/// positions stay valid while older entries are dropped.
#[derive(Debug, Default)]
pub struct AgentLog {
    entries: VecDeque<LoggedObservation>,
    base: u64,
    /// Observations ever attributed to the agent (its activity count).
    pub total: u64,
    bytes: usize,
    /// Changes whenever entries are inserted other than at the end (positions shifted).
    pub generation: u64,
    /// Session pid → its number (1, 2, … in the order they first appeared).
    sessions: HashMap<u32, u32>,
    /// Sessions numbered so far.
    session_count: u32,
}

/// Session numbers remembered per agent; beyond it the map starts again (numbers keep
/// growing, so an old session seen again gets a new number: bounded memory for an agent that
/// is started again and again).
const SESSIONS_KEPT: usize = 10_000;

impl AgentLog {
    /// The numbered session of `pid` (a session's pid), numbering it if it is new.
    fn session_tag(&mut self, pid: u32, conversation: Option<u32>) -> SessionTag {
        if !self.sessions.contains_key(&pid) && self.sessions.len() >= SESSIONS_KEPT {
            self.sessions.clear();
        }
        let next = self.session_count + 1;
        let number = *self.sessions.entry(pid).or_insert(next);
        if number == next {
            self.session_count = next;
        }
        SessionTag {
            number,
            pid,
            conversation: conversation.unwrap_or(1),
        }
    }

    /// How many sessions the agent has had (numbered so far).
    pub fn session_count(&self) -> usize {
        self.session_count as usize
    }

    pub fn get(&self, position: u64) -> Option<&LoggedObservation> {
        let index = usize::try_from(position.checked_sub(self.base)?).ok()?;
        self.entries.get(index)
    }

    /// Position of the oldest entry kept.
    pub fn start(&self) -> u64 {
        self.base
    }

    /// One past the newest entry's position.
    pub fn end(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[allow(dead_code)] // the pair of `len`
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter_from(&self, position: u64) -> impl Iterator<Item = (u64, &LoggedObservation)> {
        let skip = position.saturating_sub(self.base) as usize;
        self.entries
            .iter()
            .enumerate()
            .skip(skip)
            .map(move |(i, e)| (self.base + i as u64, e))
    }

    /// Appends an entry, or inserts it in time order when it started before the newest one: an
    /// LLM call is reconstructed when its response ends but happened when its request went,
    /// before the file opens and execs its tools caused.
    fn push(&mut self, entry: LoggedObservation, limits: &LogLimits) {
        self.total += 1;
        self.bytes += entry.size;
        let ts = entry.observation.ts_ns;
        if self
            .entries
            .back()
            .is_some_and(|last| last.observation.ts_ns > ts)
        {
            let at = self.entries.partition_point(|e| e.observation.ts_ns <= ts);
            self.entries.insert(at, entry);
            self.generation += 1;
        } else {
            self.entries.push_back(entry);
        }
        self.trim(limits);
    }

    /// Inserts observations that arrived before the agent was known, in time order.
    fn insert_earlier(
        &mut self,
        entries: impl IntoIterator<Item = LoggedObservation>,
        limits: &LogLimits,
    ) {
        for entry in entries {
            let ts = entry.observation.ts_ns;
            let at = self.entries.partition_point(|e| e.observation.ts_ns <= ts);
            self.total += 1;
            self.bytes += entry.size;
            self.entries.insert(at, entry);
        }
        self.generation += 1;
        self.trim(limits);
    }

    fn trim(&mut self, limits: &LogLimits) {
        while self.entries.len() > limits.entries
            || (self.bytes > limits.bytes && self.entries.len() > 1)
        {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= old.size;
            self.base += 1;
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct LogLimits {
    pub entries: usize,
    pub bytes: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            entries: 5000,
            bytes: 64 << 20,
        }
    }
}

#[derive(Debug, Default)]
pub struct ObservationLogs {
    agents: HashMap<String, AgentLog>,
    limits: LogLimits,
}

impl ObservationLogs {
    pub fn new(limits: LogLimits) -> Self {
        Self {
            limits,
            ..Default::default()
        }
    }

    pub fn clear(&mut self) {
        *self = Self::new(self.limits);
    }

    pub fn agent(&self, key: &str) -> Option<&AgentLog> {
        self.agents.get(key)
    }

    /// Logs a batch of observations as the pipeline attributed them; those of no agent are
    /// not logged.
    pub fn ingest(&mut self, observations: Vec<SourcedObservation>) {
        for SourcedObservation {
            agent,
            observation,
            earlier,
            session,
            conversation,
            ..
        } in observations
        {
            let Some(agent) = agent else {
                continue;
            };
            let Some(mut entry) = LoggedObservation::new(observation) else {
                continue;
            };
            let log = self.agents.entry(agent).or_default();
            entry.session = session.map(|pid| log.session_tag(pid, conversation));
            if earlier {
                log.insert_earlier(std::iter::once(entry), &self.limits);
            } else {
                log.push(entry, &self.limits);
            }
        }
    }
}

/// Tag and one-line summary of an observation.
fn summarise(observation: &Observation) -> Option<(EntryKind, String)> {
    Some(match &observation.kind {
        ObservationKind::Llm {
            call, host, port, ..
        } => {
            let model = call
                .response_model
                .as_deref()
                .or(call.request_model.as_deref())
                .unwrap_or("unknown model");
            let mut text = format!("{} {model}", call.provider);
            if let (Some(i), Some(o)) = (call.usage.input_tokens, call.usage.output_tokens) {
                text.push_str(&format!(" · {i}→{o} tok"));
            }
            if !call.tool_calls.is_empty() {
                let names: Vec<&str> = call.tool_calls.iter().map(|c| c.name.as_str()).collect();
                text.push_str(&format!(" · calls {}", names.join(", ")));
            } else if let Some(output) = &call.output_text {
                text.push_str(&format!(" · \"{}\"", one_line(output, 60)));
            }
            if !call.tool_results.is_empty() {
                text.push_str(&format!(" · {} tool results", call.tool_results.len()));
            }
            if let Some(error) = &call.error_type {
                text.push_str(&format!(" · error {error}"));
            }
            if call.partial {
                text.push_str(" · partial");
            }
            if let Some(host) = host {
                text.push_str(&format!(" @ {}", with_port(host, *port)));
            }
            (EntryKind::Llm, text)
        }
        ObservationKind::Mcp { exchange, role, .. } => {
            let method = exchange.method.as_deref().unwrap_or("(response)");
            let mut text = method.to_string();
            if let McpDetail::ToolsCall(call) = &exchange.detail {
                if let Some(name) = &call.name {
                    text.push_str(&format!(" {name}"));
                }
                if let Some(arguments) = &call.arguments {
                    text.push_str(&format!(" {}", one_line(&arguments.to_string(), 80)));
                }
                if call.is_error == Some(true) {
                    text.push_str(" · tool error");
                }
            } else if let McpDetail::ToolsList(list) = &exchange.detail {
                text.push_str(&format!(" · {} tools", list.tools.len()));
            }
            if let Some(error) = &exchange.error {
                text.push_str(&format!(" · error {}", error.message));
            }
            if *role == agentscope_reconstruct::Role::Server {
                text.push_str(" (served)");
            }
            (EntryKind::Mcp, text)
        }
        ObservationKind::Exec { filename, argv } => {
            let command = if argv.is_empty() {
                filename.clone()
            } else {
                argv.join(" ")
            };
            (EntryKind::Exec, command)
        }
        ObservationKind::Exit { exit_code } => (
            EntryKind::Exit,
            match exit_code {
                Some(code) => format!("exited with {code}"),
                None => "exited".into(),
            },
        ),
        ObservationKind::FileOpen { path, class, write } => {
            if class.category == FileCategory::RuntimeNoise {
                return None;
            }
            let mut text = format!("{} {path}", if *write { "write" } else { "read" });
            if class.is_secret() {
                text.push_str(&format!(" · {}", class.label));
            }
            (EntryKind::File, text)
        }
        ObservationKind::Connect {
            peer,
            payloads_sampled_out,
        } => (
            EntryKind::Net,
            format!(
                "connect {}:{}{}",
                peer.addr,
                peer.port,
                // No exchange on it is then no evidence of none: say so where it shows.
                if *payloads_sampled_out {
                    " · payloads sampled out"
                } else {
                    ""
                }
            ),
        ),
        ObservationKind::Dns { queries } => (EntryKind::Net, format!("dns {}", queries.join(", "))),
        ObservationKind::Enforce { decision } => (EntryKind::Net, decision.describe()),
        // The package's file open is an entry already; its version is in the AI-BOM pane.
        ObservationKind::Package { .. } => return None,
        ObservationKind::EscapeSyscall { call, .. } => (EntryKind::Exec, call.describe()),
        ObservationKind::HostPathWrite {
            path, host_path, ..
        } => (
            EntryKind::File,
            format!("write {path} · host path {host_path}"),
        ),
        // The collector's report (pid 0): shown in the agents' modes, not as an agent's act.
        ObservationKind::EnforcePolicy { policy } => (EntryKind::Net, policy.describe()),
        // The collector's read of the cluster (pid 0): shown in the posture pane.
        ObservationKind::ClusterObjects { .. } => return None,
        // What the kernel left out of the process (bytes it did not copy): not an act.
        ObservationKind::PayloadsLeftOut {
            opaque_socket_bytes,
            on_request_bytes,
            sampled_out_bytes,
            ..
        } => (
            EntryKind::Net,
            format!(
                "payloads left out · {opaque_socket_bytes} B of opaque sockets · \
                 {on_request_bytes} B on request{}",
                if *sampled_out_bytes > 0 {
                    format!(" · {sampled_out_bytes} B of sampled-out connections")
                } else {
                    String::new()
                }
            ),
        ),
        ObservationKind::TlsHello {
            server_name,
            peer,
            coverage,
            ..
        } => {
            let to = match (server_name, peer) {
                (Some(name), _) => name.clone(),
                (None, Some(peer)) => format!("{}:{}", peer.addr, peer.port),
                (None, None) => "?".into(),
            };
            let mut text = format!("tls {to}");
            if let Some(coverage) = coverage {
                text.push_str(&format!(" · {}", coverage.describe()));
            }
            (EntryKind::Net, text)
        }
        ObservationKind::Http { exchange, role } => {
            let request = &exchange.request;
            let host = exchange.host.as_deref().unwrap_or("?");
            let mut text = format!("{} {host}{}", request.method, request.target);
            match &exchange.response {
                Some(response) => text.push_str(&format!(
                    " → {} · {}",
                    response.status,
                    format_bytes(response.body_len as u64)
                )),
                None => text.push_str(" → (no response)"),
            }
            if *role == agentscope_reconstruct::Role::Server {
                text.push_str(" (served)");
            }
            (EntryKind::Http, text)
        }
        ObservationKind::Sql { statement, .. } => {
            let mut text = statement.text.clone();
            if let Some(rows) = statement.rows {
                text.push_str(&format!(" → {rows} rows"));
            }
            if let Some(error) = &statement.error {
                text.push_str(&format!(" → {error}"));
            }
            (EntryKind::Sql, text)
        }
        ObservationKind::Redis { command, .. } => {
            let mut text = command.command.clone();
            if !command.keys.is_empty() {
                text.push_str(&format!(" {}", command.keys.join(" ")));
            }
            (EntryKind::Redis, text)
        }
        ObservationKind::ObjectStore { access } => {
            let operation = serde_json::to_value(access.operation)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let mut text = format!(
                "{operation} {}/{}",
                access.bucket.as_deref().unwrap_or(""),
                access.key.as_deref().unwrap_or("")
            );
            if let Some(status) = access.status {
                text.push_str(&format!(" → {status}"));
            }
            (EntryKind::Object, text)
        }
        ObservationKind::Retrieval { call } => {
            let system = serde_json::to_value(call.system)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let mut text = format!("{system} {}", call.collection.as_deref().unwrap_or("?"));
            if let Some(query) = &call.query_text {
                text.push_str(&format!(" \"{query}\""));
            }
            if let Some(results) = call.results {
                text.push_str(&format!(" → {results} results"));
            }
            (EntryKind::Retrieval, text)
        }
    })
}

/// `host:port`, unless the host (a `Host` header) already says its port.
pub fn with_port(host: &str, port: Option<u16>) -> String {
    match port {
        Some(port) if !host.contains(':') => format!("{host}:{port}"),
        _ => host.to_string(),
    }
}

/// Bytes an observation holds, roughly (payloads dominate).
fn approx_size(observation: &Observation) -> usize {
    const BASE: usize = 256;
    let extra = match &observation.kind {
        ObservationKind::Llm { call, .. } => {
            call.system_prompt.as_ref().map_or(0, String::len)
                + call.last_user_message.as_ref().map_or(0, String::len)
                + call.output_text.as_ref().map_or(0, String::len)
                + call
                    .tool_results
                    .iter()
                    .map(|r| r.content.len())
                    .sum::<usize>()
                + call
                    .tool_calls
                    .iter()
                    .map(|c| json_size(&c.arguments))
                    .sum::<usize>()
                + call
                    .tools_offered
                    .iter()
                    .map(|t| t.name.len() + t.description.as_ref().map_or(0, String::len))
                    .sum::<usize>()
        }
        ObservationKind::Http { exchange, .. } => {
            exchange.request.body.len()
                + exchange.response.as_ref().map_or(0, |r| r.body.len())
                + exchange
                    .request
                    .headers
                    .iter()
                    .map(|h| h.name.len() + h.value.len())
                    .sum::<usize>()
        }
        ObservationKind::Mcp { exchange, .. } => match &exchange.detail {
            McpDetail::ToolsCall(call) => {
                call.arguments.as_ref().map_or(0, json_size)
                    + call.result_text.as_ref().map_or(0, String::len)
                    + call.structured_content.as_ref().map_or(0, json_size)
            }
            McpDetail::ToolsList(list) => list
                .tools
                .iter()
                .map(|t| t.name.len() + t.description.as_ref().map_or(0, String::len))
                .sum(),
            McpDetail::Other { params, result } => {
                params.as_ref().map_or(0, json_size) + result.as_ref().map_or(0, json_size)
            }
            _ => 512,
        },
        ObservationKind::Sql { statement, .. } => statement.text.len(),
        ObservationKind::Exec { argv, .. } => argv.iter().map(String::len).sum(),
        ObservationKind::FileOpen { path, .. } => path.len(),
        _ => 0,
    };
    BASE + extra
}

fn json_size(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 8,
        Value::String(s) => s.len() + 2,
        Value::Array(items) => items.iter().map(json_size).sum::<usize>() + 2,
        Value::Object(map) => {
            map.iter()
                .map(|(k, v)| k.len() + json_size(v))
                .sum::<usize>()
                + 2
        }
    }
}
