//! What capturing plain-socket payloads costs per call, and whether a vectored call costs more
//! than a plain one: a 1 KiB round trip on a loopback TCP connection (one send and one receive,
//! both captured) in tests/agents/socket_io_loop.c, moved with `write`/`read`, with
//! `writev`/`readv` of 8 segments, or with `sendmsg`/`recvmsg` of 8 segments, timed without
//! the collector and while `agentscope collect --json --pid PID` follows the loops. The cost
//! per captured call is (probed − unprobed) / 2. A fresh connection per batch, so the collector
//! sees each connected. Needs root and gcc (`make setup`).
//! Run: `cargo bench -p agentscope --bench socket_payload_overhead` (or `make bench`).

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

/// One loop process (one way of moving the bytes) that runs round trips on request.
struct Loop {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Loop {
    fn start(binary: &Path, mode: &str) -> Loop {
        let mut child = Command::new(binary)
            .arg(mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the socket loop");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the socket loop did not start");
        Loop {
            child,
            stdin,
            stdout,
        }
    }

    /// Runs `n` round trips; the time the loop itself measured.
    fn run(&mut self, n: u64) -> Duration {
        writeln!(self.stdin, "{n}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        Duration::from_nanos(line.trim().parse().expect("elapsed ns"))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `agentscope collect` following some pids, its events discarded.
struct Collector(Child);

impl Collector {
    fn follow(pids: &[u32]) -> Collector {
        let mut command = Command::new(env!("CARGO_BIN_EXE_agentscope"));
        command.args(["collect", "--json", "--ready-message", "--no-kubernetes"]);
        for pid in pids {
            command.args(["--pid", &pid.to_string()]);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agentscope collect");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        assert!(
            line.contains("collecting"),
            "collector did not start: {line}"
        );
        std::thread::spawn(move || {
            let mut rest = String::new();
            while stderr.read_line(&mut rest).unwrap_or(0) > 0 {
                rest.clear();
            }
        });
        Collector(child)
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

fn measure(c: &mut Criterion, mode: &str, variant: &str, workload: &mut Loop) {
    let mut group = c.benchmark_group(format!("socket_round_trip/{mode}"));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(6));
    group.bench_function(variant, |b| b.iter_custom(|n| workload.run(n)));
    group.finish();
}

const MODES: [&str; 3] = ["write", "writev", "sendmsg"];

fn bench(c: &mut Criterion) {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "socket_payload_overhead loads eBPF programs: run as root"
    );
    let repo = Path::new(env!("AGENTSCOPE_REPO"));
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("socket_io_loop");
    let built = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&binary)
        .arg(repo.join("tests/agents/socket_io_loop.c"))
        .status()
        .expect("gcc (make setup installs it)");
    assert!(built.success(), "building socket_io_loop failed");
    let mut loops: Vec<Loop> = MODES.iter().map(|m| Loop::start(&binary, m)).collect();
    for (mode, workload) in MODES.iter().zip(&mut loops) {
        measure(c, mode, "unprobed", workload);
    }
    let pids: Vec<u32> = loops.iter().map(|l| l.child.id()).collect();
    let collector = Collector::follow(&pids);
    for (mode, workload) in MODES.iter().zip(&mut loops) {
        measure(c, mode, "probed", workload);
    }
    drop(collector);
}

criterion_group!(benches, bench);
criterion_main!(benches);
