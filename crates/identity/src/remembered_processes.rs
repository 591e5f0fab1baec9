//! What was read about each process while it ran, for lookups made after it exited.
//!
//! The collector resolves a process's identity when it first matters (an agent is discovered
//! at its first LLM or MCP exchange), and it does so as it processes events: on a loaded node
//! that is hundreds of milliseconds, or more, behind the kernel. By then a short-lived agent
//! may have exited and its container been removed, cgroup and all, and neither /proc nor the
//! cgroup tree says any longer where it ran: it would be taken for a host process. So the
//! resolver keeps, per running process, the identity it last resolved while the process was
//! there (the collector asks at every exec), and the passwd cache which file named its users,
//! and both answer from that once the process is gone. An entry goes when the process's exit
//! is processed, as its pid may then be reused.

use std::collections::HashMap;

/// Processes remembered beyond this many are forgotten all at once: their exits were lost.
const MAX_PROCESSES: usize = 65_536;

/// One `T` per running process, until its exit is told ([`RememberedProcesses::forget`]).
#[derive(Debug)]
pub(crate) struct RememberedProcesses<T> {
    by_pid: HashMap<u32, T>,
}

impl<T> Default for RememberedProcesses<T> {
    fn default() -> Self {
        Self {
            by_pid: HashMap::new(),
        }
    }
}

impl<T> RememberedProcesses<T> {
    /// What was read about `pid` while it ran, replacing what was read before.
    pub(crate) fn note(&mut self, pid: u32, value: T) {
        if self.by_pid.len() >= MAX_PROCESSES && !self.by_pid.contains_key(&pid) {
            self.by_pid.clear();
        }
        self.by_pid.insert(pid, value);
    }

    pub(crate) fn get(&self, pid: u32) -> Option<&T> {
        self.by_pid.get(&pid)
    }

    pub(crate) fn forget(&mut self, pid: u32) {
        self.by_pid.remove(&pid);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_pid.len()
    }
}
