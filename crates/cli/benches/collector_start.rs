//! How long `agentscope collect` takes from its start to collecting, and the CPU it spends
//! getting there: what every `kubectl debug … agentscope tui`, every DaemonSet restart and
//! every end-to-end test pays before the first event. Most of it is the kernel verifying the
//! collector's programs (DEVELOPERS.md, "Kernel facts that shaped the design"), which the
//! kernel charges to the loading process, so a program that got dearer to verify shows here.
//!
//! Each round starts a collector that follows this bench's own (idle) process, waits for its
//! `agentscope: collecting` line, reads its CPU time, and stops it. Prints the median (min..max)
//! of the rounds' wall time and CPU time. Environment: `START_ROUNDS` (default 10),
//! `AGENTSCOPE_BIN` (the collector to measure; default the bench's own build; set
//! `AGENTSCOPE_BIN_B` too to alternate two builds round by round).
//!
//! Needs root. Run: `cargo bench -p agentscope --bench collector_start`.

use std::path::PathBuf;
use std::time::Instant;

// Only its reading of a process's CPU clock is used here.
#[allow(dead_code)]
#[path = "../../../tests/support/quiescence.rs"]
mod quiescence;
// Only its collector is used here, not the loops.
#[allow(dead_code)]
#[path = "support/workload.rs"]
mod workload;
use workload::Collector;

fn median_and_range(values: &mut [f64]) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "{:.0} ({:.0}..{:.0})",
        values[values.len() / 2],
        values[0],
        values[values.len() - 1]
    )
}

fn main() {
    workload::require_root("collector_start");
    // `cargo test --benches` runs this without `--bench`: one round, as a smoke test.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let rounds: usize = if smoke {
        1
    } else {
        std::env::var("START_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10)
            .max(1)
    };
    let mut builds = vec![std::env::var_os("AGENTSCOPE_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_agentscope")),
        PathBuf::from,
    )];
    builds.extend(std::env::var_os("AGENTSCOPE_BIN_B").map(PathBuf::from));
    let me = std::process::id().to_string();
    let args: Vec<String> = [
        "collect",
        "--quiet",
        "--ready-message",
        "--no-kubernetes",
        "--pid",
        &me,
    ]
    .map(String::from)
    .into();
    let mut wall_ms = vec![Vec::new(); builds.len()];
    let mut cpu_ms = vec![Vec::new(); builds.len()];
    for round in 0..rounds {
        for (i, build) in builds.iter().enumerate() {
            let started = Instant::now();
            let collector = Collector::start(build, &args);
            let wall = started.elapsed().as_secs_f64() * 1e3;
            let cpu = quiescence::process_cpu_ns(collector.pid())
                .expect("the collector's CPU clock") as f64
                / 1e6;
            drop(collector);
            println!(
                "round {} {}: collecting after {wall:.0} ms, {cpu:.0} ms of CPU",
                round + 1,
                build.display()
            );
            wall_ms[i].push(wall);
            cpu_ms[i].push(cpu);
        }
    }
    println!("\nmedian (min..max) over {rounds} rounds, start to collecting:");
    for (i, build) in builds.iter().enumerate() {
        println!(
            "{}: wall {} ms, CPU {} ms",
            build.display(),
            median_and_range(&mut wall_ms[i]),
            median_and_range(&mut cpu_ms[i])
        );
    }
}
