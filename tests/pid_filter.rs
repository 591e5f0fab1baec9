//! End to end, privileged: `collect --pid` isolates every event kind to the followed process
//! and its descendants while other processes connect, send and resolve names beside it, and a
//! pid that does not exist is a one-line error before anything is captured.
//!
//! Shared file (the Makefile's `E2E_SHARED`): the kernel filters by pid, so other files'
//! workloads are exactly what it must leave out.

use crate::support;

use std::collections::BTreeSet;
use std::io::Read as _;
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use support::*;

/// Pids of `root` and every process a fork event says descends from it.
fn tree_of(root: u32, events: &[Value]) -> BTreeSet<u64> {
    let mut tree = BTreeSet::from([root as u64]);
    loop {
        let before = tree.len();
        for e in events.iter().filter(|e| e["kind"] == "fork") {
            if tree.contains(&e["pid"].as_u64().unwrap()) {
                tree.insert(e["child_pid"].as_u64().unwrap());
            }
        }
        if tree.len() == before {
            return tree;
        }
    }
}

/// Runs `many_senders.py` with these arguments, released at once, not traced.
fn untraced_senders(connections: &str) -> Child {
    Command::new(python_interpreter())
        .arg(agents_dir().join("many_senders.py"))
        .args([
            "--connections",
            connections,
            "--bytes-per-connection",
            "65536",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn pid_filter_isolates_every_event_kind() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let python = python_interpreter();
    let traced = Paused::agent(
        dir.path(),
        &python,
        &[
            agents_dir().join("many_senders.py").to_str().unwrap(),
            "--connections",
            "4",
            "--bytes-per-connection",
            "65536",
        ],
        &[],
    );
    let traced_pid = traced.pid();
    let collect = Collect::start(dir.path(), &["--pid", &traced_pid.to_string()]);
    // Other processes make TCP connections and send a DNS query while the traced one works.
    let mut others = vec![untraced_senders("16")];
    others.push(
        Command::new(&python)
            .args([
                "-c",
                "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                 q = b'\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x05other\\x04test\\x00\\x00\\x01\\x00\\x01'\n\
                 for _ in range(5): s.sendto(q, ('127.0.0.77', 53))\n",
            ])
            .spawn()
            .unwrap(),
    );
    traced.release();
    traced.finish();
    for other in &mut others {
        assert!(other.wait().unwrap().success());
    }
    let captured = collect.stop();
    let tree = tree_of(traced_pid, &captured.events);
    let outside: Vec<&Value> = captured
        .events
        .iter()
        .filter(|e| !tree.contains(&e["pid"].as_u64().unwrap()))
        .collect();
    assert!(
        outside.is_empty(),
        "{} events from outside the traced tree {tree:?}, first: {}",
        outside.len(),
        outside[0]
    );
    assert!(
        captured.of_kind("tcp_state").count() > 0,
        "the traced process's own TCP state changes are missing"
    );
    assert!(captured.of_kind("data").count() > 0);
}

#[test]
fn pid_that_does_not_exist_is_an_error() {
    require_root();
    let output = Command::new(BIN)
        .args(["collect", "--json", "--duration", "1", "--pid", "999999"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "exited {}", output.status);
    assert!(
        stderr.contains("no process with pid 999999"),
        "unclear error: {stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "not one line: {stderr}");
    assert!(output.stdout.is_empty(), "printed events: {:?}", {
        let mut s = String::new();
        let _ = output.stdout.as_slice().read_to_string(&mut s);
        s
    });
}
