//! End-to-end tests of Go `crypto/tls` capture: the Go test agent (tests/agents/go_agent,
//! `net/http` over TLS, built at test time by Debian's `go`, once with its symbol table and
//! once with `-ldflags='-s -w'`) talks to the mock LLM over real TLS (a CA and a leaf signed by
//! it) and carries out the model's `read_file` call. Needs root (eBPF) and `make setup`
//! (golang-go).

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::certificates::make_ca_and_leaf;
use support::*;

const API_KEY: &str = "sk-agentscope-go-secret-7f3a9c21b4";
const READ_PATH: &str = "/etc/os-release";

/// Builds both agent variants (tests/agents/go_agent/build.sh).
fn build_go_agent(out: &Path) -> (PathBuf, PathBuf) {
    let output = Command::new(agents_dir().join("go_agent/build.sh"))
        .arg(out)
        .output()
        .expect("run tests/agents/go_agent/build.sh (needs golang-go: make setup)");
    assert!(
        output.status.success(),
        "building the Go agent failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (out.join("go_agent"), out.join("go_agent_stripped"))
}

struct Setup {
    dir: tempfile::TempDir,
    full: PathBuf,
    stripped: PathBuf,
    llm: MockLlm,
    ca: PathBuf,
}

fn setup() -> Setup {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (full, stripped) = build_go_agent(&dir.path().join("bin"));
    let ca = make_ca_and_leaf(&dir.path().join("cert"));
    let llm = MockLlm::start(dir.path());
    Setup {
        dir,
        full,
        stripped,
        llm,
        ca,
    }
}

impl Setup {
    fn agent_args(&self, dump: &str) -> Vec<String> {
        vec![
            "--port".into(),
            self.llm.port.to_string(),
            "--ca".into(),
            self.ca.display().to_string(),
            "--read-path".into(),
            READ_PATH.into(),
            "--big-kib".into(),
            "512".into(),
            "--dump-dir".into(),
            self.dir.path().join(dump).display().to_string(),
        ]
    }

    /// The agent with its symbol table, held at its start, dumping what it sends into `dump`,
    /// with `extra` arguments.
    fn paused_full_agent(&self, dump: &str, extra: &[&str]) -> Paused {
        let mut args = self.agent_args(dump);
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Paused::agent(
            self.dir.path(),
            self.full.to_str().unwrap(),
            &args,
            &[("AGENTSCOPE_TEST_API_KEY", API_KEY)],
        )
    }

    fn dump(&self, dump: &str, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(dump).join(file)).unwrap()
    }
}

/// What the agent sent with its API key masked as the collector masks it by default (same
/// length, scheme kept).
fn masked(sent: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(sent.to_vec()).expect("the agent's requests are text");
    assert!(text.contains(API_KEY), "the agent really sent the key");
    text.replace(API_KEY, &"*".repeat(API_KEY.len()))
        .into_bytes()
}

/// Everything a Go agent run must show, whichever way it was found.
#[allow(clippy::too_many_arguments)]
fn check_capture(
    setup: &Setup,
    captured: &Captured,
    pid: u32,
    dump: &str,
    report: &Value,
    graph_path: &Path,
    events_path: &Path,
    binary: &Path,
    has_symbols: bool,
) {
    // The binary was found and probed through its Go function table.
    let go_tls = captured.summary["go_tls"]
        .as_array()
        .expect("go_tls in the summary");
    let entry = go_tls
        .iter()
        .find(|b| {
            b["path"]
                .as_str()
                .is_some_and(|p| p.ends_with(binary.file_name().unwrap().to_str().unwrap()))
        })
        .unwrap_or_else(|| panic!("{} not in {go_tls:#?}", binary.display()));
    assert_eq!(entry["method"], "go crypto/tls (pclntab)", "{entry:#}");
    assert_eq!(entry["has_symbols"], has_symbols, "{entry:#}");
    assert_eq!(entry["blind_spot"], Value::Null, "{entry:#}");
    // Write's stack-growth check was recognised: no entry probe that can fire twice.
    assert_eq!(entry["warning"], Value::Null, "{entry:#}");
    assert!(entry["probes"].as_u64().unwrap() >= 3, "{entry:#}");
    assert!(entry["go_version"].as_str().unwrap().starts_with("go1."));

    // Byte for byte in both directions (the key masked), the 512 KiB request included.
    assert!(report["request_bytes"][0].as_u64().unwrap() > 512 * 1024);
    let egress = captured.tls_stream(pid, "egress");
    let sent = setup.dump(dump, "egress.raw");
    assert_eq!(egress.len(), sent.len(), "captured egress length");
    assert!(
        egress == masked(&sent),
        "captured egress differs from what the agent sent"
    );
    let ingress = captured.tls_stream(pid, "ingress");
    let received = setup.dump(dump, "ingress.raw");
    assert_eq!(ingress.len(), received.len(), "captured ingress length");
    assert!(
        ingress == received,
        "captured ingress differs from what the agent read"
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
    assert_eq!(captured.summary["decode_errors"], 0);

    // The TLS chunks name the socket the agent connected to the LLM with (followed from the
    // *tls.Conn), so the stream has its peer.
    let llm_fd = captured
        .of_kind("connect")
        .find(|e| e["pid"] == pid && e["port"] == setup.llm.port)
        .expect("the LLM connection")["fd"]
        .as_i64()
        .unwrap();
    let tls_fds: Vec<i64> = captured
        .of_kind("data")
        .filter(|e| e["pid"] == pid && e["source"] == "tls")
        .map(|e| e["fd"].as_i64().unwrap())
        .collect();
    assert!(
        tls_fds.iter().all(|fd| *fd == llm_fd),
        "TLS chunks carry the LLM socket fd {llm_fd}: {tls_fds:?}"
    );

    // The tool call the model asked for was carried out by the agent.
    assert!(
        captured
            .of_kind("open")
            .any(|e| e["pid"] == pid && e["path"] == READ_PATH && e["ret"].as_i64().unwrap() >= 0),
        "read_file opened {READ_PATH}"
    );

    // The agent appears with its model, its two LLM calls and the tool call.
    let graph_text = std::fs::read_to_string(graph_path).unwrap();
    let graph: Value = serde_json::from_str(&graph_text).unwrap();
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
    assert!(models.contains(&&Value::from("gpt-4o-mini")), "{agent:#}");
    assert_eq!(agent["llm_calls"], 2, "{agent:#}");
    assert_eq!(agent["tool_calls"], 1, "{agent:#}");

    // The key appears in no output.
    let events_text = std::fs::read_to_string(events_path).unwrap();
    assert!(!events_text.contains(API_KEY), "API key in the events");
    assert!(!graph_text.contains(API_KEY), "API key in the graph");
}

/// The Go agent with its symbol table, started (paused) before the collector: found from
/// /proc as an already mapped executable.
#[test]
fn go_agent_with_symbols_is_captured_from_proc() {
    let setup = setup();
    let agent = setup.paused_full_agent("dump", &[]);
    let pid = agent.pid();
    let graph = setup.dir.path().join("graph.json");
    let collect = Collect::start(
        setup.dir.path(),
        &[
            "--pid",
            &pid.to_string(),
            "--no-kubernetes",
            "--graph-json",
            graph.to_str().unwrap(),
        ],
    );
    agent.release();
    let output = agent.finish();
    let report: Value = serde_json::from_str(output.trim()).unwrap();
    assert_eq!(report["ok"], true, "{output}");
    let events = collect.stdout_path.clone();
    let captured = collect.stop();
    check_capture(
        &setup,
        &captured,
        pid,
        "dump",
        &report,
        &graph,
        &events,
        &setup.full,
        true,
    );
}

/// With one connection in a million kept (`--sample-connections 1000000`), the Go agent's TLS
/// plaintext follows its socket's choice: of its four conversations at once, each on its own
/// connection to the mock LLM, the first connect is kept (sampling never hides a destination;
/// goroutines connecting at the same instant may have one more kept) and the others are sampled
/// out; plaintext is copied for the kept connections' fds only, and the others' bytes (their
/// 512 KiB requests among them) are counted and reported as the agent's.
#[test]
fn go_agents_plaintext_follows_its_connections_sampling() {
    let setup = setup();
    let agent = setup.paused_full_agent("dump-sampled", &["--parallel", "3"]);
    let pid = agent.pid();
    let collect = Collect::start(
        setup.dir.path(),
        &[
            "--pid",
            &pid.to_string(),
            "--no-kubernetes",
            "--sample-connections",
            "1000000",
        ],
    );
    agent.release();
    let output = agent.finish();
    let report: Value = serde_json::from_str(output.trim()).unwrap();
    assert_eq!(report["ok"], true, "{output}");
    assert_eq!(report["parallel_ok"], 3, "{output}");
    let captured = collect.stop();
    let pid = u64::from(pid);
    let connects: Vec<&Value> = captured
        .of_kind("connect")
        .filter(|e| {
            e["pid"].as_u64() == Some(pid) && e["port"].as_u64() == Some(u64::from(setup.llm.port))
        })
        .collect();
    assert_eq!(connects.len(), 4, "one per conversation: {connects:?}");
    let (sampled_out, kept): (Vec<&Value>, Vec<&Value>) = connects
        .iter()
        .partition(|c| c["payloads_sampled_out"] == true);
    assert!(!kept.is_empty() && sampled_out.len() >= 2, "{connects:?}");
    // The conversations run at once, so their connections hold distinct fds.
    let kept_fds: std::collections::BTreeSet<i64> =
        kept.iter().map(|c| c["fd"].as_i64().unwrap()).collect();
    let tls_fds: std::collections::BTreeSet<i64> = captured
        .of_kind("data")
        .filter(|e| e["pid"].as_u64() == Some(pid) && e["source"] == "tls")
        .map(|e| e["fd"].as_i64().unwrap())
        .collect();
    assert_eq!(tls_fds, kept_fds, "{connects:?}");
    let counted = captured.sampled_out_bytes_all_of(pid);
    assert!(
        counted > sampled_out.len() as u64 * 512 * 1024,
        "{}",
        captured.summary
    );
}

/// The stripped agent (`-s -w`), exec'd while the collector runs: analysed on exec, found
/// through the function table alone. Its output is the same with and without the collector.
#[test]
fn stripped_go_agent_execd_later_is_captured_and_unchanged() {
    let setup = setup();
    let env = [("AGENTSCOPE_TEST_API_KEY", API_KEY)];

    // Without the collector first.
    let unprobed = Command::new(&setup.stripped)
        .args(setup.agent_args("dump-unprobed"))
        .env("AGENTSCOPE_TEST_API_KEY", API_KEY)
        .output()
        .unwrap();
    assert!(
        unprobed.status.success(),
        "{}",
        String::from_utf8_lossy(&unprobed.stderr)
    );

    // Then exec'd by a shell the collector already follows; the agent itself waits for a
    // second file, written once the collector says it probed the binary, so its first TLS call
    // is inside the probes.
    let go_file = setup.dir.path().join("go-now");
    let mut args = setup.agent_args("dump");
    args.extend([
        "--wait-before-start-file".into(),
        go_file.display().to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let shell = Paused::command(
        setup.dir.path(),
        setup.stripped.to_str().unwrap(),
        &args,
        &env,
    );
    let pid = shell.pid();
    let graph = setup.dir.path().join("graph.json");
    let collect = Collect::start(
        setup.dir.path(),
        &[
            "--pid",
            &pid.to_string(),
            "--no-kubernetes",
            "--graph-json",
            graph.to_str().unwrap(),
        ],
    );
    shell.release();
    collect.wait_probed(&setup.stripped, Duration::from_secs(60));
    std::fs::write(&go_file, b"go").unwrap();
    let output = shell.finish();
    let events = collect.stdout_path.clone();
    let captured = collect.stop();
    assert_eq!(
        output,
        String::from_utf8(unprobed.stdout).unwrap(),
        "probing changed the agent's output"
    );
    let report: Value = serde_json::from_str(output.trim()).unwrap();
    assert_eq!(report["ok"], true, "{output}");
    assert!(
        captured
            .of_kind("exec")
            .any(|e| e["pid"] == pid && e["filename"] == setup.stripped.to_str().unwrap()),
        "the agent was exec'd while the collector ran"
    );
    check_capture(
        &setup,
        &captured,
        pid,
        "dump",
        &report,
        &graph,
        &events,
        &setup.stripped,
        false,
    );
}

/// Five conversations at once, each on its own connection: several goroutines are inside
/// `(*tls.Conn).Read` together (and move between threads), yet each connection's bytes come
/// out whole and in order, in both directions, under its own `*tls.Conn`.
#[test]
fn concurrent_goroutines_keep_their_connections_apart() {
    let setup = setup();
    let agent = setup.paused_full_agent("dump", &["--parallel", "4"]);
    let pid = agent.pid();
    let collect = Collect::start(setup.dir.path(), &["--pid", &pid.to_string()]);
    agent.release();
    let output = agent.finish();
    let report: Value = serde_json::from_str(output.trim()).unwrap();
    assert_eq!(report["ok"], true, "{output}");
    assert_eq!(report["parallel_ok"], 4, "{output}");
    let captured = collect.stop();
    assert_eq!(captured.summary["kernel"]["lost_bytes"], 0);

    // Ground truth per conversation: (egress as the collector masks it, ingress).
    let dumps: Vec<(Vec<u8>, Vec<u8>)> = ["dump".to_string()]
        .into_iter()
        .chain((0..4).map(|i| format!("dump/parallel-{i}")))
        .map(|d| {
            (
                masked(&setup.dump(&d, "egress.raw")),
                setup.dump(&d, "ingress.raw"),
            )
        })
        .collect();
    let streams = captured.streams();
    let of = |direction: &str| -> BTreeMap<u64, Vec<u8>> {
        streams
            .iter()
            .filter(|((p, source, dir, _), _)| {
                *p == pid as u64 && source == "tls" && dir == direction
            })
            .map(|((_, _, _, conn), bytes)| (*conn, bytes.clone()))
            .collect()
    };
    let (egress, ingress) = (of("egress"), of("ingress"));
    assert_eq!(egress.len(), 5, "one egress stream per connection");
    assert_eq!(ingress.len(), 5, "one ingress stream per connection");
    let mut matched = Vec::new();
    for (conn, read) in &ingress {
        // Responses differ (ids), so each names its conversation.
        let index = dumps
            .iter()
            .position(|(_, truth)| truth == read)
            .unwrap_or_else(|| {
                // The conversation it agrees with longest, to show where it went wrong.
                let (closest, common) = dumps
                    .iter()
                    .enumerate()
                    .map(|(i, (_, truth))| (i, first_difference(read, truth).unwrap_or(0)))
                    .max_by_key(|(_, common)| *common)
                    .unwrap();
                let truth = &dumps[closest].1;
                panic!(
                    "ingress of {conn:#x} matches no conversation: {} bytes captured; closest is \
                     conversation {closest} ({} bytes read), first difference at byte {common}; \
                     captured around it: {:?}; read: {:?}; records left unprocessed at stop: \
                     {}, {}",
                    read.len(),
                    truth.len(),
                    around(read, Some(common)),
                    around(truth, Some(common)),
                    captured.summary["unprocessed_at_stop"],
                    captured.summary["read_unprocessed_at_stop"],
                )
            });
        let got = egress.get(conn).map(Vec::as_slice).unwrap_or_default();
        let sent = &dumps[index].0;
        assert!(
            got == sent.as_slice(),
            "egress of {conn:#x} is not what its conversation sent: {} bytes captured, {} sent, \
             first difference at byte {:?}; captured around it: {:?}; sent: {:?}",
            got.len(),
            sent.len(),
            first_difference(got, sent),
            around(got, first_difference(got, sent)),
            around(sent, first_difference(got, sent)),
        );
        matched.push(index);
    }
    matched.sort();
    assert_eq!(matched, vec![0, 1, 2, 3, 4], "every conversation seen once");
}

/// Writes and reads from nearly exhausted goroutine stacks (the agent's `--deep-stack`: 256-byte
/// Writes and 1-byte Reads, each from a fresh goroutine after a recursion whose depth cycles
/// past the starting stack). At some depths `(*tls.Conn).Write`'s prologue finds too little stack, calls
/// morestack and runs again from its first instruction, every run; each call is still
/// captured exactly once. Reads go into a buffer on the goroutine's own stack, which moves
/// when the stack grows inside `Read`; the bytes are still found where they landed. Both
/// directions come out byte for byte.
#[test]
fn writes_that_grow_the_goroutine_stack_are_captured_once() {
    let setup = setup();
    let mut args = setup.agent_args("dump");
    args.push("--deep-stack".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Paused::agent(
        setup.dir.path(),
        setup.full.to_str().unwrap(),
        &args,
        &[("AGENTSCOPE_TEST_API_KEY", API_KEY)],
    );
    let pid = agent.pid();
    let collect = Collect::start(setup.dir.path(), &["--pid", &pid.to_string()]);
    agent.release();
    let output = agent.finish();
    let report: Value = serde_json::from_str(output.trim()).unwrap();
    assert_eq!(report["ok"], true, "{output}");
    // The premise: the stack really was copied during Writes (at their entry or deeper) and
    // during Reads (whose buffer is on that stack).
    assert!(
        report["write_stack_growths"].as_u64().unwrap_or(0) > 0,
        "no Write grew its stack: {output}"
    );
    assert!(
        report["read_stack_growths"].as_u64().unwrap_or(0) > 0,
        "no Read grew its stack: {output}"
    );
    let captured = collect.stop();
    assert_eq!(captured.summary["kernel"]["lost_bytes"], 0);

    let sent = masked(&setup.dump("dump", "egress.raw"));
    let egress = captured.tls_stream(pid, "egress");
    assert!(
        egress == sent,
        "egress: {} bytes captured, {} sent, first difference at byte {:?}; captured around \
         it: {:?}; sent: {:?}",
        egress.len(),
        sent.len(),
        first_difference(&egress, &sent),
        around(&egress, first_difference(&egress, &sent)),
        around(&sent, first_difference(&egress, &sent)),
    );
    let received = setup.dump("dump", "ingress.raw");
    let ingress = captured.tls_stream(pid, "ingress");
    assert!(
        ingress == received,
        "ingress: {} bytes captured, {} read, first difference at byte {:?}",
        ingress.len(),
        received.len(),
        first_difference(&ingress, &received),
    );
}

/// Where two byte strings first differ (the shorter one's end if one is a prefix).
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    (a.len() != b.len() || common < a.len()).then_some(common)
}

/// The bytes around `at`, as text, for a failure message.
fn around(bytes: &[u8], at: Option<usize>) -> String {
    let at = at.unwrap_or(0);
    let from = at.saturating_sub(40);
    let to = (at + 80).min(bytes.len());
    String::from_utf8_lossy(bytes.get(from..to).unwrap_or_default()).into_owned()
}
