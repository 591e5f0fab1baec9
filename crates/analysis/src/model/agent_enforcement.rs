//! What kernel enforcement (issue 17) does to one agent, as the pipeline saw it: per category
//! (`network`, `exec`, `files`) its mode, how many "would block", "blocked" and "disarmed"
//! decisions there were, and the last few of them. Kept on the [`super::Agent`] so every
//! front end (the console live, `--connect` or replaying, the graph JSON) shows the same.
//!
//! The mode comes from what the collector reports, in event order, whichever came last: its
//! `enforce_policy` events (the policy as the kernel applies it, reported when enforcement
//! starts, is adopted, changes or is removed: so a category with no decision yet has its
//! mode, `off` included) and the decisions themselves (a "would block" means the category is
//! audited, "blocked" that it is enforced, "disarmed" drops every enforced category back to
//! audit). Only a capture without policy events (taken before they existed) leaves a
//! category with no decision without a known mode.

use std::collections::VecDeque;

use agentscope_event::enforcement::{
    EnforceAction, EnforceCategory, EnforceDecision, EnforcePolicy, PolicyChange, PolicyMode,
};
use serde::{Deserialize, Serialize};

/// Decisions remembered per category (the counts go on).
pub const RECENT_DECISIONS: usize = 5;

/// A category's mode as the pipeline knows it (from the policy reported, or the decisions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KnownMode {
    Off,
    Audit,
    Enforce,
}

impl KnownMode {
    pub fn name(self) -> &'static str {
        match self {
            KnownMode::Off => "off",
            KnownMode::Audit => "audit",
            KnownMode::Enforce => "enforce",
        }
    }
}

impl From<PolicyMode> for KnownMode {
    fn from(mode: PolicyMode) -> Self {
        match mode {
            PolicyMode::Off => KnownMode::Off,
            PolicyMode::Audit => KnownMode::Audit,
            PolicyMode::Enforce => KnownMode::Enforce,
        }
    }
}

/// The policy the collector last reported for the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedPolicy {
    /// `pid:PID` or `cgroup:ID`.
    pub scope: String,
    pub change: PolicyChange,
    pub ts_ns: u64,
}

/// One decision, as remembered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentDecision {
    pub ts_ns: u64,
    pub pid: u32,
    pub action: EnforceAction,
    /// [`EnforceDecision::describe`].
    pub summary: String,
}

/// One category's tally.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryEnforcement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<KnownMode>,
    pub would_block: u64,
    pub blocked: u64,
    pub disarmed: u64,
    /// The last [`RECENT_DECISIONS`], oldest first.
    pub recent: VecDeque<RecentDecision>,
}

impl CategoryEnforcement {
    pub fn decisions(&self) -> u64 {
        self.would_block + self.blocked + self.disarmed
    }
}

/// An agent's enforcement, per category.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentEnforcement {
    /// The baseline (agent key) the last policy or decision named, when the collector knew
    /// it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// The policy revision of the last policy or decision.
    pub revision: u32,
    /// The policy the collector last reported for this agent, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<ReportedPolicy>,
    pub network: CategoryEnforcement,
    pub exec: CategoryEnforcement,
    pub files: CategoryEnforcement,
}

impl AgentEnforcement {
    /// No policy and no decision seen (left out of the graph JSON).
    pub fn is_empty(&self) -> bool {
        self.policy.is_none() && self.categories().iter().all(|(_, c)| c.decisions() == 0)
    }

    /// Takes the modes of a policy the collector reported for this agent.
    pub fn apply_policy(&mut self, policy: &EnforcePolicy, ts_ns: u64) {
        self.baseline = Some(policy.baseline.clone());
        self.revision = policy.revision;
        self.policy = Some(ReportedPolicy {
            scope: policy.scope.clone(),
            change: policy.change,
            ts_ns,
        });
        self.network.mode = Some(policy.network.into());
        self.exec.mode = Some(policy.exec.into());
        self.files.mode = Some(policy.files.into());
    }

    /// The three categories, named, in a fixed order.
    pub fn categories(&self) -> [(&'static str, &CategoryEnforcement); 3] {
        [
            ("network", &self.network),
            ("exec", &self.exec),
            ("files", &self.files),
        ]
    }

    /// Counts one decision made for a process of this agent.
    pub fn record(&mut self, decision: &EnforceDecision, pid: u32, ts_ns: u64) {
        if decision.baseline.is_some() {
            self.baseline = decision.baseline.clone();
        }
        self.revision = decision.revision;
        let category = match decision.category {
            EnforceCategory::Network => &mut self.network,
            EnforceCategory::Exec => &mut self.exec,
            EnforceCategory::Files => &mut self.files,
            // A category this build does not know: nothing to count it under.
            EnforceCategory::Unknown => return,
        };
        match decision.action {
            EnforceAction::WouldBlock => {
                category.would_block += 1;
                category.mode = Some(KnownMode::Audit);
            }
            EnforceAction::Blocked => {
                category.blocked += 1;
                category.mode = Some(KnownMode::Enforce);
            }
            EnforceAction::Disarmed => category.disarmed += 1,
            EnforceAction::Unknown => {}
        }
        category.recent.push_back(RecentDecision {
            ts_ns,
            pid,
            action: decision.action,
            summary: decision.describe(),
        });
        while category.recent.len() > RECENT_DECISIONS {
            category.recent.pop_front();
        }
        if decision.action == EnforceAction::Disarmed {
            // The disarmer drops the whole policy to audit, not one category.
            for category in [&mut self.network, &mut self.exec, &mut self.files] {
                if category.mode == Some(KnownMode::Enforce) {
                    category.mode = Some(KnownMode::Audit);
                }
            }
        }
    }

    /// The categories whose decisions show audit mode (what `promote` would enforce).
    pub fn audited(&self) -> Vec<&'static str> {
        self.categories()
            .into_iter()
            .filter(|(_, c)| c.mode == Some(KnownMode::Audit))
            .map(|(name, _)| name)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(category: EnforceCategory, action: EnforceAction) -> EnforceDecision {
        EnforceDecision {
            agent_id: 1,
            baseline: Some("host:python agent.py".into()),
            revision: 2,
            category,
            action,
            hook: "connect4".into(),
            protocol: "tcp".into(),
            family: "inet".into(),
            addr: "127.0.0.2".into(),
            port: 8080,
            path: None,
            reason: None,
            inode: None,
            rule: None,
            blocks_last_minute: (action == EnforceAction::Disarmed).then_some(31),
        }
    }

    #[test]
    fn modes_follow_the_decisions_and_the_disarmer_drops_every_category_to_audit() {
        let mut e = AgentEnforcement::default();
        assert!(e.is_empty());
        e.record(
            &decision(EnforceCategory::Exec, EnforceAction::WouldBlock),
            7,
            1,
        );
        for ts in 2..40 {
            e.record(
                &decision(EnforceCategory::Network, EnforceAction::Blocked),
                7,
                ts,
            );
        }
        assert_eq!(e.network.mode, Some(KnownMode::Enforce));
        assert_eq!(e.exec.mode, Some(KnownMode::Audit));
        assert_eq!(e.files.mode, None);
        assert_eq!(e.network.blocked, 38);
        // Counts go on; what is remembered is bounded, newest kept.
        assert_eq!(e.network.recent.len(), RECENT_DECISIONS);
        assert_eq!(e.network.recent.back().unwrap().ts_ns, 39);
        assert_eq!(e.audited(), vec!["exec"]);
        e.record(
            &decision(EnforceCategory::Network, EnforceAction::Disarmed),
            7,
            40,
        );
        assert_eq!(e.network.disarmed, 1);
        assert_eq!(e.network.mode, Some(KnownMode::Audit));
        assert_eq!(e.audited(), vec!["network", "exec"]);
        assert_eq!(e.baseline.as_deref(), Some("host:python agent.py"));
        assert_eq!(e.revision, 2);
        // A reported policy sets every category's mode, `off` included, with no decision;
        // a later decision moves its category on.
        let mut governed = AgentEnforcement::default();
        let policy = EnforcePolicy {
            agent_id: 3,
            baseline: "host:python agent.py".into(),
            revision: 4,
            scope: "pid:42".into(),
            scope_pid: Some(42),
            scope_cgroup_id: None,
            network: PolicyMode::Enforce,
            exec: PolicyMode::Audit,
            files: PolicyMode::Off,
            change: PolicyChange::Started,
            files_added: Vec::new(),
        };
        governed.apply_policy(&policy, 5);
        assert!(!governed.is_empty());
        assert_eq!(
            (
                governed.network.mode,
                governed.exec.mode,
                governed.files.mode
            ),
            (
                Some(KnownMode::Enforce),
                Some(KnownMode::Audit),
                Some(KnownMode::Off)
            )
        );
        assert_eq!(governed.revision, 4);
        assert_eq!(governed.audited(), vec!["exec"]);
        governed.record(
            &decision(EnforceCategory::Network, EnforceAction::Disarmed),
            42,
            6,
        );
        assert_eq!(governed.network.mode, Some(KnownMode::Audit));
        // An unknown category is not counted anywhere.
        let mut other = AgentEnforcement::default();
        other.record(
            &decision(EnforceCategory::Unknown, EnforceAction::Blocked),
            7,
            1,
        );
        assert!(other.is_empty());
    }
}
