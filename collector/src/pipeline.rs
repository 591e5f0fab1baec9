//! The userspace pipeline after decoding: events → reconstruction → model.
//!
//! Live capture and replay both feed events here, in order, so they produce the same model.
//! Identity lookups are the one input from outside the event stream; they go through
//! [`IdentityLookup`] so a replay can answer them from its recording.

use crate::event::Event;
use crate::identity::IdentityResolver;
use crate::model::{ActorIdentity, IdentityLookup, Model, ModelOptions, ModelSnapshot};
use crate::process_table::ProcessTable;
use crate::reconstruct::{Observation, ReconstructOptions, ReconstructStats, Reconstructor};

pub struct Pipeline {
    reconstructor: Reconstructor,
    model: Model,
    identity: Box<dyn IdentityLookup + Send>,
    last_ts_ns: u64,
}

impl Pipeline {
    pub fn new(
        reconstruct: ReconstructOptions,
        model: ModelOptions,
        identity: Box<dyn IdentityLookup + Send>,
    ) -> Self {
        Self {
            reconstructor: Reconstructor::new(reconstruct),
            model: Model::new(model),
            identity,
            last_ts_ns: 0,
        }
    }

    /// Starts from a known process table (live capture: the collector's, seeded from /proc).
    pub fn with_processes(mut self, processes: ProcessTable) -> Self {
        self.reconstructor.set_processes(processes);
        self
    }

    /// Feeds one event; returns the observations it completed (already applied to the model).
    pub fn push(&mut self, event: &Event) -> Vec<Observation> {
        self.last_ts_ns = self.last_ts_ns.max(event.header.ts_ns);
        let observations = self.reconstructor.push(event);
        self.apply(&observations);
        observations
    }

    /// Capture ended: flushes connections still open (their exchanges come out flagged).
    pub fn finish(&mut self) -> Vec<Observation> {
        let observations = self.reconstructor.finish(self.last_ts_ns);
        self.apply(&observations);
        observations
    }

    fn apply(&mut self, observations: &[Observation]) {
        for observation in observations {
            self.model.apply(
                observation,
                self.reconstructor.processes(),
                self.identity.as_mut(),
            );
        }
    }

    /// The agent key `pid` acts for (its own or its nearest agent ancestor's), if any.
    pub fn agent_of(&self, pid: u32) -> Option<String> {
        self.model
            .agent_of(&self.reconstructor.processes().lineage(pid))
    }

    pub fn processes(&self) -> &ProcessTable {
        self.reconstructor.processes()
    }

    /// Reconstruction's counters so far (bytes lost, exchanges, ...).
    pub fn reconstruct_stats(&self) -> &ReconstructStats {
        self.reconstructor.stats()
    }

    pub fn identity_warnings(&self) -> Vec<String> {
        self.identity.warnings()
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn snapshot(&self) -> ModelSnapshot {
        self.model.snapshot(Some(self.reconstructor.stats()))
    }
}

/// Live identity: cgroups, the Kubernetes API and /proc, through the identity resolver.
impl IdentityLookup for IdentityResolver {
    fn lookup(&mut self, pid: u32, cgroup_id: u64, uid: u32) -> ActorIdentity {
        let identity = self.resolve(pid, cgroup_id);
        let workload = identity.workload_key("");
        let workload = workload.strip_suffix(':').unwrap_or(&workload).to_string();
        let pod = identity.pod.as_ref();
        let qualified = |name: Option<&String>| {
            let namespace = pod.and_then(|p| p.namespace.as_deref()).unwrap_or("?");
            name.map(|n| format!("{namespace}/{n}"))
        };
        ActorIdentity {
            workload,
            uid,
            user: self.user_name(pid, uid),
            container_id: identity.container.as_ref().map(|c| c.id.clone()),
            pod: qualified(pod.and_then(|p| p.name.as_ref())),
            service_account: qualified(pod.and_then(|p| p.service_account.as_ref())),
            cloud_roles: pod
                .map(|p| {
                    p.cloud_roles
                        .iter()
                        .map(|role| {
                            let kind = serde_json::to_value(role.kind).unwrap_or_default();
                            format!("{}:{}", kind.as_str().unwrap_or("cloud"), role.principal)
                        })
                        .collect()
                })
                .unwrap_or_default(),
            details: serde_json::to_value(identity.as_ref()).unwrap_or_default(),
        }
    }

    fn forget(&mut self, pid: u32) {
        self.forget_pid(pid);
    }

    fn warnings(&self) -> Vec<String> {
        IdentityResolver::warnings(self)
    }
}
