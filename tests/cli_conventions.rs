//! The command-line conventions of docs/cli.md, through the real binary: every command's help,
//! shell completions and man pages generated from the same definitions, `-o json` and
//! `-o yaml` parse and agree, the documented exit statuses (0 done, 1 error, 2 usage, 3 found),
//! errors in one line with each cause once, `--version` with the build and kernel facts, and
//! event text without Rust debug notation. No privileges needed: everything runs on the
//! committed recordings and fixtures.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use support::BIN;

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn recording(name: &str) -> String {
    Path::new(env!("AGENTSCOPE_REPO"))
        .join("recordings")
        .join(name)
        .display()
        .to_string()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("AGENTSCOPE_REPO"))
        .join("tests/fixtures")
        .join(name)
}

const COMMANDS: &[&[&str]] = &[
    &["collect"],
    &["replay"],
    &["cap"],
    &["cap", "info"],
    &["cap", "verify"],
    &["cap", "slice"],
    &["baseline"],
    &["baseline", "export"],
    &["baseline", "diff"],
    &["baseline", "check"],
    &["baseline", "candidate"],
    &["baseline", "approve"],
    &["baseline", "crds"],
    &["scan"],
    &["coverage"],
    &["aibom"],
    &["posture"],
    &["tui"],
    &["completions"],
    &["man"],
];

/// Every command answers `--help` (that every argument has a description is checked on the
/// definitions themselves: the `cli_definition` unit tests of the binary), and the commands
/// with verdicts list the exit statuses.
#[test]
fn every_command_has_help() {
    for command in COMMANDS {
        let mut args = command.to_vec();
        args.push("--help");
        let output = run(&args);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        let help = stdout(&output);
        assert!(help.contains("Usage: agentscope"), "{args:?}:\n{help}");
        if matches!(command[0], "scan" | "baseline" | "cap") && command.len() == 1 {
            assert!(help.contains("Exit status:"), "{args:?}:\n{help}");
        }
    }
}

#[test]
fn completions_and_man_pages_come_from_the_definitions() {
    for shell in ["bash", "zsh", "fish"] {
        let output = run(&["completions", shell]);
        assert!(output.status.success(), "{shell}: {}", stderr(&output));
        let text = stdout(&output);
        for command in ["collect", "replay", "coverage", "baseline", "tui"] {
            assert!(text.contains(command), "{shell} completions lack {command}");
        }
    }
    // bash reads its completion script without a syntax error.
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("agentscope.bash");
    std::fs::write(&script, run(&["completions", "bash"]).stdout).unwrap();
    let check = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));

    let page = stdout(&run(&["man"]));
    assert!(page.contains(".TH agentscope 1"), "{page}");
    let pages = dir.path().join("man1");
    let output = run(&["man", "--dir", pages.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    for page in [
        "agentscope.1",
        "agentscope-collect.1",
        "agentscope-cap-slice.1",
    ] {
        let text = std::fs::read_to_string(pages.join(page)).unwrap();
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page}");
    }
}

#[test]
fn data_commands_print_the_same_document_as_json_and_yaml() {
    let cap = recording("injected.cap");
    let dir = tempfile::tempdir().unwrap();
    let baselines: Vec<String> = ["stdio-pipe-events", "http-socket-events"]
        .iter()
        .map(|name| {
            let out = dir.path().join(format!("{name}.yaml"));
            let events = fixture(&format!("mcp/{name}.jsonl"));
            let output = run(&[
                "baseline",
                "export",
                "--agent",
                "host:python",
                "--events",
                events.to_str().unwrap(),
                "-w",
                out.to_str().unwrap(),
            ]);
            assert!(output.status.success(), "{}", stderr(&output));
            out.display().to_string()
        })
        .collect();
    let commands: Vec<Vec<&str>> = vec![
        vec!["cap", "info", &cap],
        vec!["coverage", "--replay", &cap],
        vec!["aibom", "--replay", &cap],
        vec!["posture", "--replay", &cap],
        vec!["baseline", "diff", &baselines[0], &baselines[1]],
    ];
    for command in commands {
        let as_format = |format: &str| {
            let mut args = command.clone();
            args.extend(["-o", format]);
            run(&args)
        };
        let json = as_format("json");
        let yaml = as_format("yaml");
        let text = as_format("text");
        for output in [&json, &yaml, &text] {
            // `baseline diff` says "differences found" with 3, and that is not an error.
            assert!(
                matches!(output.status.code(), Some(0 | 3)),
                "{command:?}: {}",
                stderr(output)
            );
        }
        let json: Value = serde_json::from_slice(&json.stdout)
            .unwrap_or_else(|e| panic!("{command:?} -o json: {e}"));
        let yaml: Value = serde_norway::from_slice(&yaml.stdout)
            .unwrap_or_else(|e| panic!("{command:?} -o yaml: {e}"));
        assert_eq!(json, yaml, "{command:?}: the same document");
        assert!(
            serde_json::from_slice::<Value>(&text.stdout).is_err(),
            "{command:?}: text is for people"
        );
    }
}

#[test]
fn exit_statuses_follow_the_convention() {
    // 2: usage.
    let output = run(&["cap", "info", "--no-such-option"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    // 1: could not do the job, in one line, each cause once.
    let output = run(&["cap", "info", "/nonexistent/x.cap"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(
        message.starts_with("agentscope: cannot read /nonexistent/x.cap"),
        "{message}"
    );
    let cause = "No such file or directory";
    assert_eq!(message.matches(cause).count(), 1, "{message}");
    // 0 and 3: cap verify on an intact file and on a damaged copy.
    let intact = recording("ordinary.cap");
    assert_eq!(run(&["cap", "verify", &intact]).status.code(), Some(0));
    let dir = tempfile::tempdir().unwrap();
    let damaged = dir.path().join("damaged.cap");
    let mut bytes = std::fs::read(&intact).unwrap();
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 64] {
        *byte ^= 0xa5;
    }
    std::fs::write(&damaged, bytes).unwrap();
    let output = run(&["cap", "verify", damaged.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3), "{}", stdout(&output));
    assert!(stdout(&output).contains("DAMAGED"), "{}", stdout(&output));
}

#[test]
fn version_names_the_build_and_the_kernel() {
    let short = stdout(&run(&["-V"]));
    assert_eq!(short.lines().count(), 1, "{short}");
    let long = stdout(&run(&["--version"]));
    for field in [
        "commit ",
        "built ",
        "bpf object  sha256:",
        "kernel ",
        "btf ",
        "cgroup v2 ",
    ] {
        assert!(long.contains(field), "no {field:?} in:\n{long}");
    }
}

/// `replay --events` reads as words: no `Some(..)`, no enum variant names, and a header.
#[test]
fn event_text_has_a_header_and_no_debug_notation() {
    let output = run(&["replay", &recording("injected.cap"), "--events"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with("TIME (UTC)"),
        "{}",
        &text[..200.min(text.len())]
    );
    for debug in ["Some(", "None", "Egress", "Ingress", "Pipe ", "Tls ", "[\""] {
        assert!(
            !text.contains(debug),
            "debug notation {debug:?} in the event text"
        );
    }
    assert!(text.contains(" exit 0"), "exits read `exit 0`");
    // Without --events or --json, a replay prints only its summary, on stderr.
    let quiet = run(&["replay", &recording("injected.cap")]);
    assert!(quiet.stdout.is_empty());
    let info: Value = serde_json::from_slice(
        &run(&["cap", "info", &recording("injected.cap"), "-o", "json"]).stdout,
    )
    .unwrap();
    let replayed = format!("replayed {} events", info["events"]);
    assert!(
        stderr(&quiet).contains(&replayed),
        "the count is the file's ({replayed}): {}",
        stderr(&quiet)
    );
}

/// `--namespace/-n`, `--pod` and `--agent` select the agents `replay` prints and writes, by
/// the Kubernetes identity the recording holds (`injected.cap`: pod
/// `support/support-agent-6c9d7f5b8d-q7k2m`, agent `incident_agent.py`); `collect` and `tui`
/// take the same options. Short flags: `-g` (graph JSON), `-p` (pid), `-d`, `-q`.
#[test]
fn selectors_choose_the_agents_shown_and_written_by_identity() {
    let capture = recording("injected.cap");
    let dir = tempfile::tempdir().unwrap();
    let key = "k8s:support/Deployment/support-agent/agent:python incident_agent.py";
    // What each selection writes: (agents, findings, incidents, graph edges) and the summary.
    let select = |selection: &[&str]| {
        let graph = dir.path().join("graph.json");
        let mut args = vec!["replay", capture.as_str(), "-g", graph.to_str().unwrap()];
        args.extend_from_slice(selection);
        let output = run(&args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let document: Value =
            serde_json::from_str(&std::fs::read_to_string(&graph).unwrap()).unwrap();
        let count = |field: &str| document[field].as_array().unwrap().len();
        (
            (
                count("agents"),
                count("findings"),
                count("incidents"),
                document["graph"]["edges"].as_array().unwrap().len(),
            ),
            stderr(&output),
        )
    };
    let (everything, summary) = select(&[]);
    assert_eq!(everything.0, 1);
    assert!(everything.1 > 0 && everything.2 == 1 && everything.3 > 0);
    assert!(
        summary.contains("(agents 1, LLM calls 6, tool calls 5,"),
        "{summary}"
    );
    for selection in [
        &["-n", "support"][..],
        &["--namespace", "support"],
        &["--pod", "support-agent-6c9d7f5b8d-q7k2m"],
        &["--pod", "support/support-agent-6c9d7f5b8d-q7k2m"],
        &["--agent", key],
        &["--agent", "incident_agent.py"],
        &["-n", "support", "--agent", "incident_agent.py"],
    ] {
        assert_eq!(select(selection).0, everything, "{selection:?}");
    }
    for selection in [
        &["-n", "default"][..],
        &["--pod", "support-agent"],
        &["--pod", "other/support-agent-6c9d7f5b8d-q7k2m"],
        &["--agent", "other.py"],
        &["-n", "default", "--agent", "incident_agent.py"],
    ] {
        let (none, summary) = select(selection);
        assert_eq!(none, (0, 0, 0, 0), "{selection:?}");
        assert!(
            summary.contains("(agents 0, LLM calls 0, tool calls 0, findings 0, incidents 0)"),
            "{selection:?}: {summary}"
        );
    }

    // Printed events: the selected agent's processes only; none for another namespace.
    let events = |selection: &[&str]| {
        let mut args = vec!["replay", capture.as_str(), "--json"];
        args.extend_from_slice(selection);
        let output = run(&args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        stdout(&output)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    let all = events(&[]);
    let selected = events(&["-n", "support"]);
    assert!(!selected.is_empty() && selected.len() < all.len());
    assert!(events(&["-n", "default"]).is_empty());
    let pids: std::collections::BTreeSet<u64> = selected
        .iter()
        .map(|e| e["pid"].as_u64().unwrap())
        .collect();
    // The agent (python incident_agent.py) and what it ran; never the CRM server.
    let comms: std::collections::BTreeSet<&str> = selected
        .iter()
        .map(|e| e["comm"].as_str().unwrap())
        .collect();
    assert!(comms.contains("python"), "{comms:?}");
    assert!(
        pids.len() >= 2,
        "the agent and its MCP stdio server: {pids:?}"
    );

    // collect and tui take the same selectors (both need root or a terminal to run).
    for command in ["collect", "tui", "replay"] {
        let help = stdout(&run(&[command, "--help"]));
        for option in ["-n, --namespace <NS>", "--pod <NAME>", "--agent <KEY|NAME>"] {
            assert!(
                help.contains(option),
                "{command} --help lacks {option}:\n{help}"
            );
        }
    }
    let help = stdout(&run(&["collect", "--help"]));
    for option in [
        "-p, --pid <PID>",
        "-d, --duration <SECS>",
        "-g, --graph-json <FILE>",
        "-q, --quiet",
    ] {
        assert!(
            help.contains(option),
            "collect --help lacks {option}:\n{help}"
        );
    }
}

/// Every JSON line a replay writes carries the schema version and matches
/// docs/events.schema.json (the collector's own lines, summary included, are checked live in
/// tests/otlp_export.rs).
#[test]
fn json_lines_follow_their_documented_schema() {
    for name in ["injected.cap", "ordinary.cap"] {
        let output = run(&["replay", &recording(name), "--json"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let lines = support::events_schema::assert_lines_match_schema(&stdout(&output));
        assert!(lines.len() > 100, "{name}: {} lines", lines.len());
        assert!(lines.iter().all(|l| l["schema_version"] == 1));
        // Every kind the recording holds was checked against its own fields.
        let kinds: std::collections::BTreeSet<_> =
            lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
        assert!(
            kinds.contains("exec") && kinds.contains("data"),
            "{kinds:?}"
        );
    }
}
