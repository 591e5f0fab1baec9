//! Codex CLI (`@openai/codex`, a static musl Rust executable, stripped) under the real
//! collector. Which TLS stack carries its model call depends on the release, as the
//! ClientHellos show (`openssl s_server -trace`): 0.101.0 goes through `reqwest`'s
//! `native-tls`, a vendored OpenSSL 3.5 (renegotiation_info extension, DHE and CBC suites, no
//! ALPN); 0.171.0 through rustls 0.23 with aws-lc-rs (the renegotiation SCSV, nine suites,
//! X25519MLKEM768, ALPN h2 and http/1.1). Both binaries carry both stacks.
//!
//! 0.101.0: the collector must locate OpenSSL 3's `ssl_write_internal`/`ssl_read_internal`
//! in the binary itself (`crates/kernel/src/tls_targets/openssl3.rs`); 0.171.0: aws-lc's
//! `EVP_AEAD_CTX_seal`/`open`, through which rustls seals and opens every record
//! (`crates/kernel/src/tls_targets/aws_lc.rs`), each record bound to its socket by the
//! kernel programs (`collector-ebpf/src/tls_rustls.rs`). For both, the plaintext is captured:
//! the agent with its model, the `exec_command` tool call (name, arguments, id) linked to the
//! exec and the file open it caused, request and response bodies byte for byte (a request of
//! more than 512 KiB included), the API key nowhere in any output, `coverage` reporting
//! "openssl_located" or "rustls_located", and Codex's output unchanged by the probes.
//!
//! Codex runs non-interactively (`codex exec`, the prompt on stdin) with a private
//! `CODEX_HOME` whose `config.toml` points a custom provider at the mock LLM
//! (`tests/agents/mock_llm_server.py`, OpenAI Responses with SSE) over TLS, under the name
//! `api.openai.com`, which resolves to 127.0.0.1 only in Codex's own mount namespace. The mock serves a
//! certificate issued by its own CA (`--with-ca`; rustls refuses a self-signed CA certificate
//! used as the server's), trusted through `SSL_CERT_FILE`, and offers only `http/1.1` in ALPN
//! (`--alpn http/1.1`), so these checks do not depend on HTTP/2 reconstruction whichever stack
//! a release uses; one more test puts a real Go HTTP/2 server in front of the mock, which
//! Codex 0.171.0 talks h2 to. The model calls go only to the mock; Codex 0.171.0 also looks up
//! `api.github.com` and `chatgpt.com` on its own (seen with strace; `check_for_update_on_startup
//! = false` does not stop it), which this test neither needs nor checks.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use support::h2_front::{self, H2Front};
use support::payloads::{assert_bodies_captured, verbatim_but_redacted};
use support::*;

const MODEL: &str = "gpt-5-codex";
/// Codex reaches the mock under the OpenAI API's name, which resolves to 127.0.0.1 only in its
/// own mount namespace (`unshare -m` and a bind-mounted hosts file): so a connection whose
/// plaintext is not visible still names its provider by SNI.
const API_HOST: &str = "api.openai.com";
const API_KEY: &str = "sk-proj-agentscopeTestKey0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH";

/// The Codex CLI executable of one installed release (the npm package moved it between
/// releases); a missing one fails: run setup.
fn codex_binary(version: &str) -> PathBuf {
    let agents = std::env::var_os("AGENTSCOPE_AGENTS_DIR").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/agentscope/agents"),
        PathBuf::from,
    );
    let vendor = agents.join(format!(
        "codex@{version}/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl"
    ));
    ["codex/codex", "bin/codex"]
        .iter()
        .map(|p| vendor.join(p))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{}/{{codex/codex,bin/codex}} is missing: run `make setup` (it installs Codex CLI {version})",
                vendor.display()
            )
        })
}

/// A prompt of about 580 KiB, so Codex's first request body is larger than 512 KiB.
fn big_prompt(path: &Path) {
    let words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
    let mut text = String::from("Read the plan file with your shell tool. Notes follow.\n");
    let mut state: u32 = 12345;
    while text.len() < 580 * 1024 {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        text.push_str(words[(state >> 16) as usize % words.len()]);
        text.push(' ');
    }
    std::fs::write(path, text).unwrap();
}

struct CodexRun {
    pid: u32,
    stdout: String,
    dump: PathBuf,
    secret_path: PathBuf,
}

/// Codex's private home: the mock (at `port`: its own, or an HTTP/2 front's) as its only
/// model provider.
fn codex_home(dir: &Path, port: u16) -> PathBuf {
    let home = dir.join("codex-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("config.toml"),
        format!(
            "model = \"{MODEL}\"\n\
             model_provider = \"mock\"\n\
             \n\
             [model_providers.mock]\n\
             name = \"mock\"\n\
             base_url = \"https://{API_HOST}:{port}/v1\"\n\
             wire_api = \"responses\"\n\
             env_key = \"MOCK_API_KEY\"\n",
        ),
    )
    .unwrap();
    home
}

/// Requests the warm-up run makes (a tool call round and the answer), before the measured ones.
const WARM_UP_REQUESTS: usize = 2;

/// Codex held at two points, each a FIFO the test opens to let it go on (see [`release`]);
/// killed if the test fails before it ends ([`Paused`]).
struct PausedCodex {
    /// Held before anything runs (`start_file`): the collector can follow the pid from the
    /// start.
    paused: Paused,
    /// After the warm-up run, before the measured one is exec'd.
    measured: PathBuf,
}

/// Starts Codex held before its `exec` until the start FIFO is opened (so the collector can
/// follow its pid from the start). Once released, Codex first runs once with a short prompt
/// (a child of the shell, output discarded); then the shell waits on the second FIFO before the
/// measured run `exec`s in its pid. The collector analyses a binary when it reads the binary's
/// first exec and attaches the probes after: by design the first process of a binary runs
/// unprobed meanwhile. Codex makes its first connection about 130 ms after starting; the
/// analysis takes 23 ms in the benchmark (`crates/kernel/benches/locate_openssl3.rs`), several
/// times that in this unoptimised test build, and a collector short of CPU reads the exec
/// late: the warm-up's hellos can say `probes_attached_late`, and in CI the warm-up once ended
/// before the probes were attached, so the measured run's first hello said so too. The measured
/// run is the steady state of a node that has seen the binary before: it is released only once
/// the collector says the binary is probed ([`Collect::wait_probed`]).
fn paused_codex(dir: &Path, binary: &Path, llm: &MockLlm, port: u16) -> PausedCodex {
    let home = codex_home(dir, port);
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let prompt = dir.join("prompt.txt");
    big_prompt(&prompt);
    let warm_up = dir.join("warm-up.txt");
    std::fs::write(&warm_up, "Read the plan file with your shell tool.\n").unwrap();
    let hosts = dir.join("hosts");
    std::fs::write(
        &hosts,
        format!("127.0.0.1 localhost\n127.0.0.1 {API_HOST}\n"),
    )
    .unwrap();
    let (start, measured) = (fifo(&dir.join("start")), fifo(&dir.join("measured")));
    let script = format!(
        "mount --bind '{hosts}' /etc/hosts && : < '{start}'; cd '{work}' && \
         '{bin}' exec --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox \
         --color never - < '{warm_up}' > /dev/null 2>&1 && : < '{measured}' && \
         exec '{bin}' exec --skip-git-repo-check --dangerously-bypass-approvals-and-sandbox \
         --color never - < '{prompt}'",
        hosts = hosts.display(),
        start = start.display(),
        measured = measured.display(),
        bin = binary.display(),
        work = work.display(),
        prompt = prompt.display(),
        warm_up = warm_up.display(),
    );
    // unshare and the shell exec what follows: the pid stays Codex's.
    let child = Command::new("unshare")
        .args(["-m", "/bin/sh", "-c", &script])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &home)
        .env("CODEX_HOME", &home)
        .env("SSL_CERT_FILE", llm.ca())
        .env("MOCK_API_KEY", API_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start codex");
    PausedCodex {
        paused: Paused {
            child,
            start_file: start,
        },
        measured,
    }
}

/// Lets Codex go on past `fifo`, once the shell waits there (the measured run's, after a
/// warm-up run that takes seconds, longer on a loaded machine).
fn release(fifo: &Path) {
    release_fifo(fifo, std::time::Duration::from_secs(120));
}

fn finish(child: std::process::Child) -> String {
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "codex failed: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The mock's script: Codex's own shell tool reads the secret plan, then a fixed answer (the
/// tool's output carries timings, so it is checked in the request that returns it).
fn start_mock(dir: &Path, secret_path: &Path) -> (MockLlm, PathBuf) {
    let scenario = dir.join("scenario.json");
    std::fs::write(
        &scenario,
        serde_json::json!({"turns": [
            {"tool_calls": [{"name": "exec_command",
                             "arguments": {"cmd": format!("cat {}", secret_path.display())}}]},
            {"final_text": "The plan is read."}
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
            "--with-ca",
            "--alpn",
            "http/1.1",
        ],
    );
    (llm, dump)
}

fn write_secret(dir: &Path) -> PathBuf {
    let secret_path = dir.join("secret-plan.txt");
    std::fs::write(&secret_path, "launch codename BLUE HERON on the 14th\n").unwrap();
    secret_path
}

/// Codex alone: no collector.
fn run_without_collector(version: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let secret_path = write_secret(dir.path());
    let (llm, dump) = start_mock(dir.path(), &secret_path);
    let codex = paused_codex(dir.path(), &codex_binary(version), &llm, llm.port);
    release(&codex.paused.start_file);
    release(&codex.measured);
    let stdout = finish(codex.paused.into_child());
    let returned =
        std::fs::read(dump.join(format!("request-{}.body", WARM_UP_REQUESTS + 2))).unwrap();
    assert!(
        contains(&returned, b"BLUE HERON"),
        "Codex {version} did not run the tool"
    );
    stdout
}

/// Codex under `agentscope collect --pid`, recorded, with the graph written; with `http2`,
/// through the Go HTTP/2 front (serving the mock's certificate) instead of to the mock itself.
fn run_with_collector(
    version: &str,
    dir: &Path,
    http2: bool,
) -> (CodexRun, Captured, Value, String) {
    let secret_path = write_secret(dir);
    let (llm, dump) = start_mock(dir, &secret_path);
    let front = http2.then(|| {
        let binary = h2_front::build(&dir.join("bin"));
        H2Front::start(dir, &binary, &llm, &llm.ca())
    });
    let port = front.as_ref().map_or(llm.port, |f| f.port);
    let binary = codex_binary(version);
    let codex = paused_codex(dir, &binary, &llm, port);
    let pid = codex.paused.pid();
    let graph_path = dir.join("graph.json");
    let record_path = dir.join("run.cap");
    let collect = Collect::start(
        dir,
        &[
            "--pid",
            &pid.to_string(),
            "--no-kubernetes",
            "--graph-json",
            graph_path.to_str().unwrap(),
            "--record",
            record_path.to_str().unwrap(),
        ],
    );
    release(&codex.paused.start_file);
    collect.wait_probed(&binary, std::time::Duration::from_secs(120));
    release(&codex.measured);
    let stdout = finish(codex.paused.into_child());
    collect.wait_exit_printed(pid, std::time::Duration::from_secs(120));
    let stdout_path = collect.stdout_path.clone();
    let captured = collect.stop();
    let graph: Value =
        serde_json::from_str(&std::fs::read_to_string(&graph_path).unwrap()).unwrap();
    let raw_output = std::fs::read_to_string(stdout_path).unwrap()
        + &std::fs::read_to_string(&graph_path).unwrap();
    (
        CodexRun {
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

#[test]
fn codex_0_101_0_is_seen_through_located_openssl() {
    require_root();
    codex_is_seen("0.101.0", "openssl_located");
}

/// Codex 0.171.0 makes its model calls through rustls with aws-lc-rs: the collector locates
/// aws-lc's AEAD seal and open in the binary (beside the OpenSSL 3 it also links) and binds
/// each record to its socket (`collector-ebpf/src/tls_rustls.rs`). Every check of 0.101.0's
/// case holds: the agent and its model, the `exec_command` call linked to its exec and file
/// open, bodies byte for byte both ways (a request over 512 KiB), the key nowhere, coverage
/// `rustls_located`, output unchanged; and no record was left unbound.
#[test]
fn codex_0_171_0_is_seen_through_located_rustls() {
    require_root();
    let captured = codex_is_seen("0.171.0", "rustls_located");
    assert_eq!(
        captured.summary["kernel"]["tls_unbound"], 0,
        "{:#}",
        captured.summary
    );
}

/// Codex 0.171.0 offers h2 in ALPN; a real Go `net/http` server in front of the mock
/// (tests/agents/go_h2_front, serving the mock's certificate) accepts it. Its captured
/// connections are HTTP/2 from their preface, and reconstruction gives the same graph as over
/// HTTP/1.1: the agent with its model, the streamed `exec_command` call and its follow-up, the
/// call linked to its exec and file open, the model edge's `protocol` `h2`, the key nowhere.
#[test]
fn codex_0_171_0_over_http2_shows_its_calls() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let (run, captured, graph, raw_output) = run_with_collector("0.171.0", dir.path(), true);
    assert!(run.stdout.contains("The plan is read."), "{}", run.stdout);
    let egress = captured.tls_streams(u64::from(run.pid), "egress");
    assert!(
        !egress.is_empty()
            && egress
                .iter()
                .all(|s| s.starts_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")),
        "Codex's connections are HTTP/2 from their preface"
    );
    assert!(!raw_output.contains(API_KEY), "API key leaked");
    assert!(!contains(&egress.concat(), &API_KEY.as_bytes()[..40]));
    let agent = graph["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| {
            a["pids"]
                .as_array()
                .is_some_and(|p| p.contains(&serde_json::json!(run.pid)))
        })
        .unwrap_or_else(|| panic!("Codex over h2 is not an agent: {:#}", graph["agents"]));
    // The measured run's tool call round and its answer, at least.
    assert!(agent["llm_calls"].as_u64().unwrap() >= 2, "{agent:#}");
    let calls = graph["tool_calls"].as_array().unwrap();
    let exec = calls
        .iter()
        .find(|c| c["gen_ai.tool.name"] == "exec_command" && c["pid"] == run.pid)
        .unwrap_or_else(|| panic!("no exec_command tool call: {calls:#?}"));
    assert_eq!(
        exec["gen_ai.tool.call.arguments"]["cmd"],
        format!("cat {}", run.secret_path.display())
    );
    let links = exec["links"].as_array().unwrap();
    let file_node = format!("data:file:{}", run.secret_path.display());
    assert!(
        links.iter().any(|l| l["kind"] == "exec")
            && links
                .iter()
                .any(|l| l["kind"] == "file" && l["target"] == file_node.as_str()),
        "{links:#?}"
    );
    let from = format!("agent:{}", agent["key"].as_str().unwrap());
    let protocols: Vec<&Value> = graph["graph"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["from"] == from.as_str() && e["kind"] == "invokes_model")
        .flat_map(|e| e["attributes"]["protocol"].as_array().unwrap())
        .collect();
    assert_eq!(protocols, [&serde_json::json!("h2")], "{protocols:?}");
}

/// Runs Codex `version` alone and under the collector, and checks that its model calls are
/// seen through `method` (the coverage verdict's name).
fn codex_is_seen(version: &str, method: &str) -> Captured {
    let alone = run_without_collector(version);
    let dir = tempfile::tempdir().unwrap();
    let (run, captured, graph, raw_output) = run_with_collector(version, dir.path(), false);

    // The agent's output does not change under the probes.
    assert!(
        alone.contains("The plan is read."),
        "Codex {version}: {alone}"
    );
    assert_eq!(
        run.stdout, alone,
        "Codex {version}: output changed under the collector"
    );
    assert_eq!(
        captured.summary["kernel"]["tls_rejected"], 0,
        "{:#}",
        captured.summary
    );
    assert_eq!(captured.summary["kernel"]["dropped"], 0);
    // The summary says how: OpenSSL located in the codex binary, with the evidence.
    let libraries = captured.summary["tls_libraries"].as_array().unwrap();
    let located = libraries
        .iter()
        .find(|l| {
            let path = l["path"].as_str().unwrap();
            path.ends_with("codex/codex") || path.ends_with("bin/codex")
        })
        .unwrap_or_else(|| panic!("codex binary not in {libraries:#?}"));
    // Both releases link OpenSSL 3 (located); 0.171.0's rustls is located through aws-lc.
    assert_eq!(located["method"], "openssl (located)", "{located:#}");
    let anchors = located["anchors"].as_array().unwrap();
    let anchored = |text: &str| anchors.iter().any(|a| a.as_str().unwrap().contains(text));
    assert!(anchors.len() >= 4 && anchored("ssl_lib.c"), "{located:#}");
    if method == "rustls_located" {
        assert!(
            anchored("EVP_AEAD_CTX_seal at") && anchored("EVP_AEAD_CTX_open at"),
            "{located:#}"
        );
    }

    // Payloads byte for byte in both directions, the > 512 KiB request included.
    let hellos: Vec<&Value> = captured
        .of_kind("tls_hello")
        .filter(|e| e["pid"] == run.pid)
        .collect();
    assert!(
        !hellos.is_empty()
            && hellos.iter().all(|e| e["server_name"] == API_HOST
                && e["coverage"]["plaintext"] == "seen"
                && e["coverage"]["method"] == method),
        "Codex's ClientHellos: {:#?}",
        hellos
            .iter()
            .map(|e| (&e["ts_ns"], &e["alpn"], &e["len"], &e["coverage"]))
            .collect::<Vec<_>>()
    );
    // The warm-up's connections go through the same stack: seen, or (when they began while the
    // binary was being analysed) reported as such, never passed off as another stack's.
    for hello in captured
        .of_kind("tls_hello")
        .filter(|e| e["pid"] != run.pid)
    {
        assert!(
            hello["coverage"]["method"] == method
                || hello["coverage"]["why"] == "probes_attached_late",
            "{hello:#}"
        );
        eprintln!("warm-up ClientHello: {}", hello["coverage"]);
    }
    let egress_streams = captured.tls_streams(u64::from(run.pid), "egress");
    let ingress_streams: Vec<Vec<u8>> = captured
        .tls_streams(u64::from(run.pid), "ingress")
        .iter()
        .map(|s| dechunk_all(s))
        .collect();
    let egress: Vec<u8> = egress_streams.concat();
    let requests = (1..)
        .take_while(|n| run.dump.join(format!("request-{n}.body")).exists())
        .count();
    assert_eq!(
        requests,
        WARM_UP_REQUESTS + 2,
        "a tool call round and the answer, after the warm-up's"
    );
    let first = std::fs::read(
        run.dump
            .join(format!("request-{}.body", WARM_UP_REQUESTS + 1)),
    )
    .unwrap();
    assert!(first.len() > 512 * 1024, "{}", first.len());
    // Redaction masks values of fields named like session ids: 0.171.0 sends its 36-byte
    // session id twice per request (in the body and in its client metadata), 0.101.0 once.
    assert_bodies_captured(
        &format!("Codex {version}"),
        &run.dump,
        WARM_UP_REQUESTS + 1..=requests,
        &egress_streams,
        &ingress_streams,
        2 * 36,
    );
    assert!(
        egress_streams
            .iter()
            .any(|s| s.starts_with(b"POST /v1/responses")),
        "no connection starts with a Responses call"
    );

    // The API key appears nowhere: not in the events, the payloads, or the graph.
    assert!(!raw_output.contains(API_KEY), "API key leaked");
    assert!(
        !contains(&egress, API_KEY.as_bytes()),
        "API key in captured payload"
    );
    assert!(!contains(&egress, &API_KEY.as_bytes()[..40]));

    // The agent, with its model and both calls.
    let agents = graph["agents"].as_array().unwrap();
    let agent = agents
        .iter()
        .find(|a| {
            a["pids"]
                .as_array()
                .is_some_and(|p| p.contains(&serde_json::json!(run.pid)))
        })
        .unwrap_or_else(|| panic!("Codex {version} is not an agent: {:#}", graph["agents"]));
    // The warm-up run is the same agent; its calls count when they were captured (its first
    // connection can start before the probes are attached, see `paused_codex`).
    let warm_up_seen = (1..=WARM_UP_REQUESTS)
        .filter(|n| {
            let request = std::fs::read(run.dump.join(format!("request-{n}.body"))).unwrap();
            captured
                .streams()
                .into_iter()
                .filter(|((p, source, dir, _), _)| {
                    *p != u64::from(run.pid) && source == "tls" && dir == "egress"
                })
                .any(|(_, stream)| verbatim_but_redacted(&stream, &request).is_some())
        })
        .count();
    assert_eq!(
        agent["llm_calls"],
        (requests - WARM_UP_REQUESTS + warm_up_seen) as u64,
        "{agent:#}"
    );
    let models: Vec<&Value> = agent["aibom"]["providers"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|m| m.as_array().unwrap())
        .collect();
    assert!(models.contains(&&serde_json::json!(MODEL)), "{agent:#}");

    // The exec_command tool call, with its id and arguments, linked to the exec and the file
    // open.
    let calls = graph["tool_calls"].as_array().unwrap();
    let exec = calls
        .iter()
        .find(|c| c["gen_ai.tool.name"] == "exec_command" && c["pid"] == run.pid)
        .unwrap_or_else(|| panic!("no exec_command tool call: {calls:#?}"));
    assert_eq!(exec["gen_ai.tool.call.id"], "call_1");
    assert_eq!(
        exec["gen_ai.tool.call.arguments"]["cmd"],
        format!("cat {}", run.secret_path.display())
    );
    let links = exec["links"].as_array().unwrap();
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

    // `coverage`, replayed from the recording: seen, through the located stack (0.101.0's
    // ClientHellos were written inside the located OpenSSL handshake, though rustls is linked
    // in too; 0.171.0's were not, and its rustls is probed).
    let row = replayed_coverage(dir.path(), run.pid);
    assert_eq!(row["coverage"]["plaintext"], "seen", "{row:#}");
    assert_eq!(row["coverage"]["method"], method, "{row:#}");
    assert_eq!(row["plaintext_seen"], true, "{row:#}");
    // rustls (through tokio) writes its records with writev and reads them with recvfrom: the
    // ciphertext is never passed off as plain socket data.
    let tls_fds: Vec<&Value> = hellos.iter().map(|h| &h["fd"]).collect();
    assert!(
        !captured
            .of_kind("data")
            .any(|e| e["pid"] == run.pid && e["source"] == "socket" && tls_fds.contains(&&e["fd"])),
        "ciphertext captured as socket data"
    );
    captured
}

/// The coverage row of `pid`, from `agentscope coverage -o json --replay` on the recording.
fn replayed_coverage(dir: &Path, pid: u32) -> Value {
    let report = Command::new(BIN)
        .args(["coverage", "-o", "json", "--replay"])
        .arg(dir.join("run.cap"))
        .output()
        .unwrap();
    assert!(report.status.success(), "coverage --replay failed");
    assert!(!contains(&report.stdout, API_KEY.as_bytes()));
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["pid"] == pid)
        .unwrap_or_else(|| panic!("no coverage row for Codex: {report:#}"))
        .clone()
}

/// The same locator and probes on another build of OpenSSL 3: a stripped static C program over
/// Debian's libssl.a (OpenSSL 3.0, GCC, non-PIE; `tests/agents/openssl_static_loop.c`, the
/// loop of the probe-cost benchmark), already running when the collector starts. Its 3.0
/// `struct ssl_st` is checked by programs of its own; every call passes, and the 64-byte
/// messages come out byte for byte in both directions.
#[test]
fn a_static_openssl_3_0_program_is_seen_through_located_openssl() {
    use std::io::{BufRead as _, BufReader, Write as _};
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("openssl_static_loop");
    let built = Command::new("gcc")
        .args(["-O2", "-s", "-static", "-pthread", "-o"])
        .arg(&binary)
        .arg(agents_dir().join("openssl_static_loop.c"))
        .args(["-lssl", "-lcrypto"])
        .output()
        .expect("gcc (make setup installs it and libssl-dev)");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    // Any certificate will do: the loop's client does not verify it.
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success());
    let mut child = Command::new(&binary)
        .arg(&cert)
        .arg(&key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let collect = Collect::start(
        dir.path(),
        &["--pid", &child.id().to_string(), "--no-kubernetes"],
    );
    writeln!(stdin, "3").unwrap();
    line.clear();
    stdout.read_line(&mut line).unwrap();
    let captured = collect.stop();
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(captured.summary["kernel"]["tls_rejected"], 0);
    let libraries = captured.summary["tls_libraries"].as_array().unwrap();
    assert!(
        libraries.iter().any(
            |l| l["path"].as_str().unwrap().ends_with("openssl_static_loop")
                && l["method"] == "openssl (located)"
        ),
        "{libraries:#?}"
    );
    // Three round trips: the client writes 64 x, the server reads and echoes them. The
    // server was already waiting in its first read when the probes were attached: that call's
    // entry was not seen, so its bytes are not captured (a call in progress at attach time is
    // never half-captured); its two later reads are.
    let pid = u64::from(child.id());
    let egress = captured.tls_streams(pid, "egress");
    assert_eq!(
        egress,
        [vec![b'x'; 3 * 64], vec![b'x'; 3 * 64]],
        "client and server"
    );
    let mut ingress = captured.tls_streams(pid, "ingress");
    ingress.sort_by_key(Vec::len);
    assert_eq!(
        ingress,
        [vec![b'x'; 2 * 64], vec![b'x'; 3 * 64]],
        "server and client"
    );
}
