//! Recording from the live console (`r`): a `.cap` file written by a thread of its own.
//!
//! The console's pipeline lives on the UI thread, and a recording needs it: the identity
//! answers each event produced are stored before the event, and keyframes hold the pipeline's
//! state. `capture::Recorder` does both, but it compresses and writes its file from the
//! thread that calls it (only its `fdatasync`s run in a helper process), and a write can wait
//! on a busy disk too: the UI would freeze. So the UI thread does what needs the pipeline
//! (take the identity answers, take the state for a keyframe, on the Recorder's schedule) and
//! hands entries to a writer thread that owns the [`CaptureWriter`]: compression and writes
//! happen there, and the requests for syncs (`agentscope_files::disk_sync`). The
//! queue between them is bounded in bytes; a disk that falls that far behind ends the
//! recording (cleanly: the file is finished and verifies) rather than eat memory or stall the
//! console.
//!
//! The file is what `agentscope collect --record` writes without rotation: a keyframe of the
//! pipeline at the start (so it replays on its own although the console was running before),
//! events with their identity answers, keyframes on the recorder's schedule
//! (`KeyframeSchedule`: every 30 s of event time, spaced by size) and at the end, and the index
//! trailer. The schedule runs on the UI thread (it takes the state); the sizes it needs come
//! from the writer thread, a keyframe late at most.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use agentscope_analysis::model::IdentityAnswer;
use agentscope_analysis::pipeline::Pipeline;
use agentscope_capture::capture::{
    CaptureMetadata, CaptureWriter, CollectorCounters, FileHeader, Keyframe, KeyframeSchedule,
    WriterOptions,
};
use agentscope_event::{Event, EventBody};
use agentscope_files::output_file::Inputs;

/// How often the writer thread flushes and syncs when no entry arrives.
const WRITER_TICK: Duration = Duration::from_millis(250);

/// What a queued event is counted as besides its payload (header, strings, channel node).
const EVENT_OVERHEAD_BYTES: u64 = 256;

#[derive(Debug, Clone)]
pub struct RecordingOptions {
    /// Where recordings go; the name is `agentscope-YYYYMMDD-HHMMSS.cap` (local time).
    pub dir: PathBuf,
    /// The header's metadata (`started_unix_ns` is set when a recording starts).
    pub metadata: CaptureMetadata,
    /// Event time between keyframes, at least (as `agentscope collect --record`).
    pub keyframe_interval_ns: u64,
    pub writer: WriterOptions,
    /// Bytes of events waiting for the writer thread before the recording is ended.
    pub max_queued_bytes: u64,
}

impl RecordingOptions {
    pub fn new(dir: PathBuf, metadata: CaptureMetadata) -> Self {
        Self {
            dir,
            metadata,
            keyframe_interval_ns: 30_000_000_000,
            writer: WriterOptions::default(),
            max_queued_bytes: 128 << 20,
        }
    }
}

/// A finished recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub path: PathBuf,
    pub events: u64,
    pub bytes: u64,
}

enum WriterEntry {
    Event {
        answers: Vec<IdentityAnswer>,
        event: Event,
        cost: u64,
    },
    Keyframe {
        keyframe: Box<Keyframe>,
        time_unix_ns: u64,
    },
    Finish {
        answers: Vec<IdentityAnswer>,
        keyframe: Box<Keyframe>,
        time_unix_ns: u64,
    },
}

/// What the writer thread tells the UI thread.
#[derive(Default)]
struct WriterShared {
    /// The file, once created (the name may get a suffix if the first choice existed).
    path: Mutex<Option<PathBuf>>,
    bytes: AtomicU64,
    /// Blocks written (as stored), and the last keyframe's length: what the keyframe schedule
    /// reads.
    written: AtomicU64,
    last_keyframe_len: AtomicU64,
    /// A keyframe was written since the UI thread last looked (it tells the schedule).
    keyframe_written: AtomicBool,
    queued_bytes: AtomicU64,
    failed: AtomicBool,
}

/// A recording in progress.
pub struct LiveRecording {
    entries: Sender<WriterEntry>,
    shared: Arc<WriterShared>,
    thread: JoinHandle<Result<Recorded, String>>,
    intended_path: PathBuf,
    max_queued_bytes: u64,
    keyframes: KeyframeSchedule,
    /// Event time of the keyframe sent to the writer thread whose length the schedule has not
    /// been told yet (one at a time: the next waits for it).
    keyframe_in_writer: Option<u64>,
    last_time_unix_ns: u64,
    /// The collector's counters for the next keyframe.
    collector: CollectorCounters,
}

/// A recording being finished by its writer thread.
pub struct FinishingRecording {
    thread: JoinHandle<Result<Recorded, String>>,
}

/// `agentscope-20250314-093012.cap`: local time, sorts by time.
pub fn default_file_name(now: &jiff::Zoned) -> String {
    format!("agentscope-{}.cap", now.strftime("%Y%m%d-%H%M%S"))
}

/// Why a recording had to end while events were being recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingStopped {
    /// The writer thread failed (disk full, directory gone); it said why when joined.
    WriterFailed,
    /// The disk fell behind by more than `max_queued_bytes`.
    TooSlow { queued_bytes: u64 },
}

impl LiveRecording {
    /// Starts recording what `pipeline` is fed from now on, to a new file in `options.dir`.
    /// The pipeline's current state is the file's first keyframe. `last_time_unix_ns` is the
    /// wall time of the last event fed (the keyframe's time).
    pub fn start(
        options: &RecordingOptions,
        pipeline: &Pipeline,
        counters: CollectorCounters,
        last_time_unix_ns: u64,
    ) -> std::io::Result<Self> {
        let now = jiff::Zoned::now();
        let intended_path = options.dir.join(default_file_name(&now));
        let mut metadata = options.metadata.clone();
        metadata.started_unix_ns = u64::try_from(now.timestamp().as_nanosecond()).unwrap_or(0);
        metadata.sequence = 0;
        let state = pipeline.state();
        let keyframe_in_writer = Some(state.last_ts_ns);
        let first = Keyframe {
            pipeline: state,
            collector: counters,
        };
        let (entries, receiver) = std::sync::mpsc::channel();
        let shared = Arc::new(WriterShared::default());
        let thread_shared = shared.clone();
        let dir = options.dir.clone();
        let name = intended_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let writer_options = options.writer.clone();
        let thread = std::thread::Builder::new()
            .name("agentscope-recorder".into())
            .spawn(move || {
                let result = write_recording(
                    &dir,
                    &name,
                    metadata,
                    writer_options,
                    first,
                    last_time_unix_ns,
                    receiver,
                    &thread_shared,
                );
                if result.is_err() {
                    thread_shared.failed.store(true, Ordering::Release);
                }
                result
            })?;
        Ok(Self {
            entries,
            shared,
            thread,
            intended_path,
            max_queued_bytes: options.max_queued_bytes,
            keyframes: KeyframeSchedule::new(options.keyframe_interval_ns),
            keyframe_in_writer,
            last_time_unix_ns,
            collector: counters,
        })
    }

    /// The collector's counters, stored with the next keyframe.
    pub fn set_collector_counters(&mut self, counters: CollectorCounters) {
        self.collector = counters;
    }

    /// Records `event`, which `pipeline` has just been fed, after `answers`, the identity
    /// answers feeding it produced (its session step's). An error means the recording must
    /// end (call [`LiveRecording::stop`]).
    pub fn record(
        &mut self,
        event: Event,
        answers: Vec<IdentityAnswer>,
        pipeline: &Pipeline,
    ) -> Result<(), RecordingStopped> {
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(RecordingStopped::WriterFailed);
        }
        let queued = self.shared.queued_bytes.load(Ordering::Relaxed);
        if queued > self.max_queued_bytes {
            return Err(RecordingStopped::TooSlow {
                queued_bytes: queued,
            });
        }
        let ts = event.header.ts_ns;
        self.last_time_unix_ns = event.header.time_unix_ns;
        let cost = EVENT_OVERHEAD_BYTES
            + match &event.body {
                EventBody::Data { data, .. } => data.len() as u64,
                _ => 0,
            };
        self.shared.queued_bytes.fetch_add(cost, Ordering::Relaxed);
        self.send(WriterEntry::Event {
            answers,
            event,
            cost,
        })?;
        self.note_keyframe_written();
        let written = self.shared.written.load(Ordering::Relaxed);
        // One keyframe at a time: the next waits until the writer says how long this one was.
        if self.keyframe_in_writer.is_none() && self.keyframes.due(ts, written) {
            let state = pipeline.state();
            self.keyframe_in_writer = Some(state.last_ts_ns);
            self.send(WriterEntry::Keyframe {
                keyframe: Box::new(Keyframe {
                    pipeline: state,
                    collector: self.collector,
                }),
                time_unix_ns: self.last_time_unix_ns,
            })?;
        }
        Ok(())
    }

    /// Tells the schedule about the keyframe the writer thread has written, if it has.
    fn note_keyframe_written(&mut self) {
        if !self.shared.keyframe_written.swap(false, Ordering::AcqRel) {
            return;
        }
        if let Some(ts) = self.keyframe_in_writer.take() {
            let len = self.shared.last_keyframe_len.load(Ordering::Relaxed);
            self.keyframes.written(ts, len);
        }
    }

    fn send(&self, entry: WriterEntry) -> Result<(), RecordingStopped> {
        self.entries
            .send(entry)
            .map_err(|_| RecordingStopped::WriterFailed)
    }

    /// The file being written (the intended name until the writer thread has created it).
    pub fn path(&self) -> PathBuf {
        self.shared
            .path
            .lock()
            .ok()
            .and_then(|p| p.clone())
            .unwrap_or_else(|| self.intended_path.clone())
    }

    /// The writer thread has written every entry sent so far (tests wait for it, so the
    /// keyframe schedule sees what was written).
    #[cfg(test)]
    pub(crate) fn writer_caught_up(&self) -> bool {
        self.shared.queued_bytes.load(Ordering::Acquire) == 0
            && (self.keyframe_in_writer.is_none()
                || self.shared.keyframe_written.load(Ordering::Acquire))
    }

    /// The writer thread gave up (it says why when the recording is stopped and joined).
    pub fn writer_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// Bytes written so far (compressed, as on disk).
    pub fn bytes(&self) -> u64 {
        self.shared.bytes.load(Ordering::Relaxed)
    }

    /// Ends the recording: the identity answers still pending, a final keyframe and the index
    /// are written by the writer thread, which is not waited for.
    pub fn stop(
        self,
        answers: Vec<IdentityAnswer>,
        pipeline: &Pipeline,
        counters: CollectorCounters,
    ) -> FinishingRecording {
        let keyframe = Box::new(Keyframe {
            pipeline: pipeline.state(),
            collector: counters,
        });
        // A writer that already failed is not listening; joining it gives its error.
        let _ = self.entries.send(WriterEntry::Finish {
            answers,
            keyframe,
            time_unix_ns: self.last_time_unix_ns,
        });
        FinishingRecording {
            thread: self.thread,
        }
    }
}

impl FinishingRecording {
    /// The outcome, once the writer thread is done (never waits).
    pub fn try_finish(self) -> Result<Result<Recorded, String>, Self> {
        if self.thread.is_finished() {
            Ok(self.wait())
        } else {
            Err(self)
        }
    }

    /// Waits for the writer thread (when the console exits).
    pub fn wait(self) -> Result<Recorded, String> {
        self.thread
            .join()
            .unwrap_or_else(|_| Err("the recording thread panicked".into()))
    }
}

/// Creates `dir/name`, or `dir/name-2.cap`, `-3`, ... if taken: a recording never replaces a
/// file.
fn reserve_file(dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    let stem = name.strip_suffix(".cap").unwrap_or(name);
    for attempt in 1..1000u32 {
        let path = if attempt == 1 {
            dir.join(name)
        } else {
            dir.join(format!("{stem}-{attempt}.cap"))
        };
        match agentscope_files::output_file::create_new(&path) {
            Ok(_) => return Ok(path),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(err) => return Err(err),
        }
    }
    Err(std::io::Error::other(format!(
        "too many recordings named {stem}* in {}",
        dir.display()
    )))
}

#[allow(clippy::too_many_arguments)]
fn write_recording(
    dir: &Path,
    name: &str,
    metadata: CaptureMetadata,
    options: WriterOptions,
    first: Keyframe,
    first_time_unix_ns: u64,
    entries: Receiver<WriterEntry>,
    shared: &WriterShared,
) -> Result<Recorded, String> {
    let path = reserve_file(dir, name)
        .map_err(|err| format!("cannot create a recording in {}: {err}", dir.display()))?;
    if let Ok(mut slot) = shared.path.lock() {
        *slot = Some(path.clone());
    }
    let failed = |err: std::io::Error| {
        format!(
            "recording to {} failed: {err}; what was written before still reads back (`agentscope \
             cap verify {}` shows where it ends)",
            path.display(),
            path.display()
        )
    };
    let mut writer =
        CaptureWriter::create(&path, &Inputs::none(), &FileHeader::new(metadata), options)
            .map_err(failed)?;
    writer.set_next_event_index(first.pipeline.next_event_index);
    let mut counters = first.collector;
    writer
        .write_keyframe(&first, first_time_unix_ns)
        .map_err(failed)?;
    note_keyframe(&writer, shared);
    shared.bytes.store(writer.size(), Ordering::Relaxed);
    let mut events = 0u64;
    let write_answers = |writer: &mut CaptureWriter, answers: &[IdentityAnswer]| {
        answers
            .iter()
            .try_for_each(|answer| writer.write_identity(answer))
    };
    loop {
        match entries.recv_timeout(WRITER_TICK) {
            Ok(WriterEntry::Event {
                answers,
                event,
                cost,
            }) => {
                write_answers(&mut writer, &answers).map_err(failed)?;
                writer.write_event(&event).map_err(failed)?;
                events += 1;
                shared.queued_bytes.fetch_sub(cost, Ordering::Relaxed);
            }
            Ok(WriterEntry::Keyframe {
                keyframe,
                time_unix_ns,
            }) => {
                counters = keyframe.collector;
                writer
                    .write_keyframe(&keyframe, time_unix_ns)
                    .map_err(failed)?;
                note_keyframe(&writer, shared);
            }
            Ok(WriterEntry::Finish {
                answers,
                keyframe,
                time_unix_ns,
            }) => {
                write_answers(&mut writer, &answers).map_err(failed)?;
                counters = keyframe.collector;
                writer
                    .write_keyframe(&keyframe, time_unix_ns)
                    .map_err(failed)?;
                return finish(writer, counters, events, path.clone(), shared).map_err(failed);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                // The console went without stopping the recording (a panic): close the file
                // so it has its index.
                return finish(writer, counters, events, path.clone(), shared).map_err(failed);
            }
        }
        writer.tick(Instant::now()).map_err(failed)?;
        shared.bytes.store(writer.size(), Ordering::Relaxed);
        shared
            .written
            .store(writer.bytes_written(), Ordering::Relaxed);
    }
}

/// Tells the UI thread's keyframe schedule that a keyframe was written, and how long it was.
fn note_keyframe(writer: &CaptureWriter, shared: &WriterShared) {
    shared
        .last_keyframe_len
        .store(writer.last_keyframe_len(), Ordering::Relaxed);
    shared
        .written
        .store(writer.bytes_written(), Ordering::Relaxed);
    shared.keyframe_written.store(true, Ordering::Release);
}

fn finish(
    writer: CaptureWriter,
    counters: CollectorCounters,
    events: u64,
    path: PathBuf,
    shared: &WriterShared,
) -> std::io::Result<Recorded> {
    writer.finish(counters)?;
    let bytes = std::fs::metadata(&path)?.len();
    shared.bytes.store(bytes, Ordering::Relaxed);
    Ok(Recorded {
        path,
        events,
        bytes,
    })
}
