//! End-to-end tests of vectored socket payloads (`writev`, `readv`, `sendmsg`, `recvmsg`):
//! the same HTTP/1.1 LLM request written and read with plain calls and with iovec arrays
//! reassembles to the same bytes and the same LLM calls. Real clients: Python's socket module
//! (`sendall`/`recv`, `sendmsg`/`recvmsg_into`, `os.writev`/`os.readv`:
//! tests/agents/vectored_http_client.py) and Node's `http` module, which writes every request
//! with `writev` (tests/agents/node_writev_client.mjs), against the mock LLM on plain HTTP;
//! and a pipe written with `writev` and read with `readv`.
//! Needs root (eBPF).

use crate::support;

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;
use support::*;

const API_KEY: &str = "sk-agentscope-iovec-secret-3f9a1b";

/// The graph's agent that holds `pid`.
fn agent_of(graph: &Value, pid: u64) -> &Value {
    graph["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["pids"].as_array().unwrap().contains(&Value::from(pid)))
        .unwrap_or_else(|| panic!("no agent for pid {pid}: {:#}", graph["agents"]))
}

fn decode(text: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text.as_str().unwrap())
        .unwrap()
}

/// A `writev` past the per-call caps (`MAX_IOVECS` segments, `MAX_CHUNKS` chunks) of
/// `request` (fd, length sent, length of its header segment): its `expected` first bytes are
/// captured as at most 96 records of at most 16 KiB, like a `write`'s, the headers and then the
/// segments in order, and the rest is reported lost on its last record. Returns the bytes lost.
fn assert_capped(
    captured: &Captured,
    streams: &BTreeMap<(u64, String, String, u64), Vec<u8>>,
    pid: u64,
    request: &Value,
    expected: usize,
) -> u64 {
    let fd = request["fd"].as_i64().unwrap();
    let sent = request["sent_len"].as_u64().unwrap();
    let head_len = request["head_len"].as_u64().unwrap() as usize;
    let records: Vec<&Value> = captured
        .of_kind("data")
        .filter(|e| e["pid"] == pid && e["fd"] == fd && e["direction"] == "egress")
        .collect();
    assert!(
        records.len() <= 96,
        "{} records for one call",
        records.len()
    );
    assert!(records
        .iter()
        .all(|r| r["total_len"] == sent && decode(&r["data_b64"]).len() <= 16384));
    let last = records.last().unwrap();
    assert_eq!(last["last"], true);
    let lost = sent - expected as u64;
    assert_eq!(last["lost_bytes"], lost, "{last}");
    let bytes = &streams[&(pid, "socket".to_string(), "egress".to_string(), fd as u64)];
    assert_eq!(
        bytes.len(),
        expected,
        "bytes captured of the oversized writev"
    );
    assert!(bytes.starts_with(b"POST /v1/embeddings HTTP/1.1\r\n"));
    // The segments follow in order: 4 KiB of one letter each, or 1 MiB of `x` then `y`.
    for (i, &byte) in bytes[head_len..].iter().enumerate() {
        let want = if sent < 2 << 20 {
            b'A' + (i / 4096 % 26) as u8
        } else if i < 1 << 20 {
            b'x'
        } else {
            b'y'
        };
        assert_eq!(byte, want, "byte {i} of the body");
    }
    lost
}

/// One collector follows both clients (a shell runs one after the other). Per Python
/// connection, the captured egress is the request byte for byte (but for the masked key) and
/// the captured ingress is the answer; the three connections' captures are identical, so
/// reassembly and redaction cannot tell how the bytes were written. Node's two requests (one
/// `writev` of one buffer, one of three) are captured identically too. Each client is an agent
/// with one LLM call per request, and the key appears nowhere. Two oversized `writev`s are cut
/// at the caps, and what they lost is all the summary reports lost. A JSON-RPC message written
/// into a pipe with `writev` and read with `readv` is captured on both ends.
#[test]
fn vectored_calls_reassemble_like_plain_ones() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let llm = MockLlm::start_with(dir.path(), &["--plain"]);
    let script = format!(
        "{} {} --port {port} && node {} {port}",
        python_interpreter(),
        agents_dir().join("vectored_http_client.py").display(),
        agents_dir().join("node_writev_client.mjs").display(),
        port = llm.port,
    );
    let workload = Paused::command(
        dir.path(),
        "/bin/sh",
        &["-c", &script],
        &[("AGENTSCOPE_TEST_API_KEY", API_KEY)],
    );
    let graph_path = dir.path().join("graph.json");
    let collect = Collect::start(
        dir.path(),
        &[
            "--pid",
            &workload.pid().to_string(),
            "--no-kubernetes",
            "--graph-json",
            graph_path.to_str().unwrap(),
        ],
    );
    workload.release();
    let output = workload.finish();
    let mut lines = output.lines();
    let python: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let node: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(node["ok"], true, "{node}");
    let events_path = collect.stdout_path.clone();
    let captured = collect.stop();
    let streams = captured.streams();
    let python_pid = python["pid"].as_u64().unwrap();
    let lost = assert_capped(
        &captured,
        &streams,
        python_pid,
        &python["many_segments"],
        520_331,
    ) + assert_capped(
        &captured,
        &streams,
        python_pid,
        &python["large_segments"],
        1_572_864,
    );
    // Nothing else was lost: what the caps left out is all the summary counts.
    assert_eq!(captured.summary["kernel"]["lost_egress_bytes"], lost);
    assert_eq!(captured.summary["kernel"]["lost_ingress_bytes"], 0);

    let stream = |pid: u64, direction: &str, fd: u64| -> &Vec<u8> {
        streams
            .get(&(pid, "socket".to_string(), direction.to_string(), fd))
            .unwrap_or_else(|| panic!("no {direction} socket stream for pid {pid} fd {fd}"))
    };
    let mut captured_requests = BTreeMap::new();
    for connection in python["connections"].as_array().unwrap() {
        let how = connection["how"].as_str().unwrap();
        let fd = connection["fd"].as_u64().unwrap();
        let sent = decode(&connection["sent_b64"]);
        let received = decode(&connection["received_b64"]);
        let egress = stream(python_pid, "egress", fd);
        assert_eq!(egress.len(), sent.len(), "{how}: egress length");
        // Byte for byte, but for the key redaction masked with `*`.
        let masked = egress.iter().zip(&sent).filter(|(got, want)| got != want);
        assert!(
            masked.clone().all(|(got, _)| *got == b'*'),
            "{how}: the request was not captured verbatim"
        );
        let masked = masked.count();
        assert!(
            masked > 0 && masked <= API_KEY.len(),
            "{how}: {masked} bytes masked"
        );
        assert_eq!(
            stream(python_pid, "ingress", fd),
            &received,
            "{how}: the answer as read"
        );
        captured_requests.insert(how.to_string(), egress.clone());
    }
    assert_eq!(
        captured_requests["sendmsg"], captured_requests["write"],
        "sendmsg captured like write"
    );
    assert_eq!(
        captured_requests["writev"], captured_requests["write"],
        "writev captured like write"
    );

    // The JSON-RPC message through a pipe, written with writev and read with readv.
    let pipe = &python["pipe"];
    let message = decode(&pipe["message_b64"]);
    let write_fd = pipe["write_fd"].as_i64().unwrap() as i32;
    let read_fd = pipe["read_fd"].as_i64().unwrap() as i32;
    assert_eq!(
        captured.pipe_stream(python_pid as u32, "egress", write_fd),
        message,
        "the pipe's writev"
    );
    assert_eq!(
        captured.pipe_stream(python_pid as u32, "ingress", read_fd),
        message,
        "the pipe's readv"
    );

    let node_pid = node["pid"].as_u64().unwrap();
    let node_egress: Vec<&Vec<u8>> = streams
        .iter()
        .filter(|((pid, source, dir, _), _)| {
            *pid == node_pid && source == "socket" && dir == "egress"
        })
        .map(|(_, bytes)| bytes)
        .collect();
    assert_eq!(node_egress.len(), 2, "Node's two connections");
    assert!(node_egress[0].starts_with(b"POST /v1/chat/completions HTTP/1.1\r\n"));
    assert!(node_egress[0].ends_with(b"\"}]}"), "the whole body");
    assert_eq!(
        node_egress[0], node_egress[1],
        "corked writes captured like one"
    );

    let graph_text = std::fs::read_to_string(&graph_path).unwrap();
    let graph: Value = serde_json::from_str(&graph_text).unwrap();
    assert_eq!(agent_of(&graph, python_pid)["llm_calls"], 3, "{graph_text}");
    assert_eq!(agent_of(&graph, node_pid)["llm_calls"], 2, "{graph_text}");
    let events_text = std::fs::read_to_string(&events_path).unwrap();
    assert!(!events_text.contains(API_KEY), "API key in the events");
    assert!(!graph_text.contains(API_KEY), "API key in the graph");
}
