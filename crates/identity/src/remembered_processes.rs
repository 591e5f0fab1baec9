//! What was resolved about each process while it ran, for lookups made after it exited.
//!
//! The collector resolves a process's identity when it first matters (an agent is discovered
//! at its first LLM or MCP exchange), and it does so as it processes events: on a loaded node
//! that is hundreds of milliseconds, or more, behind the kernel. By then a short-lived agent
//! may have exited and its container been removed, cgroup and all, and neither /proc nor the
//! cgroup tree says any longer where it ran: it would be taken for a host process. So the
//! resolver keeps, per running process, the identity it last resolved while the process was
//! there (the collector asks at every exec), and answers from it once the process is gone.
//! An entry goes when the process's exit is processed, as its pid may then be reused.

use std::collections::HashMap;
use std::sync::Arc;

use crate::Identity;

/// Processes remembered beyond this many are forgotten all at once: their exits were lost.
const MAX_PROCESSES: usize = 65_536;

#[derive(Debug, Default)]
pub(crate) struct RememberedProcesses {
    by_pid: HashMap<u32, (u64, Arc<Identity>)>,
}

impl RememberedProcesses {
    /// `pid`, in cgroup `cgroup_id`, was resolved to `identity` while it ran.
    pub(crate) fn note(&mut self, pid: u32, cgroup_id: u64, identity: &Arc<Identity>) {
        if let Some((cgroup, known)) = self.by_pid.get(&pid) {
            if *cgroup == cgroup_id && Arc::ptr_eq(known, identity) {
                return;
            }
        }
        if self.by_pid.len() >= MAX_PROCESSES && !self.by_pid.contains_key(&pid) {
            self.by_pid.clear();
        }
        self.by_pid.insert(pid, (cgroup_id, identity.clone()));
    }

    /// What `pid` was resolved to while it ran in `cgroup_id` (a pid seen in another cgroup
    /// is another process, or one that moved: not answered).
    pub(crate) fn get(&self, pid: u32, cgroup_id: u64) -> Option<&Arc<Identity>> {
        self.by_pid
            .get(&pid)
            .filter(|(cgroup, _)| *cgroup == cgroup_id)
            .map(|(_, identity)| identity)
    }

    pub(crate) fn forget(&mut self, pid: u32) {
        self.by_pid.remove(&pid);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_pid.len()
    }
}
