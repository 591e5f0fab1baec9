//! The typed execution graph: agents, tools, APIs, data, identities, models and MCP servers,
//! joined by counted, timestamped edges that point back at the events behind them.
//!
//! The graph is bounded. When a limit is reached, the least recently seen tenth of the edges
//! (or of the nodes other than agents, with their edges) is evicted in one pass (a tenth of
//! what the graph holds when the memory budget asks) and counted in [`Limits`]: on a
//! long-running node recent behaviour matters more than the oldest, and evicting in batches
//! keeps the cost amortised instead of scanning on every insert. Under memory pressure the
//! model sheds whole agents first (`model::memory_pressure`): their nodes go with what only
//! they reached ([`Graph::remove_agents`]), so the graph's own eviction is the fallback.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::memory_budget::tombstone_sweep::TombstoneSweep;
use crate::memory_budget::{MemoryBudget, Pressure};
use crate::reconstruct::EventRange;

/// Event references kept per edge (the most recent ones).
pub const EVENT_REFS_PER_EDGE: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Agent,
    Model,
    Tool,
    McpServer,
    Api,
    Data,
    Identity,
    /// An executable run as a tool or by one (`psql`, `/bin/sh`).
    Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// agent → model
    InvokesModel,
    /// agent → tool: the model asked the agent to run it.
    CallsTool,
    /// agent → MCP server
    ConnectsMcp,
    /// MCP server → tool
    Provides,
    /// tool → what carried it out (MCP server, command, API, data).
    ExecutedVia,
    /// agent or command → API
    CallsApi,
    /// agent or command → data
    Accesses,
    /// agent or command → command
    Executes,
    /// agent → identity
    RunsAs,
}

#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub id: String,
    pub kind: NodeKind,
    pub label: String,
    pub attributes: BTreeMap<String, serde_json::Value>,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
    pub count: u64,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    /// The most recent events behind this edge (at most [`EVENT_REFS_PER_EDGE`]).
    pub events: Vec<EventRange>,
    pub attributes: BTreeMap<String, serde_json::Value>,
}

impl Edge {
    /// Notes the wire protocol of one more call behind this edge: the `protocol` attribute
    /// lists each protocol seen, in first-seen order (ALPN ids: `http/1.1`, `h2`, `h2c`, and
    /// `websocket`), so an agent that moved from HTTP/1.1 to HTTP/2 shows both.
    pub fn note_protocol(&mut self, protocol: &str) {
        let seen = self
            .attributes
            .entry("protocol".into())
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let Some(list) = seen.as_array_mut() {
            if !list.iter().any(|p| p == protocol) {
                list.push(serde_json::json!(protocol));
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub max_nodes: usize,
    pub max_edges: usize,
    pub evicted_nodes: u64,
    pub evicted_edges: u64,
    /// Evictions made because the memory budget was reached (also counted above): the graph
    /// lost older parts and is incomplete.
    pub budget_evictions: u64,
}

#[derive(Debug, Clone)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    edges: HashMap<(String, String, EdgeKind), Edge>,
    limits: Limits,
    budget: Option<MemoryBudget>,
    /// Bytes nodes and edges are charged to `budget`.
    charged: usize,
    /// Clear the tombstones evictions leave, so a graph kept at its limits does not double
    /// its tables (see [`TombstoneSweep`]).
    node_sweep: TombstoneSweep,
    edge_sweep: TombstoneSweep,
}

/// Upper bound of a node's heap: its strings (the id twice, as key and field), map slots and
/// a few attributes.
fn node_bytes(node: &Node) -> usize {
    512 + 2 * node.id.len() + node.label.len()
}

fn edge_bytes(edge: &Edge) -> usize {
    512 + 2 * (edge.from.len() + edge.to.len())
        + EVENT_REFS_PER_EDGE * std::mem::size_of::<EventRange>()
}

impl Graph {
    pub fn new(max_nodes: usize, max_edges: usize) -> Self {
        Self {
            nodes: HashMap::new(),
            edges: HashMap::new(),
            limits: Limits {
                max_nodes: max_nodes.max(10),
                max_edges: max_edges.max(10),
                evicted_nodes: 0,
                evicted_edges: 0,
                budget_evictions: 0,
            },
            budget: None,
            charged: 0,
            node_sweep: TombstoneSweep::default(),
            edge_sweep: TombstoneSweep::default(),
        }
    }

    /// After evictions or removals: see [`TombstoneSweep`].
    fn sweep_tombstones(&mut self) {
        self.node_sweep.after_removals(&mut self.nodes);
        self.edge_sweep.after_removals(&mut self.edges);
    }

    /// Nodes and edges are charged to `budget` from now on.
    pub fn set_budget(&mut self, budget: &MemoryBudget) {
        self.budget = Some(budget.clone());
    }

    /// Charges `bytes`, evicting the oldest nodes (then edges) while they do not fit.
    fn charge(&mut self, bytes: usize) {
        let Some(budget) = self.budget.clone() else {
            return;
        };
        let mut tries = 0;
        while !budget.try_charge(bytes) {
            if tries >= 3 || (self.nodes.is_empty() && self.edges.is_empty()) {
                budget.force_charge(bytes);
                break;
            }
            tries += 1;
            self.limits.budget_evictions += 1;
            budget.note(Pressure::GraphEvicted);
            if self.edges.len() > self.nodes.len() {
                self.evict_edges();
            } else {
                self.evict_nodes();
            }
        }
        self.charged += bytes;
    }

    fn release(&mut self, bytes: usize) {
        if let Some(budget) = &self.budget {
            budget.release(bytes);
            self.charged -= bytes;
        }
    }

    /// Adds a node or refreshes its last-seen time; returns its id.
    pub fn node(&mut self, kind: NodeKind, id: String, label: &str, ts_ns: u64) -> String {
        if let Some(node) = self.nodes.get_mut(&id) {
            node.first_seen_ns = node.first_seen_ns.min(ts_ns);
            node.last_seen_ns = node.last_seen_ns.max(ts_ns);
            return id;
        }
        if self.nodes.len() >= self.limits.max_nodes {
            self.evict_nodes();
        }
        let node = Node {
            id: id.clone(),
            kind,
            label: label.to_string(),
            attributes: BTreeMap::new(),
            first_seen_ns: ts_ns,
            last_seen_ns: ts_ns,
        };
        self.charge(node_bytes(&node));
        self.nodes.insert(id.clone(), node);
        id
    }

    pub fn set_attribute(&mut self, id: &str, key: &str, value: serde_json::Value) {
        if let Some(node) = self.nodes.get_mut(id) {
            // Most calls repeat what the node already has: no new key is allocated for those.
            match node.attributes.get_mut(key) {
                Some(held) => *held = value,
                None => {
                    node.attributes.insert(key.to_string(), value);
                }
            }
        }
    }

    /// Counts one more occurrence of `from → to`; both nodes must exist.
    pub fn edge(
        &mut self,
        from: &str,
        to: &str,
        kind: EdgeKind,
        ts_ns: u64,
        events: &[EventRange],
    ) -> Option<&mut Edge> {
        if !self.nodes.contains_key(from) || !self.nodes.contains_key(to) {
            return None;
        }
        let key = (from.to_string(), to.to_string(), kind);
        let edge = if self.edges.contains_key(&key) {
            self.edges.get_mut(&key).expect("present")
        } else {
            if self.edges.len() >= self.limits.max_edges {
                self.evict_edges();
            }
            let edge = Edge {
                from: from.to_string(),
                to: to.to_string(),
                kind,
                count: 0,
                first_seen_ns: ts_ns,
                last_seen_ns: ts_ns,
                events: Vec::new(),
                attributes: BTreeMap::new(),
            };
            self.charge(edge_bytes(&edge));
            // Making room may have evicted an end of this edge.
            if !self.nodes.contains_key(from) || !self.nodes.contains_key(to) {
                self.release(edge_bytes(&edge));
                return None;
            }
            self.edges.entry(key).or_insert(edge)
        };
        edge.count += 1;
        edge.first_seen_ns = edge.first_seen_ns.min(ts_ns);
        edge.last_seen_ns = edge.last_seen_ns.max(ts_ns);
        for range in events {
            if edge.events.last() != Some(range) {
                edge.events.push(*range);
            }
        }
        if edge.events.len() > EVENT_REFS_PER_EDGE {
            let excess = edge.events.len() - EVENT_REFS_PER_EDGE;
            edge.events.drain(..excess);
        }
        Some(edge)
    }

    /// An existing edge, to annotate it without counting an occurrence.
    pub fn edge_mut(&mut self, from: &str, to: &str, kind: EdgeKind) -> Option<&mut Edge> {
        self.edges
            .get_mut(&(from.to_string(), to.to_string(), kind))
    }

    pub fn get_node(&self, id: &str) -> Option<&Node> {
        self.nodes.get(id)
    }

    pub fn get_edge(&self, from: &str, to: &str, kind: EdgeKind) -> Option<&Edge> {
        self.edges.get(&(from.to_string(), to.to_string(), kind))
    }

    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    pub fn edges(&self) -> impl Iterator<Item = &Edge> {
        self.edges.values()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// What nodes and edges are charged to the budget now.
    pub fn charged_bytes(&self) -> usize {
        self.charged
    }

    fn evict_edges(&mut self) {
        let mut by_age: Vec<_> = self
            .edges
            .iter()
            .map(|(key, edge)| (edge.last_seen_ns, key.clone()))
            .collect();
        by_age.sort_unstable();
        // A tenth of what is there: at the count limit that is a tenth of the limit; when the
        // budget asks, a tenth of a smaller graph (not all of it).
        let batch = (self.edges.len().min(self.limits.max_edges) / 10).max(1);
        for (_, key) in by_age.into_iter().take(batch) {
            if let Some(edge) = self.edges.remove(&key) {
                self.release(edge_bytes(&edge));
            }
            self.limits.evicted_edges += 1;
        }
        self.sweep_tombstones();
    }

    fn evict_nodes(&mut self) {
        // Agent nodes are the model's to shed (with the agent: `model::memory_pressure`),
        // never the graph's: the console lists them.
        let mut by_age: Vec<_> = self
            .nodes
            .values()
            .filter(|node| node.kind != NodeKind::Agent)
            .map(|node| (node.last_seen_ns, node.id.clone()))
            .collect();
        by_age.sort_unstable();
        // A tenth of the nodes that may go, oldest first. Not a tenth of all nodes: where
        // agents are most of them (thousands of agents on a node), that took every other node
        // at once, the newest agents' tools and data too, and left agents without edges.
        let batch = (by_age.len().min(self.limits.max_nodes) / 10).max(1);
        let evicted: HashSet<String> = by_age.into_iter().take(batch).map(|(_, id)| id).collect();
        let mut freed = 0;
        for id in &evicted {
            if let Some(node) = self.nodes.remove(id) {
                freed += node_bytes(&node);
            }
        }
        self.limits.evicted_nodes += evicted.len() as u64;
        // One pass over the edges for the whole batch, not one per evicted node.
        let before = self.edges.len();
        self.edges.retain(|(from, to, _), edge| {
            let keep = !evicted.contains(from) && !evicted.contains(to);
            if !keep {
                freed += edge_bytes(edge);
            }
            keep
        });
        self.limits.evicted_edges += (before - self.edges.len()) as u64;
        self.release(freed);
        self.sweep_tombstones();
    }

    /// Removes the agent nodes `agents` (the model shed those agents to make room) with what
    /// only they reached: every other node that no agent left in the graph reaches any more,
    /// following edges forward (its tools and what carried them out, the APIs and data only it
    /// touched, commands only it ran), and the edges of all of them. Nodes an agent that stays
    /// still reaches (a model, an API or a table several agents use) stay. Counted as
    /// evictions (the graph is then incomplete). One pass over the graph for the whole batch.
    pub fn remove_agents(&mut self, agents: &HashSet<String>) {
        let mut freed = 0;
        let mut removed = 0u64;
        for id in agents {
            if let Some(node) = self.nodes.remove(id) {
                freed += node_bytes(&node);
                removed += 1;
            }
        }
        let unreached = self.unreached_from_agents();
        for id in &unreached {
            if let Some(node) = self.nodes.remove(id) {
                freed += node_bytes(&node);
                removed += 1;
            }
        }
        self.limits.evicted_nodes += removed;
        let before = self.edges.len();
        self.edges.retain(|(from, to, _), edge| {
            let keep = !(agents.contains(from)
                || agents.contains(to)
                || unreached.contains(from)
                || unreached.contains(to));
            if !keep {
                freed += edge_bytes(edge);
            }
            keep
        });
        self.limits.evicted_edges += (before - self.edges.len()) as u64;
        self.release(freed);
        self.sweep_tombstones();
    }

    /// The nodes no agent node reaches by following edges forward (agent → tool → what
    /// carried it out, agent → command → data): every node an agent's chain holds is reached.
    fn unreached_from_agents(&self) -> HashSet<String> {
        let mut forward: HashMap<&str, Vec<&str>> = HashMap::new();
        for (from, to, _) in self.edges.keys() {
            forward.entry(from.as_str()).or_default().push(to.as_str());
        }
        let mut reached: HashSet<&str> = HashSet::with_capacity(self.nodes.len());
        let mut next: Vec<&str> = self
            .nodes
            .values()
            .filter(|node| node.kind == NodeKind::Agent)
            .map(|node| node.id.as_str())
            .collect();
        while let Some(id) = next.pop() {
            if reached.insert(id) {
                if let Some(targets) = forward.get(id) {
                    next.extend(targets.iter().copied().filter(|to| !reached.contains(to)));
                }
            }
        }
        self.nodes
            .keys()
            .filter(|id| !reached.contains(id.as_str()))
            .cloned()
            .collect()
    }

    /// Nodes and edges sorted by id, for stable output.
    pub fn snapshot(&self) -> GraphSnapshot {
        let mut nodes: Vec<Node> = self.nodes.values().cloned().collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        let mut edges: Vec<Edge> = self.edges.values().cloned().collect();
        edges.sort_by(|a, b| (&a.from, &a.to, a.kind).cmp(&(&b.from, &b.to, b.kind)));
        GraphSnapshot {
            nodes,
            edges,
            limits: self.limits,
            incomplete: self.limits.evicted_nodes + self.limits.evicted_edges > 0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct GraphSnapshot {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    pub limits: Limits,
    /// Older nodes or edges were evicted (by the count limits or the memory budget).
    pub incomplete: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_count_and_keep_recent_event_refs() {
        let mut graph = Graph::new(100, 100);
        let a = graph.node(NodeKind::Agent, "agent:a".into(), "a", 5);
        let m = graph.node(NodeKind::Model, "model:x".into(), "x", 5);
        for i in 0..20 {
            graph.edge(
                &a,
                &m,
                EdgeKind::InvokesModel,
                10 + i,
                &[EventRange::single(i)],
            );
        }
        let edge = graph.get_edge(&a, &m, EdgeKind::InvokesModel).unwrap();
        assert_eq!(
            (edge.count, edge.first_seen_ns, edge.last_seen_ns),
            (20, 10, 29)
        );
        assert_eq!(edge.events.len(), EVENT_REFS_PER_EDGE);
        assert_eq!(edge.events.last().unwrap().last, 19);
        assert!(graph
            .edge(&a, "missing", EdgeKind::Accesses, 1, &[])
            .is_none());
    }

    /// A graph kept at its limits by evicting, for far longer than its limits: its tables
    /// keep their room (without the sweep, the node table doubled here).
    #[test]
    fn a_graph_churning_at_its_limits_keeps_its_tables_size() {
        let mut graph = Graph::new(1_024, 1_024);
        let agent = graph.node(NodeKind::Agent, "agent:a".into(), "a", 0);
        let mut room = None;
        for i in 0..40 * 1_024u64 {
            let id = graph.node(NodeKind::Data, format!("data:file:/f{i}"), "f", i);
            graph.edge(&agent, &id, EdgeKind::Accesses, i, &[]);
            // Just short of the limits, before any eviction: the tables as a clean growth
            // left them.
            if i == 1_000 {
                room = Some((graph.nodes.capacity(), graph.edges.capacity()));
            }
        }
        let (nodes, edges) = room.unwrap();
        assert!(
            graph.nodes.capacity() <= nodes,
            "{nodes} -> {}",
            graph.nodes.capacity()
        );
        assert!(
            graph.edges.capacity() <= edges,
            "{edges} -> {}",
            graph.edges.capacity()
        );
    }

    #[test]
    fn bounds_evict_the_least_recently_seen_and_count_it() {
        let mut graph = Graph::new(50, 30);
        let agent = graph.node(NodeKind::Agent, "agent:a".into(), "a", 0);
        for i in 0..200u64 {
            let id = graph.node(NodeKind::Data, format!("data:file:/f{i}"), "f", i);
            graph.edge(&agent, &id, EdgeKind::Accesses, i, &[]);
        }
        let snapshot = graph.snapshot();
        assert!(snapshot.nodes.len() <= 50);
        assert!(snapshot.edges.len() <= 30);
        assert!(snapshot.limits.evicted_nodes > 0 && snapshot.limits.evicted_edges > 0);
        // The agent survives and the newest file is present.
        assert!(graph.get_node("agent:a").is_some());
        assert!(graph.get_node("data:file:/f199").is_some());
        assert!(graph.get_node("data:file:/f0").is_none());
        assert!(graph
            .get_edge("agent:a", "data:file:/f199", EdgeKind::Accesses)
            .is_some());
    }

    #[test]
    fn many_agents_keep_the_newest_tools_and_data_when_nodes_are_evicted() {
        let mut graph = Graph::new(105, 1_000);
        let agents: Vec<String> = (0..100u64)
            .map(|i| graph.node(NodeKind::Agent, format!("agent:a{i}"), "a", i))
            .collect();
        for i in 0..200u64 {
            let agent = &agents[(i % 100) as usize];
            let id = graph.node(NodeKind::Data, format!("data:file:/f{i}"), "f", 100 + i);
            graph.edge(agent, &id, EdgeKind::Accesses, 100 + i, &[]);
            if i > 0 {
                // What the agent before touched is still there: an eviction takes the oldest
                // few, not every node that is not an agent.
                let before = &agents[((i - 1) % 100) as usize];
                let previous = format!("data:file:/f{}", i - 1);
                assert!(
                    graph
                        .get_edge(before, &previous, EdgeKind::Accesses)
                        .is_some(),
                    "{previous} evicted right after it was touched"
                );
            }
        }
        let snapshot = graph.snapshot();
        assert!(snapshot.nodes.len() <= 105);
        assert_eq!(
            snapshot
                .nodes
                .iter()
                .filter(|n| n.kind == NodeKind::Agent)
                .count(),
            100
        );
        assert!(snapshot.edges.len() >= 4, "{} edges", snapshot.edges.len());
        assert!(graph.get_node("data:file:/f0").is_none());
    }
}
