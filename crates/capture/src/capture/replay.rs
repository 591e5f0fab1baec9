//! Replaying a capture through the same [`Pipeline`] as live capture.
//!
//! A replay starts from the capture's first keyframe (the collector's process table when it
//! started, or the state at the start of a rotated file or a slice) and feeds the recorded
//! events in order, passing recorded identity answers to the identity source just before the
//! event that asked for them. The same events and answers in the same order give the same
//! model, so a replay shows what the live console showed.
//!
//! Reading is [`CaptureEvents`]' (entries in order from a keyframe); a session takes them one
//! step at a time ([`SessionReplay`], the step every driver takes, with its sinks); [`Replay`]
//! is that with a position and seeking by time (a seek backwards replays from the start up to
//! the target, because the model is built from everything before it; that is exact, and fast
//! enough). Paced playback (pause, speed, single steps) is the console's
//! (`agentscope_console::JsonEventsSource`, over [`CaptureContents`]), feeding the same
//! session step with the recorded answers in their recorded places.
//! [`Replay::open_from_keyframe`] starts at a keyframe instead, for very long captures.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use super::block::{BlockInfo, FileHeader};
use super::codec::Entry;
use super::reader::{CaptureError, CaptureReader, Damage};
use super::session_replay::{start_session, SessionReplay};
use super::writer::Keyframe;
use crate::detect::DetectorOptions;
use crate::event::Event;
use crate::model::{ActorIdentity, IdentityAnswer, IdentityLookup, ModelOptions};
use crate::pipeline::{AttributedObservation, Pipeline};
use crate::reconstruct::ReconstructOptions;
use crate::session::{Session, Sink, Step};

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

/// A capture's entries in order, from the keyframe playback starts at: recorded identity
/// answers, each before the event that asked for it, and the events. A session feeds them to
/// its pipeline ([`SessionReplay`]), so reading a capture is written once whoever drives.
pub struct CaptureEvents {
    reader: CaptureReader,
    /// Events blocks in order, and the keyframe playback started from.
    chunks: Vec<BlockInfo>,
    start: Option<BlockInfo>,
    next_chunk: usize,
    pending: VecDeque<Entry>,
    damage: Vec<Damage>,
    /// Index of the first event to replay (that of the starting keyframe).
    skip_to_event: u64,
}

/// Where [`CaptureEvents::rewind`] left the capture: the pipeline state to start from and
/// the keyframe's times.
#[derive(Debug, Default)]
pub struct Start {
    pub state: Option<crate::pipeline::PipelineState>,
    pub ts_ns: u64,
    pub time_unix_ns: u64,
    /// Index of the first event after the start.
    pub event_index: u64,
}

impl CaptureEvents {
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        Ok(Self::new(CaptureReader::open(path)?))
    }

    /// From the start of the capture (its first keyframe). When the first keyframe is
    /// damaged, from the first event without the state it held, rather than from a later
    /// keyframe (the damage says so).
    pub fn new(reader: CaptureReader) -> Self {
        let first_event = reader.event_blocks().next().map(|c| c.first_event_index);
        let start = reader
            .keyframe_blocks()
            .next()
            .filter(|k| first_event.is_none_or(|first| k.first_event_index <= first))
            .copied();
        Self::starting_at(reader, start)
    }

    /// From the last keyframe at or before `ts_ns` (monotonic ns).
    pub fn from_keyframe(reader: CaptureReader, ts_ns: u64) -> Self {
        let start = reader
            .keyframe_blocks()
            .rfind(|k| k.first_ts_ns <= ts_ns)
            .or_else(|| reader.keyframe_blocks().next())
            .copied();
        Self::starting_at(reader, start)
    }

    fn starting_at(reader: CaptureReader, start: Option<BlockInfo>) -> Self {
        let chunks: Vec<BlockInfo> = reader.event_blocks().copied().collect();
        Self {
            reader,
            chunks,
            start,
            next_chunk: 0,
            pending: VecDeque::new(),
            damage: Vec::new(),
            skip_to_event: 0,
        }
    }

    pub fn reader(&self) -> &CaptureReader {
        &self.reader
    }

    /// Damage found opening the capture, then damage met reading it since the last rewind
    /// (blocks that could not be read are skipped).
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// A pipeline with the options the capture was recorded with (or `memory_budget`),
    /// detection with `detection`, and identity answered from the capture. Restore
    /// [`Start::state`] into it.
    pub fn new_pipeline(
        &self,
        detection: Option<&DetectorOptions>,
        memory_budget: Option<usize>,
    ) -> Pipeline {
        new_pipeline(&self.reader, detection, memory_budget)
    }

    /// Back to the starting keyframe; returns what to start from.
    pub fn rewind(&mut self) -> Start {
        self.pending.clear();
        // Damage found opening the file comes first; what reading blocks finds follows.
        self.damage = self.reader.damage().to_vec();
        let mut start = Start::default();
        if let Some(block) = self.start {
            match self.reader.read_keyframe(&block) {
                Ok((header, Keyframe { pipeline, .. })) => {
                    start.event_index = pipeline.next_event_index;
                    start.ts_ns = header.ts_ns;
                    start.time_unix_ns = header.time_unix_ns;
                    start.state = Some(pipeline);
                }
                Err(damage) => self.damage.push(damage),
            }
        }
        // The chunks holding events from the start on.
        let first_event = start.event_index;
        self.next_chunk = self
            .chunks
            .iter()
            .position(|c| c.first_event_index + c.event_count as u64 > first_event)
            .unwrap_or(self.chunks.len());
        self.skip_to_event = first_event;
        start
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
            // `pending` is empty here: the block's vector becomes the queue without a copy.
            self.pending = entries.into();
        }
        true
    }

    /// The next entry (an identity answer or an event; entries of unknown types were skipped
    /// when their block was decoded); `None` at the end.
    pub fn next_entry(&mut self) -> Option<Entry> {
        if !self.fill() {
            return None;
        }
        self.pending.pop_front()
    }

    /// Time of the next event, if any; the identity answers before it go to `answer`.
    pub fn peek_event_ts(&mut self, mut answer: impl FnMut(IdentityAnswer)) -> Option<u64> {
        loop {
            if !self.fill() {
                return None;
            }
            match self.pending.front() {
                Some(Entry::Event(event)) => return Some(event.header.ts_ns),
                Some(Entry::Identity(_)) => {
                    if let Some(Entry::Identity(found)) = self.pending.pop_front() {
                        answer(found);
                    }
                }
                None => return None,
            }
        }
    }

    /// Where playback of the whole capture runs: first and last times, event count.
    fn extent(&self) -> Position {
        let chunks = &self.chunks;
        Position {
            first_ts_ns: chunks.first().map_or(0, |c| c.first_ts_ns),
            last_ts_ns: chunks.iter().map(|c| c.last_ts_ns).max().unwrap_or(0),
            first_time_unix_ns: chunks.first().map_or(0, |c| c.first_time_unix_ns),
            total_events: chunks
                .last()
                .map_or(0, |c| c.first_event_index + c.event_count as u64),
            ..Default::default()
        }
    }

    /// Reads event `index` (counting from the capture's first event) without moving: the
    /// console shows the payloads behind an observation with it.
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

/// A capture played through a [`Session`] (the one step every driver takes), with a position
/// and seeking: [`SessionReplay`] over [`CaptureEvents`], rebuilt from the starting keyframe
/// when playback goes back.
pub struct Replay {
    replay: SessionReplay<CaptureEvents>,
    /// Detection options the pipeline is rebuilt with (a seek back replays from the start).
    detection: Option<DetectorOptions>,
    /// Memory budget instead of the one the capture was recorded with.
    memory_budget: Option<usize>,
    position: Position,
}

impl Replay {
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        Ok(Self::new(CaptureReader::open(path)?))
    }

    /// Plays from the start of the capture (its first keyframe); see [`CaptureEvents::new`].
    pub fn new(reader: CaptureReader) -> Self {
        Self::over(CaptureEvents::new(reader))
    }

    /// Plays from the last keyframe at or before `ts_ns` (monotonic ns), skipping what came
    /// before it: quicker on a long capture, but what was in flight at the keyframe and the
    /// graph before it are not shown.
    pub fn open_from_keyframe(reader: CaptureReader, ts_ns: u64) -> Self {
        Self::over(CaptureEvents::from_keyframe(reader, ts_ns))
    }

    fn over(mut events: CaptureEvents) -> Self {
        let mut position = events.extent();
        let (session, start) = start_session(&mut events, None, None);
        position.start_at(&start);
        Self {
            replay: SessionReplay::new(events, session),
            detection: None,
            memory_budget: None,
            position,
        }
    }

    /// Back to the starting keyframe with a new session.
    fn rewind(&mut self) {
        let (session, start) = start_session(
            self.replay.entries_mut(),
            self.detection.as_ref(),
            self.memory_budget,
        );
        self.replay.restart(session);
        self.position.start_at(&start);
    }

    pub fn reader(&self) -> &CaptureReader {
        self.replay.entries().reader()
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

    pub fn session(&self) -> &Session {
        self.replay.session()
    }

    pub fn pipeline(&self) -> &Pipeline {
        self.replay.session().pipeline()
    }

    /// Damage found opening the capture, then damage met while replaying (blocks that could
    /// not be read are skipped).
    pub fn damage(&self) -> &[Damage] {
        self.replay.entries().damage()
    }

    pub fn position(&self) -> Position {
        self.position
    }

    pub fn is_finished(&self) -> bool {
        self.replay.session().is_finished()
    }

    /// Time of the next event, if any (recorded identity answers before it are passed on).
    pub fn next_event_ts(&mut self) -> Option<u64> {
        self.replay.next_event_ts()
    }

    /// Replays the next event and hands the step to `sink`; `None` at the end (the first
    /// time, in-flight exchanges are flushed and returned as the last step, with an event of
    /// `None`).
    pub fn step_into(
        &mut self,
        sink: &mut (impl Sink + ?Sized),
    ) -> std::io::Result<Option<(Option<Event>, Step)>> {
        let stepped = self.replay.next_step(sink)?;
        if let Some((Some(event), _)) = &stepped {
            self.position.ts_ns = event.header.ts_ns;
            self.position.time_unix_ns = event.header.time_unix_ns;
            self.position.event_index += 1;
        }
        Ok(stepped)
    }

    /// [`Replay::step_into`] without a sink: the event and the observations it completed.
    pub fn step(&mut self) -> Option<(Option<Event>, Vec<AttributedObservation>)> {
        // No sink: nothing can fail.
        self.step_into(&mut ())
            .ok()
            .flatten()
            .map(|(event, step)| (event, step.observations))
    }

    /// Replays everything left, as fast as possible; returns the number of events.
    pub fn run_to_end(&mut self) -> u64 {
        let mut events = 0;
        while let Some((event, _)) = self.step() {
            events += event.is_some() as u64;
        }
        events
    }

    /// Moves playback to just after the last event at or before `ts_ns`. Backwards, this
    /// replays from the start (exact); observations replayed on the way are returned so a
    /// caller can rebuild its own views.
    pub fn seek(&mut self, ts_ns: u64) -> Vec<AttributedObservation> {
        let mut out = Vec::new();
        if ts_ns < self.position.ts_ns || self.is_finished() {
            self.rewind();
        }
        while let Some(next) = self.next_event_ts() {
            if next > ts_ns {
                break;
            }
            if let Some((_, observations)) = self.step() {
                out.extend(observations);
            }
        }
        out
    }

    /// Reads event `index` (counting from the capture's first event) without moving
    /// playback: the console shows the payloads behind an observation with it.
    pub fn event(&self, index: u64) -> Option<Event> {
        self.replay.entries().event(index)
    }
}

impl Position {
    /// Playback at the keyframe it starts from.
    fn start_at(&mut self, start: &Start) {
        self.ts_ns = start.ts_ns;
        self.time_unix_ns = start.time_unix_ns;
        self.event_index = start.event_index;
    }
}

/// A whole capture in memory, for a caller that drives a session itself (the console pages
/// back and forth through the events at a pace): the events from the first keyframe on, the
/// recorded identity answers with the place each was recorded at, and a pipeline factory that
/// restores that keyframe. Whoever feeds the events passes each answer to the session just
/// before the event it precedes, as [`SessionReplay`] does.
pub struct CaptureContents {
    pub events: Vec<Event>,
    /// Recorded identity answers, each with the index (in `events`) of the event it was
    /// recorded before, in order.
    pub answers: Vec<(usize, IdentityAnswer)>,
    pub damage: Vec<Damage>,
    start: Option<crate::pipeline::PipelineState>,
    reconstruct: ReconstructOptions,
    model: ModelOptions,
}

impl CaptureContents {
    /// The recorded identity answers that come before event `index`, after those before
    /// event `index - 1`.
    pub fn answers_before(&self, index: usize) -> impl Iterator<Item = &IdentityAnswer> {
        let from = self.answers.partition_point(|(at, _)| *at < index);
        let to = self.answers.partition_point(|(at, _)| *at <= index);
        self.answers[from..to].iter().map(|(_, answer)| answer)
    }

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
                    Entry::Identity(answer) => answers.push((events.len(), answer)),
                }
            }
        }
        let (reconstruct, model) = pipeline_options(reader);
        Self {
            events,
            answers,
            damage,
            start,
            reconstruct,
            model,
        }
    }

    /// A pipeline at the start of the capture, answering identity from the recorded answers
    /// it is given ([`Pipeline::remember_identity`]).
    pub fn new_pipeline(&self) -> Pipeline {
        let mut pipeline = Pipeline::new(
            self.reconstruct.clone(),
            self.model.clone(),
            Box::new(RecordedIdentity::default()),
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
                    redact_secrets: m.secrets_redacted,
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
