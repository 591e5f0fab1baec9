//! The baseline store on the Kubernetes API (`collect --baseline-store kubernetes`): what this
//! node learned of each Kubernetes agent goes to an `AgentObservation` per agent and node,
//! written by server-side apply with this node's field manager (`agentscope/NODE`) every
//! [`KubernetesBaselineStore::new`]'s interval and when the run ends; approved `AgentBaseline`s
//! are watched and handed to detection as they arrive, so every node judges an agent against
//! the same approved baseline (crates/analysis/src/baseline/custom_resources.rs has the
//! resources and the merge).
//!
//! Nothing here waits on the network in the capture loop: applies run on a task that always
//! takes the latest snapshot (an older one not yet applied is replaced, never queued), and the
//! watch runs on another task that hands changes over a channel. API failures become
//! warnings (at most [`MAX_WARNINGS`] distinct ones), never errors of the run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentscope_analysis::baseline::custom_resources::agent_hash;
use agentscope_analysis::baseline::custom_resources::{
    node_label_value, observation_name, AgentBaselineResource, AgentObservationResource,
    AgentObservationSpec, BaselineMode, AGENT_LABEL, NODE_LABEL,
};
use agentscope_event::Event;
use futures::StreamExt as _;
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Api, Client};

use crate::session::Session;
use crate::sink::Sink;
use crate::step::Step;

/// Distinct warnings kept.
const MAX_WARNINGS: usize = 32;
/// Approved baselines judged against at once (the watch sees every namespace's); beyond it a
/// newly approved agent is not loaded, and a warning says so.
pub const MAX_APPROVED: usize = 4096;

/// The field manager of a node's collector.
pub fn field_manager(node: &str) -> String {
    // Field managers are at most 128 characters.
    let mut manager = format!("agentscope/{node}");
    manager.truncate(128);
    manager
}

/// A change to the approved baselines, from the watch.
#[derive(Debug)]
enum ApprovedChange {
    Set(Box<AgentBaselineResource>),
    Removed(String),
    /// A relist ended: these agents have an approved baseline, no other does.
    Resynced(BTreeSet<String>),
}

#[derive(Default)]
struct Shared {
    warnings: Vec<String>,
    /// Generation of the last snapshot applied (or given up on).
    applied: u64,
    /// Observations applied without error.
    writes: u64,
}

impl Shared {
    fn warn(&mut self, warning: String) {
        if self.warnings.len() < MAX_WARNINGS && !self.warnings.contains(&warning) {
            self.warnings.push(warning);
        }
    }
}

/// A snapshot of what to apply, numbered.
type Snapshot = (u64, Vec<AgentObservationResource>);

pub struct KubernetesBaselineStore {
    node: String,
    interval: Duration,
    last_sync: Option<Instant>,
    generation: u64,
    /// To the writer task; `None` when only watching (the console).
    snapshots: Option<tokio::sync::watch::Sender<Snapshot>>,
    approved: tokio::sync::mpsc::UnboundedReceiver<ApprovedChange>,
    /// Agent → revision of the approved baseline detection judges it against.
    revisions: BTreeMap<String, u64>,
    shared: Arc<Mutex<Shared>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl KubernetesBaselineStore {
    /// Starts the writer and the watch on `client` (inside a tokio runtime). Observations are
    /// written every `interval` and when the run ends.
    pub fn start(client: Client, node: String, interval: Duration) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (snapshots, receiver) = tokio::sync::watch::channel((0, Vec::new()));
        let (approved_sender, approved) = tokio::sync::mpsc::unbounded_channel();
        let tasks = vec![
            tokio::spawn(write_observations(
                client.clone(),
                field_manager(&node),
                receiver,
                shared.clone(),
            )),
            tokio::spawn(watch_approved(client, approved_sender, shared.clone())),
        ];
        Self {
            node,
            interval,
            last_sync: None,
            generation: 0,
            snapshots: Some(snapshots),
            approved,
            revisions: BTreeMap::new(),
            shared,
            tasks,
        }
    }

    /// Only the watch of approved AgentBaselines, writing nothing (the console: the node's
    /// collector writes its observations, under the same field manager).
    pub fn watch_only(client: Client) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (approved_sender, approved) = tokio::sync::mpsc::unbounded_channel();
        let tasks = vec![tokio::spawn(watch_approved(
            client,
            approved_sender,
            shared.clone(),
        ))];
        Self {
            node: String::new(),
            interval: Duration::MAX,
            last_sync: None,
            generation: 0,
            snapshots: None,
            approved,
            revisions: BTreeMap::new(),
            shared,
            tasks,
        }
    }

    /// The revision of the approved baseline `agent` is judged against, if any.
    pub fn approved_revision(&self, agent: &str) -> Option<u64> {
        self.revisions.get(agent).copied()
    }

    /// Hands the approved baselines that arrived since the last call to detection.
    pub fn apply_approved(&mut self, session: &mut Session) {
        while let Ok(change) = self.approved.try_recv() {
            match change {
                ApprovedChange::Set(resource) => {
                    let agent = resource.spec.agent.clone();
                    if !self.revisions.contains_key(&agent) && self.revisions.len() >= MAX_APPROVED
                    {
                        self.shared.lock().unwrap().warn(format!(
                            "more than {MAX_APPROVED} approved AgentBaselines: later ones are \
                             not judged against"
                        ));
                        continue;
                    }
                    if resource.spec.mode == BaselineMode::Detect {
                        session.set_approved_baseline(resource.to_document());
                        self.revisions.insert(agent, resource.spec.revision);
                    } else if self.revisions.remove(&agent).is_some() {
                        session.remove_approved_baseline(&agent);
                    }
                }
                ApprovedChange::Removed(agent) => {
                    if self.revisions.remove(&agent).is_some() {
                        session.remove_approved_baseline(&agent);
                    }
                }
                ApprovedChange::Resynced(present) => {
                    let gone: Vec<String> = self
                        .revisions
                        .keys()
                        .filter(|agent| !present.contains(*agent))
                        .cloned()
                        .collect();
                    for agent in gone {
                        self.revisions.remove(&agent);
                        session.remove_approved_baseline(&agent);
                    }
                }
            }
        }
    }

    /// The observations of every Kubernetes agent as learned so far, handed to the writer.
    fn snapshot(&mut self, session: &Session) {
        if self.snapshots.is_none() {
            return;
        }
        let objects = session
            .pipeline()
            .detector()
            .learner()
            .baselines()
            .iter()
            .filter_map(|learned| {
                let spec = AgentObservationSpec::from_learned(
                    learned,
                    &self.node,
                    self.revisions.get(&learned.metadata.agent).copied(),
                )?;
                let mut object = AgentObservationResource::new(
                    &observation_name(&spec.workload, &spec.agent, &self.node),
                    spec,
                );
                object.metadata.namespace = Some(object.spec.workload.namespace.clone());
                object.metadata.labels = Some(BTreeMap::from([
                    (AGENT_LABEL.to_string(), agent_hash(&object.spec.agent)),
                    (NODE_LABEL.to_string(), node_label_value(&self.node)),
                ]));
                Some(object)
            })
            .collect();
        self.generation += 1;
        if let Some(snapshots) = &self.snapshots {
            snapshots.send_replace((self.generation, objects));
        }
    }

    /// Waits (at most `timeout`) until the last snapshot was applied; false when it was not.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.shared.lock().unwrap().applied >= self.generation {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Observations applied without error so far.
    pub fn writes(&self) -> u64 {
        self.shared.lock().unwrap().writes
    }

    /// What went wrong talking to the API (distinct messages).
    pub fn warnings(&self) -> Vec<String> {
        self.shared.lock().unwrap().warnings.clone()
    }
}

impl Drop for KubernetesBaselineStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Sink for KubernetesBaselineStore {
    fn step(&mut self, _: Option<&Event>, _: &Step, _: &Session) -> std::io::Result<()> {
        Ok(())
    }

    fn tick(&mut self, now: Instant, session: &Session) -> std::io::Result<()> {
        if self
            .last_sync
            .is_none_or(|last| now.duration_since(last) >= self.interval)
        {
            self.last_sync = Some(now);
            self.snapshot(session);
        }
        Ok(())
    }

    fn finish(&mut self, _: &Step, session: &Session) -> std::io::Result<()> {
        self.snapshot(session);
        Ok(())
    }
}

/// An actionable message for a failed call on the baseline resources.
fn describe(error: &kube::Error, what: &str) -> String {
    match error {
        kube::Error::Api(status) if status.code == 404 => format!(
            "the Kubernetes API does not serve agentscope's custom resources (404 {what}): \
             apply deploy/crds/crds.yaml (`kubectl apply -k deploy/`)"
        ),
        kube::Error::Api(status) if status.code == 403 => format!(
            "no access to agentscope's custom resources (403 {what}): the collector's role needs \
             patch on agentobservations and list/watch on agentbaselines (deploy/clusterrole.yaml)"
        ),
        kube::Error::Api(status) if status.code == 409 => format!(
            "conflict {what}: {} (another field manager owns these fields; this node's collector \
             does not take them over)",
            status.message
        ),
        other => format!("Kubernetes API error {what}: {other}"),
    }
}

async fn write_observations(
    client: Client,
    manager: String,
    mut snapshots: tokio::sync::watch::Receiver<Snapshot>,
    shared: Arc<Mutex<Shared>>,
) {
    // What was last applied without error, by object name: an unchanged observation is not
    // sent again (each would be a request to the API server every interval, on every node).
    let mut last_applied: BTreeMap<(String, String), AgentObservationSpec> = BTreeMap::new();
    while snapshots.changed().await.is_ok() {
        let (generation, objects) = snapshots.borrow_and_update().clone();
        for object in &objects {
            let namespace = object.metadata.namespace.as_deref().unwrap_or("default");
            let name = object.metadata.name.as_deref().unwrap_or_default();
            let key = (namespace.to_string(), name.to_string());
            if last_applied.get(&key) == Some(&object.spec) {
                continue;
            }
            let api: Api<AgentObservationResource> = Api::namespaced(client.clone(), namespace);
            let result = api
                .patch(name, &PatchParams::apply(&manager), &Patch::Apply(object))
                .await;
            let mut shared = shared.lock().unwrap();
            match result {
                Ok(_) => {
                    shared.writes += 1;
                    last_applied.insert(key, object.spec.clone());
                }
                Err(error) => shared.warn(describe(
                    &error,
                    &format!("applying AgentObservation {namespace}/{name}"),
                )),
            }
        }
        shared.lock().unwrap().applied = generation;
    }
}

async fn watch_approved(
    client: Client,
    changes: tokio::sync::mpsc::UnboundedSender<ApprovedChange>,
    shared: Arc<Mutex<Shared>>,
) {
    use kube::runtime::WatchStreamExt as _;
    let api: Api<AgentBaselineResource> = Api::all(client);
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut relisted = BTreeSet::new();
    while let Some(event) = stream.next().await {
        let change = match event {
            Ok(watcher::Event::Apply(resource)) => ApprovedChange::Set(Box::new(resource)),
            Ok(watcher::Event::Delete(resource)) => ApprovedChange::Removed(resource.spec.agent),
            Ok(watcher::Event::Init) => {
                relisted.clear();
                continue;
            }
            Ok(watcher::Event::InitApply(resource)) => {
                relisted.insert(resource.spec.agent.clone());
                ApprovedChange::Set(Box::new(resource))
            }
            Ok(watcher::Event::InitDone) => ApprovedChange::Resynced(std::mem::take(&mut relisted)),
            Err(error) => {
                let what = "watching AgentBaselines";
                let message = match &error {
                    watcher::Error::InitialListFailed(e)
                    | watcher::Error::WatchStartFailed(e)
                    | watcher::Error::WatchFailed(e) => describe(e, what),
                    other => format!("Kubernetes API error {what}: {other}"),
                };
                shared.lock().unwrap().warn(message);
                continue;
            }
        };
        if changes.send(change).is_err() {
            return;
        }
    }
}
