//! Observations as they leave the pipeline: each with the agent it belongs to and the
//! tool-call links it made, decided once here so detection, baselines, the console and every
//! other consumer read the same answer instead of working it out again.
//!
//! A process becomes an agent at its first LLM or MCP call, but its start-up (the exec, the
//! connection to the LLM host) comes first. Those observations leave the pipeline without an
//! agent; [`EarlierObservations`] keeps the ones worth learning from (bounded, oldest dropped
//! first) and, when the process or an ancestor turns out to be an agent, hands them out again
//! attributed and marked [`AttributedObservation::earlier`]. Observations of processes that
//! exit without becoming one are forgotten at their exit.

mod waiting_queue;

use std::collections::VecDeque;

use agentscope_event::pid_keyed::PidSet;

use crate::model::{Model, NewLink};
use crate::process_table::ProcessTable;
use crate::reconstruct::{Observation, ObservationKind};

use waiting_queue::{Waiting, WaitingQueue};

/// Observations of processes not (yet) known as agents, kept in case they become one.
pub const EARLIER_KEPT: usize = 4096;
/// Observations of processes that exited as nobody's, kept for a tool-call link that may still
/// claim them (the MCP exchange explaining a `psql` ends after `psql` exits).
pub const EXITED_KEPT_FOR_LINKS: usize = 1024;

/// An observation with its attribution.
#[derive(Debug, Clone)]
pub struct AttributedObservation {
    pub observation: Observation,
    /// The agent whose process (or an ancestor's) made the observation, or whose tool call
    /// it carried out (an MCP server outside the agent's process tree); `None` while the
    /// process is nobody's agent.
    pub agent: Option<String>,
    /// The run of the agent it belongs to: the pid of the agent's outermost process in the
    /// observation's lineage (the agent process a tool call went to, for an MCP server
    /// outside the agent's tree). Concurrent runs of one agent (each its own process) are
    /// told apart by it; `None` with `agent`.
    pub session: Option<u32>,
    /// The conversation within the session, numbered from 1 (see [`super::conversations`]):
    /// LLM calls chained by their message histories, and what their tool calls did. `None`
    /// without a session.
    pub conversation: Option<u32>,
    /// Tool-call links the observation made (new links only).
    pub links: Vec<NewLink>,
    /// The observation left the pipeline before without an agent; it comes again now that
    /// its process turned out to be an agent's. Consumers that show every observation once
    /// skip these; consumers that only care about agents (baselines, per-agent logs) take
    /// them.
    pub earlier: bool,
}

impl std::ops::Deref for AttributedObservation {
    type Target = Observation;

    fn deref(&self) -> &Observation {
        &self.observation
    }
}

/// Observations waiting for their process to become an agent's (see the module doc).
#[derive(Default)]
pub struct EarlierObservations {
    /// Indexed by the pids of their lineages: a new agent pid, an exit or a link looks at
    /// the observations that hold its pid, not at the whole queue (up to [`EARLIER_KEPT`]
    /// observations, full of other processes' start-ups).
    waiting: WaitingQueue,
    /// Observations of processes that exited while waiting: only a link (by pid and time,
    /// so a reused pid cannot take them) hands them out now.
    exited: VecDeque<Waiting>,
    /// Pids already seen acting for an agent.
    attributed: PidSet<u32>,
    /// [`Model::agents_mark`] when every waiting observation was last known to have no agent:
    /// at the last release, or earlier (one pushed since had none when it came).
    agents_mark: u64,
    dropped: u64,
}

impl EarlierObservations {
    /// Waiting observations dropped because [`EARLIER_KEPT`] were kept.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The process table forgot `pid`: it is no longer known as an agent's (what it did
    /// and still waits stays, bounded by [`EARLIER_KEPT`]).
    pub fn forget_process(&mut self, pid: u32) {
        self.attributed.remove(&pid);
    }

    /// `observation` (already applied to `model`) was attributed to `agent`: returns earlier
    /// observations that now turn out to be an agent's, or keeps `observation` when it is
    /// nobody's yet.
    pub fn settle(
        &mut self,
        observation: &Observation,
        agent: Option<&str>,
        model: &Model,
        processes: &ProcessTable,
    ) -> Vec<AttributedObservation> {
        let pid = observation.actor.pid;
        if let ObservationKind::Exit { .. } = observation.kind {
            // The pid may be reused by an unrelated process: what this one did waits for a
            // link only.
            self.attributed.remove(&pid);
            // A waiting observation's lineage starts with its own pid: what this process did
            // is among those holding its pid (the others are its descendants').
            for number in self.waiting.holding([pid]) {
                if self
                    .waiting
                    .get(number)
                    .is_none_or(|w| w.observation.actor.pid != pid)
                {
                    continue;
                }
                let Some(waiting) = self.waiting.remove(number) else {
                    continue;
                };
                if self.exited.len() >= EXITED_KEPT_FOR_LINKS {
                    self.exited.pop_front();
                }
                self.exited.push_back(waiting);
            }
            return Vec::new();
        }
        if agent.is_some() {
            if self.attributed.insert(pid) && !self.waiting.is_empty() {
                return self.release(model);
            }
            return Vec::new();
        }
        // Only what a baseline learns from is worth keeping for later.
        if !crate::baseline::items::has_items(observation) {
            return Vec::new();
        }
        if self.waiting.len() >= EARLIER_KEPT {
            self.waiting.pop_oldest();
            self.dropped += 1;
        }
        self.waiting.push(Waiting {
            lineage: processes.lineage(pid),
            observation: observation.clone(),
        });
        Vec::new()
    }

    /// `links` (just made) tie actions to an agent's tool call. An action of a process outside
    /// the agent's tree (the `psql` an MCP server runs for `query_database`) completes before
    /// the call's MCP exchange that explains it, so it waits here as nobody's; the link makes
    /// it the call's agent's (and session's), and it is handed out again like any earlier
    /// observation: baselines learn the table it read.
    pub fn claim_linked(
        &mut self,
        links: &[NewLink],
        model: &Model,
        processes: &ProcessTable,
    ) -> Vec<AttributedObservation> {
        let mut out = Vec::new();
        for link in links {
            let linked = |w: &Waiting| {
                w.observation.actor.pid == link.action.pid
                    && w.observation.ts_ns == link.action.ts_ns
            };
            // The oldest waiting one of the action's pid (its lineage holds that pid).
            let waiting = self
                .waiting
                .holding([link.action.pid])
                .into_iter()
                .find(|number| self.waiting.get(*number).is_some_and(linked));
            let waiting = match waiting {
                Some(number) => self.waiting.remove(number),
                None => match self.exited.iter().position(linked) {
                    Some(at) => self.exited.remove(at),
                    None => None,
                },
            };
            let Some(waiting) = waiting else {
                continue;
            };
            let session = model.session_of(&processes.lineage(link.call_pid), link.action.ts_ns);
            out.push(AttributedObservation {
                observation: waiting.observation,
                agent: Some(link.agent.clone()),
                session: session.or(Some(link.call_pid)),
                conversation: None,
                links: Vec::new(),
                earlier: true,
            });
        }
        out
    }

    /// Waiting observations whose process (or an ancestor, as it was then) is now an agent.
    fn release(&mut self, model: &Model) -> Vec<AttributedObservation> {
        // Only a lineage holding a pid made an agent's since the mark can have an agent now:
        // the others are not looked up (up to EARLIER_KEPT of them, at every new agent
        // process). Without the list (too many new agent pids), every one is.
        let made = model.made_agents_since(self.agents_mark);
        self.agents_mark = model.agents_mark();
        let candidates = match &made {
            Some(pids) => self.waiting.holding(pids.iter().copied()),
            None => self.waiting.all(),
        };
        let mut out = Vec::new();
        for number in candidates {
            let Some(waiting) = self.waiting.get(number) else {
                continue;
            };
            if !model.is_agent_at(&waiting.lineage, waiting.observation.ts_ns) {
                continue;
            }
            let Some(agent) = model.agent_of(&waiting.lineage, waiting.observation.ts_ns) else {
                continue;
            };
            let Some(waiting) = self.waiting.remove(number) else {
                continue;
            };
            out.push(AttributedObservation {
                session: model.session_of(&waiting.lineage, waiting.observation.ts_ns),
                observation: waiting.observation,
                agent: Some(agent),
                conversation: None,
                links: Vec::new(),
                earlier: true,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests;
