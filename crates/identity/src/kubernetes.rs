//! Pod identity from the Kubernetes API: a watcher of the pods on this node, and the objects
//! around them (ReplicaSets and Jobs for the owning workload, ServiceAccounts for cloud roles).
//!
//! A tokio task keeps [`KubeState`] current; the resolver only reads it, so resolution never
//! waits on the network. Turning API objects into identities is done by pure functions
//! ([`pod_record`], [`service_account_record`], [`pod_identity`]) that the unit tests drive
//! with real object shapes.
//!
//! Objects read beside the watch are cached: a ReplicaSet's or Job's owner for good (it never
//! changes), a ServiceAccount for [`SERVICE_ACCOUNT_TTL`] and refreshed when one of its pods
//! changes after that. A failed read leaves the workload inferred from names and is retried
//! after [`RETRY_AFTER`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, Pod, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt as _;
use kube::{Api, Client};

use super::container::ContainerRuntime;
use super::workload::{self, Owner, ParentOwner};
use super::{CloudRole, CloudRoleKind, IdentitySource, PodIdentity};

/// How long a ServiceAccount's annotations are trusted before they are read again.
pub const SERVICE_ACCOUNT_TTL: Duration = Duration::from_secs(300);
/// How long after a failed read of a ReplicaSet, Job or ServiceAccount it is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);
/// Distinct warnings kept; later ones are dropped.
const MAX_WARNINGS: usize = 64;

pub const AWS_ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
pub const GCP_SERVICE_ACCOUNT_ANNOTATION: &str = "iam.gke.io/gcp-service-account";
pub const AZURE_CLIENT_ID_ANNOTATION: &str = "azure.workload.identity/client-id";
pub const AZURE_USE_LABEL: &str = "azure.workload.identity/use";

/// One container of a pod, as the API describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRecord {
    pub name: String,
    pub image: Option<String>,
    /// The resolved image digest from the status (`imageID`).
    pub image_id: Option<String>,
    /// Runtime container id from the status, without its `containerd://` scheme.
    pub id: Option<String>,
    pub runtime: Option<ContainerRuntime>,
    /// `AWS_ROLE_ARN` in the container spec (the IRSA webhook injects it).
    pub aws_role_arn: Option<String>,
    /// `AZURE_CLIENT_ID` in the container spec (the Azure webhook injects it).
    pub azure_client_id: Option<String>,
}

/// What the resolver needs of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRecord {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: Option<String>,
    pub service_account: Option<String>,
    /// The controlling owner reference (or the first one when none says controller).
    pub owner: Option<Owner>,
    /// The `pod-template-hash` label, for inferring a Deployment from its ReplicaSet's name.
    pub template_hash: Option<String>,
    /// The pod opted into Azure workload identity (`azure.workload.identity/use: "true"`).
    pub azure_workload_identity: bool,
    pub containers: Vec<ContainerRecord>,
}

/// The cloud identities a ServiceAccount's annotations grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAccountRecord {
    pub aws_role_arn: Option<String>,
    pub gcp_service_account: Option<String>,
    pub azure_client_id: Option<String>,
}

fn controlling_owner(owners: &[OwnerReference]) -> Option<Owner> {
    owners
        .iter()
        .find(|o| o.controller == Some(true))
        .or_else(|| owners.first())
        .map(|o| Owner {
            kind: o.kind.clone(),
            name: o.name.clone(),
        })
}

fn env_value(container: &Container, name: &str) -> Option<String> {
    container
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone())
        .filter(|v| !v.is_empty())
}

/// Splits a status `containerID` (`containerd://<id>`) into id and runtime.
pub fn split_container_id(container_id: &str) -> Option<(String, ContainerRuntime)> {
    let (scheme, id) = container_id.split_once("://")?;
    (!id.is_empty()).then(|| {
        (
            id.to_ascii_lowercase(),
            ContainerRuntime::from_scheme(scheme),
        )
    })
}

/// Reduces a pod to what identity needs; `None` for a pod without namespace, name or UID.
pub fn pod_record(pod: &Pod) -> Option<PodRecord> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let labels = meta.labels.as_ref();
    let statuses = status.into_iter().flat_map(|s| {
        s.container_statuses
            .iter()
            .chain(s.init_container_statuses.iter())
            .chain(s.ephemeral_container_statuses.iter())
            .flatten()
    });
    let mut containers: Vec<ContainerRecord> = spec
        .into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .map(|c| ContainerRecord {
            name: c.name.clone(),
            image: c.image.clone(),
            image_id: None,
            id: None,
            runtime: None,
            aws_role_arn: env_value(c, "AWS_ROLE_ARN"),
            azure_client_id: env_value(c, "AZURE_CLIENT_ID"),
        })
        .collect();
    // Ephemeral (debug) containers have their own spec type.
    for c in spec
        .and_then(|s| s.ephemeral_containers.as_ref())
        .into_iter()
        .flatten()
    {
        containers.push(ContainerRecord {
            name: c.name.clone(),
            image: c.image.clone(),
            image_id: None,
            id: None,
            runtime: None,
            aws_role_arn: None,
            azure_client_id: None,
        });
    }
    for status in statuses {
        let Some(record) = containers.iter_mut().find(|c| c.name == status.name) else {
            continue;
        };
        if let Some((id, runtime)) = status.container_id.as_deref().and_then(split_container_id) {
            record.id = Some(id);
            record.runtime = Some(runtime);
        }
        record.image_id = Some(status.image_id.clone()).filter(|i| !i.is_empty());
    }
    Some(PodRecord {
        namespace: meta.namespace.clone()?,
        name: meta.name.clone()?,
        uid: meta.uid.clone()?.to_ascii_lowercase(),
        node: spec.and_then(|s| s.node_name.clone()),
        service_account: spec
            .and_then(|s| s.service_account_name.clone())
            .or_else(|| Some("default".to_string())),
        owner: meta.owner_references.as_deref().and_then(controlling_owner),
        template_hash: labels.and_then(|l| l.get("pod-template-hash").cloned()),
        azure_workload_identity: labels
            .and_then(|l| l.get(AZURE_USE_LABEL))
            .is_some_and(|v| v == "true"),
        containers,
    })
}

/// The cloud identities a ServiceAccount's annotations name.
pub fn service_account_record(account: &ServiceAccount) -> ServiceAccountRecord {
    let empty = BTreeMap::new();
    let annotations = account.metadata.annotations.as_ref().unwrap_or(&empty);
    let get = |key: &str| annotations.get(key).filter(|v| !v.is_empty()).cloned();
    ServiceAccountRecord {
        aws_role_arn: get(AWS_ROLE_ANNOTATION),
        gcp_service_account: get(GCP_SERVICE_ACCOUNT_ANNOTATION),
        azure_client_id: get(AZURE_CLIENT_ID_ANNOTATION),
    }
}

/// Builds the identity of `container_name` in a pod (the pod as a whole when `None`).
pub fn pod_identity(
    pod: &PodRecord,
    container_name: Option<&str>,
    parent: &ParentOwner,
    account: Option<&ServiceAccountRecord>,
) -> PodIdentity {
    let container = container_name.and_then(|n| pod.containers.iter().find(|c| c.name == n));
    let mut roles: Vec<CloudRole> = Vec::new();
    let mut add = |kind, principal: &str, origin: &str| {
        if !roles
            .iter()
            .any(|r| r.kind == kind && r.principal == principal)
        {
            roles.push(CloudRole {
                kind,
                principal: principal.to_string(),
                source: IdentitySource::Api,
                origin: origin.to_string(),
            });
        }
    };
    if let Some(account) = account {
        if let Some(arn) = &account.aws_role_arn {
            add(
                CloudRoleKind::AwsIrsa,
                arn,
                "serviceaccount annotation eks.amazonaws.com/role-arn",
            );
        }
        if let Some(gsa) = &account.gcp_service_account {
            add(
                CloudRoleKind::GkeWorkloadIdentity,
                gsa,
                "serviceaccount annotation iam.gke.io/gcp-service-account",
            );
        }
        // The Azure webhook only acts on pods that opt in with the label.
        if let (Some(client_id), true) = (&account.azure_client_id, pod.azure_workload_identity) {
            add(
                CloudRoleKind::AzureWorkloadIdentity,
                client_id,
                "serviceaccount annotation azure.workload.identity/client-id",
            );
        }
    }
    // Without a known container, any container's role may be the one in use.
    let env_sources: Vec<&ContainerRecord> = match container {
        Some(c) => vec![c],
        None => pod.containers.iter().collect(),
    };
    for c in env_sources {
        if let Some(arn) = &c.aws_role_arn {
            add(CloudRoleKind::AwsIrsa, arn, "pod env AWS_ROLE_ARN");
        }
        if let Some(client_id) = &c.azure_client_id {
            add(
                CloudRoleKind::AzureWorkloadIdentity,
                client_id,
                "pod env AZURE_CLIENT_ID",
            );
        }
    }
    PodIdentity {
        source: IdentitySource::Api,
        namespace: Some(pod.namespace.clone()),
        name: Some(pod.name.clone()),
        uid: Some(pod.uid.clone()),
        node: pod.node.clone(),
        container_name: container.map(|c| c.name.clone()),
        image: container.and_then(|c| c.image.clone()),
        image_id: container.and_then(|c| c.image_id.clone()),
        workload: Some(workload::workload_from_owners(
            &pod.name,
            pod.owner.as_ref(),
            parent,
            pod.template_hash.as_deref(),
        )),
        service_account: pod.service_account.clone(),
        cloud_roles: roles,
    }
}

type ObjectKey = (String, String, String);

/// The pods of this node and the objects around them, as last seen.
#[derive(Debug, Default)]
pub struct KubeState {
    pods: HashMap<String, PodRecord>,
    /// Container id to (pod UID, container name).
    containers: HashMap<String, (String, String)>,
    /// (namespace, kind, name) of a ReplicaSet or Job to its owner, and when it was read.
    parents: HashMap<ObjectKey, (ParentOwner, Instant)>,
    /// (namespace, name) of a ServiceAccount to its record, when it was read, and whether that
    /// read succeeded.
    service_accounts: HashMap<(String, String), (Option<ServiceAccountRecord>, Instant)>,
}

impl KubeState {
    fn index(&mut self, pod: &PodRecord) {
        for c in &pod.containers {
            if let Some(id) = &c.id {
                self.containers
                    .insert(id.clone(), (pod.uid.clone(), c.name.clone()));
            }
        }
    }

    fn upsert(&mut self, pod: PodRecord) {
        self.remove(&pod.uid);
        self.index(&pod);
        self.pods.insert(pod.uid.clone(), pod);
    }

    fn remove(&mut self, uid: &str) {
        if self.pods.remove(uid).is_some() {
            self.containers.retain(|_, (pod_uid, _)| pod_uid != uid);
        }
    }

    fn replace(&mut self, pods: HashMap<String, PodRecord>) {
        self.pods = pods;
        self.containers.clear();
        let pods: Vec<PodRecord> = self.pods.values().cloned().collect();
        for pod in &pods {
            self.index(pod);
        }
        self.prune();
    }

    /// Drops cached owners and service accounts no pod refers to any more.
    fn prune(&mut self) {
        let mut parents = HashSet::new();
        let mut accounts = HashSet::new();
        for pod in self.pods.values() {
            if let Some(owner) = &pod.owner {
                parents.insert((
                    pod.namespace.clone(),
                    owner.kind.clone(),
                    owner.name.clone(),
                ));
            }
            if let Some(sa) = &pod.service_account {
                accounts.insert((pod.namespace.clone(), sa.clone()));
            }
        }
        self.parents.retain(|k, _| parents.contains(k));
        self.service_accounts.retain(|k, _| accounts.contains(k));
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// The identity of a container (by runtime id), or else of a pod (by UID) as a whole.
    /// Also returns the runtime named by the container's status.
    pub fn lookup(
        &self,
        container_id: Option<&str>,
        pod_uid: Option<&str>,
    ) -> Option<(PodIdentity, Option<ContainerRuntime>)> {
        let by_container = container_id
            .and_then(|id| self.containers.get(id))
            .and_then(|(uid, name)| Some((self.pods.get(uid)?, Some(name.as_str()))));
        let (pod, container_name) =
            by_container.or_else(|| Some((self.pods.get(pod_uid?)?, None)))?;
        let parent = pod
            .owner
            .as_ref()
            .filter(|o| workload::needs_parent(&o.kind))
            .and_then(|o| {
                self.parents
                    .get(&(pod.namespace.clone(), o.kind.clone(), o.name.clone()))
            })
            .map(|(p, _)| p.clone())
            .unwrap_or(ParentOwner::Unknown);
        let account = pod.service_account.as_ref().and_then(|sa| {
            self.service_accounts
                .get(&(pod.namespace.clone(), sa.clone()))
                .and_then(|(record, _)| record.as_ref())
        });
        let runtime = container_name
            .and_then(|n| pod.containers.iter().find(|c| c.name == n))
            .and_then(|c| c.runtime);
        Some((pod_identity(pod, container_name, &parent, account), runtime))
    }
}

/// What the watcher task and the resolver share.
#[derive(Debug, Default)]
pub struct Shared {
    pub state: RwLock<KubeState>,
    /// Bumped on every change of `state`, so cached identities know they are stale.
    pub generation: AtomicU64,
    /// The initial list of pods has been received at least once.
    pub synced: AtomicBool,
    warnings: Mutex<Vec<String>>,
}

impl Shared {
    pub fn warn(&self, message: String) {
        let mut warnings = self.warnings.lock().unwrap_or_else(|e| e.into_inner());
        if warnings.len() < MAX_WARNINGS && !warnings.contains(&message) {
            warnings.push(message);
        }
    }

    pub fn warnings(&self) -> Vec<String> {
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, KubeState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut KubeState)) {
        change(&mut self.state.write().unwrap_or_else(|e| e.into_inner()));
        self.generation.fetch_add(1, Ordering::Release);
    }
}

/// The advice every API failure ends with.
fn fallback_advice() -> &'static str {
    "or pass --no-kubernetes; falling back to service-account tokens and process environments"
}

/// An actionable message for a failed API call; `what` says which call (e.g. "listing pods on
/// node n1").
pub fn describe_api_error(error: &kube::Error, what: &str) -> String {
    match error {
        kube::Error::Api(status) if status.code == 403 => format!(
            "no access to the Kubernetes API (403 {what}): grant list/watch on pods and get on \
             serviceaccounts, replicasets and jobs to the collector's service account, {}",
            fallback_advice()
        ),
        kube::Error::Api(status) if status.code == 401 => format!(
            "the Kubernetes API rejected the collector's credentials (401 {what}): check the \
             kubeconfig or the mounted service-account token, {}",
            fallback_advice()
        ),
        kube::Error::Api(status) => format!(
            "the Kubernetes API answered {} {} ({what}): {}; {}",
            status.code,
            status.reason,
            status.message,
            fallback_advice()
        ),
        kube::Error::HyperError(_) | kube::Error::Service(_) => format!(
            "cannot reach the Kubernetes API server ({what}: {error}): check the kubeconfig or \
             in-cluster networking, {}",
            fallback_advice()
        ),
        other => format!(
            "Kubernetes API error ({what}): {other}; {}",
            fallback_advice()
        ),
    }
}

fn describe_watch_error(error: &watcher::Error, node: &str) -> String {
    let what = format!("watching pods on node {node}");
    match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => describe_api_error(e, &what),
        watcher::Error::WatchError(status) => {
            describe_api_error(&kube::Error::Api(status.clone()), &what)
        }
        watcher::Error::NoResourceVersion => format!(
            "the Kubernetes API sent pods without resourceVersion ({what}); {}",
            fallback_advice()
        ),
    }
}

/// Lists pods on `node` once, so that start-up reports a missing permission or an unreachable
/// server straight away instead of at the watcher's first retry.
pub async fn probe(client: &Client, node: &str, timeout: Duration) -> Result<(), String> {
    let api: Api<Pod> = Api::all(client.clone());
    let params = kube::api::ListParams::default()
        .fields(&format!("spec.nodeName={node}"))
        .limit(1);
    let what = format!("listing pods on node {node}");
    match tokio::time::timeout(timeout, api.list(&params)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(describe_api_error(&e, &what)),
        Err(_) => Err(format!(
            "cannot reach the Kubernetes API server ({what}: no answer in {}s): check the \
             kubeconfig or in-cluster networking, {}",
            timeout.as_secs(),
            fallback_advice()
        )),
    }
}

/// Reads what a pod's identity needs beside the pod itself, unless cached.
struct Enricher {
    client: Client,
    shared: Arc<Shared>,
}

impl Enricher {
    async fn enrich(&self, pod: &PodRecord) {
        self.ensure_parent(pod).await;
        self.ensure_service_account(pod).await;
    }

    async fn ensure_parent(&self, pod: &PodRecord) {
        let Some(owner) = pod
            .owner
            .as_ref()
            .filter(|o| workload::needs_parent(&o.kind))
        else {
            return;
        };
        let key = (
            pod.namespace.clone(),
            owner.kind.clone(),
            owner.name.clone(),
        );
        let fresh = match self.shared.read().parents.get(&key) {
            Some((ParentOwner::Known(_), _)) => true,
            Some((ParentOwner::Unknown, at)) => at.elapsed() < RETRY_AFTER,
            None => false,
        };
        if fresh {
            return;
        }
        let what = format!(
            "getting {} {}/{}",
            owner.kind.to_lowercase(),
            pod.namespace,
            owner.name
        );
        let owners = if owner.kind == "ReplicaSet" {
            Api::<ReplicaSet>::namespaced(self.client.clone(), &pod.namespace)
                .get_opt(&owner.name)
                .await
                .map(|o| o.map(|o| o.metadata.owner_references))
        } else {
            Api::<Job>::namespaced(self.client.clone(), &pod.namespace)
                .get_opt(&owner.name)
                .await
                .map(|o| o.map(|o| o.metadata.owner_references))
        };
        let parent = match owners {
            Ok(Some(refs)) => ParentOwner::Known(refs.as_deref().and_then(controlling_owner)),
            // Gone already (a finished rollout): the name still tells the workload.
            Ok(None) => ParentOwner::Unknown,
            Err(e) => {
                self.shared.warn(describe_api_error(&e, &what));
                ParentOwner::Unknown
            }
        };
        self.shared.update(|state| {
            state.parents.insert(key, (parent, Instant::now()));
        });
    }

    async fn ensure_service_account(&self, pod: &PodRecord) {
        let Some(name) = &pod.service_account else {
            return;
        };
        let key = (pod.namespace.clone(), name.clone());
        let fresh = match self.shared.read().service_accounts.get(&key) {
            Some((Some(_), at)) => at.elapsed() < SERVICE_ACCOUNT_TTL,
            Some((None, at)) => at.elapsed() < RETRY_AFTER,
            None => false,
        };
        if fresh {
            return;
        }
        let record = match Api::<ServiceAccount>::namespaced(self.client.clone(), &pod.namespace)
            .get_opt(name)
            .await
        {
            Ok(Some(account)) => Some(service_account_record(&account)),
            Ok(None) => Some(ServiceAccountRecord::default()),
            Err(e) => {
                let what = format!("getting serviceaccount {}/{name}", pod.namespace);
                self.shared.warn(describe_api_error(&e, &what));
                None
            }
        };
        self.shared.update(|state| {
            // A failed refresh keeps the last good record.
            let previous = state.service_accounts.remove(&key).and_then(|(r, _)| r);
            state
                .service_accounts
                .insert(key, (record.or(previous), Instant::now()));
        });
    }
}

/// Watches the pods on `node` until the task is aborted. Errors become warnings; the watcher
/// retries with kube's default backoff.
pub async fn watch_pods(client: Client, node: String, shared: Arc<Shared>) {
    let api: Api<Pod> = Api::all(client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let enricher = Enricher {
        client,
        shared: shared.clone(),
    };
    let stream = watcher::watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    let mut pending: Option<HashMap<String, PodRecord>> = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => pending = Some(HashMap::new()),
            Ok(Event::InitApply(pod)) => {
                if let Some(record) = pod_record(&pod) {
                    enricher.enrich(&record).await;
                    pending
                        .get_or_insert_with(HashMap::new)
                        .insert(record.uid.clone(), record);
                }
            }
            Ok(Event::InitDone) => {
                let pods = pending.take().unwrap_or_default();
                if pods.is_empty() {
                    shared.warn(format!(
                        "the Kubernetes API lists no pods on node {node:?}: if this is not an \
                         empty node, the node name is wrong; set NODE_NAME from the downward \
                         API (fieldRef spec.nodeName) or pass --node-name"
                    ));
                }
                // Synced is set before the generation moves, so whoever sees the new pods
                // also sees it.
                shared.update(|state| {
                    state.replace(pods);
                    shared.synced.store(true, Ordering::Release);
                });
            }
            Ok(Event::Apply(pod)) => {
                if let Some(record) = pod_record(&pod) {
                    enricher.enrich(&record).await;
                    shared.update(|state| state.upsert(record));
                }
            }
            Ok(Event::Delete(pod)) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    let uid = uid.to_ascii_lowercase();
                    shared.update(|state| {
                        state.remove(&uid);
                        state.prune();
                    });
                }
            }
            Err(e) => shared.warn(describe_watch_error(&e, &node)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CONTAINER_ID: &str = "4f2a9c1b7d3e4a5b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d";
    const SIDECAR_ID: &str = "0000000000000000000000000000000000000000000000000000000000000001";

    /// A pod in the shape `kubectl get pod -o json` prints for a Deployment pod on EKS with
    /// IRSA (trimmed of fields identity does not read).
    fn pod_json() -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "research-agent-7d9f8b6c5d-x2x4z",
                "generateName": "research-agent-7d9f8b6c5d-",
                "namespace": "agents",
                "uid": "5F1C7A0E-8C1D-4A51-9D2E-0B7F3C1A2D4E",
                "labels": {"app": "research-agent", "pod-template-hash": "7d9f8b6c5d"},
                "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "research-agent-7d9f8b6c5d", "uid": "a0b1c2d3-0000-4000-8000-000000000002",
                    "controller": true, "blockOwnerDeletion": true
                }]
            },
            "spec": {
                "nodeName": "node-1",
                "serviceAccountName": "research-agent",
                "containers": [
                    {"name": "agent", "image": "ghcr.io/example/agent:1.4",
                     "env": [{"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::111122223333:role/research"},
                             {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"}]},
                    {"name": "proxy", "image": "envoyproxy/envoy:v1.30.1"}
                ]
            },
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {"name": "agent", "containerID": format!("containerd://{CONTAINER_ID}"),
                     "image": "ghcr.io/example/agent:1.4", "imageID": "ghcr.io/example/agent@sha256:abc",
                     "ready": true, "restartCount": 0},
                    {"name": "proxy", "containerID": format!("containerd://{SIDECAR_ID}"),
                     "image": "docker.io/envoyproxy/envoy:v1.30.1", "imageID": "docker.io/envoyproxy/envoy@sha256:def",
                     "ready": true, "restartCount": 0}
                ]
            }
        })
    }

    fn pod() -> Pod {
        serde_json::from_value(pod_json()).unwrap()
    }

    #[test]
    fn pod_record_reads_the_real_shape() {
        let record = pod_record(&pod()).unwrap();
        assert_eq!(record.namespace, "agents");
        assert_eq!(record.uid, "5f1c7a0e-8c1d-4a51-9d2e-0b7f3c1a2d4e");
        assert_eq!(record.node.as_deref(), Some("node-1"));
        assert_eq!(
            record.owner,
            Some(Owner {
                kind: "ReplicaSet".into(),
                name: "research-agent-7d9f8b6c5d".into()
            })
        );
        assert_eq!(record.template_hash.as_deref(), Some("7d9f8b6c5d"));
        let agent = &record.containers[0];
        assert_eq!(agent.id.as_deref(), Some(CONTAINER_ID));
        assert_eq!(agent.runtime, Some(ContainerRuntime::Containerd));
        assert_eq!(
            agent.aws_role_arn.as_deref(),
            Some("arn:aws:iam::111122223333:role/research")
        );
        assert_eq!(
            agent.image_id.as_deref(),
            Some("ghcr.io/example/agent@sha256:abc")
        );
        assert_eq!(record.containers[1].aws_role_arn, None);
    }

    #[test]
    fn pods_without_name_or_uid_are_skipped() {
        let mut value = pod_json();
        value["metadata"].as_object_mut().unwrap().remove("uid");
        assert_eq!(pod_record(&serde_json::from_value(value).unwrap()), None);
        let pending: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "n", "uid": "u"}}),
        )
        .unwrap();
        let record = pod_record(&pending).unwrap();
        assert!(record.containers.is_empty());
        assert_eq!(record.service_account.as_deref(), Some("default"));
    }

    #[test]
    fn container_ids_from_statuses() {
        assert_eq!(
            split_container_id("cri-o://ABC"),
            Some(("abc".into(), ContainerRuntime::CriO))
        );
        assert_eq!(split_container_id("containerd://"), None);
        assert_eq!(split_container_id("nonsense"), None);
    }

    fn account(annotations: serde_json::Value) -> ServiceAccountRecord {
        service_account_record(
            &serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "research-agent", "namespace": "agents", "annotations": annotations}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn identity_with_irsa_and_deployment() {
        let record = pod_record(&pod()).unwrap();
        let sa = account(
            json!({"eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/research"}),
        );
        let parent = ParentOwner::Known(Some(Owner {
            kind: "Deployment".into(),
            name: "research-agent".into(),
        }));
        let identity = pod_identity(&record, Some("agent"), &parent, Some(&sa));
        assert_eq!(identity.source, IdentitySource::Api);
        assert_eq!(identity.container_name.as_deref(), Some("agent"));
        assert_eq!(identity.image.as_deref(), Some("ghcr.io/example/agent:1.4"));
        let workload = identity.workload.unwrap();
        assert_eq!(
            (
                workload.kind.as_str(),
                workload.name.as_str(),
                workload.inferred
            ),
            ("Deployment", "research-agent", false)
        );
        assert_eq!(identity.service_account.as_deref(), Some("research-agent"));
        // Annotation and injected env name the same role: reported once, with its first origin.
        assert_eq!(identity.cloud_roles.len(), 1);
        assert_eq!(identity.cloud_roles[0].kind, CloudRoleKind::AwsIrsa);
        assert_eq!(
            identity.cloud_roles[0].origin,
            "serviceaccount annotation eks.amazonaws.com/role-arn"
        );
        // The sidecar carries no role env of its own, but the service account's role applies.
        let proxy = pod_identity(&record, Some("proxy"), &parent, Some(&sa));
        assert_eq!(proxy.cloud_roles.len(), 1);
        let proxy = pod_identity(&record, Some("proxy"), &parent, None);
        assert!(proxy.cloud_roles.is_empty());
    }

    #[test]
    fn gke_and_azure_roles() {
        let mut value = pod_json();
        value["metadata"]["labels"][AZURE_USE_LABEL] = json!("true");
        let record = pod_record(&serde_json::from_value(value).unwrap()).unwrap();
        let sa = account(json!({
            "iam.gke.io/gcp-service-account": "agent@proj.iam.gserviceaccount.com",
            "azure.workload.identity/client-id": "00000000-1111-2222-3333-444444444444"
        }));
        let identity = pod_identity(&record, Some("proxy"), &ParentOwner::Unknown, Some(&sa));
        let kinds: Vec<CloudRoleKind> = identity.cloud_roles.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                CloudRoleKind::GkeWorkloadIdentity,
                CloudRoleKind::AzureWorkloadIdentity
            ]
        );
        // Without the opt-in label the Azure annotation grants nothing.
        let record = pod_record(&pod()).unwrap();
        let identity = pod_identity(&record, Some("proxy"), &ParentOwner::Unknown, Some(&sa));
        assert_eq!(identity.cloud_roles.len(), 1);
        // Unknown ReplicaSet owner: Deployment inferred from the template hash.
        let workload = identity.workload.unwrap();
        assert_eq!(
            (
                workload.kind.as_str(),
                workload.name.as_str(),
                workload.inferred
            ),
            ("Deployment", "research-agent", true)
        );
    }

    #[test]
    fn state_lookup_by_container_then_pod_and_removal() {
        let mut state = KubeState::default();
        state.upsert(pod_record(&pod()).unwrap());
        let (identity, runtime) = state.lookup(Some(SIDECAR_ID), None).unwrap();
        assert_eq!(identity.container_name.as_deref(), Some("proxy"));
        assert_eq!(runtime, Some(ContainerRuntime::Containerd));
        let uid = "5f1c7a0e-8c1d-4a51-9d2e-0b7f3c1a2d4e";
        let (identity, runtime) = state.lookup(Some("feed"), Some(uid)).unwrap();
        assert_eq!(identity.container_name, None);
        assert_eq!(
            identity.name.as_deref(),
            Some("research-agent-7d9f8b6c5d-x2x4z")
        );
        assert_eq!(runtime, None);
        assert!(state.lookup(None, None).is_none());
        state.remove(uid);
        assert!(state.lookup(Some(CONTAINER_ID), Some(uid)).is_none());
        assert!(state.containers.is_empty());
    }

    #[tokio::test]
    async fn https_clients_build_with_the_bundled_crypto_provider() {
        let config = kube::Config::new("https://127.0.0.1:6443".parse().unwrap());
        assert!(kube::Client::try_from(config).is_ok());
    }

    #[test]
    fn actionable_api_errors() {
        let forbidden = kube::Error::Api(
            kube::core::Status::failure("pods is forbidden", "Forbidden")
                .with_code(403)
                .boxed(),
        );
        let message = describe_api_error(&forbidden, "listing pods on node n1");
        assert!(message.contains("403 listing pods on node n1"), "{message}");
        assert!(message.contains("grant list/watch on pods"), "{message}");
        assert!(message.contains("--no-kubernetes"), "{message}");
    }
}
