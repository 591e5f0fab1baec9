//! What "new" means for a graph edge: new relative to the agent's baseline, never relative to
//! the start of a file (in a replay every edge appeared a moment ago, so that marked all of
//! them).
//!
//! Detection judges every observation against the agent's approved baseline (`--baseline
//! DIR`) or, once its learning period is over, the learned one, and reports what the baseline
//! does not hold as a baseline-deviation finding with the observation's raw events and the
//! category of what was new. An edge is new when it rests on one of those events and leads to
//! a node of that category: one LLM call makes the model edge and the tool-call edges, and a
//! new tool must not mark the model. New egress (an address, a port) marks no edge: the
//! endpoint or model edge of the same call says it in its own category. Marked once, an edge stays new (its own event list keeps only its latest
//! occurrences). Without a baseline the graph says so and marks nothing as new; live, the
//! edges of the last few seconds are marked `recent` instead (`new_edge_seconds`).

use std::collections::HashSet;

use agentscope_analysis::baseline::{BaselineStatus, Category};
use agentscope_analysis::detect::{Detector, FindingDetail};
use agentscope_analysis::model::graph::Edge;
use agentscope_analysis::model::{EdgeKind, NodeKind};
use agentscope_reconstruct::EventRange;

use super::timeline_pane::overlaps;

/// What the agent's edges are compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoveltyBasis {
    /// No baseline judges the agent (none approved, the learned one still learning).
    #[default]
    None,
    /// The approved baseline loaded with `--baseline DIR`.
    Approved,
    /// The baseline learned in this run, its learning period over.
    Learned,
}

/// How an edge row is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeMark {
    /// The baseline does not hold it.
    New,
    /// No baseline, live: it appeared in the last `new_edge_seconds`.
    Recent,
    Plain,
}

/// The current agent's baseline comparison, refreshed with the graph.
#[derive(Debug, Default)]
pub struct EdgeNovelty {
    basis: NoveltyBasis,
    /// Raw events of the agent's baseline-deviation findings, with the kind of node each
    /// deviation is about.
    deviations: Vec<(NodeKind, Vec<EventRange>)>,
    /// Edges (from, to, kind) found new so far.
    marked: HashSet<(String, String, EdgeKind)>,
    live: bool,
}

impl EdgeNovelty {
    /// Forgets every mark (another agent, or a replay rebuilt from its start).
    pub fn clear(&mut self) {
        self.deviations.clear();
        self.marked.clear();
        self.basis = NoveltyBasis::None;
    }

    /// Reads `agent`'s baseline and deviations from detection at event time `now_ns`.
    pub fn update(&mut self, detector: &Detector, agent: Option<&str>, now_ns: u64, live: bool) {
        self.live = live;
        let Some(agent) = agent else {
            self.clear();
            return;
        };
        let judge = detector.judge();
        self.basis = if judge.approved(agent).is_some() {
            NoveltyBasis::Approved
        } else if matches!(
            judge.learner().status_at(agent, now_ns),
            Some(BaselineStatus::Complete | BaselineStatus::Partial)
        ) {
            NoveltyBasis::Learned
        } else {
            NoveltyBasis::None
        };
        self.deviations = detector
            .findings()
            .iter()
            .filter(|f| f.agent == agent)
            .filter_map(|f| match &f.detail {
                FindingDetail::BaselineDeviation { category, .. } => {
                    Some((node_kind_of(*category)?, f.events.clone()))
                }
                _ => None,
            })
            .collect();
    }

    /// Whether `edge`, leading to a node of `target`'s kind, is new relative to the baseline
    /// (and remembers it).
    pub fn mark(&mut self, edge: &Edge, target: NodeKind) -> bool {
        let key = (edge.from.clone(), edge.to.clone(), edge.kind);
        if self.marked.contains(&key) {
            return true;
        }
        let deviated = self
            .deviations
            .iter()
            .any(|(kind, events)| *kind == target && overlaps(events, &edge.events));
        if self.basis != NoveltyBasis::None && deviated {
            self.marked.insert(key);
            return true;
        }
        false
    }

    pub fn basis(&self) -> NoveltyBasis {
        self.basis
    }

    /// The mark of an edge that [`Self::mark`] found new or not, first seen at `first_seen_ns`.
    pub fn edge_mark(
        &self,
        new: bool,
        first_seen_ns: u64,
        now_ns: u64,
        recent_ns: u64,
    ) -> EdgeMark {
        if new {
            EdgeMark::New
        } else if self.basis == NoveltyBasis::None
            && self.live
            && first_seen_ns <= now_ns
            && now_ns - first_seen_ns <= recent_ns
        {
            EdgeMark::Recent
        } else {
            EdgeMark::Plain
        }
    }

    /// For the graph's border: what "new" is relative to.
    pub fn describe(&self) -> &'static str {
        match (self.basis, self.live) {
            (NoveltyBasis::None, false) => "no baseline: nothing marked new",
            (NoveltyBasis::None, true) => "no baseline: recent edges marked",
            (NoveltyBasis::Approved, _) => "new: not in the approved baseline",
            (NoveltyBasis::Learned, _) => "new: not in the learned baseline",
        }
    }
}

/// The kind of graph node a deviation of `category` is about (`None`: egress, which no edge
/// stands for alone).
fn node_kind_of(category: Category) -> Option<NodeKind> {
    Some(match category {
        Category::Model => NodeKind::Model,
        Category::Tool | Category::ToolArguments | Category::ToolOffered => NodeKind::Tool,
        Category::McpServer => NodeKind::McpServer,
        Category::Endpoint => NodeKind::Api,
        Category::Data => NodeKind::Data,
        Category::Executable => NodeKind::Command,
        Category::Identity => NodeKind::Identity,
        Category::Egress => return None,
    })
}
