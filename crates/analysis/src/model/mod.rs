//! The model the console and detections read: agents (with their AI-BOM), the tool calls
//! their models requested and what carried them out, and the typed execution graph
//! agent → tool → API → data → identity.
//!
//! [`Model::apply`] takes reconstruction's observations one at a time and updates everything
//! incrementally; [`Model::snapshot`] is the serialisable view (`--graph-json`, documented in
//! docs/graph.md).

pub mod actions;
pub mod agent_enforcement;
pub mod agent_key;
pub mod agent_pids;
pub mod agent_selector;
pub mod agents;
pub mod attribution;
pub mod graph;
pub mod payloads_left_out;
pub mod tls_coverage;

mod action_edges;
mod blind_agents;
mod discovery;
mod llm_calls;
mod mcp_clients;
mod memory_pressure;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use agentscope_event::pid_keyed::PidMap;

use serde::Serialize;

use crate::memory_budget::MemoryBudget;
use crate::process_table::ProcessTable;
use crate::reconstruct::mcp::McpDetail;
use crate::reconstruct::{Observation, ObservationKind, ReconstructStats, Role};

pub use agents::{ActorIdentity, Agent, AiBom, HostOnlyIdentity, IdentityAnswer, IdentityLookup};
pub use attribution::{Action, Evidence, NewLink, ToolCallRecord};
pub use graph::{EdgeKind, Graph, GraphSnapshot, NodeKind};
pub use payloads_left_out::{PayloadsLeftOutTable, ProcessPayloadsLeftOut};
pub use tls_coverage::{ProcessTlsCoverage, TlsCoverageTable};

/// Version of the JSON written by [`Model::snapshot`]; bump on incompatible changes.
pub const SCHEMA: &str = "agentscope.model/v1";

#[derive(Debug, Clone)]
pub struct ModelOptions {
    pub max_nodes: usize,
    pub max_edges: usize,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            max_nodes: 50_000,
            max_edges: 200_000,
        }
    }
}

pub struct Model {
    graph: Graph,
    agents: BTreeMap<String, Agent>,
    /// Agent processes: pid → agent key, kept after exit (see [`agent_pids`]).
    agent_pids: agent_pids::AgentPids,
    /// Frameworks seen in module loads, per pid, before the process is known as an agent.
    module_hints: PidMap<u32, Vec<&'static str>>,
    /// Packages loaded (`package` events), per pid, before the process is known as an agent.
    package_hints: PidMap<u32, Vec<agentscope_event::package::PackageFound>>,
    attribution: attribution::Attribution,
    llm_calls: u64,
    /// Links made since [`Model::take_new_links`] last ran.
    new_links: Vec<attribution::NewLink>,
    /// Processes that talked TLS and whether their plaintext is seen.
    tls_coverage: TlsCoverageTable,
    /// What the kernel left out of each process's payloads.
    payloads_left_out: PayloadsLeftOutTable,
    /// The enforcement policies the collector last reported, by scope: applied to the agents
    /// they govern, those discovered later included.
    enforcement_policies: BTreeMap<String, agentscope_event::enforcement::EnforcePolicy>,
    /// Agents are charged to this budget (see `memory_pressure`).
    budget: Option<MemoryBudget>,
    /// Per agent: its charge, when it last acted and whether detection raised a finding for
    /// it: what decides which agents are shed first under memory pressure.
    agent_holds: HashMap<String, memory_pressure::AgentHold>,
    /// Agents shed since [`Model::take_evicted_agents`] last ran.
    evicted_agents: Vec<String>,
}

/// Everything the model knows, ready to serialise.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSnapshot {
    pub schema: &'static str,
    pub agents: Vec<Agent>,
    pub tool_calls: Vec<ToolCallRecord>,
    pub graph: GraphSnapshot,
    /// Detection's findings and incidents (filled by [`crate::pipeline::Pipeline::snapshot`]).
    pub findings: Vec<crate::detect::Finding>,
    pub incidents: Vec<crate::detect::Incident>,
    pub stats: ModelStats,
    /// Per process that talked TLS: its servers and whether its plaintext is seen
    /// (`agentscope coverage`). Left out when no ClientHello was seen.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls_coverage: Vec<ProcessTlsCoverage>,
    /// Per process whose payloads the kernel left out (plain sockets of no protocol agentscope
    /// reads, `--no-payloads-of`, `--sample-connections`): how many bytes (`agentscope
    /// coverage`). Left out when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub payloads_left_out: Vec<ProcessPayloadsLeftOut>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ModelStats {
    pub llm_calls: u64,
    pub tool_calls: u64,
    pub tool_calls_dropped: u64,
    /// Of `tool_calls_dropped`, the oldest calls dropped to stay within the memory budget.
    pub tool_calls_evicted: u64,
    /// Findings detection raised but could not keep.
    pub findings_dropped: u64,
    /// Reports of payloads left out that the model could not keep (past
    /// [`payloads_left_out::MAX_PROCESSES`], the oldest go). Left out when none.
    #[serde(skip_serializing_if = "crate::reconstruct::reconstructor::is_zero")]
    pub payloads_left_out_dropped: u64,
    pub reconstruction: Option<ReconstructStats>,
    /// What the memory budget held and what it cut (filled by the pipeline).
    pub memory: Option<crate::memory_budget::MemoryStats>,
}

/// Pids whose module loads are remembered before they are known as agents.
const MODULE_HINT_PIDS: usize = 4096;
/// Packages remembered per pid before it is known as an agent.
const PACKAGE_HINTS_PER_PID: usize = 256;

impl Model {
    pub fn new(options: ModelOptions) -> Self {
        Self {
            graph: Graph::new(options.max_nodes, options.max_edges),
            agents: BTreeMap::new(),
            agent_pids: Default::default(),
            module_hints: PidMap::default(),
            package_hints: PidMap::default(),
            attribution: Default::default(),
            llm_calls: 0,
            new_links: Vec::new(),
            tls_coverage: TlsCoverageTable::default(),
            payloads_left_out: PayloadsLeftOutTable::default(),
            enforcement_policies: BTreeMap::new(),
            budget: None,
            agent_holds: HashMap::new(),
            evicted_agents: Vec::new(),
        }
    }

    /// Tool calls, agents and the graph are charged to `budget` from now on.
    pub fn set_budget(&mut self, budget: &MemoryBudget) {
        self.graph.set_budget(budget);
        self.attribution.set_budget(budget);
        self.budget = Some(budget.clone());
        let keys: Vec<String> = self.agents.keys().cloned().collect();
        for key in keys {
            self.charge_agent(&key, 0);
        }
    }

    /// Agents shed to stay within the budget since the last call (see `memory_pressure`).
    pub fn take_evicted_agents(&mut self) -> Vec<String> {
        std::mem::take(&mut self.evicted_agents)
    }

    /// Agents evicted so far are counted in the budget's `agents_evicted`; this is how many
    /// agents the model holds now.
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    pub fn agents(&self) -> impl Iterator<Item = &Agent> {
        self.agents.values()
    }

    /// The agent with key `key`, if known.
    pub fn agent(&self, key: &str) -> Option<&Agent> {
        self.agents.get(key)
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    pub fn tool_calls(&self) -> impl DoubleEndedIterator<Item = &ToolCallRecord> {
        self.attribution.calls.iter()
    }

    pub fn snapshot(&self, reconstruction: Option<&ReconstructStats>) -> ModelSnapshot {
        ModelSnapshot {
            schema: SCHEMA,
            agents: self.agents.values().cloned().collect(),
            tool_calls: self.attribution.calls.iter().cloned().collect(),
            graph: self.graph.snapshot(),
            findings: Vec::new(),
            incidents: Vec::new(),
            stats: ModelStats {
                llm_calls: self.llm_calls,
                tool_calls: self.attribution.calls.len() as u64 + self.attribution.dropped_calls,
                tool_calls_dropped: self.attribution.dropped_calls,
                tool_calls_evicted: self.attribution.evicted_calls,
                findings_dropped: 0,
                payloads_left_out_dropped: self.payloads_left_out.dropped(),
                reconstruction: reconstruction.cloned(),
                memory: None,
            },
            tls_coverage: self
                .tls_coverage
                .processes()
                .into_iter()
                .map(|mut process| {
                    // It may have become an agent's after its hello (its LLM call came later).
                    if process.agent.is_none() {
                        process.agent = self
                            .agent_pids
                            .key_at(process.pid, process.last_seen_ns)
                            .map(str::to_string);
                    }
                    process
                })
                .collect(),
            payloads_left_out: self.payloads_left_out.processes(),
        }
    }

    /// `pid` exited at `ts_ns`, or the process table forgot it: what is kept for it goes
    /// (its agent stays its own for what it did until then).
    pub fn forget_process(&mut self, pid: u32, ts_ns: u64, identity: &mut dyn IdentityLookup) {
        self.module_hints.remove(&pid);
        self.package_hints.remove(&pid);
        self.agent_pids.exited(pid, ts_ns);
        identity.forget(pid);
    }

    /// Processes that talked TLS (see [`tls_coverage`]).
    pub fn tls_coverage(&self) -> &TlsCoverageTable {
        &self.tls_coverage
    }

    /// Processes whose payloads the kernel left out (see [`payloads_left_out`]).
    pub fn payloads_left_out(&self) -> &PayloadsLeftOutTable {
        &self.payloads_left_out
    }

    /// TLS plaintext from `pid` arrived (the pipeline calls this for every TLS payload record).
    pub fn note_tls_plaintext(&mut self, pid: u32, ts_ns: u64) {
        self.tls_coverage.plaintext(pid, ts_ns);
    }

    /// Running agent processes as (pid, agent key), sorted by pid.
    pub fn agent_pids(&self) -> Vec<(u32, String)> {
        self.agent_pids.running()
    }

    /// Starts from agents saved in a capture's keyframe (a replay from the middle): they and
    /// their identities are in the graph again, and their processes are known as theirs.
    pub fn restore_agents(&mut self, agents: Vec<Agent>, agent_pids: Vec<(u32, String)>) {
        for agent in agents {
            let node = self.graph.node(
                NodeKind::Agent,
                format!("agent:{}", agent.key),
                &agent.name,
                agent.last_seen_ns,
            );
            self.graph
                .set_attribute(&node, "program", serde_json::json!(agent.program));
            let identity = agent.identity.clone();
            self.link_identity(&node, &identity, agent.last_seen_ns, &[]);
            let (key, last_seen_ns) = (agent.key.clone(), agent.last_seen_ns);
            self.agents.insert(key.clone(), agent);
            self.charge_agent(&key, last_seen_ns);
        }
        for (pid, key) in agent_pids {
            if self.agents.contains_key(&key) {
                self.agent_pids.insert(pid, key);
            }
        }
    }

    /// The enforcement policies last reported, one per scope (for a keyframe).
    pub fn enforcement_policies(&self) -> Vec<agentscope_event::enforcement::EnforcePolicy> {
        self.enforcement_policies.values().cloned().collect()
    }

    /// Starts from the policies saved in a keyframe (agents restored with it keep their
    /// modes; these reach the agents discovered after it).
    pub fn restore_enforcement_policies(
        &mut self,
        policies: Vec<agentscope_event::enforcement::EnforcePolicy>,
    ) {
        for policy in policies {
            self.enforcement_policies
                .insert(policy.scope.clone(), policy);
        }
    }

    /// The agent a process acted for at `ts_ns`: its own, or its nearest agent ancestor's
    /// (`lineage` is the process and its ancestors, nearest first). Exited processes keep
    /// their agent for what they did before they exited.
    pub fn agent_of(&self, lineage: &[u32], ts_ns: u64) -> Option<String> {
        self.agent_pids.agent_at(lineage, ts_ns)
    }

    /// Whether [`Model::agent_of`] has an answer, without copying the agent's key.
    pub fn is_agent_at(&self, lineage: &[u32], ts_ns: u64) -> bool {
        self.agent_pids.is_agent_at(lineage, ts_ns)
    }

    /// A mark of which processes are agents' now, for [`Model::made_agents_since`].
    pub fn agents_mark(&self) -> u64 {
        self.agent_pids.made_count()
    }

    /// The pids that became agent processes since `mark` (see
    /// [`agent_pids::AgentPids::made_agents_since`]); `None` when too many did to say.
    pub fn made_agents_since(&self, mark: u64) -> Option<Vec<u32>> {
        Some(self.agent_pids.made_agents_since(mark)?.collect())
    }

    /// The session (see [`agent_pids::AgentPids::session_at`]) of what `lineage` did at
    /// `ts_ns`: the pid of its agent's outermost process in the lineage.
    pub fn session_of(&self, lineage: &[u32], ts_ns: u64) -> Option<u32> {
        self.agent_pids.session_at(lineage, ts_ns)
    }

    /// Applies one observation. `processes` is the reconstructor's process table (lineage);
    /// `identity` says who processes run as.
    pub fn apply(
        &mut self,
        observation: &Observation,
        processes: &ProcessTable,
        identity: &mut dyn IdentityLookup,
    ) {
        // Before the observation changes anything: what it adds then fits whole, and the
        // agents shed to make room are quiet ones, never the one acting.
        self.make_room(observation, processes);
        let pid = observation.actor.pid;
        match &observation.kind {
            ObservationKind::Llm {
                call,
                host,
                port,
                user_agent,
                end_ts_ns,
            } => {
                let key = self.discover_agent(observation, processes, identity);
                self.apply_llm(
                    &key,
                    observation,
                    call,
                    host.as_deref(),
                    *port,
                    user_agent.as_deref(),
                    *end_ts_ns,
                );
            }
            ObservationKind::FileOpen { path, .. } => {
                self.note_framework_module(pid, path, observation.ts_ns);
                self.apply_action(observation, processes);
            }
            ObservationKind::Exit { .. } => {
                // The pid may be reused by an unrelated process: it stays the agent's for
                // what it did until now only (and for as long as the process table keeps it).
                self.forget_process(pid, observation.ts_ns, identity);
            }
            ObservationKind::Mcp {
                exchange,
                transport,
                role: Role::Client,
                endpoint,
                peer_pid,
            } => {
                let key = self.discover_agent(observation, processes, identity);
                self.apply_mcp_client(&key, observation, exchange, *transport, endpoint.as_deref());
                if let (Some(server), McpDetail::ToolsCall(call)) = (peer_pid, &exchange.detail) {
                    // A stdio server is the agent's child: it works for this call.
                    let links = self.attribution.server_handles(
                        *server,
                        call.name.as_deref().unwrap_or_default(),
                        call.arguments.as_ref().unwrap_or(&serde_json::Value::Null),
                        observation.ts_ns,
                    );
                    self.add_links(links);
                }
                self.apply_action(observation, processes);
            }
            ObservationKind::TlsHello { .. } => {
                self.apply_tls_hello(observation, processes, identity);
            }
            ObservationKind::Package { package } => {
                self.note_package(pid, package, processes, observation.ts_ns);
            }
            ObservationKind::Enforce { decision } => {
                // Counted on the agent the process works for (a descendant's decision too),
                // then drawn in the graph like any action.
                let lineage = processes.lineage(pid);
                if let Some(agent) = self
                    .agent_of(&lineage, observation.ts_ns)
                    .and_then(|key| self.agents.get_mut(&key))
                {
                    agent.enforcement.record(decision, pid, observation.ts_ns);
                }
                self.apply_action(observation, processes);
            }
            ObservationKind::EnforcePolicy { policy } => {
                self.apply_enforcement_policy(policy, processes, observation.ts_ns);
            }
            // The declared side of posture (posture::UsageBook keeps it): no process's act.
            ObservationKind::ClusterObjects { .. } => {}
            ObservationKind::PayloadsLeftOut {
                opaque_socket_bytes,
                on_request_bytes,
                sampled_out_bytes,
                running,
            } => {
                let info = processes.get(pid);
                self.payloads_left_out.report(ProcessPayloadsLeftOut {
                    pid,
                    program: agents::program_of(
                        info.and_then(|p| p.exe.as_deref()),
                        info.map(|p| p.argv.as_slice()).unwrap_or_default(),
                        &observation.actor.comm,
                    ),
                    agent: self
                        .agent_pids
                        .key_at(pid, observation.ts_ns)
                        .map(str::to_string),
                    opaque_socket_bytes: *opaque_socket_bytes,
                    on_request_bytes: *on_request_bytes,
                    sampled_out_bytes: *sampled_out_bytes,
                    running: *running,
                    reported_ns: observation.ts_ns,
                });
            }
            _ => self.apply_action(observation, processes),
        }
        // What may have grown an agent's record or AI-BOM is charged (file opens and other
        // actions add at most a framework name, within the record's fixed part).
        if matches!(
            observation.kind,
            ObservationKind::Llm { .. }
                | ObservationKind::Mcp { .. }
                | ObservationKind::TlsHello { .. }
                | ObservationKind::Package { .. }
                | ObservationKind::Enforce { .. }
        ) {
            if let Some(key) = self.agent_of(&processes.lineage(pid), observation.ts_ns) {
                self.charge_agent(&key, observation.ts_ns);
            }
        }
    }

    /// A policy the collector reported: kept (agents discovered later take it), and applied
    /// to the agents it governs now: those with a process in its process tree or cgroup,
    /// and those it was applied to before (the same scope).
    fn apply_enforcement_policy(
        &mut self,
        policy: &agentscope_event::enforcement::EnforcePolicy,
        processes: &ProcessTable,
        ts_ns: u64,
    ) {
        self.enforcement_policies
            .insert(policy.scope.clone(), policy.clone());
        for agent in self.agents.values_mut() {
            let same_scope = agent
                .enforcement
                .policy
                .as_ref()
                .is_some_and(|reported| reported.scope == policy.scope);
            let in_tree = policy.scope_pid.is_some_and(|root| {
                agent
                    .pids
                    .iter()
                    .any(|&pid| processes.lineage(pid).contains(&root))
            });
            if same_scope || in_tree {
                agent.enforcement.apply_policy(policy, ts_ns);
            }
        }
    }

    /// Applies to a newly seen agent process the policies that govern it (its process tree
    /// or its cgroup).
    fn apply_known_policies(
        &mut self,
        key: &str,
        actor: &crate::reconstruct::Actor,
        processes: &ProcessTable,
        ts_ns: u64,
    ) {
        if self.enforcement_policies.is_empty() {
            return;
        }
        let lineage = processes.lineage(actor.pid);
        let Some(agent) = self.agents.get_mut(key) else {
            return;
        };
        for policy in self.enforcement_policies.values() {
            let governs = policy.scope_pid.is_some_and(|root| lineage.contains(&root))
                || policy
                    .scope_cgroup_id
                    .is_some_and(|id| id != 0 && id == actor.cgroup_id);
            if governs {
                agent.enforcement.apply_policy(policy, ts_ns);
            }
        }
    }
}
