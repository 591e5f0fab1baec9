//! The live [`Source`]: events from the in-process collector ([`LiveCollector`], on its own
//! thread) fed to the console's pipeline as they come, with `r` recording them to a `.cap`
//! file ([`LiveRecording`], written by a thread of its own).
//!
//! Nothing here waits: `poll` takes what the channel holds, up to the frame's budget, and the
//! collector thread counts what the full channel could not take as dropped. The status line
//! shows those drops added to the kernel's ring-buffer losses.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentscope_analysis::pipeline::Pipeline;
use agentscope_capture::capture::CaptureMetadata;
use agentscope_event::Event;
use agentscope_session::{Session, SourceLosses};

use super::format::format_bytes;
use super::json_source::RateMeter;
use super::live_collector::{LiveArgs, LiveCollector, LiveCounters, DEFAULT_CHANNEL_EVENTS};
use super::live_recording::{
    FinishingRecording, LiveRecording, Recorded, RecordingOptions, RecordingStopped,
};
use super::source::{
    ControlError, ControlResult, RecordingState, Source, SourceMode, SourceStatus, SourceUpdate,
};

/// Longest a poll feeds events (checked every [`BUDGET_CHECK_EVENTS`]): the pipeline takes
/// about 10 µs an event (`console_live` bench), so a frame's full `max_events_per_tick` of a
/// burst would hold the screen for a fifth of a second. What is left waits in the channel for
/// the next frame; if the burst lasts, the channel fills and the drops are counted.
pub const POLL_TIME_BUDGET: Duration = Duration::from_millis(20);
const BUDGET_CHECK_EVENTS: usize = 256;

pub struct LiveSource {
    label: String,
    /// Every event goes through the session's step; its losses come from `counters`.
    session: Session,
    events: Receiver<Event>,
    counters: Arc<LiveCounters>,
    recording_options: RecordingOptions,
    recording: Option<LiveRecording>,
    /// Recordings whose writer thread is still closing the file.
    finishing: Vec<FinishingRecording>,
    fed: u64,
    started: Instant,
    rate: RateMeter,
    /// Wall time of the last event fed (a recording's opening keyframe is stamped with it).
    last_time_unix_ns: u64,
    message: Option<String>,
    disconnected: bool,
    /// `--pid`: the processes followed (with what they start), and which of them have exited,
    /// so the status line does not go on saying the traced process is live.
    followed: Vec<u32>,
    exited: Vec<u32>,
    /// `--baseline-store kubernetes`: approvals from the cluster reach the session.
    approved_watch: Option<crate::approved_watch::ApprovedWatch>,
    // Declared last: the collector thread stops after everything above is dropped.
    collector: Option<LiveCollector>,
}

impl LiveSource {
    /// Starts the collector in-process (needs root) and a pipeline over it, identities from
    /// the same resolver as `agentscope collect`'s.
    /// Starts capturing; the pipeline keeps at most `memory_budget` bytes
    /// (`--memory-budget`).
    pub fn start(args: &LiveArgs, memory_budget: usize) -> anyhow::Result<Self> {
        let (collector, start) = LiveCollector::start(
            args.capture.collector_options(),
            args.capture.identity_options(),
            DEFAULT_CHANNEL_EVENTS,
        )?;
        let pipeline = args
            .capture
            .live_pipeline(memory_budget, start.identity, start.processes);
        let metadata = CaptureMetadata {
            // Set when a recording starts (`r`).
            started_unix_ns: 0,
            ..args.capture.recording_metadata(
                format!("agentscope {} (console)", env!("CARGO_PKG_VERSION")),
                memory_budget,
            )
        };
        let dir = args
            .record_dir
            .clone()
            .unwrap_or_else(|| std::path::PathBuf::from("."));
        let label = if args.capture.pids.is_empty() {
            "live".to_string()
        } else {
            let pids: Vec<String> = args.capture.pids.iter().map(u32::to_string).collect();
            format!("live pid {}", pids.join(","))
        };
        let counters = collector.counters();
        let mut source = Self::from_channel(
            label,
            pipeline,
            start.events,
            counters,
            RecordingOptions::new(dir, metadata),
        );
        source.collector = Some(collector);
        source.followed = args.capture.pids.clone();
        Ok(source)
    }

    /// Detection with these options (approved baselines from `--baseline DIR`) in the
    /// console's pipeline.
    pub fn with_detection(mut self, options: agentscope_analysis::detect::DetectorOptions) -> Self {
        self.session.set_detection(options);
        self
    }

    /// Judges agents against the cluster's approved AgentBaselines as they arrive.
    pub fn with_approved_watch(mut self, watch: crate::approved_watch::ApprovedWatch) -> Self {
        self.approved_watch = Some(watch);
        self
    }

    /// A live source over events arriving on `events` (the collector thread's channel; tests
    /// feed it themselves), counting losses in `counters`.
    pub fn from_channel(
        label: impl Into<String>,
        pipeline: Pipeline,
        events: Receiver<Event>,
        counters: Arc<LiveCounters>,
        recording_options: RecordingOptions,
    ) -> Self {
        let started = Instant::now();
        Self {
            label: label.into(),
            session: Session::new(pipeline),
            events,
            counters,
            recording_options,
            recording: None,
            finishing: Vec::new(),
            fed: 0,
            started,
            rate: RateMeter::new(started.elapsed()),
            last_time_unix_ns: 0,
            message: None,
            disconnected: false,
            followed: Vec::new(),
            exited: Vec::new(),
            approved_watch: None,
            collector: None,
        }
    }

    fn stop_recording(&mut self) {
        if let Some(recording) = self.recording.take() {
            let counters = self.counters.collector_counters();
            // The session hands each step's identity answers out with the step: none wait.
            self.finishing
                .push(recording.stop(Vec::new(), self.session.pipeline(), counters));
        }
    }

    /// Ends the recording after a failure while recording, saying why.
    fn recording_failed(&mut self, why: RecordingStopped) {
        let path = self.recording.as_ref().map(LiveRecording::path);
        self.stop_recording();
        if let (RecordingStopped::TooSlow { queued_bytes }, Some(path)) = (why, path) {
            self.message = Some(format!(
                "recording stopped: the disk fell {} behind; {} holds everything up to here",
                format_bytes(queued_bytes),
                path.display()
            ));
        }
        // A writer failure is reported when its thread is joined (it says what failed).
    }

    /// Collects recordings whose writer thread has finished, reporting each.
    fn check_finishing(&mut self) {
        for finishing in std::mem::take(&mut self.finishing) {
            match finishing.try_finish() {
                Ok(result) => self.message = Some(describe_recorded(&result)),
                Err(still) => self.finishing.push(still),
            }
        }
    }

    /// A followed process's exit (the kernel sends one per process, when its last thread
    /// ends): said once, and kept in the label.
    fn note_exit(&mut self, event: &Event) {
        let header = &event.header;
        let followed_exit = matches!(event.body, agentscope_event::EventBody::Exit { .. })
            && self.followed.contains(&header.pid)
            && !self.exited.contains(&header.pid);
        if followed_exit {
            self.exited.push(header.pid);
            self.message = Some(format!(
                "pid {} exited; what it started is still followed",
                header.pid
            ));
        }
    }

    fn drops_label(&self) -> String {
        let mut label = self.label.clone();
        if !self.exited.is_empty() {
            let all = self.exited.len() == self.followed.len();
            let exited: Vec<String> = self.exited.iter().map(u32::to_string).collect();
            label.push_str(&if all {
                " (exited)".to_string()
            } else {
                format!(" ({} exited)", exited.join(","))
            });
        }
        let kernel = self.counters.kernel_dropped.load(Ordering::Relaxed);
        let channel = self.counters.channel_dropped.load(Ordering::Relaxed);
        if kernel == 0 && channel == 0 {
            label
        } else {
            // Which side lost them tells the user what to do: a bigger ring buffer, or a
            // larger max_events_per_tick.
            format!("{label} (lost: kernel {kernel}, console {channel})")
        }
    }

    fn status(&self) -> SourceStatus {
        SourceStatus {
            label: self.drops_label(),
            mode: SourceMode::Live,
            events: self.fed,
            events_per_sec: self.rate.rate(),
            drops: self.counters.drops(),
            recording: match &self.recording {
                Some(recording) => RecordingState::On {
                    path: recording.path(),
                    bytes: recording.bytes(),
                },
                None => RecordingState::Off,
            },
        }
    }
}

fn describe_recorded(result: &Result<Recorded, String>) -> String {
    match result {
        Ok(done) => format!(
            "recorded {} events to {} ({})",
            done.events,
            done.path.display(),
            format_bytes(done.bytes)
        ),
        Err(err) => err.clone(),
    }
}

impl Source for LiveSource {
    fn poll(&mut self, max_events: usize) -> SourceUpdate {
        if let Some(watch) = &mut self.approved_watch {
            watch.apply(&mut self.session);
        }
        let mut update = SourceUpdate::default();
        let mut fed = 0usize;
        if let Some(recording) = self.recording.as_mut() {
            recording.set_collector_counters(self.counters.collector_counters());
        }
        let poll_started = Instant::now();
        while fed < max_events {
            if fed % BUDGET_CHECK_EVENTS == BUDGET_CHECK_EVENTS - 1
                && poll_started.elapsed() >= POLL_TIME_BUDGET
            {
                break;
            }
            let event = match self.events.try_recv() {
                Ok(event) => event,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if !self.disconnected {
                        self.disconnected = true;
                        self.message = Some("the collector stopped: no more live events".into());
                    }
                    break;
                }
            };
            self.last_time_unix_ns = event.header.time_unix_ns;
            self.note_exit(&event);
            let step = self.session.feed(&event);
            update.observations.extend(step.observations);
            fed += 1;
            // The recording takes the event itself (it goes to the writer thread), so it is
            // handed the step's answers here rather than as a borrowing sink.
            if let Some(recording) = self.recording.as_mut() {
                if let Err(why) =
                    recording.record(event, step.identity_answers, self.session.pipeline())
                {
                    self.recording_failed(why);
                }
            }
        }
        self.fed += fed as u64;
        if let Some(collector) = &self.collector {
            collector.mute_sockets(self.session.take_opaque_sockets());
        }
        // Baselines learning while events were lost are partial, not complete.
        let collector = self.counters.collector_counters();
        self.session.set_collector_counters(collector);
        let losses = self.session.note_losses(SourceLosses {
            kernel_dropped: collector.kernel_dropped,
            channel_dropped: self.counters.channel_dropped.load(Ordering::Relaxed),
            decode_errors: collector.decode_errors,
        });
        update.observations.extend(losses.observations);
        if self
            .recording
            .as_ref()
            .is_some_and(LiveRecording::writer_failed)
        {
            self.recording_failed(RecordingStopped::WriterFailed);
        }
        self.check_finishing();
        if let Some(collector) = &self.collector {
            if let Some(notice) = collector.take_notices().pop() {
                self.message = Some(notice);
            }
        }
        self.rate.record(self.started.elapsed(), fed as u64);
        update.message = self.message.take();
        update.status = self.status();
        update
    }

    fn pipeline(&self) -> &Pipeline {
        self.session.pipeline()
    }

    fn pause(&mut self) -> ControlResult {
        Err(ControlError::Unsupported(
            "live capture cannot pause (record with r, replay the file later)".into(),
        ))
    }

    fn resume(&mut self) -> ControlResult {
        self.pause()
    }

    fn toggle_recording(&mut self) -> ControlResult {
        if let Some(recording) = &self.recording {
            let path = recording.path();
            self.stop_recording();
            self.message = Some(format!("stopping the recording to {}", path.display()));
            return Ok(());
        }
        let recording = LiveRecording::start(
            &self.recording_options,
            self.session.pipeline(),
            self.counters.collector_counters(),
            self.last_time_unix_ns,
        )
        .map_err(|err| ControlError::Failed(format!("cannot start recording: {err}")))?;
        self.message = Some(format!("recording to {}", recording.path().display()));
        self.recording = Some(recording);
        Ok(())
    }
}

impl Drop for LiveSource {
    fn drop(&mut self) {
        // Quitting while recording still leaves a complete file: finish it and wait.
        self.stop_recording();
        for finishing in std::mem::take(&mut self.finishing) {
            // The console has restored the terminal by now (the source outlives it).
            eprintln!("agentscope: {}", describe_recorded(&finishing.wait()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use agentscope_analysis::model::{HostOnlyIdentity, ModelOptions};
    use agentscope_capture::capture::{CaptureReader, IndexSource};
    use agentscope_event::event_json::events_from_json_lines;
    use agentscope_reconstruct::ReconstructOptions;

    use super::super::json_source::JsonEventsSource;
    use super::super::live_collector::EventSender;
    use super::*;

    /// A Python agent's chat with a (mock) LLM and its tool calls, captured by the real
    /// collector (tests/fixtures, regenerated as DEVELOPERS.md says).
    fn fixture_events() -> Vec<Event> {
        let path =
            Path::new(env!("AGENTSCOPE_REPO")).join("tests/fixtures/capture/python_chat.jsonl");
        events_from_json_lines(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn metadata() -> CaptureMetadata {
        CaptureMetadata {
            created_by: "agentscope test".into(),
            secrets_redacted: true,
            model_max_nodes: ModelOptions::default().max_nodes,
            model_max_edges: ModelOptions::default().max_edges,
            ..CaptureMetadata::default()
        }
    }

    fn live(dir: &Path, capacity: usize) -> (LiveSource, EventSender, Arc<LiveCounters>) {
        let counters = Arc::new(LiveCounters::default());
        let (sender, events) = EventSender::channel(capacity, counters.clone());
        let pipeline = Pipeline::new(
            ReconstructOptions {
                redact_secrets: true,
                ..ReconstructOptions::default()
            },
            ModelOptions::default(),
            Box::new(HostOnlyIdentity),
        );
        let source = LiveSource::from_channel(
            "live",
            pipeline,
            events,
            counters.clone(),
            RecordingOptions::new(dir.to_path_buf(), metadata()),
        );
        (source, sender, counters)
    }

    /// Polls until the writer thread has finished the recording and returns the message.
    fn wait_for_recorded(source: &mut LiveSource) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let update = source.poll(usize::MAX);
            let settled = source.recording.is_none() && source.finishing.is_empty();
            if let Some(message) = update.message.filter(|_| settled) {
                if !message.starts_with("stopping") && !message.starts_with("recording to") {
                    return message;
                }
            }
            assert!(Instant::now() < deadline, "the recording never finished");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn recordings_in(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }

    #[test]
    fn a_full_channel_counts_drops_instead_of_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let events = fixture_events();
        let (mut source, sender, counters) = live(dir.path(), 4);
        for event in events.iter().take(10).cloned() {
            assert!(sender.send(event), "the console is still there");
        }
        assert_eq!(counters.channel_dropped.load(Ordering::Relaxed), 6);
        // The kernel's losses, as the collector thread publishes them, add up with the
        // channel's in the status line.
        counters.kernel_dropped.store(2, Ordering::Relaxed);
        let update = source.poll(usize::MAX);
        assert_eq!(update.status.events, 4);
        assert_eq!(update.status.drops, 8);
        assert_eq!(update.status.mode, SourceMode::Live);
        assert_eq!(update.status.label, "live (lost: kernel 2, console 6)");
        // Room again: nothing more is dropped.
        for event in events.iter().skip(10).take(4).cloned() {
            sender.send(event);
        }
        assert_eq!(counters.channel_dropped.load(Ordering::Relaxed), 6);
        assert_eq!(source.poll(usize::MAX).status.events, 8);
        // The console gone, the collector thread learns it from the sender.
        drop(source);
        assert!(!sender.send(events[0].clone()));
    }

    /// `--pid N`: when N exits the status line says so (a label that stays, and a message
    /// once), rather than going on showing a live process.
    #[test]
    fn a_followed_process_s_exit_shows_in_the_status() {
        let dir = tempfile::tempdir().unwrap();
        let events = fixture_events();
        let pid = events
            .iter()
            .find(|e| matches!(e.body, agentscope_event::EventBody::Exit { .. }))
            .map(|e| e.header.pid)
            .expect("the fixture has a process exit");
        let (mut source, sender, _) = live(dir.path(), events.len());
        source.label = format!("live pid {pid}");
        source.followed = vec![pid];
        for event in events.iter().cloned() {
            sender.send(event);
        }
        let update = source.poll(usize::MAX);
        assert_eq!(update.status.label, format!("live pid {pid} (exited)"));
        assert_eq!(
            update.message.as_deref(),
            Some(format!("pid {pid} exited; what it started is still followed").as_str())
        );
        assert_eq!(source.poll(usize::MAX).message, None, "said once");
    }

    #[test]
    fn poll_feeds_at_most_max_events_and_the_model_follows() {
        let dir = tempfile::tempdir().unwrap();
        let events = fixture_events();
        let (mut source, sender, _) = live(dir.path(), events.len());
        for event in events.iter().cloned() {
            sender.send(event);
        }
        let update = source.poll(3);
        assert_eq!(update.status.events, 3);
        assert_eq!(update.status.recording, RecordingState::Off);
        let mut observations = update.observations.len();
        let mut polls = 1;
        while source.poll(0).status.events < events.len() as u64 {
            let update = source.poll(100);
            assert!(update.status.events <= 3 + polls * 100);
            observations += update.observations.len();
            polls += 1;
        }
        assert_eq!(source.poll(usize::MAX).status.events, events.len() as u64);
        assert!(observations > 0);
        let agent = source.pipeline().model().agents().next().unwrap();
        assert!(agent.key.contains("python"), "{}", agent.key);
        assert!(agent.llm_calls >= 1);
        // Live capture has no playhead.
        assert!(matches!(source.pause(), Err(ControlError::Unsupported(_))));
        assert!(matches!(source.seek(-1), Err(ControlError::Unsupported(_))));
        // The collector thread ending is said once.
        drop(sender);
        assert_eq!(
            source.poll(10).message.as_deref(),
            Some("the collector stopped: no more live events")
        );
        assert_eq!(source.poll(10).message, None);
    }

    #[test]
    fn recording_toggles_into_a_capture_that_verifies_and_replays() {
        let dir = tempfile::tempdir().unwrap();
        let events = fixture_events();
        let (mut source, sender, counters) = live(dir.path(), events.len());
        // Recording from the first event: the replay must end where the live model is.
        source.toggle_recording().unwrap();
        let update = source.poll(0);
        let RecordingState::On { path, .. } = update.status.recording else {
            panic!("recording: {:?}", update.status.recording)
        };
        assert_eq!(path.parent(), Some(dir.path()));
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.len() == "agentscope-20250101-000000.cap".len()
                && name.starts_with("agentscope-")
                && name.ends_with(".cap")
                && name[11..19].bytes().all(|b| b.is_ascii_digit())
                && name[20..26].bytes().all(|b| b.is_ascii_digit()),
            "{name}"
        );
        assert_eq!(
            update.message.as_deref(),
            Some(format!("recording to {}", path.display()).as_str())
        );
        for event in events.iter().cloned() {
            sender.send(event);
        }
        counters
            .received
            .store(events.len() as u64, Ordering::Relaxed);
        let update = source.poll(usize::MAX);
        assert_eq!(update.status.events, events.len() as u64);
        source.toggle_recording().unwrap();
        assert_eq!(source.poll(0).status.recording, RecordingState::Off);
        let message = wait_for_recorded(&mut source);
        let files = recordings_in(dir.path());
        assert_eq!(files.len(), 1);
        assert!(
            message.starts_with(&format!(
                "recorded {} events to {}",
                events.len(),
                files[0].display()
            )),
            "{message}"
        );

        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&files[0]).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "recordings are private");
        let reader = CaptureReader::open(&files[0]).unwrap();
        assert!(reader.verify().is_empty(), "{:?}", reader.verify());
        assert_eq!(reader.index_source(), IndexSource::Trailer);
        let recorded: u64 = reader.event_blocks().map(|b| b.event_count as u64).sum();
        assert_eq!(recorded, events.len() as u64);
        assert_eq!(reader.totals().unwrap().events, events.len() as u64);

        let mut replay = JsonEventsSource::open_capture(&files[0])
            .unwrap()
            .at_speed(f64::INFINITY);
        while !matches!(replay.poll(usize::MAX).status.mode, SourceMode::Replay(ref r) if r.finished)
        {
        }
        let live_agents: Vec<(String, u64)> = source
            .pipeline()
            .model()
            .agents()
            .map(|a| (a.key.clone(), a.llm_calls))
            .collect();
        let replayed: Vec<(String, u64)> = replay
            .pipeline()
            .model()
            .agents()
            .map(|a| (a.key.clone(), a.llm_calls))
            .collect();
        assert!(!live_agents.is_empty());
        assert_eq!(replayed, live_agents);
    }

    #[test]
    fn a_recording_started_mid_run_stands_alone() {
        let dir = tempfile::tempdir().unwrap();
        let events = fixture_events();
        let half = events.len() / 2;
        let (mut source, sender, _) = live(dir.path(), events.len());
        for event in events[..half].iter().cloned() {
            sender.send(event);
        }
        source.poll(usize::MAX);
        let agents_before = source.pipeline().model().agents().count();
        assert_eq!(
            agents_before, 1,
            "the agent is known before recording starts"
        );
        source.toggle_recording().unwrap();
        for event in events[half..].iter().cloned() {
            sender.send(event);
        }
        source.poll(usize::MAX);
        source.toggle_recording().unwrap();
        wait_for_recorded(&mut source);
        let files = recordings_in(dir.path());
        assert_eq!(files.len(), 1, "{files:?}");
        let reader = CaptureReader::open(&files[0]).unwrap();
        assert!(reader.verify().is_empty());
        let recorded: u64 = reader.event_blocks().map(|b| b.event_count as u64).sum();
        assert_eq!(recorded, (events.len() - half) as u64);
        // The opening keyframe carries the agent the console already knew, with its counts.
        let mut replay = JsonEventsSource::open_capture(&files[0])
            .unwrap()
            .at_speed(f64::INFINITY);
        replay.poll(0);
        assert_eq!(replay.pipeline().model().agents().count(), 1);
        while !matches!(replay.poll(usize::MAX).status.mode, SourceMode::Replay(ref r) if r.finished)
        {
        }
        let live = source.pipeline().model().agents().next().unwrap();
        let replayed = replay.pipeline().model().agents().next().unwrap();
        assert_eq!(replayed.key, live.key);
        assert_eq!(replayed.first_seen_ns, live.first_seen_ns);
    }

    #[test]
    fn keyframes_of_a_growing_state_stay_a_bounded_share_of_a_recording() {
        // Rounds of the session as new agents, ten minutes of event time apart: on event time
        // alone every round ended with a keyframe of the whole state, growing with each round.
        let dir = tempfile::tempdir().unwrap();
        let session = fixture_events();
        let rounds =
            agentscope_event::synthetic::repeat_as_new_agents(std::slice::from_ref(&session), 120);
        let (mut source, sender, _) = live(dir.path(), session.len());
        source.toggle_recording().unwrap();
        for round in rounds.chunks(session.len()) {
            for event in round.iter().cloned() {
                sender.send(event);
            }
            source.poll(usize::MAX);
            // Let the writer thread catch up, so the schedule knows what it wrote.
            let deadline = Instant::now() + Duration::from_secs(20);
            while !source.recording.as_ref().unwrap().writer_caught_up() {
                assert!(Instant::now() < deadline, "the writer never caught up");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        source.toggle_recording().unwrap();
        wait_for_recorded(&mut source);
        let files = recordings_in(dir.path());
        let reader = CaptureReader::open(&files[0]).unwrap();
        assert!(reader.verify().is_empty(), "{:?}", reader.verify());
        // Still keyframes in the middle, and at most about a quarter of the file.
        let (keyframes, share) = (reader.keyframe_blocks().count(), reader.keyframe_share());
        assert!(
            keyframes >= 4 && share <= 0.3,
            "{keyframes} keyframes, {share:.3}"
        );
    }

    #[test]
    fn a_recording_never_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        // Every name the next seconds would get is taken.
        let now = jiff::Zoned::now();
        let mut taken = Vec::new();
        for second in 0..5 {
            let at = now
                .checked_add(jiff::SignedDuration::from_secs(second))
                .unwrap();
            let path = dir
                .path()
                .join(super::super::live_recording::default_file_name(&at));
            std::fs::write(&path, "precious").unwrap();
            taken.push(path);
        }
        let (mut source, _sender, _) = live(dir.path(), 16);
        source.toggle_recording().unwrap();
        source.toggle_recording().unwrap();
        let message = wait_for_recorded(&mut source);
        for path in &taken {
            assert_eq!(std::fs::read_to_string(path).unwrap(), "precious");
        }
        let files = recordings_in(dir.path());
        assert_eq!(files.len(), taken.len() + 1);
        let new = files.iter().find(|f| !taken.contains(f)).unwrap();
        assert!(
            new.to_str().unwrap().ends_with("-2.cap"),
            "{new:?} ({message})"
        );
        assert!(CaptureReader::open(new).unwrap().verify().is_empty());
    }

    #[test]
    fn a_recording_that_cannot_be_created_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir");
        let (mut source, sender, _) = live(&missing, 16);
        source.toggle_recording().unwrap();
        let message = wait_for_recorded(&mut source);
        assert!(
            message.starts_with(&format!(
                "cannot create a recording in {}",
                missing.display()
            )),
            "{message}"
        );
        // Events keep flowing; the recording is off.
        sender.send(fixture_events()[0].clone());
        let update = source.poll(usize::MAX);
        assert_eq!(update.status.events, 1);
        assert_eq!(update.status.recording, RecordingState::Off);
    }

    #[test]
    fn quitting_while_recording_finishes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let events = fixture_events();
        let (mut source, sender, _) = live(dir.path(), events.len());
        source.toggle_recording().unwrap();
        for event in events.iter().cloned() {
            sender.send(event);
        }
        source.poll(usize::MAX);
        drop(source);
        let files = recordings_in(dir.path());
        assert_eq!(files.len(), 1);
        let reader = CaptureReader::open(&files[0]).unwrap();
        assert!(reader.verify().is_empty());
        assert_eq!(reader.index_source(), IndexSource::Trailer);
        assert_eq!(reader.totals().unwrap().events, events.len() as u64);
    }
}
