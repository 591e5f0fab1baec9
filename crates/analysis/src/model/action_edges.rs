//! Actions (file opens, execs, network, database and MCP-server work) into the graph, and
//! the links attribution makes between them and the tool calls that caused them.

use crate::process_table::ProcessTable;
use crate::reconstruct::Observation;

use super::graph::{EdgeKind, NodeKind};
use super::{actions, attribution, Action, Model};

impl Model {
    /// Non-LLM observations: graph edges from the owning agent, and tool attribution.
    pub(super) fn apply_action(&mut self, observation: &Observation, processes: &ProcessTable) {
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
    pub(super) fn add_action_edges(&mut self, agent: &str, action: &Action) {
        let ts = action.ts_ns;
        self.note_activity(agent, ts);
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
        let protocol = target.protocol.map(|p| p.as_str());
        if from != node {
            if let (Some(edge), Some(protocol)) = (
                self.graph
                    .edge(&from, &node, target.edge_kind, ts, &action.events),
                protocol,
            ) {
                edge.note_protocol(protocol);
            }
        }
        for (id, label) in &target.more_nodes {
            let more = self.graph.node(target.node_kind, id.clone(), label, ts);
            for (key, value) in &target.attributes {
                self.graph.set_attribute(&more, key, value.clone());
            }
            if let (Some(edge), Some(protocol)) = (
                self.graph
                    .edge(&from, &more, target.edge_kind, ts, &action.events),
                protocol,
            ) {
                edge.note_protocol(protocol);
            }
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

    pub(super) fn add_links(&mut self, links: Vec<attribution::NewLink>) {
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

    pub(super) fn link_edge(&mut self, link: &attribution::NewLink, target: &str, ts: u64) {
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
