//! Replaying a capture through the same [`Pipeline`] as live capture.
//!
//! A replay starts from the capture's first keyframe (the collector's process table when it
//! started, or the state at the start of a rotated file or a slice) and feeds the recorded
//! events in order, passing recorded identity answers to the identity source just before the
//! event that asked for them. The same events and answers in the same order give the same
//! model, so a replay shows what the live console showed.
//!
//! [`Replay`] also drives playback for the console: play and pause, speed as a fraction of
//! real time or as fast as possible, single steps, and seeking by time. A seek backwards
//! replays from the start up to the target, because the model is built from everything
//! before it; that is exact, and fast enough (the pipeline does hundreds of thousands of
//! events a second). [`Replay::open_from_keyframe`] starts at a keyframe instead, for very
//! long captures.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::Instant;

use super::block::{BlockInfo, FileHeader};
use super::codec::Entry;
use super::reader::{CaptureError, CaptureReader, Damage};
use super::writer::Keyframe;
use crate::detect::DetectorOptions;
use crate::event::Event;
use crate::model::{ActorIdentity, IdentityAnswer, IdentityLookup, ModelOptions};
use crate::pipeline::{AttributedObservation, Pipeline};
use crate::reconstruct::ReconstructOptions;

/// Identity answers from a capture. A lookup the recording never made (a newer parser found
/// an agent the recording did not know) is answered from another answer for the same cgroup,
/// else as a host process, and counted in the warnings.
#[derive(Debug, Default)]
pub struct RecordedIdentity {
    answers: HashMap<(u32, u64, u32), ActorIdentity>,
    by_cgroup: HashMap<u64, ActorIdentity>,
    unanswered: u64,
}

impl IdentityLookup for RecordedIdentity {
    fn lookup(&mut self, pid: u32, cgroup_id: u64, uid: u32) -> ActorIdentity {
        if let Some(found) = self.answers.get(&(pid, cgroup_id, uid)) {
            return found.clone();
        }
        self.unanswered += 1;
        match self.by_cgroup.get(&cgroup_id) {
            Some(same_cgroup) => ActorIdentity {
                uid,
                user: same_cgroup.user.clone().filter(|_| same_cgroup.uid == uid),
                ..same_cgroup.clone()
            },
            None => ActorIdentity {
                workload: "host".into(),
                uid,
                ..Default::default()
            },
        }
    }

    fn remember(&mut self, answer: IdentityAnswer) {
        self.by_cgroup
            .insert(answer.cgroup_id, answer.identity.clone());
        self.answers
            .insert((answer.pid, answer.cgroup_id, answer.uid), answer.identity);
    }

    fn warnings(&self) -> Vec<String> {
        if self.unanswered == 0 {
            return Vec::new();
        }
        vec![format!(
            "{} identity lookups had no answer in the capture (processes this version \
             recognises as agents but the recorder did not); they were answered from their \
             cgroup or as host processes",
            self.unanswered
        )]
    }
}

/// Playback speed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// A multiple of real time (1.0 is as recorded, 0.25 a quarter as fast).
    RealTime(f64),
    AsFastAsPossible,
}

/// Speeds the console steps through with `[` and `]`.
pub const SPEED_STEPS: &[Speed] = &[
    Speed::RealTime(0.1),
    Speed::RealTime(0.25),
    Speed::RealTime(0.5),
    Speed::RealTime(1.0),
    Speed::RealTime(2.0),
    Speed::RealTime(5.0),
    Speed::RealTime(10.0),
    Speed::RealTime(100.0),
    Speed::AsFastAsPossible,
];

impl std::fmt::Display for Speed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Speed::RealTime(factor) => write!(f, "{factor}x"),
            Speed::AsFastAsPossible => write!(f, "max"),
        }
    }
}

/// Where playback is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Position {
    /// Time of the last event replayed (monotonic ns, as in events); 0 before the first.
    pub ts_ns: u64,
    pub time_unix_ns: u64,
    /// Events replayed so far (counting from the capture's first event).
    pub event_index: u64,
    pub first_ts_ns: u64,
    pub last_ts_ns: u64,
    pub first_time_unix_ns: u64,
    pub total_events: u64,
}

/// What one call to [`Replay::advance`] did.
#[derive(Debug, Default)]
pub struct Advance {
    pub events: usize,
    pub observations: Vec<AttributedObservation>,
    /// The capture has ended (and in-flight exchanges were flushed).
    pub finished: bool,
}

pub struct Replay {
    reader: CaptureReader,
    pipeline: Pipeline,
    /// Detection options the pipeline is rebuilt with (a seek back replays from the start).
    detection: Option<DetectorOptions>,
    /// Memory budget instead of the one the capture was recorded with.
    memory_budget: Option<usize>,
    /// Events blocks in order, and the keyframe playback started from.
    chunks: Vec<BlockInfo>,
    start: Option<BlockInfo>,
    next_chunk: usize,
    pending: VecDeque<Entry>,
    damage: Vec<Damage>,
    paused: bool,
    speed: Speed,
    /// Real time and capture time that correspond, for paced playback.
    anchor: Option<(Instant, u64)>,
    position: Position,
    finished: bool,
    /// Index of the first event to replay (that of the starting keyframe).
    skip_to_event: u64,
}

impl Replay {
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        Ok(Self::new(CaptureReader::open(path)?))
    }

    /// Plays from the start of the capture (its first keyframe). When the first keyframe is
    /// damaged, plays every event from the first without the state it held, rather than
    /// skipping to a later keyframe (the damage says so).
    pub fn new(reader: CaptureReader) -> Self {
        let first_event = reader.event_blocks().next().map(|c| c.first_event_index);
        let start = reader
            .keyframe_blocks()
            .next()
            .filter(|k| first_event.is_none_or(|first| k.first_event_index <= first))
            .copied();
        Self::starting_at(reader, start)
    }

    /// Plays from the last keyframe at or before `ts_ns` (monotonic ns), skipping what came
    /// before it: quicker on a long capture, but what was in flight at the keyframe and the
    /// graph before it are not shown.
    pub fn open_from_keyframe(reader: CaptureReader, ts_ns: u64) -> Self {
        let start = reader
            .keyframe_blocks()
            .rfind(|k| k.first_ts_ns <= ts_ns)
            .or_else(|| reader.keyframe_blocks().next())
            .copied();
        Self::starting_at(reader, start)
    }

    fn starting_at(reader: CaptureReader, start: Option<BlockInfo>) -> Self {
        let chunks: Vec<BlockInfo> = reader.event_blocks().copied().collect();
        let position = Position {
            first_ts_ns: chunks.first().map_or(0, |c| c.first_ts_ns),
            last_ts_ns: chunks.iter().map(|c| c.last_ts_ns).max().unwrap_or(0),
            first_time_unix_ns: chunks.first().map_or(0, |c| c.first_time_unix_ns),
            total_events: chunks
                .last()
                .map_or(0, |c| c.first_event_index + c.event_count as u64),
            ..Default::default()
        };
        let mut replay = Self {
            pipeline: new_pipeline(&reader, None, None),
            detection: None,
            memory_budget: None,
            reader,
            chunks,
            start,
            next_chunk: 0,
            pending: VecDeque::new(),
            damage: Vec::new(),
            paused: false,
            speed: Speed::AsFastAsPossible,
            anchor: None,
            position,
            finished: false,
            skip_to_event: 0,
        };
        replay.rewind();
        replay
    }

    /// Back to the starting keyframe with a new pipeline.
    fn rewind(&mut self) {
        self.pipeline = new_pipeline(&self.reader, self.detection.as_ref(), self.memory_budget);
        self.pending.clear();
        // Damage found opening the file comes first; what reading blocks finds follows.
        self.damage = self.reader.damage().to_vec();
        self.finished = false;
        self.position.ts_ns = 0;
        self.position.time_unix_ns = 0;
        self.position.event_index = 0;
        let mut first_event = 0;
        if let Some(start) = self.start {
            match self.reader.read_keyframe(&start) {
                Ok((header, Keyframe { pipeline, .. })) => {
                    first_event = pipeline.next_event_index;
                    self.pipeline.restore(pipeline);
                    self.position.ts_ns = header.ts_ns;
                    self.position.time_unix_ns = header.time_unix_ns;
                    self.position.event_index = first_event;
                }
                Err(damage) => self.damage.push(damage),
            }
        }
        // The chunks holding events from the start on.
        self.next_chunk = self
            .chunks
            .iter()
            .position(|c| c.first_event_index + c.event_count as u64 > first_event)
            .unwrap_or(self.chunks.len());
        self.skip_to_event = first_event;
        self.anchor = None;
    }

    pub fn reader(&self) -> &CaptureReader {
        &self.reader
    }

    /// Judges against approved baselines (or learns for another period) instead of the
    /// defaults; starts the replay over.
    pub fn with_detection(mut self, options: DetectorOptions) -> Self {
        self.detection = Some(options);
        self.rewind();
        self
    }

    /// Runs the pipeline with a memory budget of `bytes` instead of the one the capture was
    /// recorded with (what is cut or evicted then differs from the live run); starts the
    /// replay over.
    pub fn with_memory_budget(mut self, bytes: usize) -> Self {
        self.memory_budget = Some(bytes);
        self.rewind();
        self
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    pub fn pipeline_mut(&mut self) -> &mut Pipeline {
        &mut self.pipeline
    }

    /// Damage found opening the capture, then damage met while replaying (blocks that could
    /// not be read are skipped).
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    pub fn position(&self) -> Position {
        self.position
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    pub fn speed(&self) -> Speed {
        self.speed
    }

    pub fn pause(&mut self) {
        self.paused = true;
        self.anchor = None;
    }

    pub fn play(&mut self) {
        self.paused = false;
        self.anchor = None;
    }

    pub fn set_speed(&mut self, speed: Speed) {
        self.speed = speed;
        self.anchor = None;
    }

    /// Loads the next chunk's entries; false at the end of the capture.
    fn fill(&mut self) -> bool {
        while self.pending.is_empty() {
            let Some(chunk) = self.chunks.get(self.next_chunk).copied() else {
                return false;
            };
            self.next_chunk += 1;
            let (entries, damage) = self.reader.read_events_from(&chunk, self.skip_to_event);
            self.damage.extend(damage);
            self.pending.extend(entries);
        }
        true
    }

    /// Time of the next event, if any (recorded identity answers before it are passed on).
    pub fn next_event_ts(&mut self) -> Option<u64> {
        self.peek_ts()
    }

    fn peek_ts(&mut self) -> Option<u64> {
        loop {
            if !self.fill() {
                return None;
            }
            match self.pending.front() {
                Some(Entry::Event(event)) => return Some(event.header.ts_ns),
                Some(Entry::Identity(_)) | Some(Entry::Unknown { .. }) => {
                    if let Some(Entry::Identity(answer)) = self.pending.pop_front() {
                        self.pipeline.remember_identity(answer);
                    }
                }
                None => return None,
            }
        }
    }

    /// Replays the next event; `None` at the end (the first time, in-flight exchanges are
    /// flushed and returned as the last observations with an event of `None`).
    pub fn step(&mut self) -> Option<(Option<Event>, Vec<AttributedObservation>)> {
        if self.peek_ts().is_none() {
            if self.finished {
                return None;
            }
            self.finished = true;
            let observations = self.pipeline.finish();
            return Some((None, observations));
        }
        let Some(Entry::Event(event)) = self.pending.pop_front() else {
            return None;
        };
        // Identity answers given on the way are the recorded ones; a recorder writing a new
        // capture from this replay (a slice) takes them from the pipeline's log.
        let observations = self.pipeline.push(&event);
        self.position.ts_ns = event.header.ts_ns;
        self.position.time_unix_ns = event.header.time_unix_ns;
        self.position.event_index += 1;
        Some((Some(event), observations))
    }

    /// Replays everything left, as fast as possible; returns the number of events.
    pub fn run_to_end(&mut self) -> u64 {
        let mut events = 0;
        while let Some((event, _)) = self.step() {
            events += event.is_some() as u64;
        }
        events
    }

    /// Replays the events due by `now` at the current speed, at most `max_events` of them
    /// (so a caller drawing frames stays responsive). Paused playback does nothing.
    pub fn advance(&mut self, now: Instant, max_events: usize) -> Advance {
        let mut out = Advance::default();
        if self.paused || self.finished {
            out.finished = self.finished;
            return out;
        }
        let due = match self.speed {
            Speed::AsFastAsPossible => u64::MAX,
            Speed::RealTime(factor) => {
                let Some(next) = self.peek_ts() else {
                    return self.finish_into(out);
                };
                let (real, capture) = *self.anchor.get_or_insert((now, next));
                let elapsed = now.saturating_duration_since(real).as_nanos() as f64;
                capture.saturating_add((elapsed * factor.max(0.0)) as u64)
            }
        };
        while out.events < max_events {
            match self.peek_ts() {
                Some(ts) if ts <= due => {
                    if let Some((_, observations)) = self.step() {
                        out.events += 1;
                        out.observations.extend(observations);
                    }
                }
                Some(_) => break,
                None => return self.finish_into(out),
            }
        }
        out
    }

    fn finish_into(&mut self, mut out: Advance) -> Advance {
        if let Some((_, observations)) = self.step() {
            out.observations.extend(observations);
        }
        out.finished = true;
        out
    }

    /// Moves playback to just after the last event at or before `ts_ns`. Backwards, this
    /// replays from the start (exact); observations replayed on the way are returned so a
    /// caller can rebuild its own views.
    pub fn seek(&mut self, ts_ns: u64) -> Vec<AttributedObservation> {
        let mut out = Vec::new();
        if ts_ns < self.position.ts_ns || self.finished {
            self.rewind();
        }
        while let Some(next) = self.peek_ts() {
            if next > ts_ns {
                break;
            }
            if let Some((_, observations)) = self.step() {
                out.extend(observations);
            }
        }
        self.anchor = None;
        out
    }

    /// Reads event `index` (counting from the capture's first event) without moving
    /// playback: the console shows the payloads behind an observation with it.
    pub fn event(&self, index: u64) -> Option<Event> {
        let chunk = self.chunks.iter().find(|c| {
            (c.first_event_index..c.first_event_index + c.event_count as u64).contains(&index)
        })?;
        let (_, entries, _) = self.reader.read_events(chunk);
        entries
            .into_iter()
            .filter_map(|e| match e {
                Entry::Event(event) => Some(event),
                _ => None,
            })
            .nth((index - chunk.first_event_index) as usize)
    }
}

/// A whole capture in memory, for a caller that drives a pipeline itself (the console pages
/// back and forth through the events): the events from the first keyframe on, and a
/// pipeline factory that restores that keyframe and knows every recorded identity answer.
///
/// Answers are all known from the start, so a process whose identity changed during the
/// recording (a pod the watcher learned late) gets its last answer throughout; [`Replay`]
/// passes them in order and has no such difference.
pub struct CaptureContents {
    pub events: Vec<Event>,
    pub damage: Vec<Damage>,
    start: Option<crate::pipeline::PipelineState>,
    answers: Vec<IdentityAnswer>,
    reconstruct: ReconstructOptions,
    model: ModelOptions,
}

impl CaptureContents {
    pub fn load(reader: &CaptureReader) -> Self {
        let mut damage = reader.damage().to_vec();
        let mut start = None;
        let mut first_event = 0;
        // As in [`Replay::new`]: a damaged first keyframe means playing from the first event
        // without its state, not skipping to a later keyframe.
        let first_chunk = reader.event_blocks().next().map(|c| c.first_event_index);
        if let Some(block) = reader
            .keyframe_blocks()
            .next()
            .filter(|k| first_chunk.is_none_or(|first| k.first_event_index <= first))
        {
            match reader.read_keyframe(block) {
                Ok((_, keyframe)) => {
                    first_event = keyframe.pipeline.next_event_index;
                    start = Some(keyframe.pipeline);
                }
                Err(d) => damage.push(d),
            }
        }
        let mut events = Vec::new();
        let mut answers = Vec::new();
        for block in reader.event_blocks() {
            let (entries, d) = reader.read_events_from(block, first_event);
            damage.extend(d);
            for entry in entries {
                match entry {
                    Entry::Event(event) => events.push(event),
                    Entry::Identity(answer) => answers.push(answer),
                    Entry::Unknown { .. } => {}
                }
            }
        }
        let (reconstruct, model) = pipeline_options(reader);
        Self {
            events,
            damage,
            start,
            answers,
            reconstruct,
            model,
        }
    }

    /// A pipeline at the start of the capture.
    pub fn new_pipeline(&self) -> Pipeline {
        let mut identity = RecordedIdentity::default();
        for answer in &self.answers {
            identity.remember(answer.clone());
        }
        let mut pipeline = Pipeline::new(
            self.reconstruct.clone(),
            self.model.clone(),
            Box::new(identity),
        );
        if let Some(state) = &self.start {
            pipeline.restore(state.clone());
        }
        pipeline
    }
}

/// A pipeline with the options the capture was recorded with, answering identity from it.
fn new_pipeline(
    reader: &CaptureReader,
    detection: Option<&DetectorOptions>,
    memory_budget: Option<usize>,
) -> Pipeline {
    let (mut reconstruct, model) = pipeline_options(reader);
    if let Some(bytes) = memory_budget {
        reconstruct.memory_budget = bytes;
    }
    let pipeline = Pipeline::new(reconstruct, model, Box::new(RecordedIdentity::default()));
    match detection {
        Some(options) => pipeline.with_detection(options.clone()),
        None => pipeline,
    }
}

fn pipeline_options(reader: &CaptureReader) -> (ReconstructOptions, ModelOptions) {
    pipeline_options_of(reader.header())
}

/// The pipeline options a capture (or a live stream) was recorded with, from its header.
pub fn pipeline_options_of(header: Option<&FileHeader>) -> (ReconstructOptions, ModelOptions) {
    let defaults = (ReconstructOptions::default(), ModelOptions::default());
    let (reconstruct, model) = match header {
        Some(header) => {
            let m = &header.metadata;
            (
                ReconstructOptions {
                    redact_secrets: m.reconstruct_redact_secrets,
                    memory_budget: if m.memory_budget_bytes > 0 {
                        m.memory_budget_bytes
                    } else {
                        defaults.0.memory_budget
                    },
                },
                ModelOptions {
                    max_nodes: if m.model_max_nodes > 0 {
                        m.model_max_nodes
                    } else {
                        defaults.1.max_nodes
                    },
                    max_edges: if m.model_max_edges > 0 {
                        m.model_max_edges
                    } else {
                        defaults.1.max_edges
                    },
                },
            )
        }
        None => defaults,
    };
    (reconstruct, model)
}

/// A capture replays with the identities it recorded and the options it was recorded with.
impl crate::baseline::EventFeed for Replay {
    fn next(&mut self) -> Option<(Option<Event>, Vec<crate::pipeline::AttributedObservation>)> {
        self.step()
    }

    fn pipeline(&self) -> &Pipeline {
        Replay::pipeline(self)
    }
}
