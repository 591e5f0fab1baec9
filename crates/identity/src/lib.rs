//! Who did it: the identity behind every event's (pid, cgroup id).
//!
//! Events carry a pid, a uid and the cgroup v2 id of the acting task. [`IdentityResolver`]
//! turns those into an [`Identity`]: the cgroup path, the container (id and runtime, read from
//! the path; from the process's cgroup v1 hierarchies when the unified one names no container,
//! see [`cgroup_v1`], noted in [`Identity::cgroup_v1`]), and for processes in Kubernetes pods
//! the pod (namespace, name, UID, node, container name and image), its owning workload, its
//! service account and the cloud roles that account or pod carries (AWS IRSA, GKE workload
//! identity, Azure workload identity).
//! [`IdentityResolver::user_name`] names a uid as the process's own `/etc/passwd` does.
//!
//! # Sources, in order of precedence
//!
//! 1. **`api`**: the Kubernetes API. A kube-rs watcher keeps the pods of this node (field
//!    selector `spec.nodeName=NODE`; the node is [`IdentityOptions::node_name`], else
//!    `NODE_NAME`, else the host name; in a DaemonSet set `NODE_NAME` from the downward API,
//!    since a pod's host name is its pod name) and reads their ReplicaSets/Jobs (to find the Deployment
//!    or CronJob) and ServiceAccounts (for role annotations). A process is matched to a pod by
//!    the container id in its cgroup path, else by the pod UID in it. Needs list/watch on pods
//!    and get on replicasets, jobs and serviceaccounts.
//! 2. **`service_account_token`**: when the API is off, unreachable, or does not know the pod
//!    (yet), the pod's projected service-account token is read through
//!    `/proc/PID/root/var/run/secrets/kubernetes.io/serviceaccount/token` (or the IRSA/Azure
//!    token file the environment names), and its JWT claims give namespace, pod name and UID,
//!    service account and node. **The token's signature is not verified**: its claims are a
//!    hint read from the process's own filesystem, not proof (a process can plant a forged
//!    file, which is why the API wins when it answers).
//! 3. **`environment`**: `/proc/PID/environ` gives `HOSTNAME` (the pod name), downward-API
//!    `POD_NAME`/`POD_NAMESPACE`/`NODE_NAME`, and role hints `AWS_ROLE_ARN`, `AZURE_CLIENT_ID`.
//!    Without a token it is the only source; with one, it still contributes cloud roles.
//!
//! Each [`PodIdentity`] and [`CloudRole`] records its [`IdentitySource`]. Without the API the
//! workload is guessed from the pod name and flagged [`Workload::inferred`], and the container
//! name is unknown.
//!
//! # When the API is unreachable
//!
//! Nothing fails: [`IdentityResolver::start`] reports it in [`IdentityResolver::warnings`]
//! (with what to do: which RBAC to grant, or `--no-kubernetes`), the watcher keeps retrying
//! with backoff in the background, and resolution uses the token and environment meanwhile.
//! Identities are cached per cgroup and recomputed whenever the watcher sees a change, so a
//! late API answer replaces a fallback identity on the next event.
//!
//! [`declared_objects`] reads, once, the objects that say what workloads may do (RBAC,
//! NetworkPolicies, pod specs) for `agentscope posture`.
//!
//! [`IdentityResolver::resolve`] never waits on the network: the watcher task writes a shared
//! store and resolution only reads it, plus a few small /proc files on a cache miss.

pub mod cgroup;
pub mod cgroup_v1;
pub mod container;
pub mod declared_objects;
pub mod environment;
pub mod kubernetes;
pub mod passwd;
mod remembered_processes;
// Moved down to the event crate, which the collector can use; kept here under its old path.
pub use agentscope_event::process_root;
pub mod service_account_token;
pub mod workload;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use cgroup_v1::CgroupV1Placement;
pub use container::ContainerRuntime;
pub use workload::Workload;

use environment::EnvironmentHints;
use service_account_token::ServiceAccountTokenClaims;

/// Where the default service-account token sits inside a pod's containers.
pub const SERVICE_ACCOUNT_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// How long [`IdentityResolver::start`] waits for the API server's first answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Per-process cache entries beyond this many are dropped all at once.
const MAX_PROCESS_ENTRIES: usize = 65_536;
/// Per-container-cgroup cache entries beyond this many are dropped all at once.
const MAX_CGROUP_ENTRIES: usize = 16_384;

/// Where a piece of identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentitySource {
    /// The Kubernetes API.
    Api,
    /// The claims of the pod's service-account token (unverified).
    ServiceAccountToken,
    /// The process environment.
    Environment,
}

/// The container a process runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerIdentity {
    /// The runtime's container id (64 hex digits for the common runtimes).
    pub id: String,
    pub runtime: ContainerRuntime,
}

/// Which cloud identity mechanism grants a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloudRoleKind {
    /// EKS IAM roles for service accounts: `principal` is the role ARN.
    AwsIrsa,
    /// GKE workload identity: `principal` is the Google service account email.
    GkeWorkloadIdentity,
    /// Azure workload identity: `principal` is the managed identity's client id.
    AzureWorkloadIdentity,
}

/// A cloud role a pod can act as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloudRole {
    pub kind: CloudRoleKind,
    pub principal: String,
    pub source: IdentitySource,
    /// Exactly where it was read, e.g. `serviceaccount annotation eks.amazonaws.com/role-arn`.
    pub origin: String,
}

/// The Kubernetes pod (and container in it) a process belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodIdentity {
    /// The source of the pod fields (cloud roles carry their own).
    pub source: IdentitySource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub uid: Option<String>,
    pub node: Option<String>,
    /// Known from the API only.
    pub container_name: Option<String>,
    /// The image as the pod spec names it (API only).
    pub image: Option<String>,
    /// The image digest the runtime resolved (API only).
    pub image_id: Option<String>,
    pub workload: Option<Workload>,
    pub service_account: Option<String>,
    pub cloud_roles: Vec<CloudRole>,
}

/// Everything known about who a process is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The cgroup v2 path from the hierarchy root (e.g. `/kubepods.slice/...`).
    pub cgroup_path: Option<String>,
    pub container: Option<ContainerIdentity>,
    pub pod: Option<PodIdentity>,
    /// Set when `container` and the pod UID were read from a cgroup v1 hierarchy, because the
    /// unified (v2) one does not place the process in a container: a v1-only host, or a
    /// hybrid one whose runtime uses the v1 controllers (`cgroup_path` is then `/` or none).
    /// See [`cgroup_v1`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_v1: Option<CgroupV1Placement>,
}

impl Identity {
    /// A key that names the same agent across pod restarts and rollouts: for a pod, namespace,
    /// workload kind and name, container name and executable (never the pod name, UID or
    /// pid); otherwise the container id (or `host`) and executable.
    ///
    /// The key follows the identity's quality: a pod resolved from the API and the same pod
    /// resolved from its token alone differ (the latter has no container name, `?`, and its
    /// workload kind may be inferred differently).
    pub fn workload_key(&self, exe: &str) -> String {
        if let Some(pod) = &self.pod {
            let namespace = pod.namespace.as_deref().unwrap_or("?");
            let (kind, name) = match &pod.workload {
                Some(w) => (w.kind.as_str(), w.name.as_str()),
                None => ("Pod", pod.name.as_deref().unwrap_or("?")),
            };
            let container = pod.container_name.as_deref().unwrap_or("?");
            return format!("k8s:{namespace}/{kind}/{name}/{container}:{exe}");
        }
        match &self.container {
            Some(c) => format!("container:{}:{exe}", c.id),
            None => format!("host:{exe}"),
        }
    }
}

/// Where pod identity may come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubernetesSource {
    /// No API access: service-account tokens and environments only.
    Off,
    /// In-cluster configuration, else `KUBECONFIG` or `~/.kube/config`; none found is a warning.
    Infer,
    /// This kubeconfig file (an unreadable one is an error).
    Kubeconfig(PathBuf),
}

#[derive(Debug, Clone)]
pub struct IdentityOptions {
    /// Where /proc is.
    pub proc_root: PathBuf,
    /// The cgroup2 mount; found in `<proc_root>/self/mountinfo` when `None`.
    pub cgroup_root: Option<PathBuf>,
    pub kubernetes: KubernetesSource,
    /// This node's name for the pod watch; else `NODE_NAME`, else the host name.
    pub node_name: Option<String>,
}

impl Default for IdentityOptions {
    fn default() -> Self {
        IdentityOptions {
            proc_root: PathBuf::from("/proc"),
            cgroup_root: None,
            kubernetes: KubernetesSource::Infer,
            node_name: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "cannot use kubeconfig {path}: {reason}; fix the file, point --kubeconfig elsewhere, or pass --no-kubernetes"
    )]
    Kubeconfig { path: PathBuf, reason: String },
    #[error(
        "cannot build a Kubernetes client: {0}; check the kubeconfig, or pass --no-kubernetes"
    )]
    Client(String),
    /// [`KubernetesSource::Infer`] found neither an in-cluster service account nor a
    /// kubeconfig.
    #[error("no Kubernetes configuration found (in-cluster service account or kubeconfig): {0}")]
    NoConfiguration(String),
}

/// A client of the Kubernetes API as `source` says to reach it; `None` for
/// [`KubernetesSource::Off`]. Must be called inside a tokio runtime.
pub async fn kube_client(source: &KubernetesSource) -> Result<Option<kube::Client>, IdentityError> {
    let config = match source {
        KubernetesSource::Off => return Ok(None),
        KubernetesSource::Infer => kube::Config::infer()
            .await
            .map_err(|e| IdentityError::NoConfiguration(e.to_string()))?,
        KubernetesSource::Kubeconfig(path) => {
            let error = |reason: String| IdentityError::Kubeconfig {
                path: path.clone(),
                reason,
            };
            let kubeconfig =
                kube::config::Kubeconfig::read_from(path).map_err(|e| error(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| error(e.to_string()))?
        }
    };
    kube::Client::try_from(config)
        .map(Some)
        .map_err(|e| IdentityError::Client(e.to_string()))
}

/// Pod identity without the API, from the token claims (preferred) and the environment.
/// `cgroup_pod_uid` is the UID the cgroup path names, if any. `None` when nothing says the
/// process is in a pod.
pub fn fallback_pod_identity(
    cgroup_pod_uid: Option<&str>,
    claims: Option<&ServiceAccountTokenClaims>,
    env: &EnvironmentHints,
) -> Option<PodIdentity> {
    // HOSTNAME is the pod name only inside a pod.
    let in_pod = env.in_kubernetes || cgroup_pod_uid.is_some() || claims.is_some();
    let env_pod_name = env
        .pod_name
        .clone()
        .or_else(|| env.hostname.clone().filter(|_| in_pod));
    let (source, namespace, name, uid, node, service_account) = match claims {
        Some(c) => (
            IdentitySource::ServiceAccountToken,
            c.namespace.clone(),
            c.pod_name.clone().or(env_pod_name),
            c.pod_uid.clone().or(cgroup_pod_uid.map(str::to_string)),
            c.node_name.clone().or_else(|| env.node_name.clone()),
            c.service_account_name.clone(),
        ),
        None if in_pod || env.pod_name.is_some() => (
            IdentitySource::Environment,
            env.pod_namespace.clone(),
            env_pod_name,
            cgroup_pod_uid.map(str::to_string),
            env.node_name.clone(),
            None,
        ),
        None => return None,
    };
    if namespace.is_none() && name.is_none() && uid.is_none() {
        return None;
    }
    let mut cloud_roles = Vec::new();
    if let Some(arn) = &env.aws_role_arn {
        cloud_roles.push(CloudRole {
            kind: CloudRoleKind::AwsIrsa,
            principal: arn.clone(),
            source: IdentitySource::Environment,
            origin: "process env AWS_ROLE_ARN".into(),
        });
    }
    // AZURE_CLIENT_ID alone may be a plain service principal; the workload identity webhook
    // always sets the federated token file beside it.
    if let (Some(client_id), Some(_)) = (&env.azure_client_id, &env.azure_federated_token_file) {
        cloud_roles.push(CloudRole {
            kind: CloudRoleKind::AzureWorkloadIdentity,
            principal: client_id.clone(),
            source: IdentitySource::Environment,
            origin: "process env AZURE_CLIENT_ID".into(),
        });
    }
    Some(PodIdentity {
        source,
        workload: name.as_deref().map(workload::infer_workload_from_pod_name),
        namespace,
        name,
        uid,
        node,
        container_name: None,
        image: None,
        image_id: None,
        service_account,
        cloud_roles,
    })
}

#[derive(Debug, Clone)]
struct CachedIdentity {
    generation: u64,
    cgroup_id: u64,
    identity: Arc<Identity>,
}

/// Resolves (pid, cgroup id) to [`Identity`], caching per container cgroup (or per process
/// outside containers). See the module documentation for sources and precedence.
pub struct IdentityResolver {
    options: IdentityOptions,
    cgroups: cgroup::CgroupIndex,
    passwd: passwd::PasswdCache,
    shared: Arc<kubernetes::Shared>,
    watcher: Option<tokio::task::JoinHandle<()>>,
    client: Option<kube::Client>,
    by_cgroup: HashMap<u64, CachedIdentity>,
    by_pid: HashMap<u32, CachedIdentity>,
    /// For processes gone by the time they are looked up, what each was resolved to while it
    /// ran, in which cgroup (see [`remembered_processes`]).
    remembered: remembered_processes::RememberedProcesses<(u64, Arc<Identity>)>,
}

impl IdentityResolver {
    /// Sets up resolution from cgroups, tokens and environments; call [`start`](Self::start)
    /// to add the Kubernetes API.
    pub fn new(options: IdentityOptions) -> Self {
        let cgroups = cgroup::CgroupIndex::new(&options.proc_root, options.cgroup_root.clone());
        let shared = Arc::new(kubernetes::Shared::default());
        if cgroups.mount().is_none() {
            shared.warn(format!(
                "no cgroup2 mount in {}/self/mountinfo: cgroup v2 paths are unavailable, and \
                 containers and pods are read from the cgroup v1 lines of /proc/PID/cgroup \
                 while the process lives; mount cgroup2 or pass its path as cgroup_root",
                options.proc_root.display()
            ));
        }
        IdentityResolver {
            passwd: passwd::PasswdCache::new(&options.proc_root),
            options,
            cgroups,
            shared,
            watcher: None,
            client: None,
            by_cgroup: HashMap::new(),
            by_pid: HashMap::new(),
            remembered: Default::default(),
        }
    }

    /// The node whose pods are watched.
    pub fn node_name(&self) -> String {
        self.options
            .node_name
            .clone()
            .or_else(|| std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()))
            .or_else(|| {
                std::fs::read_to_string(self.options.proc_root.join("sys/kernel/hostname"))
                    .ok()
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
            })
            .unwrap_or_else(|| "localhost".to_string())
    }

    /// Starts the Kubernetes watcher task (must be called inside a tokio runtime). An
    /// unreachable API server, missing permissions or no configuration at all under
    /// [`KubernetesSource::Infer`] are warnings, not errors: the fallback keeps working and the
    /// watcher keeps retrying. Errors are for an explicit kubeconfig that cannot be used.
    pub async fn start(&mut self) -> Result<(), IdentityError> {
        if self.watcher.is_some() {
            return Ok(());
        }
        let client = match kube_client(&self.options.kubernetes).await {
            Ok(Some(client)) => client,
            Ok(None) => return Ok(()),
            Err(IdentityError::NoConfiguration(e)) => {
                self.shared.warn(format!(
                    "no Kubernetes configuration found (in-cluster service account or \
                     kubeconfig): {e}; pod identity comes from service-account tokens and \
                     process environments only (pass --kubeconfig PATH to use the API, or \
                     --no-kubernetes to silence this)"
                ));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.client = Some(client.clone());
        let node = self.node_name();
        if let Err(warning) = kubernetes::probe(&client, &node, PROBE_TIMEOUT).await {
            self.shared.warn(warning);
        }
        self.watcher = Some(tokio::spawn(kubernetes::watch_pods(
            client,
            node,
            self.shared.clone(),
        )));
        Ok(())
    }

    /// The Kubernetes API client the watcher uses, once [`start`](Self::start)ed with one (the
    /// baseline store shares it).
    pub fn kube_client(&self) -> Option<kube::Client> {
        self.client.clone()
    }

    /// Whether the watcher has received the node's pod list at least once.
    pub fn kubernetes_synced(&self) -> bool {
        self.shared.synced.load(Ordering::Acquire)
    }

    /// How many pods the watcher currently knows.
    pub fn watched_pods(&self) -> usize {
        self.shared.read().pod_count()
    }

    /// The identity of `pid`, whose events carry `cgroup_id`. Never blocks on the network.
    pub fn resolve(&mut self, pid: u32, cgroup_id: u64) -> Arc<Identity> {
        let generation = self.shared.generation.load(Ordering::Acquire);
        if let Some(hit) = self
            .by_cgroup
            .get(&cgroup_id)
            .filter(|c| c.generation == generation)
        {
            let identity = hit.identity.clone();
            self.remembered.note(pid, (cgroup_id, identity.clone()));
            return identity;
        }
        if let Some(hit) = self
            .by_pid
            .get(&pid)
            .filter(|c| c.generation == generation && c.cgroup_id == cgroup_id)
        {
            return hit.identity.clone();
        }
        let process_dir = self.options.proc_root.join(pid.to_string());
        if !process_dir.exists() {
            // A pid seen in another cgroup is another process, or one that moved.
            if let Some((_, known)) = self.remembered.get(pid).filter(|(c, _)| *c == cgroup_id) {
                return self.as_known_now(known.clone());
            }
        }

        let path = self.cgroups.path_of(cgroup_id, pid);
        let mut clues = path
            .as_deref()
            .map(container::parse_cgroup_path)
            .unwrap_or_default();
        // The unified hierarchy names no container: the v1 ones may (see cgroup_v1). Their
        // answer belongs to this process, not to the cgroup id (the v2 root, shared by all).
        let mut cgroup_v1 = None;
        if clues.container.is_none() && clues.pod_uid.is_none() {
            if let Some((v1_clues, placement)) =
                cgroup_v1::placement_of_process(&self.options.proc_root, pid)
            {
                clues = v1_clues;
                cgroup_v1 = Some(placement);
            }
        }
        let mut container = clues
            .container
            .clone()
            .map(|(id, runtime)| ContainerIdentity { id, runtime });
        let pod = match self.pod_from_api(container.as_mut(), clues.pod_uid.as_deref()) {
            Some(pod) => Some(pod),
            None => self.fallback(pid, clues.pod_uid.as_deref()),
        };
        let identity = Arc::new(Identity {
            cgroup_path: path,
            container,
            pod,
            cgroup_v1,
        });

        // A path still unknown may be found by the next walk, and a vanished process may have
        // hidden its token: neither result is worth keeping.
        let path_settled =
            identity.cgroup_path.is_some() || cgroup_id == 0 || self.cgroups.mount().is_none();
        let process_running = process_dir.exists();
        if process_running {
            self.remembered.note(pid, (cgroup_id, identity.clone()));
        }
        let process_seen = identity.pod.is_some() || process_running;
        if path_settled && process_seen {
            let entry = CachedIdentity {
                generation,
                cgroup_id,
                identity: identity.clone(),
            };
            let from_v2 = identity.cgroup_v1.is_none();
            if from_v2 && (clues.container.is_some() || clues.pod_uid.is_some()) {
                // Containers come and go (CronJobs); dropping all now and then is cheaper than
                // tracking which cgroups were removed.
                if self.by_cgroup.len() >= MAX_CGROUP_ENTRIES {
                    self.by_cgroup.clear();
                }
                self.by_cgroup.insert(cgroup_id, entry);
            } else {
                if self.by_pid.len() >= MAX_PROCESS_ENTRIES {
                    self.by_pid.clear();
                }
                self.by_pid.insert(pid, entry);
            }
        }
        identity
    }

    /// Drops what is cached for a process that exited (its pid may be reused).
    pub fn forget_pid(&mut self, pid: u32) {
        self.by_pid.remove(&pid);
        self.remembered.forget(pid);
        self.passwd.forget(pid);
    }

    /// A process is running: what /proc says of it now is read, so a lookup made after it
    /// exits still finds its container, pod and user (see [`remembered_processes`]). The
    /// collector calls this at every exec.
    pub fn note_running(&mut self, pid: u32, cgroup_id: u64, uid: u32) {
        self.resolve(pid, cgroup_id);
        self.passwd.user_name(pid, uid);
    }

    /// The pod the API knows for `container` (by its id) or `pod_uid`; the container's runtime,
    /// when its cgroup path did not tell, is taken from the pod's status.
    fn pod_from_api(
        &self,
        container: Option<&mut ContainerIdentity>,
        pod_uid: Option<&str>,
    ) -> Option<PodIdentity> {
        let (pod, status_runtime) = self
            .shared
            .read()
            .lookup(container.as_deref().map(|c| c.id.as_str()), pod_uid)?;
        if let (Some(c), Some(runtime)) = (container, status_runtime) {
            if c.runtime == ContainerRuntime::Unknown {
                c.runtime = runtime;
            }
        }
        Some(pod)
    }

    /// `known`, what a process that is gone was resolved to while it ran, with what the API
    /// says now of its container or pod (the pod may have been listed since, or changed).
    fn as_known_now(&self, known: Arc<Identity>) -> Arc<Identity> {
        let mut now = Identity::clone(&known);
        let pod_uid = known.pod.as_ref().and_then(|p| p.uid.as_deref());
        let Some(pod) = self.pod_from_api(now.container.as_mut(), pod_uid) else {
            return known;
        };
        now.pod = Some(pod);
        if now == *known {
            return known;
        }
        Arc::new(now)
    }

    fn fallback(&self, pid: u32, cgroup_pod_uid: Option<&str>) -> Option<PodIdentity> {
        let process = self.options.proc_root.join(pid.to_string());
        let env = std::fs::read(process.join("environ"))
            .map(|raw| environment::parse_environ(&raw))
            .unwrap_or_default();
        let claims = read_token_claims(&process.join("root"), &env);
        fallback_pod_identity(cgroup_pod_uid, claims.as_ref(), &env)
    }

    /// The name of `uid` in `pid`'s own /etc/passwd (cached per file).
    pub fn user_name(&mut self, pid: u32, uid: u32) -> Option<String> {
        self.passwd.user_name(pid, uid)
    }

    /// Problems met so far (no cgroup2 mount, API unreachable or forbidden, ...), each saying
    /// what to do. Repeats are reported once.
    pub fn warnings(&self) -> Vec<String> {
        self.shared.warnings()
    }

    /// The cgroup2 mount in use.
    pub fn cgroup_mount(&self) -> Option<&Path> {
        self.cgroups.mount().map(|m| m.mount_point.as_path())
    }
}

impl Drop for IdentityResolver {
    fn drop(&mut self) {
        if let Some(watcher) = self.watcher.take() {
            watcher.abort();
        }
    }
}

/// The claims of the first readable Kubernetes token in a process's root: the default
/// service-account token, else the IRSA or Azure federated token the environment names.
fn read_token_claims(root: &Path, env: &EnvironmentHints) -> Option<ServiceAccountTokenClaims> {
    let candidates = std::iter::once(SERVICE_ACCOUNT_TOKEN_PATH)
        .chain(env.aws_web_identity_token_file.as_deref())
        .chain(env.azure_federated_token_file.as_deref());
    candidates
        .filter_map(|path| {
            process_root::read_in_root(root, path, service_account_token::MAX_TOKEN_BYTES as u64)
                .ok()
        })
        .find_map(|token| service_account_token::decode_claims(&token).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_identity(namespace: &str, workload: (&str, &str), container: Option<&str>) -> Identity {
        Identity {
            cgroup_path: None,
            container: None,
            pod: Some(PodIdentity {
                source: IdentitySource::Api,
                namespace: Some(namespace.into()),
                name: Some("ignored-pod-name".into()),
                uid: Some("ignored-uid".into()),
                node: None,
                container_name: container.map(String::from),
                image: None,
                image_id: None,
                workload: Some(Workload {
                    kind: workload.0.into(),
                    name: workload.1.into(),
                    inferred: false,
                }),
                service_account: None,
                cloud_roles: vec![],
            }),
            cgroup_v1: None,
        }
    }

    #[test]
    fn workload_key_survives_pod_restarts() {
        let a = pod_identity("agents", ("Deployment", "research"), Some("agent"));
        let mut b = a.clone();
        let pod = b.pod.as_mut().unwrap();
        pod.name = Some("research-68f7c9d4b-zp6wn".into());
        pod.uid = Some("another-uid".into());
        b.container = Some(ContainerIdentity {
            id: "f".repeat(64),
            runtime: ContainerRuntime::Containerd,
        });
        b.cgroup_path = Some("/kubepods.slice/elsewhere".into());
        assert_eq!(
            a.workload_key("/usr/bin/python3"),
            b.workload_key("/usr/bin/python3")
        );
        assert_eq!(
            a.workload_key("/usr/bin/python3"),
            "k8s:agents/Deployment/research/agent:/usr/bin/python3"
        );
    }

    #[test]
    fn workload_key_separates_what_differs() {
        let base = pod_identity("agents", ("Deployment", "research"), Some("agent"));
        let keys = [
            base.workload_key("/usr/bin/python3"),
            base.workload_key("/usr/bin/node"),
            pod_identity("other", ("Deployment", "research"), Some("agent"))
                .workload_key("/usr/bin/python3"),
            pod_identity("agents", ("StatefulSet", "research"), Some("agent"))
                .workload_key("/usr/bin/python3"),
            pod_identity("agents", ("Deployment", "writer"), Some("agent"))
                .workload_key("/usr/bin/python3"),
            pod_identity("agents", ("Deployment", "research"), Some("sidecar"))
                .workload_key("/usr/bin/python3"),
        ];
        let distinct: std::collections::HashSet<&String> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len(), "{keys:?}");
    }

    #[test]
    fn workload_key_outside_kubernetes() {
        let host = Identity::default();
        assert_eq!(
            host.workload_key("/usr/bin/python3"),
            "host:/usr/bin/python3"
        );
        let in_docker = Identity {
            cgroup_path: None,
            container: Some(ContainerIdentity {
                id: "abc".into(),
                runtime: ContainerRuntime::Docker,
            }),
            pod: None,
            cgroup_v1: None,
        };
        assert_eq!(
            in_docker.workload_key("/bin/agent"),
            "container:abc:/bin/agent"
        );
    }

    fn claims() -> ServiceAccountTokenClaims {
        ServiceAccountTokenClaims {
            namespace: Some("agents".into()),
            pod_name: Some("research-7d9f8b6c5d-x2x4z".into()),
            pod_uid: Some("uid-from-token".into()),
            service_account_name: Some("research".into()),
            node_name: Some("node-1".into()),
            ..Default::default()
        }
    }

    #[test]
    fn token_claims_come_first_environment_adds_roles() {
        let env = EnvironmentHints {
            in_kubernetes: true,
            hostname: Some("custom-hostname".into()),
            aws_role_arn: Some("arn:aws:iam::1:role/r".into()),
            ..Default::default()
        };
        let pod = fallback_pod_identity(Some("uid-from-cgroup"), Some(&claims()), &env).unwrap();
        assert_eq!(pod.source, IdentitySource::ServiceAccountToken);
        assert_eq!(pod.name.as_deref(), Some("research-7d9f8b6c5d-x2x4z"));
        assert_eq!(pod.uid.as_deref(), Some("uid-from-token"));
        assert_eq!(pod.service_account.as_deref(), Some("research"));
        let workload = pod.workload.as_ref().unwrap();
        assert_eq!(
            (
                workload.kind.as_str(),
                workload.name.as_str(),
                workload.inferred
            ),
            ("Deployment", "research", true)
        );
        assert_eq!(pod.cloud_roles.len(), 1);
        assert_eq!(pod.cloud_roles[0].source, IdentitySource::Environment);
        // The same Deployment's pods share a key even from the fallback.
        let identity = Identity {
            pod: Some(pod),
            ..Default::default()
        };
        let mut other_claims = claims();
        other_claims.pod_name = Some("research-7d9f8b6c5d-bq9lm".into());
        let other = Identity {
            pod: fallback_pod_identity(None, Some(&other_claims), &env),
            ..Default::default()
        };
        assert_eq!(identity.workload_key("/x"), other.workload_key("/x"));
    }

    #[test]
    fn environment_alone() {
        let env = EnvironmentHints {
            in_kubernetes: true,
            hostname: Some("postgres-0".into()),
            azure_client_id: Some("cid".into()),
            azure_federated_token_file: Some(
                "/var/run/secrets/azure/tokens/azure-identity-token".into(),
            ),
            ..Default::default()
        };
        let pod = fallback_pod_identity(Some("uid-from-cgroup"), None, &env).unwrap();
        assert_eq!(pod.source, IdentitySource::Environment);
        assert_eq!(pod.name.as_deref(), Some("postgres-0"));
        assert_eq!(pod.uid.as_deref(), Some("uid-from-cgroup"));
        assert_eq!(pod.namespace, None);
        assert_eq!(pod.workload.as_ref().unwrap().kind, "StatefulSet");
        assert_eq!(
            pod.cloud_roles[0].kind,
            CloudRoleKind::AzureWorkloadIdentity
        );
    }

    #[test]
    fn hosts_are_not_pods() {
        let env = EnvironmentHints {
            hostname: Some("build-box".into()),
            aws_role_arn: Some("arn:aws:iam::1:role/r".into()),
            ..Default::default()
        };
        assert_eq!(fallback_pod_identity(None, None, &env), None);
        assert_eq!(
            fallback_pod_identity(None, None, &EnvironmentHints::default()),
            None
        );
    }

    #[test]
    fn identity_serialises() {
        let identity = pod_identity("agents", ("Deployment", "research"), Some("agent"));
        let json = serde_json::to_value(&identity).unwrap();
        assert_eq!(json["pod"]["source"], "api");
        assert_eq!(json["pod"]["workload"]["kind"], "Deployment");
        assert_eq!(
            serde_json::to_value(ContainerRuntime::CriO).unwrap(),
            "cri-o"
        );
        assert_eq!(
            serde_json::to_value(IdentitySource::ServiceAccountToken).unwrap(),
            "service_account_token"
        );
    }

    #[test]
    fn resolver_on_a_fake_proc_and_cgroup_tree() {
        use std::os::unix::fs::MetadataExt;
        let uid = "1234abcd-5678-4ef0-9abc-def012345678";
        let id = "ab".repeat(32);
        let cgroups = tempfile::tempdir().unwrap();
        let relative = format!(
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{id}.scope",
            uid.replace('-', "_")
        );
        std::fs::create_dir_all(cgroups.path().join(&relative)).unwrap();
        let cgroup_id = std::fs::metadata(cgroups.path().join(&relative))
            .unwrap()
            .ino();
        let proc_root = tempfile::tempdir().unwrap();
        let process = proc_root.path().join("77");
        std::fs::create_dir_all(process.join("root/var/run/secrets/kubernetes.io/serviceaccount"))
            .unwrap();
        std::fs::write(process.join("cgroup"), format!("0::/{relative}\n")).unwrap();
        std::fs::write(
            process.join("environ"),
            b"HOSTNAME=research-7d9f8b6c5d-x2x4z\0KUBERNETES_SERVICE_HOST=10.0.0.1\0",
        )
        .unwrap();
        let token = service_account_token::encode_unsigned_for_tests(&serde_json::json!({
            "sub": "system:serviceaccount:agents:research",
            "kubernetes.io": {"namespace": "agents", "pod": {"name": "research-7d9f8b6c5d-x2x4z", "uid": uid}}
        }));
        std::fs::write(
            process
                .join("root")
                .join(SERVICE_ACCOUNT_TOKEN_PATH.trim_start_matches('/')),
            token,
        )
        .unwrap();

        let mut resolver = IdentityResolver::new(IdentityOptions {
            proc_root: proc_root.path().into(),
            cgroup_root: Some(cgroups.path().into()),
            kubernetes: KubernetesSource::Off,
            node_name: None,
        });
        let identity = resolver.resolve(77, cgroup_id);
        assert_eq!(
            identity.cgroup_path.as_deref(),
            Some(format!("/{relative}").as_str())
        );
        assert_eq!(identity.container.as_ref().unwrap().id, id);
        let pod = identity.pod.as_ref().unwrap();
        assert_eq!(pod.source, IdentitySource::ServiceAccountToken);
        assert_eq!(pod.namespace.as_deref(), Some("agents"));
        // Cached for the whole container cgroup: another pid of it gets the same Arc.
        let again = resolver.resolve(78, cgroup_id);
        assert!(Arc::ptr_eq(&identity, &again));
        // A host process in an unknown cgroup id with no /proc entry: nothing, and not cached.
        let host = resolver.resolve(99, 123_456_789);
        assert_eq!(*host, Identity::default());
        assert!(resolver.by_pid.is_empty());
    }

    const V1_ID: &str = "4f2a9c1b7d3e4a5b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d";
    const V1_POD: &str = "1234abcd-5678-4ef0-9abc-def012345678";

    /// The v1 paths of each runtime and kubelet driver, as `/proc/PID/cgroup` shows them, with
    /// the container's runtime and pod UID they give.
    fn runtime_layouts() -> Vec<(String, ContainerRuntime, Option<&'static str>)> {
        let pod = V1_POD.replace('-', "_");
        vec![
            // kubelet with the cgroupfs driver (containerd, CRI-O or Docker: no prefix).
            (
                format!("/kubepods/burstable/pod{V1_POD}/{V1_ID}"),
                ContainerRuntime::Unknown,
                Some(V1_POD),
            ),
            (
                format!("/kubepods/pod{V1_POD}/{V1_ID}"),
                ContainerRuntime::Unknown,
                Some(V1_POD),
            ),
            // kubelet with the systemd driver.
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{pod}.slice/cri-containerd-{V1_ID}.scope"),
                ContainerRuntime::Containerd,
                Some(V1_POD),
            ),
            (
                format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{pod}.slice/crio-{V1_ID}.scope"),
                ContainerRuntime::CriO,
                Some(V1_POD),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{pod}.slice/docker-{V1_ID}.scope"),
                ContainerRuntime::Docker,
                Some(V1_POD),
            ),
            // Docker and podman outside Kubernetes, both drivers.
            (format!("/docker/{V1_ID}"), ContainerRuntime::Docker, None),
            (
                format!("/system.slice/docker-{V1_ID}.scope"),
                ContainerRuntime::Docker,
                None,
            ),
            (
                format!("/libpod_parent/libpod-{V1_ID}"),
                ContainerRuntime::Podman,
                None,
            ),
            (
                format!("/machine.slice/libpod-{V1_ID}.scope"),
                ContainerRuntime::Podman,
                None,
            ),
        ]
    }

    /// `/proc/PID/cgroup` of a process at `path` in every v1 hierarchy, with the unified line
    /// when the host has one (`0::/` on a hybrid host whose runtime uses v1 only).
    fn proc_cgroup(path: &str, unified: Option<&str>) -> String {
        let mut content = format!(
            "12:pids:{path}\n11:cpu,cpuacct:{path}\n10:memory:{path}\n9:devices:{path}\n\
             8:freezer:{path}\n4:net_cls,net_prio:{path}\n1:name=systemd:{path}\n"
        );
        if let Some(unified) = unified {
            content.push_str(&format!("0::{unified}\n"));
        }
        content
    }

    /// A fake host: a cgroup2 tree (none for a v1-only host) and a /proc with `processes`.
    struct FakeHost {
        proc_root: tempfile::TempDir,
        cgroups: Option<tempfile::TempDir>,
    }

    impl FakeHost {
        fn new(unified: bool) -> FakeHost {
            FakeHost {
                proc_root: tempfile::tempdir().unwrap(),
                cgroups: unified.then(|| tempfile::tempdir().unwrap()),
            }
        }

        fn process(&self, pid: u32, proc_cgroup: &str) {
            let process = self.proc_root.path().join(pid.to_string());
            std::fs::create_dir_all(&process).unwrap();
            std::fs::write(process.join("cgroup"), proc_cgroup).unwrap();
        }

        /// The v2 id of the unified root (what the kernel reports for every process of a
        /// hybrid host with an empty unified hierarchy); 1 without one, as the kernel gives.
        fn root_id(&self) -> u64 {
            use std::os::unix::fs::MetadataExt;
            self.cgroups
                .as_ref()
                .map_or(1, |dir| std::fs::metadata(dir.path()).unwrap().ino())
        }

        fn resolver(&self) -> IdentityResolver {
            IdentityResolver::new(IdentityOptions {
                proc_root: self.proc_root.path().into(),
                cgroup_root: self.cgroups.as_ref().map(|d| d.path().into()),
                kubernetes: KubernetesSource::Off,
                node_name: None,
            })
        }
    }

    fn assert_container(
        identity: &Identity,
        runtime: ContainerRuntime,
        pod_uid: Option<&str>,
        what: &str,
    ) {
        let container = identity.container.as_ref().unwrap_or_else(|| {
            panic!("{what}: no container in {identity:#?}");
        });
        assert_eq!(container.id, V1_ID, "{what}");
        assert_eq!(container.runtime, runtime, "{what}");
        assert_eq!(
            identity.pod.as_ref().and_then(|p| p.uid.as_deref()),
            pod_uid,
            "{what}"
        );
    }

    #[test]
    fn every_runtime_layout_resolves_through_the_v1_hierarchies() {
        for (mode, unified_mount, unified_line) in [
            ("v1 only", false, None),
            ("hybrid, empty unified", true, Some("/")),
        ] {
            for (path, runtime, pod_uid) in runtime_layouts() {
                let host = FakeHost::new(unified_mount);
                host.process(10, &proc_cgroup(&path, unified_line));
                let mut resolver = host.resolver();
                let identity = resolver.resolve(10, host.root_id());
                let what = format!("{mode}: {path}");
                assert_container(&identity, runtime, pod_uid, &what);
                assert_eq!(
                    identity.cgroup_path.as_deref(),
                    unified_line,
                    "{what}: the v2 path stays what v2 says"
                );
                let placement = identity.cgroup_v1.as_ref().expect(&what);
                assert_eq!(placement.hierarchy, "name=systemd", "{what}");
                assert_eq!(placement.path, path, "{what}");
                let json = serde_json::to_value(identity.as_ref()).unwrap();
                assert_eq!(json["cgroup_v1"]["hierarchy"], "name=systemd", "{what}");
            }
        }
    }

    #[test]
    fn the_unified_hierarchy_wins_when_it_names_the_container() {
        use std::os::unix::fs::MetadataExt;
        for (path, runtime, pod_uid) in runtime_layouts() {
            let host = FakeHost::new(true);
            let cgroups = host.cgroups.as_ref().unwrap().path();
            std::fs::create_dir_all(cgroups.join(path.trim_start_matches('/'))).unwrap();
            let id = std::fs::metadata(cgroups.join(path.trim_start_matches('/')))
                .unwrap()
                .ino();
            // v2 only (one line), and hybrid with the runtime in both.
            for content in [format!("0::{path}\n"), proc_cgroup(&path, Some(&path))] {
                host.process(20, &content);
                let identity = host.resolver().resolve(20, id);
                assert_container(&identity, runtime, pod_uid, &path);
                assert_eq!(identity.cgroup_path.as_deref(), Some(path.as_str()));
                assert_eq!(identity.cgroup_v1, None, "{path}");
                let json = serde_json::to_value(identity.as_ref()).unwrap();
                assert!(json.get("cgroup_v1").is_none(), "{json}");
            }
        }
    }

    /// Every process of an empty unified hierarchy carries the same cgroup id: identities read
    /// from v1 are the process's, never shared through the cgroup id's cache.
    #[test]
    fn v1_identities_are_per_process_not_per_cgroup_id() {
        let host = FakeHost::new(true);
        let other = "9".repeat(64);
        host.process(30, &proc_cgroup(&format!("/docker/{V1_ID}"), Some("/")));
        host.process(31, &proc_cgroup(&format!("/docker/{other}"), Some("/")));
        host.process(
            32,
            &proc_cgroup("/user.slice/user-0.slice/session-4.scope", Some("/")),
        );
        let mut resolver = host.resolver();
        let root = host.root_id();
        let first = resolver.resolve(30, root);
        assert_eq!(first.container.as_ref().unwrap().id, V1_ID);
        assert_eq!(
            resolver.resolve(31, root).container.as_ref().unwrap().id,
            other
        );
        let outside = resolver.resolve(32, root);
        assert_eq!(outside.container, None);
        assert_eq!(outside.pod, None);
        assert_eq!(outside.cgroup_v1, None);
        assert_eq!(outside.cgroup_path.as_deref(), Some("/"));
        assert!(resolver.by_cgroup.is_empty());
        // Cached for the process.
        assert!(Arc::ptr_eq(&first, &resolver.resolve(30, root)));
    }

    /// The collector runs behind the kernel: a short-lived agent may have exited, and its
    /// container's cgroup been removed, by the time its first exchange makes it look it up.
    #[test]
    fn a_process_gone_before_its_lookup_is_answered_as_it_ran() {
        use std::os::unix::fs::MetadataExt;
        let host = FakeHost::new(true);
        let cgroups = host.cgroups.as_ref().unwrap().path().to_path_buf();
        let v2_path = format!("/system.slice/docker-{V1_ID}.scope");
        std::fs::create_dir_all(cgroups.join(v2_path.trim_start_matches('/'))).unwrap();
        let v2_id = std::fs::metadata(cgroups.join(v2_path.trim_start_matches('/')))
            .unwrap()
            .ino();
        // One container named by the unified hierarchy, one by the v1 ones only (hybrid).
        host.process(40, &proc_cgroup(&v2_path, Some(&v2_path)));
        host.process(41, &proc_cgroup(&format!("/docker/{V1_ID}"), Some("/")));
        let etc = host.proc_root.path().join("41/root/etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("passwd"), "agent:x:1000:1000::/:/bin/sh\n").unwrap();
        let root = host.root_id();
        let mut resolver = host.resolver();
        resolver.note_running(40, v2_id, 0);
        resolver.note_running(41, root, 1000);

        // Both exit, the first container is removed, and the API's view changes, so nothing
        // cached for now answers: only what was read while they ran.
        std::fs::remove_dir_all(host.proc_root.path().join("40")).unwrap();
        std::fs::remove_dir_all(host.proc_root.path().join("41")).unwrap();
        std::fs::remove_dir(cgroups.join(v2_path.trim_start_matches('/'))).unwrap();
        resolver.shared.generation.fetch_add(1, Ordering::AcqRel);
        let first = resolver.resolve(40, v2_id);
        assert_container(&first, ContainerRuntime::Docker, None, "unified");
        let second = resolver.resolve(41, root);
        assert_container(&second, ContainerRuntime::Docker, None, "v1");
        assert_eq!(resolver.user_name(41, 1000).as_deref(), Some("agent"));

        // A process never seen running, gone as well: nothing to say.
        assert_eq!(resolver.resolve(42, root).container, None);
        // A pid in another cgroup than it ran in is another process.
        assert_eq!(resolver.resolve(41, v2_id + 1).container, None);
        // Once its exit is processed, the pid is free for another process.
        resolver.forget_pid(41);
        assert_eq!(resolver.resolve(41, root).container, None);
        assert_eq!(resolver.user_name(41, 1000), None);
        assert_eq!(resolver.remembered.len(), 1);
    }

    #[test]
    fn processes_outside_containers_and_malformed_files_name_nothing() {
        for unified in [false, true] {
            let host = FakeHost::new(unified);
            let line = unified.then_some("/");
            let samples = [
                // A login session and a system service.
                proc_cgroup("/user.slice/user-0.slice/session-4.scope", line),
                proc_cgroup("/system.slice/containerd.service", line),
                proc_cgroup("/", line),
                // Malformed.
                String::new(),
                "garbage\n:::\n12:pids\nx:memory:/docker/abc\n-1:memory:/\n".into(),
                format!("12:pids:docker/{V1_ID}\n"),
                format!(":pids:/docker/{V1_ID}\n"),
                "\u{0}\u{ff}:::::::\n".repeat(1000),
            ];
            for (pid, content) in (100..).zip(samples) {
                host.process(pid, &content);
                let identity = host.resolver().resolve(pid, host.root_id());
                assert_eq!(identity.container, None, "{content:?}");
                assert_eq!(identity.pod, None, "{content:?}");
                assert_eq!(identity.cgroup_v1, None, "{content:?}");
            }
        }
    }
}
