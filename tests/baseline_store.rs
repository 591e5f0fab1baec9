//! Baselines across nodes with Kubernetes as the store (issue 18), against the API-server
//! double of tests/support/kubernetes.rs:
//! - the double's server-side apply and watch of the custom resources, driven by kube-rs
//!   with the real AgentBaseline type (what the collector and `baseline approve` rely on);
//! - the acceptance test: the support agent's Deployment with one pod on each of two nodes,
//!   two collectors (`--node-name node-a` / `node-b`, `--baseline-store kubernetes`), each
//!   seeing a different part of the agent's work; `baseline candidate` merges both parts,
//!   `baseline approve` locks the result, both collectors load it through their watch, and
//!   then judge against it: what node A never saw itself but node B did is no finding there,
//!   what no node saw is a finding.
//!
//! Privileged (the acceptance test loads the eBPF programs and makes cgroups); run as root.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agentscope_analysis::baseline::custom_resources::{
    AgentBaselineResource, AgentBaselineSpec, BaselineMode, WorkloadContainer,
};
use agentscope_analysis::baseline::BaselineSpec;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::{json, Value};
use support::kubernetes::{
    random_hex, support_agent_fixture, write_kubeconfig_as, ApiServer, PodCgroup,
    SUPPORT_AGENT_NAMESPACE, SUPPORT_AGENT_SERVICE_ACCOUNT,
};
use support::*;

const AGENT: &str = "k8s:support/Deployment/support-agent/agent:/usr/bin/python3 agent.py";

fn baseline_resource(name: &str, mode: BaselineMode, revision: u64) -> AgentBaselineResource {
    let mut resource = AgentBaselineResource::new(
        name,
        AgentBaselineSpec {
            agent: AGENT.into(),
            workload: WorkloadContainer::from_agent_key(AGENT).unwrap(),
            mode,
            locked: true,
            revision,
            approved_by: None,
            approved_at: None,
            nodes: vec!["node-a".into()],
            baseline: BaselineSpec::default(),
        },
    );
    resource.metadata.namespace = Some("support".into());
    resource
}

fn api_status(error: kube::Error) -> kube::core::Status {
    match error {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API status, got {other:?}"),
    }
}

/// Server-side apply in the double, through kube-rs: creation (201, counted as create), field
/// ownership per manager in managedFields, conflicts without force, force, removal of fields a
/// manager stops applying, the resourceVersion precondition, no-op applies, and watch events.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn server_side_apply_in_the_double_follows_the_api() {
    let server = ApiServer::start(false).await;
    let dir = tempfile::tempdir().unwrap();
    let config = kube::config::Kubeconfig::read_from(server.write_kubeconfig(dir.path())).unwrap();
    let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let api: Api<AgentBaselineResource> = Api::namespaced(client.clone(), "support");
    let watch_all: Api<AgentBaselineResource> = Api::all(client.clone());
    use futures::StreamExt as _;
    let mut watch = kube::runtime::watcher(watch_all, Default::default()).boxed();
    // The watch lists (nothing yet) before anything is applied.
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if matches!(event, kube::runtime::watcher::Event::InitDone) {
            break;
        }
    }

    // Created by apply: the manager owns what it applied.
    let first = baseline_resource("b1", BaselineMode::Detect, 1);
    let created = api
        .patch(
            "b1",
            &PatchParams::apply("agentscope/approve"),
            &Patch::Apply(&first),
        )
        .await
        .unwrap();
    assert_eq!(created.spec, first.spec);
    let managed = created.metadata.managed_fields.clone().unwrap();
    assert_eq!(managed.len(), 1);
    assert_eq!(managed[0].manager.as_deref(), Some("agentscope/approve"));
    assert_eq!(managed[0].operation.as_deref(), Some("Apply"));
    let fields = serde_json::to_value(&managed[0].fields_v1).unwrap();
    assert!(fields["f:spec"]["f:mode"].is_object(), "{fields}");
    assert!(fields["f:spec"]["f:baseline"].is_object(), "{fields}");
    let version = created.metadata.resource_version.clone().unwrap();

    // The same configuration again changes nothing.
    let again = api
        .patch(
            "b1",
            &PatchParams::apply("agentscope/approve"),
            &Patch::Apply(&first),
        )
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version.as_deref(),
        Some(version.as_str())
    );

    // Another manager applying a field with another value: 409, one cause per field.
    let other = json!({
        "apiVersion": "agentscope.dev/v1", "kind": "AgentBaseline",
        "metadata": {"name": "b1"},
        "spec": {"mode": "learn", "locked": true}
    });
    let status = api_status(
        api.patch("b1", &PatchParams::apply("kubectl"), &Patch::Apply(&other))
            .await
            .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert!(
        status
            .message
            .contains("conflict with \"agentscope/approve\"")
            && status.message.contains(".spec.mode"),
        "{}",
        status.message
    );
    // `locked` has the same value: shared, no conflict.
    assert!(
        !status.message.contains(".spec.locked"),
        "{}",
        status.message
    );

    // Forced: kubectl takes `mode` over (and shares `locked`).
    let forced = api
        .patch(
            "b1",
            &PatchParams::apply("kubectl").force(),
            &Patch::Apply(&other),
        )
        .await
        .unwrap();
    assert_eq!(forced.spec.mode, BaselineMode::Learn);
    let owners: Vec<(String, Value)> = forced
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| {
            (
                m.manager.unwrap(),
                serde_json::to_value(m.fields_v1).unwrap(),
            )
        })
        .collect();
    let of = |manager: &str| &owners.iter().find(|(m, _)| m == manager).unwrap().1;
    assert!(of("kubectl")["f:spec"]["f:mode"].is_object());
    assert!(of("agentscope/approve")["f:spec"].get("f:mode").is_none());
    assert!(of("agentscope/approve")["f:spec"]["f:locked"].is_object());

    // kubectl stops applying `mode`: nobody owns it any more, so it goes (and takes its
    // default on read); `locked` stays, approve still owns it.
    let fewer = json!({
        "apiVersion": "agentscope.dev/v1", "kind": "AgentBaseline",
        "metadata": {"name": "b1"}, "spec": {"locked": true}
    });
    let after = api
        .patch("b1", &PatchParams::apply("kubectl"), &Patch::Apply(&fewer))
        .await
        .unwrap();
    let raw = server
        .custom_object("agentbaselines", "support", "b1")
        .unwrap();
    assert!(raw["spec"].get("mode").is_none(), "{raw:#}");
    assert_eq!(raw["spec"]["locked"], true);
    assert_eq!(after.spec.mode, BaselineMode::Detect);

    // A stale resourceVersion is refused.
    let mut stale = baseline_resource("b1", BaselineMode::Detect, 2);
    stale.metadata.resource_version = Some(version);
    let status = api_status(
        api.patch(
            "b1",
            &PatchParams::apply("agentscope/approve"),
            &Patch::Apply(&stale),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(status.code, 409);
    assert!(
        status.message.contains("has been modified"),
        "{}",
        status.message
    );

    // A name other than the URL's, and apply without a field manager, are bad requests.
    let status = api_status(
        api.patch(
            "b2",
            &PatchParams::apply("agentscope/approve"),
            &Patch::Apply(&first),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(status.code, 400, "{}", status.message);

    // The watch saw the creation and each change (not the no-op, nor what was refused).
    let mut seen = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(500), watch.next()).await
    {
        if let kube::runtime::watcher::Event::Apply(b) = event.unwrap() {
            seen.push((b.metadata.resource_version.unwrap(), b.spec.mode));
        }
    }
    let modes: Vec<BaselineMode> = seen.iter().map(|(_, mode)| *mode).collect();
    assert_eq!(
        modes,
        [
            BaselineMode::Detect,
            BaselineMode::Learn,
            BaselineMode::Detect
        ],
        "{seen:?}"
    );

    // Creating by apply is authorized as create too; the collector's role allows neither on
    // AgentBaselines (approving is a person's `baseline approve`).
    let forbidden = server.requests_the_deployed_role_forbids();
    let path = "/apis/agentscope.dev/v1/namespaces/support/agentbaselines/b1";
    assert!(
        forbidden.contains(&format!(
            "create agentscope.dev/agentbaselines (PATCH {path}?&fieldManager=agentscope%2Fapprove)"
        )) || forbidden
            .iter()
            .any(|f| f.starts_with("create agentscope.dev/agentbaselines (PATCH")),
        "{forbidden:#?}"
    );
    assert_eq!(
        forbidden
            .iter()
            .filter(|f| f.starts_with("create "))
            .count(),
        1,
        "only the first apply created the object: {forbidden:#?}"
    );
    assert!(forbidden
        .iter()
        .any(|f| f.starts_with("patch agentscope.dev/agentbaselines (PATCH")));
}

/// The console with `--baseline-store kubernetes` (watch only): an approval in the cluster
/// becomes what its graph's "new" is relative to (the basis the graph pane shows), and a
/// change to `mode: learn` takes it away again.
#[test]
fn the_console_judges_against_the_clusters_approvals() {
    use agentscope_console::approved_watch::ApprovedWatch;
    use agentscope_console::edge_novelty::{EdgeNovelty, NoveltyBasis};
    use agentscope_console::live_collector::{EventSender, LiveCounters};
    use agentscope_console::live_recording::RecordingOptions;
    use agentscope_console::{LiveSource, Source as _};

    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let api = runtime.block_on(ApiServer::start(false));
    let kubeconfig = api.write_kubeconfig(dir.path());
    let counters = std::sync::Arc::new(LiveCounters::default());
    let (_events, receiver) = EventSender::channel(16, counters.clone());
    let pipeline = agentscope_analysis::pipeline::Pipeline::new(
        Default::default(),
        Default::default(),
        Box::new(agentscope_analysis::model::HostOnlyIdentity),
    );
    let watch = ApprovedWatch::start(&agentscope_identity::KubernetesSource::Kubeconfig(
        kubeconfig,
    ))
    .unwrap();
    let mut source = LiveSource::from_channel(
        "live",
        pipeline,
        receiver,
        counters,
        RecordingOptions::new(dir.path().to_path_buf(), Default::default()),
    )
    .with_approved_watch(watch);
    let basis = |source: &LiveSource| {
        let mut novelty = EdgeNovelty::default();
        novelty.update(source.pipeline().detector(), Some(AGENT), 0, true);
        novelty.basis()
    };
    let poll_until = |source: &mut LiveSource, wanted: NoveltyBasis| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while basis(source) != wanted {
            assert!(
                Instant::now() < deadline,
                "the console's basis stayed {:?}",
                basis(source)
            );
            source.poll(16);
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    poll_until(&mut source, NoveltyBasis::None);
    let client = {
        let config = runtime
            .block_on(kube::Config::from_custom_kubeconfig(
                kube::config::Kubeconfig::read_from(dir.path().join("kubeconfig")).unwrap(),
                &Default::default(),
            ))
            .unwrap();
        // The client's buffer task runs on the runtime.
        let _context = runtime.enter();
        kube::Client::try_from(config).unwrap()
    };
    let approve = |mode: BaselineMode, revision: u64| {
        let api: Api<AgentBaselineResource> = Api::namespaced(client.clone(), "support");
        runtime
            .block_on(api.patch(
                "b1",
                &PatchParams::apply("agentscope/approve"),
                &Patch::Apply(&baseline_resource("b1", mode, revision)),
            ))
            .unwrap();
    };
    approve(BaselineMode::Detect, 1);
    poll_until(&mut source, NoveltyBasis::Approved);
    approve(BaselineMode::Learn, 2);
    poll_until(&mut source, NoveltyBasis::None);
    drop(source);
    drop(api);
}

// ---------------------------------------------------------------------------------------------
// Two nodes.

const NODES: [&str; 2] = ["node-a", "node-b"];
const WORKLOAD: &str = "support/Deployment/support-agent";

/// The support agent's Deployment with a pod on each node: the fixture pod, renamed and moved
/// to `node`, with its own UID and container id; and its container cgroup.
fn pod_on(node: &str) -> (Value, PodCgroup) {
    let mut pod = support_agent_fixture("pod.json");
    let suffix = random_hex(5);
    let uid = format!(
        "{}-{}-4{}-8{}-{}",
        random_hex(8),
        random_hex(4),
        random_hex(3),
        random_hex(3),
        random_hex(12)
    );
    let container_id = random_hex(64);
    pod["metadata"]["name"] = json!(format!("support-agent-6c9d7f5b8d-{suffix}"));
    pod["metadata"]["uid"] = json!(uid);
    pod["spec"]["nodeName"] = json!(node);
    pod["status"]["containerStatuses"][0]["containerID"] =
        json!(format!("containerd://{container_id}"));
    let cgroup = PodCgroup::create(&uid, &container_id);
    (pod, cgroup)
}

/// A mock LLM whose model asks for `calls` (tool name and arguments) on its first turn,
/// serving the certificate of `certificate` (a directory with cert.pem and key.pem: made once,
/// not by each mock).
fn mock_llm(dir: &Path, name: &str, certificate: &Path, calls: Value) -> MockLlm {
    let dir = dir.join(name);
    std::fs::create_dir_all(dir.join("cert")).unwrap();
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(certificate.join(file), dir.join("cert").join(file)).unwrap();
    }
    let scenario = dir.join("scenario.json");
    std::fs::write(
        &scenario,
        json!({"tool_calls": calls, "final_text": "done"}).to_string(),
    )
    .unwrap();
    MockLlm::start_with(&dir, &["--scenario", scenario.to_str().unwrap()])
}

/// tests/agents/python_agent.py against `llm`, held before it starts (see [`Paused`]); the
/// interpreter has loaded its TLS library once the caller has waited a moment.
fn paused_agent(dir: &Path, python: &str, llm: &MockLlm) -> Paused {
    let start_file = dir.join(format!("start-{}", random_hex(8)));
    let child = Command::new(python)
        .arg(agents_dir().join("python_agent.py"))
        .args(["--port", &llm.port.to_string(), "--ca"])
        .arg(&llm.cert)
        .arg("--wait-before-start-file")
        .arg(&start_file)
        .env(
            "AGENTSCOPE_TEST_API_KEY",
            "sk-agentscope-baseline-store-0123",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python_agent.py");
    Paused { child, start_file }
}

fn agentscope(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// The AgentObservation `node` wrote, once `ready` holds for it (waits at most 20 s).
fn wait_for_observation(api: &ApiServer, node: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = api
            .custom_objects("agentobservations")
            .into_iter()
            .find(|o| o["spec"]["node"] == node);
        if let Some(observation) = found.as_ref().filter(|o| ready(o)) {
            return observation.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no ready AgentObservation from {node}: {found:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills the agents still running when the test fails (before their cgroups are removed).
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.0 {
            // SAFETY: plain kill(2) of a child of this test (not yet reaped: the pid is ours).
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
    }
}

/// The key of `section` (a map of the baseline) that starts with `prefix`, if any.
fn key_starting<'a>(section: &'a Value, prefix: &str) -> Option<&'a str> {
    section
        .as_object()?
        .keys()
        .map(String::as_str)
        .find(|k| k.starts_with(prefix))
}

/// An executable (`/bin/echo` may be seen as `/usr/bin/echo`) in a baseline's section.
fn has_executable(spec: &Value, name: &str) -> bool {
    spec["executables"]
        .as_object()
        .is_some_and(|e| e.keys().any(|k| k.rsplit('/').next() == Some(name)))
}

/// Deviations from the approved baseline in a collector's graph (the agent's processes and
/// their children: an executable's deviation has the pid of the process that ran it).
fn approved_deviations(graph: &Value) -> Vec<Value> {
    graph["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "baseline_deviation" && f["detail"]["baseline"] == "approved")
        .cloned()
        .collect()
}

#[test]
fn observations_from_two_nodes_merge_into_one_approved_baseline_both_judge_against() {
    require_root();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let api = runtime.block_on(ApiServer::start(false));
    let replica_set = support_agent_fixture("replicaset.json");
    api.add_object(
        &format!(
            "/apis/apps/v1/namespaces/{SUPPORT_AGENT_NAMESPACE}/replicasets/{}",
            replica_set["metadata"]["name"].as_str().unwrap()
        ),
        &replica_set,
    );
    api.add_object(
        &format!(
            "/api/v1/namespaces/{SUPPORT_AGENT_NAMESPACE}/serviceaccounts/\
             {SUPPORT_AGENT_SERVICE_ACCOUNT}"
        ),
        support_agent_fixture("serviceaccount.json"),
    );
    let (pod_a, cgroup_a) = pod_on(NODES[0]);
    let (pod_b, cgroup_b) = pod_on(NODES[1]);
    api.add_pod(&pod_a);
    api.add_pod(&pod_b);
    let kubeconfig = api.write_kubeconfig(dir.path());
    let kubeconfig = kubeconfig.to_str().unwrap();
    // Whoever reviews and approves has their own credentials.
    let reviewer = write_kubeconfig_as(
        dir.path(),
        &format!("http://127.0.0.1:{}", api.port),
        "reviewer-kubeconfig",
        "security-team-token",
    );
    let reviewer = reviewer.to_str().unwrap();

    // What the agent does: on node A it reads a runbook; on node B it runs echo. Later, node A
    // runs echo too (only node B saw that), and node B runs `id` (nobody saw that).
    let runbooks = dir.path().join("runbooks");
    std::fs::create_dir(&runbooks).unwrap();
    let runbook = runbooks.join("account-service.txt");
    std::fs::write(&runbook, "restart the account service\n").unwrap();
    // Three mock models with one certificate, started at once.
    let certificate = dir.path().join("certificate");
    std::fs::create_dir(&certificate).unwrap();
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-addext"])
        .arg("subjectAltName=DNS:localhost,IP:127.0.0.1")
        .arg("-keyout")
        .arg(certificate.join("key.pem"))
        .arg("-out")
        .arg(certificate.join("cert.pem"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let certificate = certificate.as_path();
    let (read_runbook, run_echo, run_id) = std::thread::scope(|scope| {
        let read = scope.spawn(|| {
            mock_llm(
                dir.path(),
                "llm-read",
                certificate,
                json!([{"name": "read_file", "arguments": {"path": runbook}}]),
            )
        });
        let echo = scope.spawn(|| {
            mock_llm(
                dir.path(),
                "llm-echo",
                certificate,
                json!([{"name": "run_command", "arguments": {"argv": ["/bin/echo", "account ok"]}}]),
            )
        });
        let id = scope.spawn(|| {
            mock_llm(
                dir.path(),
                "llm-id",
                certificate,
                json!([{"name": "run_command", "arguments": {"argv": ["/usr/bin/id"]}}]),
            )
        });
        (
            read.join().unwrap(),
            echo.join().unwrap(),
            id.join().unwrap(),
        )
    });
    let python = python_interpreter();
    let first_a = paused_agent(dir.path(), &python, &read_runbook);
    let second_a = paused_agent(dir.path(), &python, &run_echo);
    let first_b = paused_agent(dir.path(), &python, &run_echo);
    let second_b = paused_agent(dir.path(), &python, &run_id);
    let _kill_agents = KillOnDrop(
        [&first_a, &second_a, &first_b, &second_b]
            .map(Paused::pid)
            .to_vec(),
    );
    std::thread::sleep(Duration::from_millis(800));
    cgroup_a.move_in(first_a.pid());
    cgroup_a.move_in(second_a.pid());
    cgroup_b.move_in(first_b.pid());
    cgroup_b.move_in(second_b.pid());

    let graphs: Vec<PathBuf> = NODES
        .iter()
        .map(|node| dir.path().join(format!("graph-{node}.json")))
        .collect();
    let start_collector = |node: &str, pids: [u32; 2], graph: &Path| {
        let pids = pids.map(|p| p.to_string());
        Collect::start(
            dir.path(),
            &[
                "--quiet",
                "--kubeconfig",
                kubeconfig,
                "--node-name",
                node,
                "--pid",
                &pids[0],
                "--pid",
                &pids[1],
                "--baseline-store",
                "kubernetes",
                "--baseline-sync-interval",
                "0.3",
                "--graph-json",
                graph.to_str().unwrap(),
            ],
        )
    };
    // Both nodes' collectors start at once.
    let (collector_a, collector_b) = std::thread::scope(|scope| {
        let a =
            scope.spawn(|| start_collector(NODES[0], [first_a.pid(), second_a.pid()], &graphs[0]));
        let b =
            scope.spawn(|| start_collector(NODES[1], [first_b.pid(), second_b.pid()], &graphs[1]));
        (a.join().unwrap(), b.join().unwrap())
    });
    // Both pod watches and both AgentBaseline watches are up.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let requests = api.requests();
        let watching = |needle: &str| {
            requests
                .iter()
                .filter(|r| r.contains(needle) && r.contains("watch=true"))
                .count()
        };
        let pods_watched = NODES
            .iter()
            .all(|n| watching(&format!("spec.nodeName%3D{n}")) > 0);
        if pods_watched && watching("/apis/agentscope.dev/v1/agentbaselines?") >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "watches: {requests:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Part one: each node sees half of the work.
    first_a.release();
    first_b.release();
    for output in [first_a.finish(), first_b.finish()] {
        assert!(output.contains("\"final\""), "{output}");
    }
    // Files are learned as patterns of their directory.
    let runbook_dir = runbooks.to_str().unwrap().to_string();
    let observed_a = wait_for_observation(&api, NODES[0], |o| {
        key_starting(&o["spec"]["baseline"]["data"]["files"], &runbook_dir).is_some()
    });
    let observed_b = wait_for_observation(&api, NODES[1], |o| {
        has_executable(&o["spec"]["baseline"], "echo")
    });
    for (observed, node) in [(&observed_a, NODES[0]), (&observed_b, NODES[1])] {
        assert!(
            observed["spec"]["agent"]
                .as_str()
                .unwrap()
                .starts_with(&format!("k8s:{WORKLOAD}/agent:")),
            "{observed:#}"
        );
        assert_eq!(observed["metadata"]["namespace"], "support");
        // Written by server-side apply, by this node's own field manager only.
        let managers: Vec<&str> = observed["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, [format!("agentscope/{node}")], "{observed:#}");
    }
    // Node A never ran echo, node B never read the runbook.
    assert!(!has_executable(&observed_a["spec"]["baseline"], "echo"));
    assert!(key_starting(
        &observed_b["spec"]["baseline"]["data"]["files"],
        &runbook_dir
    )
    .is_none());

    // The candidate holds both parts.
    let candidate_path = dir.path().join("candidate.yaml");
    let candidate = agentscope(&[
        "baseline",
        "candidate",
        "--kubeconfig",
        reviewer,
        "--workload",
        WORKLOAD,
        "--write",
        candidate_path.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&candidate.stderr);
    assert!(candidate.status.success(), "{stderr}");
    assert!(stderr.contains("node-a, node-b"), "{stderr}");
    let text = std::fs::read_to_string(&candidate_path).unwrap();
    let document: Value = serde_norway::from_str(text.trim_start_matches("---\n")).unwrap();
    assert!(
        key_starting(&document["spec"]["data"]["files"], &runbook_dir).is_some(),
        "{text}"
    );
    assert!(has_executable(&document["spec"], "echo"), "{text}");
    assert!(
        document["spec"]["tools"]["called"]
            .get("read_file")
            .is_some()
            && document["spec"]["tools"]["called"]
                .get("run_command")
                .is_some(),
        "{text}"
    );

    // Approved (still learning: the learning period is ten minutes), then locked.
    let approve_args = [
        "baseline",
        "approve",
        "--kubeconfig",
        reviewer,
        "--workload",
        WORKLOAD,
        "--from",
        candidate_path.to_str().unwrap(),
        "--by",
        "security-team",
    ];
    let refused = agentscope(&approve_args);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--allow-incomplete"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let mut allowed = approve_args.to_vec();
    allowed.push("--allow-incomplete");
    let approved = agentscope(&allowed);
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let stdout = String::from_utf8_lossy(&approved.stdout);
    assert!(
        stdout.contains("revision 1") && stdout.contains("locked"),
        "{stdout}"
    );
    let again = agentscope(&allowed);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is locked at revision 1"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let stored = api.custom_objects("agentbaselines");
    assert_eq!(stored.len(), 1, "{stored:#?}");
    assert_eq!(stored[0]["spec"]["revision"], 1);
    assert_eq!(stored[0]["spec"]["locked"], true);
    assert_eq!(stored[0]["spec"]["mode"], "detect");
    assert_eq!(stored[0]["spec"]["approvedBy"], "security-team");

    // Both collectors load it through their watch (and say so in their observations).
    for node in NODES {
        wait_for_observation(&api, node, |o| o["spec"]["approvedRevision"] == 1);
    }

    // Part two, judged against the approved baseline.
    second_a.release();
    second_b.release();
    for output in [second_a.finish(), second_b.finish()] {
        assert!(output.contains("\"final\""), "{output}");
    }
    // Node B's collector has applied what it saw of `id` (so it has judged it).
    wait_for_observation(&api, NODES[1], |o| {
        has_executable(&o["spec"]["baseline"], "id")
    });
    let captured = std::thread::scope(|scope| {
        let a = scope.spawn(|| collector_a.stop());
        let b = scope.spawn(|| collector_b.stop());
        [a.join().unwrap(), b.join().unwrap()]
    });
    for captured in &captured {
        assert_eq!(
            captured.summary["kernel"]["dropped"], 0,
            "{}",
            captured.summary
        );
        let warnings = captured.summary["warnings"].to_string();
        assert!(!warnings.contains("AgentObservation"), "{warnings}");
    }
    let graphs: Vec<Value> = graphs
        .iter()
        .map(|g| serde_json::from_str(&std::fs::read_to_string(g).unwrap()).unwrap())
        .collect();
    // Node A ran echo with the model only node B had talked to: all inside the merged
    // baseline, no finding (and nothing was judged against an approved baseline before it).
    assert_eq!(
        approved_deviations(&graphs[0]),
        Vec::<Value>::new(),
        "node A judged what node B had seen as new"
    );
    // Node B ran id, through a model no node had talked to: findings against the approved
    // baseline, the executable among them.
    let new_on_b = approved_deviations(&graphs[1]);
    assert!(
        new_on_b
            .iter()
            .any(|f| f["detail"]["category"] == "executable"
                && f["detail"]["item"]
                    .as_str()
                    .unwrap()
                    .contains("/usr/bin/id")),
        "{new_on_b:#?}"
    );
    assert!(
        !new_on_b
            .iter()
            .any(|f| f["detail"]["item"].as_str().unwrap().contains("echo")),
        "{new_on_b:#?}"
    );

    // The collectors called only what deploy/clusterrole.yaml grants.
    assert_eq!(
        api.requests_the_deployed_role_forbids(),
        Vec::<String>::new()
    );
    drop(cgroup_a);
    drop(cgroup_b);
    drop(api);
    drop(runtime);
    eprintln!("two nodes took {:.1} s", started.elapsed().as_secs_f64());
}
