//! A Kubernetes node in miniature for privileged tests: a kubelet-shaped cgroup that processes
//! are moved into ([`PodCgroup`]) and an API-server double that speaks the API's JSON
//! ([`ApiServer`]: list and watch of pods with resourceVersions, GET of any other object by
//! path, such as ReplicaSets and ServiceAccounts, and agentscope's custom resources with
//! server-side apply: see [`custom_resources`]), and both put together as the support-agent
//! pod of tests/agents/kubernetes ([`SupportAgentCluster`]).
//!
//! Shared by `tests/identity.rs` (the resolver against it) and the agentscope
//! end-to-end tests (`tests/recordings.rs` and `tests/detection_scenarios.rs` run the test
//! agent "as a pod"), through `tests/support/mod.rs`.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentscope_identity::cgroup;
use bytes::Bytes;
use futures::channel::mpsc;
use futures::StreamExt as _;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};

pub fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

pub fn random_hex(len: usize) -> String {
    let mut out = String::new();
    while out.len() < len {
        out.push_str(&format!("{:016x}", random_u64()));
    }
    out.truncate(len);
    out
}

pub fn cgroup2_root() -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    cgroup::find_cgroup2_mount(&mountinfo)
        .expect("this machine has no cgroup2 mount")
        .mount_point
}

/// A kubelet-shaped cgroup tree under a private top directory, with the processes moved in.
/// Dropping it kills the processes it owns and removes the directories, even when a test
/// fails.
pub struct PodCgroup {
    pub top: PathBuf,
    pub leaf: PathBuf,
    pub relative: String,
    pub id: u64,
    pub children: Vec<Child>,
}

impl PodCgroup {
    pub fn create(pod_uid: &str, container_id: &str) -> PodCgroup {
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
    pub fn adopt(&mut self, child: Child) -> u32 {
        let pid = child.id();
        self.children.push(child);
        self.move_in(pid);
        pid
    }

    /// Moves a process the caller keeps owning into the container cgroup (its later children
    /// are born there). The caller must end it before the cgroup is dropped.
    pub fn move_in(&self, pid: u32) {
        std::fs::write(self.leaf.join("cgroup.procs"), pid.to_string()).unwrap();
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert_eq!(
            cgroup::unified_path_from_proc_cgroup(&own),
            Some(self.relative.as_str()),
            "the process did not move into the cgroup"
        );
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

// ---------------------------------------------------------------------------------------------
// The API-server double.

pub mod custom_resources;

pub(crate) type Body = BoxBody<Bytes, Infallible>;
pub(crate) type Response = hyper::Response<Body>;

#[derive(Default)]
pub struct ServerState {
    pub resource_version: u64,
    /// Pods by UID, as stored (with their resourceVersion).
    pub pods: BTreeMap<String, Value>,
    /// Objects served by GET, by request path.
    pub objects: HashMap<String, Value>,
    /// Every watch event sent, with its resourceVersion, so a watch that starts late from an
    /// older version still receives it (as the real API server does).
    pub events: Vec<(u64, Value)>,
    pub watchers: Vec<(Option<String>, mpsc::UnboundedSender<Bytes>)>,
    pub requests: Vec<String>,
    /// The method of each of `requests`.
    pub methods: Vec<String>,
    /// The bearer token of each of `requests` (empty without one): who asked.
    pub tokens: Vec<String>,
    /// Requests (by index in `requests`) the API server also authorizes as `create`: a
    /// server-side apply that created its object.
    pub also_create: Vec<usize>,
    /// agentscope's custom resources (AgentBaseline, AgentObservation).
    pub custom: custom_resources::Store,
    pub forbid_pods: bool,
}

/// The empty list the API server answers at `path`, for the cluster-wide lists of the kinds
/// that declare what workloads may do (none added with [`ApiServer::add_object`]).
fn empty_list(path: &str, resource_version: u64) -> Option<Value> {
    let (api_version, kind) = match path {
        "/api/v1/namespaces" => ("v1", "NamespaceList"),
        "/api/v1/serviceaccounts" => ("v1", "ServiceAccountList"),
        "/apis/rbac.authorization.k8s.io/v1/roles" => ("rbac.authorization.k8s.io/v1", "RoleList"),
        "/apis/rbac.authorization.k8s.io/v1/clusterroles" => {
            ("rbac.authorization.k8s.io/v1", "ClusterRoleList")
        }
        "/apis/rbac.authorization.k8s.io/v1/rolebindings" => {
            ("rbac.authorization.k8s.io/v1", "RoleBindingList")
        }
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings" => {
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBindingList")
        }
        "/apis/networking.k8s.io/v1/networkpolicies" => {
            ("networking.k8s.io/v1", "NetworkPolicyList")
        }
        _ => return None,
    };
    Some(json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"resourceVersion": resource_version.to_string()},
        "items": []
    }))
}

fn pod_node(pod: &Value) -> Option<&str> {
    pod["spec"]["nodeName"].as_str()
}

fn pod_uid(pod: &Value) -> String {
    pod["metadata"]["uid"]
        .as_str()
        .expect("a pod with metadata.uid")
        .to_string()
}

pub(crate) fn status_body(code: u16, reason: &str, message: &str) -> Response {
    json_response(
        code,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code
        }),
    )
}

pub(crate) fn json_response(code: u16, value: &Value) -> Response {
    hyper::Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())).boxed())
        .unwrap()
}

/// Serves on 127.0.0.1 from tasks of the tokio runtime it was started in; that runtime must
/// keep running while the server is used. Plain HTTP ([`ApiServer::start`]) or HTTPS with a
/// leaf certificate under a test CA, as a real API server presents ([`ApiServer::start_tls`]).
pub struct ApiServer {
    pub port: u16,
    /// The CA a client must trust, when the server speaks TLS.
    pub ca: Option<PathBuf>,
    state: Arc<Mutex<ServerState>>,
    task: tokio::task::JoinHandle<()>,
}

/// A rustls server configuration for the leaf [`super::certificates::make_ca_and_leaf`] made in
/// `cert_dir`.
fn tls_acceptor(cert_dir: &Path) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(cert_dir.join("cert.pem"))
            .unwrap()
            .map(|cert| cert.unwrap())
            .collect();
    let key = PrivateKeyDer::from_pem_file(cert_dir.join("key.pem")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

impl ApiServer {
    /// Plain HTTP.
    pub async fn start(forbid_pods: bool) -> ApiServer {
        Self::start_with(forbid_pods, None).await
    }

    /// HTTPS, with a CA and a leaf for 127.0.0.1 made in `cert_dir` (the CA is [`Self::ca`]).
    pub async fn start_tls(forbid_pods: bool, cert_dir: &Path) -> ApiServer {
        let ca = super::certificates::make_ca_and_leaf(cert_dir);
        let mut server = Self::start_with(forbid_pods, Some(tls_acceptor(cert_dir))).await;
        server.ca = Some(ca);
        server
    }

    async fn start_with(forbid_pods: bool, tls: Option<tokio_rustls::TlsAcceptor>) -> ApiServer {
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
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: hyper::Request<hyper::body::Incoming>| {
                            let state = state.clone();
                            async move {
                                let (parts, body) = request.into_parts();
                                let body = match body.collect().await {
                                    Ok(collected) => collected.to_bytes(),
                                    Err(_) => Bytes::new(),
                                };
                                Ok::<_, Infallible>(handle(&state, &parts, &body))
                            }
                        },
                    );
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = http
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await;
                        }
                        Some(tls) => {
                            let Ok(stream) = tls.accept(stream).await else {
                                return;
                            };
                            let _ = http
                                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                .await;
                        }
                    }
                });
            }
        });
        ApiServer {
            port,
            ca: None,
            state,
            task,
        }
    }

    /// Where clients reach it: `https://` when it speaks TLS.
    pub fn url(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ServerState> {
        self.state.lock().unwrap()
    }

    /// Serves `object` (anything that serialises to the API's JSON) on GET `path`.
    pub fn add_object(&self, path: &str, object: impl serde::Serialize) {
        let value = serde_json::to_value(object).unwrap();
        self.lock().objects.insert(path.to_string(), value);
    }

    /// Stores a pod (as if it existed before the collector started).
    pub fn add_pod(&self, pod: impl serde::Serialize) {
        let mut state = self.lock();
        state.resource_version += 1;
        let mut value = serde_json::to_value(pod).unwrap();
        value["metadata"]["resourceVersion"] = json!(state.resource_version.to_string());
        state.pods.insert(pod_uid(&value), value);
    }

    /// Applies a change and sends it to the watches, as `{"type": ..., "object": ...}` lines.
    pub fn send(&self, kind: &str, pod: impl serde::Serialize) {
        let mut state = self.lock();
        state.resource_version += 1;
        let version = state.resource_version;
        let mut object = serde_json::to_value(pod).unwrap();
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let uid = pod_uid(&object);
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

    /// A stored custom resource (`plural` is `agentbaselines` or `agentobservations`).
    pub fn custom_object(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        self.lock().custom.get(plural, namespace, name).cloned()
    }

    /// Every stored custom resource of `plural`, in name order.
    pub fn custom_objects(&self, plural: &str) -> Vec<Value> {
        self.lock().custom.all(plural)
    }

    /// Every request as "METHOD URI", in order.
    pub fn requests_with_methods(&self) -> Vec<String> {
        let state = self.lock();
        state
            .methods
            .iter()
            .zip(&state.requests)
            .map(|(m, u)| format!("{m} {u}"))
            .collect()
    }

    /// Every request URI served so far (path and query), in order.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// The collector's requests (those with its kubeconfig's token, [`COLLECTOR_TOKEN`], or
    /// none) that the ClusterRole in deploy/clusterrole.yaml does not allow, each as
    /// "VERB group/resource (METHOD URI)": the manifests must grant what the collector uses.
    pub fn requests_the_deployed_role_forbids(&self) -> Vec<String> {
        let state = self.lock();
        let role: serde_json::Value = serde_norway::from_str(
            &std::fs::read_to_string(
                Path::new(env!("AGENTSCOPE_REPO")).join("deploy/clusterrole.yaml"),
            )
            .unwrap(),
        )
        .unwrap();
        let rules = role["rules"].as_array().unwrap();
        let allows = |group: &str, resource: &str, verb: &str| {
            rules.iter().any(|rule| {
                let has = |field: &str, value: &str| {
                    rule[field]
                        .as_array()
                        .is_some_and(|l| l.iter().any(|v| v == value || v == "*"))
                };
                has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
            })
        };
        let mut forbidden = Vec::new();
        for (index, (uri, method)) in state.requests.iter().zip(&state.methods).enumerate() {
            let token = state.tokens.get(index).map_or("", String::as_str);
            if !token.is_empty() && token != COLLECTOR_TOKEN {
                continue;
            }
            let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
            let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
            // /api/v1/... is the core group; /apis/GROUP/VERSION/...
            let (group, rest) = match parts.as_slice() {
                ["api", _version, rest @ ..] => ("", rest),
                ["apis", group, _version, rest @ ..] => (*group, rest),
                _ => {
                    forbidden.push(format!("unknown path ({method} {uri})"));
                    continue;
                }
            };
            let rest = match rest {
                ["namespaces", _namespace, rest @ ..] if !rest.is_empty() => rest,
                other => other,
            };
            let (resource, named) = match rest {
                [resource] => (*resource, false),
                [resource, _name] => (*resource, true),
                _ => {
                    forbidden.push(format!("unknown path ({method} {uri})"));
                    continue;
                }
            };
            let verb = match (method.as_str(), named) {
                ("GET", true) => "get",
                ("GET", false) if query.contains("watch=true") => "watch",
                ("GET", false) => "list",
                ("PATCH", true) => "patch",
                ("PUT", true) => "update",
                ("DELETE", true) => "delete",
                ("POST", false) => "create",
                _ => "an unknown verb",
            };
            let mut verbs = vec![verb];
            if state.also_create.contains(&index) {
                verbs.push("create");
            }
            for verb in verbs {
                if !allows(group, resource, verb) {
                    forbidden.push(format!("{verb} {group}/{resource} ({method} {uri})"));
                }
            }
        }
        forbidden
    }

    /// A kubeconfig for the collector, trusting the server's CA when it speaks TLS.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        write_kubeconfig_trusting(
            dir,
            &self.url(),
            "kubeconfig",
            COLLECTOR_TOKEN,
            self.ca.as_deref(),
        )
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The bearer token of the collector's kubeconfig ([`write_kubeconfig`]).
pub const COLLECTOR_TOKEN: &str = "agentscope-test-token";

/// A kubeconfig for the collector: user `collector`, token [`COLLECTOR_TOKEN`].
pub fn write_kubeconfig(dir: &Path, server: &str) -> PathBuf {
    write_kubeconfig_as(dir, server, "kubeconfig", COLLECTOR_TOKEN)
}

/// A kubeconfig in `dir/file` whose user presents `token` (someone other than the collector,
/// such as the person who runs `baseline approve`).
pub fn write_kubeconfig_as(dir: &Path, server: &str, file: &str, token: &str) -> PathBuf {
    write_kubeconfig_trusting(dir, server, file, token, None)
}

/// [`write_kubeconfig_as`], trusting `ca` for an `https://` server.
pub fn write_kubeconfig_trusting(
    dir: &Path,
    server: &str,
    file: &str,
    token: &str,
    ca: Option<&Path>,
) -> PathBuf {
    let path = dir.join(file);
    let authority = ca.map_or(String::new(), |ca| {
        format!("\n    certificate-authority: {}", ca.display())
    });
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}{authority}
users:
- name: collector
  user:
    token: {token}
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

fn handle(
    state: &Mutex<ServerState>,
    request: &hyper::http::request::Parts,
    body: &[u8],
) -> Response {
    let mut state = state.lock().unwrap();
    state.requests.push(request.uri.to_string());
    state.methods.push(request.method.to_string());
    let token = request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    state.tokens.push(token);
    let path = request.uri.path();
    let query: HashMap<String, String> =
        form_urlencoded::parse(request.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    if let Some(rest) = path.strip_prefix(custom_resources::PREFIX) {
        let index = state.requests.len() - 1;
        let answer = state.custom.handle(request, rest, &query, body);
        if answer.created {
            state.also_create.push(index);
        }
        return answer.response;
    }
    if request.method != hyper::Method::GET {
        return status_body(
            405,
            "MethodNotAllowed",
            &format!("the double serves only GET on {path}"),
        );
    }
    if path != "/api/v1/pods" {
        return match state.objects.get(path) {
            Some(object) => json_response(200, object),
            // An API server lists every kind it serves, if only as empty: the collector lists
            // these for posture's declared side (crates/identity/src/declared_objects.rs).
            None => match empty_list(path, state.resource_version) {
                Some(list) => json_response(200, &list),
                None => status_body(404, "NotFound", &format!("{path} not found")),
            },
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

// ---------------------------------------------------------------------------------------------
// The support-agent pod.

/// The namespace and service account of the support-agent pod in tests/agents/kubernetes.
pub const SUPPORT_AGENT_NAMESPACE: &str = "support";
pub const SUPPORT_AGENT_SERVICE_ACCOUNT: &str = "support-agent";

/// A Kubernetes object of tests/agents/kubernetes (the support-agent pod and its owners).
pub fn support_agent_fixture(name: &str) -> Value {
    let path = Path::new(env!("AGENTSCOPE_REPO"))
        .join("tests/agents/kubernetes")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The Kubernetes side of a run as the support-agent pod: the API-server double (on its own
/// runtime) serving the pod, its ReplicaSet and ServiceAccount, and the pod's container cgroup.
pub struct SupportAgentCluster {
    pub api: ApiServer,
    pub cgroup: PodCgroup,
    pub kubeconfig: PathBuf,
    pub node: String,
    /// The pod as tests/agents/kubernetes/pod.json has it.
    pub pod: Value,
    // Declared last: dropped after the server's tasks are aborted.
    _runtime: tokio::runtime::Runtime,
}

impl SupportAgentCluster {
    /// Starts the API server (plain HTTP), creates the pod's cgroup and writes a kubeconfig
    /// into `dir`.
    pub fn start(dir: &Path) -> SupportAgentCluster {
        Self::start_with(dir, false)
    }

    /// [`Self::start`] with the API server on HTTPS, as a real cluster's is: its CA is in
    /// `dir/api-cert/ca.pem` ([`ApiServer::ca`]) and in the kubeconfig.
    pub fn start_tls(dir: &Path) -> SupportAgentCluster {
        Self::start_with(dir, true)
    }

    fn start_with(dir: &Path, tls: bool) -> SupportAgentCluster {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let api = if tls {
            runtime.block_on(ApiServer::start_tls(false, &dir.join("api-cert")))
        } else {
            runtime.block_on(ApiServer::start(false))
        };
        let pod = support_agent_fixture("pod.json");
        let replica_set = support_agent_fixture("replicaset.json");
        let account = support_agent_fixture("serviceaccount.json");
        assert_eq!(pod["metadata"]["namespace"], SUPPORT_AGENT_NAMESPACE);
        assert_eq!(account["metadata"]["name"], SUPPORT_AGENT_SERVICE_ACCOUNT);
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
            &account,
        );
        api.add_pod(&pod);
        let container_id = pod["status"]["containerStatuses"][0]["containerID"]
            .as_str()
            .unwrap()
            .strip_prefix("containerd://")
            .unwrap()
            .to_string();
        let cgroup = PodCgroup::create(pod["metadata"]["uid"].as_str().unwrap(), &container_id);
        let kubeconfig = api.write_kubeconfig(dir);
        SupportAgentCluster {
            api,
            cgroup,
            kubeconfig,
            node: pod["spec"]["nodeName"].as_str().unwrap().to_string(),
            pod,
            _runtime: runtime,
        }
    }

    /// Serves one more object on GET `path` (see [`ApiServer::add_object`]).
    pub fn add_object(&self, path: &str, object: impl serde::Serialize) {
        self.api.add_object(path, object);
    }

    /// The pod's name.
    pub fn pod_name(&self) -> &str {
        self.pod["metadata"]["name"].as_str().unwrap()
    }

    /// Waits until the collector's pod watcher has listed the pods, started watching and
    /// fetched the pod's owners (so the agent's first event already resolves to the pod).
    pub fn wait_for_watch(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let requests = self.api.requests();
            let watching = requests
                .iter()
                .any(|r| r.starts_with("/api/v1/pods?") && r.contains("watch=true"));
            let enriched = requests.iter().any(|r| r.contains("/serviceaccounts/"))
                && requests.iter().any(|r| r.contains("/replicasets/"));
            if watching && enriched {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the collector did not watch the pods: {requests:#?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
