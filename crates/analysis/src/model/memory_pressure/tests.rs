//! What the model keeps under memory pressure, against hand-made observations of many agents
//! through a small budget: the most recently active agents each keep their whole chain, an
//! agent detection flagged outlasts quiet ones, and every shed is counted.

use std::collections::BTreeSet;

use serde_json::json;

use super::super::tests::{call, exec, file, http_get_at, llm, with_end};
use super::super::*;
use crate::reconstruct::llm::ToolResult;
use crate::test_observations::observation;

const SECOND: u64 = 1_000_000_000;
const FIRST_PID: u32 = 1000;
/// Many more agents than a 4 MiB budget holds (about 15 KiB each: record, tool call, graph).
const AGENTS: u32 = 600;

fn name(i: u32) -> String {
    format!("agent{i}")
}

fn key(i: u32) -> String {
    format!("host:{}", name(i))
}

/// `count` agents, each a process of its own running a program of its own
/// (`/opt/agents/agent{i}`).
fn processes(count: u32) -> ProcessTable {
    let mut table = ProcessTable::default();
    for i in 0..count {
        let program = name(i);
        exec(
            &mut table,
            FIRST_PID + i,
            &format!("/opt/agents/{program}"),
            &[&program],
        );
    }
    table
}

/// A budgeted model and what feeds it.
struct BudgetedModel {
    model: Model,
    budget: MemoryBudget,
    processes: ProcessTable,
    identity: HostOnlyIdentity,
}

impl BudgetedModel {
    fn new(budget_bytes: usize) -> Self {
        let budget = MemoryBudget::new(budget_bytes);
        let mut model = Model::new(ModelOptions::default());
        model.set_budget(&budget.records());
        Self {
            model,
            budget,
            processes: processes(AGENTS),
            identity: HostOnlyIdentity,
        }
    }

    /// Agent `i`'s session, ten seconds after agent `i - 1`'s: its model asks for
    /// `read_report`, the agent reads the report (linked to the call by its path), sends the
    /// result back, then calls an API of its own. Its chain: agent → tool → data, agent →
    /// data, agent → API, agent → model, agent → identity.
    fn session(&mut self, i: u32) {
        let pid = FIRST_PID + i;
        let start = u64::from(i + 1) * 10 * SECOND;
        let report = format!("/srv/reports/{}.txt", name(i));
        let result = ToolResult {
            call_id: Some("c1".into()),
            name: None,
            content: "revenue up".into(),
            is_error: false,
            arguments: None,
        };
        let steps = [
            with_end(
                llm(
                    vec![call("c1", "read_report", json!({ "path": report }))],
                    vec![],
                ),
                start + SECOND,
            ),
            file(&report),
            with_end(llm(vec![], vec![result]), start + 4 * SECOND),
            http_get_at(&format!("{}.internal", name(i)), "/status"),
        ];
        for (step, kind) in steps.into_iter().enumerate() {
            let ts = start + (step as u64 + 2) * SECOND;
            let index = u64::from(i) * 4 + step as u64;
            self.model.apply(
                &observation(pid, ts, index, kind),
                &self.processes,
                &mut self.identity,
            );
        }
    }

    fn kept(&self) -> Vec<u32> {
        (0..AGENTS)
            .filter(|&i| self.model.agent(&key(i)).is_some())
            .collect()
    }

    /// Graph nodes of agent `i`'s chain, or what it lacks.
    fn chain(&self, i: u32) -> Result<BTreeSet<String>, String> {
        let graph = self.model.graph();
        let agent = format!("agent:{}", key(i));
        let tool = format!("tool:{}:read_report", key(i));
        let data = format!("data:file:/srv/reports/{}.txt", name(i));
        let identity = "identity:user:host:0".to_string();
        let mut missing = Vec::new();
        for (from, to, kind) in [
            (&agent, &tool, EdgeKind::CallsTool),
            (&agent, &data, EdgeKind::Accesses),
            (&tool, &data, EdgeKind::ExecutedVia),
            (&agent, &identity, EdgeKind::RunsAs),
        ] {
            if graph.get_edge(from, to, kind).is_none() || graph.get_node(to).is_none() {
                missing.push(format!("{kind:?} {from} → {to}"));
            }
        }
        let to = |kind: EdgeKind| {
            graph
                .edges()
                .find(|e| e.from == agent && e.kind == kind && graph.get_node(&e.to).is_some())
                .map(|e| e.to.clone())
        };
        let api =
            to(EdgeKind::CallsApi).filter(|api| api.contains(&format!("{}.internal", name(i))));
        let model = to(EdgeKind::InvokesModel);
        if api.is_none() {
            missing.push("its API".into());
        }
        if model.is_none() {
            missing.push("its model".into());
        }
        if !missing.is_empty() {
            return Err(missing.join(", "));
        }
        Ok([agent, tool, data, identity]
            .into_iter()
            .chain(api)
            .chain(model)
            .collect())
    }
}

#[test]
fn under_pressure_the_most_recently_active_agents_keep_whole_chains() {
    let mut node = BudgetedModel::new(4 << 20);
    for i in 0..AGENTS {
        node.session(i);
    }
    let kept = node.kept();
    let memory = node.budget.stats();
    assert!(
        memory.agents_evicted > 0 && kept.len() >= 20,
        "{} agents kept, {memory:?}",
        kept.len()
    );
    // The agents kept are the most recently active ones, and each has its whole chain.
    let newest = AGENTS - kept.len() as u32;
    assert_eq!(kept, (newest..AGENTS).collect::<Vec<_>>());
    let mut chains = BTreeSet::new();
    for &i in &kept {
        match node.chain(i) {
            Ok(nodes) => chains.extend(nodes),
            Err(missing) => panic!(
                "agent{i} (one of the {} kept, agent{newest} on) lacks {missing}; {memory:?}",
                kept.len()
            ),
        }
    }
    // Nothing is left of the agents shed: the graph is the chains of the agents kept.
    let snapshot = node.model.snapshot(None);
    let ids: BTreeSet<String> = snapshot.graph.nodes.iter().map(|n| n.id.clone()).collect();
    assert_eq!(ids, chains);
    assert!(snapshot
        .tool_calls
        .iter()
        .all(|c| node.model.agent(&c.agent).is_some()));
    // Every shed is counted: each agent made four nodes of its own and six edges (the model
    // and the identity are everyone's), and asked for one tool call.
    let limits = snapshot.graph.limits;
    assert_eq!(kept.len() as u64 + memory.agents_evicted, u64::from(AGENTS));
    assert_eq!(
        ids.len() as u64 + limits.evicted_nodes,
        4 * u64::from(AGENTS) + 2
    );
    assert_eq!(
        snapshot.graph.edges.len() as u64 + limits.evicted_edges,
        6 * u64::from(AGENTS)
    );
    assert_eq!(snapshot.stats.tool_calls, u64::from(AGENTS));
    assert_eq!(
        (
            snapshot.tool_calls.len() as u64 + snapshot.stats.tool_calls_evicted,
            snapshot.stats.tool_calls_dropped
        ),
        (u64::from(AGENTS), memory.tool_calls_evicted)
    );
    assert!(node.budget.records_used() <= node.budget.records_limit());
}

#[test]
fn an_agent_with_a_detection_is_shed_after_quiet_ones() {
    let mut node = BudgetedModel::new(4 << 20);
    node.session(0);
    // What the pipeline does when detection raised a finding for it.
    node.model.note_detection(&key(0));
    for i in 1..AGENTS {
        node.session(i);
    }
    let kept = node.kept();
    let memory = node.budget.stats();
    assert!(memory.agents_evicted > 0, "{memory:?}");
    assert_eq!(kept.len() as u64 + memory.agents_evicted, u64::from(AGENTS));
    assert_eq!(kept[0], 0, "the flagged agent is kept: {kept:?}");
    assert!(node.chain(0).is_ok(), "with its chain: {:?}", node.chain(0));
    assert!(
        node.model.agent(&key(1)).is_none(),
        "the quiet agent after it is shed first"
    );
    // The rest are the most recently active quiet ones.
    let newest = AGENTS - (kept.len() as u32 - 1);
    assert_eq!(kept[1..], (newest..AGENTS).collect::<Vec<_>>());
}
