//! Which agent each process acts for, over time: pid → agent key, kept after the process
//! exits for as long as the process table keeps exited processes
//! ([`crate::process_table::EXITED_KEPT`]).
//!
//! This is the one place attribution is decided. Keeping exited pids matters because what a
//! process did is often reported after it exited (an exchange ends when its connection
//! closes, at exit), and a pid can be reused: an exited agent's pid covers observations up to
//! its exit, never a later process that got the same number.

use std::collections::{HashSet, VecDeque};

use agentscope_event::pid_keyed::PidMap;

use crate::process_table::EXITED_KEPT;

#[derive(Debug, Clone)]
struct PidAgent {
    key: String,
    /// When the process exited; `None` while it runs.
    exited_ns: Option<u64>,
}

impl PidAgent {
    fn covers(&self, ts_ns: u64) -> bool {
        self.exited_ns.is_none_or(|exit| ts_ns <= exit)
    }
}

/// How many of the latest pids made agents' [`AgentPids::made_agents_since`] remembers.
const RECENT_KEPT: usize = 64;

/// pid → agent history (see the module doc).
#[derive(Debug, Default, Clone)]
pub struct AgentPids {
    by_pid: PidMap<u32, PidAgent>,
    /// Exited agent pids, oldest exit first.
    exited: VecDeque<u32>,
    /// Pids made agents' ([`AgentPids::insert`], [`AgentPids::insert_exited`]) so far: the
    /// only way a pid starts covering a time it did not cover before.
    made: u64,
    /// The latest [`RECENT_KEPT`] of them, oldest first.
    recent: VecDeque<u32>,
}

impl AgentPids {
    /// `pid` acts for `key` from now on (a running process, or one whose pid was reused).
    pub fn insert(&mut self, pid: u32, key: String) {
        self.note_made(pid);
        self.by_pid.insert(
            pid,
            PidAgent {
                key,
                exited_ns: None,
            },
        );
    }

    /// `pid` acted for `key` until `exit_ns` (it is known to have exited already).
    pub fn insert_exited(&mut self, pid: u32, key: String, exit_ns: u64) {
        self.note_made(pid);
        self.by_pid.insert(
            pid,
            PidAgent {
                key,
                exited_ns: Some(exit_ns),
            },
        );
        self.remember_exit(pid);
    }

    fn note_made(&mut self, pid: u32) {
        self.made += 1;
        if self.recent.len() == RECENT_KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(pid);
    }

    /// How many pids were made agents' so far: a mark for [`AgentPids::made_agents_since`].
    pub fn made_count(&self) -> u64 {
        self.made
    }

    /// The pids made agents' since `mark` (an earlier [`AgentPids::made_count`]), or `None`
    /// when more were than are remembered. A lineage that had no agent at a time when the
    /// count was `mark` can have one now only through one of these: exits, evictions and
    /// forgetting only take coverage away.
    pub fn made_agents_since(&self, mark: u64) -> Option<impl Iterator<Item = u32> + '_> {
        let count = usize::try_from(self.made.checked_sub(mark)?).ok()?;
        (count <= self.recent.len())
            .then(|| self.recent.iter().skip(self.recent.len() - count).copied())
    }

    /// The agent `pid` acted for at `ts_ns`, if it was an agent's then.
    pub fn key_at(&self, pid: u32, ts_ns: u64) -> Option<&str> {
        self.by_pid
            .get(&pid)
            .filter(|entry| entry.covers(ts_ns))
            .map(|entry| entry.key.as_str())
    }

    /// The agent the nearest process of `lineage` (the process and its ancestors, nearest
    /// first) acted for at `ts_ns`.
    pub fn agent_at(&self, lineage: &[u32], ts_ns: u64) -> Option<String> {
        lineage
            .iter()
            .find_map(|pid| self.key_at(*pid, ts_ns))
            .map(str::to_string)
    }

    /// Whether some process of `lineage` acted for an agent at `ts_ns`
    /// ([`AgentPids::agent_at`] without copying the key).
    pub fn is_agent_at(&self, lineage: &[u32], ts_ns: u64) -> bool {
        lineage.iter().any(|pid| self.key_at(*pid, ts_ns).is_some())
    }

    /// The session of what `lineage` (nearest first) did at `ts_ns`: the outermost process of
    /// the lineage that acted then for the same agent as the nearest agent process. Two runs
    /// of one agent started side by side (each its own process tree) are two sessions; the
    /// tools and MCP servers an agent process starts are part of its session.
    pub fn session_at(&self, lineage: &[u32], ts_ns: u64) -> Option<u32> {
        let key = lineage.iter().find_map(|pid| self.key_at(*pid, ts_ns))?;
        lineage
            .iter()
            .rev()
            .find(|pid| self.key_at(**pid, ts_ns) == Some(key))
            .copied()
    }

    /// The agents `keys` were shed: no process is theirs any more (one that acts again makes
    /// its agent anew). One pass for the whole batch.
    pub fn forget_agents(&mut self, keys: &HashSet<String>) {
        self.by_pid.retain(|_, entry| !keys.contains(&entry.key));
    }

    /// `pid` exited at `ts_ns`: it keeps its agent for what it did until then.
    pub fn exited(&mut self, pid: u32, ts_ns: u64) {
        if let Some(entry) = self.by_pid.get_mut(&pid) {
            if entry.exited_ns.is_none() {
                entry.exited_ns = Some(ts_ns);
                self.remember_exit(pid);
            }
        }
    }

    fn remember_exit(&mut self, pid: u32) {
        self.exited.push_back(pid);
        while self.exited.len() > EXITED_KEPT {
            if let Some(old) = self.exited.pop_front() {
                // Unless the pid was reused by a running agent process since.
                if self.by_pid.get(&old).is_some_and(|e| e.exited_ns.is_some())
                    && !self.exited.contains(&old)
                {
                    self.by_pid.remove(&old);
                }
            }
        }
    }

    /// Running agent processes as (pid, agent key), sorted by pid.
    pub fn running(&self) -> Vec<(u32, String)> {
        let mut pids: Vec<_> = self
            .by_pid
            .iter()
            .filter(|(_, e)| e.exited_ns.is_none())
            .map(|(pid, e)| (*pid, e.key.clone()))
            .collect();
        pids.sort_unstable();
        pids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exited_agent_pid_covers_what_it_did_until_its_exit_only() {
        let mut pids = AgentPids::default();
        pids.insert(10, "host:python agent.py".into());
        pids.exited(10, 100);
        assert_eq!(pids.key_at(10, 90), Some("host:python agent.py"));
        assert_eq!(pids.key_at(10, 100), Some("host:python agent.py"));
        assert_eq!(
            pids.key_at(10, 101),
            None,
            "a later process with the same pid"
        );
        // A child's lineage still reaches the exited parent for what happened before.
        assert_eq!(
            pids.agent_at(&[11, 10], 50).as_deref(),
            Some("host:python agent.py")
        );
        pids.insert(10, "host:node other.js".into());
        assert_eq!(pids.key_at(10, 200), Some("host:node other.js"));
    }

    #[test]
    fn a_session_is_the_outermost_process_of_its_agent_in_the_lineage() {
        let mut pids = AgentPids::default();
        let agent = "host:python agent.py";
        // Two runs of one agent under a driver (1) that is no agent: 10 and 20, and 10's MCP
        // stdio server 11 (an agent process too once it talks MCP) and its child 12.
        pids.insert(10, agent.into());
        pids.insert(11, agent.into());
        pids.insert(20, agent.into());
        assert_eq!(pids.session_at(&[12, 11, 10, 1], 5), Some(10));
        assert_eq!(pids.session_at(&[11, 10, 1], 5), Some(10));
        assert_eq!(pids.session_at(&[20, 1], 5), Some(20));
        assert_eq!(pids.session_at(&[30, 1], 5), None, "nobody's process");
        // Another agent's process started inside this tree is its own session.
        pids.insert(13, "host:node other.js".into());
        assert_eq!(pids.session_at(&[14, 13, 11, 10, 1], 5), Some(13));
    }

    #[test]
    fn the_pids_made_agents_since_a_mark_are_listed_while_remembered() {
        let mut pids = AgentPids::default();
        pids.insert(10, "a".into());
        let mark = pids.made_count();
        assert_eq!(pids.made_agents_since(mark).unwrap().count(), 0);
        pids.insert(11, "a".into());
        pids.exited(11, 5);
        pids.insert_exited(12, "b".into(), 7);
        pids.forget_agents(&HashSet::from(["b".to_string()]));
        let since: Vec<u32> = pids.made_agents_since(mark).unwrap().collect();
        assert_eq!(since, [11, 12], "exits and forgetting list nothing");
        for pid in 100..100 + RECENT_KEPT as u32 {
            pids.insert(pid, "c".into());
        }
        assert!(
            pids.made_agents_since(mark).is_none(),
            "more than are remembered: the caller must look at everything"
        );
        assert_eq!(
            pids.made_agents_since(pids.made_count() - 1)
                .unwrap()
                .collect::<Vec<_>>(),
            [100 + RECENT_KEPT as u32 - 1]
        );
    }

    #[test]
    fn exited_pids_are_kept_as_long_as_the_process_table_keeps_them() {
        let mut pids = AgentPids::default();
        for pid in 0..(EXITED_KEPT as u32 + 10) {
            pids.insert(pid, format!("k{pid}"));
            pids.exited(pid, 1);
        }
        assert_eq!(pids.key_at(0, 0), None);
        assert_eq!(pids.key_at(9, 0), None);
        assert_eq!(pids.key_at(10, 0), Some("k10"));
        assert!(pids.by_pid.len() <= EXITED_KEPT);
    }
}
