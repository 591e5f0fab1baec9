//! Recorded events through a session, as fast as they can be read: `agentscope replay` and
//! baseline learning from a capture or from JSON lines. The recorded identity answers go to
//! the identity source in their recorded place, the events through [`Session::feed_into`],
//! the end through [`Session::finish_into`], so a replay takes the same step as the live
//! collector did.

use agentscope_analysis::baseline::EventFeed;
use agentscope_analysis::detect::DetectorOptions;
use agentscope_analysis::pipeline::{AttributedObservation, Pipeline};
use agentscope_capture::capture::codec::Entry;
use agentscope_capture::capture::CaptureEvents;
use agentscope_event::Event;

use crate::session::Session;
use crate::sink::Sink;
use crate::step::Step;

/// Where recorded entries come from: a capture ([`CaptureEvents`]) or a list of events
/// ([`EventList`]).
pub trait RecordedEntries {
    /// The next identity answer or event; `None` at the end.
    fn next_entry(&mut self) -> Option<Entry>;
}

impl RecordedEntries for CaptureEvents {
    fn next_entry(&mut self) -> Option<Entry> {
        CaptureEvents::next_entry(self)
    }
}

/// Events without identity answers (JSON lines: identity comes from the pipeline's own
/// identity source).
pub struct EventList<I>(pub I);

impl<I: Iterator<Item = Event>> RecordedEntries for EventList<I> {
    fn next_entry(&mut self) -> Option<Entry> {
        self.0.next().map(Entry::Event)
    }
}

/// A session at the start of a capture: the pipeline it was recorded with (or
/// `memory_budget`), restored from its starting keyframe, identity from the capture.
pub fn capture_session(
    events: &mut CaptureEvents,
    detection: Option<&DetectorOptions>,
    memory_budget: Option<usize>,
) -> Session {
    let mut pipeline = events.new_pipeline(detection, memory_budget);
    if let Some(state) = events.rewind().state {
        pipeline.restore(state);
    }
    Session::new(pipeline)
}

pub struct SessionReplay<S> {
    entries: S,
    session: Session,
}

impl<S: RecordedEntries> SessionReplay<S> {
    pub fn new(entries: S, session: Session) -> Self {
        Self { entries, session }
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn entries(&self) -> &S {
        &self.entries
    }

    /// Feeds the next event and hands the step to `sink`; at the end, once, the final flush
    /// (with an event of `None`); then `None`.
    pub fn next_step(
        &mut self,
        sink: &mut (impl Sink + ?Sized),
    ) -> std::io::Result<Option<(Option<Event>, Step)>> {
        loop {
            match self.entries.next_entry() {
                Some(Entry::Identity(answer)) => self.session.remember_identity(answer),
                Some(Entry::Event(event)) => {
                    let step = self.session.feed_into(&event, sink)?;
                    return Ok(Some((Some(event), step)));
                }
                Some(Entry::Unknown { .. }) => {}
                None if self.session.is_finished() => return Ok(None),
                None => return Ok(Some((None, self.session.finish_into(sink)?))),
            }
        }
    }
}

/// Baseline learning reads a replay through the session's step.
impl<S: RecordedEntries> EventFeed for SessionReplay<S> {
    fn next(&mut self) -> Option<(Option<Event>, Vec<AttributedObservation>)> {
        // No sink: nothing can fail.
        self.next_step(&mut ())
            .ok()
            .flatten()
            .map(|(event, step)| (event, step.observations))
    }

    fn pipeline(&self) -> &Pipeline {
        self.session.pipeline()
    }
}
