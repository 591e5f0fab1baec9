//! Feeding baselines from an event stream: [`learn_from_events`] runs the same [`Pipeline`]
//! as live capture over recorded events (JSON lines, or a capture file's replay) and learns
//! and judges what it sees, with the agent the pipeline attributed each observation to.

use crate::event::Event;
use crate::model::{HostOnlyIdentity, ModelOptions};
use crate::pipeline::{AttributedObservation, Pipeline};
use crate::reconstruct::ReconstructOptions;

use super::format::{AgentBaseline, LossCounts};
use super::judge::{BaselineJudge, Deviation};
use super::learner::{BaselineLearner, LearnerOptions};

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
    fn next(&mut self) -> Option<(Option<Event>, Vec<AttributedObservation>)>;
    fn pipeline(&self) -> &Pipeline;
    /// Incidents detection raised or changed since the last call (none where no detection
    /// runs): a baseline learned while one opened holds its evidence.
    fn take_incidents(&mut self) -> Vec<crate::detect::Incident> {
        Vec::new()
    }
}

/// Events from memory through a pipeline whose identity knows only the host.
struct EventsFeed<I> {
    events: I,
    pipeline: Pipeline,
    finished: bool,
}

impl<I: Iterator<Item = Event>> EventFeed for EventsFeed<I> {
    fn next(&mut self) -> Option<(Option<Event>, Vec<AttributedObservation>)> {
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
    let mut deviations = Vec::new();
    let mut gap_bytes = 0;
    let mut count = 0u64;
    let mut last_ts = 0;
    while let Some((event, observations)) = feed.next() {
        for incident in feed.take_incidents() {
            judge.note_incident(
                &incident.agent,
                &incident.id,
                &incident.story,
                incident.opened_ns,
            );
        }
        let pipeline = feed.pipeline();
        for attributed in &observations {
            let Some(agent) = &attributed.agent else {
                continue;
            };
            let identity = pipeline.model().agent(agent).map(|a| &a.identity);
            deviations.extend(judge.observe(agent, identity, attributed));
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
