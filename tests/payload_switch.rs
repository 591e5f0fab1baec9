//! End-to-end test of the per-process payload switch (`--no-payloads-of PID`): two copies of
//! the Python test agent (tests/agents/python_agent.py: TLS to the mock LLM over the system
//! libssl, a command it runs, a plain TCP service it calls) run under one collector following
//! both, which is told to leave out the first one's payloads. The first one's payload bytes
//! (its command's too, a child started later) are counted, none copied, while its connects
//! and its command's exec still arrive, and its ClientHello is stamped not visible because
//! its payloads are left out; the second one, doing the same work, is captured
//! whole, and the bytes counted for the first are what the second moved, and are reported as
//! the first one's and its command's (`payloads_left_out` events). Taking the switch
//! out of the kernel's payload path fails it (5,107 bytes of the first agent copied). A pid
//! that is not running is refused. Needs root (eBPF).

use crate::support;

use std::collections::HashSet;

use serde_json::Value;
use support::*;

/// Every payload byte moved by `pids`: each call's `total_len` once.
fn moved_by(captured: &Captured, pids: &HashSet<u64>) -> u64 {
    captured
        .of_kind("data")
        .filter(|e| e["seq"] == 0 && pids.contains(&e["pid"].as_u64().unwrap()))
        .map(|e| e["total_len"].as_u64().unwrap())
        .sum()
}

/// `pid` and every process the capture saw it (or them) start.
fn with_children(captured: &Captured, pid: u64) -> HashSet<u64> {
    let mut family = HashSet::from([pid]);
    for e in captured.of_kind("fork") {
        if family.contains(&e["pid"].as_u64().unwrap()) {
            family.insert(e["child_pid"].as_u64().unwrap());
        }
    }
    family
}

#[test]
fn a_process_given_to_no_payloads_of_is_seen_acting_but_its_payloads_are_only_counted() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let llm = MockLlm::start(dir.path());
    let echo = EchoService::start(dir.path());
    let agent_args = python_agent_args(&llm, &echo);
    let agent_args: Vec<&str> = agent_args.iter().map(String::as_str).collect();
    let quiet = Paused::agent(dir.path(), &python_interpreter(), &agent_args, &[]);
    let seen = Paused::agent(dir.path(), &python_interpreter(), &agent_args, &[]);
    let (quiet_pid, seen_pid) = (quiet.pid().to_string(), seen.pid().to_string());
    let collect = Collect::start(
        dir.path(),
        &[
            "--pid",
            &quiet_pid,
            "--pid",
            &seen_pid,
            "--no-payloads-of",
            &quiet_pid,
            "--no-kubernetes",
        ],
    );
    quiet.release();
    let quiet_output = quiet.finish();
    seen.release();
    let seen_output = seen.finish();
    for output in [&quiet_output, &seen_output] {
        assert!(output.contains("\"tool_calls\""), "{output}");
    }
    let captured = collect.stop();
    assert_eq!(
        captured.summary["kernel"]["dropped"], 0,
        "{}",
        captured.summary
    );

    let quiet_family = with_children(&captured, quiet_pid.parse().unwrap());
    let seen_family = with_children(&captured, seen_pid.parse().unwrap());
    assert!(
        quiet_family.len() >= 2,
        "the command it ran: {quiet_family:?}"
    );

    // Seen acting: its connects (the mock LLM, the service) and its command's exec.
    let quiet_pid_num: u64 = quiet_pid.parse().unwrap();
    let connects: Vec<&Value> = captured
        .of_kind("connect")
        .filter(|e| e["pid"].as_u64() == Some(quiet_pid_num))
        .collect();
    let ports: HashSet<u64> = connects.iter().filter_map(|e| e["port"].as_u64()).collect();
    for wanted in [llm.port, echo.port] {
        assert!(
            ports.contains(&u64::from(wanted)),
            "a connect to {wanted}: {connects:?}"
        );
    }
    assert!(
        captured.of_kind("exec").any(|e| {
            let pid = e["pid"].as_u64().unwrap();
            pid != quiet_pid_num && quiet_family.contains(&pid)
        }),
        "its command's exec"
    );

    // Its TLS connection to the model is said not visible, and why; the other copy's is seen.
    let coverage_of = |family: &HashSet<u64>| -> Vec<Value> {
        captured
            .of_kind("tls_hello")
            .filter(|e| family.contains(&e["pid"].as_u64().unwrap()))
            .map(|e| e["coverage"].clone())
            .collect()
    };
    let quiet_coverage = coverage_of(&quiet_family);
    assert!(!quiet_coverage.is_empty(), "its ClientHello");
    for coverage in &quiet_coverage {
        assert_eq!(coverage["plaintext"], "not_visible", "{coverage}");
        assert_eq!(coverage["why"], "payloads_left_out", "{coverage}");
    }
    let seen_coverage = coverage_of(&seen_family);
    assert!(
        !seen_coverage.is_empty() && seen_coverage.iter().all(|c| c["plaintext"] == "seen"),
        "{seen_coverage:?}"
    );

    // None of its payloads, its command's included, was copied; they were counted.
    assert_eq!(
        moved_by(&captured, &quiet_family),
        0,
        "no data event of {quiet_family:?}"
    );
    let counted = captured.summary["kernel"]["payloads_off_bytes"]
        .as_u64()
        .unwrap();
    // The other copy, doing the same work, was captured: TLS plaintext among its data.
    let seen_moved = moved_by(&captured, &seen_family);
    assert!(
        captured
            .of_kind("data")
            .any(|e| e["source"] == "tls" && seen_family.contains(&e["pid"].as_u64().unwrap())),
        "the second agent's TLS payloads"
    );
    // The same requests and answers: the same bytes (equal in the runs seen here; a tenth
    // apart at most, for a mock LLM's answer that differs in length).
    assert!(
        counted > 0 && counted.abs_diff(seen_moved) <= seen_moved / 10,
        "counted {counted} bytes for the first agent, the second moved {seen_moved}: {}",
        captured.summary
    );
    // Whose they were: the first agent's family only, every counted byte reported, each as
    // its process exited.
    let reports: Vec<&Value> = captured.of_kind("payloads_left_out").collect();
    assert!(
        reports
            .iter()
            .all(|e| quiet_family.contains(&e["pid"].as_u64().unwrap())
                && e["running"] == false
                && e["opaque_socket_bytes"] == 0),
        "{reports:?}"
    );
    let reported: u64 = reports
        .iter()
        .map(|e| e["on_request_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(reported, counted, "{reports:?}");
}

/// A pid not running now would name whichever process takes it later, one nobody asked to
/// leave out: refused before anything is loaded.
#[test]
fn a_pid_that_is_not_running_is_refused() {
    require_root();
    let output = std::process::Command::new(BIN)
        .args([
            "collect",
            "--no-kubernetes",
            "--no-payloads-of",
            "999999",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no process with pid 999999"), "{stderr}");
    assert!(stderr.contains("--no-payloads-of"), "{stderr}");
}
