//! What the model keeps when the memory budget is pressed: the agents that acted most
//! recently, each whole.
//!
//! Agents (records and AI-BOMs), the graph and the tool calls are charged to the records' part
//! of the budget ([`MemoryBudget::records_limit`]). Before the model applies an observation it
//! looks at the room that part has left; when less than a 64th is free, it sheds the least
//! recently active agents, each with everything that is only its own: its record, its graph
//! node with the tools, APIs, data and commands no agent that stays reaches, its tool calls,
//! which processes were its, and (through the pipeline, which takes
//! [`Model::take_evicted_agents`]) its detection state and the baseline it was learning. One
//! batch frees about a sixteenth of that part (one pass over the graph for the whole batch),
//! so the work is spread over the agents that come after. Agents detection raised a finding
//! for ([`Model::note_detection`]) go only after every quiet one, and the agent the
//! observation belongs to never goes. So a node that runs ever new agents shows the recent
//! ones with their whole chains (agent → tool → API → data → identity), not thousands of
//! agents with nothing left under them.
//!
//! What holders do on their own when a charge still fails during an observation (an agent's
//! charge sheds other agents as above; the graph evicts its least recently seen tenth; the
//! oldest tool calls go) is the fallback for what this margin does not cover: one agent that
//! outgrows the room alone, an observation larger than the margin, or bytes being reassembled
//! that take more than their quarter of the pipeline's share.
//!
//! Activity is event time, and every decision depends only on charged bytes and the events in
//! order, so a replay sheds exactly what the live run shed.

use std::collections::HashSet;

use crate::memory_budget::{Charge, MemoryBudget, Pressure};
use crate::process_table::ProcessTable;
use crate::reconstruct::Observation;

use super::{Agent, Model};

#[cfg(test)]
mod tests;

/// Agents are shed when less than this fraction of what records may hold is free: 1/64.
const PRESSED_BELOW: usize = 64;
/// A batch sheds agents until about this fraction is free: 1/16.
const SHED_TO: usize = 16;
/// Batches an agent's own charge may shed before it is forced (bounded work per charge).
const SHEDS_PER_CHARGE: usize = 2;

/// What the model holds for one agent beside its record: what decides when it is shed.
pub(super) struct AgentHold {
    /// The agent's record and AI-BOM, charged.
    charge: Charge,
    /// When it last acted (event time): its LLM and MCP calls, its processes' actions.
    active_ns: u64,
    /// Detection raised a finding for it: it goes after every quiet agent.
    flagged: bool,
}

/// The room left to records: what they may hold and have not charged.
fn records_room(budget: &MemoryBudget) -> usize {
    budget.records_limit().saturating_sub(budget.records_used())
}

impl Model {
    /// Sheds the least recently active agents (see the module doc) when the records' room is
    /// short, before `observation` is applied.
    pub(super) fn make_room(&mut self, observation: &Observation, processes: &ProcessTable) {
        let Some(budget) = &self.budget else {
            return;
        };
        let limit = budget.records_limit();
        let room = records_room(budget);
        if room >= limit / PRESSED_BELOW {
            return;
        }
        let acting = self.agent_of(&processes.lineage(observation.actor.pid), observation.ts_ns);
        self.shed_agents(limit / SHED_TO - room, acting.as_deref());
    }

    /// Charges what agent `key` (and its AI-BOM) holds now, active at `ts_ns`. When the budget
    /// refuses, other agents are shed as under pressure (at most [`SHEDS_PER_CHARGE`] batches,
    /// then the charge is forced as other holders force theirs).
    pub(super) fn charge_agent(&mut self, key: &str, ts_ns: u64) {
        let Some(budget) = self.budget.clone() else {
            return;
        };
        let Some(bytes) = self.agents.get(key).map(Agent::estimate_bytes) else {
            return;
        };
        // Taken out while room is made, so it is never shed for itself.
        let mut hold = self.agent_holds.remove(key).unwrap_or_else(|| AgentHold {
            charge: Charge::new(&budget),
            active_ns: ts_ns,
            flagged: false,
        });
        let mut sheds = 0;
        while !hold.charge.try_set(bytes) {
            let need = bytes.saturating_sub(hold.charge.bytes());
            if sheds == SHEDS_PER_CHARGE || self.shed_agents(need, None) == 0 {
                hold.charge.force_set(bytes);
                break;
            }
            sheds += 1;
        }
        hold.active_ns = hold.active_ns.max(ts_ns);
        self.agent_holds.insert(key.to_string(), hold);
    }

    /// Agent `key` acted at `ts_ns` (an action of one of its processes, or one linked to its
    /// call): it is active, whatever it did.
    pub(super) fn note_activity(&mut self, key: &str, ts_ns: u64) {
        if let Some(hold) = self.agent_holds.get_mut(key) {
            hold.active_ns = hold.active_ns.max(ts_ns);
        }
    }

    /// Detection raised a finding for agent `key` (the pipeline says so after each
    /// observation): under memory pressure it is shed only after every quiet agent, so what
    /// an incident is about keeps its chain in the graph.
    pub fn note_detection(&mut self, key: &str) {
        if let Some(hold) = self.agent_holds.get_mut(key) {
            hold.flagged = true;
        }
    }

    /// Sheds agents other than `except`, quiet ones before flagged ones, least recently active
    /// first, until an estimate of what they hold reaches `need` bytes; returns how many.
    fn shed_agents(&mut self, need: usize, except: Option<&str>) -> usize {
        let mut order: Vec<(bool, u64, &str)> = self
            .agent_holds
            .iter()
            .filter(|(key, _)| Some(key.as_str()) != except)
            .map(|(key, hold)| (hold.flagged, hold.active_ns, key.as_str()))
            .collect();
        // The key last: equal activity is shed in the same order every run.
        order.sort_unstable();
        // What shedding an agent frees: its record, its tool calls and, as an estimate, an
        // even share of the graph (its own nodes go; those other agents reach stay).
        let calls = self.attribution.held_bytes_by_agent();
        let graph_share = self.graph.charged_bytes() / self.agent_holds.len().max(1);
        let mut freed = 0;
        let mut victims = Vec::new();
        for (_, _, key) in order {
            if freed >= need {
                break;
            }
            freed += self.agent_holds[key].charge.bytes()
                + calls.get(key).copied().unwrap_or(0)
                + graph_share;
            victims.push(key.to_string());
        }
        let count = victims.len();
        self.evict_agents(victims);
        count
    }

    /// Forgets the agents `keys`: records and AI-BOMs, graph nodes with what only they
    /// reached, tool calls, which processes were theirs; each counted in `agents_evicted`.
    /// Detection forgets them when the pipeline takes [`Model::take_evicted_agents`]. One that
    /// acts again is discovered anew.
    fn evict_agents(&mut self, keys: Vec<String>) {
        if keys.is_empty() {
            return;
        }
        let set: HashSet<String> = keys.iter().cloned().collect();
        for key in &keys {
            self.agents.remove(key);
            // Dropping the hold releases the record's charge.
            self.agent_holds.remove(key);
        }
        self.agent_pids.forget_agents(&set);
        self.attribution.forget_agents(&set);
        let nodes: HashSet<String> = keys.iter().map(|key| format!("agent:{key}")).collect();
        self.graph.remove_agents(&nodes);
        if let Some(budget) = &self.budget {
            budget.note_many(Pressure::AgentEvicted, keys.len() as u64);
        }
        self.evicted_agents.extend(keys);
    }
}
