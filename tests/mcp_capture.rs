//! End-to-end tests of MCP capture: a real MCP client (the official Python SDK) spawns a stdio
//! MCP server and talks to a Streamable HTTP one, under `agentscope collect --pid <client>`.
//! The JSON-RPC messages must come out of the pipe capture byte for byte on both sides, parse
//! into the MCP records the client itself saw, and non-JSON pipes must stay uncaptured. They
//! load eBPF programs and so need root; without it they fail with a message saying so.
//!
//! With `AGENTSCOPE_WRITE_MCP_FIXTURES=DIR` the stdio test also saves what it captured as the
//! fixtures of the `reconstruct::mcp` unit tests (scripts/regenerate-fixtures-mcp.sh).

use crate::support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use agentscope_reconstruct::mcp::{
    ExchangeKind, McpDetail, McpExchange, McpSession, McpTransport, Sender, StdioMcpConnection,
};
use base64::Engine as _;
use serde_json::Value;
use support::*;

/// Text the stdio server's read_file tool reads: the test checks it comes back in the capture.
const NOTES: &str = "agentscope MCP e2e notes\nline two: {\"not\": \"a message\"}\n";

struct McpRun {
    client_pid: u32,
    captured: Captured,
    /// What the client received, as it saved it (`--dump`).
    dump: Value,
    /// The JSON line the client printed on stdout: a pipe made before the collector started.
    stdout: String,
    read_path: PathBuf,
    crm_port: u16,
    crm_pid: u32,
    _dir: tempfile::TempDir,
}

fn run_client(collect_args: &[&str]) -> McpRun {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let read_path = dir.path().join("notes.txt");
    std::fs::write(&read_path, NOTES).unwrap();
    let crm = McpCrmServer::start(dir.path(), None);
    let dump_path = dir.path().join("client-dump.json");
    let script = agents_dir().join("mcp_client_agent.py");
    let url = crm.url();
    let client = Paused::agent(
        dir.path(),
        &mcp_python(),
        &[
            script.to_str().unwrap(),
            "--read-path",
            read_path.to_str().unwrap(),
            "--dump",
            dump_path.to_str().unwrap(),
            "--http-url",
            &url,
        ],
        &[],
    );
    let client_pid = client.pid();
    let (client_arg, crm_arg) = (client_pid.to_string(), crm.pid.to_string());
    let mut args = vec!["--pid", client_arg.as_str(), "--pid", crm_arg.as_str()];
    args.extend_from_slice(collect_args);
    let collect = Collect::start(dir.path(), &args);
    client.release();
    let stdout = client.finish();
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    let captured = collect.stop();
    let dump = serde_json::from_str(&std::fs::read_to_string(&dump_path).unwrap()).unwrap();
    McpRun {
        client_pid,
        captured,
        dump,
        stdout,
        read_path,
        crm_port: crm.port,
        crm_pid: crm.pid,
        _dir: dir,
    }
}

/// The stdio server: the process that exec'd mcp_files_server.py.
fn server_pid(captured: &Captured) -> u32 {
    let pids: BTreeSet<u32> = captured
        .of_kind("exec")
        .filter(|e| {
            e["argv"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a.as_str().unwrap().ends_with("mcp_files_server.py"))
        })
        .map(|e| e["pid"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(pids.len(), 1, "one stdio server exec: {pids:?}");
    pids.into_iter().next().unwrap()
}

fn decode_b64(event: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(event["data_b64"].as_str().unwrap())
        .unwrap()
}

/// Newline-delimited JSON-RPC messages of a stdio stream (every line must parse).
fn json_lines(stream: &[u8]) -> Vec<Value> {
    assert!(
        stream.ends_with(b"\n"),
        "a stdio stream ends with a newline"
    );
    stream
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            serde_json::from_slice(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(line)))
        })
        .collect()
}

/// MCP records of the stdio session, fed from the server's pipe chunks in capture order.
fn stdio_records(captured: &Captured, server: u32) -> Vec<McpExchange> {
    let mut connection = StdioMcpConnection::new();
    let mut records = Vec::new();
    for e in captured.of_kind("data") {
        if e["pid"] != server || e["source"] != "pipe" {
            continue;
        }
        let direction = match e["direction"].as_str().unwrap() {
            "ingress" => agentscope_event::event::Direction::Ingress,
            _ => agentscope_event::event::Direction::Egress,
        };
        let sender = Sender::of_stream(Sender::Server, direction).unwrap();
        assert_eq!(e["lost_bytes"], 0, "nothing lost: {e}");
        records.extend(connection.feed_bytes(sender, &decode_b64(e), e["ts_ns"].as_u64().unwrap()));
    }
    records.extend(connection.finish(u64::MAX));
    records
}

fn calls<'a>(records: &'a [McpExchange], method: &str) -> Vec<&'a McpExchange> {
    records
        .iter()
        .filter(|r| r.kind == ExchangeKind::Call && r.method.as_deref() == Some(method))
        .collect()
}

/// JSON-RPC messages in an HTTP stream: request bodies and SSE `data:` payloads. The HTTP layer
/// proper lives elsewhere; finding `{"` objects that parse is enough to check the capture.
fn json_in_http(stream: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(offset) = stream[at..].windows(2).position(|w| w == b"{\"") {
        let start = at + offset;
        let mut values =
            serde_json::Deserializer::from_slice(&stream[start..]).into_iter::<Value>();
        match values.next() {
            Some(Ok(value)) if value.get("jsonrpc").is_some() => {
                at = start + values.byte_offset();
                out.push(value);
            }
            _ => at = start + 1,
        }
    }
    out
}

fn write_fixtures(
    dir: &Path,
    run: &McpRun,
    server: u32,
    server_fds: (i32, i32),
    client_fds: (i32, i32),
) {
    std::fs::create_dir_all(dir).unwrap();
    let captured = &run.captured;
    std::fs::write(
        dir.join("stdio-client-to-server.ndjson"),
        captured.pipe_stream(server, "ingress", server_fds.0),
    )
    .unwrap();
    std::fs::write(
        dir.join("stdio-server-to-client.ndjson"),
        captured.pipe_stream(server, "egress", server_fds.1),
    )
    .unwrap();
    let lines = |keep: &dyn Fn(&Value) -> bool| -> String {
        captured
            .of_kind("data")
            .filter(|e| keep(e))
            .map(|e| format!("{e}\n"))
            .collect()
    };
    std::fs::write(
        dir.join("stdio-pipe-events.jsonl"),
        lines(&|e| {
            e["source"] == "pipe"
                && (e["pid"] == server
                    || (e["pid"] == run.client_pid
                        && (e["fd"] == client_fds.0 || e["fd"] == client_fds.1)))
        }),
    )
    .unwrap();
    std::fs::write(
        dir.join("http-socket-events.jsonl"),
        lines(&|e| {
            e["source"] == "socket" && (e["pid"] == run.client_pid || e["pid"] == run.crm_pid)
        }),
    )
    .unwrap();
    std::fs::write(
        dir.join("client-dump.json"),
        serde_json::to_string_pretty(&run.dump).unwrap() + "\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("README.md"),
        format!(
            "Captured by tests/mcp_capture.rs (`scripts/regenerate-fixtures-mcp.sh`): the MCP \
             client agent (pid {client}) and its stdio server (pid {server}, which reads the \
             client on fd {server_in} and answers on fd {server_out}: the SDK dups its stdin and \
             stdout) under `agentscope collect --json`.\n\n\
             - `stdio-pipe-events.jsonl`: the `data` events (source `pipe`) of both ends, as printed.\n\
             - `stdio-client-to-server.ndjson`, `stdio-server-to-client.ndjson`: the server's \
             stdin-pipe ingress and stdout-pipe egress streams, reassembled.\n\
             - `http-socket-events.jsonl`: `data` events (source `socket`) of the client and the \
             Streamable HTTP server (pid {crm}, port {port}).\n\
             - `client-dump.json`: what the client received, as the SDK parsed it.\n",
            client = run.client_pid,
            crm = run.crm_pid,
            port = run.crm_port,
            server_in = server_fds.0,
            server_out = server_fds.1,
        ),
    )
    .unwrap();
}

/// The client spawns the stdio server through pipes (pipe2, vfork, dup2, close_range, exec):
/// both ends' pipe traffic is captured and identical, it parses into the records the client
/// saw, the server's open of the file is there, and the non-JSON `seq 1000 | cat` is not.
#[test]
fn stdio_mcp_is_captured_on_both_ends() {
    let run = run_client(&[]);
    let captured = &run.captured;
    let client = run.client_pid;
    let server = server_pid(captured);
    assert_ne!(server, client);
    assert!(
        captured
            .of_kind("fork")
            .any(|e| e["pid"] == client && e["child_pid"] == server),
        "the client forked the server"
    );

    // Server side: requests read from its stdin pipe, responses written to its stdout pipe.
    // The SDK dups both above fd 2 (and points fd 1 at stderr) to keep stray prints off the
    // protocol channel, so the fds are not 0 and 1: dup tracking has to follow them.
    let streams = captured.pipe_streams();
    let server_streams: Vec<(String, i32)> = streams
        .keys()
        .filter(|(pid, _, _)| *pid == server)
        .map(|(_, dir, fd)| (dir.clone(), *fd))
        .collect();
    assert_eq!(
        server_streams.len(),
        2,
        "server pipe streams: {server_streams:?}"
    );
    let (server_out, server_in) = (server_streams[0].1, server_streams[1].1);
    assert_eq!(
        (server_streams[0].0.as_str(), server_streams[1].0.as_str()),
        ("egress", "ingress")
    );
    let to_server = captured.pipe_stream(server, "ingress", server_in);
    let to_client = captured.pipe_stream(server, "egress", server_out);
    assert!(
        captured.of_kind("exec").any(|e| e["pid"] == server),
        "the server exec'd after the client set up its pipes"
    );

    // Client side: its stdout is a pipe the test made before the collector started, found in
    // /proc; the collector captured the JSON report the client printed there.
    assert_eq!(
        captured.pipe_stream(client, "egress", 1),
        run.stdout.as_bytes(),
        "the client's stdout"
    );
    // And one pipe written to the server, one read from it, byte-identical to the server's.
    let client_streams: Vec<_> = streams
        .keys()
        .filter(|(pid, _, fd)| *pid == client && *fd != 1)
        .collect();
    assert_eq!(
        client_streams.len(),
        2,
        "client pipe streams: {client_streams:?}"
    );
    let (_, dir_a, fd_a) = client_streams[0].clone();
    let (_, dir_b, fd_b) = client_streams[1].clone();
    assert_eq!((dir_a.as_str(), dir_b.as_str()), ("egress", "ingress"));
    assert!(
        captured.pipe_stream(client, "egress", fd_a) == to_server,
        "what the client wrote is what the server read"
    );
    assert!(
        captured.pipe_stream(client, "ingress", fd_b) == to_client,
        "what the server wrote is what the client read"
    );

    // The exact JSON-RPC messages, in order.
    let requests = json_lines(&to_server);
    let methods: Vec<&str> = requests
        .iter()
        .map(|m| m["method"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        methods,
        [
            "initialize",
            "notifications/initialized",
            "tools/list",
            "tools/call",
            "tools/call",
            "resources/read",
            "prompts/get"
        ]
    );
    assert!(requests.iter().all(|m| m["jsonrpc"] == "2.0"));
    let responses = json_lines(&to_client);
    let by_id = |id: &Value| -> &Value {
        responses
            .iter()
            .find(|r| &r["id"] == id)
            .unwrap_or_else(|| panic!("no response to id {id}"))
    };
    assert_eq!(
        by_id(&requests[0]["id"])["result"]["serverInfo"],
        run.dump["initialize"]["serverInfo"]
    );
    assert_eq!(
        by_id(&requests[3]["id"])["result"]["content"],
        run.dump["read_file"]["content"]
    );
    assert_eq!(
        by_id(&requests[5]["id"])["result"]["contents"],
        run.dump["resource"]["contents"]
    );

    // MCP records from the captured chunks match what the client received.
    let records = stdio_records(captured, server);
    assert!(
        records.iter().all(|r| !r.partial),
        "complete session: {records:#?}"
    );
    let init = calls(&records, "initialize");
    let McpDetail::Initialize(init) = &init[0].detail else {
        panic!("initialize detail")
    };
    let dump_init = &run.dump["initialize"];
    assert_eq!(
        init.protocol_version.as_deref(),
        dump_init["protocolVersion"].as_str()
    );
    let server_info = init.server.as_ref().unwrap();
    assert_eq!(
        server_info.name.as_deref(),
        dump_init["serverInfo"]["name"].as_str()
    );
    assert_eq!(
        server_info.version.as_deref(),
        dump_init["serverInfo"]["version"].as_str()
    );
    let client_info = init.client.as_ref().unwrap();
    assert_eq!(client_info.name.as_deref(), Some("agentscope-test-agent"));
    assert_eq!(client_info.version.as_deref(), Some("0.3.1"));
    assert_eq!(
        init.instructions.as_deref(),
        dump_init["instructions"].as_str()
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r.kind == ExchangeKind::Notification
                && r.method.as_deref() == Some("notifications/initialized"))
            .count(),
        1
    );

    let list = calls(&records, "tools/list");
    let McpDetail::ToolsList(list) = &list[0].detail else {
        panic!("tools/list detail")
    };
    let dump_tool = &run.dump["tools_list"]["tools"][0];
    assert_eq!(list.tools.len(), 1);
    assert_eq!(list.tools[0].name, dump_tool["name"].as_str().unwrap());
    assert_eq!(
        list.tools[0].description.as_deref(),
        dump_tool["description"].as_str()
    );
    assert_eq!(list.tools[0].input_schema.required, ["path"]);
    assert_eq!(
        list.tools[0].annotations.as_ref().unwrap().read_only_hint,
        Some(true)
    );

    let tool_calls = calls(&records, "tools/call");
    assert_eq!(tool_calls.len(), 2);
    for (record, key, path) in [
        (
            tool_calls[0],
            "read_file",
            run.read_path.display().to_string(),
        ),
        (
            tool_calls[1],
            "read_missing_file",
            format!("{}.missing", run.read_path.display()),
        ),
    ] {
        let McpDetail::ToolsCall(call) = &record.detail else {
            panic!("tools/call detail")
        };
        let dump = &run.dump[key];
        assert_eq!(record.tool_name.as_deref(), Some("read_file"));
        assert_eq!(call.arguments.as_ref().unwrap()["path"], path.as_str());
        assert_eq!(
            call.result_text.as_deref(),
            dump["content"][0]["text"].as_str()
        );
        assert_eq!(call.is_error, dump["isError"].as_bool());
        assert_eq!(
            call.structured_content.as_ref(),
            dump.get("structuredContent")
        );
    }
    let McpDetail::ToolsCall(read) = &tool_calls[0].detail else {
        unreachable!()
    };
    assert_eq!(
        read.result_text.as_deref(),
        Some(NOTES),
        "the file's text came back"
    );

    let resource = calls(&records, "resources/read");
    let McpDetail::ResourcesRead(resource) = &resource[0].detail else {
        panic!("resources/read detail")
    };
    let dump_content = &run.dump["resource"]["contents"][0];
    assert_eq!(resource.uri.as_deref(), Some("notes://agentscope/today"));
    assert_eq!(
        resource.contents[0].mime_type.as_deref(),
        dump_content["mimeType"].as_str()
    );
    assert_eq!(
        resource.contents[0].text_len,
        Some(dump_content["text"].as_str().unwrap().chars().count())
    );

    let prompt = calls(&records, "prompts/get");
    let McpDetail::PromptsGet(prompt) = &prompt[0].detail else {
        panic!("prompts/get detail")
    };
    assert_eq!(prompt.name.as_deref(), Some("summarize_file"));
    assert_eq!(prompt.arguments.as_ref().unwrap()["style"], "terse");
    assert_eq!(
        prompt.description.as_deref(),
        run.dump["prompt"]["description"].as_str()
    );
    assert_eq!(prompt.message_roles, ["user"]);

    // The tool really ran in the server process: its open of the file, and the failed one.
    let opens: Vec<&Value> = captured
        .of_kind("open")
        .filter(|e| e["pid"] == server)
        .collect();
    assert!(
        opens.iter().any(
            |e| e["path"] == run.read_path.to_str().unwrap() && e["ret"].as_i64().unwrap() >= 0
        ),
        "server opened the file"
    );
    assert!(opens.iter().any(|e| e["path"]
        == format!("{}.missing", run.read_path.display()).as_str()
        && e["ret"] == -2));

    // `seq 1000 | cat` ran under the collector, but its pipes carried no JSON: not captured.
    let pipeline: BTreeSet<u64> = captured
        .of_kind("exec")
        .filter(|e| {
            let name = e["filename"].as_str().unwrap();
            name.ends_with("/seq") || name.ends_with("/cat") || name.ends_with("/sh")
        })
        .map(|e| e["pid"].as_u64().unwrap())
        .collect();
    assert!(
        pipeline.len() >= 2,
        "the shell pipeline was traced: {pipeline:?}"
    );
    assert_eq!(run.dump["shell_pipeline_bytes"], 3893);
    for e in captured.of_kind("data").filter(|e| e["source"] == "pipe") {
        assert!(
            !pipeline.contains(&e["pid"].as_u64().unwrap()),
            "non-JSON pipe captured: {e}"
        );
        assert!(!contains(&decode_b64(e), b"\n999\n1000\n"));
    }
    assert_eq!(captured.summary["kernel"]["lost_bytes"], 0);

    if let Ok(dir) = std::env::var("AGENTSCOPE_WRITE_MCP_FIXTURES") {
        write_fixtures(
            Path::new(&dir),
            &run,
            server,
            (server_in, server_out),
            (fd_a, fd_b),
        );
    }
}

/// Streamable HTTP MCP between the same client and the CRM server: the JSON-RPC messages are in
/// the plain-socket capture of both processes and parse into the echo call the client saw.
#[test]
fn streamable_http_mcp_is_captured() {
    let run = run_client(&[]);
    let captured = &run.captured;
    let port = run.crm_port as u64;
    let client_fds: BTreeSet<i64> = captured
        .of_kind("connect")
        .filter(|e| e["pid"] == run.client_pid && e["port"] == port)
        .map(|e| e["fd"].as_i64().unwrap())
        .collect();
    assert!(
        !client_fds.is_empty(),
        "the client connected to the MCP server"
    );

    let mut session = McpSession::new(McpTransport::Http);
    let mut records = Vec::new();
    let mut server_side = Vec::new();
    for ((pid, source, direction, fd), bytes) in captured.streams() {
        if source != "socket" {
            continue;
        }
        if pid == run.client_pid as u64 && client_fds.contains(&(fd as i64)) {
            let sender = if direction == "egress" {
                Sender::Client
            } else {
                Sender::Server
            };
            // Requests first: each response then finds its request.
            for message in json_in_http(&bytes) {
                if sender == Sender::Client {
                    records.extend(session.feed_message(sender, &message, 0));
                } else {
                    server_side.push(message);
                }
            }
        }
    }
    for message in &server_side {
        records.extend(session.feed_message(Sender::Server, message, 1));
    }
    let echo: Vec<&McpExchange> = records
        .iter()
        .filter(|r| r.kind == ExchangeKind::Call && r.tool_name.as_deref() == Some("echo"))
        .collect();
    assert_eq!(echo.len(), 1, "{records:#?}");
    let McpDetail::ToolsCall(call) = &echo[0].detail else {
        panic!("tools/call detail")
    };
    assert_eq!(
        call.arguments.as_ref().unwrap()["text"],
        "hello over streamable http"
    );
    assert_eq!(
        call.result_text.as_deref(),
        run.dump["http_echo"]["content"][0]["text"].as_str()
    );
    assert_eq!(call.is_error, Some(false));
    let init = calls(&records, "initialize");
    let McpDetail::Initialize(init) = &init[0].detail else {
        panic!("initialize detail")
    };
    assert_eq!(
        init.server.as_ref().unwrap().name.as_deref(),
        run.dump["http_initialize"]["serverInfo"]["name"].as_str()
    );
    assert_eq!(calls(&records, "tools/list").len(), 1);

    // The server process (also under --pid) read the same requests on its accepted sockets.
    let server_ingress: Vec<u8> = captured
        .streams()
        .into_iter()
        .filter(|((pid, source, direction, _), _)| {
            *pid == run.crm_pid as u64 && source == "socket" && direction == "ingress"
        })
        .flat_map(|(_, bytes)| bytes)
        .collect();
    let server_methods: Vec<String> = json_in_http(&server_ingress)
        .iter()
        .filter_map(|m| m["method"].as_str().map(str::to_string))
        .collect();
    for method in [
        "initialize",
        "notifications/initialized",
        "tools/list",
        "tools/call",
    ] {
        assert!(
            server_methods.iter().any(|m| m == method),
            "server read {method}: {server_methods:?}"
        );
    }
    // HTTP MCP is socket traffic, never pipe traffic.
    assert!(captured
        .of_kind("data")
        .filter(|e| e["source"] == "pipe")
        .all(|e| e["pid"] != run.crm_pid));
}

/// `--no-pipe-data` turns pipe capture off entirely.
#[test]
fn no_pipe_data_disables_pipe_capture() {
    let run = run_client(&["--no-pipe-data"]);
    let server = server_pid(&run.captured);
    assert!(server > 0);
    assert_eq!(
        run.captured
            .of_kind("data")
            .filter(|e| e["source"] == "pipe")
            .count(),
        0
    );
    // The rest of the capture is unaffected.
    assert!(run
        .captured
        .of_kind("open")
        .any(|e| e["pid"] == server && e["path"] == run.read_path.to_str().unwrap()));
}

/// A session whose pipes were made before the collector started: the collector finds them in
/// /proc and captures the rest of the session at both ends.
#[test]
fn pipes_that_predate_the_collector_are_captured() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let read_path = dir.path().join("notes.txt");
    std::fs::write(&read_path, NOTES).unwrap();
    let marker = dir.path().join("initialized");
    let resume = dir.path().join("resume");
    let dump_path = dir.path().join("client-dump.json");
    let child = std::process::Command::new(mcp_python())
        .arg(agents_dir().join("mcp_client_agent.py"))
        .args(["--read-path", read_path.to_str().unwrap()])
        .args(["--dump", dump_path.to_str().unwrap()])
        .args(["--initialized-marker", marker.to_str().unwrap()])
        .args(["--resume-file", resume.to_str().unwrap()])
        .arg("--no-shell-pipeline")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start MCP client");
    let client = Paused {
        child,
        start_file: resume,
    };
    let client_pid = client.pid();
    wait_for_file(&marker, "MCP session initialized");
    let collect = Collect::start(dir.path(), &["--pid", &client_pid.to_string()]);
    client.release();
    let stdout = client.finish();
    let captured = collect.stop();
    let dump: Value = serde_json::from_str(&std::fs::read_to_string(&dump_path).unwrap()).unwrap();

    // The client's stdout (from the test) carried its JSON report.
    assert_eq!(
        captured.pipe_stream(client_pid, "egress", 1),
        stdout.as_bytes()
    );
    // The server was exec'd before the collector: it is the other process with pipe data.
    let mut streams = captured.pipe_streams();
    streams.remove(&(client_pid, "egress".to_string(), 1));
    let pids: BTreeSet<u32> = streams.keys().map(|(pid, _, _)| *pid).collect();
    assert_eq!(pids.len(), 2, "client and server: {:?}", streams.keys());
    let server = *pids.iter().find(|&&pid| pid != client_pid).unwrap();
    let stream = |pid: u32, direction: &str| -> Vec<u8> {
        let found: Vec<&Vec<u8>> = streams
            .iter()
            .filter(|((p, d, _), _)| *p == pid && d == direction)
            .map(|(_, bytes)| bytes)
            .collect();
        assert_eq!(found.len(), 1, "one {direction} pipe stream for {pid}");
        found[0].clone()
    };
    let to_server = stream(server, "ingress");
    let from_client = stream(client_pid, "egress");
    // The server's reader thread was already blocked in read() when the collector attached:
    // that call's entry was not seen, so the message it returned (tools/list) is missing on the
    // server side only. Every later message is there at both ends.
    let first_line = from_client.iter().position(|&b| b == b'\n').unwrap() + 1;
    assert!(
        to_server == from_client || to_server == from_client[first_line..],
        "server read:\n{}\nclient wrote:\n{}",
        String::from_utf8_lossy(&to_server),
        String::from_utf8_lossy(&from_client)
    );
    assert!(stream(client_pid, "ingress") == stream(server, "egress"));
    let methods: Vec<String> = json_lines(&from_client)
        .iter()
        .map(|m| m["method"].as_str().unwrap().to_string())
        .collect();
    // initialize happened before the collector started.
    assert_eq!(
        methods,
        [
            "tools/list",
            "tools/call",
            "tools/call",
            "resources/read",
            "prompts/get"
        ]
    );
    let records = stdio_records(&captured, server);
    let McpDetail::ToolsCall(call) = detail_of(&records, "tools/call") else {
        panic!("tools/call detail")
    };
    assert_eq!(
        call.result_text.as_deref(),
        dump["read_file"]["content"][0]["text"].as_str()
    );
}

fn detail_of<'a>(records: &'a [McpExchange], method: &str) -> &'a McpDetail {
    &calls(records, method)[0].detail
}

/// A Node client (libuv gives the child socketpairs, not pipes, as stdio) speaking JSON-RPC to
/// the Python stdio server: captured at both ends like pipes, and the responses the client
/// printed are the ones in the capture.
#[test]
fn node_client_socketpair_stdio_is_captured() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let read_path = dir.path().join("notes.txt");
    std::fs::write(&read_path, NOTES).unwrap();
    let (python, script, server_script) = (
        mcp_python(),
        agents_dir().join("node_mcp_stdio_client.mjs"),
        agents_dir().join("mcp_files_server.py"),
    );
    let client = Paused::agent(
        dir.path(),
        "node",
        &[
            script.to_str().unwrap(),
            "--server-python",
            &python,
            "--server",
            server_script.to_str().unwrap(),
            "--read-path",
            read_path.to_str().unwrap(),
        ],
        &[],
    );
    let client_pid = client.pid();
    let collect = Collect::start(dir.path(), &["--pid", &client_pid.to_string()]);
    client.release();
    let stdout = client.finish();
    let captured = collect.stop();
    let printed: Vec<Value> = serde_json::from_str(stdout.trim()).unwrap();

    let server = server_pid(&captured);
    let mut streams = captured.pipe_streams();
    // The client's own stdout (made by the test before the collector) carried its report.
    assert_eq!(
        streams
            .remove(&(client_pid, "egress".to_string(), 1))
            .unwrap_or_default(),
        stdout.as_bytes()
    );
    let ends: BTreeSet<(u32, String)> = streams
        .keys()
        .map(|(pid, dir, _)| (*pid, dir.clone()))
        .collect();
    let expected: BTreeSet<(u32, String)> = [
        (client_pid, "egress".to_string()),
        (client_pid, "ingress".to_string()),
        (server, "egress".to_string()),
        (server, "ingress".to_string()),
    ]
    .into();
    assert_eq!(ends, expected, "{:?}", streams.keys());
    let of = |pid: u32, direction: &str| -> Vec<u8> {
        streams
            .iter()
            .find(|((p, d, _), _)| *p == pid && d == direction)
            .map(|(_, bytes)| bytes.clone())
            .unwrap()
    };
    assert!(of(client_pid, "egress") == of(server, "ingress"));
    assert!(of(client_pid, "ingress") == of(server, "egress"));
    let responses = json_lines(&of(server, "egress"));
    assert_eq!(responses, printed, "the client read what the server wrote");

    let records = stdio_records(&captured, server);
    assert!(records.iter().all(|r| !r.partial), "{records:#?}");
    let McpDetail::ToolsCall(call) = detail_of(&records, "tools/call") else {
        panic!("tools/call detail")
    };
    assert_eq!(call.result_text.as_deref(), Some(NOTES));
    let McpDetail::Initialize(init) = detail_of(&records, "initialize") else {
        panic!("initialize detail")
    };
    assert_eq!(
        init.client.as_ref().unwrap().name.as_deref(),
        Some("agentscope-node-client")
    );
}
