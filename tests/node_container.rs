//! agentscope as a node container, the way the DaemonSet in deploy/ runs it: the image `make
//! image` builds (here from the debug binary, through the same script), with exactly the
//! capabilities, host PID namespace and host mounts the rendered DaemonSet asks for (read from
//! `kubectl kustomize deploy/`, not repeated here), in a cgroup namespace of its own
//! (Kubernetes' default with cgroup v2). A Python agent runs in a podman container of its own.
//! The containerised collector must see the agent exactly as a collector on the host does: its
//! container identity (runtime, id and the host's cgroup path), its model, tool calls and exec,
//! with no probe failing to attach, and answer the DaemonSet's readiness and liveness probes.
//! A second collector beside it runs as `kubectl debug node --profile=sysadmin` would
//! (privileged, host PID and network, the host's / at /host, its own cgroup namespace) and
//! must see the same. The rendered manifests also validate against the Kubernetes schemas,
//! offline.
//!
//! Privileged end-to-end test (run as root; `make test-e2e`); needs podman and
//! kubernetes-validate (`make setup`).

use crate::support;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize as _;
use serde_json::Value;
use support::podman::{host_programs_image, podman, podman_output, Container, RUN_LIMITS};
use support::*;

/// `kubectl kustomize deploy/`, as documents.
fn rendered_manifests() -> (String, Vec<Value>) {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(Path::new(env!("AGENTSCOPE_REPO")).join("deploy"))
        .output()
        .expect("kubectl on the PATH");
    assert!(
        output.status.success(),
        "kubectl kustomize deploy/: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let documents = serde_norway::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).unwrap())
        .collect();
    (text, documents)
}

fn daemonset(documents: &[Value]) -> &Value {
    documents
        .iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("deploy/ renders a DaemonSet")
}

/// The rendered manifests are valid Kubernetes objects (kubernetes-validate, strict: unknown
/// fields are errors), and the DaemonSet asks for what the collector needs.
#[test]
fn the_manifests_validate_offline() {
    let dir = tempfile::tempdir().unwrap();
    let (text, documents) = rendered_manifests();
    let rendered = dir.path().join("rendered.yaml");
    std::fs::write(&rendered, &text).unwrap();
    // The test venv (scripts/setup.sh) holds it.
    let validator = Path::new(&mcp_python()).with_file_name("kubernetes-validate");
    let output = Command::new(&validator)
        .args(["--strict", "--kubernetes-version", "1.34.0"])
        .arg(&rendered)
        .output()
        .unwrap_or_else(|e| panic!("{} (make setup): {e}", validator.display()));
    let report = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}");
    let kinds: Vec<&str> = documents
        .iter()
        .filter_map(|d| d["kind"].as_str())
        .collect();
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "DaemonSet",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing: {kinds:?}");
        assert_eq!(
            report
                .matches(&format!("passed for resource {}/", kind.to_lowercase()))
                .count(),
            1,
            "{report}"
        );
    }
    // The CustomResourceDefinitions of deploy/crds/ (generated from the kube-rs types; the
    // analysis crate's tests check they are current) validate as apiextensions.k8s.io/v1.
    for crd in ["agentbaselines", "agentobservations"] {
        assert!(
            report.contains(&format!(
                "passed for resource customresourcedefinition/{crd}.agentscope.dev"
            )),
            "{report}"
        );
    }
    assert!(documents
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .all(|d| d["apiVersion"] == "apiextensions.k8s.io/v1"));
    let pod = &daemonset(&documents)["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true);
    let env = &pod["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "NODE_NAME"
                && e["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"),
        "NODE_NAME from the downward API: {env:#}"
    );
    // Where OTLP export goes: the standard variable the collector reads when no
    // --otlp-endpoint is given (empty: off, so the manifest works as it is).
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "OTEL_EXPORTER_OTLP_ENDPOINT" && e["value"] == ""),
        "OTEL_EXPORTER_OTLP_ENDPOINT, empty by default: {env:#}"
    );
}

/// The DaemonSet's health endpoint and probes.
struct HealthProbes {
    /// The `--health-address=…` argument the DaemonSet passes.
    health_arg: String,
    port: u16,
    readiness_path: String,
    liveness_path: String,
}

impl HealthProbes {
    fn of(container: &Value) -> HealthProbes {
        let health_arg = container["args"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .find(|a| a.starts_with("--health-address="))
            .expect("the DaemonSet passes --health-address")
            .to_string();
        let port_of = |probe: &str| {
            let named = &container[probe]["httpGet"]["port"];
            let port = container["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == *named)
                .unwrap_or_else(|| panic!("{probe} names port {named}, which is not declared"));
            port["containerPort"].as_u64().unwrap() as u16
        };
        let port = port_of("readinessProbe");
        assert_eq!(port_of("livenessProbe"), port);
        assert_eq!(port_of("startupProbe"), port);
        assert!(
            health_arg.ends_with(&format!(":{port}")),
            "{health_arg} does not listen on the probes' port {port}"
        );
        HealthProbes {
            health_arg,
            port,
            readiness_path: container["readinessProbe"]["httpGet"]["path"]
                .as_str()
                .unwrap()
                .to_string(),
            liveness_path: container["livenessProbe"]["httpGet"]["path"]
                .as_str()
                .unwrap()
                .to_string(),
        }
    }

    /// An HTTP GET as the kubelet makes it: status and body.
    fn get(&self, path: &str) -> (u16, String) {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("connect to the health port {}: {e}", self.port));
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
        let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (status, body)
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, body) = self.get(&self.readiness_path);
            if status == 200 {
                assert_eq!(body, "ok\n");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} stayed {status}: {body}",
                self.readiness_path
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn a_containerised_collector_sees_an_agent_in_another_container() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // The image of this build: scripts/build-image.sh with the debug binary the tests run.
    let build = Command::new("bash")
        .arg(Path::new(env!("AGENTSCOPE_REPO")).join("scripts/build-image.sh"))
        .args(["debug", "localhost/agentscope:e2e"])
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "scripts/build-image.sh: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    let base = host_programs_image(
        dir,
        "localhost/agentscope-test-agent-base:e2e",
        &["usr", "etc", "tmp", "work"],
    );
    let llm = MockLlm::start(dir);

    // The agent, in its own container, waits for a start file so the collector is attached
    // first.
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::copy(&llm.cert, work.join("cert.pem")).unwrap();
    let agent_id = podman_output(
        &[
            &["run", "--detach"][..],
            &RUN_LIMITS,
            &[
                "--network=host",
                "-v",
                "/usr:/usr:ro",
                "-v",
                "/etc:/etc:ro",
                "-v",
                &format!("{}:/agents:ro", agents_dir().display()),
                "-v",
                &format!("{}:/work", work.display()),
                &base,
                "/usr/bin/python3",
                "/agents/python_agent.py",
                "--host",
                "localhost",
                "--port",
                &llm.port.to_string(),
                "--ca",
                "/work/cert.pem",
                "--read-path",
                "/etc/os-release",
                "--wait-before-start-file",
                "/work/start",
            ],
        ]
        .concat(),
    );
    let agent = Container(agent_id.clone());
    let agent_pid = podman_output(&["inspect", "--format", "{{.State.Pid}}", &agent.0]);

    // The collector's container as deploy/'s DaemonSet runs it: its capabilities (all others
    // dropped), the host PID namespace, its host mounts, a read-only root and a private
    // cgroup namespace. The directories it creates on the host (the served socket's, the
    // recordings') are left out: the collector writes its graph into a directory bound at
    // the same path instead.
    let (_, documents) = rendered_manifests();
    let pod = &daemonset(&documents)["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(pod["hostPID"], true);
    let collector_name = format!("agentscope-e2e-{}", std::process::id());
    let graph = dir.join("graph.json");
    let mut run = podman();
    run.args(["run", "--rm", "--name", &collector_name])
        .args(RUN_LIMITS)
        .args(["--pid=host", "--cgroupns=private", "--cap-drop=all"]);
    let security = &container["securityContext"];
    assert_eq!(security["privileged"], false);
    for capability in security["capabilities"]["add"].as_array().unwrap() {
        run.arg(format!("--cap-add={}", capability.as_str().unwrap()));
    }
    if security["readOnlyRootFilesystem"] == true {
        run.arg("--read-only");
    }
    for mount in container["volumeMounts"].as_array().unwrap() {
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        let target = mount["mountPath"].as_str().unwrap();
        if volume["emptyDir"].is_object() {
            run.arg("--tmpfs").arg(target);
            continue;
        }
        let host = &volume["hostPath"];
        if host["type"] == "DirectoryOrCreate" {
            continue;
        }
        let read_only = if mount["readOnly"] == true { ":ro" } else { "" };
        run.arg("-v").arg(format!(
            "{}:{target}{read_only}",
            host["path"].as_str().unwrap()
        ));
    }
    // The probes, as the DaemonSet declares them: the collector listens where its
    // `--health-address` says, on the port the probes name.
    let probes = HealthProbes::of(container);
    run.arg("--network=host")
        .arg("-v")
        .arg(format!("{0}:{0}", dir.display()))
        .arg("localhost/agentscope:e2e")
        .args(["collect", "--ready-message", "--quiet", "--no-kubernetes"])
        .arg(&probes.health_arg)
        .args(["--pid", &agent_pid, "--graph-json", graph.to_str().unwrap()]);
    let collector = RunningCollector::start(run, collector_name);

    // Beside it, the collector as `kubectl debug node/NODE --profile=sysadmin` runs it: a
    // privileged container in the host's PID and network namespaces with the host's / at
    // /host, and (as any pod on cgroup v2) a cgroup namespace of its own.
    let debug_graph = dir.join("debug-graph.json");
    let debug_name = format!("agentscope-e2e-debug-{}", std::process::id());
    let mut debug_run = podman();
    debug_run
        .args(["run", "--rm", "--name", &debug_name])
        .args(RUN_LIMITS)
        .args([
            "--privileged",
            "--pid=host",
            "--network=host",
            "--cgroupns=private",
        ])
        .args(["-v", "/:/host"])
        .arg("-v")
        .arg(format!("{0}:{0}", dir.display()))
        .arg("localhost/agentscope:e2e")
        .args(["collect", "--ready-message", "--quiet", "--no-kubernetes"])
        .args([
            "--pid",
            &agent_pid,
            "--graph-json",
            debug_graph.to_str().unwrap(),
        ]);
    let debug_collector = RunningCollector::start(debug_run, debug_name);

    // Collecting: the kubelet's probes would now find it ready and alive.
    probes.wait_until_ready();
    assert_eq!(probes.get(&probes.liveness_path).0, 200, "livez");

    std::fs::write(work.join("start"), "").unwrap();
    let exit_code = podman_output(&["wait", &agent.0]);
    let agent_output = podman_output(&["logs", &agent.0]);
    assert_eq!(exit_code, "0", "the agent failed: {agent_output}");
    let stderr_text = collector.stop();
    assert!(
        !stderr_text.contains("failed"),
        "with the DaemonSet's capabilities and mounts something failed:\n{stderr_text}"
    );
    let debug_stderr = debug_collector.stop();
    assert!(
        !debug_stderr.contains("failed"),
        "in the kubectl debug container something failed:\n{debug_stderr}"
    );
    check_graph(&graph, &agent_id);
    // The debug container sees the agent exactly as the DaemonSet's does.
    check_graph(&debug_graph, &agent_id);
}

/// A containerised collector started with `run`, past its "collecting" line, its stderr
/// echoed and kept.
struct RunningCollector {
    child: std::process::Child,
    container: Container,
    rest: std::thread::JoinHandle<String>,
}

impl RunningCollector {
    fn start(mut run: Command, name: String) -> RunningCollector {
        let mut child = run
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let container = Container(name);
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let ready_by = Instant::now() + Duration::from_secs(60);
        loop {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "the containerised collector {} ended before collecting",
                container.0
            );
            eprint!("{}: {line}", container.0);
            if line.contains("collecting") {
                break;
            }
            assert!(Instant::now() < ready_by, "the collector did not start");
        }
        let prefix = container.0.clone();
        let rest = std::thread::spawn(move || {
            let mut text = String::new();
            let mut line = String::new();
            while stderr.read_line(&mut line).unwrap_or(0) > 0 {
                eprint!("{prefix}: {line}");
                text.push_str(&line);
                line.clear();
            }
            text
        });
        RunningCollector {
            child,
            container,
            rest,
        }
    }

    /// SIGTERM, as the kubelet stops a pod; what the collector said after "collecting".
    fn stop(mut self) -> String {
        podman_output(&["kill", "--signal", "TERM", &self.container.0]);
        let status = self.child.wait().unwrap();
        let text = self.rest.join().unwrap();
        assert!(status.success(), "{}: {status}\n{text}", self.container.0);
        text
    }
}

/// The graph a containerised collector wrote: the agent with its container identity (the
/// host's cgroup path), its model calls, tool calls, exec and file read.
fn check_graph(graph: &Path, agent_id: &str) {
    let graph: Value = serde_json::from_str(
        &std::fs::read_to_string(graph).expect("the collector wrote no graph"),
    )
    .unwrap();
    let agents = graph["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1, "{agents:#?}");
    let found = &agents[0];
    let identity = &found["identity"];
    assert_eq!(identity["container_id"], agent_id, "{identity:#}");
    assert_eq!(
        identity["details"]["container"]["runtime"], "podman",
        "{identity:#}"
    );
    // The host's path, although the collector's own cgroup namespace hides the host's tree.
    assert_eq!(
        identity["details"]["cgroup_path"],
        format!("/libpod_parent/libpod-{agent_id}").as_str(),
        "{identity:#}"
    );
    assert_eq!(
        found["key"],
        format!("container:{agent_id}:python python_agent.py").as_str()
    );
    assert!(found["llm_calls"].as_u64().unwrap() >= 2, "{found:#}");
    let tools: Vec<&str> = graph["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|call| call["gen_ai.tool.name"].as_str())
        .collect();
    for tool in ["run_command", "read_file", "fetch_url"] {
        assert!(tools.contains(&tool), "{tool} missing from {tools:?}");
    }
    let edges = graph["graph"]["edges"].as_array().unwrap();
    assert!(
        edges.iter().any(
            |e| e["kind"] == "executes" && e["to"].as_str().is_some_and(|t| t.contains("echo"))
        ),
        "the tool's exec of echo is missing: {edges:#?}"
    );
    assert!(
        edges
            .iter()
            .any(|e| e["kind"] == "accesses" && e["to"] == "data:file:/etc/os-release"),
        "the file read is missing"
    );
}
