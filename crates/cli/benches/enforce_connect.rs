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
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::Criterion;

#[path = "support/workload.rs"]
mod workload;
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
    let baseline = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &baseline,
        format!(
            "apiVersion: agentscope.dev/v1\nkind: AgentBaseline\nmetadata:\n  agent: bench\n  \
             status: complete\n  learningPeriodSeconds: 600\nspec:\n  egress:\n    addresses:\n    \
             - 127.0.0.1:{port}\n"
        ),
    )
    .unwrap();
    let promoted = dir.join(format!("{name}-policy.yaml"));
    let status = Command::new(env!("CARGO_BIN_EXE_agentscope"))
        .args(["baseline", "promote"])
        .arg(&baseline)
        .args(["--network", mode, "-w"])
        .arg(&promoted)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "promote failed");
    promoted.display().to_string()
}

/// `BPF_PROG_TYPE_CGROUP_SOCK_ADDR`: only the enforcement programs have it.
const SOCK_ADDR_PROGRAM_TYPE: &str = "18";

/// Runs and nanoseconds of the collector's socket-address programs (the kernel counts them
/// while `kernel.bpf_stats_enabled` is 1), from its fds' fdinfo.
fn enforcement_runs(collector: u32) -> (u64, u64) {
    let (mut runs, mut ns) = (0, 0);
    let Ok(fds) = std::fs::read_dir(format!("/proc/{collector}/fdinfo")) else {
        return (0, 0);
    };
    for fd in fds.flatten() {
        let text = std::fs::read_to_string(fd.path()).unwrap_or_default();
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        if field("prog_type:").as_deref() != Some(SOCK_ADDR_PROGRAM_TYPE) {
            continue;
        }
        runs += field("run_cnt:")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        ns += field("run_time_ns:")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    (runs, ns)
}

fn measure(c: &mut Criterion, variant: &str, workload: &mut Loop) {
    let mut group = c.benchmark_group("connect_refused");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    group.bench_function(variant, |b| b.iter_custom(|n| workload.run(n)));
    group.finish();
}

fn bench(c: &mut Criterion) {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "enforce_connect loads eBPF programs: run as root"
    );
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
    let stats = "/proc/sys/kernel/bpf_stats_enabled";
    let stats_before = std::fs::read_to_string(stats).unwrap_or_default();
    let _ = std::fs::write(stats, "1");
    for (variant, extra) in runs {
        let collector = if extra.is_empty() {
            Collector::follow(&[idle.id()])
        } else {
            let mut extra = extra;
            extra.extend(["--pin-dir".into(), pins.pin_dir()]);
            Collector::follow_with(&[idle.id()], &extra)
        };
        measure(c, variant, &mut workload);
        let (runs, ns) = enforcement_runs(collector.pid());
        if runs > 0 {
            println!(
                "{variant}: the enforcement programs ran {runs} times, {:.0} ns per run (kernel accounting)",
                ns as f64 / runs as f64
            );
        }
        drop(collector);
        pins.switch_off();
    }
    drop(pins);
    let _ = std::fs::write(stats, stats_before.trim());
    let _ = idle.kill();
    let _ = idle.wait();
}

/// A bpffs instance mounted on a directory of the bench's, unmounted (releasing whatever is
/// still pinned) when dropped.
struct PrivateBpffs(std::path::PathBuf);

impl PrivateBpffs {
    fn mount(dir: &std::path::Path) -> PrivateBpffs {
        let path = dir.join("bpffs");
        std::fs::create_dir_all(&path).unwrap();
        let target = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mount(2) with NUL-terminated strings.
        let rc = unsafe {
            libc::mount(
                c"bpf".as_ptr(),
                target.as_ptr(),
                c"bpf".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        assert_eq!(
            rc,
            0,
            "mounting a bpffs: {}",
            std::io::Error::last_os_error()
        );
        PrivateBpffs(path)
    }

    fn pin_dir(&self) -> String {
        self.0.join("agentscope").display().to_string()
    }

    fn switch_off(&self) {
        let status = Command::new(env!("CARGO_BIN_EXE_agentscope"))
            .args(["enforce", "off", "--pin-dir", &self.pin_dir()])
            .status()
            .unwrap();
        assert!(status.success(), "agentscope enforce off");
    }
}

impl Drop for PrivateBpffs {
    fn drop(&mut self) {
        let target = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: umount2(2) of the mount made in `mount`.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
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
