//! The recording sink: writes what the pipeline was fed, with the identity answers it got,
//! keyframes on the schedule of [`KeyframeSchedule`] (an interval of event time, spaced by
//! size), and rotation by size and count.
//!
//! Every file starts with a keyframe of the pipeline's state, so each file of a rotated
//! series (and each slice) replays on its own.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::block::{CaptureMetadata, CaptureTotals, FileHeader};
use super::keyframe_schedule::KeyframeSchedule;
use super::writer::{CaptureWriter, CollectorCounters, Keyframe, OnDisk, WriterOptions};
use crate::event::Event;
use crate::model::IdentityAnswer;
use crate::output_file::Inputs;
use crate::pipeline::{Pipeline, PipelineState};

#[derive(Debug, Clone)]
pub struct RecorderOptions {
    pub path: PathBuf,
    /// Start a new file when closing this one would make it reach this size on disk. Chunks
    /// are then at most a quarter of this size (at least 4 KiB), and every file but the last
    /// ends within one events block (a chunk plus one event and framing) of this size.
    pub max_file_bytes: Option<u64>,
    /// With rotation, keep at most this many files (the oldest are deleted).
    pub max_files: Option<usize>,
    /// Event time between keyframes, at least (see [`KeyframeSchedule`]).
    pub keyframe_interval_ns: u64,
    pub writer: WriterOptions,
    pub metadata: CaptureMetadata,
    /// Files the recording must never replace (what a slice is cut from).
    pub inputs: Inputs,
}

impl RecorderOptions {
    pub fn new(path: PathBuf, metadata: CaptureMetadata) -> Self {
        Self {
            path,
            max_file_bytes: None,
            max_files: None,
            keyframe_interval_ns: 30_000_000_000,
            writer: WriterOptions::default(),
            metadata,
            inputs: Inputs::none(),
        }
    }
}

/// What a recording produced.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RecordingSummary {
    /// Files kept, oldest first.
    pub files: Vec<PathBuf>,
    pub events: u64,
    /// Files deleted by rotation.
    pub deleted: u64,
}

pub struct Recorder {
    options: RecorderOptions,
    writer: Option<CaptureWriter>,
    /// After a rotation, the state the next file opens with; the file is created when the
    /// next event comes, so a series never ends with an empty file.
    next_file: Option<PipelineState>,
    sequence: u32,
    files: VecDeque<PathBuf>,
    deleted: u64,
    keyframes: KeyframeSchedule,
    last_time_unix_ns: u64,
    collector: CollectorCounters,
    events: u64,
    /// The last syncs of files closed by rotation, still under way.
    closed: OnDisk,
}

/// `dir/name.cap` → `dir/name.000003.cap` for file 3 of a rotated series.
pub fn rotated_path(path: &Path, sequence: u32) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "capture".into());
    path.with_file_name(format!("{stem}.{sequence:06}.cap"))
}

impl Recorder {
    /// Opens the first file and writes a keyframe of `pipeline` (the state recording starts
    /// from: the live collector's process table, or a replay's state for a slice).
    /// Turns on the pipeline's identity log, which [`Recorder::record`] takes from; a
    /// session (which logs them always and hands them out with each step) uses
    /// [`Recorder::start_at`] and [`Recorder::record_after`].
    pub fn start(options: RecorderOptions, pipeline: &mut Pipeline) -> std::io::Result<Self> {
        pipeline.log_identity_answers(true);
        Self::start_at(options, pipeline)
    }

    /// Opens the first file and writes a keyframe of `pipeline` as it stands.
    pub fn start_at(mut options: RecorderOptions, pipeline: &Pipeline) -> std::io::Result<Self> {
        if let Some(max) = options.max_file_bytes {
            // A file can only end at a block boundary: blocks of at most a quarter of the
            // size keep every file close to it (a 256 KiB chunk would overshoot a small size).
            let quarter = usize::try_from(max / 4).unwrap_or(usize::MAX).max(4 << 10);
            options.writer.chunk_bytes = options.writer.chunk_bytes.min(quarter);
        }
        let keyframes = KeyframeSchedule::new(options.keyframe_interval_ns);
        let mut recorder = Self {
            options,
            writer: None,
            next_file: None,
            sequence: 0,
            files: VecDeque::new(),
            deleted: 0,
            keyframes,
            last_time_unix_ns: 0,
            collector: CollectorCounters::default(),
            events: 0,
            closed: OnDisk::default(),
        };
        recorder.open_file(pipeline.state())?;
        Ok(recorder)
    }

    fn open_file(&mut self, state: PipelineState) -> std::io::Result<()> {
        let path = if self.options.max_file_bytes.is_some() {
            rotated_path(&self.options.path, self.sequence)
        } else {
            self.options.path.clone()
        };
        let mut metadata = self.options.metadata.clone();
        metadata.sequence = self.sequence;
        let mut writer = CaptureWriter::create(
            &path,
            &self.options.inputs,
            &FileHeader::new(metadata),
            self.options.writer.clone(),
        )?;
        writer.set_next_event_index(state.next_event_index);
        let ts = state.last_ts_ns;
        writer.write_keyframe(
            &Keyframe {
                pipeline: state,
                collector: self.collector,
            },
            self.last_time_unix_ns,
        )?;
        self.keyframes = KeyframeSchedule::new(self.options.keyframe_interval_ns);
        self.keyframes.written(ts, writer.last_keyframe_len());
        self.writer = Some(writer);
        self.files.push_back(path);
        if let Some(max) = self
            .options
            .max_files
            .filter(|_| self.options.max_file_bytes.is_some())
        {
            while self.files.len() > max.max(1) {
                if let Some(old) = self.files.pop_front() {
                    // Already gone is fine: someone may have moved it away for triage.
                    let _ = std::fs::remove_file(&old);
                    self.deleted += 1;
                }
            }
        }
        Ok(())
    }

    fn writer(&mut self) -> std::io::Result<&mut CaptureWriter> {
        self.writer
            .as_mut()
            .ok_or_else(|| std::io::Error::other("recording already finished"))
    }

    /// The file being written.
    pub fn current_path(&self) -> Option<&Path> {
        self.writer.as_ref().map(|w| w.path())
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    /// The collector's counters, stored with the next keyframe and at the end.
    pub fn set_collector_counters(&mut self, counters: CollectorCounters) {
        self.collector = counters;
    }

    /// Records `event`, which `pipeline` has just been fed, with the identity answers that
    /// feeding it produced (written first: a replay needs them before the event).
    pub fn record(&mut self, event: &Event, pipeline: &mut Pipeline) -> std::io::Result<()> {
        let answers = pipeline.take_identity_answers();
        self.record_after(event, &answers, pipeline)
    }

    /// Records `event`, which `pipeline` has just been fed, after `answers`, the identity
    /// answers feeding it produced (a session's step carries them).
    pub fn record_after(
        &mut self,
        event: &Event,
        answers: &[IdentityAnswer],
        pipeline: &Pipeline,
    ) -> std::io::Result<()> {
        if let Some(state) = self.next_file.take() {
            self.open_file(state)?;
        }
        let writer = self.writer()?;
        for answer in answers {
            writer.write_identity(answer)?;
        }
        writer.write_event(event)?;
        // What the file would measure if closed now: bytes on disk (compressed blocks), the
        // open chunk is small (the decision is made after each event, so it is at most one
        // event past a block that crossed the line), the closing keyframe and trailer.
        let written = writer.bytes_written();
        let size = written + writer.closing_bytes();
        self.events += 1;
        self.last_time_unix_ns = event.header.time_unix_ns;
        if self.keyframes.due(event.header.ts_ns, written) {
            self.keyframe(pipeline)?;
        }
        if self.options.max_file_bytes.is_some_and(|max| size >= max) {
            self.rotate(pipeline)?;
        }
        Ok(())
    }

    /// Writes identity answers taken from the pipeline by someone else (the stream server
    /// takes them once for both): they go before the next event, as [`Recorder::record`]
    /// would write them.
    pub fn add_identity_answers(&mut self, answers: &[IdentityAnswer]) -> std::io::Result<()> {
        if answers.is_empty() {
            return Ok(());
        }
        if let Some(state) = self.next_file.take() {
            self.open_file(state)?;
        }
        let writer = self.writer()?;
        for answer in answers {
            writer.write_identity(answer)?;
        }
        Ok(())
    }

    fn keyframe(&mut self, pipeline: &Pipeline) -> std::io::Result<()> {
        let state = pipeline.state();
        let ts = state.last_ts_ns;
        let keyframe = Keyframe {
            pipeline: state,
            collector: self.collector,
        };
        let time = self.last_time_unix_ns;
        let writer = self.writer()?;
        writer.write_keyframe(&keyframe, time)?;
        let len = writer.last_keyframe_len();
        self.keyframes.written(ts, len);
        Ok(())
    }

    fn rotate(&mut self, pipeline: &Pipeline) -> std::io::Result<()> {
        self.close_file(pipeline)?;
        self.sequence += 1;
        self.next_file = Some(pipeline.state());
        Ok(())
    }

    /// Ends the file being written; its last sync goes on (kept in `closed`).
    fn close_file(&mut self, pipeline: &Pipeline) -> std::io::Result<CaptureTotals> {
        self.keyframe(pipeline)?;
        let collector = self.collector;
        let writer = self
            .writer
            .take()
            .ok_or_else(|| std::io::Error::other("recording already finished"))?;
        let (totals, on_disk) = writer.finish_unsynced(collector)?;
        self.closed.extend(on_disk);
        Ok(totals)
    }

    /// Writes the open chunk and asks for a sync when due (see [`CaptureWriter::tick`]);
    /// reports a failed sync, also of a file closed by rotation.
    pub fn tick(&mut self, now: Instant) -> std::io::Result<()> {
        self.closed.poll()?;
        match self.writer.as_mut() {
            Some(writer) => writer.tick(now),
            None => Ok(()),
        }
    }

    /// Ends the recording: identity answers from `pipeline.finish()` (call it first), a final
    /// keyframe, the index trailer.
    pub fn finish(self, pipeline: &mut Pipeline) -> std::io::Result<RecordingSummary> {
        let answers = pipeline.take_identity_answers();
        self.finish_after(&answers, pipeline)
    }

    /// As [`Recorder::finish`], with `answers` the identity answers the pipeline's final
    /// flush produced (a session's last step carries them). Returns once every file is on
    /// disk.
    pub fn finish_after(
        self,
        answers: &[IdentityAnswer],
        pipeline: &Pipeline,
    ) -> std::io::Result<RecordingSummary> {
        let (summary, mut on_disk) = self.finish_after_unsynced(answers, pipeline)?;
        on_disk.wait_until(None)?;
        Ok(summary)
    }

    /// As [`Recorder::finish_after`], without waiting for the disk: the files are complete
    /// for every reader; [`OnDisk`] says when they are safe from a machine failure too.
    pub fn finish_after_unsynced(
        mut self,
        answers: &[IdentityAnswer],
        pipeline: &Pipeline,
    ) -> std::io::Result<(RecordingSummary, OnDisk)> {
        let closed = if self.writer.is_none() && answers.is_empty() {
            Ok(())
        } else {
            // Rotated just after the last event and the final flush asked for identities: a
            // replay of the series needs them, so they get a file of their own
            // (`add_identity_answers` opens it).
            self.add_identity_answers(answers)
                .and_then(|()| self.close_file(pipeline).map(|_| ()))
        };
        closed?;
        Ok((
            RecordingSummary {
                files: self.files.into_iter().collect(),
                events: self.events,
                deleted: self.deleted,
            },
            self.closed,
        ))
    }
}
