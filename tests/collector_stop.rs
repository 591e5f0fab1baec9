//! The collector never runs away and always stops: it does not capture what its own output
//! produces however that output is consumed, it stops within a second of --duration, SIGINT or
//! SIGTERM while the ring buffer is kept full (and still writes its summary, graph and
//! recording). Runs alone (the Makefile's `E2E_ALONE`): it times stops. What `--pid` leaves out
//! is tests/pid_filter.rs, lost payload bytes counted exactly tests/payload_loss.rs.
//!
//! Privileged end-to-end tests (run as root; `make test-e2e`). Every run is bounded by
//! --duration and by a cap on what its output may grow to, so a regression fails the test
//! instead of filling the disk.

use crate::support;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// Output bytes past which a run is a runaway (a regression reaches it within seconds).
const OUTPUT_CAP: u64 = 256 << 20;

/// The collector's standard error as it arrives: its text, and when its closing "stopped in"
/// line came (so a slow stop says whether the time went before or after that line).
#[derive(Default)]
struct CollectorStderr {
    text: std::sync::Mutex<String>,
    stopped_line_at: std::sync::Mutex<Option<Instant>>,
}

impl CollectorStderr {
    fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }
}

/// Starts `agentscope collect` with `--ready-message` and waits for that line; stderr keeps
/// being drained (echoed, and kept in the returned record) in the background.
/// The collector is stopped if the test panics first ([`StopOnDrop`]).
fn start_collector(
    args: &[&str],
    stdout: Stdio,
) -> (StopOnDrop, Instant, std::sync::Arc<CollectorStderr>) {
    let mut child = StopOnDrop(
        Command::new(BIN)
            .args(["collect", "--ready-message", "--no-kubernetes"])
            .args(args)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agentscope collect"),
    );
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(
        line.contains("collecting"),
        "collector did not start: {line}"
    );
    let ready = Instant::now();
    let kept = std::sync::Arc::new(CollectorStderr::default());
    let record = kept.clone();
    std::thread::spawn(move || {
        let mut rest = String::new();
        while stderr.read_line(&mut rest).unwrap_or(0) > 0 {
            if rest.starts_with("agentscope: stopped in ") {
                *record.stopped_line_at.lock().unwrap() = Some(Instant::now());
            }
            eprint!("collector: {rest}");
            record.text.lock().unwrap().push_str(&rest);
            rest.clear();
        }
    });
    (child, ready, kept)
}

/// Waits for the collector to exit, killing it (and `others`) if it passes `limit` or one of
/// `watched` outgrows [`OUTPUT_CAP`]. Returns when the child exited. A collector still there
/// at `limit` fails the test with where the time went: when the stop (`stop_sent`) was asked
/// for, when its "stopped in" line came, and what each of its threads was doing.
fn wait_bounded(
    child: &mut Child,
    stop_sent: Instant,
    limit: Instant,
    stderr: &CollectorStderr,
    watched: &[&Path],
    others: &mut [Child],
) {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "collector exited with {status}");
            return;
        }
        let runaway = watched
            .iter()
            .find(|p| std::fs::metadata(p).map_or(0, |m| m.len()) > OUTPUT_CAP);
        if runaway.is_some() || Instant::now() > limit {
            // What the collector was doing, before it is killed.
            let state = process_state::describe(child.id());
            let _ = child.kill();
            let _ = child.wait();
            for other in others.iter_mut() {
                let _ = other.kill();
                let _ = other.wait();
            }
            if let Some(path) = runaway {
                panic!(
                    "the collector's output ran away: {} passed {OUTPUT_CAP} bytes",
                    path.display()
                );
            }
            let line = match *stderr.stopped_line_at.lock().unwrap() {
                Some(at) => format!(
                    "its \"stopped in\" line came {:?} after the stop was asked for, and it \
                     had not exited {:?} after that line",
                    at.saturating_duration_since(stop_sent),
                    limit.saturating_duration_since(at)
                ),
                None => "its \"stopped in\" line never came".to_string(),
            };
            panic!("the collector did not stop in time: {line}; its state:\n{state}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

fn summary_of(lines: &[Value]) -> Value {
    let last = lines.last().expect("output has lines");
    assert_eq!(last["kind"], "summary", "the last line must be the summary");
    last["summary"].clone()
}

fn consumer_pids(summary: &Value) -> BTreeSet<u64> {
    summary["consumers"]
        .as_array()
        .map(|list| list.iter().filter_map(|c| c["pid"].as_u64()).collect())
        .unwrap_or_default()
}

/// Checks a run whose output went through `consumers`: bounded output, no payload captured
/// from any of them, each of them reported as a consumer.
fn assert_no_feedback(lines: &[Value], consumers: &[u32]) {
    let summary = summary_of(lines);
    for &pid in consumers {
        let payloads = lines
            .iter()
            .filter(|e| e["kind"] == "data" && e["pid"] == pid)
            .count();
        assert_eq!(
            payloads, 0,
            "pid {pid} reads the collector's output, yet {payloads} of its payloads were captured"
        );
        assert!(
            consumer_pids(&summary).contains(&(pid as u64)),
            "pid {pid} is not reported as a consumer: {}",
            summary["consumers"]
        );
        let warned = summary["warnings"].as_array().unwrap().iter().any(|w| {
            w.as_str().is_some_and(|w| {
                w.contains(&format!("pid {pid} ")) && w.contains("reads the collector's output")
            })
        });
        assert!(warned, "no warning names consumer {pid}");
    }
}

/// `agentscope collect --json --duration 3` with no --pid (so every process is traced), its
/// stdout piped into `cat > FILE`.
#[test]
fn output_read_by_cat_is_not_captured() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.jsonl");
    let (mut collector, ready, stderr) =
        start_collector(&["--json", "--duration", "3"], Stdio::piped());
    let mut cat = Command::new("cat")
        .stdin(Stdio::from(collector.stdout.take().unwrap()))
        .stdout(std::fs::File::create(&out_path).unwrap())
        .spawn()
        .unwrap();
    let cat_pid = cat.id();
    let stop_due = ready + Duration::from_secs(3);
    let limit = stop_due + Duration::from_millis(1500);
    wait_bounded(
        &mut collector,
        stop_due,
        limit,
        &stderr,
        &[&out_path],
        &mut [],
    );
    assert!(
        ready.elapsed() < Duration::from_millis(4000),
        "--duration 3 took {:?}",
        ready.elapsed()
    );
    assert!(cat.wait().unwrap().success());
    assert_no_feedback(&json_lines(&out_path), &[cat_pid]);
}

/// The collector's stdout read by a Python process that re-emits every line into a second
/// pipe, read by `cat > FILE`: the second reader never touches the collector's own pipe.
#[test]
fn output_relayed_through_a_second_pipe_is_not_captured() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.jsonl");
    let (mut collector, ready, stderr) =
        start_collector(&["--json", "--duration", "3"], Stdio::piped());
    let mut relay = Command::new(python_interpreter())
        .args([
            "-c",
            "import sys\nfor line in sys.stdin:\n    sys.stdout.write(line)\n    sys.stdout.flush()\n",
        ])
        .stdin(Stdio::from(collector.stdout.take().unwrap()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut cat = Command::new("cat")
        .stdin(Stdio::from(relay.stdout.take().unwrap()))
        .stdout(std::fs::File::create(&out_path).unwrap())
        .spawn()
        .unwrap();
    let pids = [relay.id(), cat.id()];
    let stop_due = ready + Duration::from_secs(3);
    let limit = stop_due + Duration::from_millis(1500);
    wait_bounded(
        &mut collector,
        stop_due,
        limit,
        &stderr,
        &[&out_path],
        &mut [],
    );
    assert!(relay.wait().unwrap().success());
    assert!(cat.wait().unwrap().success());
    assert_no_feedback(&json_lines(&out_path), &pids);
}

/// Whether process `pid` is gone: no such process, not even a zombie waiting to be reaped.
fn is_gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// A test that panics while its collector runs (a failed assertion between `Collect::start`
/// and `Collect::stop`) leaves neither the collector nor its paused workload behind: dropping
/// `Collect` stops the collector cleanly (SIGINT: it still ends its output with the summary)
/// and reaps it, and dropping `Paused` kills and reaps the workload. Before, a collector left
/// this way ran on (once for 53 minutes, enforcing) and confounded later tests.
#[test]
fn a_test_that_panics_leaves_no_collector_behind() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let started = std::sync::Mutex::new(None);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let workload = Paused::command(dir.path(), "sleep", &["600"], &[]);
        let collect = Collect::start(
            dir.path(),
            &["--pid", &workload.pid().to_string(), "--no-kubernetes"],
        );
        *started.lock().unwrap() = Some((
            collect.child.id(),
            workload.pid(),
            collect.stdout_path.clone(),
        ));
        panic!("deliberate: a failed assertion while the collector runs");
    }));
    assert!(outcome.is_err());
    let (collector, workload, stdout_path) = started.lock().unwrap().take().unwrap();
    assert!(
        is_gone(collector),
        "the collector (pid {collector}) still runs after its test panicked: {}",
        process_state::describe(collector)
    );
    assert!(
        is_gone(workload),
        "the paused workload (pid {workload}) is still there after its test panicked"
    );
    let lines = json_lines(&stdout_path);
    summary_of(&lines);
}

/// How the collector is told to stop in [`stops_within_a_second_under_a_full_ring_buffer`].
#[derive(Debug, Clone, Copy)]
enum StopBy {
    Sigterm,
    Sigint,
    Duration,
}

struct FloodRun {
    stop_latency: Duration,
    stdout: String,
    graph: PathBuf,
    recordings: Vec<PathBuf>,
}

/// A full-speed JSON pipe writer keeps the ring buffer full; the collector records, writes the
/// graph, and is stopped by `stop`. Returns how long the stop took.
fn flood_and_stop(dir: &Path, stop: StopBy) -> FloodRun {
    let python = python_interpreter();
    let flood = Paused::agent(
        dir,
        &python,
        &[
            agents_dir().join("pipe_flood.py").to_str().unwrap(),
            "--seconds",
            "30",
        ],
        &[],
    );
    let pid = flood.pid().to_string();
    let record = dir.join("flood.cap");
    let graph = dir.join("graph.json");
    let stdout_path = dir.join("stdout.jsonl");
    let mut args = vec![
        "--json",
        "--quiet",
        "--pid",
        &pid,
        "--record",
        record.to_str().unwrap(),
        "--record-max-size",
        "64M",
        "--record-max-files",
        "2",
        "--graph-json",
        graph.to_str().unwrap(),
    ];
    if let StopBy::Duration = stop {
        args.extend(["--duration", "3"]);
    }
    let (mut collector, ready, stderr) = start_collector(
        &args,
        Stdio::from(std::fs::File::create(&stdout_path).unwrap()),
    );
    flood.release();
    let mut flood_child = flood.into_child();
    let stop_sent = match stop {
        StopBy::Duration => ready + Duration::from_secs(3),
        StopBy::Sigterm | StopBy::Sigint => {
            std::thread::sleep(Duration::from_secs(3));
            let signal = if let StopBy::Sigterm = stop {
                libc::SIGTERM
            } else {
                libc::SIGINT
            };
            // SAFETY: plain kill(2) on our child.
            unsafe { libc::kill(collector.id() as i32, signal) };
            Instant::now()
        }
    };
    let limit = stop_sent + Duration::from_secs(5);
    wait_bounded(
        &mut collector,
        stop_sent,
        limit,
        &stderr,
        &[],
        std::slice::from_mut(&mut flood_child),
    );
    let stop_latency = Instant::now().saturating_duration_since(stop_sent);
    let _ = flood_child.kill();
    let _ = flood_child.wait();
    let mut recordings: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("flood.")
                && p.extension().is_some_and(|e| e == "cap")
        })
        .collect();
    recordings.sort();
    FloodRun {
        stop_latency,
        stdout: std::fs::read_to_string(&stdout_path).unwrap(),
        graph,
        recordings,
    }
}

fn assert_stopped_cleanly(stop: StopBy) {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let run = flood_and_stop(dir.path(), stop);
    eprintln!("stop by {stop:?} took {:?}", run.stop_latency);
    assert!(
        run.stop_latency < Duration::from_secs(1),
        "stopping by {stop:?} under a full ring buffer took {:?}",
        run.stop_latency
    );
    let summary: Value = serde_json::from_str(run.stdout.lines().last().expect("summary line"))
        .expect("summary is JSON");
    assert_eq!(summary["kind"], "summary");
    assert!(
        summary["summary"]["received"].as_u64().unwrap() > 0,
        "the flood was not captured at all: {summary}"
    );
    let graph: Value =
        serde_json::from_str(&std::fs::read_to_string(&run.graph).expect("graph JSON written"))
            .expect("graph JSON parses");
    assert!(graph.is_object());
    assert!(!run.recordings.is_empty(), "no recording written");
    for file in &run.recordings {
        let output = Command::new(BIN)
            .args(["cap", "verify"])
            .arg(file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "cap verify {} failed: {}{}",
            file.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A reader of `--json` that takes nothing (a log shipper that hung): capture, detection and
/// the recording go on at full speed, the lines it cannot take are dropped and counted, and
/// SIGTERM still stops the collector within a second.
#[test]
fn a_reader_that_stops_reading_holds_neither_capture_nor_the_stop() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let flood = Paused::agent(
        dir,
        &python_interpreter(),
        &[
            agents_dir().join("pipe_flood.py").to_str().unwrap(),
            "--seconds",
            "30",
        ],
        &[],
    );
    let pid = flood.pid().to_string();
    let record = dir.join("stalled.cap");
    let (mut collector, _, stderr) = start_collector(
        &[
            "--json",
            "--pid",
            &pid,
            "--record",
            record.to_str().unwrap(),
        ],
        Stdio::piped(),
    );
    // Held, never read: the pipe fills within the first few hundred lines.
    let stalled_reader = collector.stdout.take().unwrap();
    flood.release();
    let mut flood_child = flood.into_child();
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(collector.id() as i32, libc::SIGTERM) };
    let stop_sent = Instant::now();
    wait_bounded(
        &mut collector,
        stop_sent,
        stop_sent + Duration::from_secs(5),
        &stderr,
        &[],
        std::slice::from_mut(&mut flood_child),
    );
    let stop_latency = stop_sent.elapsed();
    let _ = flood_child.kill();
    let _ = flood_child.wait();
    // What the pipe held: at most its 64 KiB, of whole lines only: the writer puts a line into
    // the pipe only when it fits whole, so the process's exit cuts none.
    let mut taken = String::new();
    BufReader::new(stalled_reader)
        .read_to_string(&mut taken)
        .unwrap();
    let taken_lines = taken.lines().count() as u64;
    assert_whole_json_lines(&taken, "a reader that stopped reading");
    let (ok, info, err) = {
        let out = Command::new(BIN)
            .args(["cap", "info", "-o", "json"])
            .arg(&record)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert!(ok, "cap info: {err}");
    let recorded = serde_json::from_str::<Value>(&info).unwrap()["events"]
        .as_u64()
        .unwrap();
    let stderr = stderr.text();
    eprintln!(
        "stalled reader: stop took {stop_latency:?}; {taken_lines} lines reached the reader, \
         {recorded} events recorded"
    );
    // The stop itself, as the collector measures it from leaving its loop, stays within the
    // second docs/events.md promises. From SIGTERM to the process being reaped usually takes
    // 0.6 s too, but 2 runs in about 20 on a loaded machine took 3.9 and 4.5 s, with the stop
    // still reported at 600 ms; where those seconds go (before the loop sees the signal, or
    // in the process's exit) is not found yet (see the closing note of 2026-12-05), so this
    // bound is looser: without standard output's own writer the stop waited for the reader,
    // which here never comes.
    let reported: u64 = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("agentscope: stopped in ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no stop report on stderr:\n{stderr}"));
    assert!(
        reported <= 1000,
        "the stop took {reported} ms by its own report"
    );
    assert!(
        stop_latency < Duration::from_secs(10),
        "SIGTERM with a stalled reader took {stop_latency:?}"
    );
    // Before standard output had its own writer, capture stopped with the pipe full: the
    // recording held what the pipe did. Now it holds the whole run. The floor is ten times what
    // the pipe held, and at least 100 events: the flood's pace is the machine's (a loaded CI run
    // on two cores recorded 752 events of 22 KB in the 3 s, under a floor of 1,000), while a
    // capture stalled with the reader records about what the pipe held (4 lines there).
    assert!(
        recorded > 10 * taken_lines.max(10),
        "capture stalled with the reader: {recorded} events recorded, {taken_lines} printed"
    );
    let dropped: u64 = stderr
        .lines()
        .find_map(|l| {
            l.split(" lines (")
                .next()?
                .strip_prefix("agentscope: ")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("stderr does not count the dropped lines:\n{stderr}"));
    assert!(
        dropped + taken_lines >= recorded / 2,
        "{dropped} lines dropped and {taken_lines} printed do not account for {recorded} events"
    );
    // The summary is the last line the reader got (the line the writer gave up at the stop's
    // point left it room), or stderr says it was not written.
    let summary_written = taken
        .lines()
        .last()
        .is_some_and(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v["kind"] == "summary"));
    assert!(
        summary_written || stderr.contains("the summary was not written to it"),
        "the summary is neither the reader's last line nor said to be missing:\n{stderr}"
    );
}

/// Asserts that `taken` (what a reader of `--json` got) is whole JSON lines, the last one
/// ended too.
fn assert_whole_json_lines(taken: &str, reader: &str) {
    assert!(
        taken.is_empty() || taken.ends_with('\n'),
        "{reader} got a cut last line: {:?}",
        &taken[taken.len().saturating_sub(200)..]
    );
    for line in taken.lines() {
        if let Err(err) = serde_json::from_str::<Value>(line) {
            panic!(
                "{reader} got a line that is not JSON ({err}): {:?}",
                &line[line.len().saturating_sub(200)..]
            );
        }
    }
}

/// A reader of `--json` that takes its input slowly (a log shipper on a loaded node) while a
/// flood is captured: at SIGTERM the writer is in the middle of the lines queued for it, and
/// the stop's time runs out before the reader catches up. The reader still gets whole lines
/// to its end (the last one was cut when the writer thread was ended in the middle of a
/// chunk), and the lines it could not take are counted on standard error.
#[test]
fn a_slow_reader_gets_whole_lines_to_the_end() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let flood = Paused::agent(
        dir,
        &python_interpreter(),
        &[
            agents_dir().join("pipe_flood.py").to_str().unwrap(),
            "--seconds",
            "30",
        ],
        &[],
    );
    let pid = flood.pid().to_string();
    let (mut collector, _, stderr) = start_collector(&["--json", "--pid", &pid], Stdio::piped());
    let mut output = collector.stdout.take().unwrap();
    // 4 KiB every 50 ms: far behind the flood (megabytes a second), so the pipe stays full
    // and the stop comes while the writer is in the middle of what was queued for it.
    let reader = std::thread::spawn(move || {
        let mut taken = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            match output.read(&mut buffer) {
                Ok(0) | Err(_) => return taken,
                Ok(n) => taken.extend_from_slice(&buffer[..n]),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    flood.release();
    let mut flood_child = flood.into_child();
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(collector.id() as i32, libc::SIGTERM) };
    let stop_sent = Instant::now();
    wait_bounded(
        &mut collector,
        stop_sent,
        stop_sent + Duration::from_secs(5),
        &stderr,
        &[],
        std::slice::from_mut(&mut flood_child),
    );
    let _ = flood_child.kill();
    let _ = flood_child.wait();
    let taken = String::from_utf8(reader.join().unwrap()).expect("UTF-8 output");
    let stderr = stderr.text();
    eprintln!(
        "slow reader: {} lines, {} bytes reached it",
        taken.lines().count(),
        taken.len()
    );
    assert!(taken.lines().count() > 10, "the reader got almost nothing");
    assert_whole_json_lines(&taken, "a slow reader");
    assert!(
        stderr.lines().any(|l| l.starts_with("agentscope: ")
            && l.contains(" lines (")
            && l.contains("dropped")),
        "stderr does not count the lines the reader could not take:\n{stderr}"
    );
}

#[test]
fn sigterm_stops_within_a_second_under_a_full_ring_buffer() {
    assert_stopped_cleanly(StopBy::Sigterm);
}

#[test]
fn sigint_stops_within_a_second_under_a_full_ring_buffer() {
    assert_stopped_cleanly(StopBy::Sigint);
}

#[test]
fn duration_stops_within_a_second_under_a_full_ring_buffer() {
    assert_stopped_cleanly(StopBy::Duration);
}
