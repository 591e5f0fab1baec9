//! The Kubernetes objects that declare what a workload may do, read from the API for posture
//! (`agentscope posture --cluster-from-api`): pods (specs, labels, addresses), namespaces,
//! ServiceAccounts, Roles, ClusterRoles, RoleBindings, ClusterRoleBindings and
//! NetworkPolicies, in every namespace, page by page. They come back as the API's JSON (with
//! `kind` and `apiVersion`), which the analysis layer reads; this crate does not interpret
//! them. deploy/clusterrole.yaml grants the `list` each of these needs.
//!
//! The collector also reads them at start and every [`SNAPSHOT_INTERVAL`]
//! ([`DeclaredObjectsWatch`]) and hands each snapshot that differs from the last one to the
//! pipeline as a `cluster_objects` event, so a recording carries the declared side of posture.
//! Those bytes leave the process (recordings, consoles, JSON lines), so each object is first
//! cut to what posture reads ([`redact_object`]: no env value, annotation, command line, probe
//! or status message), and a snapshot is bounded ([`MAX_SNAPSHOT_BYTES`], and
//! [`MAX_DECLARED_OBJECTS`] read): what does not fit is left out, counted, and warned about.
//!
//! Memory: the watch redacts and cuts while it reads ([`SnapshotBuilder`]), so a read holds one
//! page of the API's answer and at most one snapshot's objects, and between reads it keeps only
//! a hash of the last snapshot. The snapshot handed to the pipeline is an event like any other:
//! the pipeline keeps the last one for its keyframes, charged to its memory budget, and the
//! console's posture view what it derives from it.

mod bounded_snapshot;

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentscope_event::cluster_objects::ClusterObjects;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::ListParams;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use bounded_snapshot::{snapshot, SnapshotBuilder};

/// Objects read at most, over all kinds (a cluster larger than this is cut, with an error).
pub const MAX_DECLARED_OBJECTS: usize = 200_000;
/// Objects per page.
const PAGE: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum DeclaredObjectsError {
    #[error(
        "listing {what} is forbidden ({reason}): grant list on them (deploy/clusterrole.yaml has the rules)"
    )]
    Forbidden { what: &'static str, reason: String },
    #[error("listing {what}: {reason}")]
    Api { what: &'static str, reason: String },
    #[error("more than {MAX_DECLARED_OBJECTS} objects: posture needs a smaller scope")]
    TooMany,
}

/// How often the collector reads the objects again (a snapshot is emitted only on a change).
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(60);
/// Bytes of objects (as JSON, after redaction) one snapshot carries at most.
pub const MAX_SNAPSHOT_BYTES: usize = 4 << 20;
/// Distinct warnings kept (the same failure every minute is one warning).
const MAX_WARNINGS: usize = 16;

/// Where listed objects go: all of them (`posture --cluster-from-api`), or a snapshot that keeps
/// only what it will carry (the collector's watch).
trait ObjectSink {
    fn take(&mut self, object: serde_json::Value);
}

/// The one-shot read's sink ([`read_declared_objects`]): each object is cut to what posture
/// reads as it arrives, so a large cluster's env values, annotations and command lines are
/// never held (up to [`MAX_DECLARED_OBJECTS`] of them, whole) and never reach posture.
struct RedactedObjects(Vec<serde_json::Value>);

impl ObjectSink for RedactedObjects {
    fn take(&mut self, mut object: serde_json::Value) {
        redact_object(&mut object);
        self.0.push(object);
    }
}

impl ObjectSink for SnapshotBuilder {
    fn take(&mut self, object: serde_json::Value) {
        self.add(object);
    }
}

/// Lists every `K` into `out`, page by page, until `read` (objects taken so far, over all
/// kinds) reaches `cap`; returns how many were left out past it (at most one page's worth is
/// counted: the rest is not read). One page (`PAGE` objects as the API sent them) is held at a
/// time.
async fn list_all<K>(
    client: &Client,
    what: &'static str,
    out: &mut impl ObjectSink,
    read: &mut usize,
    cap: usize,
) -> Result<u64, DeclaredObjectsError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api.list(&params).await.map_err(|e| match &e {
            kube::Error::Api(status) if status.code == 403 => DeclaredObjectsError::Forbidden {
                what,
                reason: status.message.clone(),
            },
            _ => DeclaredObjectsError::Api {
                what,
                reason: e.to_string(),
            },
        })?;
        let mut omitted = 0;
        for item in page.items {
            if *read >= cap {
                omitted += 1;
                continue;
            }
            *read += 1;
            // k8s-openapi writes `kind` and `apiVersion` for typed objects.
            if let Ok(value) = serde_json::to_value(&item) {
                out.take(value);
            }
        }
        if omitted > 0 {
            return Ok(omitted);
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(0),
        }
    }
}

/// Every object posture compares against, from the API `client` reaches, by kind, with the
/// objects left out past `cap` (over all kinds) by kind.
async fn read_by_kind(
    client: &Client,
    out: &mut impl ObjectSink,
    cap: usize,
) -> Result<BTreeMap<String, u64>, DeclaredObjectsError> {
    let mut omitted = BTreeMap::new();
    let mut read = 0;
    let mut note = |kind: &str, n: u64| {
        if n > 0 {
            omitted.insert(kind.to_string(), n);
        }
    };
    let r = &mut read;
    note("Pod", list_all::<Pod>(client, "pods", out, r, cap).await?);
    note(
        "Namespace",
        list_all::<Namespace>(client, "namespaces", out, r, cap).await?,
    );
    note(
        "ServiceAccount",
        list_all::<ServiceAccount>(client, "serviceaccounts", out, r, cap).await?,
    );
    note(
        "Role",
        list_all::<Role>(client, "roles", out, r, cap).await?,
    );
    note(
        "ClusterRole",
        list_all::<ClusterRole>(client, "clusterroles", out, r, cap).await?,
    );
    note(
        "RoleBinding",
        list_all::<RoleBinding>(client, "rolebindings", out, r, cap).await?,
    );
    note(
        "ClusterRoleBinding",
        list_all::<ClusterRoleBinding>(client, "clusterrolebindings", out, r, cap).await?,
    );
    note(
        "NetworkPolicy",
        list_all::<NetworkPolicy>(client, "networkpolicies", out, r, cap).await?,
    );
    Ok(omitted)
}

/// Every object posture compares against, from the API `client` reaches, each cut to what
/// posture reads ([`redact_object`]) as it arrives.
pub async fn read_declared_objects(
    client: &Client,
) -> Result<Vec<serde_json::Value>, DeclaredObjectsError> {
    let mut out = RedactedObjects(Vec::new());
    let omitted = read_by_kind(client, &mut out, MAX_DECLARED_OBJECTS).await?;
    if !omitted.is_empty() {
        return Err(DeclaredObjectsError::TooMany);
    }
    Ok(out.0)
}

/// Container fields posture reads; everything else (command, args, probes, lifecycle hooks,
/// resources) is dropped: command lines and probe headers can hold secrets.
const CONTAINER_FIELDS: &[&str] = &[
    "name",
    "image",
    "ports",
    "env",
    "envFrom",
    "volumeMounts",
    "securityContext",
];
/// Pod spec fields posture reads.
const POD_SPEC_FIELDS: &[&str] = &[
    "containers",
    "initContainers",
    "ephemeralContainers",
    "volumes",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "nodeName",
    "hostNetwork",
    "hostPID",
    "hostIPC",
    "securityContext",
];
/// Volume fields kept: the name and the sources that hold only references. Others go whole
/// (CSI `volumeAttributes` and FlexVolume `options` can hold credentials, a `gitRepo` URL
/// a token); every source is optional, so a volume of only its name still reads as one.
const VOLUME_FIELDS: &[&str] = &[
    "name",
    "secret",
    "projected",
    "configMap",
    "downwardAPI",
    "emptyDir",
    "hostPath",
    "persistentVolumeClaim",
];
/// Pod status fields posture reads (addresses for NetworkPolicy peers).
const POD_STATUS_FIELDS: &[&str] = &["podIP", "podIPs", "hostIP", "phase"];
/// Metadata fields kept: annotations go (`kubectl.kubernetes.io/last-applied-configuration`
/// holds a whole spec, env values included; other annotations may hold tokens), and so do
/// `managedFields`, `resourceVersion` and timestamps (they change without the declared side
/// changing, and would make every read a new snapshot).
const METADATA_FIELDS: &[&str] = &["name", "namespace", "labels"];

fn keep_only(value: &mut serde_json::Value, fields: &[&str]) {
    if let Some(map) = value.as_object_mut() {
        map.retain(|key, _| fields.contains(&key.as_str()));
    }
}

/// Cuts one object to what posture reads, so no secret leaves the process with it: metadata
/// without annotations; for pods, containers without command lines, probes or lifecycle
/// hooks, env entries without their `value` (names and `valueFrom` references stay), volumes
/// with their reference-only sources ([`VOLUME_FIELDS`]), and the status's addresses only.
pub fn redact_object(object: &mut serde_json::Value) {
    if let Some(metadata) = object.get_mut("metadata") {
        keep_only(metadata, METADATA_FIELDS);
    }
    if object["kind"] != "Pod" {
        return;
    }
    if let Some(spec) = object.get_mut("spec") {
        keep_only(spec, POD_SPEC_FIELDS);
        for list in ["containers", "initContainers", "ephemeralContainers"] {
            let Some(containers) = spec.get_mut(list).and_then(|c| c.as_array_mut()) else {
                continue;
            };
            for container in containers {
                keep_only(container, CONTAINER_FIELDS);
                let Some(env) = container.get_mut("env").and_then(|e| e.as_array_mut()) else {
                    continue;
                };
                for variable in env {
                    keep_only(variable, &["name", "valueFrom"]);
                }
            }
        }
        if let Some(volumes) = spec.get_mut("volumes").and_then(|v| v.as_array_mut()) {
            for volume in volumes {
                keep_only(volume, VOLUME_FIELDS);
            }
        }
    }
    if let Some(status) = object.get_mut("status") {
        keep_only(status, POD_STATUS_FIELDS);
    }
}

/// The collector's periodic read of the declared objects: a task that reads them at start and
/// every `interval`, and hands over each snapshot that differs from the one before.
pub struct DeclaredObjectsWatch {
    snapshots: tokio::sync::mpsc::Receiver<ClusterObjects>,
    warnings: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl DeclaredObjectsWatch {
    /// Starts the task (inside a tokio runtime) with the identity resolver's `client`.
    pub fn start(client: Client, node_name: Option<String>, interval: Duration) -> Self {
        let (sender, snapshots) = tokio::sync::mpsc::channel(2);
        let warnings = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(watch(
            client,
            node_name,
            interval,
            sender,
            Arc::clone(&warnings),
        ));
        DeclaredObjectsWatch {
            snapshots,
            warnings,
            task,
        }
    }

    /// The next changed snapshot (cancel-safe; pending forever once the task ended).
    pub async fn next(&mut self) -> Option<ClusterObjects> {
        match self.snapshots.recv().await {
            Some(snapshot) => Some(snapshot),
            None => std::future::pending().await,
        }
    }

    /// [`next`](Self::next) of `watch`, pending forever without one (a `select!` branch for a
    /// collector that may have no API).
    pub async fn next_of(watch: &mut Option<Self>) -> Option<ClusterObjects> {
        match watch {
            Some(watch) => watch.next().await,
            None => std::future::pending().await,
        }
    }

    /// Why a read failed or a snapshot was cut (each distinct reason once).
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().map(|w| w.clone()).unwrap_or_default()
    }
}

impl Drop for DeclaredObjectsWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn warn(warnings: &Mutex<Vec<String>>, warning: String) {
    if let Ok(mut warnings) = warnings.lock() {
        if !warnings.contains(&warning) && warnings.len() < MAX_WARNINGS {
            warnings.push(warning);
        }
    }
}

async fn watch(
    client: Client,
    node_name: Option<String>,
    interval: Duration,
    sender: tokio::sync::mpsc::Sender<ClusterObjects>,
    warnings: Arc<Mutex<Vec<String>>>,
) {
    // The last snapshot handed over, as a keyed hash of its JSON: holding the snapshot itself
    // to compare would keep up to `MAX_SNAPSHOT_BYTES` of objects (several times that as
    // parsed JSON) between reads, outside the memory budget. The key is random per collector,
    // so objects cannot be chosen to collide with the last snapshot and hide a change.
    let hasher = std::collections::hash_map::RandomState::new();
    let mut last: Option<u64> = None;
    let mut timer = tokio::time::interval(interval.max(Duration::from_millis(100)));
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        // A read that fails is no snapshot: posture over a snapshot missing its
        // NetworkPolicies would call every pod's egress unrestricted.
        let mut builder = SnapshotBuilder::new(node_name.as_deref(), MAX_SNAPSHOT_BYTES);
        let omitted = match read_by_kind(&client, &mut builder, MAX_DECLARED_OBJECTS).await {
            Ok(omitted) => omitted,
            Err(e) => {
                warn(
                    &warnings,
                    format!("the cluster's declared objects (for posture) were not read: {e}"),
                );
                continue;
            }
        };
        builder.note_omitted(&omitted);
        let snapshot = builder.finish();
        let digest = snapshot_digest(&hasher, &snapshot);
        if last == Some(digest) {
            continue;
        }
        if snapshot.truncated {
            let omitted: Vec<String> = snapshot
                .omitted
                .iter()
                .map(|(kind, n)| format!("{kind} {n}"))
                .collect();
            warn(
                &warnings,
                format!(
                    "the cluster's declared objects were cut to {} MiB ({} objects) for                      posture: left out {}; a posture over the recording may miss grants or                      policies",
                    MAX_SNAPSHOT_BYTES >> 20,
                    snapshot.objects.len(),
                    omitted.join(", ")
                ),
            );
        }
        last = Some(digest);
        if sender.send(snapshot).await.is_err() {
            return;
        }
    }
}

/// A keyed hash of `snapshot`'s JSON (what the watch compares reads by).
fn snapshot_digest(hasher: &impl BuildHasher, snapshot: &ClusterObjects) -> u64 {
    struct HashWriter<H>(H);
    impl<H: Hasher> std::io::Write for HashWriter<H> {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.write(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut writer = HashWriter(hasher.build_hasher());
    // Streamed into the hasher: no second copy of the snapshot's JSON.
    if serde_json::to_writer(&mut writer, snapshot).is_err() {
        return 0;
    }
    writer.0.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: &str) -> serde_json::Value {
        json!({
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {
                "name": name, "namespace": "support", "labels": {"app": "agent"},
                "resourceVersion": "42",
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration":
                        "{\"spec\":{\"containers\":[{\"env\":[{\"name\":\"DB_PASSWORD\",\"value\":\"hunter2-in-annotation\"}]}]}}"
                },
                "managedFields": [{"manager": "kubectl"}]
            },
            "spec": {
                "nodeName": node,
                "serviceAccountName": "support-agent",
                "containers": [{
                    "name": "agent", "image": "python:3.12",
                    "command": ["python", "agent.py", "--token=hunter2-in-argv"],
                    "env": [
                        {"name": "DB_PASSWORD", "value": "hunter2-in-env"},
                        {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "llm", "key": "key"}}}
                    ],
                    "livenessProbe": {"httpGet": {"path": "/", "port": 80,
                        "httpHeaders": [{"name": "Authorization", "value": "Bearer hunter2-in-probe"}]}},
                    "volumeMounts": [{"name": "creds", "mountPath": "/var/run/creds"}]
                }],
                "volumes": [
                    {"name": "creds", "secret": {"secretName": "creds"}},
                    {"name": "vault", "csi": {"driver": "vault", "volumeAttributes": {"token": "hunter2-in-csi"}}},
                    {"name": "repo", "gitRepo": {"repository": "https://bot:hunter2-in-url@git.example/repo.git"}}
                ]
            },
            "status": {"podIP": "10.0.0.7", "message": "hunter2-in-status", "phase": "Running"}
        })
    }

    /// `posture --cluster-from-api`'s read keeps objects cut as they arrive, like the watch.
    #[test]
    fn the_one_shot_read_keeps_objects_redacted() {
        let mut objects = RedactedObjects(Vec::new());
        objects.take(pod("agent-1", "node-a"));
        let text = serde_json::to_string(&objects.0).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("last-applied-configuration"), "{text}");
        assert_eq!(
            objects.0[0]["spec"]["containers"][0]["env"][0],
            json!({"name": "DB_PASSWORD"})
        );
    }

    #[test]
    fn env_values_annotations_and_command_lines_never_reach_the_snapshot() {
        let snapshot = snapshot(
            vec![pod("agent-1", "node-a")],
            BTreeMap::new(),
            Some("node-a"),
            MAX_SNAPSHOT_BYTES,
        );
        let text = serde_json::to_string(&snapshot).unwrap();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("last-applied-configuration"), "{text}");
        assert!(!text.contains("managedFields") && !text.contains("resourceVersion"));
        // What posture reads stays, and still parses as a pod.
        let pod = &snapshot.objects[0];
        assert_eq!(
            pod["spec"]["containers"][0]["env"][0],
            json!({"name": "DB_PASSWORD"})
        );
        assert_eq!(
            pod["spec"]["containers"][0]["env"][1]["valueFrom"]["secretKeyRef"]["name"],
            "llm"
        );
        assert_eq!(pod["spec"]["volumes"][0]["secret"]["secretName"], "creds");
        assert_eq!(pod["spec"]["volumes"][2], json!({"name": "repo"}));
        assert_eq!(pod["spec"]["serviceAccountName"], "support-agent");
        assert_eq!(pod["metadata"]["labels"]["app"], "agent");
        assert_eq!(pod["status"]["podIP"], "10.0.0.7");
        let parsed: Pod = serde_json::from_value(pod.clone()).unwrap();
        assert_eq!(parsed.spec.unwrap().containers[0].name, "agent");
        assert_eq!(snapshot.counts.get("Pod"), Some(&1));
        assert!(!snapshot.truncated);
        assert_eq!(
            snapshot.bytes as usize,
            serde_json::to_vec(&snapshot.objects).unwrap().len()
        );
    }

    #[test]
    fn a_snapshot_over_its_cap_keeps_the_node_s_pods_and_rbac_first_and_says_what_it_cut() {
        let role = json!({"kind": "Role", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "r", "namespace": "support"}, "rules": []});
        let objects: Vec<serde_json::Value> = (0..50)
            .map(|i| pod(&format!("other-{i}"), "node-b"))
            .chain([role, pod("mine", "node-a")])
            .collect();
        let whole = snapshot(objects.clone(), BTreeMap::new(), Some("node-a"), usize::MAX);
        assert!(!whole.truncated);
        assert_eq!(whole.objects.len(), 52);
        let cap = whole.bytes as usize / 4;
        let cut = snapshot(objects, BTreeMap::new(), Some("node-a"), cap);
        assert!(cut.truncated);
        assert!(cut.bytes as usize <= cap);
        assert_eq!(
            serde_json::to_vec(&cut.objects).unwrap().len(),
            cut.bytes as usize
        );
        assert_eq!(cut.objects[0]["metadata"]["name"], "mine");
        assert_eq!(cut.objects[1]["kind"], "Role");
        let kept_pods = cut.counts["Pod"];
        assert!(kept_pods > 1 && kept_pods < 51);
        assert_eq!(cut.omitted["Pod"] + kept_pods, 51);
        assert!(cut.describe().contains("left out"));
        // Objects the reader left out past its object cap are carried over.
        let over = snapshot(
            Vec::new(),
            [("Role".to_string(), 7)].into(),
            None,
            MAX_SNAPSHOT_BYTES,
        );
        assert!(over.truncated);
        assert_eq!(over.omitted["Role"], 7);
    }

    #[test]
    fn the_same_objects_read_again_make_the_same_snapshot() {
        let mut again = pod("agent-1", "node-a");
        again["metadata"]["resourceVersion"] = json!("43");
        again["status"]["message"] = json!("restarted");
        let first = snapshot(
            vec![pod("agent-1", "node-a")],
            BTreeMap::new(),
            None,
            MAX_SNAPSHOT_BYTES,
        );
        let second = snapshot(vec![again], BTreeMap::new(), None, MAX_SNAPSHOT_BYTES);
        assert_eq!(first, second);
        let mut relabelled = pod("agent-1", "node-a");
        relabelled["metadata"]["labels"]["app"] = json!("other");
        let third = snapshot(vec![relabelled], BTreeMap::new(), None, MAX_SNAPSHOT_BYTES);
        assert_ne!(first, third);
        // The watch compares reads by their digest under its own key.
        let key = std::collections::hash_map::RandomState::new();
        assert_eq!(
            snapshot_digest(&key, &first),
            snapshot_digest(&key, &second)
        );
        assert_ne!(snapshot_digest(&key, &first), snapshot_digest(&key, &third));
    }
}
