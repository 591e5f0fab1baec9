//! Gemini CLI (`@google/gemini-cli`, a Node program: TLS through Node's embedded OpenSSL, whose
//! `SSL_*` symbols `/usr/bin/node` exports) under the real collector, at the release
//! `make setup` installs. The collector must probe OpenSSL by its exported symbols and capture
//! the plaintext: the agent with its model, each `run_shell_command` tool call with its own
//! result, linked to the exec and the file open it caused, request and response bodies byte
//! for byte, the API key nowhere in any output (events, graph, recording, coverage),
//! `agentscope coverage` naming the method, no connection leaving the machine, and the agent's
//! output unchanged by the probes.
//!
//! Gemini CLI runs headless (`gemini -p PROMPT --yolo --skip-trust`: its shell tool runs
//! without asking, in a workspace it has not been told to trust) with a private HOME whose
//! `.gemini/settings.json` selects API-key auth and turns usage statistics, telemetry and
//! update checks off. `GOOGLE_GEMINI_BASE_URL` points it at the mock LLM
//! (`tests/agents/mock_llm_server.py`, Gemini `:streamGenerateContent?alt=sse`) over TLS; the
//! mock presents a leaf signed by a test CA that Gemini CLI trusts through
//! `NODE_EXTRA_CA_CERTS`. The mock's first answer asks for Gemini CLI's own shell tool
//! (`run_shell_command`) to `cat` two plan files at once (two calls without ids, as the Gemini
//! API sends them); its second copies what the last one returned.
//!
//! Gemini CLI relaunches itself once (a child `node` with a larger heap) and the child does the
//! work, so the agent is a child of the process the test starts.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::certificates::make_ca_and_leaf;
use support::payloads::verbatim_but_redacted;
use support::*;

const VERSION: &str = "0.61.0";
const MODEL: &str = "gemini-2.5-flash";
/// Shaped like a Gemini API key (`AIza` and 35 more characters).
const API_KEY: &str = "AIzaSyAgentscopeTestKey0123456789abcdef";
/// What the two plan files hold: the model asks for both at once (two parallel calls of the
/// shell tool, which the Gemini API sends without ids), so each call must get its own result
/// and links.
const SECRET: &str = "launch codename BLUE HERON on the 14th";
const FALLBACK: &str = "fallback codename GREY HERON on the 21st";
const TOOL: &str = "run_shell_command";

/// The installed Gemini CLI (a missing one fails: run setup).
fn gemini_binary() -> PathBuf {
    let agents = std::env::var_os("AGENTSCOPE_AGENTS_DIR").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/agentscope/agents"),
        PathBuf::from,
    );
    let path = agents.join(format!("gemini-cli@{VERSION}/node_modules/.bin/gemini"));
    assert!(
        path.is_file(),
        "{} is missing: run `make setup` (it installs Gemini CLI {VERSION})",
        path.display()
    );
    path
}

/// One run's files: the workspace Gemini CLI works in (holding only the two plans), its
/// private HOME, and the mock with its dump directory.
struct Run {
    secret_path: PathBuf,
    fallback_path: PathBuf,
    workspace: PathBuf,
    home: PathBuf,
    llm: MockLlm,
    ca: PathBuf,
    dump: PathBuf,
}

fn prepare(dir: &Path) -> Run {
    let workspace = dir.join("work");
    std::fs::create_dir_all(&workspace).unwrap();
    let secret_path = workspace.join("secret-plan.txt");
    std::fs::write(&secret_path, format!("{SECRET}\n")).unwrap();
    let fallback_path = workspace.join("fallback-plan.txt");
    std::fs::write(&fallback_path, format!("{FALLBACK}\n")).unwrap();
    let home = dir.join("home");
    std::fs::create_dir_all(home.join(".gemini")).unwrap();
    std::fs::write(
        home.join(".gemini/settings.json"),
        serde_json::json!({
            "security": {"auth": {"selectedType": "gemini-api-key"}},
            "privacy": {"usageStatisticsEnabled": false},
            "telemetry": {"enabled": false},
            "general": {"enableAutoUpdate": false, "enableAutoUpdateNotification": false},
        })
        .to_string(),
    )
    .unwrap();
    let ca = make_ca_and_leaf(&dir.join("cert"));
    // A tool's result comes back to the model as `{"output": "<untrusted_context>\nOutput:
    // ...\nProcess Group PGID: N\n..."}` (JSON, so `\n` is two characters): characters
    // 41..79 are the file's line. The answer copies only them from the latest result (the
    // secret plan's), because the PGID differs from run to run and the two runs' outputs must
    // be identical.
    let scenario = dir.join("scenario.json");
    let read = |path: &Path, what: &str| {
        serde_json::json!({"name": TOOL,
                           "arguments": {"command": format!("cat {}", path.display()),
                                         "description": what}})
    };
    std::fs::write(
        &scenario,
        serde_json::json!({"turns": [
            {"tool_calls": [read(&fallback_path, "Read the fallback plan"),
                            read(&secret_path, "Read the plan")]},
            {"final_text": format!("The plan says: {{{{result:{TOOL}[41:79]}}}}")}
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
    Run {
        secret_path,
        fallback_path,
        workspace,
        home,
        llm,
        ca,
        dump,
    }
}

/// Gemini CLI held by its shell twice (each a FIFO, as [`Paused::command`] uses), in a clean
/// environment (only what it needs, nothing inherited): at the start FIFO, so the collector
/// can follow its pid from the start; then, after a warm-up `node -e 0` (a child of the
/// shell), at the measured FIFO before Gemini CLI is exec'd in the shell's pid. The collector
/// probes Node's OpenSSL when it reads node's first exec, and attaches the probes after: by
/// design a binary's first process runs unprobed meanwhile, and a collector short of CPU
/// reads the exec late, after Gemini CLI's first ClientHello. The measured run is the steady
/// state of a node that has run `node` before: it is released only once the collector says
/// node is probed ([`Collect::wait_probed`]).
struct PausedGemini {
    paused: Paused,
    /// Before Gemini CLI is exec'd.
    measured: PathBuf,
}

fn paused_gemini(dir: &Path, run: &Run) -> PausedGemini {
    let start = fifo(&dir.join("start"));
    let measured = fifo(&dir.join("measured"));
    let script = format!(
        ": < '{start}'; '{node}' -e 0 > /dev/null 2>&1; : < '{measured}'; \
         exec '{bin}' -p 'Read the plan file with the shell tool.' \
         --yolo --skip-trust --model {MODEL}",
        start = start.display(),
        measured = measured.display(),
        node = which_node().display(),
        bin = gemini_binary().display(),
    );
    let child = Command::new("/bin/sh")
        .args(["-c", &script])
        .current_dir(&run.workspace)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &run.home)
        .env("GEMINI_API_KEY", API_KEY)
        .env(
            "GOOGLE_GEMINI_BASE_URL",
            format!("https://127.0.0.1:{}", run.llm.port),
        )
        .env("NODE_EXTRA_CA_CERTS", &run.ca)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gemini");
    PausedGemini {
        paused: Paused {
            child,
            start_file: start,
        },
        measured,
    }
}

/// How long the warm-up may take to reach the measured FIFO, and the collector to say it
/// probed node, on a loaded machine.
const WARM_UP_LIMIT: Duration = Duration::from_secs(120);

/// Gemini CLI alone: no collector. Returns its output.
fn run_without_collector() -> String {
    let dir = tempfile::tempdir().unwrap();
    let run = prepare(dir.path());
    let gemini = paused_gemini(dir.path(), &run);
    gemini.paused.release();
    release_fifo(&gemini.measured, WARM_UP_LIMIT);
    gemini.paused.finish()
}

/// What one run under `agentscope collect --pid` left.
struct Observed {
    pid: u32,
    stdout: String,
    run: Run,
    captured: Captured,
    graph: Value,
    /// The collector's JSON lines and the graph JSON, as written.
    raw_output: String,
    recording: PathBuf,
    _dir: tempfile::TempDir,
}

fn run_with_collector() -> Observed {
    let dir = tempfile::tempdir().unwrap();
    let run = prepare(dir.path());
    let gemini = paused_gemini(dir.path(), &run);
    let pid = gemini.paused.pid();
    let graph_path = dir.path().join("graph.json");
    let recording = dir.path().join("run.cap");
    wait_for_earlier_unloads();
    let collect = Collect::start(
        dir.path(),
        &[
            "--pid",
            &pid.to_string(),
            "--no-kubernetes",
            "--graph-json",
            graph_path.to_str().unwrap(),
            "--record",
            recording.to_str().unwrap(),
        ],
    );
    gemini.paused.release();
    collect.wait_probed(&which_node(), WARM_UP_LIMIT);
    release_fifo(&gemini.measured, WARM_UP_LIMIT);
    let stdout = gemini.paused.finish();
    // A collector short of CPU runs behind: what it has not read at a stop would be cut.
    collect.wait_exit_printed(pid, WARM_UP_LIMIT);
    let stdout_path = collect.stdout_path.clone();
    let captured = collect.stop();
    let graph_text = std::fs::read_to_string(&graph_path).unwrap();
    let graph: Value = serde_json::from_str(&graph_text).unwrap();
    let raw_output = std::fs::read_to_string(stdout_path).unwrap() + &graph_text;
    Observed {
        pid,
        stdout,
        run,
        captured,
        graph,
        raw_output,
        recording,
        _dir: dir,
    }
}

/// `body` with the value of every `"thoughtSignature":"..."` replaced by as many `*`.
fn thought_signatures_masked(body: &[u8]) -> Vec<u8> {
    const FIELD: &[u8] = b"\"thoughtSignature\":\"";
    let mut out = body.to_vec();
    let mut from = 0;
    while let Some(at) = memchr::memmem::find(&out[from..], FIELD) {
        let value = from + at + FIELD.len();
        let end = value + memchr::memchr(b'"', &out[value..]).expect("a closed string");
        out[value..end].fill(b'*');
        from = end;
    }
    out
}

/// `agentscope ARGS... run.cap`, its stdout (asserting success).
fn from_recording(args: &[&str], recording: &Path) -> String {
    let output = Command::new(BIN)
        .args(args)
        .arg(recording)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "agentscope {args:?} {}: {}",
        recording.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn gemini_cli_is_seen_through_node_openssl_symbols() {
    require_root();
    let alone = run_without_collector();
    let seen = run_with_collector();
    let captured = &seen.captured;

    // The agent's output does not change under the probes, and the tool really ran.
    assert_eq!(
        alone.trim_end(),
        format!("The plan says: {SECRET}"),
        "Gemini CLI did not run the tool"
    );
    assert_eq!(seen.stdout, alone, "output changed under the collector");
    assert_eq!(captured.summary["kernel"]["dropped"], 0);
    assert_eq!(captured.summary["kernel"]["tls_rejected"], 0);

    // The agent: the relaunched child of the process the test started.
    let agents = seen.graph["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1, "{agents:#?}");
    let agent = &agents[0];
    assert_eq!(agent["name"], "gemini", "{agent:#}");
    let agent_pid = agent["pids"][0].as_u64().unwrap();
    let parent_of_agent = captured
        .events
        .iter()
        .find(|e| e["pid"] == agent_pid)
        .map(|e| e["ppid"].clone());
    assert_eq!(
        parent_of_agent,
        Some(Value::from(seen.pid)),
        "the agent {agent_pid} is not Gemini CLI's relaunched child"
    );
    // With its model, one LLM call per request the mock answered.
    let requests = (1..)
        .take_while(|n| seen.run.dump.join(format!("request-{n}.body")).exists())
        .count();
    assert_eq!(requests, 2, "a tool round and the answer");
    assert_eq!(agent["llm_calls"], requests as u64, "{agent:#}");
    assert_eq!(
        agent["aibom"]["apis"],
        serde_json::json!(["gemini_generate_content"])
    );
    let models: Vec<&Value> = agent["aibom"]["providers"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|m| m.as_array().unwrap())
        .collect();
    assert_eq!(models, [&Value::from(MODEL)], "{agent:#}");
    assert!(
        agent["aibom"]["tools_offered"].get(TOOL).is_some(),
        "{TOOL} not among the tools offered: {:#}",
        agent["aibom"]["tools_offered"]
    );
    // The CLI's own npm package, its version read by the collector from its package.json
    // (docs/aibom.md): the one the installed package.json says.
    let manifest = gemini_binary()
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("@google/gemini-cli/package.json");
    let installed: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let version = installed["version"].as_str().unwrap();
    let package = &agent["aibom"]["packages"][format!("npm:@google/gemini-cli@{version}")];
    assert_eq!(package["version"], version, "{:#}", agent["aibom"]);
    assert!(
        package["metadata_path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/node_modules/@google/gemini-cli/package.json")),
        "{package:#}"
    );

    // The two shell tool calls, with their arguments as the model sent them. The model gave
    // no ids (the Gemini API usually does not); Gemini CLI named each call itself and sent its
    // result back under that id, with the call repeated: each result is tied to its call by
    // the tool's name and those arguments, and the graph says which id the agent used.
    let calls = seen.graph["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    let request_2 = std::fs::read_to_string(seen.run.dump.join("request-2.body")).unwrap();
    let mut agent_ids = Vec::new();
    for (path, text, other) in [
        (&seen.run.fallback_path, FALLBACK, &seen.run.secret_path),
        (&seen.run.secret_path, SECRET, &seen.run.fallback_path),
    ] {
        let command = format!("cat {}", path.display());
        let call = calls
            .iter()
            .find(|c| c["gen_ai.tool.call.arguments"]["command"] == command.as_str())
            .unwrap_or_else(|| panic!("no call running {command}: {calls:#?}"));
        assert_eq!(call["gen_ai.tool.name"], TOOL);
        assert_eq!(call["pid"], agent_pid);
        assert_eq!(call["gen_ai.request.model"], MODEL);
        assert_eq!(call["gen_ai.tool.call.id"], Value::Null, "{call:#}");
        // Its own result, not the other call's.
        assert!(
            call["result"]["content"]
                .as_str()
                .is_some_and(|c| c.contains(text)),
            "{command} got another result: {call:#}"
        );
        let evidence = &call["result_evidence"];
        assert_eq!(evidence["type"], "agent_call_id", "{call:#}");
        let id = evidence["id"].as_str().unwrap();
        assert!(id.starts_with(&format!("{TOOL}_")), "{call:#}");
        // The id Gemini CLI sent back with the result (its request as it sent it).
        assert!(
            request_2.contains(&format!("\"id\":\"{id}\"")),
            "{id} is not an id Gemini CLI sent back"
        );
        agent_ids.push(id.to_string());
        // Linked to the exec of its `cat` and the open of its plan, and not to the other's.
        let links = call["links"].as_array().unwrap();
        assert!(
            links.iter().any(|l| l["kind"] == "exec"
                && l["summary"] == format!("exec {command}")
                && l["evidence"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["type"] == "argument_match")),
            "no exec link running {command}: {links:#?}"
        );
        let file_node = format!("data:file:{}", path.display());
        assert!(
            links
                .iter()
                .any(|l| l["kind"] == "file" && l["target"] == file_node.as_str()),
            "no file link to {file_node}: {links:#?}"
        );
        let other = other.display().to_string();
        assert!(
            !links
                .iter()
                .any(|l| l["summary"].as_str().is_some_and(|s| s.contains(&other))),
            "{command} linked to what the other call did: {links:#?}"
        );
    }
    assert_ne!(agent_ids[0], agent_ids[1]);

    // Payloads byte for byte in both directions.
    let egress = captured.tls_streams(agent_pid, "egress");
    let ingress: Vec<Vec<u8>> = captured
        .tls_streams(agent_pid, "ingress")
        .iter()
        .map(|s| dechunk_all(s))
        .collect();
    for n in 1..=requests {
        let request = std::fs::read(seen.run.dump.join(format!("request-{n}.body"))).unwrap();
        // Redaction masks what a field named like a signature holds: Gemini CLI's
        // `thoughtSignature` (an opaque token of the model's, not a credential) when it sends
        // a model turn back. Nothing else is masked.
        let expected = thought_signatures_masked(&request);
        assert_eq!(
            egress
                .iter()
                .find_map(|s| verbatim_but_redacted(s, &expected)),
            Some(0),
            "request {n} ({} bytes) not captured verbatim",
            request.len()
        );
        let response = std::fs::read(seen.run.dump.join(format!("response-{n}.body"))).unwrap();
        assert_eq!(
            ingress
                .iter()
                .find_map(|s| verbatim_but_redacted(s, &response)),
            Some(0),
            "response {n} ({} bytes) not captured verbatim",
            response.len()
        );
    }
    // Every call went to the mock: Gemini CLI's only internet connection is to 127.0.0.1.
    let inet: Vec<String> = captured
        .of_kind("connect")
        .filter(|e| e["family"] == "inet" || e["family"] == "inet6")
        .map(|e| format!("{}:{}", e["addr"], e["port"]))
        .collect();
    assert!(
        !inet.is_empty()
            && inet
                .iter()
                .all(|a| *a == format!("\"127.0.0.1\":{}", seen.run.llm.port)),
        "connections: {inet:?}"
    );

    // How: OpenSSL probed through the symbols /usr/bin/node exports, in the summary, the
    // graph's coverage table, and `agentscope coverage -o json` replayed from the recording.
    let libraries = captured.summary["tls_libraries"].as_array().unwrap();
    let node = std::fs::canonicalize(which_node()).unwrap();
    assert!(
        libraries
            .iter()
            .any(|l| l["path"] == node.to_str().unwrap()
                && l["method"] == "openssl (exported symbols)"),
        "{libraries:#?}"
    );
    let coverage_text = from_recording(&["coverage", "-o", "json", "--replay"], &seen.recording);
    let coverage: Value = serde_json::from_str(&coverage_text).unwrap();
    assert_eq!(coverage["schema"], "agentscope.coverage/v1");
    let row = coverage["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["pid"] == agent_pid)
        .unwrap_or_else(|| panic!("no coverage row for {agent_pid}: {coverage:#}"));
    assert_eq!(row["plaintext_seen"], true, "{row:#}");
    assert_eq!(row["coverage"]["plaintext"], "seen", "{row:#}");
    assert_eq!(row["coverage"]["method"], "openssl_symbols", "{row:#}");
    assert_eq!(row["coverage"]["object"], node.to_str().unwrap(), "{row:#}");
    assert_eq!(row["agent"], agent["key"], "{row:#}");
    assert!(
        seen.graph["tls_coverage"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["pid"] == agent_pid && r["coverage"] == row["coverage"]),
        "{:#}",
        seen.graph["tls_coverage"]
    );

    // The API key appears nowhere: not in the events as printed nor in the payloads they carry
    // (base64 in `data_b64`, so decoded), the graph, the recording replayed, or coverage.
    // Gemini CLI really sent it: its `x-goog-api-key` header is in the captured requests,
    // masked to the key's length.
    let replay = from_recording(&["replay", "--json"], &seen.recording);
    let replayed_events: Vec<Value> = replay
        .lines()
        .map(|l| serde_json::from_str(l).expect("replay --json line"))
        .collect();
    for (what, text) in [
        (
            "collect --json and --graph-json",
            seen.raw_output.as_bytes(),
        ),
        ("collect --json payloads", &carried_bytes(&captured.events)),
        ("replay --json", replay.as_bytes()),
        ("replay --json payloads", &carried_bytes(&replayed_events)),
        ("coverage --replay -o json", coverage_text.as_bytes()),
    ] {
        assert!(!text.is_empty(), "{what} is empty");
        assert!(!contains(text, API_KEY.as_bytes()), "API key in {what}");
        assert!(
            !contains(text, &API_KEY.as_bytes()[..20]),
            "key prefix in {what}"
        );
    }
    let masked_header = format!("x-goog-api-key: {}\r\n", "*".repeat(API_KEY.len()));
    assert!(
        contains(&egress.concat(), masked_header.as_bytes()),
        "the key's header is not in the captured requests, masked"
    );
}

/// Every byte the events carry (`data_b64` of data and ClientHello events), decoded.
fn carried_bytes(events: &[Value]) -> Vec<u8> {
    use base64::Engine as _;
    events
        .iter()
        .filter_map(|e| e["data_b64"].as_str())
        .flat_map(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("data_b64 is base64")
        })
        .collect()
}
