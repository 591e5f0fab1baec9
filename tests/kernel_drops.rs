//! End to end, privileged: the kernel's drops, counted. A flood overflows a deliberately small
//! ring buffer, and every record is delivered or counted as dropped, and drops while an agent's
//! baseline learns reach that baseline. These run alone (the Makefile's `E2E_ALONE`): they
//! flood the node with opens; the rest of live capture's tests (tests/live_capture.rs) share it.

use crate::support;

use std::path::Path;

use support::*;

/// tests/agents/flood.py, held at its start, opening `target` `opens` times as fast as it can.
fn paused_flood(dir: &Path, opens: u64, target: &Path) -> Paused {
    Paused::command(
        dir,
        "/usr/bin/env",
        &[
            &python_interpreter(),
            agents_dir().join("flood.py").to_str().unwrap(),
            "--opens",
            &opens.to_string(),
            "--path",
            target.to_str().unwrap(),
        ],
        &[],
    )
}

/// Under a flood into a deliberately tiny ring buffer, every record is either delivered or
/// counted as dropped by the kernel, and the summary reports exactly the kernel's counts.
#[test]
fn flood_drops_are_counted_exactly() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("flood-target");
    let opens = 20_000;
    let flood = paused_flood(dir.path(), opens, &target);
    let pid = flood.pid();
    let collect = Collect::start(
        dir.path(),
        &["--pid", &pid.to_string(), "--ring-buffer-kib", "16"],
    );
    flood.release();
    flood.finish();
    let captured = collect.stop();

    let summary = &captured.summary;
    let dropped = summary["kernel"]["dropped"].as_u64().unwrap();
    let emitted = summary["kernel"]["emitted"].as_u64().unwrap();
    let received = summary["received"].as_u64().unwrap();
    assert!(
        dropped > 0,
        "a 16 KiB ring under {opens} opens must overflow: {summary}"
    );
    assert_eq!(received, emitted, "everything the kernel wrote was read");
    // The collector adds events of its own after some records (a package it read through the
    // process's root, a write under a host path): printed, but never in the ring buffer.
    let from_the_ring = captured
        .events
        .iter()
        .filter(|e| {
            !e["kind"]
                .as_str()
                .is_some_and(|kind| agentscope_event::COLLECTOR_MADE_KINDS.contains(&kind))
        })
        .count();
    assert_eq!(
        received as usize, from_the_ring,
        "every record read was printed"
    );
    let per_cpu: u64 = summary["kernel"]["dropped_per_cpu"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(per_cpu, dropped);
    let delivered = captured
        .of_kind("open")
        .filter(|e| e["path"] == target.to_str().unwrap())
        .count() as u64;
    assert!(delivered < opens, "some opens were dropped");
    assert!(
        delivered + dropped >= opens,
        "each flood open was delivered or counted: {delivered} + {dropped} < {opens}"
    );
    // The interpreter's own start-up is a few hundred events; drops beyond that would be invented.
    let all_traced = captured.events.len() as u64 + dropped;
    assert!(all_traced < opens + 2_000, "no phantom drops: {all_traced}");
}

/// Kernel drops reach detection through `collect`: the Python agent runs (and its baseline
/// starts learning), then a flood overflows a small ring buffer while the baseline is still
/// learning. The baseline `collect --baseline-out DIR` writes counts the lost events and is
/// not `complete`; before the session accounted drops for every driver, `collect` never told
/// detection, and the same run gave a baseline with no loss.
#[test]
fn kernel_drops_while_an_agent_learns_reach_its_baseline() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let llm = MockLlm::start(dir.path());
    let echo = EchoService::start(dir.path());
    let args = python_agent_args(&llm, &echo);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Paused::agent(dir.path(), "python3", &args, &[]);
    let target = dir.path().join("flood-target");
    let flood = paused_flood(dir.path(), 200_000, &target);
    let baselines = dir.path().join("baselines");
    let (agent_pid, flood_pid) = (agent.pid().to_string(), flood.pid().to_string());
    let collect = Collect::start(
        dir.path(),
        &[
            "--pid",
            &agent_pid,
            "--pid",
            &flood_pid,
            "--ring-buffer-kib",
            "64",
            "--learning-period",
            "3600",
            "--quiet",
            "--baseline-out",
            baselines.to_str().unwrap(),
        ],
    );
    // The agent first, whole: its events reach the pipeline and its baseline starts
    // learning. Then the flood, which the collector cannot keep up with.
    agent.release();
    agent.finish();
    flood.release();
    flood.finish();
    let captured = collect.stop();

    let dropped = captured.summary["kernel"]["dropped"].as_u64().unwrap();
    let undecodable = captured.summary["decode_errors"].as_u64().unwrap();
    assert!(
        dropped > 0,
        "200000 opens into a 64 KiB ring buffer must overflow it: {}",
        captured.summary
    );
    let files: Vec<_> = std::fs::read_dir(&baselines)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let documents: Vec<serde_norway::Value> = files
        .iter()
        .map(|f| serde_norway::from_str(&std::fs::read_to_string(f).unwrap()).unwrap())
        .collect();
    let python = documents
        .iter()
        .find(|d| {
            d["metadata"]["agent"]
                .as_str()
                .is_some_and(|k| k.contains("python_agent.py"))
        })
        .unwrap_or_else(|| panic!("a baseline for the Python agent among {files:?}"));
    let metadata = &python["metadata"];
    let lost = metadata["loss"]["droppedEvents"].as_u64().unwrap_or(0);
    assert!(
        lost > 0,
        "the drops while it learned reached its baseline: {metadata:?}"
    );
    assert!(
        lost <= dropped + undecodable,
        "no more than the collector lost: {lost} > {dropped} + {undecodable}"
    );
    assert_ne!(
        metadata["status"].as_str(),
        Some("complete"),
        "a baseline learned during drops is never complete: {metadata:?}"
    );
}
