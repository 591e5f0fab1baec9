//! The collector's process table: seeded from /proc at start, kept current by fork, exec and
//! exit events, so every event can be placed in its process lineage, including events from
//! processes that started before the collector.
//!
//! The table is bounded ([`PROCESSES_KEPT`]): a node whose exits are lost (a full ring
//! buffer) or that runs more processes than that would otherwise grow it without end. Past
//! the bound the least recently seen tenth is forgotten, counted ([`ProcessTable::forgotten`]),
//! and handed to whoever keeps per-process state ([`ProcessTable::take_forgotten`]), so their
//! tables follow.

use std::collections::VecDeque;

use agentscope_memory_budget::tombstone_sweep::TombstoneSweep;

use crate::pid_keyed::PidMap;

use crate::event::{Event, EventBody};
use crate::procfs::ProcEntry;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    pub comm: crate::event::Comm,
    pub exe: Option<String>,
    pub argv: Vec<String>,
    /// True when first seen in /proc rather than born while collecting.
    pub seeded: bool,
    pub exited: bool,
}

/// Exited processes kept for lineage lookups of late events; the oldest go first.
pub const EXITED_KEPT: usize = 4096;

/// Processes kept at most, running and exited: past it the least recently seen tenth is
/// forgotten. Far above what a node runs at once (a few thousand), so it is reached only when
/// exits were lost or by a flood of short-lived processes whose exits have not arrived yet.
/// Each entry costs about 160 bytes besides its command line (a heap profile: 22,000
/// synthetic processes held 3.5 MiB), so the table stays within about 5 MiB plus command
/// lines; what other tables keep per process (identity answers, agent pids) is forgotten with
/// it.
pub const PROCESSES_KEPT: usize = 32_768;

/// Forgotten pids waiting for [`ProcessTable::take_forgotten`]; a table nobody drains (the
/// collector's own) keeps only the latest ones.
const FORGOTTEN_PENDING: usize = PROCESSES_KEPT / 5;

/// A process and when it was last seen.
#[derive(Debug, Clone)]
struct Tracked {
    info: ProcessInfo,
    /// [`ProcessTable::clock`] at its latest event.
    seen: u64,
}

#[derive(Debug, Default, Clone)]
pub struct ProcessTable {
    processes: PidMap<u32, Tracked>,
    exited: VecDeque<u32>,
    /// Events seen: the time of least-recently-seen eviction, which then depends only on the
    /// events in order (a replay forgets what the live run forgot).
    clock: u64,
    /// Processes forgotten to stay within [`PROCESSES_KEPT`].
    forgotten: u64,
    forgotten_pending: VecDeque<u32>,
    /// Clears the tombstones of the forgotten (see [`TombstoneSweep`]).
    sweep: TombstoneSweep,
}

impl ProcessTable {
    pub fn seed(&mut self, entries: &[ProcEntry]) {
        for e in entries {
            self.insert(ProcessInfo {
                pid: e.pid,
                ppid: e.ppid,
                comm: e.comm.as_str().into(),
                exe: e.exe.as_ref().map(|p| p.display().to_string()),
                argv: e.argv.clone(),
                seeded: true,
                exited: false,
            });
        }
    }

    /// Every process, sorted by pid, and the exited ones in the order they exited: what a
    /// capture's keyframe stores so a replay can start from the middle.
    pub fn export(&self) -> (Vec<ProcessInfo>, Vec<u32>) {
        let mut processes: Vec<ProcessInfo> =
            self.processes.values().map(|p| p.info.clone()).collect();
        processes.sort_unstable_by_key(|p| p.pid);
        (processes, self.exited.iter().copied().collect())
    }

    /// The inverse of [`ProcessTable::export`].
    pub fn import(processes: Vec<ProcessInfo>, exited: Vec<u32>) -> Self {
        let mut table = Self {
            exited: exited.into(),
            ..Default::default()
        };
        for info in processes {
            table.insert(info);
        }
        table
    }

    pub fn get(&self, pid: u32) -> Option<&ProcessInfo> {
        self.processes.get(&pid).map(|p| &p.info)
    }

    pub fn ppid(&self, pid: u32) -> u32 {
        self.processes.get(&pid).map_or(0, |p| p.info.ppid)
    }

    /// Processes known (running, and exited ones kept for late lookups).
    pub fn len(&self) -> usize {
        self.processes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.processes.is_empty()
    }

    /// Processes forgotten so far to stay within [`PROCESSES_KEPT`].
    pub fn forgotten(&self) -> u64 {
        self.forgotten
    }

    /// The pids forgotten since the last call (at most the latest [`PROCESSES_KEPT`] / 5), for
    /// whoever keeps per-process state: it forgets them too, as if they had exited.
    pub fn take_forgotten(&mut self) -> Vec<u32> {
        self.forgotten_pending.drain(..).collect()
    }

    /// pid, its parent, grandparent, ... as far as known (at most 64 steps, guarding against
    /// cycles from pid reuse).
    pub fn lineage(&self, pid: u32) -> Vec<u32> {
        // Room for a usual depth (a shell or a runtime, a container's init, the host's): a
        // chain grown from one element reallocated three times.
        let mut chain = Vec::with_capacity(8);
        chain.push(pid);
        let mut current = pid;
        while chain.len() < 64 {
            let parent = self.ppid(current);
            if parent == 0 || chain.contains(&parent) {
                break;
            }
            chain.push(parent);
            current = parent;
        }
        chain
    }

    /// Updates the table from an event and fills the event's `ppid`.
    pub fn apply(&mut self, event: &mut Event) {
        self.update(event);
        event.header.ppid = self.ppid(event.header.pid);
    }

    /// Learns a process from an event header when the table has not seen it (it started
    /// before capture and was not seeded, as in a recording), so lineage still works.
    pub fn learn(&mut self, pid: u32, ppid: u32, comm: &str) {
        if pid == 0 || self.processes.contains_key(&pid) {
            return;
        }
        self.insert(ProcessInfo {
            pid,
            ppid,
            comm: comm.into(),
            exe: None,
            argv: Vec::new(),
            seeded: false,
            exited: false,
        });
    }

    /// Adds or replaces a process, seen now, making room first when the table is full.
    fn insert(&mut self, info: ProcessInfo) {
        if !self.processes.contains_key(&info.pid) && self.processes.len() >= PROCESSES_KEPT {
            self.forget_least_recently_seen();
        }
        let seen = self.clock;
        self.processes.insert(info.pid, Tracked { info, seen });
    }

    /// Forgets the least recently seen tenth in one pass (amortised, as the graph evicts).
    fn forget_least_recently_seen(&mut self) {
        let mut by_age: Vec<(u64, u32)> = self
            .processes
            .iter()
            .map(|(pid, p)| (p.seen, *pid))
            .collect();
        by_age.sort_unstable();
        for (_, pid) in by_age.into_iter().take(PROCESSES_KEPT / 10) {
            self.processes.remove(&pid);
            self.forgotten += 1;
            if self.forgotten_pending.len() >= FORGOTTEN_PENDING {
                self.forgotten_pending.pop_front();
            }
            self.forgotten_pending.push_back(pid);
        }
        // Kept at its bound, the table would otherwise double after about 15 bounds' worth
        // of processes (see the sweep's module doc).
        self.sweep.after_removals(&mut self.processes);
    }

    /// Updates the table from an event (fork, exec and exit change it).
    pub fn update(&mut self, event: &Event) {
        let pid = event.header.pid;
        self.clock += 1;
        if let Some(p) = self.processes.get_mut(&pid) {
            p.seen = self.clock;
        }
        match &event.body {
            EventBody::Fork { child_pid, .. } => {
                let parent = self.get(pid).cloned();
                self.insert(ProcessInfo {
                    pid: *child_pid,
                    ppid: pid,
                    comm: event.header.comm.clone(),
                    exe: parent.as_ref().and_then(|p| p.exe.clone()),
                    argv: parent.map(|p| p.argv).unwrap_or_default(),
                    seeded: false,
                    exited: false,
                });
            }
            EventBody::Exec { filename, argv, .. } => {
                if !self.processes.contains_key(&pid) {
                    self.insert(ProcessInfo {
                        pid,
                        ppid: 0,
                        comm: Default::default(),
                        exe: None,
                        argv: Vec::new(),
                        seeded: false,
                        exited: false,
                    });
                }
                if let Some(entry) = self.processes.get_mut(&pid) {
                    entry.info.comm = event.header.comm.clone();
                    entry.info.exe = Some(filename.clone());
                    entry.info.argv = argv.clone();
                }
            }
            EventBody::Exit { .. } => {
                if let Some(p) = self.processes.get_mut(&pid) {
                    if !p.info.exited {
                        p.info.exited = true;
                        self.exited.push_back(pid);
                    }
                }
                while self.exited.len() > EXITED_KEPT {
                    if let Some(old) = self.exited.pop_front() {
                        if self.processes.get(&old).is_some_and(|p| p.info.exited) {
                            self.processes.remove(&old);
                            // A busy node's exits churn the table as the bound does.
                            self.sweep.after_removals(&mut self.processes);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Header;

    fn event(pid: u32, body: EventBody) -> Event {
        let header = Header {
            ts_ns: 0,
            time_unix_ns: 0,
            pid,
            tid: pid,
            ppid: 0,
            uid: 0,
            gid: 0,
            cgroup_id: 0,
            comm: "sh".into(),
        };
        Event { header, body }
    }

    #[test]
    fn fork_exec_exit_keep_lineage_and_fill_ppid() {
        let mut table = ProcessTable::default();
        let seeded = |pid, ppid| ProcEntry {
            pid,
            ppid,
            uid: 0,
            comm: "init".into(),
            exe: None,
            argv: vec![],
        };
        table.seed(&[seeded(1, 0), seeded(50, 1)]);
        table.apply(&mut event(
            50,
            EventBody::Fork {
                child_pid: 60,
                clone_flags: 0,
            },
        ));
        let mut exec = event(
            60,
            EventBody::Exec {
                filename: "/bin/echo".into(),
                argv: vec!["echo".into()],
                argv_truncated: false,
                filename_truncated: false,
            },
        );
        table.apply(&mut exec);
        assert_eq!(exec.header.ppid, 50, "the event is placed under its parent");
        assert_eq!(table.get(60).unwrap().exe.as_deref(), Some("/bin/echo"));
        assert!(table.get(50).unwrap().seeded && !table.get(60).unwrap().seeded);
        assert_eq!(table.lineage(60), vec![60, 50, 1]);
        table.apply(&mut event(60, EventBody::Exit { exit_code: Some(0) }));
        assert!(
            table.get(60).unwrap().exited,
            "exited processes stay for late lineage lookups"
        );
        assert_eq!(table.lineage(60), vec![60, 50, 1]);
    }

    #[test]
    fn lineage_stops_on_pid_reuse_cycles() {
        let mut table = ProcessTable::default();
        let entry = |pid, ppid| ProcEntry {
            pid,
            ppid,
            uid: 0,
            comm: Default::default(),
            exe: None,
            argv: vec![],
        };
        table.seed(&[entry(7, 8), entry(8, 7)]);
        assert_eq!(table.lineage(7), vec![7, 8]);
    }

    /// Processes whose exits never arrive (lost, or not yet) cannot grow the table past its
    /// bound: the least recently seen are forgotten, counted and handed out; one that keeps
    /// acting stays, whenever it started.
    #[test]
    fn the_least_recently_seen_are_forgotten_past_the_bound() {
        let mut table = ProcessTable::default();
        table.seed(&[ProcEntry {
            pid: 1,
            ppid: 0,
            uid: 0,
            comm: "init".into(),
            exe: None,
            argv: vec![],
        }]);
        let offered = PROCESSES_KEPT as u32 * 3;
        let mut handed_out = Vec::new();
        for n in 0..offered {
            // The long-lived process acts now and then; every other process acts once.
            if n % 1000 == 0 {
                table.update(&event(1, EventBody::Close { fd: 3 }));
            }
            let pid = 1000 + n;
            table.learn(pid, 1, "worker");
            table.update(&event(pid, EventBody::Close { fd: 3 }));
            handed_out.extend(table.take_forgotten());
            assert!(table.len() <= PROCESSES_KEPT);
        }
        assert_eq!(
            table.len() as u64 + table.forgotten(),
            u64::from(offered) + 1
        );
        assert_eq!(handed_out.len() as u64, table.forgotten());
        assert!(
            table.get(1).is_some(),
            "the process that keeps acting stays"
        );
        assert!(table.get(1000).is_none(), "the oldest idle one went first");
        assert!(table.get(1000 + offered - 1).is_some());
        assert!(!handed_out.contains(&1));
    }

    /// A node whose exits are lost keeps the table at its bound for good, forgetting a tenth
    /// at a time. Removals leave tombstones where a lookup may have probed past; they used to
    /// pile up until, after about 15 bounds' worth of processes, the hash table found no room
    /// and doubled (8 MB more, at a moment nobody chose). The table keeps its size.
    #[test]
    fn a_table_churning_at_its_bound_never_grows() {
        let mut table = ProcessTable::default();
        for n in 0..PROCESSES_KEPT as u32 {
            table.learn(1000 + n, 1, "worker");
        }
        let full = table.processes.capacity();
        for n in PROCESSES_KEPT as u32..20 * PROCESSES_KEPT as u32 {
            table.learn(1000 + n, 1, "worker");
            table.take_forgotten();
        }
        assert!(table.len() <= PROCESSES_KEPT);
        // `capacity` counts entries plus room left: a doubled table would hold about twice.
        assert!(
            table.processes.capacity() <= full,
            "the table grew from room for {full} to {}",
            table.processes.capacity()
        );
    }
}
