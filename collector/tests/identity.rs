//! End-to-end tests of the identity resolver: real cgroups shaped like the kubelet's, real
//! processes moved into them, a Kubernetes API-server double that speaks the API's JSON (list
//! and watch of pods with resourceVersions, GET of ReplicaSets and ServiceAccounts), a pod's
//! service-account token bind-mounted in a private mount namespace, and the kernel programs'
//! own cgroup ids.
//!
//! They need root (cgroup creation, mounts, eBPF): without it they fail, never skip.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentscope_collector::identity::{
    cgroup, process_root, CloudRoleKind, ContainerRuntime, Identity, IdentityOptions,
    IdentityResolver, IdentitySource, KubernetesSource, SERVICE_ACCOUNT_TOKEN_PATH,
};
use base64::Engine as _;
use bytes::Bytes;
use futures::channel::mpsc;
use futures::StreamExt as _;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use serde_json::{json, Value};

const NODE: &str = "agentscope-test-node";
/// How long to wait for the watcher to deliver a change (a deadline, not a speed claim).
const DEADLINE: Duration = Duration::from_secs(20);

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the identity end-to-end tests create cgroups, mount in private namespaces and load eBPF \
         programs: run them as root (sudo make test-e2e)"
    );
}

fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

fn random_hex(len: usize) -> String {
    let mut out = String::new();
    while out.len() < len {
        out.push_str(&format!("{:016x}", random_u64()));
    }
    out.truncate(len);
    out
}

fn random_pod_uid() -> String {
    let h = random_hex(32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn fixture<T: serde::de::DeserializeOwned>(name: &str) -> T {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/kubernetes")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?} is not a {name}: {e}"))
}

/// The fixture pod, moved onto `node` with this UID and container id.
fn fixture_pod(uid: &str, node: &str, container_id: &str) -> Pod {
    let mut pod: Pod = fixture("pod.json");
    pod.metadata.uid = Some(uid.to_string());
    pod.spec.as_mut().unwrap().node_name = Some(node.to_string());
    for status in pod
        .status
        .as_mut()
        .unwrap()
        .container_statuses
        .as_mut()
        .unwrap()
    {
        status.container_id = Some(format!("containerd://{container_id}"));
    }
    pod
}

fn cgroup2_root() -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    cgroup::find_cgroup2_mount(&mountinfo)
        .expect("this machine has no cgroup2 mount")
        .mount_point
}

/// A kubelet-shaped cgroup tree under a private top directory, with the processes moved in.
/// Dropping it kills the processes and removes the directories, even when a test fails.
struct PodCgroup {
    top: PathBuf,
    leaf: PathBuf,
    relative: String,
    id: u64,
    children: Vec<Child>,
}

impl PodCgroup {
    fn create(pod_uid: &str, container_id: &str) -> PodCgroup {
        let root = cgroup2_root();
        let top_name = format!("agentscope-test-{}", random_hex(8));
        let relative = format!(
            "/{top_name}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{container_id}.scope",
            pod_uid.replace('-', "_")
        );
        let leaf = root.join(relative.trim_start_matches('/'));
        std::fs::create_dir_all(&leaf).unwrap_or_else(|e| panic!("mkdir {leaf:?}: {e}"));
        let id = std::fs::metadata(&leaf).unwrap().ino();
        PodCgroup {
            top: root.join(top_name),
            leaf,
            relative,
            id,
            children: Vec::new(),
        }
    }

    /// Moves a child into the container cgroup and keeps it for clean-up.
    fn adopt(&mut self, child: Child) -> u32 {
        let pid = child.id();
        self.children.push(child);
        std::fs::write(self.leaf.join("cgroup.procs"), pid.to_string()).unwrap();
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert_eq!(
            cgroup::unified_path_from_proc_cgroup(&own),
            Some(self.relative.as_str()),
            "the process did not move into the cgroup"
        );
        pid
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deepest first: a cgroup directory can only go once it has no children.
        let mut dirs = Vec::new();
        let mut stack = vec![self.top.clone()];
        while let Some(dir) = stack.pop() {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        stack.push(entry.path());
                    }
                }
            }
            dirs.push(dir);
        }
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in dirs {
            if let Err(e) = std::fs::remove_dir(&dir) {
                eprintln!("could not remove test cgroup {dir:?}: {e}");
            }
        }
    }
}

fn spawn_sleep() -> Child {
    Command::new("sleep")
        .arg("1000")
        .env_clear()
        .stdin(Stdio::null())
        .spawn()
        .expect("sleep")
}

/// An unsigned JWT carrying `claims` (the resolver never verifies signatures, by design).
fn token_with_claims(claims: &Value) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.{}",
        engine.encode(br#"{"alg":"RS256","kid":"agentscope-test"}"#),
        engine.encode(claims.to_string()),
        engine.encode(random_hex(64))
    )
}

/// A process like a pod's container: in the pod's cgroup, in its own mount namespace where the
/// service-account token directory holds `token`, with the environment the kubelet and the
/// IRSA webhook give. Returns its pid once it runs `sleep` with the token in place.
fn spawn_pod_process(
    cgroup: &mut PodCgroup,
    secrets: &Path,
    token: &str,
    env: &[(&str, &str)],
) -> u32 {
    std::fs::write(secrets.join("token"), token).unwrap();
    std::fs::write(secrets.join("namespace"), "agents").unwrap();
    // /var/run is /run here; a tmpfs over /run, private to the namespace, holds the mount point
    // without touching the host.
    let script = r#"set -e
mount -t tmpfs agentscope-test /run
mkdir -p /run/secrets/kubernetes.io/serviceaccount
mount --bind "$SECRETS" /run/secrets/kubernetes.io/serviceaccount
exec sleep 1000"#;
    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("SECRETS", secrets)
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let pid = cgroup.adopt(command.spawn().expect("unshare"));
    // Not `/proc/PID/root/var/run/...`: /var/run links to the absolute /run, which a plain path
    // walk resolves in the reader's namespace, not the process's (the resolver avoids that too).
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let started = Instant::now();
    loop {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let mounted = process_root::read_in_root(&root, SERVICE_ACCOUNT_TOKEN_PATH, 1 << 16)
            .is_ok_and(|content| content == token.as_bytes());
        if comm.trim() == "sleep" && mounted {
            return pid;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the pod-like process did not start (comm {comm:?})"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// The API-server double.

type Body = BoxBody<Bytes, Infallible>;

#[derive(Default)]
struct ServerState {
    resource_version: u64,
    /// Pods by UID, as stored (with their resourceVersion).
    pods: BTreeMap<String, Value>,
    /// Objects served by GET, by request path.
    objects: HashMap<String, Value>,
    /// Every watch event sent, with its resourceVersion, so a watch that starts late from an
    /// older version still receives it (as the real API server does).
    events: Vec<(u64, Value)>,
    watchers: Vec<(Option<String>, mpsc::UnboundedSender<Bytes>)>,
    requests: Vec<String>,
    forbid_pods: bool,
}

fn pod_node(pod: &Value) -> Option<&str> {
    pod["spec"]["nodeName"].as_str()
}

fn status_body(code: u16, reason: &str, message: &str) -> Response {
    json_response(
        code,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code
        }),
    )
}

type Response = hyper::Response<Body>;

fn json_response(code: u16, value: &Value) -> Response {
    hyper::Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())).boxed())
        .unwrap()
}

struct ApiServer {
    port: u16,
    state: Arc<Mutex<ServerState>>,
    task: tokio::task::JoinHandle<()>,
}

impl ApiServer {
    async fn start(forbid_pods: bool) -> ApiServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(ServerState {
            resource_version: 1000,
            forbid_pods,
            ..Default::default()
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, &request)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        ApiServer { port, state, task }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ServerState> {
        self.state.lock().unwrap()
    }

    fn add_object(&self, path: &str, object: Value) {
        self.lock().objects.insert(path.to_string(), object);
    }

    /// Stores a pod (as if it existed before the collector started).
    fn add_pod(&self, pod: &Pod) {
        let mut state = self.lock();
        state.resource_version += 1;
        let mut value = serde_json::to_value(pod).unwrap();
        value["metadata"]["resourceVersion"] = json!(state.resource_version.to_string());
        let uid = pod.metadata.uid.clone().unwrap();
        state.pods.insert(uid, value);
    }

    /// Applies a change and sends it to the watches, as `{"type": ..., "object": ...}` lines.
    fn send(&self, kind: &str, pod: &Pod) {
        let mut state = self.lock();
        state.resource_version += 1;
        let version = state.resource_version;
        let mut object = serde_json::to_value(pod).unwrap();
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let uid = pod.metadata.uid.clone().unwrap();
        if kind == "DELETED" {
            state.pods.remove(&uid);
        } else {
            state.pods.insert(uid, object.clone());
        }
        let event = json!({"type": kind, "object": object});
        let line = Bytes::from(format!("{event}\n"));
        let node = pod_node(&event["object"]).map(str::to_string);
        state.watchers.retain(|(wanted, sender)| {
            if wanted.is_some() && *wanted != node {
                return true;
            }
            sender.unbounded_send(line.clone()).is_ok()
        });
        state.events.push((version, event));
    }

    fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        write_kubeconfig(dir, &format!("http://127.0.0.1:{}", self.port))
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn write_kubeconfig(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}
users:
- name: collector
  user:
    token: agentscope-test-token
contexts:
- name: test
  context:
    cluster: test
    user: collector
current-context: test
"
        ),
    )
    .unwrap();
    path
}

fn handle(state: &Mutex<ServerState>, request: &hyper::Request<hyper::body::Incoming>) -> Response {
    let mut state = state.lock().unwrap();
    state.requests.push(request.uri().to_string());
    let path = request.uri().path();
    let query: HashMap<String, String> =
        form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    if path != "/api/v1/pods" {
        return match state.objects.get(path) {
            Some(object) => json_response(200, object),
            None => status_body(404, "NotFound", &format!("{path} not found")),
        };
    }
    if state.forbid_pods {
        return status_body(
            403,
            "Forbidden",
            "pods is forbidden: User \"system:serviceaccount:agentscope:collector\" cannot list \
             resource \"pods\" in API group \"\" at the cluster scope",
        );
    }
    // Only the selector the collector uses is implemented; any other is refused, not ignored.
    let node = match query.get("fieldSelector") {
        None => None,
        Some(selector) => match selector.strip_prefix("spec.nodeName=") {
            Some(node) => Some(node.to_string()),
            None => return status_body(400, "BadRequest", "unsupported field selector"),
        },
    };
    let on_node = |pod: &Value| node.is_none() || pod_node(pod) == node.as_deref();
    if query.get("watch").map(String::as_str) == Some("true") {
        let since: u64 = query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let (sender, receiver) = mpsc::unbounded();
        for (version, event) in &state.events {
            if *version > since && on_node(&event["object"]) {
                let _ = sender.unbounded_send(Bytes::from(format!("{event}\n")));
            }
        }
        state.watchers.push((node.clone(), sender));
        let body = StreamBody::new(receiver.map(|line| Ok::<_, Infallible>(Frame::data(line))));
        return hyper::Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(BodyExt::boxed(body))
            .unwrap();
    }
    // List items carry no kind or apiVersion; the list does.
    let items: Vec<Value> = state
        .pods
        .values()
        .filter(|p| on_node(p))
        .map(|p| {
            let mut item = p.clone();
            let object = item.as_object_mut().unwrap();
            object.remove("kind");
            object.remove("apiVersion");
            item
        })
        .collect();
    json_response(
        200,
        &json!({
            "apiVersion": "v1", "kind": "PodList",
            "metadata": {"resourceVersion": state.resource_version.to_string()},
            "items": items
        }),
    )
}

/// Polls `resolve` until `done` holds for the identity of `pid`, or fails after DEADLINE.
async fn resolve_until(
    resolver: &mut IdentityResolver,
    pid: u32,
    cgroup_id: u64,
    what: &str,
    done: impl Fn(&Identity) -> bool,
) -> Arc<Identity> {
    let started = Instant::now();
    loop {
        let identity = resolver.resolve(pid, cgroup_id);
        if done(&identity) {
            return identity;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{what}: still {identity:#?}; warnings {:?}",
            resolver.warnings()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn options(kubernetes: KubernetesSource) -> IdentityOptions {
    IdentityOptions {
        proc_root: PathBuf::from("/proc"),
        // Found from /proc/self/mountinfo, as in production.
        cgroup_root: None,
        kubernetes,
        node_name: Some(NODE.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_identity_follows_the_pod_watch() {
    require_root();
    let pod_uid = random_pod_uid();
    let container_id = random_hex(64);
    let mut cgroup = PodCgroup::create(&pod_uid, &container_id);
    let pid = cgroup.adopt(spawn_sleep());

    let replica_set: ReplicaSet = fixture("replicaset.json");
    let account: ServiceAccount = fixture("serviceaccount.json");
    let mut pod = fixture_pod(&pod_uid, NODE, &container_id);
    let namespace = pod.metadata.namespace.clone().unwrap();
    let deployment = replica_set.metadata.owner_references.as_ref().unwrap()[0]
        .name
        .clone();
    let role_arn =
        account.metadata.annotations.as_ref().unwrap()["eks.amazonaws.com/role-arn"].clone();

    let server = ApiServer::start(false).await;
    server.add_pod(&pod);
    // Another node's pod, with the same container id: the field selector must keep it out.
    server.add_pod(&fixture_pod(&random_pod_uid(), "other-node", &container_id));
    server.add_object(
        &format!(
            "/apis/apps/v1/namespaces/{namespace}/replicasets/{}",
            replica_set.metadata.name.as_deref().unwrap()
        ),
        serde_json::to_value(&replica_set).unwrap(),
    );
    server.add_object(
        &format!(
            "/api/v1/namespaces/{namespace}/serviceaccounts/{}",
            account.metadata.name.as_deref().unwrap()
        ),
        serde_json::to_value(&account).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = server.write_kubeconfig(dir.path());

    let mut resolver = IdentityResolver::new(options(KubernetesSource::Kubeconfig(kubeconfig)));
    resolver.start().await.expect("start");
    let identity = resolve_until(&mut resolver, pid, cgroup.id, "pod from the API", |i| {
        i.pod
            .as_ref()
            .is_some_and(|p| p.source == IdentitySource::Api)
    })
    .await;
    assert!(resolver.kubernetes_synced());
    assert_eq!(resolver.watched_pods(), 1, "only this node's pods");
    assert!(
        resolver.warnings().is_empty(),
        "warnings: {:?}",
        resolver.warnings()
    );
    let requests = server.requests();
    assert!(
        requests.iter().any(|r| r.starts_with("/api/v1/pods?")
            && r.contains("watch=true")
            && r.contains(&format!("fieldSelector=spec.nodeName%3D{NODE}"))),
        "no watch of this node's pods among {requests:#?}"
    );

    assert_eq!(
        identity.cgroup_path.as_deref(),
        Some(cgroup.relative.as_str())
    );
    let container = identity.container.as_ref().unwrap();
    assert_eq!(container.id, container_id);
    assert_eq!(container.runtime, ContainerRuntime::Containerd);
    let found = identity.pod.as_ref().unwrap();
    assert_eq!(found.namespace.as_deref(), Some(namespace.as_str()));
    assert_eq!(found.name, pod.metadata.name);
    assert_eq!(found.uid.as_deref(), Some(pod_uid.as_str()));
    assert_eq!(found.node.as_deref(), Some(NODE));
    assert_eq!(found.container_name.as_deref(), Some("agent"));
    assert_eq!(
        found.image,
        pod.spec.as_ref().unwrap().containers[0].image.clone()
    );
    let workload = found.workload.as_ref().unwrap();
    assert_eq!(
        (
            workload.kind.as_str(),
            workload.name.as_str(),
            workload.inferred
        ),
        ("Deployment", deployment.as_str(), false),
        "the Deployment comes from the ReplicaSet's owner, not a guess"
    );
    assert_eq!(found.service_account, account.metadata.name);
    let irsa = found
        .cloud_roles
        .iter()
        .find(|r| r.kind == CloudRoleKind::AwsIrsa)
        .expect("IRSA role");
    assert_eq!(irsa.principal, role_arn);
    assert_eq!(irsa.source, IdentitySource::Api);
    assert_eq!(
        irsa.origin,
        "serviceaccount annotation eks.amazonaws.com/role-arn"
    );
    assert_eq!(
        identity.workload_key("/usr/bin/python3"),
        format!("k8s:{namespace}/Deployment/{deployment}/agent:/usr/bin/python3")
    );
    assert_eq!(resolver.user_name(pid, 0).as_deref(), Some("root"));

    // A MODIFIED event (the image of the pod's container changed) reaches resolution.
    let new_image = "ghcr.io/example/research-agent:1.5.0".to_string();
    pod.spec.as_mut().unwrap().containers[0].image = Some(new_image.clone());
    server.send("MODIFIED", &pod);
    resolve_until(&mut resolver, pid, cgroup.id, "modified image", |i| {
        i.pod.as_ref().and_then(|p| p.image.as_deref()) == Some(new_image.as_str())
    })
    .await;

    // After DELETED the API no longer vouches for it: the cgroup's pod UID is all that is left
    // (this process has no token and no Kubernetes environment).
    server.send("DELETED", &pod);
    let after = resolve_until(&mut resolver, pid, cgroup.id, "deleted pod", |i| {
        i.pod
            .as_ref()
            .is_some_and(|p| p.source != IdentitySource::Api)
    })
    .await;
    let left = after.pod.as_ref().unwrap();
    assert_eq!(left.source, IdentitySource::Environment);
    assert_eq!(left.uid.as_deref(), Some(pod_uid.as_str()));
    assert_eq!(left.name, None);
    assert_eq!(resolver.watched_pods(), 0);
}

fn pod_token_claims(pod_uid: &str) -> (Pod, Value) {
    let pod: Pod = fixture("pod.json");
    let spec = pod.spec.as_ref().unwrap();
    let claims = json!({
        "aud": ["https://kubernetes.default.svc"],
        "exp": 1893456000,
        "iat": 1735689600,
        "iss": "https://kubernetes.default.svc",
        "kubernetes.io": {
            "namespace": pod.metadata.namespace,
            "node": {"name": NODE, "uid": random_pod_uid()},
            "pod": {"name": pod.metadata.name, "uid": pod_uid},
            "serviceaccount": {"name": spec.service_account_name, "uid": random_pod_uid()},
            "warnafter": 1735693207
        },
        "nbf": 1735689600,
        "sub": format!(
            "system:serviceaccount:{}:{}",
            pod.metadata.namespace.as_deref().unwrap(),
            spec.service_account_name.as_deref().unwrap()
        )
    });
    (pod, claims)
}

fn assert_token_identity(identity: &Identity, pod: &Pod, pod_uid: &str, role_arn: &str) {
    let found = identity.pod.as_ref().expect("a pod identity");
    assert_eq!(found.source, IdentitySource::ServiceAccountToken);
    assert_eq!(found.namespace, pod.metadata.namespace);
    assert_eq!(found.name, pod.metadata.name);
    assert_eq!(found.uid.as_deref(), Some(pod_uid));
    assert_eq!(found.node.as_deref(), Some(NODE));
    assert_eq!(
        found.service_account,
        pod.spec.as_ref().unwrap().service_account_name
    );
    assert_eq!(
        found.container_name, None,
        "only the API knows container names"
    );
    let workload = found.workload.as_ref().unwrap();
    assert_eq!(
        (
            workload.kind.as_str(),
            workload.name.as_str(),
            workload.inferred
        ),
        ("Deployment", "research-agent", true),
        "inferred from the pod name"
    );
    let role = &found.cloud_roles[0];
    assert_eq!(
        (role.kind, role.principal.as_str(), role.source),
        (
            CloudRoleKind::AwsIrsa,
            role_arn,
            IdentitySource::Environment
        )
    );
}

#[test]
fn token_and_environment_identify_a_pod_without_the_api() {
    require_root();
    let pod_uid = random_pod_uid();
    let container_id = random_hex(64);
    let mut cgroup = PodCgroup::create(&pod_uid, &container_id);
    let (pod, claims) = pod_token_claims(&pod_uid);
    let secrets = tempfile::tempdir().unwrap();
    let role_arn = "arn:aws:iam::111122223333:role/research-agent";
    let pod_name = pod.metadata.name.clone().unwrap();
    let token = token_with_claims(&claims);
    let pid = spawn_pod_process(
        &mut cgroup,
        secrets.path(),
        &token,
        &[
            ("HOSTNAME", pod_name.as_str()),
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("AWS_ROLE_ARN", role_arn),
        ],
    );
    assert_ne!(
        std::fs::read_to_string(SERVICE_ACCOUNT_TOKEN_PATH).ok(),
        Some(token),
        "the token must be visible in the process's mount namespace only"
    );

    let mut resolver = IdentityResolver::new(options(KubernetesSource::Off));
    let identity = resolver.resolve(pid, cgroup.id);
    assert!(resolver.warnings().is_empty(), "{:?}", resolver.warnings());
    assert_eq!(
        identity.cgroup_path.as_deref(),
        Some(cgroup.relative.as_str())
    );
    assert_eq!(identity.container.as_ref().unwrap().id, container_id);
    assert_token_identity(&identity, &pod, &pod_uid, role_arn);
    assert_eq!(
        identity.workload_key("/usr/bin/sleep"),
        "k8s:agents/Deployment/research-agent/?:/usr/bin/sleep"
    );

    // A malformed token is ignored, not fatal: the environment still names the pod.
    let other_uid = random_pod_uid();
    let mut other = PodCgroup::create(&other_uid, &random_hex(64));
    let secrets = tempfile::tempdir().unwrap();
    let pid = spawn_pod_process(
        &mut other,
        secrets.path(),
        "not.a-valid.jwt!!",
        &[
            ("HOSTNAME", "postgres-0"),
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ],
    );
    let identity = resolver.resolve(pid, other.id);
    let found = identity.pod.as_ref().unwrap();
    assert_eq!(found.source, IdentitySource::Environment);
    assert_eq!(found.name.as_deref(), Some("postgres-0"));
    assert_eq!(found.uid.as_deref(), Some(other_uid.as_str()));
    assert_eq!(found.workload.as_ref().unwrap().kind, "StatefulSet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_api_server_is_a_warning_and_the_fallback_works() {
    require_root();
    // A port that was just free and is closed: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = write_kubeconfig(dir.path(), &format!("http://127.0.0.1:{port}"));
    let mut resolver = IdentityResolver::new(options(KubernetesSource::Kubeconfig(kubeconfig)));
    resolver
        .start()
        .await
        .expect("an unreachable API server is not an error");
    let warnings = resolver.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("cannot reach the Kubernetes API server")
                && w.contains(&format!("listing pods on node {NODE}"))
                && w.contains("--no-kubernetes")),
        "{warnings:#?}"
    );
    assert!(!resolver.kubernetes_synced());

    let pod_uid = random_pod_uid();
    let mut cgroup = PodCgroup::create(&pod_uid, &random_hex(64));
    let (pod, claims) = pod_token_claims(&pod_uid);
    let secrets = tempfile::tempdir().unwrap();
    let role_arn = "arn:aws:iam::111122223333:role/research-agent";
    let pid = spawn_pod_process(
        &mut cgroup,
        secrets.path(),
        &token_with_claims(&claims),
        &[
            ("HOSTNAME", pod.metadata.name.as_deref().unwrap()),
            ("AWS_ROLE_ARN", role_arn),
        ],
    );
    let identity = resolver.resolve(pid, cgroup.id);
    assert_token_identity(&identity, &pod, &pod_uid, role_arn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_pod_list_says_which_permissions_to_grant() {
    require_root();
    let server = ApiServer::start(true).await;
    let dir = tempfile::tempdir().unwrap();
    let mut resolver = IdentityResolver::new(options(KubernetesSource::Kubeconfig(
        server.write_kubeconfig(dir.path()),
    )));
    resolver.start().await.expect("403 is a warning");
    let warnings = resolver.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&format!("403 listing pods on node {NODE}"))
                && w.contains("grant list/watch on pods and get on serviceaccounts")),
        "{warnings:#?}"
    );
}

#[tokio::test]
async fn an_unusable_kubeconfig_is_an_error_that_says_what_to_do() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-kubeconfig");
    let mut resolver = IdentityResolver::new(options(KubernetesSource::Kubeconfig(path.clone())));
    let error = resolver
        .start()
        .await
        .expect_err("missing file")
        .to_string();
    assert!(error.contains(&path.display().to_string()), "{error}");
    assert!(error.contains("--no-kubernetes"), "{error}");
}

/// The cgroup id the kernel programs record (bpf_get_current_cgroup_id) is the inode of the
/// cgroup's directory, which is what the resolver looks up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_cgroup_id_is_the_cgroup_directory_inode() {
    require_root();
    let pod_uid = random_pod_uid();
    let container_id = random_hex(64);
    let mut cgroup = PodCgroup::create(&pod_uid, &container_id);
    let mut shell = Command::new("sh")
        .args(["-c", "read line; /bin/true; read line"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::piped())
        .spawn()
        .expect("sh");
    let mut stdin = shell.stdin.take().unwrap();
    let shell_pid = cgroup.adopt(shell);

    let mut collector =
        agentscope_collector::Collector::start(agentscope_collector::CollectorOptions {
            pids: vec![shell_pid],
            ..Default::default()
        })
        .expect("collector (built with its kernel programs, run as root)");
    stdin.write_all(b"go\n").unwrap();

    let started = Instant::now();
    let exec = loop {
        let batch = tokio::time::timeout(Duration::from_millis(500), collector.next_batch(256))
            .await
            .unwrap_or(Ok(Vec::new()))
            .expect("read events");
        let found = batch.into_iter().find(|e| {
            matches!(&e.body, agentscope_collector::EventBody::Exec { filename, .. } if filename.ends_with("/true"))
        });
        if let Some(event) = found {
            break event;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "no exec event of /bin/true from the test cgroup"
        );
    };
    assert_eq!(
        exec.header.cgroup_id, cgroup.id,
        "bpf_get_current_cgroup_id differs from the inode of {:?}",
        cgroup.leaf
    );
    let mut resolver = IdentityResolver::new(options(KubernetesSource::Off));
    let identity = resolver.resolve(exec.header.pid, exec.header.cgroup_id);
    assert_eq!(
        identity.cgroup_path.as_deref(),
        Some(cgroup.relative.as_str())
    );
    assert_eq!(identity.container.as_ref().unwrap().id, container_id);
    assert_eq!(
        identity.pod.as_ref().unwrap().uid.as_deref(),
        Some(pod_uid.as_str())
    );
    drop(stdin);
}
