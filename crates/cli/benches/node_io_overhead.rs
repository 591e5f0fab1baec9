//! What every process on the node pays per `read` and `write` while a collector runs, whether
//! or not the collector follows it: the syscall hooks are global (tracepoints), so a database,
//! a log shipper or a build on the same node runs them on each call, and what they do before
//! deciding a call is not theirs to capture is a tax on the whole node.
//!
//! tests/agents/syscall_io_loop.c runs N calls of 64 bytes, `read` from /dev/zero or `write`
//! to /dev/null (neither a socket, a tracked pipe nor collector output: calls the collector
//! leaves alone), timed in the loop itself. Three settings, one after the other:
//! - `unprobed`: no collector;
//! - `unfollowed`: `agentscope collect --pid P` following another process (a `sleep`), so the
//!   loops are processes the collector does not follow;
//! - `followed`: the collector following the loops themselves (an agent's calls on files).
//!
//! The tax per call is the setting's time per call less `unprobed`'s. With a collector, the
//! kernel's own accounting follows criterion's samples: one batch of `PROGRAM_BATCH` calls with
//! `kernel.bpf_stats_enabled` on (only for that batch: the accounting itself costs each run
//! two clock reads), and the programs that ran for them, with their runs and nanoseconds a
//! call (every process's runs count: the hooks are global, so read it on a quiet machine).
//!
//! Needs root and gcc (`make setup`). Run: `cargo bench -p agentscope --bench
//! node_io_overhead` (or `make bench`).

use std::process::{Child, Command};

use criterion::{criterion_group, criterion_main, Criterion};

#[path = "support/program_stats.rs"]
mod program_stats;
#[path = "support/workload.rs"]
mod workload;
use program_stats::KernelProgramStats;
use workload::{Collector, Loop};

const CALLS: [&str; 2] = ["read", "write"];

/// Calls in the batch the kernel's accounting is read over.
const PROGRAM_BATCH: u64 = 1_000_000;

fn measure(c: &mut Criterion, setting: &str, call: &str, workload: &mut Loop) {
    workload.measure(c, &format!("node_io/{call}"), setting, 30, 5);
}

/// Prints which of `collector`'s programs ran for a batch of the loop's calls, and their
/// nanoseconds a call.
fn print_program_cost(collector: &Collector, setting: &str, call: &str, workload: &mut Loop) {
    let stats = KernelProgramStats::enable();
    let before = program_stats::runs_by_program(collector.pid());
    workload.run(PROGRAM_BATCH);
    let after = program_stats::runs_by_program(collector.pid());
    drop(stats);
    let mut total = 0.0;
    let mut parts = Vec::new();
    for (name, runs, ns) in program_stats::per_call(&before, &after, PROGRAM_BATCH) {
        if runs < 0.5 {
            continue;
        }
        total += ns;
        parts.push(format!("{name} {runs:.2}x {ns:.0} ns"));
    }
    println!(
        "node_io/{call}/{setting}: kernel programs {total:.0} ns a call ({})",
        parts.join(", ")
    );
}

/// A process for the collector to follow that is not one of the loops.
struct Sleeper(Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bench(c: &mut Criterion) {
    workload::require_root("node_io_overhead");
    let dir = tempfile::tempdir().unwrap();
    let binary = workload::build_c_loop("syscall_io_loop", dir.path());
    let mut loops: Vec<Loop> = CALLS
        .iter()
        .map(|call| Loop::start(Command::new(&binary).arg(call)))
        .collect();
    for (call, workload) in CALLS.iter().zip(&mut loops) {
        measure(c, "unprobed", call, workload);
    }
    let sleeper = Sleeper(
        Command::new("sleep")
            .arg("3600")
            .spawn()
            .expect("start sleep"),
    );
    let collector = Collector::follow(&[sleeper.0.id()]);
    for (call, workload) in CALLS.iter().zip(&mut loops) {
        measure(c, "unfollowed", call, workload);
        print_program_cost(&collector, "unfollowed", call, workload);
    }
    drop(collector);
    let pids: Vec<u32> = loops.iter().map(|l| l.child.id()).collect();
    let collector = Collector::follow(&pids);
    for (call, workload) in CALLS.iter().zip(&mut loops) {
        measure(c, "followed", call, workload);
        print_program_cost(&collector, "followed", call, workload);
    }
    drop(collector);
}

criterion_group!(benches, bench);
criterion_main!(benches);
