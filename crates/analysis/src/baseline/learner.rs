//! Learning per-agent baselines from observations, over a learning period measured in event
//! time (never the wall clock, so a replay learns exactly what the live run learned).

use std::collections::BTreeMap;

use crate::model::ActorIdentity;
use crate::reconstruct::Observation;

use super::format::{
    AgentBaseline, BaselineMetadata, BaselineSpec, BaselineStatus, IdentitySummary, Item,
    LossCounts, API_VERSION, KIND,
};
use super::items;

const NS_PER_SECOND: u64 = 1_000_000_000;

#[derive(Debug, Clone)]
pub struct LearnerOptions {
    /// How long an agent's baseline learns, from its first observation (event time).
    pub learning_period_ns: u64,
    /// Entries one baseline may hold; beyond it the baseline is `truncated` (and `partial`).
    pub max_entries_per_agent: usize,
    /// Agents learned at once; further agents are not learned (counted in `agents_dropped`).
    pub max_agents: usize,
}

impl Default for LearnerOptions {
    fn default() -> Self {
        Self {
            learning_period_ns: 600 * NS_PER_SECOND,
            max_entries_per_agent: 10_000,
            max_agents: 4096,
        }
    }
}

impl LearnerOptions {
    pub fn with_learning_period_seconds(mut self, seconds: u64) -> Self {
        self.learning_period_ns = seconds.saturating_mul(NS_PER_SECOND);
        self
    }
}

#[derive(Debug, Clone)]
struct AgentLearning {
    spec: BaselineSpec,
    entries: usize,
    truncated: bool,
    /// Event time (monotonic ns) of the first observation: the learning period starts here.
    first_ts_ns: u64,
    /// Event time and wall-clock time of the first and last observation learned.
    learned_ts_ns: (u64, u64),
    learned_unix_ns: (u64, u64),
    observations: u64,
    events: u64,
    loss: LossCounts,
    identity: IdentitySummary,
    /// Incidents raised while learning: id → `id: story`.
    incidents: BTreeMap<String, String>,
}

impl AgentLearning {
    fn ends_ns(&self, period: u64) -> u64 {
        self.first_ts_ns.saturating_add(period)
    }
}

/// Accumulates a baseline per agent key. Feed it every observation with the agent key it
/// belongs to ([`crate::pipeline::AttributedObservation::agent`], which also covers what an
/// agent did before it was known as one), [`Self::advance_to`] as
/// event time passes, and [`Self::note_loss`] when events or bytes were lost.
#[derive(Debug, Clone)]
pub struct BaselineLearner {
    options: LearnerOptions,
    agents: BTreeMap<String, AgentLearning>,
    now_ns: u64,
    agents_dropped: u64,
    /// Recent losses with their time: an agent first seen after a loss at or after its first
    /// observation (its start-up was attributed late) still counts it.
    losses: std::collections::VecDeque<(u64, LossCounts)>,
}

/// Losses remembered for agents that start learning later.
const LOSSES_KEPT: usize = 1024;

impl BaselineLearner {
    pub fn new(options: LearnerOptions) -> Self {
        Self {
            options,
            agents: BTreeMap::new(),
            now_ns: 0,
            agents_dropped: 0,
            losses: std::collections::VecDeque::new(),
        }
    }

    pub fn options(&self) -> &LearnerOptions {
        &self.options
    }

    /// Event time has reached `ts_ns` (an agent that stays idle still finishes learning).
    pub fn advance_to(&mut self, ts_ns: u64) {
        self.now_ns = self.now_ns.max(ts_ns);
    }

    /// Learns one observation of `agent`. `identity` is who the agent runs as (the model's
    /// [`crate::model::Agent::identity`]), when known. Returns the items the observation
    /// stands for (the judge compares the same items).
    pub fn observe(
        &mut self,
        agent: &str,
        identity: Option<&ActorIdentity>,
        observation: &Observation,
    ) -> Vec<Item> {
        let mut items = items::items_of(observation);
        if let Some(identity) = identity {
            if !items.is_empty() {
                items.extend(items::identity_items(identity));
            }
        }
        self.learn(agent, identity, observation, &items);
        items
    }

    pub(crate) fn learn(
        &mut self,
        agent: &str,
        identity: Option<&ActorIdentity>,
        observation: &Observation,
        items: &[Item],
    ) {
        self.advance_to(observation.ts_ns);
        if items.is_empty() {
            return;
        }
        let period = self.options.learning_period_ns;
        if !self.agents.contains_key(agent) {
            if self.agents.len() >= self.options.max_agents {
                self.agents_dropped += 1;
                return;
            }
            let mut loss = LossCounts::default();
            for (ts, lost) in &self.losses {
                if *ts >= observation.ts_ns && *ts < observation.ts_ns.saturating_add(period) {
                    loss.dropped_events = loss.dropped_events.saturating_add(lost.dropped_events);
                    loss.gap_bytes = loss.gap_bytes.saturating_add(lost.gap_bytes);
                }
            }
            self.agents.insert(
                agent.to_string(),
                AgentLearning {
                    spec: BaselineSpec::default(),
                    entries: 0,
                    truncated: false,
                    first_ts_ns: observation.ts_ns,
                    learned_ts_ns: (observation.ts_ns, observation.ts_ns),
                    learned_unix_ns: (observation.time_unix_ns, observation.time_unix_ns),
                    observations: 0,
                    events: 0,
                    loss,
                    identity: IdentitySummary::default(),
                    incidents: BTreeMap::new(),
                },
            );
        }
        let Some(learning) = self.agents.get_mut(agent) else {
            return;
        };
        // Observations completed late (a response that ended at connection close) can be
        // older than the first one learned: the period starts at the oldest, as long as the
        // baseline is still open.
        if observation.ts_ns < learning.first_ts_ns && self.now_ns < learning.ends_ns(period) {
            learning.first_ts_ns = observation.ts_ns;
        }
        if observation.ts_ns >= learning.ends_ns(period) {
            return;
        }
        if let Some(identity) = identity {
            learning.identity = IdentitySummary {
                workload: identity.workload.clone(),
                user: identity.user.clone(),
                uid: Some(identity.uid),
                pod: identity.pod.clone(),
                service_account: identity.service_account.clone(),
            };
        }
        learning.observations += 1;
        learning.events += observation
            .events
            .iter()
            .map(|r| r.last.saturating_sub(r.first).saturating_add(1))
            .sum::<u64>();
        let (first, last) = learning.learned_ts_ns;
        if observation.ts_ns < first {
            learning.learned_ts_ns.0 = observation.ts_ns;
            learning.learned_unix_ns.0 = observation.time_unix_ns;
        }
        if observation.ts_ns >= last {
            learning.learned_ts_ns.1 = observation.ts_ns;
            learning.learned_unix_ns.1 = observation.time_unix_ns;
        }
        for item in items {
            if item.novelty(&learning.spec).is_none() {
                continue;
            }
            if learning.entries >= self.options.max_entries_per_agent {
                learning.truncated = true;
                continue;
            }
            if item.insert_into(&mut learning.spec) {
                learning.entries += 1;
            }
        }
    }

    /// Events or payload bytes were lost at event time `ts_ns` (`None`: time unknown, as for
    /// a collector's final drop count): every baseline learning then is marked, and ends up
    /// `partial`.
    pub fn note_loss(&mut self, ts_ns: Option<u64>, loss: LossCounts) {
        if loss.is_empty() {
            return;
        }
        let period = self.options.learning_period_ns;
        if let Some(ts) = ts_ns {
            if self.losses.len() >= LOSSES_KEPT {
                self.losses.pop_front();
            }
            self.losses.push_back((ts, loss));
        }
        for learning in self.agents.values_mut() {
            let during = match ts_ns {
                Some(ts) => ts >= learning.first_ts_ns && ts < learning.ends_ns(period),
                None => true,
            };
            if during {
                learning.loss.dropped_events = learning
                    .loss
                    .dropped_events
                    .saturating_add(loss.dropped_events);
                learning.loss.gap_bytes = learning.loss.gap_bytes.saturating_add(loss.gap_bytes);
            }
        }
    }

    /// Detection raised (or updated) incident `id` of `agent` at event time `opened_ns`: if
    /// that was while the agent learned, its baseline holds the incident's evidence.
    pub fn note_incident(&mut self, agent: &str, id: &str, story: &str, opened_ns: u64) {
        let period = self.options.learning_period_ns;
        if let Some(learning) = self.agents.get_mut(agent) {
            if opened_ns < learning.ends_ns(period) {
                learning
                    .incidents
                    .insert(id.to_string(), format!("{id}: {story}"));
            }
        }
    }

    /// Status of `agent`'s baseline at the current event time.
    pub fn status(&self, agent: &str) -> Option<BaselineStatus> {
        self.status_at(agent, self.now_ns)
    }

    /// Status of `agent`'s baseline as it stood at event time `ts_ns`.
    pub fn status_at(&self, agent: &str, ts_ns: u64) -> Option<BaselineStatus> {
        let learning = self.agents.get(agent)?;
        Some(
            if ts_ns < learning.ends_ns(self.options.learning_period_ns) {
                BaselineStatus::Learning
            } else if learning.loss.is_empty() && !learning.truncated {
                BaselineStatus::Complete
            } else {
                BaselineStatus::Partial
            },
        )
    }

    /// The learned spec of `agent` (as it stands: still growing while learning).
    pub fn spec(&self, agent: &str) -> Option<&BaselineSpec> {
        self.agents.get(agent).map(|l| &l.spec)
    }

    pub fn agents(&self) -> impl Iterator<Item = &str> {
        self.agents.keys().map(String::as_str)
    }

    /// Forgets what `agent` learned (see [`super::BaselineJudge::forget`]).
    pub fn forget(&mut self, agent: &str) {
        self.agents.remove(agent);
    }

    /// Agents not learned because `max_agents` were already learning.
    pub fn agents_dropped(&self) -> u64 {
        self.agents_dropped
    }

    /// The baseline document of `agent`, as it stands now.
    pub fn baseline(&self, agent: &str) -> Option<AgentBaseline> {
        let learning = self.agents.get(agent)?;
        let status = self.status(agent)?;
        Some(AgentBaseline {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            metadata: BaselineMetadata {
                agent: agent.to_string(),
                name: display_name(agent),
                status,
                learning_period_seconds: self.options.learning_period_ns / NS_PER_SECOND,
                learned_from: rfc3339(learning.learned_unix_ns.0),
                learned_to: rfc3339(learning.learned_unix_ns.1),
                observations: learning.observations,
                events: learning.events,
                loss: learning.loss,
                truncated: learning.truncated,
                identity: learning.identity.clone(),
                incidents: learning.incidents.values().cloned().collect(),
            },
            spec: learning.spec.clone(),
            enforcement: None,
        })
    }

    /// Every agent's baseline document.
    pub fn baselines(&self) -> Vec<AgentBaseline> {
        self.agents().filter_map(|a| self.baseline(a)).collect()
    }
}

/// The short name of an agent key: its script or executable's file name.
fn display_name(agent: &str) -> String {
    let last = agent.rsplit(' ').next().unwrap_or(agent);
    let last = last.rsplit('/').next().unwrap_or(last);
    last.rsplit(':').next().unwrap_or(last).to_string()
}

/// Wall-clock nanoseconds as RFC 3339 (UTC); `None` for 0 (no time recorded).
fn rfc3339(unix_ns: u64) -> Option<String> {
    if unix_ns == 0 {
        return None;
    }
    jiff::Timestamp::from_nanosecond(i128::from(unix_ns))
        .ok()
        .map(|t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconstruct::{Actor, EventRange, ObservationKind, Peer};

    const SECOND: u64 = NS_PER_SECOND;

    fn observation(ts_ns: u64, kind: ObservationKind) -> Observation {
        Observation {
            ts_ns,
            time_unix_ns: 1_700_000_000 * SECOND + ts_ns,
            actor: Actor {
                pid: 10,
                ppid: 1,
                uid: 1000,
                gid: 1000,
                cgroup_id: 1,
                comm: "agent".into(),
            },
            events: vec![EventRange { first: 3, last: 5 }],
            protocol: None,
            kind,
        }
    }

    fn connect(addr: &str, port: u16) -> ObservationKind {
        ObservationKind::Connect {
            peer: Peer {
                addr: addr.into(),
                port,
            },
            payloads_sampled_out: false,
        }
    }

    #[test]
    fn status_goes_from_learning_to_complete_in_event_time() {
        let mut learner =
            BaselineLearner::new(LearnerOptions::default().with_learning_period_seconds(60));
        learner.observe(
            "host:agent",
            None,
            &observation(100 * SECOND, connect("10.0.0.1", 443)),
        );
        assert_eq!(learner.status("host:agent"), Some(BaselineStatus::Learning));
        learner.observe(
            "host:agent",
            None,
            &observation(159 * SECOND, connect("10.0.0.2", 443)),
        );
        assert_eq!(learner.status("host:agent"), Some(BaselineStatus::Learning));
        // After the period: not learned, and the status is complete.
        learner.observe(
            "host:agent",
            None,
            &observation(160 * SECOND, connect("10.0.0.3", 443)),
        );
        assert_eq!(learner.status("host:agent"), Some(BaselineStatus::Complete));
        let baseline = learner.baseline("host:agent").unwrap();
        assert_eq!(
            baseline.spec.egress.addresses.iter().collect::<Vec<_>>(),
            ["10.0.0.1:443", "10.0.0.2:443"]
        );
        assert_eq!(baseline.metadata.observations, 2);
        assert_eq!(baseline.metadata.events, 6);
        assert_eq!(baseline.metadata.learning_period_seconds, 60);
        assert_eq!(
            baseline.metadata.learned_from.as_deref(),
            Some("2023-11-14T22:15:00Z")
        );
        assert_eq!(
            baseline.metadata.learned_to.as_deref(),
            Some("2023-11-14T22:15:59Z")
        );
        assert!(baseline.spec.identities.users.contains("uid:1000"));
        // Time passing alone completes an idle agent.
        let mut idle =
            BaselineLearner::new(LearnerOptions::default().with_learning_period_seconds(60));
        idle.observe(
            "host:idle",
            None,
            &observation(SECOND, connect("10.0.0.1", 443)),
        );
        idle.advance_to(30 * SECOND);
        assert_eq!(idle.status("host:idle"), Some(BaselineStatus::Learning));
        idle.advance_to(61 * SECOND);
        assert_eq!(idle.status("host:idle"), Some(BaselineStatus::Complete));
    }

    #[test]
    fn loss_while_learning_makes_the_baseline_partial() {
        let mut learner =
            BaselineLearner::new(LearnerOptions::default().with_learning_period_seconds(60));
        learner.observe(
            "host:a",
            None,
            &observation(SECOND, connect("10.0.0.1", 443)),
        );
        learner.observe(
            "host:b",
            None,
            &observation(100 * SECOND, connect("10.0.0.1", 443)),
        );
        // At 90 s, a's learning is over: only b (learning until 160 s) is affected.
        learner.note_loss(
            Some(120 * SECOND),
            LossCounts {
                dropped_events: 0,
                gap_bytes: 4096,
            },
        );
        learner.advance_to(200 * SECOND);
        assert_eq!(learner.status("host:a"), Some(BaselineStatus::Complete));
        assert_eq!(learner.status("host:b"), Some(BaselineStatus::Partial));
        assert_eq!(
            learner.baseline("host:b").unwrap().metadata.loss.gap_bytes,
            4096
        );
        // A loss at an unknown time marks everyone.
        learner.note_loss(
            None,
            LossCounts {
                dropped_events: 7,
                gap_bytes: 0,
            },
        );
        assert_eq!(learner.status("host:a"), Some(BaselineStatus::Partial));
        // While learning, loss does not end learning early.
        let mut early =
            BaselineLearner::new(LearnerOptions::default().with_learning_period_seconds(60));
        early.observe(
            "host:c",
            None,
            &observation(SECOND, connect("10.0.0.1", 443)),
        );
        early.note_loss(
            Some(2 * SECOND),
            LossCounts {
                dropped_events: 1,
                gap_bytes: 0,
            },
        );
        assert_eq!(early.status("host:c"), Some(BaselineStatus::Learning));
    }

    #[test]
    fn limits_truncate_and_bound_agents() {
        let mut learner = BaselineLearner::new(LearnerOptions {
            learning_period_ns: 60 * SECOND,
            max_entries_per_agent: 3,
            max_agents: 1,
        });
        for i in 0..10 {
            learner.observe(
                "host:a",
                None,
                &observation(SECOND + i, connect(&format!("10.0.0.{i}"), 443)),
            );
        }
        learner.observe(
            "host:b",
            None,
            &observation(SECOND, connect("10.0.0.1", 443)),
        );
        let baseline = learner.baseline("host:a").unwrap();
        assert!(baseline.metadata.truncated);
        assert_eq!(baseline.spec.len(), 3);
        assert_eq!(learner.agents().count(), 1);
        assert_eq!(learner.agents_dropped(), 1);
        learner.advance_to(100 * SECOND);
        assert_eq!(learner.status("host:a"), Some(BaselineStatus::Partial));
    }
}
