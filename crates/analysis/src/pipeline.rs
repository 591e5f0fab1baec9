//! The userspace pipeline after decoding: events → reconstruction → model.
//!
//! Live capture and replay both feed events here, in order, so they produce the same model
//! and the same detections (the [`Detector`] runs on every observation after the model).
//! Every observation leaves attributed ([`AttributedObservation`]): which agent it belongs
//! to is decided here, once, from the model's pid → agent history.
//! Identity lookups are the one input from outside the event stream; they go through
//! [`IdentityLookup`], and every answer is logged so a recording can store it and a replay
//! answer from it. [`PipelineState`] is what a capture's keyframe saves so a replay can start
//! from the middle of a capture.

mod attributed;
pub mod conversations;
mod last_cluster_objects;

use agentscope_event::pid_keyed::PidMap;

use serde::{Deserialize, Serialize};

use crate::baseline::LossCounts;
use crate::detect::{Detector, DetectorOptions};
use crate::event::Event;
use crate::identity::IdentityResolver;
use crate::memory_budget::MemoryBudget;
use crate::model::{
    ActorIdentity, Agent, IdentityAnswer, IdentityLookup, Model, ModelOptions, ModelSnapshot,
};
use crate::process_table::{ProcessInfo, ProcessTable};
use crate::reconstruct::{Observation, Peer, ReconstructOptions, ReconstructStats, Reconstructor};

pub use attributed::{AttributedObservation, EarlierObservations, EARLIER_KEPT};
pub use last_cluster_objects::TimedClusterObjects;

pub struct Pipeline {
    reconstructor: Reconstructor,
    model: Model,
    identity: LoggedIdentity,
    detector: Detector,
    earlier: EarlierObservations,
    conversations: conversations::Conversations,
    last_ts_ns: u64,
    last_cluster_objects: last_cluster_objects::LastClusterObjects,
}

/// The state a replay needs to start after event `next_event_index` instead of at the start.
/// In-flight exchanges and the graph built so far are not part of it: a replay from here
/// shows what happened from here, with processes, sockets, agents and identities known.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PipelineState {
    /// Index in the whole capture of the first event after this state.
    pub next_event_index: u64,
    /// Latest event time seen.
    pub last_ts_ns: u64,
    pub processes: Vec<ProcessInfo>,
    /// Exited pids, oldest first (kept for late lineage lookups).
    pub exited: Vec<u32>,
    pub peers: Vec<SocketPeer>,
    /// The identity answers in force, one per process.
    pub identities: Vec<IdentityAnswer>,
    pub agents: Vec<Agent>,
    pub agent_pids: Vec<(u32, String)>,
    /// The enforcement policies the collector last reported, so a console that attaches
    /// (`--connect`) or seeks later applies them to agents discovered after this state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enforcement_policies: Vec<agentscope_event::enforcement::EnforcePolicy>,
    /// The last snapshot of the cluster's declared objects, so posture after this state has
    /// its declared side (see `last_cluster_objects`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_objects: Option<TimedClusterObjects>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SocketPeer {
    pub pid: u32,
    pub fd: i32,
    pub peer: Peer,
}

/// Wraps the identity source and logs its answers: new ones for a recording to store, and
/// the current one per process for keyframes.
struct LoggedIdentity {
    inner: Box<dyn IdentityLookup + Send>,
    /// Only while a recorder takes them; otherwise they would pile up.
    log_new: bool,
    new_answers: Vec<IdentityAnswer>,
    by_pid: PidMap<u32, IdentityAnswer>,
}

impl IdentityLookup for LoggedIdentity {
    fn lookup(&mut self, pid: u32, cgroup_id: u64, uid: u32) -> ActorIdentity {
        let identity = self.inner.lookup(pid, cgroup_id, uid);
        let answer = IdentityAnswer {
            pid,
            cgroup_id,
            uid,
            identity: identity.clone(),
        };
        if self.log_new {
            self.new_answers.push(answer.clone());
        }
        self.by_pid.insert(pid, answer);
        identity
    }

    fn process_started(&mut self, pid: u32, cgroup_id: u64, uid: u32) {
        // No answer to log: a lookup made later logs what it returns.
        self.inner.process_started(pid, cgroup_id, uid);
    }

    fn forget(&mut self, pid: u32) {
        self.inner.forget(pid);
        self.by_pid.remove(&pid);
    }

    fn remember(&mut self, answer: IdentityAnswer) {
        self.inner.remember(answer);
    }

    fn warnings(&self) -> Vec<String> {
        self.inner.warnings()
    }
}

impl Pipeline {
    pub fn new(
        reconstruct: ReconstructOptions,
        model: ModelOptions,
        identity: Box<dyn IdentityLookup + Send>,
    ) -> Self {
        let reconstructor = Reconstructor::new(reconstruct);
        let mut model = Model::new(model);
        // What the model and detection keep may take 3/4 of the share: the rest stays for
        // bytes being reassembled, which make the records (see `MemoryBudget::records`).
        model.set_budget(&reconstructor.budget().records());
        let mut detector = Detector::default();
        detector.set_budget(&reconstructor.budget().records());
        Self {
            reconstructor,
            model,
            identity: LoggedIdentity {
                inner: identity,
                log_new: false,
                new_answers: Vec::new(),
                by_pid: PidMap::default(),
            },
            detector,
            earlier: EarlierObservations::default(),
            conversations: conversations::Conversations::default(),
            last_ts_ns: 0,
            last_cluster_objects: Default::default(),
        }
    }

    /// The one memory budget reconstruction, the model and detection charge.
    pub fn memory_budget(&self) -> &MemoryBudget {
        self.reconstructor.budget()
    }

    /// Detection with these options (learning period, approved baselines) instead of the
    /// defaults.
    pub fn with_detection(mut self, options: DetectorOptions) -> Self {
        self.set_detection(options);
        self
    }

    /// Restarts detection with these options (what it raised so far is dropped).
    pub fn set_detection(&mut self, options: DetectorOptions) {
        self.detector = Detector::new(options);
        self.detector
            .set_budget(&self.reconstructor.budget().records());
    }

    /// Starts from a known process table (live capture: the collector's, seeded from /proc).
    pub fn with_processes(mut self, processes: ProcessTable) -> Self {
        self.reconstructor.set_processes(processes);
        self
    }

    /// Feeds one event; returns the observations it completed (already applied to the model),
    /// attributed, preceded by earlier ones whose process just turned out to be an agent's.
    pub fn push(&mut self, event: &Event) -> Vec<AttributedObservation> {
        self.last_ts_ns = self.last_ts_ns.max(event.header.ts_ns);
        if let crate::event::EventBody::Data {
            source: crate::event::PayloadSource::Tls,
            ..
        } = &event.body
        {
            self.model
                .note_tls_plaintext(event.header.pid, event.header.ts_ns);
        }
        if let crate::event::EventBody::Exec { .. } = &event.body {
            let header = &event.header;
            self.identity
                .process_started(header.pid, header.cgroup_id, header.uid);
        }
        if let crate::event::EventBody::ClusterObjects(objects) = &event.body {
            self.last_cluster_objects.keep(
                self.reconstructor.budget(),
                event.header.time_unix_ns,
                objects,
            );
        }
        let gap_before = self.reconstructor.stats().gap_bytes;
        let observations = self.reconstructor.push(event);
        for pid in self.reconstructor.take_forgotten_processes() {
            // The process table was full: what is kept per process goes as at an exit.
            self.model
                .forget_process(pid, event.header.ts_ns, &mut self.identity);
            self.earlier.forget_process(pid);
        }
        let observations = self.apply(observations);
        let gap = self.reconstructor.stats().gap_bytes;
        if gap > gap_before {
            // Bytes lost while an agent learns make its baseline partial.
            self.detector.note_loss(
                event.header.ts_ns,
                LossCounts {
                    dropped_events: 0,
                    gap_bytes: gap - gap_before,
                },
            );
        }
        observations
    }

    /// The collector lost `count` events (kernel ring buffer full) at about `ts_ns`: the
    /// baselines learning then become partial.
    pub fn note_dropped_events(&mut self, count: u64, ts_ns: u64) {
        if count > 0 {
            self.detector.note_loss(
                ts_ns,
                LossCounts {
                    dropped_events: count,
                    gap_bytes: 0,
                },
            );
        }
    }

    /// Capture ended: flushes connections still open (their exchanges come out flagged).
    pub fn finish(&mut self) -> Vec<AttributedObservation> {
        self.finish_while(&mut || true)
    }

    /// As [`Pipeline::finish`], flushing connections only while `keep_going` says so (see
    /// [`Reconstructor::finish_while`]): a live stop's deadline.
    pub fn finish_while(
        &mut self,
        keep_going: &mut dyn FnMut() -> bool,
    ) -> Vec<AttributedObservation> {
        let observations = self.reconstructor.finish_while(self.last_ts_ns, keep_going);
        self.apply(observations)
    }

    fn apply(&mut self, observations: Vec<Observation>) -> Vec<AttributedObservation> {
        let mut out = Vec::with_capacity(observations.len());
        for observation in observations {
            let processes = self.reconstructor.processes();
            self.model
                .apply(&observation, processes, &mut self.identity);
            // Agents the model shed to make room (see `model::memory_pressure`): their
            // detection state and the baseline they were learning go too.
            for agent in self.model.take_evicted_agents() {
                self.detector.forget_agent(&agent);
            }
            let mut links = self.model.take_new_links();
            for link in &mut links {
                link.session = self
                    .model
                    .session_of(&processes.lineage(link.call_pid), link.action.ts_ns)
                    .or(Some(link.call_pid));
            }
            let lineage = processes.lineage(observation.actor.pid);
            // An MCP server outside the agent's process tree acts for the agent whose call
            // it handles (and in that call's session): the link says so.
            let own_link = links.iter().find(|l| {
                l.action.pid == observation.actor.pid && l.action.ts_ns == observation.ts_ns
            });
            let (agent, session) = match self.model.agent_of(&lineage, observation.ts_ns) {
                Some(agent) => (
                    Some(agent),
                    self.model.session_of(&lineage, observation.ts_ns),
                ),
                None => match own_link {
                    Some(link) => (
                        Some(link.agent.clone()),
                        self.model
                            .session_of(&processes.lineage(link.call_pid), observation.ts_ns)
                            .or(Some(link.call_pid)),
                    ),
                    None => (None, None),
                },
            };
            let mut earlier =
                self.earlier
                    .settle(&observation, agent.as_deref(), &self.model, processes);
            earlier.extend(self.earlier.claim_linked(&links, &self.model, processes));
            for mut attributed in earlier {
                // Claimed by one of this observation's links (an MCP server's psql), or
                // released before the agent's first call.
                attributed.conversation = attributed.session.map(|session| {
                    self.conversations
                        .assign(session, &attributed.observation, &links)
                });
                self.detector.observe(&attributed, &self.model);
                out.push(attributed);
            }
            let conversation =
                session.map(|session| self.conversations.assign(session, &observation, &links));
            let attributed = AttributedObservation {
                observation,
                agent,
                session,
                conversation,
                links,
                earlier: false,
            };
            self.detector.observe(&attributed, &self.model);
            out.push(attributed);
            // Agents detection raised findings for are the last the model sheds.
            for agent in self.detector.take_flagged_agents() {
                self.model.note_detection(&agent);
            }
        }
        out
    }

    /// Event time of the latest event fed (0 before any).
    pub fn last_event_ts(&self) -> u64 {
        self.last_ts_ns
    }

    /// Earlier observations not kept because [`EARLIER_KEPT`] were waiting for their agent.
    pub fn earlier_dropped(&self) -> u64 {
        self.earlier.dropped()
    }

    /// Whether identity answers are kept for [`Pipeline::take_identity_answers`] (a recorder
    /// turns it on while it records).
    pub fn log_identity_answers(&mut self, on: bool) {
        self.identity.log_new = on;
        if !on {
            self.identity.new_answers.clear();
        }
    }

    /// Identity answers given since the last call, in the order they were given (a recorder
    /// stores them before the event that asked for them).
    pub fn take_identity_answers(&mut self) -> Vec<IdentityAnswer> {
        std::mem::take(&mut self.identity.new_answers)
    }

    pub fn has_identity_answers(&self) -> bool {
        !self.identity.new_answers.is_empty()
    }

    /// Passes a recorded identity answer to the identity source (replays).
    pub fn remember_identity(&mut self, answer: IdentityAnswer) {
        self.identity.remember(answer);
    }

    /// Index (in the whole capture) the next event gets.
    pub fn next_event_index(&self) -> u64 {
        self.reconstructor.next_index()
    }

    /// What a keyframe saves (see [`PipelineState`]).
    pub fn state(&self) -> PipelineState {
        let (processes, exited) = self.reconstructor.processes().export();
        let mut identities: Vec<IdentityAnswer> = self.identity.by_pid.values().cloned().collect();
        identities.sort_unstable_by_key(|a| a.pid);
        PipelineState {
            next_event_index: self.reconstructor.next_index(),
            last_ts_ns: self.last_ts_ns,
            processes,
            exited,
            peers: self
                .reconstructor
                .peers()
                .into_iter()
                .map(|(pid, fd, peer)| SocketPeer { pid, fd, peer })
                .collect(),
            identities,
            agents: self.model.agents().cloned().collect(),
            agent_pids: self.model.agent_pids(),
            enforcement_policies: self.model.enforcement_policies(),
            cluster_objects: self.last_cluster_objects.get().cloned(),
        }
    }

    /// Takes the snapshot a keyframe sent after dropped chunks carried (a console served by a
    /// collector), if it is newer than the one kept: the chunk that held its event may be one
    /// of those dropped.
    pub fn remember_cluster_objects(&mut self, last: TimedClusterObjects) {
        let newer = self
            .last_cluster_objects
            .get()
            .is_none_or(|kept| kept.time_unix_ns < last.time_unix_ns);
        if newer {
            self.last_cluster_objects.keep(
                self.reconstructor.budget(),
                last.time_unix_ns,
                &last.objects,
            );
        }
    }

    /// The last snapshot of the cluster's declared objects seen (or restored from a keyframe)
    /// and kept.
    pub fn last_cluster_objects(&self) -> Option<&TimedClusterObjects> {
        self.last_cluster_objects.get()
    }

    /// Starts from a saved state (a replay from the middle of a capture). Call on a new
    /// pipeline, before any event.
    pub fn restore(&mut self, state: PipelineState) {
        self.last_ts_ns = state.last_ts_ns;
        self.reconstructor.restore(
            ProcessTable::import(state.processes, state.exited),
            state.peers.into_iter().map(|p| (p.pid, p.fd, p.peer)),
            state.next_event_index,
        );
        for answer in state.identities {
            self.identity.by_pid.insert(answer.pid, answer.clone());
            self.identity.remember(answer);
        }
        self.model.restore_agents(state.agents, state.agent_pids);
        self.model
            .restore_enforcement_policies(state.enforcement_policies);
        if let Some(last) = state.cluster_objects {
            self.last_cluster_objects.keep(
                self.reconstructor.budget(),
                last.time_unix_ns,
                &last.objects,
            );
        }
    }

    /// Keeps the plain sockets that turn opaque from now on (live collection only: a replay
    /// has nothing to tell the kernel), see [`Pipeline::take_opaque_sockets`].
    pub fn report_opaque_sockets(&mut self) {
        self.reconstructor.report_opaque_sockets();
    }

    /// Plain sockets whose first bytes were no protocol reconstruction reads (or whose parser
    /// gave up over the memory budget) since the last call: the live collector asks the
    /// kernel to stop copying them.
    pub fn take_opaque_sockets(&mut self) -> Vec<agentscope_event::SocketRef> {
        self.reconstructor.take_opaque_sockets()
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

    /// The model with detection's findings and incidents.
    pub fn snapshot(&self) -> ModelSnapshot {
        let mut snapshot = self.model.snapshot(Some(self.reconstructor.stats()));
        snapshot.findings = self.detector.findings().to_vec();
        snapshot.incidents = self.detector.incidents().to_vec();
        snapshot.stats.findings_dropped = self.detector.findings_dropped();
        snapshot.stats.memory = Some(self.memory_budget().stats());
        snapshot
    }

    /// Detection: findings, incidents, and the baselines being learned.
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// An approved baseline arrived (or changed) while running: its agent is judged against
    /// it from now on; what was raised so far stays.
    pub fn set_approved_baseline(&mut self, baseline: crate::baseline::AgentBaseline) {
        self.detector.set_approved(baseline);
    }

    /// The approved baseline of `agent` went away: it is judged as without one.
    pub fn remove_approved_baseline(&mut self, agent: &str) {
        self.detector.remove_approved(agent);
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

    fn process_started(&mut self, pid: u32, cgroup_id: u64, uid: u32) {
        self.note_running(pid, cgroup_id, uid);
    }

    fn forget(&mut self, pid: u32) {
        self.forget_pid(pid);
    }

    fn warnings(&self) -> Vec<String> {
        IdentityResolver::warnings(self)
    }
}

#[cfg(test)]
mod process_started_tests {
    use std::sync::{Arc, Mutex};

    use crate::event::EventBody;
    use crate::event_json::events_from_json_lines;
    use crate::model::{ActorIdentity, IdentityLookup, ModelOptions};
    use crate::pipeline::Pipeline;
    use crate::reconstruct::ReconstructOptions;

    #[derive(Debug, PartialEq)]
    enum Call {
        Started(u32, u64, u32),
        Lookup(u32),
    }

    /// Says everyone is on the host, and tells what it was asked, in order.
    struct Told(Arc<Mutex<Vec<Call>>>);

    impl IdentityLookup for Told {
        fn lookup(&mut self, pid: u32, _cgroup_id: u64, uid: u32) -> ActorIdentity {
            self.0.lock().unwrap().push(Call::Lookup(pid));
            ActorIdentity {
                workload: "host".into(),
                uid,
                ..Default::default()
            }
        }

        fn process_started(&mut self, pid: u32, cgroup_id: u64, uid: u32) {
            self.0
                .lock()
                .unwrap()
                .push(Call::Started(pid, cgroup_id, uid));
        }
    }

    /// Every exec reaches the identity source as it is fed (a lookup comes later, when its
    /// process turns out to be an agent's, and by then it may be gone), and logs no answer:
    /// a recording holds the lookups' answers only, so its replay asks the same.
    #[test]
    fn every_exec_is_told_to_the_identity_source_as_it_is_fed_and_logs_nothing() {
        let path = std::path::Path::new(env!("AGENTSCOPE_REPO"))
            .join("tests/fixtures/capture/python_two_conversations.jsonl");
        let events = events_from_json_lines(&std::fs::read_to_string(path).unwrap()).unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut pipeline = Pipeline::new(
            ReconstructOptions::default(),
            ModelOptions::default(),
            Box::new(Told(calls.clone())),
        );
        pipeline.log_identity_answers(true);
        let mut execs = 0;
        for event in &events {
            pipeline.push(event);
            if matches!(event.body, EventBody::Exec { .. }) {
                execs += 1;
                let header = &event.header;
                let told = Call::Started(header.pid, header.cgroup_id, header.uid);
                assert_eq!(calls.lock().unwrap().last(), Some(&told));
            }
        }
        pipeline.finish();
        let calls = calls.lock().unwrap();
        let started = calls
            .iter()
            .filter(|c| matches!(c, Call::Started(..)))
            .count();
        assert_eq!((started, execs > 0), (execs, true));
        let lookups = calls.len() - started;
        assert!(lookups > 0, "the agent is looked up: {calls:?}");
        assert_eq!(pipeline.take_identity_answers().len(), lookups);
    }
}
