//! What exec and file enforcement add per call: loop processes (this bench binary again,
//! `AGENTSCOPE_EXEC_OPEN_LOOP=open|exec|interpreter`) open and close a file that is no
//! governed secret (`/etc/hostname`), or spawn `/bin/true`, or `/bin/sh -c true`, N times per
//! request. Timed with `agentscope collect` running in each of these ways (it follows only an
//! idle process, so its tracepoints do not capture the loops; only the enforcement programs
//! differ):
//!
//! - `no_policy`: no `--enforce`, so neither the open-exit programs nor the exec program is
//!   attached;
//! - `ungoverned`: a policy (files and exec enforced) governs the idle process: the programs
//!   run on the loop's calls and return at once (two hash lookups);
//! - `governed`: the loop is governed: an open is judged (the fd through the file table to
//!   the file's inode, its dentry's name, two rule lookups), an exec is looked up in the
//!   allow-list (`/bin/true`), an interpreter's arguments are read and scanned (`sh -c`).
//!
//! An exec costs a fork and a process (hundreds of microseconds), so the wall-clock
//! differences drown; the bench prints the kernel's own accounting of the enforcement programs
//! (`kernel.bpf_stats_enabled`, `run_time_ns`/`run_cnt` of this collector's programs): the
//! time they add per call. The open-exit programs run on every open of the node while
//! measured, so a governed figure mixes in the cheaper ungoverned calls of other processes.
//!
//! Needs root. Run: `cargo bench -p agentscope --bench enforce_exec_open`.

use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use criterion::Criterion;

#[path = "support/enforcement_programs.rs"]
mod enforcement_programs;
#[path = "support/program_stats.rs"]
mod program_stats;
#[path = "support/workload.rs"]
mod workload;
use enforcement_programs::PrivateBpffs;
use program_stats::KernelProgramStats;
use workload::{Collector, Loop};

const LOOP_ENV: &str = "AGENTSCOPE_EXEC_OPEN_LOOP";

/// The loop process: one line per request (N), answered with the nanoseconds N calls took.
fn call_loop(kind: &str) {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready").unwrap();
    stdout.flush().unwrap();
    for line in stdin.lock().lines() {
        let n: u64 = line.unwrap().trim().parse().unwrap();
        let started = Instant::now();
        for _ in 0..n {
            match kind {
                "open" => drop(std::fs::File::open("/etc/hostname").unwrap()),
                "exec" => assert!(Command::new("/bin/true").status().unwrap().success()),
                _ => assert!(Command::new("/bin/sh")
                    .args(["-c", "true"])
                    .status()
                    .unwrap()
                    .success()),
            }
        }
        writeln!(stdout, "{}", started.elapsed().as_nanos()).unwrap();
        stdout.flush().unwrap();
    }
}

/// A promoted policy, files and exec enforced: `/bin/true` and `/bin/sh` (with inline code)
/// may run; no sensitive file may be opened.
fn policy(dir: &Path) -> String {
    let spec =
        "  executables:\n    /bin/true:\n    - []\n    /bin/sh:\n    - [sh, '-c', '{text}']\n";
    enforcement_programs::promoted_policy(
        dir,
        "bench",
        spec,
        &["--exec", "enforce", "--files", "enforce"],
    )
}

fn bench(c: &mut Criterion) {
    workload::require_root("enforce_exec_open");
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path());
    let mut idle = Command::new("sleep").arg("3600").spawn().unwrap();
    let start = |kind: &str| {
        Loop::start(Command::new(std::env::current_exe().unwrap()).env(LOOP_ENV, kind))
    };
    // Enforcement is pinned and outlives its collector: each variant pins in a bpffs of the
    // bench's own (never the host's /sys/fs/bpf), switched off before the next variant.
    let pins = PrivateBpffs::mount(dir.path());
    let stats = KernelProgramStats::enable();
    // (criterion group, loop kind, kernel program name prefix)
    for (group, kind, programs) in [
        ("open", "open", "enforce_sys_exi"),
        ("exec", "exec", "enforce_sched_p"),
        ("exec_interpreter", "interpreter", "enforce_sched_p"),
    ] {
        let mut workload = start(kind);
        let loop_pid = workload.child.id();
        for (variant, scope) in [
            ("no_policy", None),
            ("ungoverned", Some(idle.id())),
            ("governed", Some(loop_pid)),
        ] {
            let collector = match scope {
                None => Collector::follow(&[idle.id()]),
                Some(pid) => Collector::follow_with(
                    &[idle.id()],
                    &[
                        "--enforce".into(),
                        format!("pid:{pid}={policy}"),
                        "--pin-dir".into(),
                        pins.pin_dir(),
                    ],
                ),
            };
            // The programs' names as the kernel keeps them (15 bytes).
            let named = |info: &aya::programs::ProgramInfo| {
                info.name_as_str()
                    .is_some_and(|name| name.starts_with(programs))
            };
            let before = program_stats::program_runs(collector.pid(), named);
            enforcement_programs::measure(c, group, variant, &mut workload);
            let after = program_stats::program_runs(collector.pid(), named);
            enforcement_programs::print_program_cost(&format!("{group}/{variant}"), before, after);
            drop(collector);
            if scope.is_some() {
                pins.switch_off();
            }
        }
    }
    drop(pins);
    drop(stats);
    let _ = idle.kill();
    let _ = idle.wait();
}

fn main() {
    if let Ok(kind) = std::env::var(LOOP_ENV) {
        call_loop(&kind);
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
