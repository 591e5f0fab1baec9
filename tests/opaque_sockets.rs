//! End-to-end test of leaving opaque sockets out in the kernel: a process
//! (tests/agents/opaque_socket_client.py) streams binary data to a sink over a plain socket
//! while it talks HTTP on another. Reconstruction reads no protocol in the sink connection's
//! first bytes, the collector asks the kernel to stop copying that socket, and the kernel
//! counts its bytes instead (`kernel.opaque_socket_bytes`): what was copied plus what was
//! counted is exactly what the process sent. The HTTP connection kept open across, and a new
//! one that takes the closed sink socket's fd number, are captured whole, their requests
//! reconstructed. With `--copy-opaque-payloads` every byte is copied and none counted.
//! Needs root (eBPF).

mod support;

use serde_json::Value;
use support::*;

const CHUNKS: usize = 600;
const MARKER: &[u8] = b"agentscope-opaque-marker-after-reuse";

struct Run {
    pid: u64,
    report: Value,
    captured: Captured,
    graph: Value,
}

fn run(extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let opaque = OpaqueSocketClient::start(dir.path(), CHUNKS);
    let followed = follow_agent(dir.path(), opaque.client, extra);
    assert_eq!(
        followed.captured.summary["kernel"]["dropped"], 0,
        "{}",
        followed.captured.summary
    );
    Run {
        pid: u64::from(followed.pid),
        report: followed.report,
        captured: followed.captured,
        graph: followed.graph,
    }
}

#[test]
fn an_opaque_socket_is_left_out_in_the_kernel_and_counted_and_its_fd_reused_is_captured() {
    require_root();
    let Run {
        pid,
        report,
        captured,
        graph,
    } = run(&[]);
    let sink_fd = report["sink_fd"].as_i64().unwrap();
    let sink_bytes = report["sink_bytes"].as_u64().unwrap();
    assert_eq!(sink_bytes, (CHUNKS * 8192) as u64);
    assert_eq!(
        report["reused_fd"], report["sink_fd"],
        "the new HTTP connection took the sink's fd number: {report}"
    );

    let sockets = captured.socket_egress_by_connection(pid);
    let sink = sockets
        .iter()
        .find(|(fd, _, _, bytes)| *fd == sink_fd && bytes.starts_with(&[0, 1, 0, 0, 0, 0]))
        .unwrap_or_else(|| panic!("the sink connection's first chunk was copied: {sockets:?}"));
    let (_, sink_id, copied, _) = sink;
    assert_ne!(*sink_id, 0, "a socket connected while tracing has an id");
    let counted = captured.summary["kernel"]["opaque_socket_bytes"]
        .as_u64()
        .unwrap();
    assert_eq!(
        copied + counted,
        sink_bytes,
        "copied {copied} + counted {counted}: {}",
        captured.summary
    );
    assert!(
        counted >= sink_bytes / 2,
        "most of the sink's bytes were left out, not copied: copied {copied}, counted {counted}"
    );

    // The connection that took the sink's fd number is another socket, captured whole.
    let reused = sockets
        .iter()
        .find(|(fd, id, _, _)| *fd == sink_fd && id != sink_id)
        .unwrap_or_else(|| panic!("no second socket on fd {sink_fd}: {sockets:?}"));
    assert!(reused.3.starts_with(b"POST /after HTTP/1.1\r\n"));
    assert!(reused.3.ends_with(MARKER), "the whole request was copied");
    // The HTTP connection kept open across: both requests, the one sent after the sink was
    // left out too.
    let kept_fd = report["kept_fd"].as_i64().unwrap();
    let kept = sockets
        .iter()
        .find(|(fd, _, _, _)| *fd == kept_fd)
        .unwrap_or_else(|| panic!("no data on the kept connection: {sockets:?}"));
    assert!(kept.3.starts_with(b"POST /before HTTP/1.1\r\n"));
    assert!(contains(&kept.3, b"POST /during HTTP/1.1\r\n"));
    assert!(kept.3.ends_with(b"second request on the kept connection"));
    // Reconstruction read the three requests as HTTP exchanges, and only the sink as opaque.
    let stats = &graph["stats"]["reconstruction"];
    assert_eq!(stats["http_exchanges"], 3, "{stats:#}");
    assert_eq!(stats["opaque_connections"], 1, "{stats:#}");
}

#[test]
fn with_copy_opaque_payloads_every_byte_is_copied() {
    require_root();
    let Run {
        pid,
        report,
        captured,
        ..
    } = run(&["--copy-opaque-payloads"]);
    let sink_fd = report["sink_fd"].as_i64().unwrap();
    let copied: u64 = captured
        .socket_egress_by_connection(pid)
        .iter()
        .filter(|(fd, _, _, bytes)| *fd == sink_fd && bytes.starts_with(&[0, 1]))
        .map(|(_, _, moved, _)| moved)
        .sum();
    assert_eq!(copied, report["sink_bytes"].as_u64().unwrap());
    assert_eq!(captured.summary["kernel"]["opaque_socket_bytes"], 0);
}
