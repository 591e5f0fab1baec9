//! End-to-end tests of HTTP/2 reconstruction: the Go test agent (tests/agents/go_agent,
//! `net/http` over `crypto/tls`, ALPN h2) and curl (nghttp2 over system OpenSSL) talk HTTP/2
//! to a real Go `net/http` server (tests/agents/go_h2_front) in front of the mock LLM, and a
//! Python agent on the `h2` library talks h2c (no TLS) to a local inference server on the same
//! library (tests/agents/h2c_*.py); the graph shows their LLM calls, models and tool calls as
//! it does for HTTP/1.1. Needs root (eBPF) and `make setup` (golang-go, curl, the test venv
//! with `h2`).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::certificates::make_ca_and_leaf;
use support::h2_front::{self, H2Front};
use support::*;

const API_KEY: &str = "sk-agentscope-h2-secret-5e8d1c";
/// Sent by curl as `x-api-key` and in a cookie, next to `Authorization`.
const X_API_KEY: &str = "xk-agentscope-h2-second-9f27a4";
const COOKIE_SECRET: &str = "ck-agentscope-h2-session-3b6e0f";

/// Where `secret` is in `bytes`: as text, or Huffman-coded (HPACK) starting at any bit.
fn secret_in(bytes: &[u8], secret: &str) -> Option<String> {
    if memchr::memmem::find(bytes, secret.as_bytes()).is_some() {
        return Some("as text".into());
    }
    // The code of each symbol does not depend on where it starts: look for the coded bits of
    // everything but the last character at every bit offset.
    let coded = agentscope_http2_wire::huffman::encode(&secret.as_bytes()[..secret.len() - 1]);
    let pattern_bits = {
        // Bits of the coded prefix without its padding: re-derive the exact bit length.
        let mut bits = 0usize;
        let mut reader = agentscope_http2_wire::huffman::Reader::default();
        for &b in &coded {
            reader.push(b, |_, end| bits = end).unwrap();
        }
        bits
    };
    let bit = |data: &[u8], i: usize| (data[i / 8] >> (7 - i % 8)) & 1;
    let total = bytes.len() * 8;
    (0..total.saturating_sub(pattern_bits))
        .find(|&start| (0..pattern_bits).all(|i| bit(bytes, start + i) == bit(&coded, i)))
        .map(|start| format!("Huffman-coded at bit {start}"))
}

/// The finder finds what it must: the fixture key, Huffman-coded by Go's hpack in a capture
/// recorded before header values were masked (tests/fixtures/http2), and not what is absent.
#[test]
fn the_secret_finder_finds_huffman_coded_keys() {
    let fixture = std::fs::read_to_string(format!(
        "{}/tests/fixtures/http2/go_streaming_tool_calls.jsonl",
        env!("AGENTSCOPE_REPO")
    ))
    .unwrap();
    let egress: Vec<u8> = fixture
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["direction"] == "egress")
        .flat_map(|e| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(e["data_b64"].as_str().unwrap())
                .unwrap()
        })
        .collect();
    let found = secret_in(&egress, "sk-fixture-not-a-secret-000").expect("the fixture key");
    assert!(found.starts_with("Huffman-coded"), "{found}");
    assert_eq!(secret_in(&egress, API_KEY), None);
}

fn assert_no_secret(what: &str, bytes: &[u8], secrets: &[&str]) {
    for secret in secrets {
        if let Some(how) = secret_in(bytes, secret) {
            panic!("{what}: {secret} {how}");
        }
    }
}
const READ_PATH: &str = "/etc/os-release";

struct Setup {
    dir: tempfile::TempDir,
    agent: PathBuf,
    ca: PathBuf,
    front: H2Front,
    _llm: MockLlm,
}

fn setup() -> Setup {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    let output = Command::new(agents_dir().join("go_agent/build.sh"))
        .arg(&bin)
        .output()
        .expect("run tests/agents/go_agent/build.sh (needs golang-go: make setup)");
    assert!(
        output.status.success(),
        "building the Go agent failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let front_binary = h2_front::build(&bin);
    let ca = make_ca_and_leaf(&dir.path().join("cert"));
    let llm = MockLlm::start(dir.path());
    let front = H2Front::start(dir.path(), &front_binary, &llm, &ca);
    Setup {
        agent: bin.join("go_agent"),
        dir,
        ca,
        front,
        _llm: llm,
    }
}

/// What an agent that read `READ_PATH` with its `read_file` tool shows: the file opened, the
/// agent with `model`, its (LLM calls, tool calls), and `protocol` as the only wire protocol
/// of its model calls (HTTP/2 over TLS is `h2`, on a plain socket `h2c`).
fn assert_read_file_agent(
    captured: &Captured,
    graph: &Value,
    pid: u32,
    model: &str,
    (llm_calls, tool_calls): (u64, u64),
    protocol: &str,
) {
    assert!(
        captured
            .of_kind("open")
            .any(|e| e["pid"] == pid && e["path"] == READ_PATH && e["ret"].as_i64().unwrap() >= 0),
        "read_file opened {READ_PATH}"
    );
    let agent = agent_of(graph, pid);
    assert!(models(agent).contains(&&Value::from(model)), "{agent:#}");
    assert_eq!(agent["llm_calls"], llm_calls, "{agent:#}");
    assert_eq!(agent["tool_calls"], tool_calls, "{agent:#}");
    assert_eq!(
        model_call_protocols(graph, agent),
        [Value::from(protocol)],
        "the graph names the wire protocol of the model calls"
    );
}

/// The agent of `pid` in the graph.
fn agent_of(graph: &Value, pid: u32) -> &Value {
    graph["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["pids"].as_array().unwrap().contains(&Value::from(pid)))
        .unwrap_or_else(|| panic!("no agent for pid {pid}: {:#}", graph["agents"]))
}

/// The `protocol` attribute of the agent's edges to its models: which wire protocols carried
/// its LLM calls.
fn model_call_protocols(graph: &Value, agent: &Value) -> Vec<Value> {
    let from = format!("agent:{}", agent["key"].as_str().unwrap());
    graph["graph"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["from"] == from.as_str() && e["kind"] == "invokes_model")
        .flat_map(|e| {
            e["attributes"]["protocol"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

fn models(agent: &Value) -> Vec<&Value> {
    agent["aibom"]["providers"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|m| m.as_array().unwrap())
        .collect()
}

/// The Go agent runs three conversations at once over one HTTP/2 connection (interleaved
/// streams), each a streamed `read_file` tool call and a streamed follow-up: six LLM calls,
/// three tool calls, the file opened, the model named, the key in no output.
#[test]
fn go_agent_over_http2_shows_its_llm_calls_and_tool_calls() {
    let setup = setup();
    let args = [
        "--port".to_string(),
        setup.front.port.to_string(),
        "--ca".into(),
        setup.ca.display().to_string(),
        "--read-path".into(),
        READ_PATH.into(),
        "--http2".into(),
        "--stream".into(),
        "--parallel".into(),
        "2".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Paused::agent(
        setup.dir.path(),
        setup.agent.to_str().unwrap(),
        &args,
        &[("AGENTSCOPE_TEST_API_KEY", API_KEY)],
    );
    let pid = agent.pid();
    let graph_path = setup.dir.path().join("graph.json");
    let collect = Collect::start(
        setup.dir.path(),
        &[
            "--pid",
            &pid.to_string(),
            "--no-kubernetes",
            "--graph-json",
            graph_path.to_str().unwrap(),
        ],
    );
    agent.release();
    let output = agent.finish();
    let report: Value = serde_json::from_str(output.trim()).unwrap();
    assert_eq!(report["ok"], true, "{output}");
    assert_eq!(report["parallel_ok"], 2, "{output}");
    let events_path = collect.stdout_path.clone();
    let captured = collect.stop();
    assert_eq!(captured.summary["kernel"]["lost_bytes"], 0);

    // One connection, and it is HTTP/2: the client preface starts it.
    let egress = captured.tls_stream(pid, "egress");
    assert!(
        egress.starts_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        "the agent spoke HTTP/2"
    );
    let graph_text = std::fs::read_to_string(&graph_path).unwrap();
    let graph: Value = serde_json::from_str(&graph_text).unwrap();
    assert_read_file_agent(&captured, &graph, pid, "gpt-4o-mini", (6, 3), "h2");

    let events_text = std::fs::read_to_string(&events_path).unwrap();
    assert!(!events_text.contains(API_KEY), "API key in the events");
    assert!(!graph_text.contains(API_KEY), "API key in the graph");
    // Go's hpack Huffman-codes the key in `authorization`: no form of it is in the payloads.
    for direction in ["egress", "ingress"] {
        for stream in captured.tls_streams(u64::from(pid), direction) {
            assert_no_secret(&format!("{direction} payload"), &stream, &[API_KEY]);
        }
    }
}

/// curl over system OpenSSL (nghttp2's HPACK, which indexes the first request's fields and
/// refers to them in the second): both requests on one connection are LLM calls in the graph,
/// the streamed one with its tool call.
#[test]
fn curl_http2_requests_on_one_connection_are_llm_calls() {
    let setup = setup();
    let body_dir = setup.dir.path();
    std::fs::write(
        body_dir.join("first.json"),
        r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Read it."}],"tools":[{"type":"function","function":{"name":"read_file","parameters":{"type":"object","properties":{"path":{"type":"string"}}}}}],"metadata":{"read_path":"/etc/hostname"}}"#,
    )
    .unwrap();
    std::fs::write(
        body_dir.join("second.json"),
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}]}"#,
    )
    .unwrap();
    let url = format!("https://localhost:{}/v1/chat/completions", setup.front.port);
    let auth = format!("Authorization: Bearer {API_KEY}");
    let x_api_key = format!("x-api-key: {X_API_KEY}");
    let cookie = format!("Cookie: session={COOKIE_SECRET}");
    let first = format!("@{}", body_dir.join("first.json").display());
    let second = format!("@{}", body_dir.join("second.json").display());
    let ca = setup.ca.display().to_string();
    let mut args: Vec<&str> = vec!["-sS", "--http2", "--cacert", &ca, "-H", &auth];
    args.extend(["-H", &x_api_key, "-H", &cookie]);
    args.extend([
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &first,
        &url,
    ]);
    args.extend(["--next", "--http2", "--cacert", &ca, "-H", &auth]);
    args.extend(["-H", &x_api_key, "-H", &cookie]);
    args.extend([
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &second,
        &url,
    ]);
    let curl = Paused::command(setup.dir.path(), "curl", &args, &[]);
    let pid = curl.pid();
    let graph_path = setup.dir.path().join("graph.json");
    let record = setup.dir.path().join("curl.cap");
    let collect = Collect::start(
        setup.dir.path(),
        &[
            "--pid",
            &pid.to_string(),
            "--no-kubernetes",
            "--graph-json",
            graph_path.to_str().unwrap(),
            "--record",
            record.to_str().unwrap(),
        ],
    );
    curl.release();
    let output = curl.finish();
    assert!(
        output.contains("data: [DONE]") && output.contains(r#""object": "chat.completion""#),
        "curl got a streamed answer and a JSON one: {output}"
    );
    let captured = collect.stop();
    assert_eq!(captured.summary["kernel"]["lost_bytes"], 0);
    let graph_text = std::fs::read_to_string(&graph_path).unwrap();
    let graph: Value = serde_json::from_str(&graph_text).unwrap();
    let agent = agent_of(&graph, pid);
    assert!(
        models(agent).contains(&&Value::from("gpt-4o-mini")),
        "{agent:#}"
    );
    assert_eq!(agent["llm_calls"], 2, "{agent:#}");

    // nghttp2 Huffman-codes the three values (the first request adds them to its dynamic
    // table, the second refers to them): none leaves, in any form, in the `collect --json`
    // payloads, the graph, or the recording (replayed as JSON lines).
    let secrets = [API_KEY, X_API_KEY, COOKIE_SECRET];
    for direction in ["egress", "ingress"] {
        let streams = captured.tls_streams(u64::from(pid), direction);
        assert!(!streams.is_empty() || direction == "ingress");
        for stream in streams {
            assert_no_secret(
                &format!("collect --json {direction} payload"),
                &stream,
                &secrets,
            );
        }
    }
    assert_no_secret("--graph-json", graph_text.as_bytes(), &secrets);
    let replay = Command::new(env!("CARGO_BIN_EXE_agentscope"))
        .args(["replay", "--json"])
        .arg(&record)
        .output()
        .expect("agentscope replay");
    assert!(replay.status.success(), "replay failed: {replay:?}");
    let replayed = Captured {
        events: String::from_utf8_lossy(&replay.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["kind"] != "summary")
            .collect(),
        summary: Value::Null,
    };
    let replayed_egress = replayed.tls_streams(u64::from(pid), "egress");
    assert!(
        !replayed_egress.is_empty(),
        "the recording holds the connection"
    );
    for stream in replayed_egress {
        assert_no_secret("the recording's payloads", &stream, &secrets);
    }
    // The masked headers still decode: the graph holds both calls, read from the recording too.
    let replayed_graph = setup.dir.path().join("replayed-graph.json");
    let replay = Command::new(env!("CARGO_BIN_EXE_agentscope"))
        .args(["replay", "--graph-json"])
        .arg(&replayed_graph)
        .arg(&record)
        .output()
        .expect("agentscope replay --graph-json");
    assert!(replay.status.success(), "replay failed: {replay:?}");
    let replayed_graph: Value =
        serde_json::from_str(&std::fs::read_to_string(&replayed_graph).unwrap()).unwrap();
    assert_eq!(agent_of(&replayed_graph, pid)["llm_calls"], 2);
}

/// HTTP/2 without TLS (h2c, prior knowledge), as a local inference server speaks it: a Python
/// agent on the `h2` library sends a streamed request on a plain socket, runs the tool call
/// the answer asks for, and sends the result back on a second stream of the same connection.
/// The preface is recognised on the plain socket like on TLS plaintext.
#[test]
fn h2c_agent_on_a_plain_socket_shows_its_llm_calls_and_tool_call() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let python = mcp_python();
    let (_server, port) = start_h2c_server(dir.path(), &python);
    let agent_path = agents_dir().join("h2c_agent.py");
    let agent = Paused::agent(
        dir.path(),
        &python,
        &[
            agent_path.to_str().unwrap(),
            "--port",
            &port,
            "--read-path",
            READ_PATH,
        ],
        &[("AGENTSCOPE_TEST_API_KEY", API_KEY)],
    );
    let FollowedAgent {
        pid,
        captured,
        graph,
        ..
    } = follow_agent(dir.path(), agent, &[]);
    assert_eq!(captured.summary["kernel"]["lost_bytes"], 0);
    assert!(
        captured
            .of_kind("data")
            .any(|e| e["pid"] == pid && e["source"] == "socket"),
        "the h2c bytes were captured on the plain socket"
    );
    // Python's `hpack` Huffman-codes `authorization` (never indexed): masked on the socket too.
    for ((p, _, _, _), stream) in captured.streams() {
        if p == u64::from(pid) {
            assert_no_secret("h2c payload", &stream, &[API_KEY]);
        }
    }
    assert_read_file_agent(&captured, &graph, pid, "qwen2.5-coder", (2, 1), "h2c");
}

/// The collector starts while the agent's HTTP/2 connection is open (Python's `h2` over
/// system OpenSSL, ALPN h2): the agent's first request filled its HPACK table, the second
/// refers to it. The collector recognises HTTP/2 from the frames, counts the connection as
/// attached mid-connection, reads the second request from what its block carries alone (its
/// `:path` is in the unknown table) and still names it an LLM call by its bodies, over `h2`;
/// the first, never seen, is not made up; the key in `authorization` is masked. (Over a plain
/// socket this cannot be shown: the collector does not capture payloads of sockets connected
/// before it started.)
#[test]
fn http2_connection_open_before_the_collector_is_read_from_its_frames() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let python = mcp_python();
    let ca = make_ca_and_leaf(&dir.path().join("cert"));
    let port_file = dir.path().join("h2.port");
    let _server = Background(
        Command::new(&python)
            .arg(agents_dir().join("h2c_llm_server.py"))
            .args(["--port-file", port_file.to_str().unwrap()])
            .arg("--cert-dir")
            .arg(dir.path().join("cert"))
            .stderr(std::fs::File::create(dir.path().join("h2.log")).unwrap())
            .spawn()
            .expect("start the h2 server"),
    );
    let port = wait_for_file(&port_file, "h2 server port");
    let pause = dir.path().join("second-request");
    let agent = Command::new(&python)
        .arg(agents_dir().join("h2c_agent.py"))
        .args(["--port", &port, "--read-path", READ_PATH])
        .arg("--pause-after-first-file")
        .arg(&pause)
        .arg("--ca")
        .arg(&ca)
        .env("AGENTSCOPE_TEST_API_KEY", API_KEY)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the h2 agent");
    let pid = agent.id();
    let mut agent = Background(agent);
    wait_for_file(
        &pause.with_extension("reached"),
        "the agent's first request",
    );
    let graph_path = dir.path().join("graph.json");
    let collect = Collect::start(
        dir.path(),
        &[
            "--pid",
            &pid.to_string(),
            "--no-kubernetes",
            "--graph-json",
            graph_path.to_str().unwrap(),
        ],
    );
    std::fs::write(&pause, "go").unwrap();
    let mut output = String::new();
    std::io::Read::read_to_string(&mut agent.0.stdout.take().unwrap(), &mut output).unwrap();
    assert!(
        agent.0.wait().unwrap().success(),
        "the h2 agent failed: {output}"
    );
    let report: Value =
        serde_json::from_str(output.trim()).unwrap_or_else(|e| panic!("{e}: {output}"));
    assert_eq!(report["ok"], true, "{report}");
    let captured = collect.stop();
    let egress = captured.tls_stream(pid, "egress");
    assert!(!egress.is_empty(), "the second request was captured");
    assert!(
        !egress.starts_with(b"PRI * HTTP/2.0"),
        "attached after the preface"
    );
    for direction in ["egress", "ingress"] {
        for stream in captured.tls_streams(u64::from(pid), direction) {
            assert_no_secret(&format!("{direction} payload"), &stream, &[API_KEY]);
        }
    }
    let graph_text = std::fs::read_to_string(&graph_path).unwrap();
    let graph: Value = serde_json::from_str(&graph_text).unwrap();
    let stats = &graph["stats"]["reconstruction"];
    assert_eq!(stats["http2_attached_mid_connection"], 1, "{stats:#}");
    assert_eq!(stats["http_exchanges"], 1, "{stats:#}");
    let agent = agent_of(&graph, pid);
    assert_eq!(agent["llm_calls"], 1, "{agent:#}");
    assert!(
        models(agent).contains(&&Value::from("qwen2.5-coder")),
        "{agent:#}"
    );
    assert_eq!(model_call_protocols(&graph, agent), [Value::from("h2")]);
    assert!(!graph_text.contains(API_KEY));
}

/// `curl --http2 http://…` asks for HTTP/2 with `Upgrade: h2c`: its first request is sent in
/// HTTP/1.1, the server answers `101` and goes on in HTTP/2, the upgraded request being
/// stream 1; curl's second request is HTTP/2 on the same connection. Both are LLM calls in
/// the graph, over `h2c`.
#[test]
fn curl_h2c_upgrade_continues_in_http2() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let python = mcp_python();
    let (_server, port) = start_h2c_server_with(dir.path(), &python, &["--accept-upgrade"]);
    let body = dir.path().join("body.json");
    std::fs::write(
        &body,
        r#"{"model":"qwen2.5-coder","stream":true,"messages":[{"role":"user","content":"Read it."}],"metadata":{"read_path":"/etc/hostname"}}"#,
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let data = format!("@{}", body.display());
    let one = [
        "--http2",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
    ];
    let mut args: Vec<&str> = vec!["-sS"];
    args.extend(one);
    args.extend([data.as_str(), url.as_str(), "--next"]);
    args.extend(one);
    args.extend([data.as_str(), url.as_str()]);
    let curl = Paused::command(dir.path(), "curl", &args, &[]);
    let pid = curl.pid();
    let graph_path = dir.path().join("graph.json");
    let collect = Collect::start(
        dir.path(),
        &[
            "--pid",
            &pid.to_string(),
            "--no-kubernetes",
            "--graph-json",
            graph_path.to_str().unwrap(),
        ],
    );
    curl.release();
    let output = curl.finish();
    assert_eq!(output.matches("data: [DONE]").count(), 2, "{output}");
    let captured = collect.stop();
    let upgraded = captured
        .streams()
        .into_iter()
        .any(|((p, source, dir, _), bytes)| {
            p == u64::from(pid)
                && source == "socket"
                && dir == "ingress"
                && bytes.starts_with(b"HTTP/1.1 101 Switching Protocols")
        });
    assert!(upgraded, "curl asked for h2c and the server switched");
    let graph: Value =
        serde_json::from_str(&std::fs::read_to_string(&graph_path).unwrap()).unwrap();
    let agent = agent_of(&graph, pid);
    assert_eq!(agent["llm_calls"], 2, "{agent:#}");
    assert!(
        models(agent).contains(&&Value::from("qwen2.5-coder")),
        "{agent:#}"
    );
    assert_eq!(model_call_protocols(&graph, agent), [Value::from("h2c")]);
}

/// tests/agents/h2c_llm_server.py, listening; returns it and its port.
fn start_h2c_server(dir: &Path, python: &str) -> (Background, String) {
    start_h2c_server_with(dir, python, &[])
}

/// [`start_h2c_server`] with more arguments.
fn start_h2c_server_with(dir: &Path, python: &str, extra: &[&str]) -> (Background, String) {
    let port_file = dir.join("h2c.port");
    let server = Background(
        Command::new(python)
            .arg(agents_dir().join("h2c_llm_server.py"))
            .args(["--port-file", port_file.to_str().unwrap()])
            .args(extra)
            .stderr(std::fs::File::create(dir.join("h2c.log")).unwrap())
            .spawn()
            .expect("start the h2c server"),
    );
    let port = wait_for_file(&port_file, "h2c server port");
    (server, port)
}

/// The same h2c conversation captured at the server (started under the collector): the
/// server's SETTINGS go out before it reads the client's preface, so its first captured bytes
/// are a SETTINGS frame, which names it the server. Both streams are reconstructed; they are
/// served, not the server's own LLM calls.
#[test]
fn h2c_server_is_read_from_its_first_settings_frame() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let python = mcp_python();
    let port_file = dir.path().join("h2c.port");
    let server_path = agents_dir().join("h2c_llm_server.py");
    let server = Paused::command(
        dir.path(),
        &python,
        &[
            server_path.to_str().unwrap(),
            "--port-file",
            port_file.to_str().unwrap(),
        ],
        &[],
    );
    let server_pid = server.pid();
    let graph_path = dir.path().join("graph.json");
    let collect = Collect::start(
        dir.path(),
        &[
            "--pid",
            &server_pid.to_string(),
            "--no-kubernetes",
            "--graph-json",
            graph_path.to_str().unwrap(),
        ],
    );
    server.release();
    let _server = Background(server.into_child());
    let port = wait_for_file(&port_file, "h2c server port");
    let output = Command::new(&python)
        .arg(agents_dir().join("h2c_agent.py"))
        .args(["--port", &port, "--read-path", READ_PATH])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let captured = collect.stop();
    let first = captured
        .of_kind("data")
        .find(|e| e["pid"] == server_pid)
        .expect("the server's payloads");
    assert_eq!(
        first["direction"], "egress",
        "the server spoke first: {first}"
    );
    let graph: Value =
        serde_json::from_str(&std::fs::read_to_string(&graph_path).unwrap()).unwrap();
    let stats = &graph["stats"]["reconstruction"];
    assert_eq!(stats["http_exchanges"], 2, "{stats:#}");
    assert_eq!(stats["opaque_connections"], 0, "{stats:#}");
    assert_eq!(stats["llm_calls"], 0, "{stats:#}");
}

/// A real gRPC client (Python `grpcio`, gRPC C-core: it writes with `sendmsg`, many small
/// segments per frame, and reads with `recvmsg`) searches a Qdrant-shaped `grpcio` server
/// (tests/agents/grpc_vector_server.py, `/qdrant.Points/Search`) over h2c, between two LLM
/// calls (tests/agents/grpc_rag_agent.py). The channel is insecure on purpose: grpcio links
/// its own BoringSSL, whose plaintext the collector does not read, so over TLS only the
/// ClientHello would be seen. The graph names the collection as the agent's retrieval source
/// with the method and grpc-status (0, and 5 for a collection that does not exist), and the
/// searches are the agent's: its process is the one that wrote the requests.
#[test]
fn grpcio_client_search_is_a_retrieval_source_with_its_collection_and_status() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let python = mcp_python();
    let port_file = dir.path().join("grpc.port");
    let _server = Background(
        Command::new(&python)
            .arg(agents_dir().join("grpc_vector_server.py"))
            .args(["--port-file", port_file.to_str().unwrap()])
            .stderr(std::fs::File::create(dir.path().join("grpc.log")).unwrap())
            .spawn()
            .expect("start the gRPC server (grpcio in the test venv: make setup)"),
    );
    let llm = MockLlm::start(dir.path());
    let grpc_port = wait_for_file(&port_file, "gRPC server port");
    let cert = llm.cert.display().to_string();
    let llm_port = llm.port.to_string();
    let agent_path = agents_dir().join("grpc_rag_agent.py");
    let agent = Paused::agent(
        dir.path(),
        &python,
        &[
            agent_path.to_str().unwrap(),
            "--grpc-port",
            &grpc_port,
            "--llm-port",
            &llm_port,
            "--ca",
            &cert,
        ],
        &[("AGENTSCOPE_TEST_API_KEY", API_KEY)],
    );
    let FollowedAgent {
        pid,
        output,
        report,
        captured,
        graph,
        graph_path,
        ..
    } = follow_agent(dir.path(), agent, &[]);
    assert_eq!(report["missing"], "NOT_FOUND", "{output}");
    assert_eq!(captured.summary["kernel"]["lost_bytes"], 0);
    // The client preface, written by the agent's process with sendmsg.
    let h2c = captured
        .streams()
        .into_iter()
        .find(|((p, source, dir, _), bytes)| {
            *p == pid as u64
                && source == "socket"
                && dir == "egress"
                && bytes.starts_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        })
        .map(|(_, bytes)| bytes)
        .expect("the agent's h2c connection, from its first bytes");
    assert!(contains(&h2c, b"support-tickets"), "the search request");

    let graph_text = std::fs::read_to_string(&graph_path).unwrap();
    let agent = agent_of(&graph, pid);
    assert_eq!(agent["llm_calls"], 2, "{agent:#}");
    let sources = agent["aibom"]["retrieval_sources"].as_array().unwrap();
    assert!(
        sources.contains(&Value::from("qdrant:support-tickets")),
        "{agent:#}"
    );
    let node = |id: &str| {
        graph["graph"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == id)
            .unwrap_or_else(|| panic!("no node {id}: {:#}", graph["graph"]["nodes"]))
    };
    let found = node("data:vector:qdrant/support-tickets");
    assert_eq!(found["attributes"]["rpc.method"], "qdrant.Points/Search");
    assert_eq!(found["attributes"]["rpc.grpc.status_code"], 0, "{found:#}");
    let missing = node("data:vector:qdrant/missing-collection");
    assert_eq!(
        missing["attributes"]["rpc.grpc.status_code"], 5,
        "{missing:#}"
    );
    // The searches hang off the agent itself (its own process wrote them).
    let agent_node = format!("agent:{}", agent["key"].as_str().unwrap());
    assert!(
        graph["graph"]["edges"].as_array().unwrap().iter().any(|e| {
            e["from"] == agent_node.as_str() && e["to"] == "data:vector:qdrant/support-tickets"
        }),
        "{:#}",
        graph["graph"]["edges"]
    );
    assert!(!graph_text.contains(API_KEY), "API key in the graph");
}
