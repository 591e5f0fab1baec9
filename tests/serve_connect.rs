//! End to end, privileged: `agentscope collect --serve SOCKET` next to a real agent run, and
//! consoles attaching with `agentscope tui --connect SOCKET` (headless, through the same
//! remote source the console uses). The socket is 0660; an attached console sees the agent,
//! its LLM calls and tool calls as the collector does; users outside the socket's group are
//! kept out by the file mode, and by the collector's peer check when the mode is bypassed. A
//! recording made while serving replays to the same model.

use crate::support;

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// `agentscope tui --connect` as user nobody (65534, no groups), with extra setpriv options.
fn connect_as_nobody(socket: &Path, graph: &Path, setpriv_extra: &[&str]) -> (bool, String) {
    let output = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .args(setpriv_extra)
        // Nobody's own home: root's config directory is not readable for it.
        .env("HOME", "/nonexistent")
        .env_remove("XDG_CONFIG_HOME")
        .arg(BIN)
        .args(["tui", "--connect"])
        .arg(socket)
        .arg("--headless-graph")
        .arg(graph)
        .args(["--duration", "1"])
        .output()
        .expect("run setpriv (util-linux)");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_console_attached_to_a_serving_collector_sees_the_agent_and_strangers_are_refused() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    // Other users may reach the socket's directory: the socket's own mode is what keeps them
    // out.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let llm = MockLlm::start(dir.path());
    let echo = EchoService::start(dir.path());
    let script = agents_dir().join("python_agent.py");
    let agent = Paused::agent(
        dir.path(),
        "python3",
        &[
            script.to_str().unwrap(),
            "--port",
            &llm.port.to_string(),
            "--ca",
            llm.cert.to_str().unwrap(),
            "--read-path",
            "/etc/os-release",
            "--service-port",
            &echo.port.to_string(),
        ],
        &[],
    );
    let socket = dir.path().join("agentscope.sock");
    let collector_graph = dir.path().join("collector-graph.json");
    let recording = dir.path().join("served.cap");
    let collect = Collect::start(
        dir.path(),
        &[
            "--pid",
            &agent.pid().to_string(),
            "--no-kubernetes",
            "--quiet",
            "--serve",
            socket.to_str().unwrap(),
            "--graph-json",
            collector_graph.to_str().unwrap(),
            // Recording alongside: identity answers go to both the stream and the file.
            "--record",
            recording.to_str().unwrap(),
        ],
    );

    // The socket: 0660, root's, group of its directory.
    let meta = std::fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.uid(), 0);
    assert_eq!(meta.gid(), std::fs::metadata(dir.path()).unwrap().gid());

    // A user outside the group cannot connect, and is told what to do about it.
    let (ok, stderr) = connect_as_nobody(&socket, &dir.path().join("nobody.json"), &[]);
    assert!(!ok);
    assert!(stderr.contains("permission denied"), "{stderr}");
    // The socket took its directory's group, root: joining root is not the advice.
    assert!(!stderr.contains("usermod -aG root"), "{stderr}");
    assert!(stderr.contains("--serve-group GROUP"), "{stderr}");
    // One that gets past the file mode (CAP_DAC_OVERRIDE) is refused by the peer check.
    let (ok, stderr) = connect_as_nobody(
        &socket,
        &dir.path().join("nobody.json"),
        &[
            "--inh-caps",
            "+dac_override",
            "--ambient-caps",
            "+dac_override",
        ],
    );
    assert!(!ok);
    assert!(
        stderr.contains("refused this console: uid 65534"),
        "{stderr}"
    );

    // A console attaches (headless, the console's remote source) before the agent starts.
    let remote_graph = dir.path().join("remote-graph.json");
    let mut console = Background(
        Command::new(BIN)
            .args(["tui", "--connect"])
            .arg(&socket)
            .arg("--headless-graph")
            .arg(&remote_graph)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = console.0.stderr.take().unwrap();
    let (attached_tx, attached_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("console: {line}");
            if line.contains("attached to") {
                let _ = attached_tx.send(());
            }
        }
    });
    attached_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the console attached");

    agent.release();
    let report = agent.finish();
    assert!(report.contains("\"tool_calls\""), "{report}");
    let captured = collect.stop();
    assert_eq!(captured.summary["kernel"]["dropped"], 0);
    assert!(!socket.exists(), "the collector removes its socket");

    // The collector stopping ends the console's run: it writes what it saw and says why.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = console.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the console did not notice the collector stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let mut summary = String::new();
    std::io::Read::read_to_string(&mut console.0.stdout.take().unwrap(), &mut summary).unwrap();
    let summary: Value = serde_json::from_str(summary.trim()).unwrap();
    assert_eq!(
        summary["disconnected"], "the collector stopped",
        "{summary}"
    );
    assert_eq!(summary["dropped_for_us"], 0, "{summary}");
    assert!(summary["events"].as_u64().unwrap() > 0, "{summary}");

    let read = |path: &Path| -> Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let (here, there) = (read(&collector_graph), read(&remote_graph));
    let agents = |graph: &Value| -> Vec<(String, u64, u64)> {
        graph["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["key"].as_str().unwrap().to_string(),
                    a["llm_calls"].as_u64().unwrap(),
                    a["tool_calls"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let seen = agents(&there);
    assert_eq!(
        seen,
        agents(&here),
        "the console sees the collector's agents"
    );
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (key, llm_calls, tool_calls) = &seen[0];
    assert!(key.contains("python_agent.py"), "{key}");
    assert!(*llm_calls >= 1 && *tool_calls >= 1, "{seen:?}");
    let tools = |graph: &Value| -> Vec<String> {
        graph["tool_calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(tools(&there), tools(&here));
    assert_eq!(
        there["stats"], here["stats"],
        "same LLM calls, tool calls, reconstruction"
    );
}
