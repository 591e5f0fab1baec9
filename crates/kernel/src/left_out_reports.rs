//! What the kernel left out of each process's payloads, reported as `payloads_left_out`
//! events: the kernel counts, by process, the bytes it moved without copying them (plain
//! sockets of no protocol agentscope reads, processes left out on request, connections sampled
//! out); the collector reads a process's counts when its exit comes through, and every
//! remaining process's when capture stops. So a coverage report can say whose traffic is
//! missing from the capture, in a live run and in its recording alike (the events are recorded
//! like any other).
//!
//! The report of an exited process comes just before its exit event, while the process table
//! still holds the process as running (its program is still named).

use agentscope_common::LeftOutBytes;

use crate::event::{Event, EventBody, Header};
use crate::kernel::KernelCapture;
use crate::process_table::ProcessTable;

/// Inserts, before each process exit in `batch`, what the kernel left out of that process (if
/// anything), and forgets the kernel's count: the pid's next owner starts from nothing.
pub(crate) fn before_exits(kernel: &mut KernelCapture, batch: &mut Vec<Event>) {
    let mut reports: Vec<(usize, Event)> = Vec::new();
    for (index, event) in batch.iter().enumerate() {
        // One per process, when its last thread ends (whichever thread that is).
        let EventBody::Exit { .. } = event.body else {
            continue;
        };
        if let Some(counts) = kernel.take_left_out(event.header.pid) {
            reports.push((index, report(event.header.clone(), counts, false)));
        }
    }
    if reports.is_empty() {
        return;
    }
    let mut merged = Vec::with_capacity(batch.len() + reports.len());
    let mut reports = reports.into_iter().peekable();
    for (index, event) in std::mem::take(batch).into_iter().enumerate() {
        while let Some((_, report)) = reports.next_if(|(at, _)| *at == index) {
            merged.push(report);
        }
        merged.push(event);
    }
    *batch = merged;
}

/// Capture is stopping: what the kernel left out of each process not seen to exit, taken out
/// of the kernel's counts, stamped `now` (boot-time ns and wall-clock ns).
pub(crate) fn at_stop(
    kernel: &mut KernelCapture,
    processes: &ProcessTable,
    ts_ns: u64,
    time_unix_ns: u64,
) -> Vec<Event> {
    kernel
        .take_all_left_out()
        .into_iter()
        .map(|(pid, counts)| {
            let process = processes.get(pid);
            let header = Header {
                ts_ns,
                time_unix_ns,
                pid,
                tid: pid,
                ppid: process.map_or(0, |p| p.ppid),
                uid: 0,
                gid: 0,
                cgroup_id: 0,
                comm: process.map(|p| p.comm.clone()).unwrap_or_default(),
            };
            report(header, counts, true)
        })
        .collect()
}

fn report(header: Header, counts: LeftOutBytes, running: bool) -> Event {
    Event {
        header,
        body: EventBody::PayloadsLeftOut {
            opaque_socket_bytes: counts.opaque_socket,
            on_request_bytes: counts.on_request,
            sampled_out_bytes: counts.sampled_out,
            running,
        },
    }
}
