//! The one step every driver takes: a [`Session`] owns the [`Pipeline`], is fed events one at
//! a time, and says what each step produced ([`Step`]) to the caller and to its [`Sink`]s.
//!
//! `collect`, the live, remote and playback consoles and baseline replay read events from
//! different sources (the kernel ring buffer, a channel from the collector thread, a socket,
//! a file), but what happens to an event once read is this, in one place:
//! - the pipeline is fed it (reconstruction → model → attribution → detection);
//! - the identity answers feeding it caused are taken from the pipeline's log (always on, so
//!   no caller has to remember to turn it on) and handed out with the step, which is how a
//!   recording and a served stream store them before the event that asked for them;
//! - what detection raised or changed is read from its change feed through the session's
//!   own cursor;
//! - losses are accounted: gap bytes and earlier observations not kept, from the pipeline's
//!   counters, and events lost before the pipeline (kernel ring buffer, a full channel,
//!   undecodable records) from the source's running totals in [`Session::note_losses`],
//!   which also tells detection, so baselines learning during a loss become partial whatever
//!   the driver.

use std::time::Instant;

use crate::detect::{DetectionCursor, DetectorOptions};
use crate::model::IdentityAnswer;
use crate::pipeline::{AttributedObservation, Pipeline};
use agentscope_event::collector_counters::CollectorCounters;
use agentscope_event::Event;

pub mod sink;
pub mod step;

pub use sink::Sink;
pub use step::{Losses, SourceLosses, Step};

pub struct Session {
    pipeline: Pipeline,
    detection: DetectionCursor,
    /// The source's running totals already accounted, and the pipeline's counters as of the
    /// last step.
    source_losses: SourceLosses,
    gap_bytes: u64,
    earlier_dropped: u64,
    /// Every loss so far.
    losses: Losses,
    collector: CollectorCounters,
    events: u64,
    finished: bool,
}

impl Session {
    /// A session over `pipeline` (configured, and restored from a keyframe if the source
    /// starts mid-capture).
    pub fn new(mut pipeline: Pipeline) -> Self {
        pipeline.log_identity_answers(true);
        let gap_bytes = pipeline.reconstruct_stats().gap_bytes;
        let earlier_dropped = pipeline.earlier_dropped();
        Self {
            pipeline,
            detection: DetectionCursor::default(),
            source_losses: SourceLosses::default(),
            gap_bytes,
            earlier_dropped,
            losses: Losses::default(),
            collector: CollectorCounters::default(),
            events: 0,
            finished: false,
        }
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// See [`Pipeline::take_opaque_sockets`].
    pub fn take_opaque_sockets(&mut self) -> Vec<agentscope_event::SocketRef> {
        self.pipeline.take_opaque_sockets()
    }

    /// Restarts detection with these options (approved baselines, another learning period).
    pub fn set_detection(&mut self, options: DetectorOptions) {
        self.pipeline.set_detection(options);
        self.detection = DetectionCursor::default();
    }

    /// An approved baseline arrived or changed while running (see
    /// [`Pipeline::set_approved_baseline`]).
    pub fn set_approved_baseline(&mut self, baseline: crate::baseline::AgentBaseline) {
        self.pipeline.set_approved_baseline(baseline);
    }

    /// See [`Pipeline::remove_approved_baseline`].
    pub fn remove_approved_baseline(&mut self, agent: &str) {
        self.pipeline.remove_approved_baseline(agent);
    }

    /// A recorded identity answer, passed to the identity source (replays, served streams).
    pub fn remember_identity(&mut self, answer: IdentityAnswer) {
        self.pipeline.remember_identity(answer);
    }

    /// See [`Pipeline::remember_cluster_objects`].
    pub fn remember_cluster_objects(&mut self, last: crate::pipeline::TimedClusterObjects) {
        self.pipeline.remember_cluster_objects(last);
    }

    /// Events fed so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Every loss accounted so far.
    pub fn losses(&self) -> Losses {
        self.losses
    }

    /// The collector's counters as the source last gave them (stored in keyframes).
    pub fn collector_counters(&self) -> CollectorCounters {
        self.collector
    }

    /// Sets what [`Session::collector_counters`] says (a live collector's summary, a served
    /// stream's status).
    pub fn set_collector_counters(&mut self, counters: CollectorCounters) {
        self.collector = counters;
    }

    /// Feeds one event and returns what it produced (no sinks: the console's sources).
    pub fn feed(&mut self, event: &Event) -> Step {
        let observations = self.pipeline.push(event);
        self.events += 1;
        self.step_from(observations)
    }

    /// Feeds one event, then hands the step to `sink`.
    pub fn feed_into(
        &mut self,
        event: &Event,
        sink: &mut (impl Sink + ?Sized),
    ) -> std::io::Result<Step> {
        let step = self.feed(event);
        sink.step(Some(event), &step, self)?;
        Ok(step)
    }

    /// The source's running loss totals: what grew since the last call is told to detection
    /// (at the latest event time: baselines learning then become partial) and returned.
    pub fn note_losses(&mut self, totals: SourceLosses) -> Step {
        let told = self.source_losses;
        let source = Losses {
            kernel_dropped: totals.kernel_dropped.saturating_sub(told.kernel_dropped),
            channel_dropped: totals.channel_dropped.saturating_sub(told.channel_dropped),
            decode_errors: totals.decode_errors.saturating_sub(told.decode_errors),
            ..Losses::default()
        };
        self.source_losses = SourceLosses {
            kernel_dropped: told.kernel_dropped.max(totals.kernel_dropped),
            channel_dropped: told.channel_dropped.max(totals.channel_dropped),
            decode_errors: told.decode_errors.max(totals.decode_errors),
        };
        let at = self.pipeline.last_event_ts();
        self.pipeline.note_dropped_events(source.events_lost(), at);
        self.losses.accumulate(&source);
        let mut step = self.step_from(Vec::new());
        step.losses.accumulate(&source);
        step
    }

    /// As [`Session::note_losses`], handing the step to `sink` when something was lost.
    pub fn note_losses_into(
        &mut self,
        totals: SourceLosses,
        sink: &mut (impl Sink + ?Sized),
    ) -> std::io::Result<Step> {
        let step = self.note_losses(totals);
        if !step.is_empty() {
            sink.step(None, &step, self)?;
        }
        Ok(step)
    }

    /// Time passed: sinks flush, send status, rotate.
    pub fn tick(&mut self, now: Instant, sink: &mut (impl Sink + ?Sized)) -> std::io::Result<()> {
        sink.tick(now, self)
    }

    /// The source ended (or the driver stops): flushes what the pipeline still holds
    /// (exchanges cut short come out flagged). Only the first call does anything.
    pub fn finish(&mut self) -> Step {
        self.finish_while(&mut || true)
    }

    /// As [`Session::finish`], flushing connections only while `keep_going` says so (see
    /// [`Pipeline::finish_while`]): a live stop's deadline.
    pub fn finish_while(&mut self, keep_going: &mut dyn FnMut() -> bool) -> Step {
        if self.finished {
            return Step::default();
        }
        self.finished = true;
        let observations = self.pipeline.finish_while(keep_going);
        self.step_from(observations)
    }

    /// As [`Session::finish`], then tells `sink` the run ended.
    pub fn finish_into(&mut self, sink: &mut (impl Sink + ?Sized)) -> std::io::Result<Step> {
        self.finish_into_while(sink, &mut || true)
    }

    /// As [`Session::finish_while`], then tells `sink` the run ended.
    pub fn finish_into_while(
        &mut self,
        sink: &mut (impl Sink + ?Sized),
        keep_going: &mut dyn FnMut() -> bool,
    ) -> std::io::Result<Step> {
        let step = self.finish_while(keep_going);
        sink.finish(&step, self)?;
        Ok(step)
    }

    /// Whether [`Session::finish`] was called.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn step_from(&mut self, observations: Vec<AttributedObservation>) -> Step {
        let identity_answers = self.pipeline.take_identity_answers();
        let changes = self.pipeline.detector().changes_since(self.detection);
        let findings = changes.findings.iter().map(|f| (*f).clone()).collect();
        let incidents = changes.incidents.iter().map(|i| (*i).clone()).collect();
        self.detection = changes.next;
        let gap_bytes = self.pipeline.reconstruct_stats().gap_bytes;
        let earlier_dropped = self.pipeline.earlier_dropped();
        let losses = Losses {
            gap_bytes: gap_bytes.saturating_sub(self.gap_bytes),
            earlier_dropped: earlier_dropped.saturating_sub(self.earlier_dropped),
            ..Losses::default()
        };
        self.gap_bytes = gap_bytes;
        self.earlier_dropped = earlier_dropped;
        self.losses.accumulate(&losses);
        Step {
            observations,
            identity_answers,
            findings,
            incidents,
            losses,
        }
    }
}
