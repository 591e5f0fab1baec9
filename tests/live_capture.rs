//! End-to-end tests of the live collector against real agents (Python with the system OpenSSL,
//! Node with its embedded OpenSSL) talking to a local TLS mock LLM. They load eBPF programs and
//! so need root; without it they fail with a message saying so.

use crate::support;

use std::process::Command;

use serde_json::Value;
use support::*;

/// One run of the Python agent, paused until the collector follows its pid.
struct PythonRun {
    pid: u32,
    captured: Captured,
    /// What the agent itself sent and read (`--dump-dir`): the ground truth.
    dump: std::path::PathBuf,
    report: Value,
    llm_port: u16,
    echo_port: u16,
    _dir: tempfile::TempDir,
}

fn run_python_agent(agent_args: &[&str], env: &[(&str, &str)], collect_args: &[&str]) -> PythonRun {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let llm = MockLlm::start(dir.path());
    let echo = EchoService::start(dir.path());
    let dump = dir.path().join("dump");
    let mut args = python_agent_args(&llm, &echo);
    args.extend(["--dump-dir".into(), dump.display().to_string()]);
    args.extend(agent_args.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Paused::agent(dir.path(), "python3", &args, env);
    let pid = agent.pid();
    let pid_arg = pid.to_string();
    let mut collect_all = vec!["--pid", pid_arg.as_str()];
    collect_all.extend_from_slice(collect_args);
    let collect = Collect::start(dir.path(), &collect_all);
    agent.release();
    let report = serde_json::from_str(agent.finish().trim()).unwrap();
    let captured = collect.stop();
    PythonRun {
        pid,
        captured,
        dump,
        report,
        llm_port: llm.port,
        echo_port: echo.port,
        _dir: dir,
    }
}

fn events_of<'a>(captured: &'a Captured, kind: &'a str, pid: u32) -> Vec<&'a Value> {
    captured.of_kind(kind).filter(|e| e["pid"] == pid).collect()
}

/// The Python agent (system libssl, SSL_write_ex/SSL_read_ex), started before the collector:
/// a 512 KiB request and its response are captured byte for byte in both directions, and the
/// tool calls it carries out show up as exec, open and connect with lineage to the agent.
#[test]
fn python_agent_plaintext_and_actions_are_captured() {
    let run = run_python_agent(&["--big-kib", "512"], &[], &["--keep-secrets"]);
    let PythonRun {
        pid,
        ref captured,
        ref dump,
        ref report,
        ..
    } = run;

    // Byte for byte, both directions, including the 512 KiB body split into chunks.
    let egress = captured.tls_stream(pid, "egress");
    let sent = std::fs::read(dump.join("egress.raw")).unwrap();
    assert!(report["request_bytes"][0].as_u64().unwrap() > 512 * 1024);
    assert_eq!(egress.len(), sent.len(), "captured egress length");
    assert!(
        egress == sent,
        "captured egress differs from what the agent sent"
    );
    let ingress = captured.tls_stream(pid, "ingress");
    let received = std::fs::read(dump.join("ingress.raw")).unwrap();
    assert!(
        ingress == received,
        "captured ingress differs from what the agent read ({} vs {} bytes)",
        ingress.len(),
        received.len()
    );
    let chunks = captured
        .of_kind("data")
        .filter(|e| e["pid"] == pid && e["direction"] == "egress")
        .count();
    assert!(
        chunks >= 33,
        "a 512 KiB write arrives as many chunks, got {chunks}"
    );
    assert_eq!(captured.summary["kernel"]["lost_bytes"], 0);

    // The tool calls the model asked for, each linked to the agent.
    let execs = captured
        .of_kind("exec")
        .filter(|e| e["filename"] == "/bin/echo")
        .collect::<Vec<_>>();
    assert_eq!(execs.len(), 1, "one run_command exec");
    assert_eq!(
        execs[0]["argv"],
        serde_json::json!(["/bin/echo", "agentscope-tool-ran"])
    );
    assert_eq!(
        execs[0]["ppid"], pid,
        "the subprocess's parent is the agent"
    );
    assert!(
        events_of(captured, "open", pid)
            .iter()
            .any(|e| e["path"] == "/etc/os-release" && e["ret"].as_i64().unwrap() >= 0),
        "read_file opened /etc/os-release"
    );
    assert!(
        events_of(captured, "connect", pid)
            .iter()
            .any(|e| e["port"] == run.echo_port && e["addr"] == "127.0.0.1"),
        "fetch_url connected to the echo service"
    );
    assert!(
        events_of(captured, "connect", pid)
            .iter()
            .any(|e| e["port"] == run.llm_port),
        "LLM connection seen"
    );
    // The tool's plain TCP exchange with the echo service, both directions, without TLS.
    let connect_fd = |port: u16| {
        events_of(captured, "connect", pid)
            .iter()
            .find(|e| e["port"] == port)
            .expect("connect")["fd"]
            .as_i64()
            .unwrap() as u64
    };
    let streams = captured.streams();
    let socket = |fd: u64, dir: &str| {
        streams
            .get(&(pid as u64, "socket".to_string(), dir.to_string(), fd))
            .cloned()
    };
    assert_eq!(
        socket(connect_fd(run.echo_port), "egress").as_deref(),
        Some(&b"PING agentscope\n"[..]),
        "plain socket write"
    );
    assert_eq!(
        socket(connect_fd(run.echo_port), "ingress").as_deref(),
        Some(&b"PONG PING agentscope\n"[..]),
        "plain socket read"
    );
    // The LLM socket carries TLS: its ciphertext is not reported as plain socket data.
    assert_eq!(
        socket(connect_fd(run.llm_port), "egress"),
        None,
        "TLS ciphertext is not plain data"
    );
    // Started before the collector: its parent (this test) comes from the /proc seed.
    let own_events = captured
        .events
        .iter()
        .filter(|e| e["pid"] == pid)
        .collect::<Vec<_>>();
    assert!(
        own_events.iter().all(|e| e["ppid"] == std::process::id()),
        "agent events carry the seeded parent"
    );
    // The TLS chunks name the socket fd (learned from the syscall nested in SSL_write_ex).
    let fds: Vec<i64> = events_of(captured, "data", pid)
        .iter()
        .filter(|e| e["source"] == "tls")
        .map(|e| e["fd"].as_i64().unwrap())
        .collect();
    assert!(
        fds.iter().all(|fd| *fd >= 0),
        "TLS chunks carry the socket fd: {fds:?}"
    );
    assert_eq!(captured.summary["decode_errors"], 0);
}

/// A streamed (chunked, SSE) response arrives as the agent read it, framing included.
#[test]
fn python_agent_streamed_response_is_captured() {
    let run = run_python_agent(&["--stream"], &[], &["--keep-secrets"]);
    let PythonRun {
        pid,
        ref captured,
        ref dump,
        ..
    } = run;

    let ingress = captured.tls_stream(pid, "ingress");
    let received = std::fs::read(dump.join("ingress.raw")).unwrap();
    assert!(
        ingress == received,
        "streamed ingress differs ({} vs {} bytes)",
        ingress.len(),
        received.len()
    );
    let text = String::from_utf8_lossy(&ingress);
    assert!(
        text.contains("Transfer-Encoding: chunked") && text.contains("text/event-stream"),
        "{text}"
    );
    assert!(text.contains("data: [DONE]"));
    let body = std::fs::read(dump.join("response-1.body")).unwrap();
    assert!(
        contains(&dechunk_all(&ingress), &body),
        "de-chunked capture holds the SSE body the agent parsed"
    );
}

/// Node embeds OpenSSL and uses SSL_write/SSL_read over memory BIOs: plaintext is still
/// captured, keyed by the SSL* pointer, including a 512 KiB body and a streamed response.
/// Node starts after the collector, so this also covers attaching to a newly exec'd binary. The
/// agent makes its first request only once the collector says node is probed: the attach comes
/// a moment after the exec, and what a process sends before it is outside the probes (README,
/// "Blind spots are reported"); in a loaded CI lane node once finished before it.
#[test]
fn node_agent_plaintext_is_captured() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let llm = MockLlm::start(dir.path());
    let echo = EchoService::start(dir.path());
    let dump = dir.path().join("dump");
    let script = agents_dir().join("node_agent.mjs");
    let (port, echo_port) = (llm.port.to_string(), echo.port.to_string());
    let cert = llm.cert.display().to_string();
    let node_binary = which_node();
    let start = dir.path().join("node-agent-start");
    let node = Paused::command(
        dir.path(),
        node_binary.to_str().unwrap(),
        &[
            script.to_str().unwrap(),
            "--wait-before-start-file",
            start.to_str().unwrap(),
            "--port",
            &port,
            "--ca",
            &cert,
            "--stream",
            "--big-kib",
            "512",
            "--service-port",
            &echo_port,
            "--dump-dir",
            dump.to_str().unwrap(),
        ],
        &[("NODE_EXTRA_CA_CERTS", &cert)],
    );
    let pid = node.pid();
    wait_for_earlier_unloads();
    let collect = Collect::start(dir.path(), &["--pid", &pid.to_string(), "--keep-secrets"]);
    node.release();
    collect.wait_probed(&node_binary, std::time::Duration::from_secs(60));
    std::fs::write(&start, "").unwrap();
    node.finish();
    let captured = collect.stop();

    let egress = captured.tls_stream(pid, "egress");
    for n in [1, 2] {
        let body = std::fs::read(dump.join(format!("request-{n}.body"))).unwrap();
        assert!(
            contains(&egress, &body),
            "request {n} body ({} bytes) captured verbatim",
            body.len()
        );
    }
    assert!(egress.starts_with(b"POST /v1/chat/completions HTTP/1.1\r\n"));
    let raw_ingress = captured.tls_stream(pid, "ingress");
    let ingress = dechunk_all(&raw_ingress);
    for n in [1, 2] {
        let body = std::fs::read(dump.join(format!("response-{n}.body"))).unwrap();
        assert!(
            contains(&ingress, &body),
            "response {n} body ({} bytes) captured verbatim",
            body.len()
        );
    }
    let execs: Vec<&Value> = captured
        .of_kind("exec")
        .filter(|e| e["filename"] == "/bin/echo")
        .collect();
    assert_eq!(execs.len(), 1);
    assert_eq!(execs[0]["ppid"], pid);
    assert!(events_of(&captured, "connect", pid)
        .iter()
        .any(|e| e["port"] == echo.port));
    assert_eq!(captured.summary["kernel"]["lost_bytes"], 0);
}

/// Credentials never leave the collector unless asked: the Authorization header is masked
/// (same length, scheme kept) while the rest of the request is intact.
#[test]
fn api_keys_are_redacted_by_default() {
    let key = "sk-agentscope-redaction-check-42";
    let run = run_python_agent(&[], &[("AGENTSCOPE_TEST_API_KEY", key)], &[]);
    let PythonRun {
        pid,
        ref captured,
        ref dump,
        ..
    } = run;

    let egress = captured.tls_stream(pid, "egress");
    let sent = std::fs::read(dump.join("egress.raw")).unwrap();
    assert!(
        contains(&sent, key.as_bytes()),
        "the agent really sent the key"
    );
    assert!(
        !contains(&egress, key.as_bytes()),
        "the key must not appear in the output"
    );
    let masked = format!("Authorization: Bearer {}", "*".repeat(key.len()));
    assert!(
        contains(&egress, masked.as_bytes()),
        "header masked with its scheme kept"
    );
    assert_eq!(egress.len(), sent.len(), "redaction keeps lengths");
}

fn start_dns_responder(dir: &std::path::Path) -> Background {
    let ready = dir.join("dns.ready");
    let resolver = Background(
        Command::new("python3")
            .arg(agents_dir().join("dns_responder.py"))
            .args([
                "--addr",
                "127.0.0.53",
                "--port",
                "53",
                "--ready-file",
                ready.to_str().unwrap(),
            ])
            .spawn()
            .unwrap(),
    );
    wait_for_file(&ready, "DNS responder");
    resolver
}

/// A DNS query sent to a local resolver yields its query name.
#[test]
fn dns_query_names_are_captured() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let _resolver = start_dns_responder(dir.path());
    let script = agents_dir().join("dns_query.py");
    let query = Paused::command(
        dir.path(),
        "/usr/bin/env",
        &[
            "python3",
            script.to_str().unwrap(),
            "--server",
            "127.0.0.53",
            "--port",
            "53",
            "--name",
            "models.agentscope-test.example",
        ],
        &[],
    );
    let pid = query.pid();
    let collect = Collect::start(dir.path(), &["--pid", &pid.to_string()]);
    query.release();
    assert_eq!(query.finish().trim(), "127.0.0.1");
    let captured = collect.stop();
    let dns: Vec<&Value> = captured
        .of_kind("dns")
        .filter(|e| e["pid"] == pid)
        .collect();
    assert_eq!(dns.len(), 1, "one query sent");
    assert_eq!(
        dns[0]["queries"],
        serde_json::json!(["models.agentscope-test.example"])
    );
    assert_eq!(dns[0]["dport"], 53);
}

/// What real agents do: getaddrinfo through glibc, which sends A and AAAA together with
/// sendmmsg on a connected UDP socket. The lookup runs in a private mount namespace whose
/// resolv.conf points at the local responder.
#[test]
fn glibc_resolver_lookups_are_captured() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let _resolver = start_dns_responder(dir.path());
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.53\noptions attempts:1 timeout:2\n",
    )
    .unwrap();
    let script = dir.path().join("lookup.sh");
    std::fs::write(
        &script,
        format!(
            "mount --bind '{}' /etc/resolv.conf && exec '{}' -c 'import socket; print(socket.getaddrinfo(\"api.agentscope-test.example\", 443, type=socket.SOCK_STREAM)[0][4][0])'\n",
            resolv.display(),
            python_interpreter()
        ),
    )
    .unwrap();
    let lookup = Paused::command(
        dir.path(),
        "/usr/bin/unshare",
        &["-m", "/bin/sh", script.to_str().unwrap()],
        &[],
    );
    let pid = lookup.pid();
    let collect = Collect::start(dir.path(), &["--pid", &pid.to_string()]);
    lookup.release();
    assert_eq!(lookup.finish().trim(), "127.0.0.1");
    let captured = collect.stop();
    let names: Vec<&Value> = captured.of_kind("dns").map(|e| &e["queries"]).collect();
    assert_eq!(
        names.len(),
        2,
        "glibc's A and AAAA queries (one sendmmsg) were both captured: {names:?}"
    );
    assert!(
        names
            .iter()
            .all(|q| *q == &serde_json::json!(["api.agentscope-test.example"])),
        "every captured query names the host: {names:?}"
    );
}

/// Without privileges the collector says what is missing and how to fix it.
#[test]
fn missing_privileges_give_an_actionable_error() {
    use std::os::unix::process::CommandExt as _;
    require_root();
    let output = Command::new(BIN)
        .args(["collect", "--duration", "1"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("needs root") && stderr.contains("sudo"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}
