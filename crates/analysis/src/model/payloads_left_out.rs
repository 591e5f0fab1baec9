//! What the kernel left out of each process's payloads (the collector's `payloads_left_out`
//! events): the bytes of plain sockets of no protocol agentscope reads, of processes left
//! out on request and of connections sampled out, by process. `agentscope coverage` and the
//! graph JSON (`payloads_left_out`) read this table, so a report says whose traffic the capture
//! does not hold, not only that some is missing (the collector's summary has the node-wide
//! totals).
//!
//! Bounded: at most [`MAX_PROCESSES`] reports; past it the oldest go, counted.

use std::collections::VecDeque;

use serde::Serialize;

/// Reports kept.
pub const MAX_PROCESSES: usize = 4096;

/// What the kernel left out of one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessPayloadsLeftOut {
    pub pid: u32,
    pub program: String,
    /// The agent this process acts for, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Bytes of its plain sockets found to carry no protocol agentscope reads.
    pub opaque_socket_bytes: u64,
    /// Bytes left out on request (`--no-payloads-of`).
    pub on_request_bytes: u64,
    /// Bytes of its connections sampled out (`--sample-connections`).
    pub sampled_out_bytes: u64,
    /// Counted until capture stopped, the process still running (otherwise until it exited).
    pub running: bool,
    pub reported_ns: u64,
}

impl ProcessPayloadsLeftOut {
    /// `N bytes of sockets of no protocol agentscope reads, M bytes on request, K bytes of
    /// sampled-out connections`, leaving out a kind with no bytes.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.opaque_socket_bytes > 0 {
            parts.push(format!(
                "{} bytes of sockets of no protocol agentscope reads",
                self.opaque_socket_bytes
            ));
        }
        if self.on_request_bytes > 0 {
            parts.push(format!("{} bytes on request", self.on_request_bytes));
        }
        if self.sampled_out_bytes > 0 {
            parts.push(format!(
                "{} bytes of sampled-out connections",
                self.sampled_out_bytes
            ));
        }
        if parts.is_empty() {
            parts.push("nothing".to_string());
        }
        parts.join(", ")
    }
}

/// The reports, oldest first.
#[derive(Debug, Default)]
pub struct PayloadsLeftOutTable {
    reports: VecDeque<ProcessPayloadsLeftOut>,
    /// Reports pushed out by newer ones past [`MAX_PROCESSES`].
    dropped: u64,
}

impl PayloadsLeftOutTable {
    /// A report arrived. One for a process still running replaces an earlier report of the
    /// same pid that was also still running (counts are totals since capture started); a
    /// report after an exit is another process's (the pid was reused).
    pub fn report(&mut self, report: ProcessPayloadsLeftOut) {
        if let Some(earlier) = self
            .reports
            .iter_mut()
            .rev()
            .find(|earlier| earlier.pid == report.pid && earlier.running)
        {
            *earlier = report;
            return;
        }
        if self.reports.len() == MAX_PROCESSES {
            self.reports.pop_front();
            self.dropped += 1;
        }
        self.reports.push_back(report);
    }

    /// The reports, most bytes left out first (then by pid).
    pub fn processes(&self) -> Vec<ProcessPayloadsLeftOut> {
        let mut out: Vec<ProcessPayloadsLeftOut> = self.reports.iter().cloned().collect();
        out.sort_by(|a, b| {
            let total = |r: &ProcessPayloadsLeftOut| {
                r.opaque_socket_bytes
                    .saturating_add(r.on_request_bytes)
                    .saturating_add(r.sampled_out_bytes)
            };
            total(b).cmp(&total(a)).then(a.pid.cmp(&b.pid))
        });
        out
    }

    /// Reports pushed out past the bound.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(pid: u32, opaque: u64, on_request: u64, running: bool) -> ProcessPayloadsLeftOut {
        ProcessPayloadsLeftOut {
            pid,
            program: format!("/bin/p{pid}"),
            agent: None,
            opaque_socket_bytes: opaque,
            on_request_bytes: on_request,
            sampled_out_bytes: 0,
            running,
            reported_ns: 1,
        }
    }

    #[test]
    fn a_running_report_replaces_the_earlier_running_one_and_an_exit_is_final() {
        let mut table = PayloadsLeftOutTable::default();
        table.report(report(7, 10, 0, false));
        table.report(report(8, 5, 0, true));
        table.report(report(8, 50, 3, true));
        // pid 7 reused by another process, which is still running.
        table.report(report(7, 1, 0, true));
        let processes = table.processes();
        assert_eq!(processes.len(), 3);
        assert_eq!(
            (
                processes[0].pid,
                processes[0].opaque_socket_bytes,
                processes[0].on_request_bytes
            ),
            (8, 50, 3)
        );
        assert_eq!(
            (processes[1].pid, processes[1].opaque_socket_bytes),
            (7, 10)
        );
        assert_eq!((processes[2].pid, processes[2].opaque_socket_bytes), (7, 1));
        assert_eq!(
            processes[0].describe(),
            "50 bytes of sockets of no protocol agentscope reads, 3 bytes on request"
        );
    }

    #[test]
    fn the_table_is_bounded_and_counts_what_it_pushed_out() {
        let mut table = PayloadsLeftOutTable::default();
        for pid in 0..(MAX_PROCESSES as u32 + 10) {
            table.report(report(pid, 1, 0, false));
        }
        assert_eq!(table.processes().len(), MAX_PROCESSES);
        assert_eq!(table.dropped(), 10);
        assert!(table.processes().iter().all(|r| r.pid >= 10));
    }

    #[test]
    fn sampled_out_bytes_count_in_the_order_and_the_description() {
        let mut table = PayloadsLeftOutTable::default();
        table.report(report(3, 100, 0, false));
        table.report(ProcessPayloadsLeftOut {
            sampled_out_bytes: 150,
            ..report(4, 0, 0, false)
        });
        let processes = table.processes();
        assert_eq!(processes[0].pid, 4);
        assert_eq!(
            processes[0].describe(),
            "150 bytes of sampled-out connections"
        );
    }
}
