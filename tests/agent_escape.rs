//! End to end, privileged: the agent-escape findings (docs/detection.md, "Agent escape"),
//! each primitive with its benign twin, in one agent session under one collector.
//!
//! The agent is the ops edition of the account-health assistant (tests/agents/
//! incident_agent.py, `run_shell`, `http_get`, `http_post`) driven by the scripted mock
//! model, in a mount namespace of its own with a directory of the test on /run (its "pod":
//! its own service-account token under /var/run/secrets, the runtime sockets a careless
//! deployment mounts, and, being a host directory bound into the namespace, a host path).
//! A second process in a mount namespace of its own plays another pod (its token on its
//! /run); it is also the process outside the agent's tree that the agent ptraces. The model
//! has the agent run, through `run_shell`:
//!
//! | primitive | attempt | benign twin |
//! |---|---|---|
//! | namespaces | `nsenter -t PID -m true` into the other pod; `unshare(CLONE_NEWUTS)` by ctypes | — |
//! | mount | `mount("agentscope-escape", DIR, "tmpfs")` by ctypes | `mount` (lists mounts) |
//! | root change | `chroot /proc/PID/root true` into the other pod's root; `pivot_root` by ctypes (refused) | — |
//! | ptrace | `PTRACE_SEIZE` of the other pod's process | seize of its own child |
//! | runtime socket | connect to /var/run/docker.sock, /run/containerd/containerd.sock | a long non-runtime socket path, an abstract name |
//! | token | `cat /proc/PID/root/run/secrets/…/token` of the other pod | `cat` of its own token |
//! | host path | `echo … > /run/…` (the host directory on /run) | a write under the container's root (`/tmp/…`) |
//! | Kubernetes API | `POST …/pods`, `GET …/pods/web-0/exec` | `GET …/pods` |
//! | kernel module | `insmod /tmp/….ko`, `modprobe -q …` | `modprobe -nv …` (dry run), `lsmod` |
//!
//! Then: exactly one agent-escape finding per attempt (with its labels and target), none for
//! a twin (whose activity is checked to be in the capture: the full socket paths, the own
//! child's seize, the listing `mount`), one incident whose story names the escape, and the
//! same findings from `agentscope replay` of the recording; the new events' JSON lines match
//! docs/events.schema.json.
//!
//! Kernel modules: the attempts are the programs (`insmod`, `modprobe` from Debian's kmod), seen
//! at their exec. This kernel has no module support (no /proc/modules: `init_module` and
//! `finit_module` fail with `ENOSYS` and have no tracepoints), so both attempts fail and the
//! syscall itself cannot be shown here; the collector attaches those tracepoints where they
//! exist, and the syscall rule is covered by the analysis crate's unit tests.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

const API_KEY: &str = "sk-agentscope-escape-secret-5e1d";
const OWN_TOKEN: &str = "own-pod-token-not-a-real-jwt";
const OTHER_TOKEN: &str = "other-pod-token-not-a-real-jwt";
const TOKEN_DIR: &str = "secrets/kubernetes.io/serviceaccount";
const BENIGN_SOCKET: &str =
    "/run/agentscope-benign/a-socket-path-well-past-sixteen-bytes/metrics.sock";
const BENIGN_ABSTRACT: &str = "@agentscope-benign-abstract-socket-name";

/// What one run_shell command is expected to raise.
struct Attempt {
    command: String,
    primitive: &'static str,
    /// A piece of the finding's target.
    target: String,
}

fn write_token(run_dir: &Path, token: &str) {
    let dir = run_dir.join(TOKEN_DIR);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), token).unwrap();
}

/// Another pod: a process in a mount namespace of its own with `run_dir` on /run. (Not pid 1:
/// a sandboxed test host may deny even root its namespaces and root.)
fn other_pod(run_dir: &Path) -> Background {
    let child = Command::new("/usr/bin/unshare")
        .args(["--mount", "--propagation", "private", "/bin/sh", "-c"])
        .arg("mount --rbind \"$0\" /run && exec sleep 120")
        .arg(run_dir)
        .spawn()
        .expect("start the other pod");
    let pid = child.id();
    let token = format!("/proc/{pid}/root/run/{TOKEN_DIR}/token");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&token).ok().as_deref() != Some(OTHER_TOKEN) {
        assert!(
            Instant::now() < deadline,
            "the other pod's /run never came up"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Background(child)
}

fn agentscope(args: &[&str]) -> std::process::Output {
    let output = Command::new(env!("CARGO_BIN_EXE_agentscope"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "agentscope {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn escape_findings(graph: &Value) -> Vec<Value> {
    graph["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["kind"] == "agent_escape")
        .cloned()
        .collect()
}

#[test]
fn escape_primitives_are_findings_and_their_twins_are_not() {
    require_root();
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    // AGENTSCOPE_ESCAPE_KEEP=1 keeps the run's directory (capture, graph, events) for a look.
    let _tmp = match std::env::var_os("AGENTSCOPE_ESCAPE_KEEP") {
        Some(_) => {
            eprintln!("keeping {}", dir.display());
            std::mem::forget(tmp);
            None
        }
        None => Some(tmp),
    };
    let dir = dir.as_path();
    let run_dir = dir.join("run");
    write_token(&run_dir, OWN_TOKEN);
    let other_run = dir.join("other-run");
    write_token(&other_run, OTHER_TOKEN);
    let other = other_pod(&other_run);
    let other_pid = other.0.id();

    let ready = dir.join("sockets.ready");
    let host_path = |p: &str| run_dir.join(p.trim_start_matches("/run/"));
    let sockets = [
        host_path("/run/docker.sock"),
        host_path("/run/containerd/containerd.sock"),
        host_path(BENIGN_SOCKET),
    ];
    let _listeners = Background(
        Command::new("python3")
            .arg(agents_dir().join("unix_listeners.py"))
            .args(["--ready-file", ready.to_str().unwrap()])
            .args(sockets.iter().map(|p| p.to_str().unwrap()))
            .arg(BENIGN_ABSTRACT)
            .spawn()
            .expect("start the socket listeners"),
    );
    wait_for_file(&ready, "socket listeners");
    let api = HttpApi::start(dir);
    let api_url = format!("http://127.0.0.1:{}/api/v1/namespaces/shop/pods", api.port);

    let primitives = agents_dir()
        .join("escape_primitives.py")
        .display()
        .to_string();
    let py = |args: &str| format!("python3 {primitives} {args}");
    let other_token = format!("/proc/{other_pid}/root/run/{TOKEN_DIR}/token");
    let attempts = vec![
        Attempt {
            command: format!("nsenter -t {other_pid} -m true"),
            primitive: "namespace_entry",
            target: format!("nsenter -t {other_pid} -m true"),
        },
        Attempt {
            command: py("unshare-uts"),
            primitive: "namespace_creation",
            target: "unshare(uts) = 0".into(),
        },
        Attempt {
            command: py("mount-tmpfs /run/escape-mnt"),
            primitive: "mount",
            target: "mount(agentscope-escape → /run/escape-mnt, type tmpfs) = 0".into(),
        },
        Attempt {
            command: format!("chroot /proc/{other_pid}/root true"),
            primitive: "root_change",
            target: format!("chroot /proc/{other_pid}/root true"),
        },
        Attempt {
            command: py("pivot-root /nonexistent-new /nonexistent-old"),
            primitive: "root_change",
            target: "pivot_root(/nonexistent-new, /nonexistent-old) = -ENOENT".into(),
        },
        Attempt {
            command: py(&format!("ptrace-seize {other_pid}")),
            primitive: "ptrace_outside_tree",
            target: format!("ptrace(seize pid {other_pid}) = 0"),
        },
        Attempt {
            command: py("connect-unix /var/run/docker.sock"),
            primitive: "runtime_socket",
            target: "/var/run/docker.sock".into(),
        },
        Attempt {
            command: py("connect-unix /run/containerd/containerd.sock"),
            primitive: "runtime_socket",
            target: "/run/containerd/containerd.sock".into(),
        },
        Attempt {
            command: "echo planted > /run/agentscope-host-write.txt".into(),
            primitive: "host_path_write",
            target: format!(
                "/run/agentscope-host-write.txt (host {}/agentscope-host-write.txt, mounted on /run)",
                run_dir.display()
            ),
        },
        Attempt {
            command: format!("cat {other_token}"),
            primitive: "foreign_service_account_token",
            target: other_token.clone(),
        },
        Attempt {
            command: "insmod /tmp/agentscope-escape.ko".into(),
            primitive: "kernel_module",
            target: "insmod /tmp/agentscope-escape.ko".into(),
        },
        Attempt {
            command: "modprobe -q agentscope_escape".into(),
            primitive: "kernel_module",
            target: "modprobe -q agentscope_escape".into(),
        },
    ];
    let benign_write = dir.join("agentscope-benign-write.txt");
    let twins = [
        "mount".to_string(),
        format!("echo fine > {}", benign_write.display()),
        py("ptrace-own-child"),
        py(&format!("connect-unix {BENIGN_SOCKET}")),
        py(&format!("connect-unix {BENIGN_ABSTRACT}")),
        format!("cat /var/run/{TOKEN_DIR}/token"),
        "modprobe -nv agentscope_escape".to_string(),
        "lsmod".to_string(),
    ];
    let shell = |command: &String| json!({"name": "run_shell", "arguments": {"command": command}});
    let mut first: Vec<Value> = twins.iter().map(shell).collect();
    first.extend(attempts.iter().map(|a| shell(&a.command)));
    let turns = vec![
        Value::Array(first),
        json!([
            {"name": "http_get", "arguments": {"url": api_url}},
            {"name": "http_post", "arguments": {"url": api_url,
                "body": "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"debug\"}}"}},
            {"name": "http_get", "arguments": {"url": format!("{}/web-0/exec?command=sh", api_url)}},
        ]),
    ];
    let mut script: Vec<Value> = turns
        .into_iter()
        .map(|calls| json!({"tool_calls": calls}))
        .collect();
    script.push(json!({"final_text": "Checked the node."}));
    let scenario = dir.join("scenario.json");
    std::fs::write(&scenario, json!({"turns": script}).to_string()).unwrap();
    let llm = MockLlm::start_with(dir, &["--scenario", scenario.to_str().unwrap()]);
    let crm = McpCrmServer::start(dir, None);
    let dump = dir.join("agent-dump.json");
    let (program, mut args) =
        support::scenarios::ops_agent_command(&llm, &crm.url(), &dump, Some(&run_dir));
    args.extend([
        "--question".into(),
        "Check the node for the on-call.".into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Paused::agent(
        dir,
        &program,
        &args,
        &[("AGENTSCOPE_TEST_API_KEY", API_KEY)],
    );
    let agent_pid = agent.pid().to_string();
    let graph_path = dir.join("graph.json");
    let record = dir.join("run.cap");
    let collect = Collect::start(
        dir,
        &[
            "--no-kubernetes",
            "--pid",
            &agent_pid,
            "--graph-json",
            graph_path.to_str().unwrap(),
            "--record",
            record.to_str().unwrap(),
        ],
    );
    let captured = run_session_to_end(agent, collect);
    let session = started.elapsed();

    // The twins happened, and the capture shows them whole.
    let truth: Value = serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();
    let results = truth["tool_calls"].to_string();
    assert!(results.contains("ptrace-own-child = 0"), "{results}");
    assert!(
        results.contains(OWN_TOKEN) && results.contains(OTHER_TOKEN),
        "{results}"
    );
    let connects: Vec<&str> = captured
        .of_kind("connect")
        .filter(|e| e["family"] == "unix")
        .filter_map(|e| e["addr"].as_str())
        .collect();
    for name in [
        BENIGN_SOCKET,
        BENIGN_ABSTRACT,
        "/var/run/docker.sock",
        "/run/containerd/containerd.sock",
    ] {
        assert!(
            connects.contains(&name),
            "no connect to {name}: {connects:?}"
        );
    }
    let own_child_seized = captured
        .of_kind("escape_syscall")
        .any(|e| e["syscall"] == "ptrace" && e["ret"] == 0 && e["target_pid"] != json!(other_pid));
    assert!(
        own_child_seized,
        "the own child's seize is not in the capture"
    );
    assert!(
        captured
            .of_kind("exec")
            .any(|e| e["argv"] == json!(["mount"])),
        "the listing mount did not run"
    );
    for twin in [
        json!(["modprobe", "-nv", "agentscope_escape"]),
        json!(["lsmod"]),
    ] {
        assert!(
            captured.of_kind("exec").any(|e| e["argv"] == twin),
            "{twin} did not run"
        );
    }
    assert_eq!(std::fs::read_to_string(&benign_write).unwrap(), "fine\n");
    assert_eq!(
        std::fs::read_to_string(run_dir.join("agentscope-host-write.txt")).unwrap(),
        "planted\n"
    );

    // One finding per attempt, none for a twin.
    let graph: Value =
        serde_json::from_str(&std::fs::read_to_string(&graph_path).unwrap()).unwrap();
    let found = escape_findings(&graph);
    let listing = found
        .iter()
        .map(|f| {
            format!(
                "{} {} {}",
                f["detail"]["primitive"], f["detail"]["target"], f["summary"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let api_attempts = ["create pods in shop", "get pods/exec web-0 in shop"];
    assert_eq!(
        found.len(),
        attempts.len() + api_attempts.len(),
        "agent-escape findings:\n{listing}"
    );
    for attempt in &attempts {
        assert!(
            found
                .iter()
                .any(|f| f["detail"]["primitive"] == attempt.primitive
                    && f["detail"]["target"]
                        .as_str()
                        .unwrap()
                        .contains(&attempt.target)),
            "no {} finding for {:?}:\n{listing}",
            attempt.primitive,
            attempt.command
        );
    }
    for request in api_attempts {
        assert!(
            found
                .iter()
                .any(|f| f["detail"]["primitive"] == "kubernetes_pod_control"
                    && f["detail"]["target"] == request),
            "no finding for {request}:\n{listing}"
        );
    }
    for f in &found {
        let labels = f["labels"].to_string();
        assert!(
            labels.contains("AML.T0053") && labels.contains("LLM06:2025"),
            "{f:#}"
        );
        assert_eq!(f["severity"], "high", "{f:#}");
        let target = f["detail"]["target"].as_str().unwrap();
        assert!(
            !target.contains("agentscope-benign") && !target.contains(OWN_TOKEN),
            "a twin raised {f:#}"
        );
        assert!(f["incident"].is_string(), "{f:#}");
    }

    // One incident, told as an escape.
    let incidents = graph["incidents"].as_array().unwrap();
    let escape_incidents: Vec<&Value> = incidents
        .iter()
        .filter(|i| i["story"].as_str().unwrap().contains("agent escape"))
        .collect();
    assert_eq!(escape_incidents.len(), 1, "{incidents:#?}");
    let story = escape_incidents[0]["story"].as_str().unwrap();
    assert!(
        story.contains("nsenter") && story.contains("docker.sock"),
        "{story}"
    );

    // The recording and the JSON lines replay to the same findings.
    let replayed_graph = dir.join("replayed.json");
    agentscope(&[
        "replay",
        "--quiet",
        record.to_str().unwrap(),
        "--graph-json",
        replayed_graph.to_str().unwrap(),
    ]);
    let replayed: Value =
        serde_json::from_str(&std::fs::read_to_string(&replayed_graph).unwrap()).unwrap();
    assert_eq!(escape_findings(&replayed), found, "replay of the recording");
    // The new events are in the JSON lines as docs/events.schema.json says.
    let lines: String = captured.events.iter().map(|e| format!("{e}\n")).collect();
    let checked = support::events_schema::assert_lines_match_schema(&lines);
    for kind in ["escape_syscall", "host_path_write"] {
        assert!(checked.iter().any(|e| e["kind"] == kind), "no {kind} line");
    }
    drop(other);
    eprintln!(
        "escape session took {:.1} s, with the replays {:.1} s",
        session.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
