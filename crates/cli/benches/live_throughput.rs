//! Live collector throughput: a process opens a file as fast as it can while
//! `agentscope collect --json` follows it; reports events delivered per second (through the
//! kernel programs, the ring buffer, decoding, enrichment and JSON output), drops, and the
//! collector's CPU time and peak memory. Needs root.
//! Run: `cargo bench -p agentscope --bench live_throughput` (or `make bench`).

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

const OPENS: u64 = 300_000;
const ROUNDS: usize = 3;

fn interpreter() -> String {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn rusage_children() -> libc::rusage {
    // SAFETY: getrusage fills the struct.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    }
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "live_throughput loads eBPF programs: run as root"
    );
    let bin = env!("CARGO_BIN_EXE_agentscope");
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let flood = std::path::Path::new(env!("AGENTSCOPE_REPO")).join("tests/agents/flood.py");
    let python = interpreter();
    println!(
        "live_throughput: {OPENS} opens per round, {ROUNDS} rounds, default 64 MiB ring buffer"
    );
    for round in 1..=ROUNDS {
        let start_file = dir.path().join(format!("start-{round}"));
        let mut workload = Command::new(&python)
            .arg(&flood)
            .args([
                "--opens",
                &OPENS.to_string(),
                "--path",
                target.to_str().unwrap(),
            ])
            .args(["--wait-before-start-file", start_file.to_str().unwrap()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let before = rusage_children();
        let mut collector = Command::new(bin)
            .args([
                "collect",
                "--json",
                "--ready-message",
                "--pid",
                &workload.id().to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(collector.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        assert!(line.contains("collecting"), "{line}");
        let stdout = collector.stdout.take().unwrap();
        // Count lines as they stream so the time covers delivery, not just the workload.
        let counter = std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut buf = String::new();
            let mut events = 0u64;
            let mut last = String::new();
            let mut last_at = Instant::now();
            while reader.read_line(&mut buf).unwrap() > 0 {
                events += 1;
                last_at = Instant::now();
                std::mem::swap(&mut last, &mut buf);
                buf.clear();
            }
            (events, last, last_at)
        });
        let started = Instant::now();
        std::fs::write(&start_file, b"go").unwrap();
        workload.wait().unwrap();
        let workload_secs = started.elapsed().as_secs_f64();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        // SAFETY: kill(2) on our child.
        unsafe { libc::kill(collector.id() as i32, libc::SIGTERM) };
        collector.wait().unwrap();
        let after = rusage_children();
        let (lines, summary, _) = counter.join().unwrap();
        let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
        let s = &summary["summary"];
        let received = s["received"].as_u64().unwrap();
        let dropped = s["kernel"]["dropped"].as_u64().unwrap();
        let cpu = |u: &libc::rusage| {
            u.ru_utime.tv_sec as f64
                + u.ru_utime.tv_usec as f64 / 1e6
                + u.ru_stime.tv_sec as f64
                + u.ru_stime.tv_usec as f64 / 1e6
        };
        // Children's CPU includes the workload; the collector's share is reported by its
        // events per CPU-second below only as an upper bound.
        println!(
            "round {round}: {received} events in {workload_secs:.2}s of workload = {:.0} events/s delivered; {dropped} dropped ({:.3}%); {lines} JSON lines; children CPU {:.2}s; peak RSS of largest child {} MiB",
            received as f64 / workload_secs,
            100.0 * dropped as f64 / (received + dropped).max(1) as f64,
            cpu(&after) - cpu(&before),
            after.ru_maxrss / 1024
        );
    }
}
