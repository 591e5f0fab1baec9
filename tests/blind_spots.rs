//! End-to-end test of blind spots: a process whose TLS stack agentscope cannot read is
//! reported, never invisible. Needs root (eBPF, a private mount namespace).
//!
//! `tests/agents/mbedtls_client.c`, built here with gcc against Debian's static mbedTLS
//! (`libmbedtls-dev`) and stripped, exports no `SSL_*` symbol and loads no TLS library. It
//! talks TLS to the mock LLM under the name `api.openai.com`, which resolves to 127.0.0.1 only
//! inside its own mount namespace (`unshare -m` and a bind-mounted hosts file), and sends an
//! OpenAI-shaped request. Beside it, the Python agent talks to the same mock through the
//! system libssl. The collector must make the mbedTLS client an agent anyway, its provider
//! (openai) known from the server name, marked "plaintext not visible: TLS stack not
//! recognised" in the graph JSON and in `agentscope coverage -o json` (live, and replayed
//! from the recording), while the Python agent is reported seen via OpenSSL symbols.
//!
//! `AGENTSCOPE_BLINDSPOT_FIXTURE=FILE` keeps the run's events (`collect --json`) in FILE: the
//! console's snapshot fixture `tests/fixtures/capture/blind_spot.jsonl` is made so
//! (`AGENTSCOPE_BLINDSPOT_FIXTURE=$PWD/tests/fixtures/capture/blind_spot.jsonl cargo test -p
//! agentscope --test e2e -- blind_spots::`, as root).

use crate::support;

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::*;

/// Builds the mbedTLS client: static mbedTLS, stripped.
fn build_mbedtls_client(dir: &std::path::Path) -> std::path::PathBuf {
    let binary = dir.join("mbedtls_client");
    let output = Command::new("gcc")
        .args(["-O2", "-s", "-o"])
        .arg(&binary)
        .arg(agents_dir().join("mbedtls_client.c"))
        .args([
            "-Wl,-Bstatic",
            "-lmbedtls",
            "-lmbedx509",
            "-lmbedcrypto",
            "-Wl,-Bdynamic",
        ])
        .output()
        .expect("gcc (make setup installs it, and libmbedtls-dev)");
    assert!(
        output.status.success(),
        "building the mbedTLS client failed (make setup installs libmbedtls-dev): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // What makes it a blind spot: nothing of OpenSSL's API is exported.
    let symbols = Command::new("nm").arg("-D").arg(&binary).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&symbols.stdout).contains("SSL_"),
        "the client exports SSL_* symbols"
    );
    binary
}

/// A running `agentscope coverage` (live), stopped with SIGTERM.
fn start_coverage(dir: &std::path::Path, pids: &[String]) -> std::process::Child {
    let mut command = Command::new(BIN);
    command.args([
        "coverage",
        "--duration",
        "120",
        "-o",
        "json",
        "--no-kubernetes",
        "--ready-message",
    ]);
    for pid in pids {
        command.args(["--pid", pid]);
    }
    let mut child = command
        .stdout(std::fs::File::create(dir.join("coverage-live.json")).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start agentscope coverage");
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("collecting") {
        match stderr.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => panic!("coverage did not start: {}", String::from_utf8_lossy(&seen)),
        }
    }
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        eprint!("coverage: {rest}");
    });
    child
}

fn coverage_row(report: &Value, pid: u32) -> &Value {
    report["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|row| row["pid"] == pid)
        .unwrap_or_else(|| panic!("no coverage row for pid {pid}: {report:#}"))
}

/// What every report (live coverage, replayed coverage) must say about the two processes.
fn assert_coverage(report: &Value, blind_pid: u32, python_pid: u32, what: &str) {
    assert_eq!(report["schema"], "agentscope.coverage/v1", "{what}");
    let blind = coverage_row(report, blind_pid);
    assert!(
        blind["program"]
            .as_str()
            .is_some_and(|p| p.ends_with("mbedtls_client")),
        "{what}: {blind:#}"
    );
    assert_eq!(
        blind["peers"],
        serde_json::json!(["api.openai.com"]),
        "{what}"
    );
    assert_eq!(blind["alpn"], serde_json::json!(["http/1.1"]), "{what}");
    assert_eq!(blind["providers"], serde_json::json!(["openai"]), "{what}");
    assert_eq!(blind["plaintext_seen"], false, "{what}: {blind:#}");
    assert_eq!(blind["plaintext_records"], 0, "{what}");
    assert_eq!(blind["coverage"]["plaintext"], "not_visible", "{what}");
    assert_eq!(blind["coverage"]["why"], "stack_not_recognised", "{what}");
    assert_eq!(
        blind["verdict"], "plaintext not visible: TLS stack not recognised",
        "{what}"
    );
    assert!(
        blind["agent"].is_string(),
        "{what}: not an agent: {blind:#}"
    );

    let python = coverage_row(report, python_pid);
    assert_eq!(python["peers"], serde_json::json!(["localhost"]), "{what}");
    assert_eq!(python["plaintext_seen"], true, "{what}: {python:#}");
    assert!(
        python["plaintext_records"].as_u64().unwrap_or(0) > 0,
        "{what}: {python:#}"
    );
    assert_eq!(python["coverage"]["plaintext"], "seen", "{what}");
    assert_eq!(python["coverage"]["method"], "openssl_symbols", "{what}");
    assert!(
        python["coverage"]["object"]
            .as_str()
            .is_some_and(|o| o.contains("libssl")),
        "{what}: {python:#}"
    );
}

#[test]
fn a_tls_stack_that_cannot_be_read_is_a_reported_blind_spot() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let llm = MockLlm::start(dir.path());
    let echo = EchoService::start(dir.path());
    let client = build_mbedtls_client(dir.path());
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n127.0.0.1 api.openai.com\n").unwrap();

    // The blind client, in a mount namespace of its own where api.openai.com is 127.0.0.1.
    let script = format!(
        "mount --bind '{}' /etc/hosts && exec '{}' api.openai.com {}",
        hosts.display(),
        client.display(),
        llm.port
    );
    let blind = Paused::command(dir.path(), "unshare", &["-m", "sh", "-c", &script], &[]);
    let dump = dir.path().join("dump");
    let mut agent_args = python_agent_args(&llm, &echo);
    agent_args
        .extend(["--host", "localhost", "--dump-dir", dump.to_str().unwrap()].map(String::from));
    let agent_args: Vec<&str> = agent_args.iter().map(String::as_str).collect();
    let python = Paused::agent(dir.path(), "python3", &agent_args, &[]);
    let (blind_pid, python_pid) = (blind.pid(), python.pid());
    let pids = [blind_pid.to_string(), python_pid.to_string()];
    let graph_path = dir.path().join("graph.json");
    let record_path = dir.path().join("run.cap");
    let mut coverage = start_coverage(dir.path(), &pids);
    let collect = Collect::start(
        dir.path(),
        &[
            "--pid",
            &pids[0],
            "--pid",
            &pids[1],
            "--no-kubernetes",
            "--graph-json",
            graph_path.to_str().unwrap(),
            "--record",
            record_path.to_str().unwrap(),
        ],
    );
    blind.release();
    python.release();
    let answer = blind.finish();
    assert!(answer.contains("200"), "the mbedTLS client got: {answer}");
    python.finish();
    let events_path = collect.stdout_path.clone();
    let captured = collect.stop();
    // The console's snapshot fixture is this run's events (see the module doc).
    if let Ok(fixture) = std::env::var("AGENTSCOPE_BLINDSPOT_FIXTURE") {
        std::fs::copy(&events_path, &fixture).expect("write the fixture");
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(coverage.id() as i32, libc::SIGTERM) };
    let status = coverage.wait().unwrap();
    assert!(status.success(), "coverage exited with {status}");

    // The kernel saw the client's ClientHello: its server name and ALPN, with the verdict.
    let hellos: Vec<&Value> = captured
        .of_kind("tls_hello")
        .filter(|e| e["pid"] == blind_pid)
        .collect();
    assert_eq!(hellos.len(), 1, "one connection, one hello: {hellos:#?}");
    assert_eq!(hellos[0]["server_name"], "api.openai.com");
    assert_eq!(hellos[0]["alpn"], serde_json::json!(["http/1.1"]));
    assert_eq!(
        hellos[0]["coverage"]["why"],
        "stack_not_recognised",
        "events of the client: {:#?}",
        captured
            .events
            .iter()
            .filter(|e| e["pid"] == blind_pid && e["kind"] != "open" && e["kind"] != "fork")
            .map(|e| format!("{} {} {}", e["kind"], e["filename"], e["ts_ns"]))
            .collect::<Vec<_>>()
    );
    // And no plaintext: it is a blind spot, its ciphertext is not passed off as data.
    assert_eq!(
        captured
            .of_kind("data")
            .filter(|e| e["pid"] == blind_pid)
            .count(),
        0,
        "data captured from the blind client"
    );
    // The Python agent's plaintext is still captured as before.
    assert!(
        captured
            .of_kind("data")
            .any(|e| e["pid"] == python_pid && e["source"] == "tls"),
        "no TLS plaintext from the Python agent"
    );

    // The graph: the blind client is an agent, provider from the server name, marked.
    let graph: Value =
        serde_json::from_str(&std::fs::read_to_string(&graph_path).unwrap()).unwrap();
    let agents = graph["agents"].as_array().unwrap();
    let blind_agent = agents
        .iter()
        .find(|a| {
            a["pids"]
                .as_array()
                .is_some_and(|p| p.contains(&Value::from(blind_pid)))
        })
        .unwrap_or_else(|| panic!("the blind client is no agent: {:#}", graph["agents"]));
    assert_eq!(
        blind_agent["plaintext_not_visible"],
        "plaintext not visible: TLS stack not recognised"
    );
    assert!(
        blind_agent["aibom"]["providers"].get("openai").is_some(),
        "{blind_agent:#}"
    );
    assert_eq!(blind_agent["llm_calls"], 0);
    let key = blind_agent["key"].as_str().unwrap();
    let edges = graph["graph"]["edges"].as_array().unwrap();
    assert!(
        edges.iter().any(|e| e["from"] == format!("agent:{key}")
            && e["to"] == "api:tls:api.openai.com:".to_string() + &llm.port.to_string()
            && e["kind"] == "calls_api"),
        "no edge to the API host: {edges:#?}"
    );
    let python_agent = agents
        .iter()
        .find(|a| {
            a["pids"]
                .as_array()
                .is_some_and(|p| p.contains(&Value::from(python_pid)))
        })
        .expect("the Python agent");
    assert!(python_agent.get("plaintext_not_visible").is_none());
    assert!(python_agent["llm_calls"].as_u64().unwrap() >= 1);

    // `coverage`, live and replayed from the recording, says the same.
    let live: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("coverage-live.json")).unwrap(),
    )
    .expect("coverage -o json");
    assert_coverage(&live, blind_pid, python_pid, "live coverage");
    let (replayed, text) = replayed_coverage(&record_path);
    assert_coverage(&replayed, blind_pid, python_pid, "replayed coverage");
    // The graph JSON carries the same table.
    let in_graph = serde_json::json!({
        "schema": "agentscope.coverage/v1",
        "processes": graph["tls_coverage"],
    });
    let blind_row = coverage_row(&in_graph, blind_pid);
    assert_eq!(blind_row["coverage"]["why"], "stack_not_recognised");
    assert_eq!(blind_row["agent"], key);

    // The text form names both.
    assert!(
        text.lines().any(|l| l.contains("api.openai.com")
            && l.contains("NOT SEEN")
            && l.contains("plaintext not visible: TLS stack not recognised")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("localhost") && l.contains("seen via OpenSSL symbols")),
        "{text}"
    );
}
