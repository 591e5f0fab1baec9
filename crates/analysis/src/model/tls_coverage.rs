//! TLS coverage per process: the processes that opened TLS connections, to which servers, and
//! whether agentscope sees their plaintext (the collector's verdict, stamped on each
//! ClientHello event) and actually received any. `agentscope coverage`, the graph JSON
//! (`tls_coverage`) and the console's coverage view read this table.
//!
//! Bounded: at most [`MAX_PROCESSES`] processes (the least recently active is forgotten) and
//! [`MAX_PEERS`] servers per process.

use std::collections::BTreeSet;

use agentscope_event::pid_keyed::PidMap;

use serde::Serialize;

use agentscope_event::TlsCoverage;

/// Processes kept in the table.
pub const MAX_PROCESSES: usize = 4096;
/// Servers (server names, or addresses when no name was sent) kept per process.
pub const MAX_PEERS: usize = 32;

/// One process that talked TLS.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessTlsCoverage {
    pub pid: u32,
    pub program: String,
    /// Server names (SNI) it asked for; `address:port` for a hello without one.
    pub peers: BTreeSet<String>,
    /// ALPN protocols it offered.
    pub alpn: BTreeSet<String>,
    /// LLM providers known from the server names.
    pub providers: BTreeSet<String>,
    /// The collector's verdict at the latest hello (`None`: no verdict recorded, as in an
    /// import of events that did not go through the collector).
    pub coverage: Option<TlsCoverage>,
    /// TLS plaintext records received from this process so far.
    pub plaintext_records: u64,
    /// The agent this process acts for, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub connections: u64,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
}

impl ProcessTlsCoverage {
    /// Whether agentscope sees this process's plaintext: probes attached, or plaintext seen.
    pub fn plaintext_seen(&self) -> bool {
        self.plaintext_records > 0 || self.coverage.as_ref().is_some_and(TlsCoverage::is_seen)
    }

    /// `seen via ...` or `plaintext not visible: <why>`.
    pub fn describe(&self) -> String {
        match &self.coverage {
            Some(coverage) => coverage.describe(),
            None if self.plaintext_records > 0 => "seen (TLS plaintext captured)".into(),
            None => "unknown (no collector verdict recorded)".into(),
        }
    }
}

/// The table (see the module doc).
#[derive(Debug, Default, Clone)]
pub struct TlsCoverageTable {
    by_pid: PidMap<u32, ProcessTlsCoverage>,
    /// Processes forgotten to stay within [`MAX_PROCESSES`].
    pub forgotten: u64,
}

/// What one ClientHello says.
pub struct HelloSeen<'a> {
    pub pid: u32,
    pub program: String,
    pub ts_ns: u64,
    pub peer: Option<String>,
    pub alpn: &'a [String],
    pub provider: Option<&'a str>,
    pub coverage: Option<&'a TlsCoverage>,
}

impl TlsCoverageTable {
    pub fn hello(&mut self, hello: HelloSeen<'_>) -> &mut ProcessTlsCoverage {
        if !self.by_pid.contains_key(&hello.pid) && self.by_pid.len() >= MAX_PROCESSES {
            self.forget_least_recent();
        }
        let entry = self
            .by_pid
            .entry(hello.pid)
            .or_insert_with(|| ProcessTlsCoverage {
                pid: hello.pid,
                program: hello.program.clone(),
                peers: BTreeSet::new(),
                alpn: BTreeSet::new(),
                providers: BTreeSet::new(),
                coverage: None,
                plaintext_records: 0,
                agent: None,
                connections: 0,
                first_seen_ns: hello.ts_ns,
                last_seen_ns: hello.ts_ns,
            });
        // A reused pid or an exec: the program named now is the one talking.
        entry.program = hello.program;
        entry.connections += 1;
        entry.last_seen_ns = entry.last_seen_ns.max(hello.ts_ns);
        if let Some(peer) = hello.peer {
            if entry.peers.len() < MAX_PEERS || entry.peers.contains(&peer) {
                entry.peers.insert(peer);
            }
        }
        for protocol in hello.alpn {
            if entry.alpn.len() < MAX_PEERS {
                entry.alpn.insert(protocol.clone());
            }
        }
        if let Some(provider) = hello.provider {
            entry.providers.insert(provider.to_string());
        }
        if let Some(coverage) = hello.coverage {
            entry.coverage = Some(coverage.clone());
        }
        entry
    }

    pub fn get_mut(&mut self, pid: u32) -> Option<&mut ProcessTlsCoverage> {
        self.by_pid.get_mut(&pid)
    }

    /// TLS plaintext arrived from `pid` (counted only for processes whose hello was seen).
    pub fn plaintext(&mut self, pid: u32, ts_ns: u64) {
        if let Some(entry) = self.by_pid.get_mut(&pid) {
            entry.plaintext_records += 1;
            entry.last_seen_ns = entry.last_seen_ns.max(ts_ns);
        }
    }

    fn forget_least_recent(&mut self) {
        if let Some(pid) = self
            .by_pid
            .values()
            .min_by_key(|e| (e.last_seen_ns, e.pid))
            .map(|e| e.pid)
        {
            self.by_pid.remove(&pid);
            self.forgotten += 1;
        }
    }

    /// Every process, by pid.
    pub fn processes(&self) -> Vec<ProcessTlsCoverage> {
        let mut out: Vec<_> = self.by_pid.values().cloned().collect();
        out.sort_unstable_by_key(|e| e.pid);
        out
    }

    pub fn is_empty(&self) -> bool {
        self.by_pid.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentscope_event::{NotVisibleReason, PlaintextMethod};

    fn hello<'a>(pid: u32, ts_ns: u64, coverage: Option<&'a TlsCoverage>) -> HelloSeen<'a> {
        HelloSeen {
            pid,
            program: format!("/bin/p{pid}"),
            ts_ns,
            peer: Some(format!("host{ts_ns}.example")),
            alpn: &[],
            provider: None,
            coverage,
        }
    }

    #[test]
    fn verdicts_and_plaintext_per_process() {
        let seen = TlsCoverage::Seen {
            method: PlaintextMethod::OpensslSymbols,
            object: "/usr/lib/libssl.so.3".into(),
        };
        let blind = TlsCoverage::NotVisible {
            reason: NotVisibleReason::StackNotRecognised,
        };
        let mut table = TlsCoverageTable::default();
        table.hello(hello(1, 10, Some(&seen)));
        table.hello(hello(2, 11, Some(&blind)));
        table.hello(hello(3, 12, None));
        table.plaintext(3, 13);
        table.plaintext(99, 13);
        let rows = table.processes();
        assert_eq!(rows.len(), 3);
        assert!(rows[0].plaintext_seen());
        assert!(!rows[1].plaintext_seen());
        assert_eq!(
            rows[1].describe(),
            "plaintext not visible: TLS stack not recognised"
        );
        assert!(rows[2].plaintext_seen());
    }

    #[test]
    fn bounded_in_processes_and_peers() {
        let mut table = TlsCoverageTable::default();
        for pid in 0..(MAX_PROCESSES as u32 + 10) {
            table.hello(hello(pid, pid as u64, None));
        }
        assert_eq!(table.processes().len(), MAX_PROCESSES);
        assert_eq!(table.forgotten, 10);
        // The least recently active went first.
        assert!(table.processes().iter().all(|e| e.pid >= 10));
        for ts in 0..(MAX_PEERS as u64 * 3) {
            table.hello(hello(5000, 100_000 + ts, None));
        }
        let row = table
            .processes()
            .into_iter()
            .find(|e| e.pid == 5000)
            .unwrap();
        assert_eq!(row.peers.len(), MAX_PEERS);
    }
}
