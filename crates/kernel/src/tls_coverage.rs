//! Which analysed binaries each process runs or loads, and from them the verdict on its TLS
//! plaintext ([`TlsCoverage`]) that the collector stamps on the process's ClientHello events.
//!
//! Every executable a process execs and every TLS library it opens is analysed once per file
//! (by device and inode, see [`crate::tls_targets::TlsTargetCache`]); this tracker only keeps,
//! per process, which of those analysed files it uses. A fork inherits its parent's files, an
//! exec replaces them with the new executable, an exit forgets the process. Bounded:
//! [`OBJECTS_PER_PROCESS`] files per process, [`MAX_PROCESSES`] processes.

use std::collections::HashMap;

use agentscope_event::{NotVisibleReason, PlaintextMethod, TlsCoverage};

/// What the analysis of one file found, and whether probing it worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectTls {
    /// Probes are attached to its TLS read/write functions.
    Probed(PlaintextMethod),
    /// No TLS stack agentscope supports was found in it.
    NoTlsStack,
    /// A TLS stack was located but the probes failed validation.
    ValidationFailed(String),
    /// A TLS stack was found but attaching the probes failed.
    AttachFailed(String),
}

/// An analysed file: where it is and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalysedObject {
    pub path: String,
    pub tls: ObjectTls,
}

/// Files kept per process (its executable and the TLS libraries it loaded).
pub const OBJECTS_PER_PROCESS: usize = 8;
/// Processes tracked; beyond this, new processes get no verdict (`NotAnalysed`).
pub const MAX_PROCESSES: usize = 65536;

/// Per process, the analysed files it uses (see the module doc).
#[derive(Debug, Default)]
pub struct ProcessTlsTracker {
    by_pid: HashMap<u32, Vec<AnalysedObject>>,
}

impl ProcessTlsTracker {
    /// `pid` runs or loaded `object`; an exec replaces what the process had.
    pub fn uses(&mut self, pid: u32, object: AnalysedObject, exec: bool) {
        if !self.by_pid.contains_key(&pid) && self.by_pid.len() >= MAX_PROCESSES {
            return;
        }
        let objects = self.by_pid.entry(pid).or_default();
        if exec {
            objects.clear();
        }
        if objects.len() < OBJECTS_PER_PROCESS && !objects.contains(&object) {
            objects.push(object);
        }
    }

    pub fn fork(&mut self, parent: u32, child: u32) {
        if let Some(objects) = self.by_pid.get(&parent).cloned() {
            if self.by_pid.len() < MAX_PROCESSES {
                self.by_pid.insert(child, objects);
            }
        }
    }

    pub fn exit(&mut self, pid: u32) {
        self.by_pid.remove(&pid);
    }

    /// The verdict for `pid`: seen through the first probed file; otherwise the most telling
    /// failure (attach, then validation); otherwise no stack recognised in what it runs.
    pub fn verdict(&self, pid: u32) -> TlsCoverage {
        let objects = self.by_pid.get(&pid).map(Vec::as_slice).unwrap_or_default();
        if let Some((method, path)) = objects.iter().find_map(|o| match &o.tls {
            ObjectTls::Probed(method) => Some((*method, &o.path)),
            _ => None,
        }) {
            return TlsCoverage::Seen {
                method,
                object: path.clone(),
            };
        }
        let failure = |want: fn(&ObjectTls) -> Option<&String>| {
            objects
                .iter()
                .find_map(|o| want(&o.tls).map(|detail| format!("{}: {detail}", o.path)))
        };
        let reason = if let Some(detail) = failure(|t| match t {
            ObjectTls::AttachFailed(d) => Some(d),
            _ => None,
        }) {
            NotVisibleReason::AttachFailed { detail }
        } else if let Some(detail) = failure(|t| match t {
            ObjectTls::ValidationFailed(d) => Some(d),
            _ => None,
        }) {
            NotVisibleReason::ProbeFailedValidation { detail }
        } else if objects.is_empty() {
            NotVisibleReason::NotAnalysed
        } else {
            NotVisibleReason::StackNotRecognised
        };
        TlsCoverage::NotVisible { reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(path: &str, tls: ObjectTls) -> AnalysedObject {
        AnalysedObject {
            path: path.into(),
            tls,
        }
    }

    #[test]
    fn verdicts_follow_exec_fork_and_exit() {
        let mut tracker = ProcessTlsTracker::default();
        assert_eq!(
            tracker.verdict(1),
            TlsCoverage::NotVisible {
                reason: NotVisibleReason::NotAnalysed
            }
        );
        tracker.uses(1, object("/usr/bin/python3", ObjectTls::NoTlsStack), true);
        assert_eq!(
            tracker.verdict(1),
            TlsCoverage::NotVisible {
                reason: NotVisibleReason::StackNotRecognised
            }
        );
        tracker.uses(
            1,
            object(
                "/lib/libssl.so.3",
                ObjectTls::Probed(PlaintextMethod::OpensslSymbols),
            ),
            false,
        );
        let seen = TlsCoverage::Seen {
            method: PlaintextMethod::OpensslSymbols,
            object: "/lib/libssl.so.3".into(),
        };
        assert_eq!(tracker.verdict(1), seen);
        tracker.fork(1, 2);
        assert_eq!(tracker.verdict(2), seen);
        tracker.uses(2, object("/opt/client", ObjectTls::NoTlsStack), true);
        assert!(!tracker.verdict(2).is_seen());
        tracker.uses(
            2,
            object("/opt/libx.so", ObjectTls::AttachFailed("EPERM".into())),
            false,
        );
        assert_eq!(
            tracker.verdict(2),
            TlsCoverage::NotVisible {
                reason: NotVisibleReason::AttachFailed {
                    detail: "/opt/libx.so: EPERM".into()
                }
            }
        );
        tracker.exit(1);
        assert_eq!(
            tracker.verdict(1),
            TlsCoverage::NotVisible {
                reason: NotVisibleReason::NotAnalysed
            }
        );
    }

    #[test]
    fn bounded_per_process() {
        let mut tracker = ProcessTlsTracker::default();
        for i in 0..100 {
            tracker.uses(
                7,
                object(&format!("/lib/l{i}.so"), ObjectTls::NoTlsStack),
                false,
            );
        }
        assert_eq!(tracker.by_pid[&7].len(), OBJECTS_PER_PROCESS);
    }
}
