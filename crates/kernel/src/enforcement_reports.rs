//! The policies the kernel applies, reported into the pipeline (issue 17): an
//! `enforce_policy` event per governed agent when this collector starts enforcing or adopts
//! pinned enforcement, when its disarmer drops an agent to audit, when the kernel's copy
//! changes otherwise (`agentscope enforce off` empties it: every category off), and when
//! files found after enforcement began are governed (crate::enforcement_file_refresh). So the
//! console, live, `--connect` or replaying a recording, knows each agent's modes before any
//! decision, from the same events.
//!
//! Changes made behind the collector's back are found by reading `AGENT_POLICIES` again at
//! most once a second, after a batch of events or on the collector's timer
//! (`Collector::keep_enforcement`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use agentscope_common::{enforce, AgentPolicy};
use agentscope_event::enforcement::{EnforcePolicy, PolicyChange, PolicyMode};
use aya::maps::HashMap as BpfHashMap;

use crate::enforcement::{AgentScope, GovernedAgent, Mode};
use crate::error::CollectorError;
use crate::event::{Event, EventBody};
use crate::kernel::KernelCapture;

/// How often the kernel's policies are read again for changes the collector did not make.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A policy's state as reported: (network, exec, files, revision), `None` once removed.
type Reported = Option<(u32, u32, u32, u32)>;

fn state(policy: &AgentPolicy) -> Reported {
    Some((policy.network, policy.exec, policy.files, policy.revision))
}

fn policy_mode(raw: u32) -> PolicyMode {
    match raw {
        enforce::MODE_AUDIT => PolicyMode::Audit,
        enforce::MODE_ENFORCE => PolicyMode::Enforce,
        _ => PolicyMode::Off,
    }
}

fn raw_mode(mode: Mode) -> u32 {
    match mode {
        Mode::Off => enforce::MODE_OFF,
        Mode::Audit => enforce::MODE_AUDIT,
        Mode::Enforce => enforce::MODE_ENFORCE,
    }
}

/// What was last reported per agent, and the events not handed out yet.
#[derive(Debug)]
pub struct PolicyReports {
    reported: BTreeMap<u32, Reported>,
    checked_at: Instant,
    pending: Vec<Event>,
}

impl Default for PolicyReports {
    fn default() -> Self {
        Self::new()
    }
}

impl PolicyReports {
    pub fn new() -> Self {
        PolicyReports {
            reported: BTreeMap::new(),
            checked_at: Instant::now(),
            pending: Vec::new(),
        }
    }

    /// Reports every agent as governed now (`Started` or `Adopted`).
    pub fn governing(&mut self, agents: &[GovernedAgent], change: PolicyChange) {
        for agent in agents {
            let policy = AgentPolicy {
                network: raw_mode(agent.network),
                exec: raw_mode(agent.exec),
                files: raw_mode(agent.files),
                revision: agent.revision,
            };
            self.report(agent, state(&policy), change);
        }
    }

    /// Reports files `agent` governs from now on (found after enforcement began), with its
    /// modes as last reported.
    pub fn files_added(&mut self, agent: &GovernedAgent, paths: Vec<String>) {
        let reported = self.reported.get(&agent.id).copied().flatten();
        let event = self.event(agent, reported, PolicyChange::FilesAdded, paths);
        self.pending.push(event);
    }

    /// Reports `agent`'s policy as the kernel now holds it, when it differs from what was
    /// reported (`change` says why it changed).
    fn report(&mut self, agent: &GovernedAgent, now: Reported, change: PolicyChange) {
        if self.reported.get(&agent.id) == Some(&now) {
            return;
        }
        self.reported.insert(agent.id, now);
        let change = if now.is_none() {
            PolicyChange::Removed
        } else {
            change
        };
        let event = self.event(agent, now, change, Vec::new());
        self.pending.push(event);
    }

    /// An `enforce_policy` event for `agent` in state `now` (`None`: removed, every category
    /// off).
    fn event(
        &self,
        agent: &GovernedAgent,
        now: Reported,
        change: PolicyChange,
        files_added: Vec<String>,
    ) -> Event {
        let (network, exec, files, revision) = now.unwrap_or((0, 0, 0, agent.revision));
        let (scope, scope_pid, scope_cgroup_id) = match agent.scope {
            AgentScope::ProcessTree(pid) => (format!("pid:{pid}"), Some(pid), None),
            AgentScope::Cgroup(id) => (format!("cgroup:{id}"), None, Some(id)),
        };
        crate::collector::collector_made_event(EventBody::EnforcePolicy(Box::new(EnforcePolicy {
            agent_id: agent.id,
            baseline: agent.baseline.clone(),
            revision,
            scope,
            scope_pid,
            scope_cgroup_id,
            network: policy_mode(network),
            exec: policy_mode(exec),
            files: policy_mode(files),
            change,
            files_added,
        })))
    }

    /// After the disarmer dropped `agent` to audit in the kernel.
    pub fn disarmed(&mut self, kernel: &mut KernelCapture, agent: &GovernedAgent) {
        if let Ok(policies) = kernel.agent_policies() {
            let now = policies.get(&agent.id).and_then(state);
            self.report(agent, now, PolicyChange::Disarmed);
        }
    }

    /// Reads the kernel's policies again (at most once a second) and reports what changed.
    pub fn check(&mut self, kernel: &mut KernelCapture, agents: &[GovernedAgent]) {
        if agents.is_empty() || self.checked_at.elapsed() < CHECK_INTERVAL {
            return;
        }
        self.checked_at = Instant::now();
        let Ok(policies) = kernel.agent_policies() else {
            return;
        };
        for agent in agents {
            let now = policies.get(&agent.id).and_then(state);
            self.report(agent, now, PolicyChange::Changed);
        }
    }

    /// The reports not handed out yet.
    pub fn take(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.pending)
    }
}

impl KernelCapture {
    /// The policies in `AGENT_POLICIES` now, by agent id.
    pub fn agent_policies(&mut self) -> Result<BTreeMap<u32, AgentPolicy>, CollectorError> {
        let map = self
            .ebpf_mut()
            .map_mut("AGENT_POLICIES")
            .ok_or_else(|| CollectorError::Enforcement("map AGENT_POLICIES missing".into()))?;
        let policies: BpfHashMap<_, u32, AgentPolicy> = BpfHashMap::try_from(map)
            .map_err(|e| CollectorError::Enforcement(format!("map AGENT_POLICIES: {e}")))?;
        Ok(policies.iter().flatten().collect())
    }
}
