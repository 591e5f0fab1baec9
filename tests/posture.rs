//! `agentscope posture` end to end (issue 19): the ops edition of the account-health assistant
//! (tests/agents/incident_agent.py, a real Python agent talking TLS to the mock model) runs as
//! the support-agent pod of tests/agents/kubernetes while the collector records it; the pod's
//! service account may get/list/create pods and secrets and get ConfigMaps
//! (tests/agents/kubernetes/posture.json), and the agent only reads the ConfigMap
//! `agent-settings` from the Kubernetes API-server double (tests/support/kubernetes.rs) and
//! calls one account API on this machine's own (non-loopback) address. Its model is offered
//! `run_shell` and never calls it. No NetworkPolicy restricts the pod's egress.
//!
//! `agentscope posture --replay` over the recording, with the pod, its ServiceAccount and
//! posture.json as the cluster's objects, must list the unused pod and secret permissions,
//! generate a Role allowing exactly the one `get` (checked with the same RBAC evaluation as
//! `kubectl auth can-i`, and validated as a manifest with kubernetes-validate), flag
//! `run_shell` as excess agency, and generate a NetworkPolicy for the one destination used.
//! The collector reads the same objects from the double's API while it records (with a pod of
//! another node whose spec holds secrets): the recording carries them redacted, and
//! `posture --replay` without `--cluster` reports the same gaps from them.
//! `agentscope posture --duration`, collecting live over the same session without `--cluster`,
//! must report the same agent, request, tool, destination and unused permissions.
//! Needs root (the collector) and `make setup` (the test venv with kubernetes-validate).

use crate::support;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;

use agentscope_analysis::detect::kubernetes_request::KubernetesRequest;
use agentscope_analysis::posture::rbac::{self, ServiceAccountRef};
use agentscope_analysis::posture::ClusterState;
use serde_json::{json, Value};
use support::kubernetes::{SupportAgentCluster, SUPPORT_AGENT_NAMESPACE as NAMESPACE};
use support::*;

const API_KEY: &str = "sk-agentscope-posture-secret-3c81d2";

/// This machine's address on its default route (a UDP "connect" sends nothing): a destination
/// that is not loopback, as a pod's egress would be.
fn host_address() -> String {
    let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
    socket
        .connect("192.0.2.1:9")
        .expect("a default route (the test needs a non-loopback address)");
    let address = socket.local_addr().unwrap().ip();
    assert!(!address.is_loopback(), "{address}");
    address.to_string()
}

/// tests/agents/http_api_service.py on `bind`.
struct HttpService {
    port: u16,
    _process: Background,
}

impl HttpService {
    fn start(dir: &Path, name: &str, bind: &str) -> HttpService {
        let port_file = dir.join(format!("{name}.port"));
        let process = Background(
            Command::new("python3")
                .arg(agents_dir().join("http_api_service.py"))
                .args(["--port-file", port_file.to_str().unwrap(), "--bind", bind])
                .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
                .spawn()
                .expect("start HTTP service"),
        );
        let port = wait_for_file(&port_file, "HTTP service port")
            .parse()
            .unwrap();
        HttpService {
            port,
            _process: process,
        }
    }
}

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("AGENTSCOPE_REPO"))
        .join("tests/agents/kubernetes")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Runs the agent as the pod under the collector; returns the cluster (its API server still
/// serving), the recording and the account API's port.
/// How the session is watched: recorded by `collect --record`, or reported on live by
/// `posture --duration` (its JSON report).
enum Watch {
    Record,
    LivePosture,
}

/// What the watcher produced: the recording, or the live posture report.
enum Watched {
    Recording(PathBuf),
    Report(Value),
}

/// The agent's session, recorded.
fn record_session(dir: &Path, host: &str) -> (SupportAgentCluster, PathBuf, u16) {
    let (cluster, watched, port) = run_session(dir, host, Watch::Record);
    let Watched::Recording(record) = watched else {
        unreachable!("a recording was asked for")
    };
    (cluster, record, port)
}

/// The cluster's objects, as `kubectl get -o json` lists them.
fn cluster_list() -> Value {
    let mut objects = fixture("posture.json");
    let items = objects["items"].as_array_mut().unwrap();
    items.push(fixture("pod.json"));
    items.push(fixture("serviceaccount.json"));
    objects
}

/// The cluster's objects, as `kubectl get -o json` lists them, written to a file.
fn cluster_objects(dir: &Path) -> PathBuf {
    let objects_path = dir.join("objects.json");
    std::fs::write(&objects_path, cluster_list().to_string()).unwrap();
    objects_path
}

/// A secret in another pod's env value, and in its `last-applied-configuration` annotation:
/// the collector reads that pod with the rest, and neither may leave it.
const DECOY_SECRET: &str = "decoy-db-password-71f3a9";
const DECOY_ANNOTATED_SECRET: &str = "decoy-annotated-password-0be42c";

/// A pod of another namespace on another node, whose spec holds secrets as `kubectl apply`
/// leaves them: an env `value` and the last-applied annotation carrying the whole spec.
fn decoy_pod() -> Value {
    let mut pod = fixture("pod.json");
    pod["metadata"]["name"] = json!("billing-worker-5f7d9c-x2m4p");
    pod["metadata"]["namespace"] = json!("billing");
    pod["metadata"]["uid"] = json!("0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f");
    pod["spec"]["nodeName"] = json!("ip-10-0-3-9.eu-west-1.compute.internal");
    pod["spec"]["containers"][0]["env"] = json!([{"name": "DB_PASSWORD", "value": DECOY_SECRET}]);
    let applied = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "agent",
        "env": [{"name": "DB_PASSWORD", "value": DECOY_ANNOTATED_SECRET}]}]}});
    pod["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/last-applied-configuration": applied.to_string()});
    pod.as_object_mut().unwrap().remove("status");
    pod
}

/// The ops agent (tests/agents/incident_agent.py with its ops tools) asked `question`, paused
/// before it starts, its model a mock LLM that plays `turns`, its MCP tools from `crm_url`. The
/// mock is returned too: it must outlive the agent.
fn paused_ops_agent(
    dir: &Path,
    turns: &[Value],
    crm_url: &str,
    question: &str,
    env: &[(&str, &str)],
) -> (MockLlm, Paused) {
    let scenario = dir.join("scenario.json");
    std::fs::write(&scenario, json!({ "turns": turns }).to_string()).unwrap();
    let llm = MockLlm::start_with(dir, &["--scenario", scenario.to_str().unwrap()]);
    let dump = dir.join("agent-dump.json");
    let (program, mut args) = support::scenarios::ops_agent_command(&llm, crm_url, &dump, None);
    args.extend(["--question".into(), question.into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Paused::agent(dir, &program, &args, env);
    (llm, agent)
}

fn run_session(dir: &Path, host: &str, watch: Watch) -> (SupportAgentCluster, Watched, u16) {
    // HTTPS, as a real API server: the collector reads it through its kubeconfig's CA, and the
    // agent's own API call is read from its TLS library.
    let cluster = SupportAgentCluster::start_tls(dir);
    let api_ca = cluster.api.ca.clone().expect("an HTTPS API server");
    // The objects the collector reads from the API, as `posture --cluster` reads them from a
    // file, and a pod with secrets in its spec.
    serve_lists(&cluster, &cluster_list());
    cluster.api.add_pod(decoy_pod());
    let config_map_path = format!("/api/v1/namespaces/{NAMESPACE}/configmaps/agent-settings");
    cluster.add_object(
        &config_map_path,
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "agent-settings", "namespace": NAMESPACE, "resourceVersion": "48230"},
            "data": {"escalation_threshold": "3"}
        }),
    );
    let accounts = HttpService::start(dir, "accounts", host);
    let crm = McpCrmServer::start(dir, None);
    let turns = vec![
        // With the pod's own token, as a client in the pod sends it.
        json!({"tool_calls": [{"name": "http_get", "arguments": {
            "url": format!("{}{config_map_path}", cluster.api.url()),
            "headers": {"Authorization": format!("Bearer {}", cluster.token())}}}]}),
        json!({"tool_calls": [{"name": "http_get", "arguments": {
            "url": format!("http://{host}:{}/api/accounts/42/status", accounts.port)}}]}),
        json!({"final_text": "Account 42 is active."}),
    ];
    let (_llm, agent) = paused_ops_agent(
        dir,
        &turns,
        &crm.url(),
        "Is account 42 healthy?",
        &[
            ("AGENTSCOPE_TEST_API_KEY", API_KEY),
            ("HOSTNAME", cluster.pod_name()),
            // What the agent's HTTP client trusts (the API server's CA), as a pod trusts the
            // CA mounted with its token.
            ("SSL_CERT_FILE", api_ca.to_str().unwrap()),
        ],
    );
    cluster.cgroup.move_in(agent.pid());
    let record = dir.join("session.cap");
    let agent_pid = agent.pid().to_string();
    let crm_pid = crm.pid.to_string();
    let kubeconfig = cluster.kubeconfig.display().to_string();
    let followed = [
        "--pid",
        &agent_pid,
        "--pid",
        &crm_pid,
        "--kubeconfig",
        &kubeconfig,
        "--node-name",
        &cluster.node,
    ];
    let watched = match watch {
        Watch::Record => {
            let mut args = vec!["--quiet", "--record", record.to_str().unwrap()];
            args.extend(followed);
            let collect = Collect::start(dir, &args);
            cluster.wait_for_watch();
            run_session_to_end(agent, collect);
            Watched::Recording(record)
        }
        Watch::LivePosture => {
            let posture = LivePosture::start(&followed);
            cluster.wait_for_watch();
            agent.release();
            let output = agent.finish();
            assert!(output.contains("\"ok\": true"), "{output}");
            Watched::Report(posture.stop())
        }
    };
    assert!(
        cluster
            .api
            .requests()
            .iter()
            .any(|r| r.starts_with(&config_map_path)),
        "the agent did not read the ConfigMap"
    );
    (cluster, watched, accounts.port)
}

/// `agentscope posture --duration` collecting live: started, ready, and stopped early with
/// SIGINT (Ctrl-C), which ends the collection the way the duration's end does.
struct LivePosture {
    child: std::process::Child,
    stderr: std::thread::JoinHandle<String>,
}

impl LivePosture {
    /// Without `--cluster`: the declared side is what the collector reads from the API.
    fn start(followed: &[&str]) -> LivePosture {
        use std::io::BufRead as _;
        let mut child = Command::new(BIN)
            .args([
                "posture",
                "--duration",
                "120",
                "--ready-message",
                "-o",
                "json",
            ])
            .args(followed)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start agentscope posture");
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        assert!(line.contains("collecting"), "posture did not start: {line}");
        let stderr = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
            rest
        });
        LivePosture { child, stderr }
    }

    /// Stops the collection and returns the JSON report.
    fn stop(mut self) -> Value {
        // Let the last records reach the ring buffer reader.
        std::thread::sleep(std::time::Duration::from_millis(500));
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let mut stdout = String::new();
        std::io::Read::read_to_string(self.child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        let status = self.child.wait().unwrap();
        let stderr = self.stderr.join().unwrap();
        assert!(status.success(), "posture failed: {status}: {stderr}");
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
    }
}

/// kubernetes-validate (strict) over a manifest file: the kinds it passed.
fn validate(manifest: &Path) -> String {
    let validator = Path::new(&mcp_python()).with_file_name("kubernetes-validate");
    let output = Command::new(&validator)
        .args(["--strict", "--kubernetes-version", "1.34.0"])
        .arg(manifest)
        .output()
        .unwrap_or_else(|e| panic!("{} (make setup): {e}", validator.display()));
    let report = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}: {report}", manifest.display());
    report
}

/// `agentscope posture --replay RECORD ARGS -o json`, which must succeed: its report.
fn posture_json(record: &Path, args: &[&str]) -> Value {
    let output = Command::new(BIN)
        .args(["posture", "--replay"])
        .arg(record)
        .args(args)
        .args(["-o", "json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The report's one agent: the support-agent pod's, with its service account.
fn the_support_agent(report: &Value) -> &Value {
    assert_eq!(report["schema"], "agentscope.posture/v1");
    let agents = report["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 1, "{report:#}");
    let agent = &agents[0];
    let key = agent["agent"].as_str().unwrap();
    assert!(
        key.starts_with(&format!("k8s:{NAMESPACE}/Deployment/support-agent/agent:")),
        "{key}"
    );
    assert_eq!(agent["service_account"], "support/support-agent");
    agent
}

/// RBAC: the one request the agent made, the ConfigMap read.
fn assert_one_config_map_read(agent: &Value) {
    let requests: Vec<(&str, u64)> = agent["rbac"]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["request"].as_str().unwrap(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        requests,
        vec![("get configmaps agent-settings in support", 200)]
    );
}

/// What the support agent's service account may do and never did.
const UNUSED_PERMISSIONS: [&str; 2] = [
    "unused permission: create, get, list secrets in support",
    "unused permission: create, get, list pods in support",
];

/// The titles of the agent's RBAC gaps.
fn rbac_gaps(agent: &Value) -> Vec<&str> {
    agent["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["category"] == "rbac")
        .map(|g| g["title"].as_str().unwrap())
        .collect()
}

/// Tools: `http_get` is the only one called.
fn assert_only_http_get_called(agent: &Value) {
    let called: Vec<&str> = agent["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["calls"].as_u64().unwrap() > 0)
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(called, vec!["http_get"]);
}

/// Network: the account API is the one destination.
fn assert_one_destination(agent: &Value, host: &str, accounts_port: u16) {
    let destinations: Vec<String> = agent["network"]["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| format!("{}:{}", d["address"].as_str().unwrap(), d["port"]))
        .collect();
    assert_eq!(destinations, vec![format!("{host}:{accounts_port}")]);
}

#[test]
fn posture_of_a_pod_that_reads_one_config_map() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let host = host_address();
    let (cluster, record, accounts_port) = record_session(dir.path(), &host);
    let objects_path = cluster_objects(dir.path());

    let artifacts = dir.path().join("artifacts");
    let report = posture_json(
        &record,
        &[
            "--cluster",
            objects_path.to_str().unwrap(),
            "--write-artifacts",
            artifacts.to_str().unwrap(),
        ],
    );
    let agent = the_support_agent(&report);
    let key = agent["agent"].as_str().unwrap();

    // RBAC: the one request seen, and what it leaves unused.
    assert_one_config_map_read(agent);
    let gaps: Vec<(&str, &str, u64)> = agent["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["category"].as_str().unwrap(),
                g["title"].as_str().unwrap(),
                g["risk"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(rbac_gaps(agent), UNUSED_PERMISSIONS, "{gaps:#?}");
    assert_eq!(
        report["declared"],
        format!("--cluster {}", objects_path.display())
    );

    // The generated Role allows exactly the request seen.
    let rbac_file = std::fs::read_dir(&artifacts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".rbac.yaml"))
        .expect("an RBAC artifact");
    let report_text = validate(&rbac_file);
    assert!(
        report_text.contains("passed for resource role/support-agent-least-privilege"),
        "{report_text}"
    );
    assert!(
        report_text.contains("passed for resource rolebinding/support-agent-least-privilege"),
        "{report_text}"
    );
    let generated = ClusterState::parse(&std::fs::read_to_string(&rbac_file).unwrap()).unwrap();
    assert_eq!(generated.rbac.roles.len(), 1);
    let grants = rbac::effective_grants(
        &generated.rbac,
        &ServiceAccountRef::parse("support/support-agent").unwrap(),
    );
    let can = |method: &str, target: &str| {
        rbac::can(&grants, &KubernetesRequest::classify(method, target))
    };
    assert!(can(
        "GET",
        "/api/v1/namespaces/support/configmaps/agent-settings"
    ));
    for (method, target) in [
        ("GET", "/api/v1/namespaces/support/configmaps/other"),
        ("GET", "/api/v1/namespaces/support/configmaps"),
        ("GET", "/api/v1/namespaces/support/pods"),
        ("POST", "/api/v1/namespaces/support/pods"),
        ("GET", "/api/v1/namespaces/support/secrets/crm-database"),
        ("GET", "/api/v1/namespaces/shop/configmaps/agent-settings"),
    ] {
        assert!(
            !can(method, target),
            "the generated Role allows {method} {target}"
        );
    }

    // Tools: run_shell is offered to the model and never called.
    assert!(
        gaps.contains(&(
            "tools",
            "excess agency: tool run_shell (shell) offered, never called",
            8
        )),
        "{gaps:#?}"
    );
    assert_only_http_get_called(agent);

    // Network: no policy restricts egress; the generated one allows the account API only.
    assert!(
        gaps.iter()
            .any(|g| g.1 == "unrestricted egress" && g.2 == 7),
        "{gaps:#?}"
    );
    assert_one_destination(agent, &host, accounts_port);
    let policy = &agent["artifacts"]["network_policy"];
    assert_eq!(
        policy["spec"]["egress"],
        json!([{"to": [{"ipBlock": {"cidr": format!("{host}/32")}}],
                "ports": [{"protocol": "TCP", "port": accounts_port}]}])
    );
    assert_eq!(
        policy["spec"]["podSelector"]["matchLabels"],
        json!({"app": "support-agent"})
    );
    let policy_file = std::fs::read_dir(&artifacts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".networkpolicy.yaml"))
        .expect("a NetworkPolicy artifact");
    let report_text = validate(&policy_file);
    assert!(
        report_text.contains("passed for resource networkpolicy/support-agent-egress"),
        "{report_text}"
    );
    let enforcement = &agent["artifacts"]["enforcement"];
    assert_eq!(enforcement["network"], "audit");
    assert_eq!(
        enforcement["allow"]["network"],
        json!([{"protocol": "any", "address": host, "port": accounts_port}])
    );

    // The text report says the same for people.
    let text = Command::new(BIN)
        .args(["posture", "--replay"])
        .arg(&record)
        .arg("--cluster")
        .arg(&objects_path)
        .args(["--agent", key])
        .output()
        .unwrap();
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("unused permission: create, get, list secrets in support"),
        "{text}"
    );
    assert!(text.contains("excess agency: tool run_shell"), "{text}");

    // The same objects read from the API (`--cluster-from-api`): the double serves them as
    // the lists the API server answers (run_session had it serve them).
    let kubeconfig = cluster.kubeconfig.display().to_string();
    let from_api = posture_json(
        &record,
        &["--cluster-from-api", "--kubeconfig", &kubeconfig],
    );
    assert_eq!(from_api["agents"][0]["gaps"], agent["gaps"]);
    assert_eq!(from_api["agents"][0]["artifacts"], agent["artifacts"]);

    // The recording carries the objects the collector read from the API while recording,
    // redacted: the decoy pod's secrets never reach it.
    let replayed = Command::new(BIN)
        .args(["replay", "--json"])
        .arg(&record)
        .output()
        .unwrap();
    assert!(replayed.status.success());
    let replayed = String::from_utf8(replayed.stdout).unwrap();
    assert!(
        !replayed.contains(DECOY_SECRET),
        "an env value was recorded"
    );
    assert!(
        !replayed.contains(DECOY_ANNOTATED_SECRET) && !replayed.contains("last-applied"),
        "the last-applied annotation was recorded"
    );
    let lines = support::events_schema::assert_lines_match_schema(&replayed);
    let snapshot = lines
        .iter()
        .rev()
        .find(|line| line["kind"] == "cluster_objects")
        .expect("a cluster_objects event in the recording");
    assert_eq!(snapshot["pid"], 0);
    assert_eq!(snapshot["truncated"], false);
    assert_eq!(snapshot["node_name"], cluster.node.as_str());
    assert_eq!(snapshot["counts"]["Pod"], 2, "{:#}", snapshot["counts"]);
    for kind in ["Role", "RoleBinding", "ServiceAccount"] {
        assert!(snapshot["counts"][kind].as_u64() >= Some(1), "{kind}");
    }
    let recorded_pod = &snapshot["objects"][0];
    assert_eq!(recorded_pod["metadata"]["name"], cluster.pod_name());
    let env = &recorded_pod["spec"]["containers"][0]["env"];
    assert_eq!(
        env[0],
        json!({"name": "AWS_STS_REGIONAL_ENDPOINTS"}),
        "{env}"
    );

    // `posture --replay` without --cluster takes them from the recording: the same gaps and
    // artifacts as with the objects given by hand.
    let recorded = posture_json(&record, &[]);
    assert_declared_by_the_collector(&recorded);
    let recorded_agent = the_support_agent(&recorded);
    assert_eq!(rbac_gaps(recorded_agent), UNUSED_PERMISSIONS);
    assert_eq!(recorded_agent["gaps"], agent["gaps"]);
    assert_eq!(recorded_agent["artifacts"], agent["artifacts"]);
    // An explicit --cluster still wins (and says so).
    assert!(report["declared"]
        .as_str()
        .unwrap()
        .starts_with("--cluster "));

    // The collector's reads, like posture's, stay within deploy/clusterrole.yaml.
    assert_eq!(
        cluster.api.requests_the_deployed_role_forbids(),
        Vec::<String>::new()
    );
}

/// Serves the objects of `list` (all but pods, which the double lists itself) on the paths
/// the API server lists them at, all namespaces at once.
fn serve_lists(cluster: &SupportAgentCluster, list: &Value) {
    let kinds = [
        ("Namespace", "/api/v1/namespaces"),
        ("ServiceAccount", "/api/v1/serviceaccounts"),
        ("Role", "/apis/rbac.authorization.k8s.io/v1/roles"),
        (
            "ClusterRole",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        ),
        (
            "RoleBinding",
            "/apis/rbac.authorization.k8s.io/v1/rolebindings",
        ),
        (
            "ClusterRoleBinding",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        ),
        (
            "NetworkPolicy",
            "/apis/networking.k8s.io/v1/networkpolicies",
        ),
    ];
    for (kind, path) in kinds {
        let mut api_version = "v1".to_string();
        // List items carry no kind or apiVersion; the list does.
        let items: Vec<Value> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|item| item["kind"] == kind)
            .map(|item| {
                api_version = item["apiVersion"].as_str().unwrap().to_string();
                let mut item = item.clone();
                let object = item.as_object_mut().unwrap();
                object.remove("kind");
                object.remove("apiVersion");
                item
            })
            .collect();
        if path.starts_with("/apis/") {
            api_version = path
                .split('/')
                .skip(2)
                .take(2)
                .collect::<Vec<_>>()
                .join("/");
        }
        cluster.add_object(
            path,
            json!({
                "apiVersion": api_version, "kind": format!("{kind}List"),
                "metadata": {"resourceVersion": "48300"},
                "items": items
            }),
        );
    }
}

/// `posture --duration` reports live what the recording's replay reports: the same agent,
/// the one Kubernetes request, the one tool called and the one destination.
#[test]
fn live_posture_reports_what_the_agent_did() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let host = host_address();
    let (_cluster, watched, accounts_port) = run_session(dir.path(), &host, Watch::LivePosture);
    let Watched::Report(report) = watched else {
        unreachable!("a live report was asked for")
    };
    // No --cluster: the collector's own read of the API is the declared side.
    assert_declared_by_the_collector(&report);
    let agent = the_support_agent(&report);
    assert_one_config_map_read(agent);
    assert_only_http_get_called(agent);
    assert_one_destination(agent, &host, accounts_port);
    assert_eq!(rbac_gaps(agent), UNUSED_PERMISSIONS, "{agent:#}");
}

/// The report says the declared side is the objects the collector read from the API.
fn assert_declared_by_the_collector(report: &Value) {
    let declared = report["declared"].as_str().unwrap();
    assert!(
        declared.starts_with("the cluster objects the collector read from the Kubernetes API at "),
        "{declared}"
    );
}

/// Data: the agent lists the tables its database role can see (a catalogue query through its
/// `query_database` tool, answered by a real PostgreSQL over its wire protocol) and queries
/// one of them; the report names the tables it could reach and never queried.
#[test]
fn posture_names_the_tables_an_agent_listed_and_never_queried() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let postgres = PostgresServer::start(dir);
    let crm = McpCrmServer::start(dir, Some(postgres.port));
    let turns = vec![
        json!({"tool_calls": [{"name": "query_database", "arguments": {"sql":
            "SELECT table_schema, table_name FROM information_schema.tables \
             WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 2"}}]}),
        json!({"tool_calls": [{"name": "query_database", "arguments": {"sql":
            "SELECT plan FROM customers WHERE id = 2"}}]}),
        json!({"final_text": "Alan Turing is on the pro plan."}),
    ];
    let (_llm, agent) = paused_ops_agent(
        dir,
        &turns,
        &crm.url(),
        "Which plan is customer 2 on?",
        &[("AGENTSCOPE_TEST_API_KEY", API_KEY)],
    );
    let record = dir.join("session.cap");
    let agent_pid = agent.pid().to_string();
    let crm_pid = crm.pid.to_string();
    let collect = Collect::start(
        dir,
        &[
            "--quiet",
            "--no-kubernetes",
            "--record",
            record.to_str().unwrap(),
            "--pid",
            &agent_pid,
            "--pid",
            &crm_pid,
        ],
    );
    run_session_to_end(agent, collect);

    let report = posture_json(&record, &[]);
    let agent = report["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["listed_tables"].is_object())
        .unwrap_or_else(|| panic!("no agent listed tables: {report:#}"));
    let database = format!("postgresql 127.0.0.1:{}", postgres.port);
    assert_eq!(
        agent["listed_tables"][&database],
        json!([
            "public.customers",
            "public.invoices",
            "public.staff_credentials"
        ]),
        "{agent:#}"
    );
    let gap = agent["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| {
            g["category"] == "data" && g["title"].as_str().unwrap().starts_with("tables reachable")
        })
        .unwrap_or_else(|| panic!("no catalogue gap: {agent:#}"));
    assert_eq!(
        gap["title"],
        format!("tables reachable, never queried: 2 of 3 in {database}")
    );
    assert_eq!(
        gap["evidence"][0],
        "the agent's catalogue query listed public.invoices, public.staff_credentials"
    );
    assert_eq!(gap["labels"], json!(["LLM06"]));
}
