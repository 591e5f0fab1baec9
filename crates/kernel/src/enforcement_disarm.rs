//! The disarmer (issue 17): an agent whose policy blocks more than a limit of its attempts in a
//! minute is most likely broken by its policy (a baseline that missed something it needs), not
//! under attack at that rate, so it is dropped from enforce back to audit (what it does is
//! still reported, as "would block") and a `disarmed` decision reaches the pipeline, where
//! detection raises a high-severity finding. The count is over the kernel's own timestamps of
//! the blocks (a sliding minute), so a backlog read late is judged by when the blocks happened.

use std::collections::{HashMap, HashSet, VecDeque};

use agentscope_common::{enforce, AgentPolicy};
use aya::maps::HashMap as BpfHashMap;

use crate::error::CollectorError;
use crate::kernel::KernelCapture;

/// Blocks a minute above which an agent is disarmed, unless `--disarm-after` says otherwise.
pub const DEFAULT_DISARM_AFTER: u32 = 30;

const MINUTE_NS: u64 = 60_000_000_000;

/// Counts each governed agent's blocks over the last minute.
#[derive(Debug, Default)]
pub struct Disarmer {
    /// More blocks than this in a minute disarm the agent; 0: never.
    limit: u32,
    recent: HashMap<u32, VecDeque<u64>>,
    disarmed: HashSet<u32>,
}

impl Disarmer {
    pub fn new(limit: u32) -> Self {
        Disarmer {
            limit,
            ..Disarmer::default()
        }
    }

    /// Notes a block of `agent` at `ts_ns` (boot time). Returns the blocks of the last minute
    /// when this one takes the agent over the limit (once per agent).
    pub fn note_block(&mut self, agent: u32, ts_ns: u64) -> Option<u32> {
        if self.limit == 0 || self.disarmed.contains(&agent) {
            return None;
        }
        let recent = self.recent.entry(agent).or_default();
        recent.push_back(ts_ns);
        while recent
            .front()
            .is_some_and(|&first| ts_ns.saturating_sub(first) >= MINUTE_NS)
        {
            recent.pop_front();
        }
        // Bounded: never more than limit + 1 kept.
        if recent.len() as u64 <= u64::from(self.limit) {
            return None;
        }
        let count = recent.len() as u32;
        self.recent.remove(&agent);
        self.disarmed.insert(agent);
        Some(count)
    }
}

impl KernelCapture {
    /// Drops every enforced category of `agent` to audit in the kernel (pinned, so it stays
    /// disarmed across a restart, until `--enforce` is given again).
    pub fn disarm(&mut self, agent: u32) -> Result<(), CollectorError> {
        let failed = |e: &dyn std::fmt::Display| {
            CollectorError::Enforcement(format!("disarming agent {agent}: {e}"))
        };
        let mut policies: BpfHashMap<_, u32, AgentPolicy> = BpfHashMap::try_from(
            self.ebpf_mut()
                .map_mut("AGENT_POLICIES")
                .ok_or_else(|| failed(&"no AGENT_POLICIES map"))?,
        )
        .map_err(|e| failed(&e))?;
        let mut policy = policies.get(&agent, 0).map_err(|e| failed(&e))?;
        for mode in [&mut policy.network, &mut policy.exec, &mut policy.files] {
            if *mode == enforce::MODE_ENFORCE {
                *mode = enforce::MODE_AUDIT;
            }
        }
        policies.insert(agent, policy, 0).map_err(|e| failed(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn more_than_the_limit_within_a_minute_disarms_once() {
        let mut disarmer = Disarmer::new(3);
        for i in 0..3 {
            assert_eq!(disarmer.note_block(1, i * SECOND), None);
        }
        // Another agent's blocks are its own.
        assert_eq!(disarmer.note_block(2, 3 * SECOND), None);
        assert_eq!(disarmer.note_block(1, 4 * SECOND), Some(4));
        assert_eq!(disarmer.note_block(1, 5 * SECOND), None, "once");
    }

    #[test]
    fn blocks_older_than_a_minute_do_not_count() {
        let mut disarmer = Disarmer::new(2);
        assert_eq!(disarmer.note_block(1, 0), None);
        assert_eq!(disarmer.note_block(1, 30 * SECOND), None);
        // The first has left the window.
        assert_eq!(disarmer.note_block(1, 61 * SECOND), None);
        assert_eq!(disarmer.note_block(1, 62 * SECOND), Some(3));
    }

    #[test]
    fn a_limit_of_zero_never_disarms() {
        let mut disarmer = Disarmer::new(0);
        assert!((0..1000).all(|i| disarmer.note_block(1, i).is_none()));
    }
}
