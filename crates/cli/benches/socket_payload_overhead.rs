//! What capturing plain-socket payloads costs per call, and whether a vectored call costs more
//! than a plain one: a 1 KiB round trip on a loopback TCP connection (one send and one receive,
//! both captured) in tests/agents/socket_io_loop.c, moved with `write`/`read`, with
//! `writev`/`readv` of 8 segments, or with `sendmsg`/`recvmsg` of 8 segments, timed without
//! the collector and while `agentscope collect --json --pid PID` follows the loops. The cost
//! per captured call is (probed − unprobed) / 2. A fresh connection per batch, so the collector
//! sees each connected. The loops' bytes are no protocol agentscope reads: `probed` runs the
//! collector with `--copy-opaque-payloads` (every call copied, the cost of capturing), `muted`
//! without (the kernel stops copying a connection once the collector has read its first
//! call: the cost of a call left out, plus the first calls of each batch's connection).
//! Needs root and gcc (`make setup`).
//! Run: `cargo bench -p agentscope --bench socket_payload_overhead` (or `make bench`).

use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion};

#[path = "support/workload.rs"]
mod workload;
use workload::{Collector, Loop};

fn measure(c: &mut Criterion, mode: &str, variant: &str, workload: &mut Loop) {
    workload.measure(c, &format!("socket_round_trip/{mode}"), variant, 20, 6);
}

const MODES: [&str; 3] = ["write", "writev", "sendmsg"];

fn bench(c: &mut Criterion) {
    workload::require_root("socket_payload_overhead");
    let dir = tempfile::tempdir().unwrap();
    let binary = workload::build_c_loop("socket_io_loop", dir.path());
    let mut loops: Vec<Loop> = MODES
        .iter()
        .map(|m| Loop::start(Command::new(&binary).arg(m)))
        .collect();
    for (mode, workload) in MODES.iter().zip(&mut loops) {
        measure(c, mode, "unprobed", workload);
    }
    let pids: Vec<u32> = loops.iter().map(|l| l.child.id()).collect();
    let collector = Collector::follow_with(&pids, &["--copy-opaque-payloads".to_string()]);
    for (mode, workload) in MODES.iter().zip(&mut loops) {
        measure(c, mode, "probed", workload);
    }
    drop(collector);
    let collector = Collector::follow(&pids);
    for (mode, workload) in MODES.iter().zip(&mut loops) {
        measure(c, mode, "muted", workload);
    }
    drop(collector);
}

criterion_group!(benches, bench);
criterion_main!(benches);
