//! OTLP export end to end, into a real OTLP receiver (tests/agents/otlp_receiver.py: the
//! official `opentelemetry-proto` definitions, OTLP/HTTP protobuf and OTLP/gRPC), which
//! decodes every export request and writes its spans and log records as JSON lines.
//!
//! - A recording (`replay recordings/injected.cap`, no privileges): GenAI span names and
//!   attributes, parent links (tool call inside the model turn that asked for it, MCP call
//!   inside the tool call), the run's resource, finding and incident log records in the run's
//!   trace, no content by default; the same spans over gRPC as over HTTP.
//! - A refused endpoint: the replay still ends well, every span and record counted as dropped.
//! - `https://` endpoints (the receiver serving TLS with a leaf of a test CA): spans and records
//!   arrive over HTTP with `--otlp-ca` and over gRPC with mutual TLS from the SDKs' variables;
//!   without the CA the server is not trusted, and every span and record is dropped, counted,
//!   with the reason on stderr.
//! - Live (root): the Python agent's model turn and tool calls exported while it runs, content
//!   only when asked and then redacted. A black-holed endpoint, which must cost spans and never
//!   capture or the one-second stop, is tests/otlp_stop.rs: it times a stop, so it runs alone;
//!   this file shares the node (the Makefile's `E2E_SHARED`).

use crate::support;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::certificates::{make_ca_and_leaf, make_client_cert};
use support::*;

/// The receiver, killed when dropped.
struct Receiver {
    child: Child,
    out: PathBuf,
    http_port: u16,
    grpc_port: u16,
}

impl Receiver {
    fn start(dir: &Path, name: &str) -> Receiver {
        Receiver::start_with(dir, name, &[])
    }

    /// With more of the receiver's options (TLS).
    fn start_with(dir: &Path, name: &str, args: &[&str]) -> Receiver {
        let out = dir.join(format!("{name}.jsonl"));
        let mut child = Command::new(mcp_python())
            .arg(agents_dir().join("otlp_receiver.py"))
            .args(["--out", out.to_str().unwrap()])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the OTLP receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = |key: &str| -> u16 {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix(key))
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("receiver did not start: {line:?}"))
        };
        Receiver {
            http_port: port("http="),
            grpc_port: port("grpc="),
            child,
            out,
        }
    }

    /// What it received so far.
    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("receiver JSON line"))
            .collect()
    }

    /// Waits until `done` holds for what was received (at most 15 s).
    fn wait_for(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let received = self.received();
            if done(&received) {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; received: {received:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn recording() -> String {
    format!("{}/recordings/injected.cap", env!("AGENTSCOPE_REPO"))
}

fn replay(args: &[&str]) -> (bool, String) {
    replay_with(args, &[])
}

fn replay_with(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(BIN)
        .args(["replay", &recording()])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn spans(received: &[Value]) -> Vec<&Value> {
    received.iter().filter(|r| r["signal"] == "span").collect()
}

fn logs(received: &[Value]) -> Vec<&Value> {
    received.iter().filter(|r| r["signal"] == "log").collect()
}

/// The span each span's parent id names.
fn by_id<'a>(spans: &[&'a Value]) -> BTreeMap<String, &'a Value> {
    spans
        .iter()
        .map(|s| (s["span_id"].as_str().unwrap().to_string(), *s))
        .collect()
}

#[test]
fn a_replayed_recording_exports_genai_spans_and_findings() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), "http");
    let endpoint = format!("http://127.0.0.1:{}", receiver.http_port);
    let (ok, stderr) = replay(&["--otlp-endpoint", &endpoint]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("21 spans and 15 log records exported, 0 spans and 0 log records dropped"),
        "{stderr}"
    );
    let received = receiver.wait_for("21 spans and 15 records", |r| r.len() >= 36);
    let spans = spans(&received);
    let ids = by_id(&spans);

    // One run of one agent: one trace, rooted in its invoke_agent span.
    let roots: Vec<_> = spans.iter().filter(|s| s["parent_span_id"] == "").collect();
    assert_eq!(roots.len(), 1, "{roots:#?}");
    let root = roots[0];
    assert_eq!(root["name"], "invoke_agent incident_agent.py");
    assert_eq!(root["attributes"]["gen_ai.operation.name"], "invoke_agent");
    assert!(spans.iter().all(|s| s["trace_id"] == root["trace_id"]));
    // The run's resource: node, Kubernetes identity, process.
    let resource = &root["resource"];
    assert_eq!(resource["k8s.namespace.name"], "support");
    assert_eq!(resource["k8s.pod.name"], "support-agent-6c9d7f5b8d-q7k2m");
    assert_eq!(resource["k8s.deployment.name"], "support-agent");
    assert_eq!(resource["k8s.container.name"], "agent");
    assert_eq!(resource["k8s.pod.service_account.name"], "support-agent");
    assert!(resource["container.id"].as_str().unwrap().len() == 64);
    assert!(resource["k8s.node.name"]
        .as_str()
        .is_some_and(|n| !n.is_empty()));
    assert!(resource["process.pid"].as_i64().is_some_and(|p| p > 0));
    assert_eq!(resource["service.name"], "incident_agent.py");
    assert!(spans.iter().all(|s| s["resource"] == *resource));

    // Six model turns: `chat gpt-4o-mini`, children of the run, with the GenAI attributes.
    let chats: Vec<_> = spans
        .iter()
        .filter(|s| s["name"] == "chat gpt-4o-mini")
        .collect();
    assert_eq!(chats.len(), 6, "{spans:#?}");
    for chat in &chats {
        let a = &chat["attributes"];
        assert_eq!(chat["kind"], "SPAN_KIND_CLIENT");
        assert_eq!(chat["parent_span_id"], root["span_id"]);
        assert_eq!(a["gen_ai.operation.name"], "chat");
        // The mock LLM is an OpenAI-compatible server on 127.0.0.1: the provider rule names
        // such a server by its host.
        assert_eq!(a["gen_ai.provider.name"], "127.0.0.1");
        assert_eq!(a["gen_ai.system"], a["gen_ai.provider.name"]);
        assert_eq!(a["gen_ai.request.model"], "gpt-4o-mini");
        assert!(a["gen_ai.response.model"].is_string(), "{a}");
        assert!(a["gen_ai.usage.input_tokens"].as_i64().is_some(), "{a}");
        assert!(a["gen_ai.usage.output_tokens"].as_i64().is_some(), "{a}");
        assert!(a["gen_ai.response.finish_reasons"].is_array(), "{a}");
        assert!(
            a["server.address"].is_string() && a["server.port"].is_i64(),
            "{a}"
        );
        assert_eq!(a["agentscope.observed"], true);
        assert!(chat["end_ns"].as_u64() >= chat["start_ns"].as_u64());
        // Content is opt-in.
        for key in [
            "gen_ai.input.messages",
            "gen_ai.output.messages",
            "gen_ai.system_instructions",
        ] {
            assert!(a.get(key).is_none(), "{key} exported by default: {a}");
        }
    }

    // Five tool calls, each inside the model turn whose response asked for it, after it.
    let tools: Vec<_> = spans
        .iter()
        .filter(|s| s["name"].as_str().unwrap().starts_with("execute_tool "))
        .collect();
    let names: Vec<_> = tools
        .iter()
        .map(|s| s["attributes"]["gen_ai.tool.name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        5,
        "read_file, http_get, read_file, query_database, http_post: {names:?}"
    );
    for tool in &tools {
        let a = &tool["attributes"];
        assert_eq!(a["gen_ai.operation.name"], "execute_tool");
        assert!(a["gen_ai.tool.call.id"].is_string(), "{a}");
        assert!(a.get("gen_ai.tool.call.arguments").is_none(), "{a}");
        let parent = ids[tool["parent_span_id"].as_str().unwrap()];
        assert_eq!(parent["name"], "chat gpt-4o-mini", "{tool:#?}");
        assert!(tool["start_ns"].as_u64() >= parent["end_ns"].as_u64());
        // What the tool call did, as the pipeline linked it.
        assert!(!tool["events"].as_array().unwrap().is_empty(), "{tool:#?}");
    }
    // MCP requests by their conventions' names; a tools/call inside its execute_tool span.
    let mcp_calls: Vec<_> = spans
        .iter()
        .filter(|s| s["attributes"]["mcp.method.name"] == "tools/call")
        .collect();
    assert!(!mcp_calls.is_empty(), "{spans:#?}");
    for call in mcp_calls {
        let tool = call["attributes"]["gen_ai.tool.name"].as_str().unwrap();
        assert_eq!(call["name"], format!("tools/call {tool}"));
        // The files server is the agent's child on stdio, the CRM server is reached over HTTP.
        let transport = &call["attributes"]["network.transport"];
        assert!(transport == "pipe" || transport == "tcp", "{call:#?}");
        assert!(call["attributes"]["jsonrpc.request.id"].is_string());
        let parent = ids[call["parent_span_id"].as_str().unwrap()];
        assert_eq!(parent["name"], format!("execute_tool {tool}"), "{call:#?}");
    }
    assert!(spans.iter().any(|s| s["name"] == "initialize"));
    assert!(spans.iter().any(|s| s["name"] == "tools/list"));

    // Findings and incidents: log records in the run's trace, with security attributes.
    let logs = logs(&received);
    let findings: Vec<_> = logs
        .iter()
        .filter(|l| l["event_name"] == "agentscope.finding")
        .collect();
    let injection = findings
        .iter()
        .find(|l| l["attributes"]["agentscope.finding.kind"] == "prompt injection")
        .expect("the prompt-injection finding");
    assert_eq!(
        injection["attributes"]["gen_ai.guardrail.security.risk.category"],
        "prompt_injection"
    );
    assert!(injection["attributes"]["gen_ai.guardrail.security.risk.score"].as_f64() > Some(0.5));
    assert!(injection["attributes"]["agentscope.finding.labels"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l == "LLM01:2025"));
    assert!(findings
        .iter()
        .any(|l| l["attributes"]["gen_ai.guardrail.security.risk.category"] == "tool_misuse"));
    assert!(findings.iter().all(|l| l["trace_id"] == root["trace_id"]));
    assert!(findings
        .iter()
        .all(|l| l["severity_number"].as_i64() >= Some(9)));
    let incident = logs
        .iter()
        .find(|l| l["event_name"] == "agentscope.incident")
        .expect("the incident");
    assert!(incident["body"]
        .as_str()
        .unwrap()
        .contains("prompt injection"));
    assert_eq!(incident["attributes"]["agentscope.incident.id"], "inc-1");

    // The same spans, ids and links over gRPC: a replay exports what it exports, whatever
    // the transport.
    let grpc = Receiver::start(dir.path(), "grpc");
    let endpoint = format!("http://127.0.0.1:{}", grpc.grpc_port);
    let (ok, stderr) = replay(&["--otlp-endpoint", &endpoint, "--otlp-protocol", "grpc"]);
    assert!(ok && stderr.contains("over OTLP grpc"), "{stderr}");
    let over_grpc = grpc.wait_for("the gRPC export", |r| r.len() >= 36);
    let shape = |received: &[Value]| {
        let mut shape: Vec<_> = received
            .iter()
            .map(|r| {
                (
                    r["signal"].to_string(),
                    r["name"].to_string(),
                    r["span_id"].to_string(),
                    r["parent_span_id"].to_string(),
                    r["attributes"].to_string(),
                )
            })
            .collect();
        shape.sort();
        shape
    };
    assert!(over_grpc.iter().all(|r| r["transport"] == "grpc"));
    assert_eq!(shape(&over_grpc), shape(&received));
}

#[test]
fn a_refused_endpoint_costs_the_spans_counted_not_the_replay() {
    // A port nobody listens on: connections are refused, the exporter retries with backoff,
    // then the batch is dropped and counted.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Given the way a DaemonSet gives it: the OpenTelemetry SDKs' variable.
    let endpoint = format!("http://127.0.0.1:{port}");
    let (ok, stderr) = replay_with(&[], &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!("exporting to {endpoint} over OTLP http/protobuf")),
        "{stderr}"
    );
    assert!(
        stderr.contains("0 spans and 0 log records exported, 21 spans and 15 log records dropped"),
        "{stderr}"
    );
    assert!(
        stderr.contains("OTLP export failed"),
        "the user is told why: {stderr}"
    );
}

#[test]
fn https_endpoints_verify_the_collector_and_an_untrusted_one_costs_counted_spans() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("cert");
    let ca = make_ca_and_leaf(&certs);
    let (client_cert, client_key) = make_client_cert(&certs);
    let path = |p: &Path| p.display().to_string();
    let (ca, client_cert, client_key) = (path(&ca), path(&client_cert), path(&client_key));
    let (leaf, leaf_key) = (path(&certs.join("cert.pem")), path(&certs.join("key.pem")));
    let everything = "21 spans and 15 log records exported, 0 spans and 0 log records dropped";

    // OTLP/HTTP over TLS, the private CA given by option.
    let https = Receiver::start_with(
        dir.path(),
        "https",
        &["--tls-cert", &leaf, "--tls-key", &leaf_key],
    );
    let endpoint = format!("https://127.0.0.1:{}", https.http_port);
    // Without the CA the collector's certificate is not trusted (the system's roots do not
    // know the test CA). Started first and waited for last: its retries take seconds that
    // the other cases need not wait for.
    let untrusting = Command::new(BIN)
        .args(["replay", &recording(), "--otlp-endpoint", &endpoint])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ok, stderr) = replay(&["--otlp-endpoint", &endpoint, "--otlp-ca", &ca]);
    assert!(ok && stderr.contains(everything), "{stderr}");
    let received = https.wait_for("the export over https", |r| r.len() >= 36);
    assert!(received.iter().all(|r| r["transport"] == "http"));
    assert!(spans(&received)
        .iter()
        .any(|s| s["name"] == "invoke_agent incident_agent.py"));

    // OTLP/gRPC over mutual TLS: a receiver that asks for a client certificate, the CA and
    // the client's certificate given as a DaemonSet gives them, in the SDKs' variables.
    let grpcs = Receiver::start_with(
        dir.path(),
        "grpcs",
        &[
            "--tls-cert",
            &leaf,
            "--tls-key",
            &leaf_key,
            "--tls-client-ca",
            &ca,
        ],
    );
    let endpoint = format!("https://127.0.0.1:{}", grpcs.grpc_port);
    let (ok, stderr) = replay_with(
        &["--otlp-endpoint", &endpoint, "--otlp-protocol", "grpc"],
        &[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &client_cert),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &client_key),
        ],
    );
    assert!(ok && stderr.contains(everything), "{stderr}");
    let over_grpc = grpcs.wait_for("the export over gRPC with TLS", |r| r.len() >= 36);
    assert!(over_grpc.iter().all(|r| r["transport"] == "grpc"));

    // The untrusting replay: nothing sent, everything counted, and the user is told why.
    let output = untrusting.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the replay itself goes on: {stderr}"
    );
    assert!(
        stderr.contains("0 spans and 0 log records exported, 21 spans and 15 log records dropped"),
        "{stderr}"
    );
    assert!(
        stderr.contains("OTLP export failed") && stderr.contains("UnknownIssuer"),
        "the user is told why: {stderr}"
    );
    assert_eq!(
        https.received().len(),
        received.len(),
        "only the trusting replay's"
    );
}

/// The Python agent against the mock LLM, under `collect --otlp-endpoint ENDPOINT`: returns
/// the agent's pid, what was captured, and how long the stop took.
#[test]
fn a_live_agent_is_exported_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path(), "live");
    let endpoint = format!("http://127.0.0.1:{}", receiver.http_port);
    let marker = "otlp-visible-marker Authorization: Bearer sk-otlp-test-4f9a2c71e6";
    let recording = dir.path().join("live.cap");
    let (pid, captured, _) = otlp_live_run::live_run(
        dir.path(),
        &endpoint,
        &["--otlp-content", "--record", recording.to_str().unwrap()],
        marker,
    );
    let received = receiver.received();
    let spans = spans(&received);
    let mine: Vec<&Value> = spans
        .iter()
        .copied()
        .filter(|s| s["resource"]["process.pid"].as_u64() == Some(u64::from(pid)))
        .collect();
    let chat = mine
        .iter()
        .find(|s| s["name"] == "chat gpt-4o-mini")
        .unwrap_or_else(|| panic!("the agent's model turn among {spans:#?}"));
    assert_eq!(chat["attributes"]["gen_ai.provider.name"], "127.0.0.1");
    assert!(chat["resource"]["k8s.node.name"].is_string());
    // Content was asked for: the prompt is there, its secret is not.
    let input = chat["attributes"]["gen_ai.input.messages"]
        .as_str()
        .unwrap();
    assert!(input.contains("otlp-visible-marker"), "{input}");
    let everything = std::fs::read_to_string(&receiver.out).unwrap();
    assert!(
        !everything.contains("sk-otlp-test-4f9a2c71e6"),
        "a secret left the node"
    );
    let tool = mine
        .iter()
        .find(|s| s["name"].as_str().unwrap().starts_with("execute_tool "))
        .expect("a tool call span");
    assert_eq!(
        by_id(&mine)[tool["parent_span_id"].as_str().unwrap()]["name"],
        "chat gpt-4o-mini"
    );
    assert!(tool["attributes"]["gen_ai.tool.call.arguments"].is_string());
    let root = mine
        .iter()
        .find(|s| s["attributes"]["gen_ai.operation.name"] == "invoke_agent")
        .expect("the run's span");
    assert_eq!(root["parent_span_id"], "");
    assert_eq!(chat["parent_span_id"], root["span_id"]);
    assert_eq!(chat["trace_id"], root["trace_id"]);

    // The recording of this run, replayed, exports the same spans with the same ids: a
    // recording is one more source.
    let replayed = Receiver::start(dir.path(), "replayed");
    let output = Command::new(BIN)
        .args(["replay", recording.to_str().unwrap(), "--otlp-content"])
        .args([
            "--otlp-endpoint",
            &format!("http://127.0.0.1:{}", replayed.http_port),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let again = replayed.received();
    let shape = |spans: &[&Value]| {
        let mut shape: Vec<_> = spans
            .iter()
            .map(|s| {
                (
                    s["name"].to_string(),
                    s["trace_id"].to_string(),
                    s["span_id"].to_string(),
                    s["parent_span_id"].to_string(),
                    s["attributes"].to_string(),
                )
            })
            .collect();
        shape.sort();
        shape
    };
    let again: Vec<&Value> = again
        .iter()
        .filter(|s| {
            s["signal"] == "span" && s["resource"]["process.pid"].as_u64() == Some(u64::from(pid))
        })
        .collect();
    assert_eq!(shape(&again), shape(&mine));
    let otlp = &captured.summary["otlp"];
    assert_eq!(otlp["spans_dropped"], 0, "{otlp}");
    assert!(
        otlp["spans_exported"].as_u64() >= Some(mine.len() as u64),
        "{otlp}"
    );
}
