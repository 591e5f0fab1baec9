//! Memory at many agents and many graph edges: the peak RSS of `agentscope replay` over
//! synthetic captures of about a thousand agents, then of at least 100,000 graph edges, next
//! to what the pipeline's memory budget says it held and shed.
//!
//! The workload is events the real collector captured (tests/fixtures: LLM chats, MCP over
//! HTTP and stdio, PostgreSQL sessions) repeated round after round as new processes of new
//! programs (`agentscope_event::synthetic::repeat_as_new_agents`), so every round adds agents,
//! connections and graph nodes and edges. Two scenarios, each recorded once through the real
//! recorder, then replayed by the real binary `FOOTPRINT_RUNS` times (default 5), each run a
//! child process whose peak RSS (`VmHWM`) is read while it runs:
//! - agents: `FOOTPRINT_ROUNDS` rounds (default 340: about a thousand agents, three a round);
//! - edges, when asked for (`FOOTPRINT_EDGES`, `FOOTPRINT_EDGE_ROUNDS` or
//!   `FOOTPRINT_ONLY=edges`; always in the smoke run, small): as many rounds as it takes to
//!   offer `FOOTPRINT_EDGES` graph edges (default 100,000), worked out from the edges the
//!   first scenario's rounds made (`FOOTPRINT_EDGE_ROUNDS` sets the rounds instead). Over ten
//!   thousand agents then: the budget, not the workload, bounds what is kept, and the figures
//!   say what it shed.
//!
//! A replay is the live collector's pipeline fed from a file (live and replay give the same
//! results), so this is the pipeline's share of a collector watching that many agents; a live
//! collector adds its fixed kernel-facing part (ring buffer, maps, probes: the idle RSS
//! `make bench-overhead` reports).
//!
//! Printed for each: the capture's size and its keyframes' share, agents, graph nodes and
//! edges, events, then RSS median and range over the runs (and of it the anonymous part: the
//! capture file is mapped and counts in RSS), and the
//! budget's peak held bytes and sheddings (evictions and truncations mean the budget, not the
//! workload, set the figure).
//!
//! Environment: `FOOTPRINT_ROUNDS`, `FOOTPRINT_EDGES`, `FOOTPRINT_EDGE_ROUNDS`,
//! `FOOTPRINT_RUNS`, `FOOTPRINT_ARGS` (more `replay` arguments, split at spaces, e.g.
//! `--memory-budget 256M`), `FOOTPRINT_CAPTURE` (write the first scenario's capture there and
//! keep it: the edges scenario's with `FOOTPRINT_ONLY=edges`), `FOOTPRINT_ONLY` (`agents` or `edges`: run that scenario alone).
//! Run: `cargo bench -p agentscope --bench footprint_at_scale` (release build).

use std::path::Path;
use std::process::{Command, Stdio};

use agentscope_analysis::model::{HostOnlyIdentity, ModelOptions};
use agentscope_analysis::pipeline::Pipeline;
use agentscope_capture::capture::{CaptureMetadata, CaptureReader, Recorder, RecorderOptions};
use agentscope_event::event::Event;
use agentscope_event::synthetic::repeat_as_new_agents;
use agentscope_reconstruct::ReconstructOptions;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_agentscope");

#[path = "../../../tests/fixtures/recorded_mix.rs"]
mod recorded_mix;

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn record(events: &[Event], path: &Path) {
    let mut pipeline = Pipeline::new(
        ReconstructOptions::default(),
        ModelOptions::default(),
        Box::new(HostOnlyIdentity),
    );
    let metadata = CaptureMetadata {
        created_by: "agentscope bench footprint_at_scale".into(),
        ..Default::default()
    };
    let mut recorder = Recorder::start(
        RecorderOptions::new(path.to_path_buf(), metadata),
        &mut pipeline,
    )
    .expect("start the recording");
    for event in events {
        pipeline.push(event);
        recorder
            .record(event, &mut pipeline)
            .expect("record an event");
    }
    pipeline.finish();
    recorder
        .finish(&mut pipeline)
        .expect("finish the recording");
}

/// One replay: its peak RSS and peak anonymous RSS in KiB, and the graph document it wrote.
///
/// The peak is the child's own `VmHWM`, read from /proc while it runs (every 5 ms; the mark
/// only rises, and exec gave the child a new one). Not `wait4`'s `ru_maxrss`: that counts the
/// pages the child shared with this large parent between fork and exec. `VmHWM` includes the
/// capture file, which the replay maps and reads whole (file pages, `RssFile`): a live
/// collector has no such file, so the anonymous part (`RssAnon`, the highest sample) is the
/// pipeline's own.
fn replay(capture: &Path, graph: &Path, extra: &[String]) -> (u64, u64, Value) {
    let mut child = Command::new(BIN)
        .arg("replay")
        .arg(capture)
        .arg("--graph-json")
        .arg(graph)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start agentscope replay");
    let status_path = format!("/proc/{}/status", child.id());
    let (mut peak_kib, mut anon_kib) = (0, 0);
    let status = loop {
        // Read before asking whether it exited: a zombie has no memory left to report.
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            peak_kib = peak_kib.max(status_kib(&text, "VmHWM:").unwrap_or(0));
            anon_kib = anon_kib.max(status_kib(&text, "RssAnon:").unwrap_or(0));
        }
        if let Some(status) = child.try_wait().expect("wait for replay") {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert!(status.success(), "replay failed: {status}");
    let document = std::fs::read(graph).expect("graph JSON written");
    let document = serde_json::from_slice(&document).expect("graph JSON parses");
    (peak_kib, anon_kib, document)
}

/// The `field` (`VmHWM:`, `RssAnon:`) of a /proc/PID/status text, in KiB.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn median_and_range(values: &mut [u64]) -> (u64, u64, u64) {
    values.sort_unstable();
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

/// What one scenario's replays wrote and measured.
struct Scenario {
    rounds: u32,
    edges: u64,
}

/// Records `rounds` rounds of the mix as new agents to `capture`, replays it `runs` times and
/// prints what it found, headed by `name`.
fn scenario(name: &str, rounds: u32, runs: u32, extra: &[String], capture: &Path) -> Scenario {
    let parsed = recorded_mix::recorded_sets(recorded_mix::RECORDED_MIX.len());
    let events = repeat_as_new_agents(&parsed, rounds);
    record(&events, capture);
    let event_count = events.len();
    drop(events);
    // The capture's size and its keyframes' share: keyframes hold the whole state, which
    // grows with the agents (`KeyframeSchedule` keeps them a bounded share of the file).
    let reader = CaptureReader::open(capture).expect("read the capture back");
    println!(
        "footprint_at_scale[{name}]: capture {:.1} MiB, {} keyframes, {:.1} % of it",
        reader.file_len() as f64 / 1048576.0,
        reader.keyframe_blocks().count(),
        100.0 * reader.keyframe_share()
    );
    drop(reader);
    let dir = tempfile::tempdir().expect("temporary directory");
    let graph = dir.path().join("graph.json");
    let (mut rss_kib, mut anon_kib) = (Vec::new(), Vec::new());
    let mut last = Value::Null;
    for _ in 0..runs {
        let (rss, anon, document) = replay(capture, &graph, extra);
        rss_kib.push(rss);
        anon_kib.push(anon);
        last = document;
    }
    let count = |pointer: &str| {
        last.pointer(pointer)
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    };
    let memory = &last["stats"]["memory"];
    let (median, low, high) = median_and_range(&mut rss_kib);
    let (anon_median, anon_low, anon_high) = median_and_range(&mut anon_kib);
    let edges = count("/graph/edges") as u64;
    println!(
        "footprint_at_scale[{name}]: {} agents, {} graph nodes, {edges} graph edges, \
         {event_count} events ({rounds} rounds)",
        count("/agents"),
        count("/graph/nodes"),
    );
    println!(
        "footprint_at_scale[{name}]: replay peak RSS median {:.1} MiB (range {:.1}-{:.1}) over \
         {runs} runs",
        median as f64 / 1024.0,
        low as f64 / 1024.0,
        high as f64 / 1024.0
    );
    println!(
        "footprint_at_scale[{name}]: of which anonymous (the pipeline's heap; the rest is the \
         mapped capture and the program) median {:.1} MiB (range {:.1}-{:.1})",
        anon_median as f64 / 1024.0,
        anon_low as f64 / 1024.0,
        anon_high as f64 / 1024.0
    );
    println!(
        "footprint_at_scale[{name}]: memory budget {} MiB, peak held {:.1} MiB; shed: {} bodies \
         truncated, {} connections evicted, {} tool calls evicted, {} graph evictions, {} \
         findings dropped, {} detection state sheddings, {} agents evicted, {} processes \
         forgotten",
        memory["budget_bytes"].as_u64().unwrap_or(0) >> 20,
        memory["peak_held_bytes"].as_u64().unwrap_or(0) as f64 / 1048576.0,
        memory["bodies_truncated"],
        memory["connections_evicted"],
        memory["tool_calls_evicted"],
        memory["graph_evictions"],
        memory["findings_dropped"],
        memory["detection_state_shed"],
        memory["agents_evicted"],
        memory["processes_forgotten"],
    );
    // Every round offers new agents: each is in the graph JSON or was evicted (counted) to
    // stay within the budget. Unless bodies were cut: an LLM call read from a cut body may
    // not make its agent, so the claim is not checked then, and that is said.
    let kept = count("/agents") as u64;
    let evicted = memory["agents_evicted"].as_u64().unwrap_or(0);
    let bodies_truncated = memory["bodies_truncated"].as_u64().unwrap_or(0);
    if bodies_truncated == 0 {
        assert!(
            kept + evicted >= u64::from(rounds),
            "every round adds agents: {kept} kept and {evicted} evicted over {rounds} rounds"
        );
    } else {
        println!(
            "footprint_at_scale[{name}]: {bodies_truncated} bodies were cut by the budget, so \
             some agents may never have been seen: not checking that every round added agents \
             ({kept} kept, {evicted} evicted over {rounds} rounds)"
        );
    }
    Scenario { rounds, edges }
}

fn main() {
    // `cargo test --benches` runs every bench target once with `--bench` absent: a smoke run
    // of a few rounds keeps it quick while still going through every step.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let rounds = env_number("FOOTPRINT_ROUNDS", if smoke { 3 } else { 340 });
    let edges_wanted = env_number("FOOTPRINT_EDGES", if smoke { 100 } else { 100_000 });
    let runs = env_number("FOOTPRINT_RUNS", if smoke { 1 } else { 5 }).max(1);
    let only = std::env::var("FOOTPRINT_ONLY").unwrap_or_default();
    let extra: Vec<String> = std::env::var("FOOTPRINT_ARGS")
        .map(|a| a.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let dir = tempfile::tempdir().expect("temporary directory");
    // Kept where asked, to look at the same replay with other tools (heaptrack, /usr/bin/time,
    // another build's binary).
    let kept = std::env::var_os("FOOTPRINT_CAPTURE").map(std::path::PathBuf::from);
    let capture = kept
        .clone()
        .unwrap_or_else(|| dir.path().join("agents.cap"));
    let agents = (only != "edges").then(|| scenario("agents", rounds, runs, &extra, &capture));
    let agents_ran = agents.is_some();
    // The edges scenario is asked for (`FOOTPRINT_EDGES`, `FOOTPRINT_EDGE_ROUNDS` or
    // `FOOTPRINT_ONLY=edges`), and always in the smoke run: its ~4,200 rounds take a few
    // minutes to record and replay (before keyframes were spaced by size, the recording alone
    // was stopped after 11 minutes, its capture past 600 MB).
    let asked = ["FOOTPRINT_EDGES", "FOOTPRINT_EDGE_ROUNDS"]
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    if only == "agents" || !(smoke || asked || only == "edges") {
        return;
    }
    // The rounds that offer the edges wanted, at the rate the agents scenario made them (a
    // few rounds measured first when it did not run), with 5% to spare.
    let edge_rounds = std::env::var("FOOTPRINT_EDGE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            let sample = agents.unwrap_or_else(|| {
                scenario("sample", 20, 1, &extra, &dir.path().join("sample.cap"))
            });
            let per_round = (sample.edges as f64 / f64::from(sample.rounds.max(1))).max(1.0);
            (f64::from(edges_wanted) / per_round * 1.05).ceil() as u32
        });
    // The first scenario's capture is the one kept: this one's when it ran alone.
    let capture = match kept {
        Some(path) if !agents_ran => path,
        _ => dir.path().join("edges.cap"),
    };
    scenario("edges", edge_rounds, runs, &extra, &capture);
}
