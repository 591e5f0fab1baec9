//! End-to-end test of WebSocket reconstruction: a Python agent on the `websockets` library
//! (its sync client over Python's ssl module, so system OpenSSL and the exported-SSL uprobes
//! see the plaintext) talks the OpenAI Responses API over `wss://` to a server on the same
//! library (tests/agents/websocket_*.py), permessage-deflate negotiated (the library's
//! default). The server's first response asks for a `shell` tool call (`cat` of a file); the
//! agent runs it as a subprocess and sends its output back as a function_call_output in a
//! follow-up `response.create`. The graph shows the model, both LLM calls, and the tool call
//! with its name, arguments and id, linked to the exec and the file open it caused; the key
//! the upgrade request carried in its Authorization header is in no output. Needs root (eBPF)
//! and `make setup` (the test venv with `websockets`).

use crate::support;

use std::process::Command;

use serde_json::Value;
use support::certificates::make_ca_and_leaf;
use support::*;

const API_KEY: &str = "sk-agentscope-ws-secret-7c2f9a41d0";
const MODEL: &str = "gpt-5-codex";

#[test]
fn responses_over_websocket_show_the_llm_calls_and_the_tool_call_linked_to_exec_and_file() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let python = mcp_python();
    let cert_dir = dir.path().join("cert");
    let ca = make_ca_and_leaf(&cert_dir);
    let port_file = dir.path().join("ws.port");
    let _server = Background(
        Command::new(&python)
            .arg(agents_dir().join("websocket_llm_server.py"))
            .args(["--cert-dir", cert_dir.to_str().unwrap()])
            .args(["--port-file", port_file.to_str().unwrap()])
            .stderr(std::fs::File::create(dir.path().join("ws-server.log")).unwrap())
            .spawn()
            .expect("start the WebSocket server"),
    );
    let port = wait_for_file(&port_file, "WebSocket server port");
    let notes = dir.path().join("ws-notes.txt");
    std::fs::write(&notes, "the deploy window is Tuesday\n").unwrap();
    let notes = notes.to_str().unwrap();

    let agent_path = agents_dir().join("websocket_agent.py");
    let agent = Paused::agent(
        dir.path(),
        &python,
        &[
            agent_path.to_str().unwrap(),
            "--port",
            &port,
            "--ca",
            ca.to_str().unwrap(),
            "--read-path",
            notes,
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
        events_path,
    } = follow_agent(dir.path(), agent, &[]);
    assert!(
        report["extensions"]
            .as_str()
            .is_some_and(|e| e.starts_with("permessage-deflate")),
        "compression was negotiated: {output}"
    );
    assert_eq!(captured.summary["kernel"]["lost_bytes"], 0);

    // The upgrade went through TLS, and the frames after it are compressed: the JSON of the
    // follow-up is not in the plaintext as sent.
    let egress = captured.tls_stream(pid, "egress");
    assert!(egress.starts_with(b"GET /v1/responses HTTP/1.1\r\n"));
    assert!(contains(&egress, b"Upgrade: websocket"));
    assert!(!contains(&egress, b"function_call_output"));

    let graph_text = std::fs::read_to_string(&graph_path).unwrap();
    let agent = graph["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["pids"].as_array().unwrap().contains(&Value::from(pid)))
        .unwrap_or_else(|| panic!("no agent for pid {pid}: {:#}", graph["agents"]));
    let models: Vec<&Value> = agent["aibom"]["providers"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|m| m.as_array().unwrap())
        .collect();
    assert!(models.contains(&&Value::from(MODEL)), "{agent:#}");
    assert_eq!(agent["llm_calls"], 2, "{agent:#}");
    assert_eq!(agent["tool_calls"], 1, "{agent:#}");
    // Only the protocol attribute tells the transport: the handshake is no API call.
    let from = format!("agent:{}", agent["key"].as_str().unwrap());
    let edges: Vec<&Value> = graph["graph"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["from"] == from.as_str())
        .collect();
    let model_edges: Vec<&&Value> = edges
        .iter()
        .filter(|e| e["kind"] == "invokes_model")
        .collect();
    assert_eq!(model_edges.len(), 1, "{edges:#?}");
    assert_eq!(
        model_edges[0]["attributes"]["protocol"],
        serde_json::json!(["websocket"])
    );
    assert!(
        !edges.iter().any(|e| e["kind"] == "calls_api"),
        "the upgrade request is the transport's, not an API call: {edges:#?}"
    );

    let calls = graph["tool_calls"].as_array().unwrap();
    let shell = calls
        .iter()
        .find(|c| c["gen_ai.tool.name"] == "shell" && c["pid"] == pid)
        .unwrap_or_else(|| panic!("no shell tool call: {calls:#?}"));
    assert_eq!(shell["gen_ai.tool.call.id"], "call_ws_1");
    assert_eq!(
        shell["gen_ai.tool.call.arguments"]["command"],
        serde_json::json!(["cat", notes])
    );
    let links = shell["links"].as_array().unwrap();
    assert!(
        links.iter().any(|l| l["kind"] == "exec"
            && l["summary"]
                .as_str()
                .is_some_and(|s| s.contains("cat") && s.contains("ws-notes.txt"))),
        "no exec link running the command: {links:#?}"
    );
    let file_node = format!("data:file:{notes}");
    assert!(
        links
            .iter()
            .any(|l| l["kind"] == "file" && l["target"] == file_node.as_str()),
        "no file link to {file_node}: {links:#?}"
    );

    let events_text = std::fs::read_to_string(&events_path).unwrap();
    assert!(!events_text.contains(API_KEY), "API key in the events");
    assert!(!graph_text.contains(API_KEY), "API key in the graph");
}
