//! Feeding baselines from an event stream: which agent each observation belongs to
//! ([`ObservationAttribution`]), and [`learn_from_events`], which runs the same
//! [`Pipeline`] as live capture over recorded events (JSON lines today, capture files once
//! their reader lands) and learns and judges what it sees.

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};

use crate::event::Event;
use crate::model::{HostOnlyIdentity, Model, ModelOptions};
use crate::pipeline::Pipeline;
use crate::process_table::ProcessTable;
use crate::reconstruct::{Observation, ObservationKind, ReconstructOptions};

use super::format::{AgentBaseline, LossCounts};
use super::judge::{BaselineJudge, Deviation};
use super::learner::{BaselineLearner, LearnerOptions};

/// Observations of processes not (yet) known as agents, kept in case they become one.
const PENDING_KEPT: usize = 4096;

struct Pending {
    lineage: Vec<u32>,
    observation: Observation,
}

/// Says which agent each observation belongs to, including what a process did before it
/// was known as an agent: a process becomes an agent at its first LLM or MCP call, but its
/// start-up (the exec, the connection to the LLM host) comes first. Those observations wait
/// (bounded, oldest dropped first) until the process or an ancestor becomes an agent, then
/// come out attributed; observations of processes that exit without becoming one are dropped.
#[derive(Default)]
pub struct ObservationAttribution {
    pending: VecDeque<Pending>,
    /// Pids already seen acting for an agent.
    attributed: HashSet<u32>,
    dropped: u64,
}

impl ObservationAttribution {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pending observations dropped because the bound was reached.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The observations `pipeline` just returned (already applied to its model), with the
    /// agent key each belongs to; earlier observations whose process turned out to be an
    /// agent come out first.
    pub fn attribute(
        &mut self,
        observations: Vec<Observation>,
        pipeline: &Pipeline,
    ) -> Vec<(String, Observation)> {
        let mut out = Vec::new();
        for observation in &observations {
            out.extend(
                self.attribute_one(observation, pipeline.model(), pipeline.processes())
                    .into_iter()
                    .map(|(agent, observation)| (agent, observation.into_owned())),
            );
        }
        out
    }

    /// One observation `model` has applied: it (borrowed) with earlier ones now known to be
    /// an agent's (owned), or nothing while its process is not known as an agent's.
    pub fn attribute_one<'a>(
        &mut self,
        observation: &'a Observation,
        model: &Model,
        processes: &ProcessTable,
    ) -> Vec<(String, Cow<'a, Observation>)> {
        let mut out = Vec::new();
        let pid = observation.actor.pid;
        if let ObservationKind::Exit { .. } = observation.kind {
            // The pid may be reused by an unrelated process.
            self.attributed.remove(&pid);
            self.pending.retain(|p| p.observation.actor.pid != pid);
            return out;
        }
        let lineage = processes.lineage(pid);
        match model.agent_of(&lineage) {
            Some(agent) => {
                if self.attributed.insert(pid) && !self.pending.is_empty() {
                    self.release(model, &mut out);
                }
                out.push((agent, Cow::Borrowed(observation)));
            }
            None => {
                // Only what a baseline learns from is worth keeping for later.
                if crate::baseline::items::items_of(observation).is_empty() {
                    return out;
                }
                if self.pending.len() >= PENDING_KEPT {
                    self.pending.pop_front();
                    self.dropped += 1;
                }
                self.pending.push_back(Pending {
                    lineage,
                    observation: observation.clone(),
                });
            }
        }
        out
    }

    /// Pending observations whose process (or an ancestor, as it was then) is now an agent.
    fn release<'a>(&mut self, model: &Model, out: &mut Vec<(String, Cow<'a, Observation>)>) {
        let mut kept = VecDeque::with_capacity(self.pending.len());
        for pending in self.pending.drain(..) {
            match model.agent_of(&pending.lineage) {
                Some(agent) => out.push((agent, Cow::Owned(pending.observation))),
                None => kept.push_back(pending),
            }
        }
        self.pending = kept;
    }
}

/// What to learn with and judge against.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    pub learner: LearnerOptions,
    /// Approved baselines: their agents are judged against them.
    pub approved: Vec<AgentBaseline>,
    pub reconstruct: ReconstructOptions,
    pub model: ModelOptions,
}

/// The result of [`learn_from_events`].
pub struct ReplayOutcome {
    /// Learned baselines (and the approved ones it judged against).
    pub judge: BaselineJudge,
    /// Deviations, in the order they were found.
    pub deviations: Vec<Deviation>,
    pub events: u64,
}

impl ReplayOutcome {
    pub fn learner(&self) -> &BaselineLearner {
        self.judge.learner()
    }
}

/// Where events come from for learning: something that feeds a pipeline one event at a time
/// and says what each produced (a list of events, or a capture's replay).
pub trait EventFeed {
    /// Feeds the next event; `None` at the end. At the end of the events, one last call
    /// returns `(None, observations)` with what the pipeline flushed.
    fn next(&mut self) -> Option<(Option<Event>, Vec<Observation>)>;
    fn pipeline(&self) -> &Pipeline;
}

/// Events from memory through a pipeline whose identity knows only the host.
struct EventsFeed<I> {
    events: I,
    pipeline: Pipeline,
    finished: bool,
}

impl<I: Iterator<Item = Event>> EventFeed for EventsFeed<I> {
    fn next(&mut self) -> Option<(Option<Event>, Vec<Observation>)> {
        match self.events.next() {
            Some(event) => {
                let observations = self.pipeline.push(&event);
                Some((Some(event), observations))
            }
            None if !self.finished => {
                self.finished = true;
                Some((None, self.pipeline.finish()))
            }
            None => None,
        }
    }

    fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }
}

/// Runs `events` through a [`Pipeline`] (identity from the events alone: every process is on
/// the host, as [`HostOnlyIdentity`] says) and learns every agent's baseline; agents with an
/// approved baseline, and agents whose learning period ended within the events, are judged.
/// Bytes reconstruction lost count as loss for the agents learning at the time.
pub fn learn_from_events(
    events: impl IntoIterator<Item = Event>,
    options: ReplayOptions,
) -> ReplayOutcome {
    let feed = EventsFeed {
        events: events.into_iter(),
        pipeline: Pipeline::new(
            options.reconstruct.clone(),
            options.model.clone(),
            Box::new(HostOnlyIdentity),
        ),
        finished: false,
    };
    learn_from_feed(feed, options)
}

/// As [`learn_from_events`], from any [`EventFeed`] (a capture's `Replay`
/// keeps the identities it recorded; `options.reconstruct` and `options.model` are then the
/// feed's business).
pub fn learn_from_feed(mut feed: impl EventFeed, options: ReplayOptions) -> ReplayOutcome {
    let mut judge =
        BaselineJudge::new(BaselineLearner::new(options.learner)).with_approved(options.approved);
    let mut attribution = ObservationAttribution::new();
    let mut deviations = Vec::new();
    let mut gap_bytes = 0;
    let mut count = 0u64;
    let mut last_ts = 0;
    while let Some((event, observations)) = feed.next() {
        let pipeline = feed.pipeline();
        for (agent, observation) in attribution.attribute(observations, pipeline) {
            let identity = pipeline.model().agent(&agent).map(|a| &a.identity);
            deviations.extend(judge.observe(&agent, identity, &observation));
        }
        let ts = match &event {
            Some(event) => {
                count += 1;
                last_ts = last_ts.max(event.header.ts_ns);
                event.header.ts_ns
            }
            None => last_ts,
        };
        let gap = pipeline.reconstruct_stats().gap_bytes;
        if gap > gap_bytes {
            judge.note_loss(
                Some(ts),
                LossCounts {
                    dropped_events: 0,
                    gap_bytes: gap - gap_bytes,
                },
            );
            gap_bytes = gap;
        }
        if event.is_some() {
            judge.advance_to(ts);
        }
    }
    ReplayOutcome {
        judge,
        deviations,
        events: count,
    }
}
