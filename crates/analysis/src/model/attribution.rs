//! Linking the tool calls a model requested to the actions that carried them out.
//!
//! A tool call is open from the end of the model response that requested it until the agent
//! sends its result back (matched by tool-call id, else by the tool's name and the arguments
//! the request repeats) or [`MAX_TOOL_WINDOW_NS`] passes. An action is linked to an open call
//! of its agent when evidence supports it: an argument value of the call appears in the action
//! (a path, SQL text, URL, argv), an MCP `tools/call` names the same tool, the action's
//! process is an MCP server handling that call, or it descends from an exec already linked to
//! the call by such evidence (the shell running the call's command). Process lineage and time
//! alone link only when exactly one call is open. Actions and calls may be
//! observed out of order (an exchange is reported when its response ends), so matching runs
//! both ways: new actions against open calls, new calls against recent actions.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::Serialize;

use crate::memory_budget::{MemoryBudget, Pressure};
use crate::reconstruct::llm::ToolResult;
use crate::reconstruct::EventRange;

/// A tool call whose result never comes back stays open this long.
pub const MAX_TOOL_WINDOW_NS: u64 = 300 * 1_000_000_000;
/// Recent actions kept for matching calls seen after them.
pub const RECENT_ACTIONS: usize = 4096;
/// Tool calls kept in the model (oldest dropped first).
pub const MAX_TOOL_CALLS: usize = 10_000;
/// Ambiguous actions kept per call (see [`ToolCallRecord::ambiguous`]); counted in the call's
/// heap estimate with its links.
const MAX_AMBIGUOUS: usize = 16;
/// Argument values shorter than this match too much to be evidence.
const MIN_MATCH_LEN: usize = 3;
/// Tool results are kept up to this many bytes.
const MAX_RESULT_TEXT: usize = 2048;
/// Processes remembered as started for one call (a tool that forks more is still linked by
/// its arguments and lineage; only this evidence stops growing). Kept inline in the record,
/// so the record's heap estimate does not change.
const MAX_CALL_WORKERS: usize = 8;

/// Why an action was linked to a tool call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Evidence {
    /// The tool result sent back to the model carried the call's id.
    ToolCallId { id: String },
    /// The model gave the call no id (the Gemini API usually gives none); the agent named it
    /// itself and sent the result back under that id (Gemini CLI does), and the result was
    /// matched to the call by the tool's name.
    AgentCallId { id: String },
    /// An argument value of the call appears in the action.
    ArgumentMatch { argument: String, value: String },
    /// An MCP `tools/call` for the same tool.
    McpToolsCall { name: String },
    /// The action's process (or an ancestor) is the MCP server handling this call.
    McpServerProcess { pid: u32 },
    /// The action's process (or an ancestor) was started for this call: its exec was linked to
    /// the call by strong evidence (the file the call's shell command opens).
    CallProcess { pid: u32 },
    /// The action's process descends from the agent's process.
    ProcessLineage { agent_pid: u32 },
    /// The action happened while the call was open.
    TimeWindow,
}

/// Something a process did that a tool call could have caused.
#[derive(Debug, Clone, Serialize)]
pub struct Action {
    pub kind: &'static str,
    /// Graph node the action touched.
    pub target: String,
    pub summary: String,
    pub pid: u32,
    pub ts_ns: u64,
    pub events: Vec<EventRange>,
    /// Process and its ancestors, nearest first.
    #[serde(skip)]
    pub lineage: Vec<u32>,
    /// Agent the action belongs to (by process or lineage), when known at observation time.
    #[serde(skip)]
    pub agent: Option<String>,
    /// How the action appears in the graph, and the text and MCP tool call that argument
    /// matching reads.
    #[serde(skip)]
    pub detail: std::sync::Arc<super::actions::Target>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ToolOutcome {
    pub content: String,
    pub is_error: bool,
    pub reported_ns: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ToolLink {
    #[serde(flatten)]
    pub action: Action,
    pub evidence: Vec<Evidence>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ToolCallRecord {
    pub agent: String,
    /// The agent process that received the request from the model.
    pub pid: u32,
    #[serde(rename = "gen_ai.tool.call.id")]
    pub id: Option<String>,
    #[serde(rename = "gen_ai.tool.name")]
    pub name: String,
    #[serde(rename = "gen_ai.tool.call.arguments")]
    pub arguments: serde_json::Value,
    #[serde(rename = "gen_ai.provider.name")]
    pub provider: String,
    #[serde(rename = "gen_ai.request.model")]
    pub model: Option<String>,
    pub requested_ns: u64,
    /// When the result went back to the model (the call's window closed).
    pub closed_ns: Option<u64>,
    pub result: Option<ToolOutcome>,
    pub result_evidence: Option<Evidence>,
    pub links: Vec<ToolLink>,
    /// Actions this call may have caused that another session's open call explains as well
    /// (a shared MCP server working for both, with nothing of either call's own in the
    /// action): evidence of neither, at most [`MAX_AMBIGUOUS`] kept.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ambiguous: Vec<ToolLink>,
    /// Graph node of the tool.
    pub tool_node: String,
    #[serde(skip)]
    matchers: Vec<(String, String)>,
    /// MCP server processes handling this call.
    #[serde(skip)]
    servers: Vec<u32>,
    /// Processes started for this call: execs linked to it by strong evidence (the shell a
    /// tool runs the call's command in). What they and their children do is the call's.
    #[serde(skip)]
    workers: CallWorkers,
    /// What it was charged to the memory budget (an upper bound of its heap).
    #[serde(skip)]
    held_bytes: usize,
}

impl ToolCallRecord {
    /// Upper bound of the heap the record takes over its life: its strings, its arguments
    /// (kept twice: as JSON and as the values matched against actions), a result cut at
    /// [`MAX_RESULT_TEXT`], and room for links.
    fn estimate_bytes(&self) -> usize {
        const FIXED: usize = 1024;
        const LINKS: usize = 2048;
        FIXED
            + LINKS
            + MAX_RESULT_TEXT
            + self.agent.len()
            + self.name.len()
            + self.provider.len()
            + self.tool_node.len()
            + self.id.as_ref().map_or(0, String::len)
            + self.model.as_ref().map_or(0, String::len)
            + crate::memory_budget::json_value_bytes(&self.arguments)
            + self
                .matchers
                .iter()
                .map(|(k, v)| 48 + k.len() + v.len())
                .sum::<usize>()
    }

    pub fn new(
        agent: String,
        pid: u32,
        call: &crate::reconstruct::llm::ToolCall,
        provider: String,
        model: Option<String>,
        requested_ns: u64,
        tool_node: String,
    ) -> Self {
        let mut matchers = Vec::new();
        argument_values("", &call.arguments, &mut matchers);
        Self {
            agent,
            pid,
            id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
            provider,
            model,
            requested_ns,
            closed_ns: None,
            result: None,
            result_evidence: None,
            links: Vec::new(),
            ambiguous: Vec::new(),
            tool_node,
            matchers,
            servers: Vec::new(),
            workers: CallWorkers::default(),
            held_bytes: 0,
        }
    }

    /// Notes an action another session's call explains as well (see [`Self::ambiguous`]).
    fn note_ambiguous(&mut self, action: &Action) {
        if self.ambiguous.len() < MAX_AMBIGUOUS
            && !self
                .ambiguous
                .iter()
                .any(|l| same_action(&l.action, action))
        {
            self.ambiguous.push(ToolLink {
                action: action.clone(),
                evidence: Vec::new(),
            });
        }
    }

    fn window_contains(&self, ts_ns: u64) -> bool {
        let end = self
            .closed_ns
            .unwrap_or(self.requested_ns.saturating_add(MAX_TOOL_WINDOW_NS));
        ts_ns >= self.requested_ns && ts_ns <= end
    }
}

/// The processes started for one call, at most [`MAX_CALL_WORKERS`] (inline: no heap).
#[derive(Debug, Clone, Default)]
struct CallWorkers {
    pids: [u32; MAX_CALL_WORKERS],
    len: usize,
}

impl CallWorkers {
    fn pids(&self) -> impl Iterator<Item = &u32> {
        self.pids[..self.len].iter()
    }

    /// Remembers `pid` unless it is known or the list is full.
    fn add(&mut self, pid: u32) {
        if self.len < MAX_CALL_WORKERS && !self.pids().any(|&p| p == pid) {
            self.pids[self.len] = pid;
            self.len += 1;
        }
    }
}

/// Flattens argument values into (argument path, text) pairs worth matching.
/// `host:port` of an `http://` or `https://` URL (the scheme's port when none is given).
fn url_authority(value: &str) -> Option<String> {
    let (rest, default_port) = if let Some(rest) = value.strip_prefix("http://") {
        (rest, 80)
    } else if let Some(rest) = value.strip_prefix("https://") {
        (rest, 443)
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    if authority.is_empty() {
        return None;
    }
    // `[v6]:port`, `[v6]`, `host:port`, `host`.
    if let Some(v6) = authority.strip_prefix('[') {
        let (addr, port) = v6.split_once(']')?;
        let port = port
            .strip_prefix(':')
            .map_or(Some(default_port), |p| p.parse().ok())?;
        return Some(format!("[{addr}]:{port}"));
    }
    Some(match authority.rsplit_once(':') {
        Some((host, port)) => format!("{host}:{}", port.parse::<u16>().ok()?),
        None => format!("{authority}:{default_port}"),
    })
}

fn argument_values(path: &str, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::String(s) => {
            let s = s.trim();
            if s.len() >= MIN_MATCH_LEN {
                out.push((path.to_string(), s.to_string()));
            }
        }
        serde_json::Value::Number(n) => {
            let s = n.to_string();
            if s.len() >= MIN_MATCH_LEN {
                out.push((path.to_string(), s));
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate().take(32) {
                argument_values(&format!("{path}[{i}]"), item, out);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map.iter().take(32) {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                argument_values(&child, item, out);
            }
        }
        _ => {}
    }
}

/// Tool calls and the bookkeeping to link actions to them.
#[derive(Debug, Default)]
pub struct Attribution {
    pub calls: VecDeque<ToolCallRecord>,
    recent: VecDeque<Action>,
    /// Beside each recent action, the newest time of it and every action kept before it
    /// (evicted ones included, so never under the true figure): nondecreasing, so a new call
    /// skips, by binary search, the actions all older than it instead of walking
    /// [`RECENT_ACTIONS`] of them, and still sees every newer one in the order kept (actions
    /// arrive nearly, not strictly, in time order).
    recent_newest_so_far: VecDeque<u64>,
    /// Calls dropped because [`MAX_TOOL_CALLS`] were kept, or to stay within the budget.
    pub dropped_calls: u64,
    /// Of those, the calls dropped because the memory budget was reached.
    pub evicted_calls: u64,
    budget: Option<MemoryBudget>,
    /// Bytes `calls` are charged to `budget`.
    charged: usize,
}

impl Drop for Attribution {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.release(self.charged);
        }
    }
}

/// What linking an action produced, for the graph.
#[derive(Debug, Clone)]
pub struct NewLink {
    pub tool_node: String,
    pub agent: String,
    /// The call linked to: its id and name (detection follows the calls a model turn caused).
    pub call_id: Option<String>,
    pub call_name: String,
    pub call_requested_ns: u64,
    /// The agent process that received the call from the model (whose session the action
    /// belongs to).
    pub call_pid: u32,
    /// The call's session (see `AttributedObservation::session`), set by the pipeline, which
    /// knows the process tree.
    pub session: Option<u32>,
    pub action: Action,
    pub evidence: Vec<Evidence>,
    /// The action was linked before; this adds evidence learned since (an MCP server's side of
    /// the call arrives after what the server did), without counting the action again.
    pub update: bool,
}

/// What the evidence says about one action (see [`Attribution::decide`]).
enum Decision {
    /// No open call explains it.
    None,
    /// Call `index` did it.
    Link {
        index: usize,
        strong: bool,
        evidence: Vec<Evidence>,
    },
    /// Calls of more than one session explain it equally well: it is evidence of neither.
    Ambiguous { calls: Vec<usize> },
}

/// One candidate call's evidence for an action.
struct Weighed {
    index: usize,
    /// Evidence of this call alone: its arguments, its `tools/call`, a process started for it.
    own: bool,
    /// The process started for the call that the action descends from.
    worker: Option<u32>,
    /// An MCP server handling the call is in the action's lineage.
    server: bool,
    /// The action's process descends from the process that received the call.
    lineage: bool,
    /// The action's process is that process or descends from it.
    in_tree: bool,
    evidence: Vec<Evidence>,
}

impl Weighed {
    fn strong(&self) -> bool {
        self.own || self.server
    }

    fn rank(&self) -> (bool, bool, bool) {
        (self.own, self.server, self.lineage)
    }
}

fn same_action(a: &Action, b: &Action) -> bool {
    a.target == b.target && a.ts_ns == b.ts_ns && a.pid == b.pid
}

impl Attribution {
    /// Tool-call records are charged to `budget` from now on.
    pub fn set_budget(&mut self, budget: &MemoryBudget) {
        self.budget = Some(budget.clone());
    }

    fn drop_oldest(&mut self) {
        if let Some(old) = self.calls.pop_front() {
            self.dropped_calls += 1;
            if let Some(budget) = &self.budget {
                budget.release(old.held_bytes);
                self.charged -= old.held_bytes;
            }
        }
    }

    /// The agents `agents` were shed to make room: their tool calls go with them, counted as
    /// evicted to stay within the budget (a call of an agent no longer kept links nothing more:
    /// its processes are no longer known as the agent's).
    pub fn forget_agents(&mut self, agents: &HashSet<String>) {
        let before = self.calls.len();
        let mut freed = 0;
        self.calls.retain(|call| {
            let keep = !agents.contains(&call.agent);
            if !keep {
                freed += call.held_bytes;
            }
            keep
        });
        let gone = (before - self.calls.len()) as u64;
        self.dropped_calls += gone;
        self.evicted_calls += gone;
        if let Some(budget) = &self.budget {
            budget.release(freed);
            self.charged -= freed;
            budget.note_many(Pressure::ToolCallEvicted, gone);
        }
    }

    /// What each agent's tool calls are charged, for choosing how many agents to shed.
    pub fn held_bytes_by_agent(&self) -> HashMap<&str, usize> {
        let mut held: HashMap<&str, usize> = HashMap::new();
        for call in &self.calls {
            *held.entry(call.agent.as_str()).or_default() += call.held_bytes;
        }
        held
    }

    /// A model requested a tool call: open it and match actions already seen after it.
    pub fn open_call(&mut self, mut record: ToolCallRecord) -> Vec<NewLink> {
        if self.calls.len() >= MAX_TOOL_CALLS {
            self.drop_oldest();
        }
        record.held_bytes = record.estimate_bytes();
        if let Some(budget) = self.budget.clone() {
            // The oldest calls make room: recent ones are what actions still link to.
            while !budget.try_charge(record.held_bytes) {
                if self.calls.is_empty() {
                    budget.force_charge(record.held_bytes);
                    break;
                }
                self.drop_oldest();
                self.evicted_calls += 1;
                budget.note(Pressure::ToolCallEvicted);
            }
            self.charged += record.held_bytes;
        }
        self.calls.push_back(record);
        let index = self.calls.len() - 1;
        let since = self.calls[index].requested_ns;
        let first = self.recent_newest_so_far.partition_point(|&ts| ts < since);
        self.match_recent(index, first, |a| a.ts_ns >= since)
    }

    /// Matches the recent actions from the `first` kept on that pass `filter` against call
    /// `index`.
    fn match_recent(
        &mut self,
        index: usize,
        first: usize,
        filter: impl Fn(&Action) -> bool,
    ) -> Vec<NewLink> {
        // Taken out for the walk instead of copied (up to RECENT_ACTIONS actions, at every
        // call): matching reads and changes the calls, never the recent actions.
        let recent = std::mem::take(&mut self.recent);
        let mut links = Vec::new();
        for action in recent.range(first..).filter(|a| filter(a)) {
            links.extend(self.match_action(action, Some(index)));
        }
        self.recent = recent;
        links
    }

    /// The agent sent a tool result back: close the call it answers. Its id says which, when
    /// both sides have one; else its tool's name, and the arguments of the call where the
    /// request repeats it (Gemini), which pick among open calls of the same tool. A call the
    /// sending process `pid` received comes first: two sessions of one agent side by side
    /// (two processes) may be given the same ids by their models.
    pub fn close_call(&mut self, agent: &str, pid: u32, result: &ToolResult, ts_ns: u64) {
        let call_id = result.call_id.as_deref();
        // The cheap tests first: most of the calls kept (up to MAX_TOOL_CALLS, walked up to
        // four times per result) are answered already or another process's.
        let answers = |c: &ToolCallRecord, by_arguments: bool, same_pid: bool| {
            c.result.is_none()
                && (!same_pid || c.pid == pid)
                && c.agent == agent
                && match (call_id, c.id.as_deref()) {
                    (Some(wanted), Some(id)) => wanted == id,
                    // Dialects without ids (Gemini) answer by name, and by the arguments
                    // where the request repeats the call (parallel calls of one tool).
                    (None, _) | (_, None) => {
                        result.name.as_deref() == Some(c.name.as_str())
                            && (!by_arguments || result.arguments.as_ref() == Some(&c.arguments))
                    }
                }
        };
        let found = [(true, true), (false, true), (true, false), (false, false)]
            .into_iter()
            .find_map(|(by_arguments, same_pid)| {
                self.calls
                    .iter()
                    .rposition(|c| answers(c, by_arguments, same_pid))
            });
        if let Some(call) = found.and_then(|index| self.calls.get_mut(index)) {
            let mut text = result.content.clone();
            if text.len() > MAX_RESULT_TEXT {
                let mut cut = MAX_RESULT_TEXT;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
            }
            call.result = Some(ToolOutcome {
                content: text,
                is_error: result.is_error,
                reported_ns: ts_ns,
            });
            call.closed_ns = Some(ts_ns);
            call.result_evidence = call_id.map(|id| match call.id {
                Some(_) => Evidence::ToolCallId { id: id.to_string() },
                None => Evidence::AgentCallId { id: id.to_string() },
            });
        }
    }

    /// An MCP server process received `tools/call` for `name` with `arguments`: if an open
    /// call matches, remember that this process works for it, and link its recent actions.
    pub fn server_handles(
        &mut self,
        server_pid: u32,
        name: &str,
        arguments: &serde_json::Value,
        ts_ns: u64,
    ) -> Vec<NewLink> {
        let Some(index) = self.calls.iter().rposition(|c| {
            c.name == name
                && c.window_contains(ts_ns)
                && (c.arguments == *arguments || c.matchers.is_empty())
        }) else {
            return Vec::new();
        };
        if !self.calls[index].servers.contains(&server_pid) {
            self.calls[index].servers.push(server_pid);
        }
        self.match_recent(index, 0, |a| a.lineage.contains(&server_pid))
    }

    /// A new action: link it to open calls it matches, and keep it for calls seen later.
    pub fn observe(&mut self, action: Action) -> Vec<NewLink> {
        let links = self.match_action(&action, None);
        if self.recent.len() >= RECENT_ACTIONS {
            self.recent.pop_front();
            self.recent_newest_so_far.pop_front();
        }
        let newest = self
            .recent_newest_so_far
            .back()
            .map_or(action.ts_ns, |&before| before.max(action.ts_ns));
        self.recent_newest_so_far.push_back(newest);
        self.recent.push_back(action);
        links
    }

    /// Which open call, if any, an action belongs to (see [`Decision`]).
    ///
    /// Candidates are the open calls of the action's agent, the calls an MCP server in its
    /// lineage is handling, and the calls whose arguments the action repeats when it descends
    /// from a known MCP server (the server's side of the call may not have been seen yet). An
    /// action of one call's process tree belongs to that tree's calls only: two sessions of one
    /// agent are two trees. Evidence ranks: what is this call's alone (its arguments in the
    /// action, its MCP `tools/call`, a process started for it), then the MCP server handling
    /// it, then lineage. A server shared by two sessions handles both sessions' calls at once:
    /// its evidence alone cannot tell them apart, and equal evidence for calls of two
    /// sessions is [`Decision::Ambiguous`], never a guess.
    fn decide(&self, action: &Action) -> Decision {
        // Calls are kept in the order they were requested: walking back from the newest, the
        // first one too old to be open ends the search.
        let candidates: Vec<usize> = (0..self.calls.len())
            .rev()
            .take_while(|&i| {
                self.calls[i]
                    .requested_ns
                    .saturating_add(MAX_TOOL_WINDOW_NS)
                    >= action.ts_ns
            })
            .filter(|&i| self.calls[i].window_contains(action.ts_ns))
            .collect();
        let under_known_server = candidates.iter().any(|&i| {
            self.calls[i]
                .servers
                .iter()
                .any(|pid| action.lineage.contains(pid))
        });
        let mut weighed: Vec<Weighed> = Vec::new();
        for index in candidates {
            let call = &self.calls[index];
            let server = call
                .servers
                .iter()
                .find(|pid| action.lineage.contains(pid))
                .copied();
            let same_agent = action.agent.as_deref() == Some(call.agent.as_str());
            let mut evidence = Vec::new();
            let mut own = false;
            if let Some((name, arguments)) = &action.detail.mcp_tool {
                if *name == call.name {
                    evidence.push(Evidence::McpToolsCall { name: name.clone() });
                    own = true;
                    if *arguments == call.arguments {
                        evidence.push(Evidence::ArgumentMatch {
                            argument: "*".into(),
                            value: "all arguments equal".into(),
                        });
                    }
                }
            }
            if action.detail.mcp_tool.is_none() {
                if let Some((argument, value)) = call.matchers.iter().find(|(_, value)| {
                    action
                        .detail
                        .descriptors
                        .iter()
                        .any(|d| d.contains(value.as_str()))
                }) {
                    evidence.push(Evidence::ArgumentMatch {
                        argument: argument.clone(),
                        value: value.clone(),
                    });
                    own = true;
                }
            }
            // A connection the policy stopped never became a request: the call's URL names
            // its destination (`http://127.0.0.2:8080/collect` → `127.0.0.2:8080`).
            if !own && action.kind == "enforce" {
                if let Some((argument, value)) = call.matchers.iter().find(|(_, value)| {
                    url_authority(value)
                        .is_some_and(|authority| action.detail.descriptors.contains(&authority))
                }) {
                    evidence.push(Evidence::ArgumentMatch {
                        argument: argument.clone(),
                        value: value.clone(),
                    });
                    own = true;
                }
            }
            if !same_agent && server.is_none() && !(own && under_known_server) {
                continue;
            }
            if let Some(pid) = server {
                evidence.push(Evidence::McpServerProcess { pid });
            }
            let worker = call
                .workers
                .pids()
                .find(|pid| action.lineage.contains(pid))
                .copied();
            // Only where nothing stronger says so: the evidence that links what a call's own
            // process does, not one more reason for links other evidence already makes (it
            // is added below where it is what tells two calls apart).
            if !own && server.is_none() {
                if let Some(pid) = worker {
                    evidence.push(Evidence::CallProcess { pid });
                }
            }
            let agent_pid = call.pid;
            let lineage = action.pid != agent_pid && action.lineage.contains(&agent_pid);
            if lineage {
                evidence.push(Evidence::ProcessLineage { agent_pid });
            }
            evidence.push(Evidence::TimeWindow);
            weighed.push(Weighed {
                index,
                own: own || worker.is_some(),
                worker,
                server: server.is_some(),
                lineage,
                in_tree: action.lineage.contains(&agent_pid),
                evidence,
            });
        }
        // An action of a session's own process tree is that session's.
        if weighed.iter().any(|w| w.in_tree) {
            weighed.retain(|w| w.in_tree);
        }
        let open_for_agent = weighed.len();
        let strong_candidates = weighed.iter().filter(|w| w.strong()).count();
        // Strongest evidence first; among equals, the newest call.
        weighed.sort_by_key(|w| (std::cmp::Reverse(w.rank()), std::cmp::Reverse(w.index)));
        let Some(best) = weighed.first() else {
            return Decision::None;
        };
        // Strong evidence links to the best call; lineage alone only when the call is unique.
        if !best.strong() && open_for_agent != 1 {
            return Decision::None;
        }
        let best_pid = self.calls[best.index].pid;
        let tied_sessions: Vec<usize> = weighed
            .iter()
            .take_while(|w| w.rank() == best.rank())
            .filter(|w| self.calls[w.index].pid != best_pid)
            .map(|w| w.index)
            .collect();
        if !tied_sessions.is_empty() {
            let mut calls = vec![best.index];
            calls.extend(tied_sessions);
            return Decision::Ambiguous { calls };
        }
        // Only a server's evidence, and another session's open call of the same tool not yet
        // seen at any server: the server may be working for that one.
        if !best.own {
            let call = &self.calls[best.index];
            if let Some(other) = (0..self.calls.len()).rev().find(|&i| {
                let other = &self.calls[i];
                i != best.index
                    && other.pid != call.pid
                    && other.name == call.name
                    && other.servers.is_empty()
                    && other.window_contains(action.ts_ns)
            }) {
                return Decision::Ambiguous {
                    calls: vec![best.index, other],
                };
            }
        }
        let mut evidence = best.evidence.clone();
        // A process started for the call told it apart from another call the same server
        // handles: say so.
        if let Some(pid) = best.worker {
            let decided_by_worker = strong_candidates > 1
                && !evidence.iter().any(|e| {
                    matches!(
                        e,
                        Evidence::ArgumentMatch { .. }
                            | Evidence::McpToolsCall { .. }
                            | Evidence::CallProcess { .. }
                    )
                });
            if decided_by_worker {
                let at = evidence.len() - 1;
                evidence.insert(at, Evidence::CallProcess { pid });
            }
        }
        Decision::Link {
            index: best.index,
            strong: best.strong(),
            evidence,
        }
    }

    /// Links `action` to the call [`Attribution::decide`] picks, when that is `only` (if
    /// given); an action that more than one session's call explains is noted on those calls.
    fn match_action(&mut self, action: &Action, only: Option<usize>) -> Vec<NewLink> {
        let (index, strong, evidence) = match self.decide(action) {
            Decision::None => return Vec::new(),
            Decision::Ambiguous { calls } => {
                if only.is_none_or(|i| calls.contains(&i)) {
                    for &i in &calls {
                        self.calls[i].note_ambiguous(action);
                    }
                }
                return Vec::new();
            }
            Decision::Link {
                index,
                strong,
                evidence,
            } => (index, strong, evidence),
        };
        if only.is_some_and(|i| i != index) {
            return Vec::new();
        }
        let call = &mut self.calls[index];
        // A process started for the call (never the agent itself): what it and its children
        // do is the call's, whatever else is open.
        if strong && action.kind == "exec" && action.pid != call.pid {
            call.workers.add(action.pid);
        }
        if let Some(existing) = call
            .links
            .iter_mut()
            .find(|l| same_action(&l.action, action))
        {
            let before = existing.evidence.len();
            for item in &evidence {
                if !existing.evidence.contains(item) {
                    existing.evidence.push(item.clone());
                }
            }
            if existing.evidence.len() == before {
                return Vec::new();
            }
            // Keep time_window last, where readers expect the weakest evidence.
            existing
                .evidence
                .sort_by_key(|e| matches!(e, Evidence::TimeWindow));
            return vec![NewLink {
                tool_node: call.tool_node.clone(),
                agent: call.agent.clone(),
                call_id: call.id.clone(),
                call_name: call.name.clone(),
                call_requested_ns: call.requested_ns,
                call_pid: call.pid,
                session: None,
                action: action.clone(),
                evidence: existing.evidence.clone(),
                update: true,
            }];
        }
        call.links.push(ToolLink {
            action: action.clone(),
            evidence: evidence.clone(),
        });
        vec![NewLink {
            tool_node: call.tool_node.clone(),
            agent: call.agent.clone(),
            call_id: call.id.clone(),
            call_name: call.name.clone(),
            call_requested_ns: call.requested_ns,
            call_pid: call.pid,
            session: None,
            action: action.clone(),
            evidence,
            update: false,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconstruct::llm::ToolCall;

    const AGENT: &str = "host:node gemini";
    const PID: u32 = 42;
    const SHELL: &str = "run_shell_command";

    #[test]
    fn url_authorities_are_host_and_port() {
        assert_eq!(
            url_authority("http://127.0.0.2:43497/collect").as_deref(),
            Some("127.0.0.2:43497")
        );
        assert_eq!(
            url_authority("https://api.example.com/x?y").as_deref(),
            Some("api.example.com:443")
        );
        assert_eq!(
            url_authority("http://user@[::1]:8080").as_deref(),
            Some("[::1]:8080")
        );
        assert_eq!(url_authority("http://[::1]/").as_deref(), Some("[::1]:80"));
        for not_one in ["ftp://x", "127.0.0.2:80", "http://", "http://h:port/"] {
            assert_eq!(url_authority(not_one), None, "{not_one}");
        }
    }

    fn shell_arguments(file: &str) -> serde_json::Value {
        serde_json::json!({"command": format!("cat {file}")})
    }

    fn open(attribution: &mut Attribution, id: Option<&str>, file: &str, ts_ns: u64) {
        open_in(attribution, PID, id, file, ts_ns);
    }

    fn open_in(attribution: &mut Attribution, pid: u32, id: Option<&str>, file: &str, ts_ns: u64) {
        let call = ToolCall {
            id: id.map(str::to_string),
            name: SHELL.into(),
            arguments: shell_arguments(file),
        };
        attribution.open_call(ToolCallRecord::new(
            AGENT.into(),
            pid,
            &call,
            "127.0.0.1".into(),
            Some("gemini-2.5-flash".into()),
            ts_ns,
            format!("tool:{AGENT}:{SHELL}"),
        ));
    }

    fn result(id: Option<&str>, arguments: Option<serde_json::Value>, text: &str) -> ToolResult {
        ToolResult {
            call_id: id.map(str::to_string),
            name: Some(SHELL.into()),
            content: text.into(),
            is_error: false,
            arguments,
        }
    }

    fn results(attribution: &Attribution) -> Vec<(Option<&str>, Option<Evidence>)> {
        attribution
            .calls
            .iter()
            .map(|c| {
                (
                    c.result.as_ref().map(|r| r.content.as_str()),
                    c.result_evidence.clone(),
                )
            })
            .collect()
    }

    /// Two sessions of one agent (two processes) whose models gave the same id: each result
    /// closes the call its own process received, whichever was opened last.
    #[test]
    fn a_result_closes_the_call_of_its_own_session() {
        let mut attribution = Attribution::default();
        open_in(&mut attribution, 42, Some("call_4"), "/tmp/a.txt", 10);
        open_in(&mut attribution, 43, Some("call_4"), "/tmp/b.txt", 20);
        attribution.close_call(AGENT, 42, &result(Some("call_4"), None, "from 42"), 30);
        attribution.close_call(AGENT, 43, &result(Some("call_4"), None, "from 43"), 40);
        let closed: Vec<_> = results(&attribution).into_iter().map(|(r, _)| r).collect();
        assert_eq!(closed, [Some("from 42"), Some("from 43")]);
    }

    /// How each result was tied to its call: by the model's id, by an id only the agent gave
    /// (Gemini CLI names the calls the Gemini API sends without ids), or by name alone.
    #[test]
    fn result_evidence_says_whose_id_tied_the_result() {
        let mut attribution = Attribution::default();
        // The model gave no id; Gemini CLI sends the result back under its own.
        open(&mut attribution, None, "/tmp/a.txt", 10);
        let agents_id = "run_shell_command_1796416004179_0";
        attribution.close_call(AGENT, PID, &result(Some(agents_id), None, "plan A"), 20);
        // The model's own id, echoed with the result.
        open(&mut attribution, Some("call_7"), "/tmp/b.txt", 30);
        attribution.close_call(AGENT, PID, &result(Some("call_7"), None, "plan B"), 40);
        // No id on either side: by name.
        open(&mut attribution, None, "/tmp/c.txt", 50);
        attribution.close_call(AGENT, PID, &result(None, None, "plan C"), 60);

        assert_eq!(
            results(&attribution),
            [
                (
                    Some("plan A"),
                    Some(Evidence::AgentCallId {
                        id: agents_id.into()
                    })
                ),
                (
                    Some("plan B"),
                    Some(Evidence::ToolCallId {
                        id: "call_7".into()
                    })
                ),
                (Some("plan C"), None),
            ]
        );
        // The model's id stays what the model sent: none.
        assert_eq!(attribution.calls[0].id, None);
        assert_eq!(
            serde_json::to_value(&attribution.calls[0].result_evidence).unwrap(),
            serde_json::json!({"type": "agent_call_id", "id": agents_id})
        );
    }

    const SERVER: u32 = 7;
    const QUERY: &str = "query_database";

    /// Opens a `query_database` call received by session process `pid`.
    fn open_query(attribution: &mut Attribution, pid: u32, sql: &str, ts_ns: u64) {
        let call = ToolCall {
            id: Some("call_4".into()),
            name: QUERY.into(),
            arguments: serde_json::json!({ "sql": sql }),
        };
        attribution.open_call(ToolCallRecord::new(
            AGENT.into(),
            pid,
            &call,
            "127.0.0.1".into(),
            None,
            ts_ns,
            format!("tool:{AGENT}:{QUERY}"),
        ));
    }

    /// What a process the shared MCP server started did: `argv` of an exec.
    fn server_child(pid: u32, argv: &str, ts_ns: u64) -> Action {
        let target = super::super::actions::Target {
            kind: "exec",
            node_kind: super::super::graph::NodeKind::Command,
            node_id: "command:/usr/bin/psql".into(),
            label: "psql".into(),
            edge_kind: super::super::graph::EdgeKind::Executes,
            summary: format!("exec {argv}"),
            descriptors: vec![argv.to_string()],
            mcp_tool: None,
            mcp_served: None,
            via_command: None,
            attributes: Vec::new(),
            more_nodes: Vec::new(),
            retrieval_source: None,
            protocol: None,
        };
        Action {
            kind: "exec",
            target: target.node_id.clone(),
            summary: target.summary.clone(),
            pid,
            ts_ns,
            events: Vec::new(),
            lineage: vec![pid, SERVER, 1],
            // The server is nobody's agent.
            agent: None,
            detail: std::sync::Arc::new(target),
        }
    }

    /// Two sessions (processes 42 and 43) query through one MCP server at once. A child of
    /// the server goes to the call whose SQL it runs, whichever call the server was seen
    /// handling first; one that repeats neither call's arguments is evidence of neither.
    #[test]
    fn a_shared_servers_child_goes_to_the_session_its_arguments_name() {
        let mut attribution = Attribution::default();
        open_query(&mut attribution, 42, "SELECT name FROM customers", 10);
        open_query(&mut attribution, 43, "SELECT email FROM customers", 20);
        let json = |sql: &str| serde_json::json!({ "sql": sql });
        attribution.server_handles(SERVER, QUERY, &json("SELECT name FROM customers"), 30);
        // Seen at the server only for 42's call so far: 43's psql still goes to 43.
        let links =
            attribution.observe(server_child(101, "psql -c SELECT email FROM customers", 40));
        assert_eq!(links.iter().map(|l| l.call_pid).collect::<Vec<_>>(), [43]);
        attribution.server_handles(SERVER, QUERY, &json("SELECT email FROM customers"), 50);
        let links =
            attribution.observe(server_child(102, "psql -c SELECT name FROM customers", 60));
        assert_eq!(links.iter().map(|l| l.call_pid).collect::<Vec<_>>(), [42]);
        // The server handles both; this child names neither call.
        let links = attribution.observe(server_child(103, "psql -c SELECT 1", 70));
        assert!(links.is_empty(), "{links:?}");
        for call in &attribution.calls {
            assert_eq!(
                call.ambiguous
                    .iter()
                    .map(|l| l.action.pid)
                    .collect::<Vec<_>>(),
                [103]
            );
            // Nothing linked to the other session's psql.
            let own = if call.pid == 42 { 102 } else { 101 };
            assert!(
                call.links.iter().all(|l| l.action.pid == own),
                "{:?}",
                call.links
            );
        }
    }

    /// Two calls of one tool open at once, without ids from the model (Gemini runs tools in
    /// parallel): each result goes to the call whose arguments the request repeats for it,
    /// whatever the order; by name alone the first result went to the newest call.
    #[test]
    fn parallel_calls_of_one_tool_get_their_own_results() {
        let mut attribution = Attribution::default();
        open(&mut attribution, None, "/tmp/a.txt", 10);
        open(&mut attribution, None, "/tmp/b.txt", 10);
        let a = result(Some("x_0"), Some(shell_arguments("/tmp/a.txt")), "plan A");
        let b = result(Some("x_1"), Some(shell_arguments("/tmp/b.txt")), "plan B");
        attribution.close_call(AGENT, PID, &a, 20);
        attribution.close_call(AGENT, PID, &b, 20);
        let contents: Vec<Option<&str>> = results(&attribution).iter().map(|r| r.0).collect();
        assert_eq!(contents, [Some("plan A"), Some("plan B")]);

        // Arguments that match no open call (changed on the way) fall back to the name.
        let mut attribution = Attribution::default();
        open(&mut attribution, None, "/tmp/a.txt", 10);
        let changed = result(None, Some(shell_arguments("/tmp/other.txt")), "plan A");
        attribution.close_call(AGENT, PID, &changed, 20);
        assert_eq!(results(&attribution)[0].0, Some("plan A"));
    }

    /// What a child of the agent's process ran: `argv` of an exec.
    fn agent_child(pid: u32, argv: &str, ts_ns: u64) -> Action {
        Action {
            lineage: vec![pid, PID, 1],
            agent: Some(AGENT.into()),
            ..server_child(pid, argv, ts_ns)
        }
    }

    /// A call is often reconstructed after the actions it caused (its response is complete
    /// only later): the call links every kept action from its request on, and only those,
    /// though actions arrive nearly, not strictly, in time order; many older ones are kept.
    #[test]
    fn a_call_opened_late_links_the_newer_actions_kept_whatever_their_order() {
        let mut attribution = Attribution::default();
        for n in 0..1000 {
            attribution.observe(agent_child(
                1000 + n,
                "cat /tmp/plan.txt",
                10 + u64::from(n),
            ));
        }
        // Newer than the call, kept before an older one arrives.
        attribution.observe(agent_child(200, "cat /tmp/plan.txt", 5_000));
        attribution.observe(agent_child(201, "cat /tmp/plan.txt", 900));
        attribution.observe(agent_child(202, "cat /tmp/plan.txt", 4_000));
        attribution.observe(agent_child(203, "cat /tmp/plan.txt", 3_000));
        let links = attribution.open_call(ToolCallRecord::new(
            AGENT.into(),
            PID,
            &ToolCall {
                id: Some("call_1".into()),
                name: SHELL.into(),
                arguments: shell_arguments("/tmp/plan.txt"),
            },
            "127.0.0.1".into(),
            None,
            3_000,
            format!("tool:{AGENT}:{SHELL}"),
        ));
        assert_eq!(
            links.iter().map(|l| l.action.pid).collect::<Vec<_>>(),
            [200, 202, 203]
        );
    }
}
