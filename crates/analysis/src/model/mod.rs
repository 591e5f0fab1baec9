//! The model the console and detections read: agents (with their AI-BOM), the tool calls
//! their models requested and what carried them out, and the typed execution graph
//! agent → tool → API → data → identity.
//!
//! [`Model::apply`] takes reconstruction's observations one at a time and updates everything
//! incrementally; [`Model::snapshot`] is the serialisable view (`--graph-json`, documented in
//! docs/graph.md).

pub mod agent_key;
pub mod agent_pids;
pub mod agents;
pub mod attribution;
pub mod graph;
pub mod tls_coverage;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::process_table::ProcessTable;
use crate::reconstruct::llm::LlmCall;
use crate::reconstruct::mcp::{McpDetail, McpExchange, McpTransport};
use crate::reconstruct::{EventRange, Observation, ObservationKind, ReconstructStats, Role};

pub use agents::{ActorIdentity, Agent, AiBom, HostOnlyIdentity, IdentityAnswer, IdentityLookup};
pub use attribution::{Action, Evidence, NewLink, ToolCallRecord};
pub use graph::{EdgeKind, Graph, GraphSnapshot, NodeKind};
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
    module_hints: HashMap<u32, Vec<&'static str>>,
    attribution: attribution::Attribution,
    llm_calls: u64,
    /// Links made since [`Model::take_new_links`] last ran.
    new_links: Vec<attribution::NewLink>,
    /// Processes that talked TLS and whether their plaintext is seen.
    tls_coverage: TlsCoverageTable,
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
    pub reconstruction: Option<ReconstructStats>,
    /// What the memory budget held and what it cut (filled by the pipeline).
    pub memory: Option<crate::memory_budget::MemoryStats>,
}

/// Pids whose module loads are remembered before they are known as agents.
const MODULE_HINT_PIDS: usize = 4096;

impl Model {
    pub fn new(options: ModelOptions) -> Self {
        Self {
            graph: Graph::new(options.max_nodes, options.max_edges),
            agents: BTreeMap::new(),
            agent_pids: Default::default(),
            module_hints: HashMap::new(),
            attribution: Default::default(),
            llm_calls: 0,
            new_links: Vec::new(),
            tls_coverage: TlsCoverageTable::default(),
        }
    }

    /// Tool calls and the graph are charged to `budget` from now on.
    pub fn set_budget(&mut self, budget: &crate::memory_budget::MemoryBudget) {
        self.graph.set_budget(budget);
        self.attribution.set_budget(budget);
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

    pub fn tool_calls(&self) -> impl Iterator<Item = &ToolCallRecord> {
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
        }
    }

    /// Processes that talked TLS (see [`tls_coverage`]).
    pub fn tls_coverage(&self) -> &TlsCoverageTable {
        &self.tls_coverage
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
            self.agents.insert(agent.key.clone(), agent);
        }
        for (pid, key) in agent_pids {
            if self.agents.contains_key(&key) {
                self.agent_pids.insert(pid, key);
            }
        }
    }

    /// The agent a process acted for at `ts_ns`: its own, or its nearest agent ancestor's
    /// (`lineage` is the process and its ancestors, nearest first). Exited processes keep
    /// their agent for what they did before they exited.
    pub fn agent_of(&self, lineage: &[u32], ts_ns: u64) -> Option<String> {
        self.agent_pids.agent_at(lineage, ts_ns)
    }

    /// Makes `pid` an agent (or another process of one); returns the agent key.
    fn discover_agent(
        &mut self,
        observation: &Observation,
        processes: &ProcessTable,
        identity: &mut dyn IdentityLookup,
    ) -> String {
        let actor = &observation.actor;
        if let Some(key) = self.agent_pids.key_at(actor.pid, observation.ts_ns) {
            return key.to_string();
        }
        let info = processes.get(actor.pid);
        let exe = info.and_then(|p| p.exe.as_deref());
        let argv = info.map(|p| p.argv.as_slice()).unwrap_or_default();
        let program = agents::program_of(exe, argv, &actor.comm);
        let who = identity.lookup(actor.pid, actor.cgroup_id, actor.uid);
        // Not `program`: how the process was first seen must not change the key.
        let key = who.agent_key(&agent_key::program_key(exe, argv, &actor.comm));
        let ts = observation.ts_ns;
        let agent = self.agents.entry(key.clone()).or_insert_with(|| Agent {
            key: key.clone(),
            name: agents::display_name(&program),
            program: program.clone(),
            pids: Default::default(),
            identity: who.clone(),
            first_seen_ns: ts,
            last_seen_ns: ts,
            llm_calls: 0,
            tool_calls: 0,
            input_tokens: 0,
            output_tokens: 0,
            aibom: AiBom::default(),
            plaintext_not_visible: None,
        });
        agent.add_pid(actor.pid);
        agent.identity = who.clone();
        if let Some(hints) = self.module_hints.remove(&actor.pid) {
            agent
                .aibom
                .frameworks
                .extend(hints.iter().map(|s| s.to_string()));
        }
        let name = agent.name.clone();
        if info.is_some_and(|p| p.exited) {
            // Reported after the process exited (its connection closed at exit).
            self.agent_pids
                .insert_exited(actor.pid, key.clone(), observation.ts_ns);
        } else {
            self.agent_pids.insert(actor.pid, key.clone());
        }
        let node = self
            .graph
            .node(NodeKind::Agent, format!("agent:{key}"), &name, ts);
        self.graph
            .set_attribute(&node, "program", serde_json::json!(program));
        self.link_identity(&node, &who, observation.ts_ns, &observation.events);
        key
    }

    fn link_identity(
        &mut self,
        agent_node: &str,
        who: &ActorIdentity,
        ts: u64,
        events: &[EventRange],
    ) {
        let user = match &who.user {
            Some(name) => format!("{name} (uid {})", who.uid),
            None => format!("uid {}", who.uid),
        };
        let mut identities = vec![(format!("identity:user:{}:{}", who.workload, who.uid), user)];
        if let Some(sa) = &who.service_account {
            identities.push((
                format!("identity:service_account:{sa}"),
                format!("serviceaccount {sa}"),
            ));
        }
        for role in &who.cloud_roles {
            identities.push((format!("identity:cloud_role:{role}"), role.clone()));
        }
        for (id, label) in identities {
            let node = self.graph.node(NodeKind::Identity, id, &label, ts);
            self.graph
                .edge(agent_node, &node, EdgeKind::RunsAs, ts, events);
        }
    }

    /// Applies one observation. `processes` is the reconstructor's process table (lineage);
    /// `identity` says who processes run as.
    pub fn apply(
        &mut self,
        observation: &Observation,
        processes: &ProcessTable,
        identity: &mut dyn IdentityLookup,
    ) {
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
                if let Some(framework) = agents::framework_in_module_path(path) {
                    match self
                        .agent_pids
                        .key_at(pid, observation.ts_ns)
                        .map(str::to_string)
                    {
                        Some(key) => {
                            if let Some(agent) = self.agents.get_mut(&key) {
                                agent.aibom.frameworks.insert(framework.to_string());
                            }
                        }
                        None if self.module_hints.len() < MODULE_HINT_PIDS
                            || self.module_hints.contains_key(&pid) =>
                        {
                            let hints = self.module_hints.entry(pid).or_default();
                            if !hints.contains(&framework) {
                                hints.push(framework);
                            }
                        }
                        None => {}
                    }
                }
                self.apply_action(observation, processes);
            }
            ObservationKind::Exit { .. } => {
                // The pid may be reused by an unrelated process: it stays the agent's for
                // what it did until now only (and for as long as the process table keeps it).
                self.module_hints.remove(&pid);
                self.agent_pids.exited(pid, observation.ts_ns);
                identity.forget(pid);
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
            ObservationKind::TlsHello {
                server_name,
                alpn,
                peer,
                provider,
                coverage,
            } => {
                let info = processes.get(pid);
                let program = agents::program_of(
                    info.and_then(|p| p.exe.as_deref()),
                    info.map(|p| p.argv.as_slice()).unwrap_or_default(),
                    &observation.actor.comm,
                );
                let peer_name = server_name
                    .clone()
                    .or_else(|| peer.as_ref().map(|p| format!("{}:{}", p.addr, p.port)));
                self.tls_coverage.hello(tls_coverage::HelloSeen {
                    pid,
                    program,
                    ts_ns: observation.ts_ns,
                    peer: peer_name,
                    alpn,
                    provider: provider.as_deref(),
                    coverage: coverage.as_ref(),
                });
                let blind = match coverage {
                    Some(agentscope_event::TlsCoverage::NotVisible { reason }) => Some(reason),
                    _ => None,
                };
                // A process that talks TLS to an LLM provider's API host whose plaintext cannot
                // be read is an agent all the same: the blind spot is reported, not hidden.
                let key = match (provider, server_name, blind) {
                    (Some(provider), Some(host), Some(reason)) => {
                        let key = self.discover_agent(observation, processes, identity);
                        self.apply_blind_llm(&key, observation, provider, host, peer, reason);
                        Some(key)
                    }
                    _ => self
                        .agent_pids
                        .key_at(pid, observation.ts_ns)
                        .map(str::to_string),
                };
                if let Some(key) = key {
                    if let Some(entry) = self.tls_coverage.get_mut(pid) {
                        entry.agent = Some(key);
                    }
                }
            }
            _ => self.apply_action(observation, processes),
        }
    }

    /// An agent known from a TLS server name only: the provider in its AI-BOM, an edge to the
    /// API host, and why its plaintext is not visible.
    fn apply_blind_llm(
        &mut self,
        key: &str,
        observation: &Observation,
        provider: &str,
        host: &str,
        peer: &Option<crate::reconstruct::Peer>,
        reason: &agentscope_event::NotVisibleReason,
    ) {
        let ts = observation.ts_ns;
        let why = format!("plaintext not visible: {}", reason.describe());
        if let Some(agent) = self.agents.get_mut(key) {
            agent.last_seen_ns = agent.last_seen_ns.max(ts);
            agent
                .aibom
                .providers
                .entry(provider.to_string())
                .or_default();
            agent.plaintext_not_visible = Some(why.clone());
        }
        let agent_node = format!("agent:{key}");
        self.graph
            .set_attribute(&agent_node, "plaintext_not_visible", serde_json::json!(why));
        let endpoint = match peer {
            Some(peer) => format!("{host}:{}", peer.port),
            None => host.to_string(),
        };
        let api_node = self.graph.node(
            NodeKind::Api,
            format!("api:tls:{endpoint}"),
            &format!("{host} (TLS, plaintext not visible)"),
            ts,
        );
        self.graph.set_attribute(
            &api_node,
            "gen_ai.provider.name",
            serde_json::json!(provider),
        );
        self.graph
            .set_attribute(&api_node, "tls.server_name", serde_json::json!(host));
        self.graph.edge(
            &agent_node,
            &api_node,
            EdgeKind::CallsApi,
            ts,
            &observation.events,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_llm(
        &mut self,
        key: &str,
        observation: &Observation,
        call: &LlmCall,
        host: Option<&str>,
        port: Option<u16>,
        user_agent: Option<&str>,
        end_ts_ns: u64,
    ) {
        let ts = observation.ts_ns;
        self.llm_calls += 1;
        let agent_node = format!("agent:{key}");
        let model_name = call
            .response_model
            .clone()
            .or_else(|| call.request_model.clone())
            .unwrap_or_else(|| "unknown".into());
        let model_node = self.graph.node(
            NodeKind::Model,
            format!("model:{}/{}", call.provider, model_name),
            &model_name,
            ts,
        );
        self.graph.set_attribute(
            &model_node,
            "gen_ai.provider.name",
            serde_json::json!(call.provider),
        );
        if let Some(host) = host {
            let endpoint = match port {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            };
            self.graph
                .set_attribute(&model_node, "server.address", serde_json::json!(endpoint));
        }
        if let Some(edge) = self.graph.edge(
            &agent_node,
            &model_node,
            EdgeKind::InvokesModel,
            ts,
            &observation.events,
        ) {
            let tokens = |edge: &mut graph::Edge, name: &str, add: Option<u64>| {
                let total = edge
                    .attributes
                    .get(name)
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0)
                    + add.unwrap_or(0);
                edge.attributes
                    .insert(name.into(), serde_json::json!(total));
            };
            tokens(edge, "gen_ai.usage.input_tokens", call.usage.input_tokens);
            tokens(edge, "gen_ai.usage.output_tokens", call.usage.output_tokens);
        }
        if let Some(agent) = self.agents.get_mut(key) {
            agent.last_seen_ns = agent.last_seen_ns.max(ts);
            agent.llm_calls += 1;
            agent.input_tokens += call.usage.input_tokens.unwrap_or(0);
            agent.output_tokens += call.usage.output_tokens.unwrap_or(0);
            let models = agent
                .aibom
                .providers
                .entry(call.provider.clone())
                .or_default();
            models.extend(call.request_model.iter().cloned());
            models.extend(call.response_model.iter().cloned());
            agent.aibom.apis.insert(call.api);
            for tool in &call.tools_offered {
                agent
                    .aibom
                    .tools_offered
                    .insert(tool.name.clone(), tool.description.clone());
            }
            if let Some(ua) = user_agent {
                agent.aibom.frameworks.extend(
                    agents::frameworks_in_user_agent(ua)
                        .iter()
                        .map(|s| s.to_string()),
                );
            }
            agent.tool_calls += call.tool_calls.len() as u64;
        }
        // Results flowing back close the calls they answer.
        for result in &call.tool_results {
            self.attribution.close_call(
                key,
                result.call_id.as_deref(),
                result.name.as_deref(),
                &result.content,
                result.is_error,
                ts,
            );
        }
        for tool_call in &call.tool_calls {
            let tool_node = self.graph.node(
                NodeKind::Tool,
                format!("tool:{key}:{}", tool_call.name),
                &tool_call.name,
                end_ts_ns,
            );
            self.graph.edge(
                &agent_node,
                &tool_node,
                EdgeKind::CallsTool,
                end_ts_ns,
                &observation.events,
            );
            let record = ToolCallRecord::new(
                key.to_string(),
                observation.actor.pid,
                tool_call,
                call.provider.clone(),
                call.request_model
                    .clone()
                    .or_else(|| call.response_model.clone()),
                end_ts_ns,
                tool_node,
            );
            let links = self.attribution.open_call(record);
            self.add_links(links);
        }
    }

    /// An MCP client's exchange: the server, its tools and the AI-BOM.
    fn apply_mcp_client(
        &mut self,
        key: &str,
        observation: &Observation,
        exchange: &McpExchange,
        transport: McpTransport,
        endpoint: Option<&str>,
    ) {
        let ts = observation.ts_ns;
        let endpoint = endpoint.unwrap_or("unknown").to_string();
        let agent_node = format!("agent:{key}");
        let server_node = actions::mcp_server_node(&endpoint);
        let transport_name = match transport {
            McpTransport::Stdio => "pipe",
            McpTransport::Http => "tcp",
        };
        let entry_name = {
            let agent = self.agents.get_mut(key);
            let Some(agent) = agent else { return };
            let entry = agent
                .aibom
                .mcp_servers
                .entry(endpoint.clone())
                .or_insert_with(|| agents::McpServerEntry {
                    name: endpoint.clone(),
                    version: None,
                    transport: transport_name.into(),
                    endpoint: Some(endpoint.clone()),
                    tools: Default::default(),
                });
            match &exchange.detail {
                McpDetail::Initialize(init) => {
                    if let Some(server) = &init.server {
                        if let Some(name) = &server.name {
                            entry.name = name.clone();
                        }
                        entry.version = server.version.clone().or(entry.version.take());
                    }
                }
                McpDetail::ToolsList(list) => {
                    for tool in &list.tools {
                        entry
                            .tools
                            .insert(tool.name.clone(), tool.description.clone());
                    }
                }
                _ => {}
            }
            (entry.name.clone(), entry.version.clone())
        };
        let node = self
            .graph
            .node(NodeKind::McpServer, server_node.clone(), &entry_name.0, ts);
        self.graph
            .set_attribute(&node, "name", serde_json::json!(entry_name.0));
        self.graph.set_attribute(
            &node,
            "network.transport",
            serde_json::json!(transport_name),
        );
        if let Some(version) = entry_name.1 {
            self.graph
                .set_attribute(&node, "version", serde_json::json!(version));
        }
        self.graph.edge(
            &agent_node,
            &node,
            EdgeKind::ConnectsMcp,
            ts,
            &observation.events,
        );
        if let McpDetail::ToolsList(list) = &exchange.detail {
            for tool in &list.tools {
                let tool_node = self.graph.node(
                    NodeKind::Tool,
                    format!("tool:{key}:{}", tool.name),
                    &tool.name,
                    ts,
                );
                self.graph
                    .set_attribute(&tool_node, "mcp.server", serde_json::json!(endpoint));
                if let Some(description) = &tool.description {
                    self.graph.set_attribute(
                        &tool_node,
                        "description",
                        serde_json::json!(description),
                    );
                }
                self.graph.edge(
                    &node,
                    &tool_node,
                    EdgeKind::Provides,
                    ts,
                    &observation.events,
                );
            }
        }
    }

    /// Non-LLM observations: graph edges from the owning agent, and tool attribution.
    fn apply_action(&mut self, observation: &Observation, processes: &ProcessTable) {
        let pid = observation.actor.pid;
        let Some(target) = actions::describe(observation, processes) else {
            return;
        };
        let lineage = processes.lineage(pid);
        let agent = self.agent_of(&lineage, observation.ts_ns);
        let action = Action {
            kind: target.kind,
            target: target.node_id.clone(),
            summary: target.summary.clone(),
            pid,
            ts_ns: observation.ts_ns,
            events: observation.events.clone(),
            lineage,
            agent: agent.clone(),
            detail: std::sync::Arc::new(target),
        };
        if let Some((name, arguments)) = &action.detail.mcp_served {
            // The server side of a call only says which process works for it.
            let links = self
                .attribution
                .server_handles(pid, name, arguments, observation.ts_ns);
            self.add_links(links);
            return;
        }
        // MCP calls already count on the agent → server edge (apply_mcp_client).
        if let (Some(agent), false) = (&agent, action.kind == "mcp_call") {
            self.add_action_edges(agent, &action);
        }
        let links = self.attribution.observe(action);
        self.add_links(links);
    }

    /// Edges from the agent (or the command that acted for it) to what an action touched.
    fn add_action_edges(&mut self, agent: &str, action: &Action) {
        let ts = action.ts_ns;
        let target = &action.detail;
        let agent_node = format!("agent:{agent}");
        let node = self
            .graph
            .node(target.node_kind, target.node_id.clone(), &target.label, ts);
        for (key, value) in &target.attributes {
            self.graph.set_attribute(&node, key, value.clone());
        }
        // A descendant's action hangs off the command that did it, not off the agent itself.
        let from = match &target.via_command {
            Some((id, label)) if self.agent_pids.key_at(action.pid, action.ts_ns).is_none() => {
                let command = self.graph.node(NodeKind::Command, id.clone(), label, ts);
                if command != node {
                    self.graph.edge(
                        &agent_node,
                        &command,
                        EdgeKind::Executes,
                        ts,
                        &action.events,
                    );
                }
                command
            }
            _ => agent_node.clone(),
        };
        if from != node {
            self.graph
                .edge(&from, &node, target.edge_kind, ts, &action.events);
        }
        for (id, label) in &target.more_nodes {
            let more = self.graph.node(target.node_kind, id.clone(), label, ts);
            for (key, value) in &target.attributes {
                self.graph.set_attribute(&more, key, value.clone());
            }
            self.graph
                .edge(&from, &more, target.edge_kind, ts, &action.events);
        }
        if let Some(source) = &target.retrieval_source {
            if let Some(agent) = self.agents.get_mut(agent) {
                agent.aibom.retrieval_sources.insert(source.clone());
            }
        }
    }

    /// The actions linked to tool calls since the last call (new links only, not evidence
    /// added to old ones); the pipeline hands them to detection after every observation.
    pub fn take_new_links(&mut self) -> Vec<attribution::NewLink> {
        std::mem::take(&mut self.new_links)
    }

    fn add_links(&mut self, links: Vec<attribution::NewLink>) {
        self.new_links
            .extend(links.iter().filter(|l| !l.update).cloned());
        for link in links {
            // Actions of an MCP server outside the agent's process tree join the agent's graph
            // once they are linked to one of its calls.
            if link.action.agent.is_none() && !link.update {
                self.add_action_edges(&link.agent, &link.action);
            }
            let ts = link.action.ts_ns;
            let targets = std::iter::once(link.action.target.clone()).chain(
                link.action
                    .detail
                    .more_nodes
                    .iter()
                    .map(|(id, _)| id.clone()),
            );
            for target in targets {
                self.link_edge(&link, &target, ts);
            }
        }
    }

    fn link_edge(&mut self, link: &attribution::NewLink, target: &str, ts: u64) {
        let edge = if link.update {
            self.graph
                .edge_mut(&link.tool_node, target, EdgeKind::ExecutedVia)
        } else {
            self.graph.edge(
                &link.tool_node,
                target,
                EdgeKind::ExecutedVia,
                ts,
                &link.action.events,
            )
        };
        let Some(edge) = edge else {
            return;
        };
        let mut kinds: Vec<serde_json::Value> = edge
            .attributes
            .get("evidence")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        for evidence in &link.evidence {
            let kind = serde_json::to_value(evidence).unwrap_or_default()["type"].clone();
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        kinds.sort_by_key(|k| k == "time_window");
        edge.attributes
            .insert("evidence".into(), serde_json::Value::Array(kinds));
    }
}

pub mod actions;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventBody, Header};
    use crate::reconstruct::http::{Completeness, HttpExchange, HttpRequest, HttpResponse};
    use crate::reconstruct::llm::{LlmApi, ToolCall, ToolResult, Usage};
    use crate::reconstruct::{Actor, EventRange};
    use serde_json::json;

    const AGENT: u32 = 100;
    const CHILD: u32 = 101;
    const STRANGER: u32 = 999;
    const SECOND: u64 = 1_000_000_000;

    fn processes() -> ProcessTable {
        let mut table = ProcessTable::default();
        let header = |pid| Header {
            ts_ns: 0,
            time_unix_ns: 0,
            pid,
            tid: pid,
            ppid: 1,
            uid: 0,
            gid: 0,
            cgroup_id: 1,
            comm: "python3".into(),
        };
        table.learn(AGENT, 1, "python3");
        table.update(&Event {
            header: header(AGENT),
            body: EventBody::Exec {
                filename: "/usr/bin/python3".into(),
                argv: vec!["python3".into(), "/app/agent.py".into()],
                argv_truncated: false,
                filename_truncated: false,
            },
        });
        table.update(&Event {
            header: header(AGENT),
            body: EventBody::Fork {
                child_pid: CHILD,
                clone_flags: 0,
            },
        });
        table.learn(STRANGER, 1, "cat");
        table
    }

    fn observation(pid: u32, ts_ns: u64, index: u64, kind: ObservationKind) -> Observation {
        Observation {
            ts_ns,
            time_unix_ns: ts_ns,
            actor: Actor {
                pid,
                ppid: 1,
                uid: 0,
                gid: 0,
                cgroup_id: 1,
                comm: "python3".into(),
            },
            events: vec![EventRange::single(index)],
            kind,
        }
    }

    fn llm(tool_calls: Vec<ToolCall>, tool_results: Vec<ToolResult>) -> ObservationKind {
        ObservationKind::Llm {
            call: Box::new(LlmCall {
                api: LlmApi::OpenAiChatCompletions,
                provider: "openai".into(),
                operation: "chat".into(),
                request_model: Some("gpt-4o-mini".into()),
                response_model: Some("gpt-4o-mini-2024-07-18".into()),
                response_id: None,
                system_prompt: Some("be helpful".into()),
                last_user_message: Some("summarise".into()),
                tool_results,
                tools_offered: vec![],
                tool_calls,
                output_text: None,
                usage: Usage {
                    input_tokens: Some(10),
                    output_tokens: Some(5),
                    ..Default::default()
                },
                finish_reasons: vec![],
                streamed: false,
                partial: false,
                error_type: None,
            }),
            host: Some("api.openai.com".into()),
            port: Some(443),
            user_agent: Some("OpenAI/Python 1.54.0".into()),
            end_ts_ns: 0,
        }
    }

    fn with_end(mut kind: ObservationKind, end: u64) -> ObservationKind {
        if let ObservationKind::Llm { end_ts_ns, .. } = &mut kind {
            *end_ts_ns = end;
        }
        kind
    }

    fn file(path: &str) -> ObservationKind {
        ObservationKind::FileOpen {
            path: path.into(),
            class: crate::reconstruct::file_access::classify(path),
            write: false,
        }
    }

    fn http_get(url_path: &str) -> ObservationKind {
        ObservationKind::Http {
            exchange: Box::new(HttpExchange {
                request: HttpRequest {
                    method: "GET".into(),
                    target: url_path.into(),
                    headers: vec![],
                    body: vec![],
                    body_len: 0,
                    completeness: Completeness::Complete,
                    over_budget: false,
                    ts_ns: 0,
                },
                response: Some(HttpResponse {
                    status: 200,
                    reason: "OK".into(),
                    headers: vec![],
                    body: vec![],
                    body_len: 0,
                    stream: None,
                    completeness: Completeness::Complete,
                    over_budget: false,
                    ts_ns: 0,
                    end_ts_ns: 0,
                }),
                host: Some("127.0.0.1".into()),
                port: Some(8080),
                tls: false,
            }),
            role: crate::reconstruct::Role::Client,
        }
    }

    fn call(id: &str, name: &str, arguments: serde_json::Value) -> ToolCall {
        ToolCall {
            id: Some(id.into()),
            name: name.into(),
            arguments,
        }
    }

    #[test]
    fn tool_calls_link_to_the_actions_that_carried_them_out() {
        let table = processes();
        let mut model = Model::new(ModelOptions::default());
        let mut identity = HostOnlyIdentity;
        let mut apply = |model: &mut Model, o: Observation| model.apply(&o, &table, &mut identity);

        apply(
            &mut model,
            observation(
                AGENT,
                10 * SECOND,
                1,
                with_end(
                    llm(
                        vec![
                            call("c1", "read_file", json!({"path": "/srv/reports/q3.txt"})),
                            call(
                                "c2",
                                "http_get",
                                json!({"url": "http://127.0.0.1:8080/api/accounts/42/status"}),
                            ),
                        ],
                        vec![],
                    ),
                    11 * SECOND,
                ),
            ),
        );
        // Before the model answered: not caused by it.
        apply(
            &mut model,
            observation(CHILD, 10 * SECOND + 5, 2, file("/srv/reports/q3.txt")),
        );
        apply(
            &mut model,
            observation(CHILD, 12 * SECOND, 3, file("/srv/reports/q3.txt")),
        );
        apply(
            &mut model,
            observation(STRANGER, 12 * SECOND, 4, file("/srv/reports/q3.txt")),
        );
        apply(
            &mut model,
            observation(AGENT, 13 * SECOND, 5, http_get("/api/accounts/42/status")),
        );
        apply(
            &mut model,
            observation(
                AGENT,
                14 * SECOND,
                6,
                with_end(
                    llm(
                        vec![],
                        vec![
                            ToolResult {
                                call_id: Some("c1".into()),
                                name: None,
                                content: "revenue up".into(),
                                is_error: false,
                            },
                            ToolResult {
                                call_id: Some("c2".into()),
                                name: None,
                                content: "{\"status\":\"active\"}".into(),
                                is_error: false,
                            },
                        ],
                    ),
                    15 * SECOND,
                ),
            ),
        );
        // After the results went back: the calls are closed.
        apply(
            &mut model,
            observation(CHILD, 16 * SECOND, 7, file("/srv/reports/q3.txt")),
        );

        let calls: Vec<_> = model.tool_calls().collect();
        assert_eq!(calls.len(), 2);
        let read = calls.iter().find(|c| c.name == "read_file").unwrap();
        assert_eq!(read.links.len(), 1, "{:#?}", read.links);
        let link = &read.links[0];
        assert_eq!((link.action.pid, link.action.kind), (CHILD, "file"));
        assert_eq!(link.action.events, vec![EventRange::single(3)]);
        assert!(link.evidence.contains(&Evidence::ArgumentMatch {
            argument: "path".into(),
            value: "/srv/reports/q3.txt".into()
        }));
        assert!(link
            .evidence
            .contains(&Evidence::ProcessLineage { agent_pid: AGENT }));
        assert_eq!(read.result.as_ref().unwrap().content, "revenue up");
        assert_eq!(
            read.result_evidence,
            Some(Evidence::ToolCallId { id: "c1".into() })
        );
        assert_eq!(read.closed_ns, Some(14 * SECOND));

        let get = calls.iter().find(|c| c.name == "http_get").unwrap();
        assert_eq!(get.links.len(), 1);
        assert_eq!(
            get.links[0].action.target,
            "api:GET 127.0.0.1/api/accounts/{id}/status"
        );

        let snapshot = model.snapshot(None);
        assert_eq!(snapshot.agents.len(), 1);
        let agent = &snapshot.agents[0];
        assert_eq!(agent.key, "host:python agent.py");
        assert_eq!(agent.name, "agent.py");
        assert_eq!(
            (agent.llm_calls, agent.tool_calls, agent.input_tokens),
            (2, 2, 20)
        );
        assert!(agent.aibom.frameworks.contains("openai-python"));
        assert!(agent.aibom.providers["openai"].contains("gpt-4o-mini"));
        let graph = model.graph();
        let agent_node = format!("agent:{}", agent.key);
        let tool_node = format!("tool:{}:read_file", agent.key);
        assert_eq!(
            graph
                .get_edge(&agent_node, &tool_node, EdgeKind::CallsTool)
                .unwrap()
                .count,
            1
        );
        let executed = graph
            .get_edge(
                &tool_node,
                "data:file:/srv/reports/q3.txt",
                EdgeKind::ExecutedVia,
            )
            .unwrap();
        assert_eq!(executed.count, 1);
        assert_eq!(
            executed.attributes["evidence"],
            json!(["argument_match", "process_lineage", "time_window"])
        );
        assert!(graph
            .get_edge(
                &agent_node,
                "model:openai/gpt-4o-mini-2024-07-18",
                EdgeKind::InvokesModel
            )
            .is_some_and(
                |e| e.count == 2 && e.attributes["gen_ai.usage.input_tokens"] == json!(20)
            ));
        assert!(graph
            .get_edge(&agent_node, "identity:user:host:0", EdgeKind::RunsAs)
            .is_some());
        // The stranger's open of the same file is not the agent's.
        assert!(graph.nodes().all(|n| n.id != "command:cat"));
    }

    #[test]
    fn a_program_seeded_from_proc_and_execd_later_is_one_agent() {
        // The collector's table at start: /proc/PID/exe is the resolved interpreter.
        const SEEDED: u32 = 200;
        const EXECED: u32 = 300;
        let mut table = ProcessTable::default();
        table.seed(&[crate::procfs::ProcEntry {
            pid: SEEDED,
            ppid: 1,
            uid: 0,
            comm: "python3".into(),
            exe: Some("/usr/bin/python3.11".into()),
            argv: vec!["python3".into(), "/srv/app/agent.py".into()],
        }]);
        // The same program started again while collecting, through the python3 link and with
        // the script named relatively.
        table.update(&Event {
            header: Header {
                ts_ns: SECOND,
                time_unix_ns: SECOND,
                pid: EXECED,
                tid: EXECED,
                ppid: 1,
                uid: 0,
                gid: 0,
                cgroup_id: 1,
                comm: "python3".into(),
            },
            body: EventBody::Exec {
                filename: "/usr/bin/python3".into(),
                argv: vec!["python3".into(), "agent.py".into()],
                argv_truncated: false,
                filename_truncated: false,
            },
        });
        let mut model = Model::new(ModelOptions::default());
        let mut identity = HostOnlyIdentity;
        for (index, pid) in [SEEDED, EXECED].into_iter().enumerate() {
            let ts = (index as u64 + 2) * SECOND;
            model.apply(
                &observation(pid, ts, index as u64, with_end(llm(vec![], vec![]), ts)),
                &table,
                &mut identity,
            );
        }
        let agents: Vec<&Agent> = model.agents().collect();
        assert_eq!(agents.len(), 1, "{agents:#?}");
        assert_eq!(agents[0].key, "host:python agent.py");
        assert_eq!(
            agents[0].pids.iter().copied().collect::<Vec<_>>(),
            [SEEDED, EXECED]
        );
        assert_eq!(agents[0].llm_calls, 2);
    }

    #[test]
    fn a_reused_pid_is_not_the_agent_that_exited() {
        let table = processes();
        let mut model = Model::new(ModelOptions::default());
        let mut identity = HostOnlyIdentity;
        model.apply(
            &observation(
                AGENT,
                SECOND,
                1,
                with_end(
                    llm(
                        vec![call(
                            "a",
                            "read_file",
                            json!({"path": "/srv/reports/q3.txt"}),
                        )],
                        vec![],
                    ),
                    SECOND,
                ),
            ),
            &table,
            &mut identity,
        );
        model.apply(
            &observation(
                AGENT,
                2 * SECOND,
                2,
                ObservationKind::Exit { exit_code: Some(0) },
            ),
            &table,
            &mut identity,
        );
        // Another program got the same pid and opens the file the call named.
        model.apply(
            &observation(AGENT, 3 * SECOND, 3, file("/srv/reports/q3.txt")),
            &table,
            &mut identity,
        );
        assert!(model.tool_calls().all(|c| c.links.is_empty()));
        assert!(model
            .graph()
            .get_node("data:file:/srv/reports/q3.txt")
            .is_none());
        assert_eq!(model.agents().count(), 1, "the agent keeps its history");
    }

    #[test]
    fn lineage_alone_links_only_when_one_call_is_open() {
        let table = processes();
        let mut model = Model::new(ModelOptions::default());
        let mut identity = HostOnlyIdentity;
        model.apply(
            &observation(
                AGENT,
                SECOND,
                1,
                with_end(
                    llm(
                        vec![
                            call("a", "summarise", json!({"style": "brief"})),
                            call("b", "translate", json!({"lang": "fr"})),
                        ],
                        vec![],
                    ),
                    SECOND,
                ),
            ),
            &table,
            &mut identity,
        );
        model.apply(
            &observation(CHILD, 2 * SECOND, 2, file("/srv/unrelated.txt")),
            &table,
            &mut identity,
        );
        assert!(model.tool_calls().all(|c| c.links.is_empty()));

        let mut model = Model::new(ModelOptions::default());
        model.apply(
            &observation(
                AGENT,
                SECOND,
                1,
                with_end(
                    llm(
                        vec![call("a", "summarise", json!({"style": "brief"}))],
                        vec![],
                    ),
                    SECOND,
                ),
            ),
            &table,
            &mut identity,
        );
        model.apply(
            &observation(CHILD, 2 * SECOND, 2, file("/srv/unrelated.txt")),
            &table,
            &mut identity,
        );
        let only = model.tool_calls().next().unwrap();
        assert_eq!(only.links.len(), 1);
        assert_eq!(
            only.links[0].evidence,
            vec![
                Evidence::ProcessLineage { agent_pid: AGENT },
                Evidence::TimeWindow
            ]
        );
    }

    #[test]
    fn actions_seen_before_the_call_that_caused_them_are_linked_when_it_arrives() {
        // A response that ends at connection close is reported after the actions it caused.
        let table = processes();
        let mut model = Model::new(ModelOptions::default());
        let mut identity = HostOnlyIdentity;
        model.apply(
            &observation(AGENT, SECOND, 1, with_end(llm(vec![], vec![]), SECOND)),
            &table,
            &mut identity,
        );
        model.apply(
            &observation(CHILD, 3 * SECOND, 2, file("/srv/late.txt")),
            &table,
            &mut identity,
        );
        model.apply(
            &observation(
                AGENT,
                2 * SECOND,
                3,
                with_end(
                    llm(
                        vec![call("x", "read_file", json!({"path": "/srv/late.txt"}))],
                        vec![],
                    ),
                    2 * SECOND,
                ),
            ),
            &table,
            &mut identity,
        );
        let call = model.tool_calls().next().unwrap();
        assert_eq!(call.links.len(), 1);
        assert_eq!(call.links[0].action.ts_ns, 3 * SECOND);
    }
}
