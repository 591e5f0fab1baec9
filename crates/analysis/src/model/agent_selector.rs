//! Which agents a command shows or writes: `--namespace`, `--pod` and `--agent` on `collect`,
//! `replay` and `tui`, decided from each agent's identity (docs/cli.md, "Selecting agents").
//!
//! - `--namespace NS`: agents in Kubernetes namespace NS (their pod's, else their workload's).
//! - `--pod NAME`: agents in pod NAME, or `NS/NAME`.
//! - `--agent KEY`: the agent with key KEY (`<workload>:<program>`), or named KEY (`python
//!   incident_agent.py` is named `incident_agent.py`).
//!
//! Every selector given must hold; an agent without a Kubernetes identity matches no
//! namespace or pod selector. Everything is still observed (detection and attribution need
//! the whole node); selection applies to what is shown and written.

use std::collections::{BTreeSet, HashSet};

use super::agents::Agent;
use super::{Model, ModelSnapshot};
use crate::process_table::ProcessTable;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentSelector {
    pub namespace: Option<String>,
    pub pod: Option<String>,
    pub agent: Option<String>,
}

impl AgentSelector {
    /// No selector: every agent.
    pub fn is_all(&self) -> bool {
        self.namespace.is_none() && self.pod.is_none() && self.agent.is_none()
    }

    pub fn matches(&self, agent: &Agent) -> bool {
        let identity = &agent.identity;
        // `namespace/name`, and the namespace of `k8s:namespace/Kind/name/container`.
        let pod = identity.pod.as_deref();
        let namespace = pod
            .and_then(|p| p.split_once('/'))
            .map(|(ns, _)| ns)
            .or_else(|| {
                identity
                    .workload
                    .strip_prefix("k8s:")
                    .and_then(|w| w.split('/').next())
            });
        self.namespace
            .as_deref()
            .is_none_or(|wanted| namespace == Some(wanted))
            && self.pod.as_deref().is_none_or(|wanted| match pod {
                Some(pod) if wanted.contains('/') => pod == wanted,
                Some(pod) => pod.split_once('/').is_some_and(|(_, name)| name == wanted),
                None => false,
            })
            && self
                .agent
                .as_deref()
                .is_none_or(|wanted| agent.key == wanted || agent.name == wanted)
    }

    /// Whether what `pid` did at `ts_ns` is a selected agent's (its process or a descendant,
    /// as the model knew it then): the events `collect` and `replay` print.
    pub fn selects_process(
        &self,
        model: &Model,
        processes: &ProcessTable,
        pid: u32,
        ts_ns: u64,
    ) -> bool {
        if self.is_all() {
            return true;
        }
        model
            .agent_of(&processes.lineage(pid), ts_ns)
            .and_then(|key| model.agent(&key))
            .is_some_and(|agent| self.matches(agent))
    }

    /// The keys of `agents` that match.
    pub fn keys<'a>(&self, agents: impl IntoIterator<Item = &'a Agent>) -> BTreeSet<String> {
        agents
            .into_iter()
            .filter(|a| self.matches(a))
            .map(|a| a.key.clone())
            .collect()
    }

    /// `snapshot` with only the selected agents: their tool calls, findings, incidents, TLS
    /// coverage, payloads left out, and the part of the graph reachable from them. The
    /// counters (`stats`) stay those of the whole run.
    pub fn apply(&self, mut snapshot: ModelSnapshot) -> ModelSnapshot {
        if self.is_all() {
            return snapshot;
        }
        let keys = self.keys(&snapshot.agents);
        snapshot.agents.retain(|a| keys.contains(&a.key));
        snapshot.tool_calls.retain(|c| keys.contains(&c.agent));
        snapshot.findings.retain(|f| keys.contains(&f.agent));
        snapshot.incidents.retain(|i| keys.contains(&i.agent));
        snapshot
            .tls_coverage
            .retain(|p| p.agent.as_ref().is_some_and(|a| keys.contains(a)));
        snapshot
            .payloads_left_out
            .retain(|p| p.agent.as_ref().is_some_and(|a| keys.contains(a)));
        let mut reached: HashSet<String> = keys.iter().map(|k| format!("agent:{k}")).collect();
        loop {
            let before = reached.len();
            for edge in &snapshot.graph.edges {
                if reached.contains(&edge.from) && !reached.contains(&edge.to) {
                    reached.insert(edge.to.clone());
                }
            }
            if reached.len() == before {
                break;
            }
        }
        snapshot.graph.nodes.retain(|n| reached.contains(&n.id));
        snapshot.graph.edges.retain(|e| reached.contains(&e.from));
        snapshot
    }
}
