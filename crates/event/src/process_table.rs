//! The collector's process table: seeded from /proc at start, kept current by fork, exec and
//! exit events, so every event can be placed in its process lineage, including events from
//! processes that started before the collector.

use std::collections::{HashMap, VecDeque};

use crate::event::{Event, EventBody};
use crate::procfs::ProcEntry;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub exe: Option<String>,
    pub argv: Vec<String>,
    /// True when first seen in /proc rather than born while collecting.
    pub seeded: bool,
    pub exited: bool,
}

/// Exited processes kept for lineage lookups of late events; the oldest go first.
pub const EXITED_KEPT: usize = 4096;

#[derive(Debug, Default, Clone)]
pub struct ProcessTable {
    processes: HashMap<u32, ProcessInfo>,
    exited: VecDeque<u32>,
}

impl ProcessTable {
    pub fn seed(&mut self, entries: &[ProcEntry]) {
        for e in entries {
            self.processes.insert(
                e.pid,
                ProcessInfo {
                    pid: e.pid,
                    ppid: e.ppid,
                    comm: e.comm.clone(),
                    exe: e.exe.as_ref().map(|p| p.display().to_string()),
                    argv: e.argv.clone(),
                    seeded: true,
                    exited: false,
                },
            );
        }
    }

    /// Every process, sorted by pid, and the exited ones in the order they exited: what a
    /// capture's keyframe stores so a replay can start from the middle.
    pub fn export(&self) -> (Vec<ProcessInfo>, Vec<u32>) {
        let mut processes: Vec<ProcessInfo> = self.processes.values().cloned().collect();
        processes.sort_unstable_by_key(|p| p.pid);
        (processes, self.exited.iter().copied().collect())
    }

    /// The inverse of [`ProcessTable::export`].
    pub fn import(processes: Vec<ProcessInfo>, exited: Vec<u32>) -> Self {
        Self {
            processes: processes.into_iter().map(|p| (p.pid, p)).collect(),
            exited: exited.into(),
        }
    }

    pub fn get(&self, pid: u32) -> Option<&ProcessInfo> {
        self.processes.get(&pid)
    }

    pub fn ppid(&self, pid: u32) -> u32 {
        self.processes.get(&pid).map_or(0, |p| p.ppid)
    }

    /// pid, its parent, grandparent, ... as far as known (at most 64 steps, guarding against
    /// cycles from pid reuse).
    pub fn lineage(&self, pid: u32) -> Vec<u32> {
        let mut chain = vec![pid];
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
        self.processes.insert(
            pid,
            ProcessInfo {
                pid,
                ppid,
                comm: comm.to_string(),
                exe: None,
                argv: Vec::new(),
                seeded: false,
                exited: false,
            },
        );
    }

    /// Updates the table from an event (fork, exec and exit change it).
    pub fn update(&mut self, event: &Event) {
        let pid = event.header.pid;
        match &event.body {
            EventBody::Fork { child_pid, .. } => {
                let parent = self.processes.get(&pid).cloned();
                self.processes.insert(
                    *child_pid,
                    ProcessInfo {
                        pid: *child_pid,
                        ppid: pid,
                        comm: event.header.comm.clone(),
                        exe: parent.as_ref().and_then(|p| p.exe.clone()),
                        argv: parent.map(|p| p.argv).unwrap_or_default(),
                        seeded: false,
                        exited: false,
                    },
                );
            }
            EventBody::Exec { filename, argv, .. } => {
                let entry = self.processes.entry(pid).or_insert_with(|| ProcessInfo {
                    pid,
                    ppid: 0,
                    comm: String::new(),
                    exe: None,
                    argv: Vec::new(),
                    seeded: false,
                    exited: false,
                });
                entry.comm = event.header.comm.clone();
                entry.exe = Some(filename.clone());
                entry.argv = argv.clone();
            }
            EventBody::Exit { .. } => {
                if let Some(p) = self.processes.get_mut(&pid) {
                    if !p.exited {
                        p.exited = true;
                        self.exited.push_back(pid);
                    }
                }
                while self.exited.len() > EXITED_KEPT {
                    if let Some(old) = self.exited.pop_front() {
                        if self.processes.get(&old).is_some_and(|p| p.exited) {
                            self.processes.remove(&old);
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
            comm: String::new(),
            exe: None,
            argv: vec![],
        };
        table.seed(&[entry(7, 8), entry(8, 7)]);
        assert_eq!(table.lineage(7), vec![7, 8]);
    }
}
