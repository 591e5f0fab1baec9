//! What kernel enforcement (issue 17) did to one agent, as the pipeline saw it: per category
//! (`network`, `exec`, `files`) the mode its decisions show, how many "would block",
//! "blocked" and "disarmed" decisions there were, and the last few of them. Kept on the
//! [`super::Agent`] so every front end (the console live or replaying, the graph JSON) counts
//! the same way.
//!
//! The mode is what the decisions say, not the policy file: a "would block" decision means
//! the category is audited, "blocked" that it is enforced, and "disarmed" (the collector's
//! disarmer) drops every enforced category back to audit. A category with no decision yet
//! has no known mode.

use std::collections::VecDeque;

use agentscope_event::enforcement::{EnforceAction, EnforceCategory, EnforceDecision};
use serde::{Deserialize, Serialize};

/// Decisions remembered per category (the counts go on).
pub const RECENT_DECISIONS: usize = 5;

/// The mode a category's decisions show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeenMode {
    Audit,
    Enforce,
}

impl SeenMode {
    pub fn name(self) -> &'static str {
        match self {
            SeenMode::Audit => "audit",
            SeenMode::Enforce => "enforce",
        }
    }
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
    pub mode: Option<SeenMode>,
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
    /// The baseline (agent key) the last decision named, when the collector knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// The policy revision of the last decision.
    pub revision: u32,
    pub network: CategoryEnforcement,
    pub exec: CategoryEnforcement,
    pub files: CategoryEnforcement,
}

impl AgentEnforcement {
    /// No decision seen (left out of the graph JSON).
    pub fn is_empty(&self) -> bool {
        self.categories().iter().all(|(_, c)| c.decisions() == 0)
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
                category.mode = Some(SeenMode::Audit);
            }
            EnforceAction::Blocked => {
                category.blocked += 1;
                category.mode = Some(SeenMode::Enforce);
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
                if category.mode == Some(SeenMode::Enforce) {
                    category.mode = Some(SeenMode::Audit);
                }
            }
        }
    }

    /// The categories whose decisions show audit mode (what `promote` would enforce).
    pub fn audited(&self) -> Vec<&'static str> {
        self.categories()
            .into_iter()
            .filter(|(_, c)| c.mode == Some(SeenMode::Audit))
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
        assert_eq!(e.network.mode, Some(SeenMode::Enforce));
        assert_eq!(e.exec.mode, Some(SeenMode::Audit));
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
        assert_eq!(e.network.mode, Some(SeenMode::Audit));
        assert_eq!(e.audited(), vec!["network", "exec"]);
        assert_eq!(e.baseline.as_deref(), Some("host:python agent.py"));
        assert_eq!(e.revision, 2);
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
