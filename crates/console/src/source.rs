//! What the console reads from: a [`Source`] owns the [`Pipeline`] (events → reconstruction →
//! model) and hands the console, once per tick, the observations completed since the last
//! tick together with its status (live or replay position, rate, drops, recording).
//!
//! The console never feeds events or touches the kernel or disk itself; it only calls
//! [`Source::poll`] with a bound on the work to do and the control methods when the user asks
//! for pause, speed, step, seek or recording. A source that cannot do something (seek in live
//! mode, record a replay) says so with [`ControlError::Unsupported`] and the console shows the
//! message in its status line.

use std::fmt;
use std::path::PathBuf;

use agentscope_analysis::pipeline::Pipeline;

use super::findings::FindingView;

/// Live capture, or a replay and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceMode {
    Live,
    Replay(ReplayStatus),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReplayStatus {
    /// Event time of the playhead, nanoseconds since the first event.
    pub position_ns: u64,
    /// Event time from the first to the last event.
    pub duration_ns: u64,
    /// Event time (monotonic, as in events) of the first event: where `position_ns` counts
    /// from, to place findings and other event times on the replay.
    pub start_ts_ns: u64,
    /// Playback speed as a multiple of recorded time; `f64::INFINITY` = as fast as possible.
    pub speed: f64,
    pub paused: bool,
    /// Every event has been fed.
    pub finished: bool,
}

/// Whether the source is writing what it sees to a file (set by live sources).
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RecordingState {
    /// This source cannot record (a replay).
    #[default]
    Unavailable,
    Off,
    On {
        path: PathBuf,
        bytes: u64,
    },
}

/// What the status line shows.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceStatus {
    /// Where the events come from: a file name, `live`, a socket path.
    pub label: String,
    pub mode: SourceMode,
    /// Events fed to the pipeline so far.
    pub events: u64,
    pub events_per_sec: f64,
    /// Events the source lost (kernel ring buffer full, a slow reader).
    pub drops: u64,
    pub recording: RecordingState,
}

impl Default for SourceStatus {
    fn default() -> Self {
        Self {
            label: String::new(),
            mode: SourceMode::Live,
            events: 0,
            events_per_sec: 0.0,
            drops: 0,
            recording: RecordingState::Unavailable,
        }
    }
}

/// One tick's worth of news from a source.
#[derive(Debug, Clone, Default)]
pub struct SourceUpdate {
    /// The pipeline was rebuilt (a seek backwards replays from the start): everything the
    /// console derived from earlier observations must be dropped before `observations`.
    pub reset: bool,
    /// Observations completed since the last poll, in the order the pipeline produced them,
    /// with the agent each belongs to. They are already applied to [`Source::pipeline`]'s
    /// model. Sources fill it from their session's steps (`agentscope_session::Session`).
    pub observations: Vec<SourcedObservation>,
    /// Incidents raised since the last poll (by the detection module, when there is one).
    pub findings: Vec<FindingView>,
    pub status: SourceStatus,
    /// Something worth a line in the status bar ("end of recording").
    pub message: Option<String>,
}

/// An observation as it left the pipeline, with the agent it belongs to: the pipeline
/// attributes every observation (and hands out again, marked `earlier`, what a process did
/// before it turned out to be an agent's), so the console never works it out itself.
pub use agentscope_analysis::pipeline::AttributedObservation as SourcedObservation;

/// Why a control request did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlError {
    /// The source cannot do this at all (seek while live, record a replay).
    Unsupported(String),
    /// It could, but it failed (the recording file could not be created).
    Failed(String),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::Unsupported(what) | ControlError::Failed(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for ControlError {}

pub type ControlResult = Result<(), ControlError>;

/// Slower or faster replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeedChange {
    Slower,
    Faster,
}

/// Something the console can display and drive.
///
/// `poll` is called once per frame and must return promptly: at most `max_events` events
/// should be fed to the pipeline per call, and a source must not wait for events to arrive.
pub trait Source {
    /// Feeds at most `max_events` events and reports what came out of them.
    fn poll(&mut self, max_events: usize) -> SourceUpdate;

    /// The pipeline the console renders from (model, graph, process table).
    fn pipeline(&self) -> &Pipeline;

    fn pause(&mut self) -> ControlResult {
        Err(ControlError::Unsupported("this source cannot pause".into()))
    }

    fn resume(&mut self) -> ControlResult {
        Err(ControlError::Unsupported("this source cannot pause".into()))
    }

    fn change_speed(&mut self, _change: SpeedChange) -> ControlResult {
        Err(ControlError::Unsupported(
            "speed applies to replays only".into(),
        ))
    }

    /// Pauses and feeds exactly one more event on the next poll.
    fn step(&mut self) -> ControlResult {
        Err(ControlError::Unsupported(
            "single step applies to replays only".into(),
        ))
    }

    /// Moves the playhead by `delta_ns` of event time (negative: backwards).
    fn seek(&mut self, _delta_ns: i64) -> ControlResult {
        Err(ControlError::Unsupported(
            "seek applies to replays only".into(),
        ))
    }

    fn toggle_recording(&mut self) -> ControlResult {
        Err(ControlError::Unsupported(
            "recording is available in live mode only".into(),
        ))
    }
}
