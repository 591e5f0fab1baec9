//! What network enforcement adds to a `connect()`: a loop process (this bench binary again,
//! `AGENTSCOPE_CONNECT_LOOP=PORT`) connects a TCP socket to a loopback port nobody listens on
//! (refused at once, so the syscall is all that is timed) and closes it, N times per request.
//! Timed with `agentscope collect` running in each of four ways (it follows only an idle
//! process, so its tracepoints do not capture the loop; only the enforcement hooks differ):
//!
//! - `no_policy`: no `--enforce`, so no socket-address program is attached;
//! - `ungoverned`: a policy governs the idle process: the programs run on the loop's connects
//!   and return at once (two hash lookups);
//! - `governed_allowed`: the loop is governed and its destination is in the allow-list (the
//!   lookups and one LPM trie lookup);
//! - `governed_audited`: the loop is governed in audit mode and its destination is not allowed
//!   (two trie lookups and an event to the ring buffer per connect).
//!
//! On a shared machine the wall-clock differences drown in noise, so the bench also prints the
//! kernel's own accounting of the enforcement programs (`kernel.bpf_stats_enabled`, each
//! program's `run_time_ns`/`run_cnt` from the collector's fds): the time they add per call.
//!
//! Needs root. Run: `cargo bench -p agentscope --bench enforce_connect`.

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

const LOOP_ENV: &str = "AGENTSCOPE_CONNECT_LOOP";

/// The loop process: one line per request (N), answered with the nanoseconds N connects took.
fn connect_loop(port: u16) {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready").unwrap();
    stdout.flush().unwrap();
    for line in stdin.lock().lines() {
        let n: u64 = line.unwrap().trim().parse().unwrap();
        let started = Instant::now();
        for _ in 0..n {
            let refused = std::net::TcpStream::connect(address);
            debug_assert!(refused.is_err());
        }
        writeln!(stdout, "{}", started.elapsed().as_nanos()).unwrap();
        stdout.flush().unwrap();
    }
}

/// A promoted policy allowing `port` on 127.0.0.1 (or another port, for the audited case).
fn policy(dir: &Path, name: &str, port: u16, mode: &str) -> String {
    let spec = format!("  egress:\n    addresses:\n    - 127.0.0.1:{port}\n");
    enforcement_programs::promoted_policy(dir, name, &spec, &["--network", mode])
}

/// `BPF_PROG_TYPE_CGROUP_SOCK_ADDR`: only the enforcement programs have it.
const SOCK_ADDR_PROGRAM_TYPE: u32 = 18;

fn bench(c: &mut Criterion) {
    workload::require_root("enforce_connect");
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut idle = Command::new("sleep").arg("3600").spawn().unwrap();
    let mut workload =
        Loop::start(Command::new(std::env::current_exe().unwrap()).env(LOOP_ENV, port.to_string()));
    let loop_pid = workload.child.id();
    let allowing = policy(dir.path(), "allowing", port, "enforce");
    let elsewhere = policy(
        dir.path(),
        "elsewhere",
        port.wrapping_add(1).max(1),
        "audit",
    );
    let runs: [(&str, Vec<String>); 4] = [
        ("no_policy", vec![]),
        (
            "ungoverned",
            vec!["--enforce".into(), format!("pid:{}={allowing}", idle.id())],
        ),
        (
            "governed_allowed",
            vec!["--enforce".into(), format!("pid:{loop_pid}={allowing}")],
        ),
        (
            "governed_audited",
            vec!["--enforce".into(), format!("pid:{loop_pid}={elsewhere}")],
        ),
    ];
    // Enforcement is pinned and outlives its collector: each variant pins in a bpffs of the
    // bench's own (never the host's /sys/fs/bpf), switched off before the next variant.
    let pins = PrivateBpffs::mount(dir.path());
    let stats = KernelProgramStats::enable();
    for (variant, extra) in runs {
        let collector = if extra.is_empty() {
            Collector::follow(&[idle.id()])
        } else {
            let mut extra = extra;
            extra.extend(["--pin-dir".into(), pins.pin_dir()]);
            Collector::follow_with(&[idle.id()], &extra)
        };
        let sock_addr = |info: &aya::programs::ProgramInfo| {
            info.program_type() as u32 == SOCK_ADDR_PROGRAM_TYPE
        };
        let before = program_stats::program_runs(collector.pid(), sock_addr);
        enforcement_programs::measure(c, "connect_refused", variant, &mut workload);
        let after = program_stats::program_runs(collector.pid(), sock_addr);
        enforcement_programs::print_program_cost(variant, before, after);
        drop(collector);
        pins.switch_off();
    }
    drop(pins);
    drop(stats);
    let _ = idle.kill();
    let _ = idle.wait();
}

fn main() {
    if let Ok(port) = std::env::var(LOOP_ENV) {
        connect_loop(port.parse().expect("a port"));
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion);
    criterion.final_summary();
}
