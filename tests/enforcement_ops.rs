//! End to end, privileged: running enforcement (issue 17, docs/enforcement.md).
//!
//! 1. Pinned enforcement outlives its collector: a process tree governed by one collector is
//!    still denied after that collector is killed (SIGKILL: the crash case), a child it forks
//!    while no collector runs is governed too; a new collector adopts the pinned state (its
//!    programs replace the pinned ones: no more programs than links, and the decisions, named
//!    by the pinned baseline, reach it); after it stops cleanly the process is still denied;
//!    `agentscope enforce off` lets it through and leaves nothing in bpffs. Its files are
//!    and execs enforced the same way: its reads of the service-account token (rotated while
//!    no collector runs) and of /etc/shadow, and its exec of /bin/echo, are killed throughout,
//!    the adopting collector names the file, and after `off` they run.
//! 2. DNS names: a name the policy lists, whose address changed since the baseline was
//!    learned (tests/agents/dns_server.py answers the new one), allows the address the agent's
//!    own query returned, from the connect right after the answer; another name allows
//!    nothing. Then the disarmer: an agent blocked more often than `--disarm-after` allows in
//!    a minute is dropped back to audit (what it does next is let through and reported as
//!    "would block"), with a `disarmed` decision and a high-severity finding.
//!
//! The governed process is tests/agents/connect_session.py: one process that makes the
//! attempts the test sends it, one at a time, across collectors.

use crate::support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const EPERM: i64 = 1;
const ECONNREFUSED: i64 = 111;
const ENOENT: i64 = 2;
const KILLED: i64 = -9;
const AGENT: &str = "host:python connect_session.py";
const TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// connect_session.py, answering one attempt at a time.
struct Session {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Session {
    fn start() -> Session {
        Session::spawn(Command::new("python3").arg(agents_dir().join("connect_session.py")))
    }

    /// In a mount namespace of its own with `run_dir` on /run (what a pod sees under
    /// /var/run/secrets; bound recursively, so a token volume's own mount comes along):
    /// `unshare` and `sh` exec in place, so the session keeps the pid the collector is given.
    fn start_with_run(run_dir: &Path) -> Session {
        Session::spawn(
            Command::new("/usr/bin/unshare")
                .args(["--mount", "--propagation", "private", "/bin/sh", "-c"])
                .arg("mount --rbind \"$0\" /run && exec \"$@\"")
                .arg(run_dir)
                // Named as its exec policy learned it: its `child:` attempts run
                // `sys.executable` (a pyenv shim's python otherwise).
                .arg("/usr/bin/python3")
                .arg(agents_dir().join("connect_session.py")),
        )
    }

    fn spawn(command: &mut Command) -> Session {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start connect_session.py");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        // Its first line comes once it runs, after what `command` set up before its exec (a
        // mount namespace): a collector started later finds its files where it will use them.
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("connect_session.py did not start: {e}: {line:?}"));
        assert_eq!(ready["ready"], child.id(), "{line}");
        Session {
            child,
            stdin,
            stdout,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Makes one attempt; its errno (0: it went through).
    fn ask(&mut self, attempt: &str) -> i64 {
        writeln!(self.stdin, "{attempt}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let answer: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{attempt}: {e}: {line:?}"));
        answer["result"].as_i64().unwrap()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The name whose address changes between learning and enforcing.
const NAME: &str = "api.agentscope.test";

/// A promoted policy for connect_session.py, as learned: it reached 127.0.0.1:`port`, and
/// [`NAME`], which then resolved to 127.0.0.3; network enforced, and with `all` its exec
/// (it ran connect_probe.py with python3, for its `child:` attempts, and nothing else) and
/// files (it read no sensitive file: every one present is governed) too.
fn policy(dir: &Path, port: u16, all: bool) -> String {
    let baseline = dir.join("session.yaml");
    let executables = if all {
        format!(
            "  executables:\n    /usr/bin/python3:\n    - [python3, {}]\n",
            // As the session names it (`os.path.abspath`, no `..`).
            agents_dir()
                .canonicalize()
                .unwrap()
                .join("connect_probe.py")
                .display()
        )
    } else {
        String::new()
    };
    std::fs::write(
        &baseline,
        format!(
            "apiVersion: agentscope.dev/v1\nkind: AgentBaseline\nmetadata:\n  agent: {AGENT}\n  \
             status: complete\n  learningPeriodSeconds: 600\nspec:\n  egress:\n    addresses:\n    \
             - 127.0.0.1:{port}\n    - 127.0.0.3:{port}\n    names:\n    - {NAME}\n{executables}"
        ),
    )
    .unwrap();
    let policy = dir.join("session-enforce.yaml");
    let output = Command::new(BIN)
        .args(["baseline", "promote", baseline.to_str().unwrap()])
        .args(["--network", "enforce", "-w", policy.to_str().unwrap()])
        .args(if all {
            &["--files", "enforce", "--exec", "enforce"][..]
        } else {
            &[]
        })
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    policy.to_str().unwrap().to_string()
}

fn enforce(command: &str, pins: &PinDir) -> std::process::Output {
    let output = Command::new(BIN)
        .args(["enforce", command, "--pin-dir", pins.arg(), "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "enforce {command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn status(pins: &PinDir) -> Value {
    serde_json::from_slice(&enforce("status", pins).stdout).unwrap()
}

/// Waits (at most 10 s) until the pinned status satisfies `done`.
fn wait_for_status(pins: &PinDir, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = status(pins);
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}: {status:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// connect_session.py seeing a service-account token volume (empty until written) where a
/// pod sees it.
fn session_in_pod(dir: &Path) -> (support::token_volume::TokenVolume, Session) {
    let run_dir = dir.join("run");
    let volume = support::token_volume::TokenVolume::mount(
        &run_dir.join("secrets/kubernetes.io/serviceaccount"),
    );
    (volume, Session::start_with_run(&run_dir))
}

/// A collector enforcing `policy` on `session`'s process tree (`extra`: more arguments).
fn enforcing(dir: &Path, session: &Session, policy: &str, extra: &[&str]) -> Collect {
    let pid = session.pid().to_string();
    let scope = format!("pid:{pid}={policy}");
    let mut args = vec!["--no-kubernetes", "--pid", &pid, "--enforce", &scope];
    args.extend_from_slice(extra);
    Collect::start(dir, &args)
}

#[test]
fn pinned_enforcement_outlives_its_collector_is_adopted_and_switched_off() {
    require_root();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let allowed = closed_port();
    let policy = policy(dir, allowed, true);
    let pins = PinDir::new("restart");
    // The session sees a service-account token volume as a pod does; files are enforced,
    // so its token (and /etc/shadow) is governed.
    let (mut volume, mut session) = session_in_pod(dir);
    volume.write("token-1");
    let pid = session.pid().to_string();
    let denied = format!("tcp4:127.0.0.2:{allowed}");
    let let_through = format!("tcp4:127.0.0.1:{allowed}");
    // Each open in a child: a governed open kills its process (-9).
    let read_token = format!("child:open:{TOKEN_PATH}");
    let read_shadow = "child:open:/etc/shadow";
    // An exec the policy does not allow is killed (-9) before it runs.
    let run_echo = "exec:/bin/echo hi";

    // 1. A collector enforces.
    let first = enforcing(dir, &session, &policy, &["--pin-dir", pins.arg()]);
    assert_eq!(session.ask(&denied), EPERM);
    assert_eq!(session.ask(&let_through), ECONNREFUSED);
    assert_eq!(session.ask(&read_token), KILLED);
    assert_eq!(session.ask(run_echo), KILLED);
    let pinned = status(&pins);
    assert_eq!(pinned["owned_by_running_collector"], true, "{pinned:#}");
    let links = pinned["links"].as_array().unwrap().len();
    // Four socket-address hooks, the two that follow process trees, the two that read DNS
    // answers, the exec check, the three open exits of file enforcement.
    assert_eq!(links, 12, "{pinned:#}");
    for program in [
        "enforce_sched_process_exec",
        "enforce_sys_exit_open",
        "enforce_sys_exit_openat",
        "enforce_sys_exit_openat2",
    ] {
        assert!(
            pinned["links"]
                .as_array()
                .unwrap()
                .contains(&program.into()),
            "{pinned:#}"
        );
    }
    assert_eq!(pinned["agents"][0]["files"], "enforce", "{pinned:#}");
    assert_eq!(pinned["agents"][0]["exec"], "enforce", "{pinned:#}");
    let governed_files = pinned["agents"][0]["governed_files"].as_array().unwrap();
    for path in [TOKEN_PATH, "/etc/shadow"] {
        assert!(governed_files.contains(&path.into()), "{pinned:#}");
    }
    assert_eq!(pinned["programs_using_maps"], links, "{pinned:#}");
    assert_eq!(pinned["agents"][0]["baseline"], AGENT, "{pinned:#}");
    assert_eq!(
        pinned["agents"][0]["scope"],
        format!("pid:{pid}"),
        "{pinned:#}"
    );
    assert_eq!(pinned["agents"][0]["network"], "enforce", "{pinned:#}");

    // 2. It crashes: still denied, and a child forked now is governed as well.
    let Collect { mut child, .. } = first;
    child.kill().unwrap();
    child.wait().unwrap();
    let orphaned = wait_for_status(&pins, "the dead collector's lock", |s| {
        s["owned_by_running_collector"] == false && s["programs_using_maps"] == links
    });
    assert_eq!(orphaned["programs_using_maps"], links, "{orphaned:#}");
    assert_eq!(session.ask(&denied), EPERM);
    assert_eq!(session.ask(&format!("child:{denied}")), EPERM);
    assert_eq!(session.ask(&let_through), ECONNREFUSED);
    // Files too: the token, rotated by the kubelet while no collector runs (a new inode,
    // governed by its pinned name rule), and /etc/shadow (its pinned inode rule).
    volume.write("token-2");
    assert_eq!(session.ask(&read_token), KILLED);
    assert_eq!(session.ask(read_shadow), KILLED);
    assert_eq!(session.ask(run_echo), KILLED);

    // 3. A new collector, told nothing of the policy, adopts it: its programs replace the
    //    pinned ones (no stacking), and the decisions reach it, named.
    let second = Collect::start(
        dir,
        &["--no-kubernetes", "--pid", &pid, "--pin-dir", pins.arg()],
    );
    // The replaced programs are freed by the kernel after a grace period: wait for that; a
    // stacked set would never go.
    let adopted = wait_for_status(&pins, "one program per link", |s| {
        s["programs_using_maps"] == links
    });
    assert_eq!(adopted["owned_by_running_collector"], true, "{adopted:#}");
    assert_eq!(
        adopted["links"].as_array().unwrap().len(),
        links,
        "{adopted:#}"
    );
    assert_eq!(adopted["programs_using_maps"], links, "{adopted:#}");
    assert_eq!(session.ask(&denied), EPERM);
    assert_eq!(session.ask(&read_token), KILLED);
    assert_eq!(session.ask(run_echo), KILLED);
    let captured = second.stop();
    let blocked: Vec<&Value> = captured
        .of_kind("enforce")
        .filter(|e| e["pid"] == session.pid() && e["category"] == "network")
        .collect();
    assert_eq!(blocked.len(), 1, "{blocked:#?}");
    assert_eq!(blocked[0]["action"], "blocked");
    assert_eq!(blocked[0]["baseline"], AGENT);
    assert_eq!(blocked[0]["port"], allowed);
    // It reported the policy it adopted (what the console shows before any decision).
    let adopted_policy: Vec<&Value> = captured.of_kind("enforce_policy").collect();
    assert_eq!(adopted_policy.len(), 1, "{adopted_policy:#?}");
    assert_eq!(adopted_policy[0]["change"], "adopted");
    assert_eq!(adopted_policy[0]["scope"], format!("pid:{pid}"));
    assert_eq!(adopted_policy[0]["baseline"], AGENT);
    assert_eq!(
        (
            &adopted_policy[0]["network"],
            &adopted_policy[0]["exec"],
            &adopted_policy[0]["files"]
        ),
        (&"enforce".into(), &"enforce".into(), &"enforce".into())
    );
    // The adopting collector's open-exit program killed the reader (the session's child),
    // and named the file from the pinned rule paths.
    let opened: Vec<&Value> = captured
        .of_kind("enforce")
        .filter(|e| e["ppid"] == session.pid() && e["category"] == "files")
        .collect();
    assert_eq!(opened.len(), 1, "{opened:#?}");
    assert_eq!(opened[0]["action"], "blocked");
    assert_eq!(opened[0]["path"], TOKEN_PATH);
    assert_eq!(opened[0]["baseline"], AGENT);
    // And its exec program killed the echo (the new image is the session's child).
    let killed: Vec<&Value> = captured
        .of_kind("enforce")
        .filter(|e| e["category"] == "exec" && e["path"] == "/bin/echo")
        .filter(|e| e["ppid"] == session.pid() || e["pid"] == session.pid())
        .collect();
    assert_eq!(killed.len(), 1, "{killed:#?}");
    assert_eq!(killed[0]["action"], "blocked");

    // 4. After a clean stop, still enforced.
    assert_eq!(session.ask(&denied), EPERM);
    assert_eq!(session.ask(&read_token), KILLED);
    assert_eq!(session.ask(run_echo), KILLED);

    // 5. Switched off: let through, nothing left in bpffs.
    let output = enforce("off", &pins);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("enforcement off"),
        "{output:?}"
    );
    assert!(!pins.path.exists(), "{} is left", pins.path.display());
    // A fresh bpffs holds the kernel's own `maps.debug` and `progs.debug`; nothing else is left.
    let left: Vec<String> = std::fs::read_dir(pins.path.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".debug"))
        .collect();
    assert!(left.is_empty(), "left in the bpffs: {left:?}");
    assert_eq!(session.ask(&denied), ECONNREFUSED);
    assert_eq!(session.ask(&format!("child:{denied}")), ECONNREFUSED);
    assert_eq!(session.ask(&read_token), 0);
    assert_eq!(session.ask(read_shadow), 0);
    assert_eq!(session.ask(run_echo), 0);
    assert_eq!(status(&pins), Value::Null);
    eprintln!(
        "restart scenario took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A governed secret that appears after enforcement began is governed once the collector
/// finds it: the session's token volume is empty when enforcement begins (nothing to resolve,
/// so no rule); the kubelet then writes the token; within its refresh interval the collector
/// finds it, says so (`files_added`), and from then on a read of it is killed; a rotation
/// (a new inode under the same name) stays governed.
#[test]
fn a_secret_written_after_enforcement_began_is_governed_once_found() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let policy = policy(dir, closed_port(), true);
    let (mut volume, mut session) = session_in_pod(dir);
    let read_token = format!("child:open:{TOKEN_PATH}");
    let collector = enforcing(dir, &session, &policy, &[]);
    // Not written yet: the open fails by itself.
    assert_eq!(session.ask(&read_token), ENOENT);
    volume.write("token-1");
    let added = collector.wait_printed(
        "the token governed",
        "files_added",
        Duration::from_secs(15),
        |e| e["kind"] == "enforce_policy" && e["change"] == "files_added",
    );
    assert_eq!(
        added["files_added"],
        serde_json::json!([TOKEN_PATH]),
        "{added:#}"
    );
    assert_eq!(added["files"], "enforce", "{added:#}");
    assert_eq!(session.ask(&read_token), KILLED);
    volume.write("token-2");
    assert_eq!(session.ask(&read_token), KILLED);
    let captured = collector.stop();
    let killed: Vec<&Value> = captured
        .of_kind("enforce")
        .filter(|e| e["category"] == "files" && e["ppid"] == session.pid())
        .collect();
    assert_eq!(killed.len(), 2, "{killed:#?}");
    for decision in killed {
        assert_eq!(decision["action"], "blocked");
        assert_eq!(decision["path"], TOKEN_PATH);
    }
    // The policy events (the start, the file added) as docs/events.schema.json says.
    let policies: String = captured
        .of_kind("enforce_policy")
        .map(|e| format!("{e}\n"))
        .collect();
    let checked = support::events_schema::assert_lines_match_schema(&policies);
    let changes: Vec<&Value> = checked.iter().map(|e| &e["change"]).collect();
    assert_eq!(changes, ["started", "files_added"], "{checked:#?}");
}

/// tests/agents/dns_server.py on 127.0.0.153:53, answering `answers` (NAME=ADDRESS); stopped
/// when dropped.
struct DnsServer {
    _process: Background,
}

impl DnsServer {
    const ADDRESS: &str = "127.0.0.153";

    fn start(answers: &[&str]) -> DnsServer {
        let mut command = Command::new(mcp_python());
        command
            .arg(agents_dir().join("dns_server.py"))
            .args(["--bind", Self::ADDRESS]);
        for answer in answers {
            command.args(["--answer", answer]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("start dns_server.py");
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(ready.trim(), "ready", "dns_server.py did not start");
        DnsServer {
            _process: Background(child),
        }
    }
}

/// One collector run: DNS names first, then the disarmer (the blocks of the first part count
/// towards its limit).
#[test]
fn dns_answers_allow_their_names_and_an_agent_blocked_too_often_is_disarmed() {
    require_root();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let allowed = closed_port();
    let policy = policy(dir, allowed, false);
    let pins = PinDir::new("disarm");
    // Since the baseline was learned, the name has moved to 127.0.0.4.
    let _dns = DnsServer::start(&[
        &format!("{NAME}=127.0.0.4"),
        "other.agentscope.test=127.0.0.5",
    ]);
    let mut session = Session::start();
    let pid = session.pid().to_string();
    let denied = format!("tcp4:127.0.0.2:{allowed}");
    let graph = dir.join("graph.json");
    let collect = Collect::start(
        dir,
        &[
            "--no-kubernetes",
            "--pid",
            &pid,
            "--enforce",
            &format!("pid:{pid}={policy}"),
            "--pin-dir",
            pins.arg(),
            "--disarm-after",
            "3",
            "--graph-json",
            graph.to_str().unwrap(),
            "--resolver",
            DnsServer::ADDRESS,
        ],
    );
    // DNS: the name's new address is denied until the agent's own resolution of it returns
    // that address (the connect right after it is let through: the kernel allowed the
    // address before `recvfrom` returned), as an IPv4-mapped IPv6 address too; a name the
    // policy does not list allows nothing; the resolver itself is always reachable.
    let moved = format!("tcp4:127.0.0.4:{allowed}");
    assert_eq!(session.ask(&moved), EPERM);
    assert_eq!(
        session.ask(&format!("dns:{NAME}@{}", DnsServer::ADDRESS)),
        0
    );
    assert_eq!(session.ask(&moved), ECONNREFUSED);
    assert_eq!(
        session.ask(&format!("tcp6:::ffff:127.0.0.4:{allowed}")),
        ECONNREFUSED
    );
    assert_eq!(
        session.ask(&format!("dns:other.agentscope.test@{}", DnsServer::ADDRESS)),
        0
    );
    assert_eq!(session.ask(&format!("tcp4:127.0.0.5:{allowed}")), EPERM);
    // The disarmer: the kernel decides before the collector counts, so the fourth block is the
    // one over the limit, and is denied as well.
    for _ in 0..2 {
        assert_eq!(session.ask(&denied), EPERM);
    }
    let disarmed = wait_for_status(&pins, "the disarm", |s| {
        s["agents"][0]["network"] == "audit"
    });
    assert_eq!(disarmed["agents"][0]["baseline"], AGENT, "{disarmed:#}");
    // Audit from now on: let through, reported.
    assert_eq!(session.ask(&denied), ECONNREFUSED);
    let captured = collect.stop();
    let decisions: Vec<(String, String, Option<u64>)> = captured
        .of_kind("enforce")
        .filter(|e| e["pid"] == session.pid())
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["addr"].as_str().unwrap().to_string(),
                e["blocks_last_minute"].as_u64(),
            )
        })
        .collect();
    let decided = |action: &str, addr: &str, count: Option<u64>| {
        (action.to_string(), addr.to_string(), count)
    };
    assert_eq!(
        decisions,
        vec![
            decided("blocked", "127.0.0.4", None),
            decided("blocked", "127.0.0.5", None),
            decided("blocked", "127.0.0.2", None),
            decided("blocked", "127.0.0.2", None),
            decided("disarmed", "127.0.0.2", Some(4)),
            decided("would_block", "127.0.0.2", None),
        ]
    );
    // The policy reports: started enforced, then disarmed to audit (what the console shows).
    let reports: Vec<(String, String)> = captured
        .of_kind("enforce_policy")
        .map(|p| {
            (
                p["change"].as_str().unwrap().to_string(),
                p["network"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        reports,
        vec![
            ("started".to_string(), "enforce".to_string()),
            ("disarmed".to_string(), "audit".to_string()),
        ]
    );
    let graph: Value = serde_json::from_str(&std::fs::read_to_string(&graph).unwrap()).unwrap();
    let findings: Vec<&Value> = graph["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "enforcement" && f["severity"] == "high")
        .collect();
    assert_eq!(findings.len(), 1, "{:#}", graph["findings"]);
    assert_eq!(
        findings[0]["summary"],
        format!("disarmed: baseline {AGENT} rev 1 dropped from enforce to audit after 4 blocks in a minute"),
    );
    eprintln!(
        "DNS and disarm scenario took {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
