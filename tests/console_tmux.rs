//! End to end: the real `agentscope tui` in a terminal. Each test runs the binary in a
//! detached tmux session of a fixed size (its own tmux server), types keys with `tmux
//! send-keys` and reads the screen with `tmux capture-pane -p`, waiting for content with a
//! deadline rather than fixed sleeps.
//!
//! - a replay of recordings/injected.cap (no privileges): agents, panes, filter, help, baseline
//!   export; then at 80x24 every pane by its number key, the injected phrase in two keys and
//!   the exfiltrated rows in the POST body in three more; quit;
//! - the live console (privileged: it fails, never skips, when eBPF cannot load): a Python test
//!   agent talking to the mock LLM appears with its model and tool calls, and `r` records a
//!   capture that verifies;
//! - the live console leaves an opaque socket out in the kernel (privileged): its collector
//!   thread is told, over the console's back channel, which sockets reconstruction found no
//!   protocol in, and the recording `r` makes holds a few of the sink connection's bytes while
//!   every request sent after it is whole;
//! - the live demo (privileged): `make demo`'s two sessions of one agent side by side; from
//!   the incident to the injected phrase, then to the exfiltrated rows in the POST body, in
//!   at most five keys, only the injected session's rows marked as evidence.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::*;

const WIDTH: u16 = 160;
const HEIGHT: u16 = 45;

/// A tmux server of our own with one session running one command.
struct Tmux {
    /// The server's socket, in the test's directory (`-S`): nothing is left under
    /// `/tmp/tmux-UID` when the test's directory goes.
    socket: PathBuf,
    exit_file: PathBuf,
    stderr_file: PathBuf,
}

impl Tmux {
    /// Runs `args` (the agentscope binary's) in `cwd`, with a configuration of our own.
    fn start(dir: &Path, cwd: &Path, args: &[&str]) -> Tmux {
        Self::start_wrapped(dir, cwd, &[], args)
    }

    /// The same, the binary run by `wrapper` (e.g. `setpriv` to drop privileges).
    fn start_wrapped(dir: &Path, cwd: &Path, wrapper: &[&str], args: &[&str]) -> Tmux {
        let socket = dir.join("tmux.sock");
        let exit_file = dir.join("exit-code");
        let stderr_file = dir.join("stderr");
        let mut command = format!(
            "env XDG_CONFIG_HOME='{}' HOME='{}'",
            dir.display(),
            dir.display()
        );
        for word in wrapper.iter().chain([&BIN]) {
            command.push_str(&format!(" '{word}'"));
        }
        for arg in args {
            command.push_str(&format!(" '{arg}'"));
        }
        command.push_str(&format!(
            " 2>'{}'; echo $? >'{}'",
            stderr_file.display(),
            exit_file.display()
        ));
        let tmux = Tmux {
            socket,
            exit_file,
            stderr_file,
        };
        let output = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "console",
            "-x",
            &WIDTH.to_string(),
            "-y",
            &HEIGHT.to_string(),
            "-c",
            cwd.to_str().unwrap(),
            &command,
        ]);
        assert!(output.status.success(), "tmux: {output:?}");
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux is installed (scripts/setup.sh)")
    }

    fn screen(&self) -> String {
        let output = self.run(&["capture-pane", "-p", "-t", "console"]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Sends tmux key names (`Tab`, `Enter`, `Down`, `q`).
    fn keys(&self, keys: &[&str]) {
        for key in keys {
            let output = self.run(&["send-keys", "-t", "console", key]);
            assert!(output.status.success(), "send-keys {key}: {output:?}");
        }
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        let output = self.run(&["send-keys", "-t", "console", "-l", text]);
        assert!(output.status.success(), "send-keys -l {text}: {output:?}");
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_file).unwrap_or_default()
    }

    /// Polls the screen until `ready` holds; panics with the last screen at the deadline.
    fn wait_for(&self, what: &str, timeout: Duration, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            if let Some(code) = self.exit_code() {
                panic!(
                    "the console exited ({code}) before showing {what}; stderr: {}\n{screen}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}\nstderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_for_text(&self, text: &str) -> String {
        self.wait_for(text, Duration::from_secs(30), |screen| {
            screen.contains(text)
        })
    }

    fn exit_code(&self) -> Option<i32> {
        std::fs::read_to_string(&self.exit_file)
            .ok()
            .and_then(|code| code.trim().parse().ok())
    }

    fn wait_for_exit(&self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(code) = self.exit_code() {
                return code;
            }
            assert!(
                Instant::now() < deadline,
                "the console did not exit; screen:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        // The server leaves its socket behind.
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The last line: the status line.
fn status_line(screen: &str) -> &str {
    screen.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("")
}

/// From the injected phrase, `e` until the POST that carried the customers' rows is open
/// (its breadcrumb, then a row of its body on screen); fails past three keys, or when the
/// POST's detail does not show the row. Returns that screen.
fn walk_to_the_post(tmux: &Tmux) -> String {
    let mut presses = 0;
    loop {
        let before = tmux.screen().lines().next().unwrap_or("").to_string();
        tmux.keys(&["e"]);
        presses += 1;
        let screen = tmux.wait_for("the next evidence", Duration::from_secs(10), |s| {
            s.lines()
                .next()
                .is_some_and(|l| l.contains("› inc-1 ›") && l != before)
        });
        let breadcrumbs = screen.lines().next().unwrap_or("");
        if breadcrumbs.contains("› inc-1 › http ") {
            // The breadcrumb is drawn first: a capture can catch the frame before the detail
            // pane (a CI run under clippy's load caught the SQL row's detail still there).
            return tmux.wait_for("the POST's body", Duration::from_secs(10), |s| {
                s.contains("Ada Lovelace|ada@")
            });
        }
        assert!(
            presses < 3,
            "the exfiltrated rows are not in the POST within three keys:\n{screen}"
        );
    }
}

fn files_named(dir: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn replay_console_navigates_filters_exports_a_baseline_and_quits() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let recording = Path::new(env!("AGENTSCOPE_REPO"))
        .join("recordings/injected.cap")
        .canonicalize()
        .unwrap();
    let tmux = Tmux::start(
        dir.path(),
        &work,
        &[
            "tui",
            "--replay",
            recording.to_str().unwrap(),
            "--speed",
            "64",
        ],
    );

    // The whole recording played: the pod's agent, its tools, the status line.
    let expected = [
        "■ END",
        "namespace support",
        "Deployment/support-agent",
        "incident_agent.py",
        "query_database",
        "http_post",
        "agentscope-crm",
        "gpt-4o-mini",
        // Detection's incident: the injected instruction followed to the drop box.
        "Findings (1)",
    ];
    let screen = tmux.wait_for("the replayed agent", Duration::from_secs(30), |s| {
        expected.iter().all(|text| s.contains(text))
    });
    let status = status_line(&screen);
    assert!(status.contains("injected.cap"), "{status}");
    // Every event of the file was fed (the console rounds to thousands with one decimal).
    let info = std::process::Command::new(support::BIN)
        .args(["cap", "info", "-o", "json"])
        .arg(Path::new(env!("AGENTSCOPE_REPO")).join("recordings/injected.cap"))
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let events = info["events"].as_u64().unwrap();
    let shown = format!("{:.1}k ev", events as f64 / 1000.0);
    assert!(status.contains(&shown), "{shown} in {status}");
    assert!(status.contains("drops 0"), "{status}");

    // Down the agents tree to the agent, into its graph.
    tmux.keys(&["Down", "Down", "Down", "Enter"]);
    let screen = tmux.wait_for("the graph focused", Duration::from_secs(10), |s| {
        s.lines().any(|l| l.contains("┏ Graph"))
    });
    assert!(screen.contains("Graph · incident_agent.py"), "{screen}");

    // Tab to the timeline and filter it to the SQL tool call.
    tmux.keys(&["Tab"]);
    tmux.wait_for("the timeline focused", Duration::from_secs(10), |s| {
        s.contains("┏ Timeline")
    });
    tmux.keys(&["/"]);
    tmux.type_text("query_database");
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for("the filtered timeline", Duration::from_secs(10), |s| {
        // Filtered: the SQL tool call is listed and no connection is.
        s.lines().any(|l| l.contains("tools/call query_database"))
            && !s.lines().any(|l| l.contains(" NET "))
    });
    let timeline_rows: Vec<&str> = screen
        .lines()
        .filter(|l| l.contains("tools/call") || l.contains(" LLM ") || l.contains(" NET "))
        .collect();
    assert!(
        timeline_rows
            .iter()
            .any(|l| l.contains("tools/call query_database")),
        "{screen}"
    );
    assert!(
        !timeline_rows.iter().any(|l| l.contains(" NET ")),
        "the filter leaves connections out:\n{screen}"
    );

    // Help, and away again.
    tmux.keys(&["?"]);
    let screen = tmux.wait_for_text("baseline / without attack");
    assert!(screen.contains("record on/off (live)"), "{screen}");
    assert!(
        screen.contains("promote audit"),
        "the help lists P:\n{screen}"
    );
    tmux.keys(&["Escape"]);
    tmux.wait_for("the help closed", Duration::from_secs(10), |s| {
        !s.contains("baseline / without attack")
    });

    // The selected agent's baseline, written to the working directory: this agent was
    // attacked, so the first b asks whether to leave the attack out; x does.
    tmux.keys(&["b"]);
    tmux.wait_for_text("x: export without the attack · b: export all");
    tmux.keys(&["x"]);
    let screen = tmux.wait_for_text("(baseline without the attack");
    let baselines = files_named(&work, "baseline-incident_agent.py-", ".yaml");
    assert_eq!(baselines.len(), 1, "{screen}");
    // The whole path (the console's working directory is `work`) fits the status line.
    let name = baselines[0].file_name().unwrap().to_string_lossy();
    assert!(screen.contains(&format!("wrote ./{name}")), "{screen}");
    let baseline = std::fs::read_to_string(&baselines[0]).unwrap();
    assert!(
        baseline.contains("apiVersion: agentscope.dev/v1"),
        "{baseline}"
    );
    assert!(baseline.contains("kind: AgentBaseline"), "{baseline}");
    assert!(baseline.contains("incident_agent.py"), "{baseline}");
    assert!(baseline.contains("query_database"), "{baseline}");
    assert!(baseline.contains("support-agent"), "{baseline}");
    assert!(
        baseline.contains("# Excluded: the evidence of critical"),
        "{baseline}"
    );
    let document = &baseline[baseline.find("apiVersion:").unwrap()..];
    assert!(!document.contains("127.0.0.2"), "{document}");

    // At 80x24 graph, timeline, AI-BOM and posture share one place: the header names the
    // panes not on screen, and each pane's number key brings it up focused.
    let resized = tmux.run(&["resize-window", "-t", "console", "-x", "80", "-y", "24"]);
    assert!(resized.status.success(), "{resized:?}");
    tmux.wait_for("the 80x24 layout", Duration::from_secs(10), |s| {
        s.lines().next().is_some_and(|l| l.contains("more: "))
            && s.lines().all(|l| l.chars().count() <= 80)
    });
    for (key, title) in [
        ("1", "Agents ("),
        ("2", "Graph ·"),
        ("3", "Timeline ·"),
        ("4", "Detail"),
        ("5", "AI-BOM ·"),
        ("6", "Findings ("),
        ("7", "Posture ·"),
    ] {
        tmux.keys(&[key]);
        let focused = format!("┏ {title}");
        let screen = tmux.wait_for(&focused, Duration::from_secs(10), |s| s.contains(&focused));
        // The hint line above the status line: the focused pane's keys.
        let hints = screen.lines().rev().filter(|l| !l.trim().is_empty()).nth(1);
        assert!(
            hints.is_some_and(|l| l.contains("1-7 pane")),
            "hints for {title}:\n{screen}"
        );
    }

    // From the incident to its evidence in two keys: n selects it, e opens the row that
    // carried the injected ticket, Detail scrolled to the phrase detection matched, and the
    // breadcrumbs say where that is.
    // (The status line is too narrow at 80 columns for "evidence 1 of 6".)
    // Waits for the whole answer, breadcrumbs and Detail: tmux can show a frame drawn before
    // the console has handled both keys (one CI run captured the breadcrumbs with Detail still
    // on the agent), and a wait that ends at the first sign would assert on that frame.
    tmux.keys(&["n", "e"]);
    let screen = tmux.wait_for(
        "the incident's evidence with the injected phrase in Detail",
        Duration::from_secs(30),
        |s| s.contains("incident_agent.py › inc-1 › mcp ") && s.contains("ignore your previous"),
    );
    assert!(screen.contains('◆'), "evidence rows marked: {screen}");
    // Then the exfiltrated rows in the POST body, in at most three more.
    let screen = walk_to_the_post(&tmux);
    assert!(screen.contains("alan@example.com"), "{screen}");
    // Backspace goes back to the finding (the walk's later steps replace its first).
    tmux.keys(&["BSpace"]);
    let screen = tmux.wait_for("back to the finding", Duration::from_secs(10), |s| {
        s.lines()
            .next()
            .is_some_and(|l| l.trim_end().ends_with("inc-1") || l.contains("inc-1  "))
            && s.contains("Detail · finding")
    });
    assert!(
        !screen.lines().next().unwrap().contains("› mcp"),
        "{screen}"
    );

    tmux.keys(&["q"]);
    assert_eq!(tmux.wait_for_exit(), 0, "stderr: {}", tmux.stderr());
}

#[test]
fn live_console_shows_an_agent_and_records_what_it_does() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let llm = MockLlm::start(dir.path());
    let echo = EchoService::start(dir.path());
    let agent_args = python_agent_args(&llm, &echo);
    let agent_args: Vec<&str> = agent_args.iter().map(String::as_str).collect();
    let agent = Paused::agent(dir.path(), &python_interpreter(), &agent_args, &[]);
    let pid = agent.pid().to_string();
    let tmux = Tmux::start(
        dir.path(),
        &work,
        &["tui", "--pid", &pid, "--no-kubernetes"],
    );
    // The programs are attached once the console is up (it starts the collector first).
    let screen = tmux.wait_for_text("● LIVE");
    let status = status_line(&screen);
    assert!(status.contains(&format!("live pid {pid}")), "{status}");
    assert!(status.contains("rec off"), "{status}");

    // Recording from before the agent acts.
    tmux.keys(&["r"]);
    let screen = tmux.wait_for_text("● REC");
    assert!(
        status_line(&screen).contains("agentscope-"),
        "{}",
        status_line(&screen)
    );
    agent.release();
    let output = agent.finish();
    assert!(output.contains("\"tool_calls\""), "{output}");

    // The agent, its model and the tools the model had it call.
    let screen = tmux.wait_for(
        "the agent and its tool calls",
        Duration::from_secs(30),
        |s| {
            [
                "python",
                "gpt-4o-mini",
                "run_command",
                "read_file",
                "fetch_url",
            ]
            .iter()
            .all(|text| s.contains(text))
        },
    );
    assert!(screen.contains("Tools (3)"), "{screen}");
    assert!(
        screen.contains(" LLM "),
        "the timeline shows the model calls:\n{screen}"
    );
    let status = status_line(&screen);
    assert!(status.contains("● REC"), "{status}");
    assert!(status.contains("drops 0"), "{status}");

    // Stop recording: the file is finished and verifies.
    tmux.keys(&["r"]);
    let screen = tmux.wait_for_text("recorded ");
    assert!(status_line(&screen).contains("rec off"), "{screen}");
    let recordings = files_named(&work, "agentscope-", ".cap");
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let verify = Command::new(BIN)
        .args(["cap", "verify", recordings[0].to_str().unwrap()])
        .output()
        .unwrap();
    let verified = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{verified} {verify:?}");
    assert!(verified.contains(": ok ("), "{verified}");
    // And it replays to the same agent with the same calls.
    let graph = dir.path().join("replayed.json");
    let replay = Command::new(BIN)
        .args([
            "replay",
            recordings[0].to_str().unwrap(),
            "--graph-json",
            graph.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(replay.status.success(), "{replay:?}");
    let graph = std::fs::read_to_string(&graph).unwrap();
    for tool in ["run_command", "read_file", "fetch_url"] {
        assert!(graph.contains(&format!("\"{tool}\"")), "{tool} in {graph}");
    }

    tmux.keys(&["q"]);
    assert_eq!(tmux.wait_for_exit(), 0, "stderr: {}", tmux.stderr());
}

#[test]
fn live_console_leaves_an_opaque_socket_out_in_the_kernel() {
    require_root();
    const CHUNKS: usize = 600;
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let opaque = OpaqueSocketClient::start(dir.path(), CHUNKS);
    let agent = opaque.client;
    let pid = agent.pid().to_string();
    let tmux = Tmux::start(
        dir.path(),
        &work,
        &["tui", "--pid", &pid, "--no-kubernetes"],
    );
    tmux.wait_for_text("● LIVE");
    tmux.keys(&["r"]);
    tmux.wait_for_text("● REC");
    agent.release();
    let report: serde_json::Value = serde_json::from_str(agent.finish().trim()).unwrap();
    let sink_fd = report["sink_fd"].as_i64().unwrap();
    let sink_bytes = report["sink_bytes"].as_u64().unwrap();
    assert_eq!(sink_bytes, (CHUNKS * 8192) as u64);
    // The process's exit has reached the console, and with it every event before: the last
    // request, sent after the sink's connection closed, among them.
    tmux.wait_for("the agent's exit", Duration::from_secs(30), |s| {
        status_line(s).contains(&format!("live pid {pid} (exited)"))
    });
    tmux.keys(&["r"]);
    tmux.wait_for_text("recorded ");
    tmux.keys(&["q"]);
    assert_eq!(tmux.wait_for_exit(), 0, "stderr: {}", tmux.stderr());

    let recordings = files_named(&work, "agentscope-", ".cap");
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let replay = Command::new(BIN)
        .args(["replay", recordings[0].to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(replay.status.success(), "{replay:?}");
    let captured = Captured {
        events: String::from_utf8_lossy(&replay.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect(),
        summary: serde_json::Value::Null,
    };
    let sockets = captured.socket_egress_by_connection(pid.parse().unwrap());
    let (_, sink_id, copied, _) = sockets
        .iter()
        .find(|(fd, _, _, bytes)| *fd == sink_fd && bytes.starts_with(&[0, 1, 0, 0, 0, 0]))
        .unwrap_or_else(|| panic!("the sink connection's first chunk was recorded: {sockets:?}"));
    assert!(
        *copied < sink_bytes / 2,
        "most of the sink's {sink_bytes} bytes were left out in the kernel, {copied} copied"
    );
    // Everything after it is whole: the request on the connection that took the sink's fd.
    let reused = sockets
        .iter()
        .find(|(fd, id, _, _)| *fd == sink_fd && id != sink_id)
        .unwrap_or_else(|| panic!("no second socket on fd {sink_fd}: {sockets:?}"));
    assert!(reused.3.starts_with(b"POST /after HTTP/1.1\r\n"));
    assert!(
        reused.3.ends_with(b"agentscope-opaque-marker-after-reuse"),
        "the whole request was recorded"
    );
}

/// The `make demo` driver (tests/agents/run_incident_demo.py): its services, then the ordinary
/// and the injected session side by side. Dropped, it is sent SIGTERM, which it handles by
/// stopping its agents and services (PostgreSQL, the APIs, the mock LLMs); a SIGKILL would
/// orphan them.
struct DemoDriver {
    child: std::process::Child,
    log: PathBuf,
}

impl DemoDriver {
    /// Starts the driver and waits for its services; the first round waits for
    /// [`DemoDriver::start_round`] (at most a minute).
    fn start(dir: &Path) -> DemoDriver {
        let log = dir.join("driver.log");
        let child = Command::new(mcp_python())
            .arg(agents_dir().join("run_incident_demo.py"))
            .args([
                "--seconds",
                "90",
                "--first-round-delay",
                "60",
                "--pause",
                "60",
                // The two sessions' CRM queries overlap at the shared server in every run:
                // the case where a psql could be taken for the other session's.
                "--crm-rendezvous",
                "2",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start the demo driver");
        let mut driver = DemoDriver { child, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !driver.log().contains("services up") {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("the demo driver exited ({status}): {}", driver.log());
            }
            assert!(
                Instant::now() < deadline,
                "the demo services did not start: {}",
                driver.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Ends the wait before the first round (SIGUSR1).
    fn start_round(&self) {
        // SAFETY: kill with a valid signal to our own child has no preconditions.
        let sent = unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGUSR1) };
        assert_eq!(sent, 0, "SIGUSR1 to the demo driver");
    }
}

impl Drop for DemoDriver {
    fn drop(&mut self) {
        // SAFETY: as above; the child has not been reaped, so its pid is still ours.
        unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "the demo driver {} did not stop within 30 s of SIGTERM: {}",
            self.pid(),
            self.log()
        );
    }
}

/// `make demo`, live: the console follows the demo's driver (its services, and the ordinary and
/// injected sessions side by side, one agent); once the incident is raised, `n` `e` reach the
/// injected phrase in the ticket, and at most three more `e` the POST carrying the customers'
/// rows, with no row of the ordinary session marked as evidence.
#[test]
fn live_demo_reaches_the_injected_phrase_and_the_exfiltrated_rows() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let driver = DemoDriver::start(dir.path());
    let pid = driver.pid().to_string();
    let tmux = Tmux::start(
        dir.path(),
        &work,
        &["tui", "--pid", &pid, "--no-kubernetes"],
    );
    tmux.wait_for_text("● LIVE");
    driver.start_round();
    tmux.wait_for("the incident", Duration::from_secs(60), |s| {
        s.contains("critical") && s.contains(" inc-1 ")
    });

    // n until the incident is selected: the ordinary session's query of the customers' names
    // may come first, a finding of its own (sensitive access, medium), listed before it.
    let mut keys = 0;
    loop {
        let before = tmux.screen().lines().next().unwrap_or("").to_string();
        tmux.keys(&["n"]);
        keys += 1;
        let screen = tmux.wait_for("a finding selected", Duration::from_secs(10), |s| {
            s.lines()
                .next()
                .is_some_and(|l| l != before && (l.contains(" › f-") || l.contains(" › inc-")))
        });
        if screen.lines().next().unwrap().contains(" › inc-1") {
            break;
        }
        assert!(keys < 2, "n does not reach the incident:\n{screen}");
    }
    tmux.keys(&["e"]);
    keys += 1;
    assert!(keys <= 3, "{keys} keys to the injected phrase");
    // One condition for the whole frame: tmux can show a frame the console is still writing
    // (its first lines new, the rest not yet), so the marks are waited for with the phrase.
    let screen = tmux.wait_for(
        "the injected ticket, its evidence rows marked (◆)",
        Duration::from_secs(10),
        |s| s.contains("› inc-1 › mcp ") && s.contains("ignore your previous") && s.contains('◆'),
    );
    // Every marked row is the injected session's (the column after the kind): the ordinary
    // session's rows interleave with it but are not evidence, even when the two sessions'
    // query_database calls to the one CRM server are open at once (attribution by the
    // evidence, tests/fixtures/capture/demo_overlapping_queries.cap).
    let marked_sessions: std::collections::BTreeSet<&str> = screen
        .lines()
        .flat_map(|l| l.split('◆').skip(1))
        // A timeline row: time, kind, session (the graph marks its rows too).
        .filter(|row| row.starts_with(|c: char| c.is_ascii_digit()))
        .filter_map(|row| row.split_whitespace().nth(2))
        .collect();
    assert_eq!(marked_sessions.len(), 1, "{marked_sessions:?}:\n{screen}");
    let screen = walk_to_the_post(&tmux);
    assert!(screen.contains("POST 127.0.0.2"), "{screen}");
    assert!(screen.contains("alan@example.com"), "{screen}");
    tmux.keys(&["q"]);
    assert_eq!(tmux.wait_for_exit(), 0, "stderr: {}", tmux.stderr());
    drop(tmux);
    drop(driver);
}

#[test]
fn live_console_without_privileges_says_what_to_do() {
    // Root is needed to drop it.
    require_root();
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    // The unprivileged console reads its (absent) config here.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let tmux = Tmux::start_wrapped(
        dir.path(),
        dir.path(),
        &[
            "setpriv",
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--inh-caps=-all",
        ],
        &["tui", "--no-kubernetes"],
    );
    assert_eq!(tmux.wait_for_exit(), 1);
    let stderr = tmux.stderr();
    assert!(stderr.contains("needs root"), "{stderr}");
    assert!(stderr.contains("--replay FILE.cap"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
