//! Claude Code's native binary (Bun, BoringSSL linked in, its `SSL_*` symbols stripped) under
//! the real collector, at the two releases `make setup` installs seven months apart. The
//! collector must locate `SSL_write`/`SSL_read` in the binary itself
//! (`crates/kernel/src/tls_targets/boringssl.rs`) and capture the plaintext: the agent with its
//! model, the Bash tool call linked to the exec and the file open it caused, request and
//! response bodies byte for byte (a request of more than 512 KiB included), the API key
//! nowhere in any output, and the agent's output unchanged by the probes.
//!
//! Claude Code runs non-interactively (`claude -p`, the prompt on stdin) against the mock LLM
//! (`tests/agents/mock_llm_server.py`, Anthropic Messages with SSE streaming) over TLS, trusting
//! its certificate through `NODE_EXTRA_CA_CERTS`, with a private HOME and non-essential traffic
//! off, so nothing leaves the machine.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::payloads::assert_bodies_captured;
use support::*;

const MODEL: &str = "claude-sonnet-4-5";
const API_KEY: &str = "sk-ant-api03-agentscopeTestKey0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH";

/// The Claude Code native binary of one installed release (a missing one fails: run setup).
fn claude_binary(version: &str) -> PathBuf {
    let agents = std::env::var_os("AGENTSCOPE_AGENTS_DIR").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/agentscope/agents"),
        PathBuf::from,
    );
    let path = agents.join(format!(
        "claude-code@{version}/node_modules/@anthropic-ai/claude-code-linux-x64/claude"
    ));
    assert!(
        path.is_file(),
        "{} is missing: run `make setup` (it installs Claude Code {version})",
        path.display()
    );
    path
}

/// A prompt of about 580 KiB, so Claude Code's first request body is larger than 512 KiB.
fn big_prompt(path: &Path) {
    let words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
    let mut text = String::from("Read the plan file with the Bash tool. Notes follow.\n");
    let mut state: u32 = 12345;
    while text.len() < 580 * 1024 {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        text.push_str(words[(state >> 16) as usize % words.len()]);
        text.push(' ');
    }
    std::fs::write(path, text).unwrap();
}

struct ClaudeRun {
    pid: u32,
    stdout: String,
    dump: PathBuf,
    secret_path: PathBuf,
}

/// Claude Code held by its shell twice: at the start FIFO (so the collector can follow its pid
/// from the start), then, after a warm-up `claude --version` (a child of the shell, output
/// discarded), at the measured FIFO before the measured run is exec'd in the shell's pid.
/// The collector locates BoringSSL in a binary when it reads the binary's first exec and
/// attaches the probes after: by design a binary's first process runs unprobed meanwhile, and
/// a collector short of CPU reads the exec late, after Claude Code's first ClientHello. The
/// measured run is the steady state of a node that has seen the binary before: it is released
/// only once the collector says the binary is probed ([`Collect::wait_probed`]).
struct PausedClaude {
    paused: Paused,
    /// Before the measured run is exec'd.
    measured: PathBuf,
}

fn paused_claude(dir: &Path, binary: &Path, llm: &MockLlm) -> PausedClaude {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    // Claude Code keeps its working files (`claude-UID/<cwd>`, the `cc-socks` socket directory)
    // under the system temporary directory: here the test's own, removed with it.
    let tmp = dir.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let prompt = dir.join("prompt.txt");
    big_prompt(&prompt);
    let start = fifo(&dir.join("start"));
    let measured = fifo(&dir.join("measured"));
    let script = format!(
        ": < '{start}'; '{bin}' --version > /dev/null 2>&1; : < '{measured}'; \
         exec '{bin}' -p --allowedTools Bash --model {MODEL} < '{prompt}'",
        start = start.display(),
        measured = measured.display(),
        bin = binary.display(),
        prompt = prompt.display(),
    );
    let child = Command::new("/bin/sh")
        .args(["-c", &script])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &home)
        .env("TMPDIR", &tmp)
        .env(
            "ANTHROPIC_BASE_URL",
            format!("https://127.0.0.1:{}", llm.port),
        )
        .env("ANTHROPIC_API_KEY", API_KEY)
        .env("NODE_EXTRA_CA_CERTS", &llm.cert)
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start claude");
    PausedClaude {
        paused: Paused {
            child,
            start_file: start,
        },
        measured,
    }
}

/// How long the warm-up may take to reach the measured FIFO, and the collector to say it
/// probed the binary, on a loaded machine.
const WARM_UP_LIMIT: Duration = Duration::from_secs(120);

fn finish(claude: Paused) -> String {
    let output = claude.output();
    assert!(
        output.status.success(),
        "claude failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The mock's script: Claude Code's own Bash tool reads the secret plan, then the answer.
fn start_mock(dir: &Path, secret_path: &Path) -> (MockLlm, PathBuf) {
    let scenario = dir.join("scenario.json");
    let command = format!("cat {}", secret_path.display());
    std::fs::write(
        &scenario,
        serde_json::json!({"turns": [
            {"tool_calls": [{"name": "Bash",
                             "arguments": {"command": command, "description": "Read the plan"}}]},
            {"final_text": "The plan is read: {{result:Bash}}"}
        ]})
        .to_string(),
    )
    .unwrap();
    let dump = dir.join("dump");
    std::fs::create_dir_all(&dump).unwrap();
    let llm = MockLlm::start_with(
        dir,
        &[
            "--scenario",
            scenario.to_str().unwrap(),
            "--dump-dir",
            dump.to_str().unwrap(),
        ],
    );
    (llm, dump)
}

fn write_secret(dir: &Path) -> PathBuf {
    let secret_path = dir.join("secret-plan.txt");
    std::fs::write(&secret_path, "launch codename BLUE HERON on the 14th\n").unwrap();
    secret_path
}

/// Claude Code alone: no collector.
fn run_without_collector(version: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let secret_path = write_secret(dir.path());
    let (llm, _dump) = start_mock(dir.path(), &secret_path);
    let claude = paused_claude(dir.path(), &claude_binary(version), &llm);
    claude.paused.release();
    release_fifo(&claude.measured, WARM_UP_LIMIT);
    finish(claude.paused)
}

/// Claude Code under `agentscope collect --pid`, with the graph written.
fn run_with_collector(version: &str, dir: &Path) -> (ClaudeRun, Captured, Value, String) {
    let secret_path = write_secret(dir);
    let (llm, dump) = start_mock(dir, &secret_path);
    let binary = claude_binary(version);
    let claude = paused_claude(dir, &binary, &llm);
    let pid = claude.paused.pid();
    let graph_path = dir.join("graph.json");
    let collect = Collect::start(
        dir,
        &[
            "--pid",
            &pid.to_string(),
            "--no-kubernetes",
            "--graph-json",
            graph_path.to_str().unwrap(),
        ],
    );
    claude.paused.release();
    collect.wait_probed(&binary, WARM_UP_LIMIT);
    release_fifo(&claude.measured, WARM_UP_LIMIT);
    let stdout = finish(claude.paused);
    // A collector short of CPU runs behind: what it has not read at a stop would be cut.
    collect.wait_exit_printed(pid, WARM_UP_LIMIT);
    let stdout_path = collect.stdout_path.clone();
    let captured = collect.stop();
    let graph: Value =
        serde_json::from_str(&std::fs::read_to_string(&graph_path).unwrap()).unwrap();
    let raw_output = std::fs::read_to_string(stdout_path).unwrap()
        + &std::fs::read_to_string(&graph_path).unwrap();
    (
        ClaudeRun {
            pid,
            stdout,
            dump,
            secret_path,
        },
        captured,
        graph,
        raw_output,
    )
}

fn check_release(version: &str) {
    require_root();
    let alone = run_without_collector(version);
    let dir = tempfile::tempdir().unwrap();
    let (run, captured, graph, raw_output) = run_with_collector(version, dir.path());

    // The agent's output does not change under the probes.
    assert!(
        alone.contains("BLUE HERON"),
        "Claude Code {version} did not run the tool: {alone}"
    );
    assert_eq!(
        run.stdout, alone,
        "Claude Code {version}: output changed under the collector"
    );
    assert_eq!(
        captured.summary["kernel"]["tls_rejected"], 0,
        "{:#}",
        captured.summary
    );
    assert_eq!(captured.summary["kernel"]["dropped"], 0);
    // The summary says how: BoringSSL located in the claude binary, with the evidence.
    let libraries = captured.summary["tls_libraries"].as_array().unwrap();
    let located = libraries
        .iter()
        .find(|l| {
            l["path"]
                .as_str()
                .unwrap()
                .ends_with("claude-code-linux-x64/claude")
        })
        .unwrap_or_else(|| panic!("claude binary not in {libraries:#?}"));
    assert_eq!(located["method"], "boringssl (located)", "{located:#}");
    assert!(
        located["anchors"].as_array().unwrap().len() >= 4,
        "{located:#}"
    );

    // Payloads byte for byte in both directions, the > 512 KiB request included.
    let egress_streams = captured.tls_streams(u64::from(run.pid), "egress");
    // Responses without chunked framing, connection by connection (a `HEAD` answered with a
    // body length and no body must not swallow the next connection's bytes).
    let ingress_streams: Vec<Vec<u8>> = captured
        .tls_streams(u64::from(run.pid), "ingress")
        .iter()
        .map(|s| dechunk_all(s))
        .collect();
    let egress: Vec<u8> = egress_streams.concat();
    let first = std::fs::read(run.dump.join("request-1.body")).unwrap();
    assert!(first.len() > 512 * 1024, "{}", first.len());
    // Only the session id Claude Code puts in its metadata is masked (a UUID, 36 bytes).
    assert_bodies_captured(
        &format!("Claude Code {version}"),
        &run.dump,
        [1, 2],
        &egress_streams,
        &ingress_streams,
        64,
    );
    // 2.1.113 first opens a connection with `HEAD /`; the Messages calls follow on another.
    assert!(
        egress_streams
            .iter()
            .any(|s| s.starts_with(b"POST /v1/messages")),
        "no connection starts with a Messages call"
    );

    // The API key appears nowhere: not in the events, the payloads, or the graph.
    assert!(!raw_output.contains(API_KEY), "API key leaked");
    assert!(
        !contains(&egress, API_KEY.as_bytes()),
        "API key in captured payload"
    );
    assert!(!contains(&egress, &API_KEY.as_bytes()[..40]));

    // The agent, with its model.
    let agents = graph["agents"].as_array().unwrap();
    let agent = agents
        .iter()
        .find(|a| {
            a["pids"]
                .as_array()
                .is_some_and(|p| p.contains(&serde_json::json!(run.pid)))
        })
        .unwrap_or_else(|| {
            panic!(
                "Claude Code {version} is not an agent: {:#}",
                graph["agents"]
            )
        });
    // Every Messages call the mock answered is one LLM call of the agent (2.1.332 makes two;
    // 2.1.113 makes more, side calls of its own).
    let requests = (1..)
        .take_while(|n| run.dump.join(format!("request-{n}.body")).exists())
        .count();
    assert!(requests >= 2);
    assert_eq!(agent["llm_calls"], requests as u64, "{agent:#}");
    let models: Vec<&Value> = agent["aibom"]["providers"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|m| m.as_array().unwrap())
        .collect();
    assert!(models.contains(&&serde_json::json!(MODEL)), "{agent:#}");

    // The Bash tool call, with its id and arguments, linked to the exec and the file open.
    let calls = graph["tool_calls"].as_array().unwrap();
    let bash = calls
        .iter()
        .find(|c| c["gen_ai.tool.name"] == "Bash")
        .unwrap_or_else(|| panic!("no Bash tool call: {calls:#?}"));
    assert_eq!(bash["gen_ai.tool.call.id"], "toolu_mock_1");
    assert_eq!(
        bash["gen_ai.tool.call.arguments"]["command"],
        format!("cat {}", run.secret_path.display())
    );
    let links = bash["links"].as_array().unwrap();
    // Claude Code's Bash tool runs a few shells (an environment snapshot first); one of the
    // linked execs runs the command itself.
    assert!(
        links.iter().any(|l| l["kind"] == "exec"
            && l["summary"]
                .as_str()
                .is_some_and(|s| s.contains("cat") && s.contains("secret-plan.txt"))),
        "no exec link running the command: {links:#?}"
    );
    let file_node = format!("data:file:{}", run.secret_path.display());
    assert!(
        links
            .iter()
            .any(|l| l["kind"] == "file" && l["target"] == file_node.as_str()),
        "no file link to {file_node}: {links:#?}"
    );
}

#[test]
fn claude_code_2_1_113_is_seen_through_located_boringssl() {
    check_release("2.1.113");
}

#[test]
fn claude_code_2_1_332_is_seen_through_located_boringssl() {
    check_release("2.1.332");
}
