//! A replay [`Source`] over `agentscope collect --json` output: the events are read once,
//! then fed to a [`Pipeline`] at the recorded pace (scaled by the speed), with pause, single
//! step and seek. Seeking backwards rebuilds the pipeline and replays from the first event,
//! since reconstruction cannot run backwards.
//!
//! Pacing reads a [`Clock`], so tests drive it with a [`ManualClock`] and get the same output
//! on every run.

use std::cell::Cell;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use agentscope_analysis::detect::DetectorOptions;
use agentscope_analysis::model::{HostOnlyIdentity, IdentityAnswer, IdentityLookup, ModelOptions};
use agentscope_analysis::pipeline::Pipeline;
use agentscope_capture::capture::{CaptureContents, CaptureReader};
use agentscope_event::event_json::{events_from_json_lines, json_lines_text};
use agentscope_event::Event;
use agentscope_files::input_file;
use agentscope_reconstruct::ReconstructOptions;
use anyhow::Context as _;

use agentscope_session::Session;

use super::source::{
    ControlError, ControlResult, RecordingState, ReplayStatus, Source, SourceMode, SourceStatus,
    SourceUpdate, SourcedObservation, SpeedChange,
};

/// Monotonic time for pacing.
pub trait Clock {
    /// Time since an arbitrary fixed origin.
    fn now(&self) -> Duration;
}

/// The real monotonic clock.
pub struct SystemClock(Instant);

impl Default for SystemClock {
    fn default() -> Self {
        Self(Instant::now())
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// A clock that moves only when told to (tests, benchmarks).
#[allow(dead_code)]
#[derive(Clone, Default)]
pub struct ManualClock(Rc<Cell<Duration>>);

#[allow(dead_code)]
impl ManualClock {
    pub fn advance(&self, by: Duration) {
        self.0.set(self.0.get() + by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        self.0.get()
    }
}

/// Replay speeds `[` and `]` move between; the last is "as fast as possible".
pub const SPEEDS: &[f64] = &[
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    4.0,
    8.0,
    16.0,
    64.0,
    f64::INFINITY,
];
const NORMAL_SPEED: usize = 3;

/// A quiet stretch of the recording is waited out for at most this long (wall time): nobody
/// wants to watch minutes of nothing at 1×.
const MAX_IDLE_WAIT: Duration = Duration::from_secs(1);

type IdentityFactory = Box<dyn Fn() -> Box<dyn IdentityLookup + Send>>;
/// Builds the pipeline a replay starts from (and restarts from on a seek backwards).
type PipelineFactory = Box<dyn Fn() -> Pipeline>;

pub struct JsonEventsSource {
    label: String,
    events: Vec<Event>,
    /// Index of the next event to feed.
    next: usize,
    /// A capture's recorded identity answers, each with the index of the event it was
    /// recorded before: fed to the session in that place, as every replay does.
    answers: Vec<(usize, IdentityAnswer)>,
    /// Index of the next answer to feed.
    next_answer: usize,
    /// The pipeline's session: every event goes through its step.
    session: Session,
    identity: IdentityFactory,
    model_options: ModelOptions,
    /// Overrides `identity` and `model_options` (a capture's own pipeline).
    factory: Option<PipelineFactory>,
    detection: Option<DetectorOptions>,
    clock: Box<dyn Clock>,
    paused: bool,
    speed: usize,
    /// Wall time and event time the playhead was last anchored at.
    anchor_wall: Duration,
    anchor_ts: u64,
    /// Event time the playhead stands at (while paused, stepping or seeking).
    playhead_ts: u64,
    step_pending: bool,
    seek_target: Option<u64>,
    reset_pending: bool,
    finished: bool,
    first_ts: u64,
    last_ts: u64,
    rate: RateMeter,
}

/// Events per second of wall time, over windows of at least one second.
pub(super) struct RateMeter {
    window_start: Duration,
    count: u64,
    rate: f64,
}

impl RateMeter {
    /// A meter whose first window starts at `now`.
    pub(super) fn new(now: Duration) -> Self {
        Self {
            window_start: now,
            count: 0,
            rate: 0.0,
        }
    }

    /// The rate over the last complete window.
    pub(super) fn rate(&self) -> f64 {
        self.rate
    }

    pub(super) fn record(&mut self, now: Duration, events: u64) {
        self.count += events;
        let elapsed = now.saturating_sub(self.window_start);
        if elapsed >= Duration::from_secs(1) {
            self.rate = self.count as f64 / elapsed.as_secs_f64();
            self.count = 0;
            self.window_start = now;
        }
    }
}

impl JsonEventsSource {
    /// Reads a JSON-lines event file (as written by `agentscope collect --json`).
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let bytes = input_file::read_regular(path, "a JSON-lines event file")?;
        let text = json_lines_text(&bytes)
            .with_context(|| format!("{} is not an agentscope event file", path.display()))?;
        let events = events_from_json_lines(text)
            .with_context(|| format!("{} is not an agentscope event file", path.display()))?;
        Ok(Self::from_events(label_of(path), events))
    }

    /// Replays a `.cap` capture: its events in the order the collector saw them, through a
    /// pipeline restored from its first keyframe, with the identities it recorded, so the
    /// console shows what the live console showed.
    pub fn open_capture(path: &Path) -> anyhow::Result<Self> {
        let reader = CaptureReader::open(path)?;
        let mut contents = CaptureContents::load(&reader);
        let events = std::mem::take(&mut contents.events);
        let answers = std::mem::take(&mut contents.answers);
        let mut label = label_of(path);
        if let Some(note) = damage_note(&reader, contents.damage.len()) {
            label.push_str(&format!(" ({note})"));
        }
        let contents = Rc::new(contents);
        let mut source = Self::ordered(label, events);
        source.answers = answers;
        source.factory = Some(Box::new(move || contents.new_pipeline()));
        source.session = source.make_session();
        Ok(source)
    }

    /// Replays events already in memory, with host-only identity and the real clock.
    pub fn from_events(label: impl Into<String>, mut events: Vec<Event>) -> Self {
        // Files are written in order, but a hand-merged file might not be; reconstruction
        // needs time order.
        events.sort_by_key(|e| e.header.ts_ns);
        Self::ordered(label, events)
    }

    /// Events in the order given (a capture's: that of the ring buffer, which a replay must
    /// keep to give what the live pipeline gave).
    fn ordered(label: impl Into<String>, events: Vec<Event>) -> Self {
        let first_ts = events.first().map_or(0, |e| e.header.ts_ns);
        let last_ts = events.last().map_or(0, |e| e.header.ts_ns);
        let identity: IdentityFactory = Box::new(|| Box::new(HostOnlyIdentity));
        let model_options = ModelOptions::default();
        let session = Session::new(new_pipeline(&identity, &model_options));
        let clock: Box<dyn Clock> = Box::new(SystemClock::default());
        let now = clock.now();
        Self {
            label: label.into(),
            events,
            next: 0,
            answers: Vec::new(),
            next_answer: 0,
            session,
            identity,
            model_options,
            factory: None,
            detection: None,
            clock,
            paused: false,
            speed: NORMAL_SPEED,
            anchor_wall: now,
            anchor_ts: first_ts,
            playhead_ts: first_ts,
            step_pending: false,
            seek_target: None,
            reset_pending: false,
            finished: false,
            first_ts,
            last_ts,
            rate: RateMeter {
                window_start: now,
                count: 0,
                rate: 0.0,
            },
        }
    }

    /// Paces playback with `clock` instead of the system clock.
    #[allow(dead_code)]
    pub fn with_clock(mut self, clock: Box<dyn Clock>) -> Self {
        let now = clock.now();
        self.clock = clock;
        self.anchor_wall = now;
        self.rate.window_start = now;
        self
    }

    /// Answers identity lookups with `identity` (Kubernetes-shaped identities in tests)
    /// instead of [`HostOnlyIdentity`].
    #[allow(dead_code)]
    pub fn with_identity(
        mut self,
        identity: impl Fn() -> Box<dyn IdentityLookup + Send> + 'static,
    ) -> Self {
        self.identity = Box::new(identity);
        self.session = self.make_session();
        self
    }

    #[allow(dead_code)]
    pub fn with_model_options(mut self, options: ModelOptions) -> Self {
        self.model_options = options;
        self.session = self.make_session();
        self
    }

    /// Starts paused (the first poll feeds nothing until resumed or stepped).
    pub fn paused(mut self) -> Self {
        self.paused = true;
        self
    }

    /// Starts at the given speed (`f64::INFINITY`: as fast as polled).
    pub fn at_speed(mut self, speed: f64) -> Self {
        self.speed = SPEEDS
            .iter()
            .position(|s| *s >= speed)
            .unwrap_or(SPEEDS.len() - 1);
        self
    }

    fn speed(&self) -> f64 {
        SPEEDS[self.speed]
    }

    fn make_session(&self) -> Session {
        let pipeline = match &self.factory {
            Some(factory) => factory(),
            None => new_pipeline(&self.identity, &self.model_options),
        };
        Session::new(match &self.detection {
            Some(options) => pipeline.with_detection(options.clone()),
            None => pipeline,
        })
    }

    /// Detection with these options (approved baselines from `--baseline DIR`, learning
    /// period), also after a seek rebuilds the pipeline.
    pub fn with_detection(mut self, options: DetectorOptions) -> Self {
        self.detection = Some(options);
        self.session = self.make_session();
        self
    }

    /// Where playback would be now if it had kept running since the anchor.
    fn running_playhead(&self, now: Duration) -> u64 {
        let speed = self.speed();
        if speed.is_infinite() {
            return u64::MAX;
        }
        let elapsed = now.saturating_sub(self.anchor_wall).as_nanos() as f64 * speed;
        self.anchor_ts
            .saturating_add(elapsed.min(u64::MAX as f64) as u64)
    }

    fn anchor_at(&mut self, ts: u64) {
        self.anchor_wall = self.clock.now();
        self.anchor_ts = ts;
        self.playhead_ts = ts;
    }

    /// Feeds events while `keep(event_ts)` holds, at most `budget`; returns how many.
    fn feed(
        &mut self,
        budget: usize,
        observations: &mut Vec<SourcedObservation>,
        keep: impl Fn(u64) -> bool,
    ) -> usize {
        let mut fed = 0;
        while fed < budget {
            let Some(event) = self.events.get(self.next) else {
                break;
            };
            if !keep(event.header.ts_ns) {
                break;
            }
            while let Some((_, answer)) = self
                .answers
                .get(self.next_answer)
                .filter(|(at, _)| *at <= self.next)
            {
                self.session.remember_identity(answer.clone());
                self.next_answer += 1;
            }
            observations.extend(self.session.feed(event).observations);
            self.playhead_ts = self.playhead_ts.max(event.header.ts_ns);
            self.next += 1;
            fed += 1;
        }
        fed
    }

    fn status(&self) -> SourceStatus {
        SourceStatus {
            label: self.label.clone(),
            mode: SourceMode::Replay(ReplayStatus {
                position_ns: self
                    .playhead_ts
                    .clamp(self.first_ts, self.last_ts)
                    .saturating_sub(self.first_ts),
                duration_ns: self.last_ts.saturating_sub(self.first_ts),
                start_ts_ns: self.first_ts,
                speed: self.speed(),
                paused: self.paused,
                finished: self.finished,
            }),
            events: self.next as u64,
            events_per_sec: self.rate.rate,
            drops: 0,
            recording: RecordingState::Unavailable,
        }
    }
}

/// What the status line says about a damaged capture, where the user looks (`agentscope cap
/// verify` has the details): cut short (no trailer), a damaged keyframe (state missing from
/// the replay), and how many damaged places were skipped. `damage` counts every place, the
/// missing trailer included.
fn damage_note(reader: &CaptureReader, damage: usize) -> Option<String> {
    let mut parts = Vec::new();
    if reader.cut_short() {
        parts.push("cut short".to_string());
    }
    let keyframes = reader.damaged_keyframes();
    if keyframes > 0 {
        parts.push(format!("{keyframes} keyframe(s) damaged"));
    }
    let skipped = damage.saturating_sub(reader.cut_short() as usize);
    if skipped > 0 {
        parts.push(format!("{skipped} damaged blocks skipped"));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// What the status line calls a file: its name.
fn label_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn new_pipeline(identity: &IdentityFactory, model: &ModelOptions) -> Pipeline {
    Pipeline::new(
        ReconstructOptions {
            redact_secrets: true,
            ..ReconstructOptions::default()
        },
        model.clone(),
        identity(),
    )
}

impl Source for JsonEventsSource {
    fn poll(&mut self, max_events: usize) -> SourceUpdate {
        let mut update = SourceUpdate {
            reset: std::mem::take(&mut self.reset_pending),
            ..Default::default()
        };
        let now = self.clock.now();
        let mut fed = 0;
        if let Some(target) = self.seek_target {
            fed = self.feed(max_events, &mut update.observations, |ts| ts <= target);
            let reached = self
                .events
                .get(self.next)
                .is_none_or(|e| e.header.ts_ns > target);
            if reached {
                self.seek_target = None;
                self.anchor_at(target);
            }
        } else if self.step_pending {
            self.step_pending = false;
            fed = self.feed(1, &mut update.observations, |_| true);
            let ts = self.playhead_ts;
            self.anchor_at(ts);
        } else if !self.paused && !self.finished {
            let playhead = self.running_playhead(now);
            fed = self.feed(max_events, &mut update.observations, |ts| ts <= playhead);
            self.playhead_ts = self.playhead_ts.max(playhead.min(self.last_ts));
            if let Some(next) = self.events.get(self.next) {
                // A quiet stretch is waited out for at most MAX_IDLE_WAIT from now.
                let speed = self.speed();
                let max_gap = (MAX_IDLE_WAIT.as_nanos() as f64 * speed) as u64;
                if next.header.ts_ns > playhead.saturating_add(max_gap) {
                    self.anchor_wall = now;
                    self.anchor_ts = next.header.ts_ns.saturating_sub(max_gap);
                    self.playhead_ts = self.playhead_ts.max(self.anchor_ts);
                }
            }
        }
        if self.next >= self.events.len() && !self.finished && self.seek_target.is_none() {
            update
                .observations
                .extend(self.session.finish().observations);
            self.finished = true;
            self.playhead_ts = self.last_ts;
            update.message = Some("end of recording".into());
        }
        self.rate.record(now, fed as u64);
        update.status = self.status();
        update
    }

    fn pipeline(&self) -> &Pipeline {
        self.session.pipeline()
    }

    fn pause(&mut self) -> ControlResult {
        if !self.paused {
            let now = self.clock.now();
            let playhead = self.running_playhead(now).min(self.last_ts);
            self.playhead_ts = self.playhead_ts.max(playhead);
            self.paused = true;
        }
        Ok(())
    }

    fn resume(&mut self) -> ControlResult {
        if self.finished {
            return Err(ControlError::Failed(
                "at the end of the recording: seek back with <".into(),
            ));
        }
        self.paused = false;
        let ts = self.playhead_ts;
        self.anchor_at(ts);
        Ok(())
    }

    fn change_speed(&mut self, change: SpeedChange) -> ControlResult {
        // Re-anchor so the playhead does not jump when the speed changes.
        let now = self.clock.now();
        if !self.paused {
            self.playhead_ts = self
                .playhead_ts
                .max(self.running_playhead(now).min(self.last_ts));
        }
        self.speed = match change {
            SpeedChange::Slower => self.speed.saturating_sub(1),
            SpeedChange::Faster => (self.speed + 1).min(SPEEDS.len() - 1),
        };
        let ts = self.playhead_ts;
        self.anchor_at(ts);
        Ok(())
    }

    fn step(&mut self) -> ControlResult {
        if self.next >= self.events.len() {
            return Err(ControlError::Failed(
                "no more events to step through".into(),
            ));
        }
        self.paused = true;
        self.step_pending = true;
        Ok(())
    }

    fn seek(&mut self, delta_ns: i64) -> ControlResult {
        if self.events.is_empty() {
            return Err(ControlError::Failed("the file holds no events".into()));
        }
        let current = self.seek_target.unwrap_or(self.playhead_ts);
        let target = current
            .saturating_add_signed(delta_ns)
            .clamp(self.first_ts, self.last_ts);
        let done = self
            .next
            .checked_sub(1)
            .map(|i| self.events[i].header.ts_ns);
        if done.is_some_and(|ts| target < ts) {
            // Reconstruction only runs forwards: start over and replay up to the target.
            self.session = self.make_session();
            self.next = 0;
            self.next_answer = 0;
            self.finished = false;
            self.reset_pending = true;
            self.playhead_ts = self.first_ts;
        }
        self.seek_target = Some(target);
        self.step_pending = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceMode;

    const MS: u64 = 1_000_000;

    fn fixture_events() -> Vec<Event> {
        let path =
            Path::new(env!("AGENTSCOPE_REPO")).join("tests/fixtures/capture/python_chat.jsonl");
        events_from_json_lines(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn source(events: Vec<Event>) -> (JsonEventsSource, ManualClock) {
        let clock = ManualClock::default();
        let source =
            JsonEventsSource::from_events("test", events).with_clock(Box::new(clock.clone()));
        (source, clock)
    }

    fn replay(update: &SourceUpdate) -> ReplayStatus {
        match &update.status.mode {
            SourceMode::Replay(replay) => replay.clone(),
            SourceMode::Live => panic!("a file replay is not live"),
        }
    }

    #[test]
    fn plays_at_the_recorded_pace() {
        let events = fixture_events();
        let first = events[0].header.ts_ns;
        let (mut source, clock) = source(events.clone());
        let update = source.poll(usize::MAX);
        let at_start = events.iter().filter(|e| e.header.ts_ns <= first).count();
        assert_eq!(update.status.events, at_start as u64);
        clock.advance(Duration::from_millis(100));
        let update = source.poll(usize::MAX);
        let due = events
            .iter()
            .filter(|e| e.header.ts_ns <= first + 100 * MS)
            .count();
        assert_eq!(update.status.events, due as u64);
        assert!(due < events.len(), "the fixture lasts longer than 100 ms");
        assert_eq!(replay(&update).position_ns, 100 * MS);
        // At most `max_events` per poll, however late playback is.
        clock.advance(Duration::from_secs(10));
        let update = source.poll(3);
        assert_eq!(update.status.events, due as u64 + 3);
        let mut update = source.poll(usize::MAX);
        assert!(replay(&update).finished);
        assert_eq!(update.status.events, events.len() as u64);
        assert_eq!(update.message.take().as_deref(), Some("end of recording"));
        // A full second passed on the clock: the rate is measured.
        assert!(update.status.events_per_sec > 0.0);
        assert_eq!(source.pipeline().model().agents().count(), 1);
    }

    #[test]
    fn pause_step_and_speed() {
        let events = fixture_events();
        let first = events[0].header.ts_ns;
        let (mut source, clock) = source(events.clone());
        source.pause().unwrap();
        let before = source.poll(usize::MAX).status.events;
        clock.advance(Duration::from_secs(5));
        let update = source.poll(usize::MAX);
        assert_eq!(update.status.events, before, "paused: nothing is fed");
        assert!(replay(&update).paused);
        source.step().unwrap();
        assert_eq!(source.poll(usize::MAX).status.events, before + 1);
        assert_eq!(source.poll(usize::MAX).status.events, before + 1);
        source.change_speed(SpeedChange::Faster).unwrap();
        source.change_speed(SpeedChange::Faster).unwrap();
        let position = replay(&source.poll(0)).position_ns;
        source.resume().unwrap();
        clock.advance(Duration::from_millis(25));
        let update = source.poll(usize::MAX);
        let status = replay(&update);
        assert_eq!(status.speed, 4.0);
        // 25 ms at 4× is 100 ms of recording.
        assert_eq!(status.position_ns, position + 100 * MS);
        let due = events
            .iter()
            .filter(|e| e.header.ts_ns <= first + position + 100 * MS)
            .count();
        assert_eq!(update.status.events, due as u64);
        for _ in 0..20 {
            source.change_speed(SpeedChange::Slower).unwrap();
        }
        assert_eq!(replay(&source.poll(0)).speed, SPEEDS[0]);
        assert!(source.toggle_recording().is_err());
    }

    #[test]
    fn seeking_back_replays_from_the_start() {
        let events = fixture_events();
        let total = events.len() as u64;
        let (mut source, clock) = source(events);
        clock.advance(Duration::from_secs(2));
        let update = source.poll(usize::MAX);
        assert!(replay(&update).finished);
        let observations = update.observations.len();
        source.seek(-200 * MS as i64).unwrap();
        let update = source.poll(usize::MAX);
        assert!(update.reset, "the console must drop what it derived");
        let status = replay(&update);
        assert_eq!(status.position_ns, status.duration_ns - 200 * MS);
        assert!(update.status.events < total);
        let replayed = update.observations.len();
        source.seek(10_000 * MS as i64).unwrap();
        let update = source.poll(usize::MAX);
        assert!(!update.reset);
        assert_eq!(update.status.events, total);
        assert_eq!(replayed + update.observations.len(), observations);
        // The model was rebuilt, not fed twice.
        let agent = source.pipeline().model().agents().next().unwrap();
        assert_eq!(agent.llm_calls, 2);
    }

    #[test]
    fn quiet_stretches_are_shortened() {
        let mut events = fixture_events();
        let half = events.len() / 2;
        let gap_at = events[half].header.ts_ns;
        for event in &mut events[half..] {
            event.header.ts_ns += 3600 * 1_000_000_000;
        }
        let (mut source, clock) = source(events.clone());
        clock.advance(Duration::from_millis(500));
        let fed = source.poll(usize::MAX).status.events;
        assert_eq!(fed, half as u64, "everything before the gap");
        // Not an hour: at most MAX_IDLE_WAIT of wall time.
        clock.advance(MAX_IDLE_WAIT + Duration::from_millis(10));
        source.poll(usize::MAX);
        let update = source.poll(usize::MAX);
        assert!(update.status.events > half as u64);
        assert!(gap_at < events[half].header.ts_ns);
    }

    #[test]
    fn bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl");
        std::fs::write(&path, "{\"kind\":\"exec\"\n").unwrap();
        let err = JsonEventsSource::open(&path).err().unwrap();
        assert!(format!("{err:#}").contains("not an agentscope event file"));
        assert!(JsonEventsSource::open(&dir.path().join("missing.jsonl")).is_err());
        let (mut empty, _) = source(Vec::new());
        let update = empty.poll(10);
        assert!(replay(&update).finished);
        assert!(empty.seek(1).is_err());
        assert!(empty.step().is_err());
    }

    #[test]
    fn json_lines_with_a_bom_open_and_bad_utf8_or_a_fifo_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let fixture =
            Path::new(env!("AGENTSCOPE_REPO")).join("tests/fixtures/capture/python_chat.jsonl");
        let text = std::fs::read(&fixture).unwrap();
        let with_bom = dir.path().join("bom.jsonl");
        let mut bytes = b"\xEF\xBB\xBF".to_vec();
        bytes.extend_from_slice(&text);
        std::fs::write(&with_bom, &bytes).unwrap();
        assert!(!JsonEventsSource::open(&with_bom).unwrap().events.is_empty());

        let broken = dir.path().join("broken.jsonl");
        let mut bytes = text.clone();
        let third_line = bytes
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .nth(1)
            .unwrap()
            .0
            + 1;
        bytes.insert(third_line + 5, 0xff);
        std::fs::write(&broken, &bytes).unwrap();
        let err = format!("{:#}", JsonEventsSource::open(&broken).err().unwrap());
        assert!(err.contains("line 3: not UTF-8"), "{err}");

        let fifo = dir.path().join("events.fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = format!("{:#}", JsonEventsSource::open(&fifo).err().unwrap());
        assert!(
            err.ends_with("is a FIFO, not a JSON-lines event file"),
            "{err}"
        );
        let err = format!("{:#}", JsonEventsSource::open_capture(&fifo).err().unwrap());
        assert!(err.ends_with("is a FIFO, not a capture file"), "{err}");
        let err = format!(
            "{:#}",
            JsonEventsSource::open_capture(dir.path()).err().unwrap()
        );
        assert!(err.ends_with("is a directory, not a capture file"), "{err}");
    }

    #[test]
    fn the_status_line_says_a_capture_was_cut_short_or_a_keyframe_is_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let original = Path::new(env!("AGENTSCOPE_REPO")).join("recordings/ordinary.cap");
        let bytes = std::fs::read(&original).unwrap();
        let label = |bytes: &[u8]| {
            let path = dir.path().join("damaged.cap");
            std::fs::write(&path, bytes).unwrap();
            JsonEventsSource::open_capture(&path)
                .unwrap()
                .status()
                .label
        };
        assert_eq!(label(&bytes), "damaged.cap");
        let cut = label(&bytes[..bytes.len() * 2 / 3]);
        assert!(cut.contains("cut short"), "{cut}");
        let reader = CaptureReader::open(&original).unwrap();
        let keyframe = *reader.keyframe_blocks().nth(1).unwrap();
        let mut flipped = bytes.clone();
        flipped[keyframe.offset as usize + keyframe.len as usize / 2] ^= 0x40;
        let damaged = label(&flipped);
        assert!(
            damaged.contains("1 keyframe(s) damaged") && damaged.contains("1 damaged blocks"),
            "{damaged}"
        );
        assert!(!damaged.contains("cut short"), "{damaged}");
    }
}
