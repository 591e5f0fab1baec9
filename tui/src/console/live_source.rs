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
use std::time::Instant;

use agentscope_collector::capture::CaptureMetadata;
use agentscope_collector::model::ModelOptions;
use agentscope_collector::pipeline::Pipeline;
use agentscope_collector::reconstruct::ReconstructOptions;
use agentscope_collector::Event;

use super::format::format_bytes;
use super::json_source::RateMeter;
use super::live_collector::{LiveArgs, LiveCollector, LiveCounters, DEFAULT_CHANNEL_EVENTS};
use super::live_recording::{
    FinishingRecording, LiveRecording, Recorded, RecordingOptions, RecordingStopped,
};
use super::source::{
    push_event, ControlError, ControlResult, RecordingState, Source, SourceMode, SourceStatus,
    SourceUpdate,
};

pub struct LiveSource {
    label: String,
    pipeline: Pipeline,
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
    // Declared last: the collector thread stops after everything above is dropped.
    collector: Option<LiveCollector>,
}

impl LiveSource {
    /// Starts the collector in-process (needs root) and a pipeline over it, identities from
    /// the same resolver as `agentscope collect`'s.
    pub fn start(args: &LiveArgs) -> anyhow::Result<Self> {
        let (collector, start) = LiveCollector::start(
            args.collector_options(),
            args.identity_options(),
            DEFAULT_CHANNEL_EVENTS,
        )?;
        let redact = !args.keep_secrets;
        let pipeline = Pipeline::new(
            ReconstructOptions {
                redact_secrets: redact,
            },
            ModelOptions::default(),
            Box::new(start.identity),
        )
        .with_processes(start.processes);
        let metadata = CaptureMetadata {
            created_by: format!("agentscope {} (console)", env!("CARGO_PKG_VERSION")),
            hostname: crate::capture_cmd::hostname(),
            started_unix_ns: 0,
            secrets_redacted: redact,
            reconstruct_redact_secrets: redact,
            model_max_nodes: ModelOptions::default().max_nodes,
            model_max_edges: ModelOptions::default().max_edges,
            sequence: 0,
            capture_filter: args.capture_filter(),
        };
        let dir = args
            .record_dir
            .clone()
            .unwrap_or_else(|| std::path::PathBuf::from("."));
        let label = if args.pids.is_empty() {
            "live".to_string()
        } else {
            let pids: Vec<String> = args.pids.iter().map(u32::to_string).collect();
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
        Ok(source)
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
            pipeline,
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
            collector: None,
        }
    }

    fn stop_recording(&mut self) {
        if let Some(recording) = self.recording.take() {
            let counters = self.counters.collector_counters();
            self.finishing
                .push(recording.stop(&mut self.pipeline, counters));
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

    fn drops_label(&self) -> String {
        let kernel = self.counters.kernel_dropped.load(Ordering::Relaxed);
        let channel = self.counters.channel_dropped.load(Ordering::Relaxed);
        if kernel == 0 && channel == 0 {
            self.label.clone()
        } else {
            // Which side lost them tells the user what to do: a bigger ring buffer, or a
            // larger max_events_per_tick.
            format!("{} (lost: kernel {kernel}, console {channel})", self.label)
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
        let mut update = SourceUpdate::default();
        let mut fed = 0usize;
        if let Some(recording) = self.recording.as_mut() {
            recording.set_collector_counters(self.counters.collector_counters());
        }
        while fed < max_events {
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
            push_event(&mut self.pipeline, &event, &mut update.observations);
            fed += 1;
            if let Some(recording) = self.recording.as_mut() {
                if let Err(why) = recording.record(event, &mut self.pipeline) {
                    self.recording_failed(why);
                }
            }
        }
        self.fed += fed as u64;
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
        &self.pipeline
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
            &mut self.pipeline,
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
