//! Recorded events through a session, as fast as they can be read: `agentscope replay`,
//! [`Replay`](super::Replay) (which seeks), capture slices and baseline learning from a capture
//! or from JSON lines. The recorded identity answers go to
//! the identity source in their recorded place, the events through [`Session::feed_into`],
//! the end through [`Session::finish_into`], so a replay takes the same step as the live
//! collector did.

use super::codec::Entry;
use super::replay::{CaptureEvents, Start};
use crate::baseline::EventFeed;
use crate::detect::DetectorOptions;
use crate::event::Event;
use crate::pipeline::{AttributedObservation, Pipeline};
use crate::session::{Session, Sink, Step};

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
    start_session(events, detection, memory_budget).0
}

/// [`capture_session`], and where the capture starts.
pub(crate) fn start_session(
    events: &mut CaptureEvents,
    detection: Option<&DetectorOptions>,
    memory_budget: Option<usize>,
) -> (Session, Start) {
    let mut pipeline = events.new_pipeline(detection, memory_budget);
    let mut start = events.rewind();
    if let Some(state) = start.state.take() {
        pipeline.restore(state);
    }
    (Session::new(pipeline), start)
}

pub struct SessionReplay<S> {
    entries: S,
    session: Session,
    /// Incidents of the steps baseline learning read, until it takes them.
    incidents: Vec<crate::detect::Incident>,
}

impl<S: RecordedEntries> SessionReplay<S> {
    pub fn new(entries: S, session: Session) -> Self {
        Self {
            entries,
            session,
            incidents: Vec::new(),
        }
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn entries(&self) -> &S {
        &self.entries
    }

    pub fn entries_mut(&mut self) -> &mut S {
        &mut self.entries
    }

    /// Goes on with a new session (the entries rewound to match: a replay seeking back).
    pub fn restart(&mut self, session: Session) {
        self.session = session;
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
                None if self.session.is_finished() => return Ok(None),
                None => return Ok(Some((None, self.session.finish_into(sink)?))),
            }
        }
    }
}

impl SessionReplay<CaptureEvents> {
    /// Time of the next event, if any; recorded identity answers before it are passed to the
    /// session on the way, as [`SessionReplay::next_step`] would.
    pub fn next_event_ts(&mut self) -> Option<u64> {
        let session = &mut self.session;
        self.entries
            .peek_event_ts(|answer| session.remember_identity(answer))
    }
}

/// Baseline learning reads a replay through the session's step.
impl<S: RecordedEntries> EventFeed for SessionReplay<S> {
    fn next(&mut self) -> Option<(Option<Event>, Vec<AttributedObservation>)> {
        // No sink: nothing can fail.
        let (event, step) = self.next_step(&mut ()).ok().flatten()?;
        self.incidents.extend(step.incidents);
        Some((event, step.observations))
    }

    fn take_incidents(&mut self) -> Vec<crate::detect::Incident> {
        std::mem::take(&mut self.incidents)
    }

    fn pipeline(&self) -> &Pipeline {
        self.session.pipeline()
    }
}
