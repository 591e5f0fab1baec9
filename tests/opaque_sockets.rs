//! End-to-end test of leaving opaque sockets out in the kernel: a process
//! (tests/agents/opaque_socket_client.py) streams binary data to a sink over a plain socket
//! while it talks HTTP on another. Reconstruction reads no protocol in the sink connection's
//! first bytes, the collector asks the kernel to stop copying that socket, and the kernel
//! counts its bytes instead (`kernel.opaque_socket_bytes`): what was copied plus what was
//! counted is exactly what the process sent. The HTTP connection kept open across, and a new
//! one that takes the closed sink socket's fd number, are captured whole, their requests
//! reconstructed. With `--copy-opaque-payloads` every byte is copied and none counted. The
//! bytes left out are reported by process (`payloads_left_out` events): the client's when it
//! exits, the sink server's, still running, when capture stops; the graph and
//! `coverage --replay` of the recording list both. Needs root (eBPF).

use crate::support;

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

    // Whose bytes they were: one report, made as the client exited, just before its exit.
    let of_client: Vec<(usize, &Value)> = captured
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["kind"] == "payloads_left_out" && e["pid"].as_u64() == Some(pid))
        .collect();
    assert_eq!(of_client.len(), 1, "{of_client:?}");
    let (at, left_out) = of_client[0];
    assert_eq!(left_out["opaque_socket_bytes"].as_u64(), Some(counted));
    assert_eq!(left_out["on_request_bytes"], 0);
    assert_eq!(left_out["running"], false);
    let next = &captured.events[at + 1];
    assert!(
        next["kind"] == "exit" && next["pid"].as_u64() == Some(pid),
        "the report comes just before the exit: {next}"
    );
    let rows = graph["payloads_left_out"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["pid"].as_u64(), Some(pid));
    assert_eq!(rows[0]["opaque_socket_bytes"].as_u64(), Some(counted));
    assert!(
        rows[0]["program"]
            .as_str()
            .unwrap()
            .contains("opaque_socket_client.py"),
        "{}",
        rows[0]
    );
}

/// The sink server, followed too, receives the opaque bytes and is still running when capture
/// stops: its report says so, and every byte the kernel left out (client's and server's) is
/// in a report. `coverage --replay` of the recording lists both processes with those bytes.
#[test]
fn what_was_left_out_is_reported_by_process_and_replayed_into_coverage() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let opaque = OpaqueSocketClient::start(dir.path(), CHUNKS);
    let server = opaque.servers_pid().to_string();
    let recording = dir.path().join("left-out.cap");
    let followed = follow_agent(
        dir.path(),
        opaque.client,
        &["--pid", &server, "--record", recording.to_str().unwrap()],
    );
    let captured = &followed.captured;
    // The reports are what docs/events.schema.json says an event is.
    support::events_schema::assert_lines_match_schema(
        &std::fs::read_to_string(&followed.events_path).unwrap(),
    );
    assert_eq!(
        captured.summary["kernel"]["dropped"], 0,
        "{}",
        captured.summary
    );
    let counted = captured.summary["kernel"]["opaque_socket_bytes"]
        .as_u64()
        .unwrap();
    let reports: Vec<&Value> = captured.of_kind("payloads_left_out").collect();
    let reported: u64 = reports
        .iter()
        .map(|e| e["opaque_socket_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(
        reported, counted,
        "every byte left out is someone's: {reports:?}"
    );
    let report_of = |pid: u64| {
        reports
            .iter()
            .find(|e| e["pid"].as_u64() == Some(pid))
            .unwrap_or_else(|| panic!("no report of {pid}: {reports:?}"))
    };
    let client = report_of(u64::from(followed.pid));
    assert_eq!(client["running"], false, "{client}");
    let server_pid: u64 = server.parse().unwrap();
    let server_report = report_of(server_pid);
    assert_eq!(server_report["running"], true, "{server_report}");
    assert!(
        server_report["opaque_socket_bytes"].as_u64().unwrap() >= (CHUNKS * 8192) as u64 / 2,
        "most of what the sink received was left out: {server_report}"
    );

    let (coverage, text) = replayed_coverage(&recording);
    let rows = coverage["payloads_left_out"].as_array().unwrap();
    let row_of = |pid: u64| {
        rows.iter()
            .find(|row| row["pid"].as_u64() == Some(pid))
            .unwrap_or_else(|| panic!("no row of {pid}: {rows:?}"))
    };
    for (pid, report) in [
        (u64::from(followed.pid), client),
        (server_pid, server_report),
    ] {
        let row = row_of(pid);
        assert_eq!(
            row["opaque_socket_bytes"], report["opaque_socket_bytes"],
            "{row}"
        );
        assert_eq!(row["running"], report["running"], "{row}");
    }
    assert!(
        text.contains("payloads the kernel left out") && text.contains("capture stopped"),
        "{text}"
    );
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
