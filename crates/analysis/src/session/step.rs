//! What one step of a [`Session`](super::Session) produced: the observations an event
//! completed, the identity answers feeding it caused, what detection raised or changed, and
//! what was lost since the step before. Sinks read steps; nothing else reaches them.

use crate::detect::{Finding, Incident};
use crate::model::IdentityAnswer;
use crate::pipeline::AttributedObservation;

/// Everything one call to [`Session::feed`](super::Session::feed),
/// [`Session::note_losses`](super::Session::note_losses) or
/// [`Session::finish`](super::Session::finish) produced.
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// Observations completed, attributed, in the order the pipeline produced them (already
    /// applied to the model).
    pub observations: Vec<AttributedObservation>,
    /// Identity answers the step caused, in the order they were given. A sink that stores
    /// events (a recording, a served stream) writes them before the step's event: a replay
    /// needs each answer before the event that asked for it.
    pub identity_answers: Vec<IdentityAnswer>,
    /// Findings raised or changed by the step, in their latest version.
    pub findings: Vec<Finding>,
    /// Incidents raised or changed by the step, in their latest version.
    pub incidents: Vec<Incident>,
    /// What was lost since the previous step (already told to detection).
    pub losses: Losses,
}

impl Step {
    /// Nothing came out of the step.
    pub fn is_empty(&self) -> bool {
        self.observations.is_empty()
            && self.identity_answers.is_empty()
            && self.findings.is_empty()
            && self.incidents.is_empty()
            && self.losses.is_empty()
    }
}

/// Losses since the previous step, each where it happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Losses {
    /// Records the kernel dropped (ring buffer full).
    pub kernel_dropped: u64,
    /// Events dropped between the source and the session (a full channel, a console that
    /// read too slowly for a served stream).
    pub channel_dropped: u64,
    /// Records that did not decode: events lost too.
    pub decode_errors: u64,
    /// Payload bytes reconstruction was told about but never got.
    pub gap_bytes: u64,
    /// Observations of processes not yet known as an agent's that were not kept (see
    /// `agentscope_analysis::pipeline::EARLIER_KEPT`).
    pub earlier_dropped: u64,
}

impl Losses {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Events that never reached the pipeline: what makes a learning baseline partial.
    pub fn events_lost(&self) -> u64 {
        self.kernel_dropped
            .saturating_add(self.channel_dropped)
            .saturating_add(self.decode_errors)
    }

    /// Adds `other` (a caller summing several steps).
    pub fn accumulate(&mut self, other: &Losses) {
        self.kernel_dropped = self.kernel_dropped.saturating_add(other.kernel_dropped);
        self.channel_dropped = self.channel_dropped.saturating_add(other.channel_dropped);
        self.decode_errors = self.decode_errors.saturating_add(other.decode_errors);
        self.gap_bytes = self.gap_bytes.saturating_add(other.gap_bytes);
        self.earlier_dropped = self.earlier_dropped.saturating_add(other.earlier_dropped);
    }
}

/// What a source has lost so far, as running totals (a collector's summary, a served
/// stream's status). [`Session::note_losses`](super::Session::note_losses) turns them into
/// [`Losses`] since the last call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceLosses {
    pub kernel_dropped: u64,
    pub channel_dropped: u64,
    pub decode_errors: u64,
}
