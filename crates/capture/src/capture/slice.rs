//! Cutting one incident out of a long capture: the events between two times, preceded by a
//! keyframe of the state at the start (replayed exactly from the original), so the slice
//! replays on its own and shows the same agents and identities.

use std::path::Path;

use super::reader::{CaptureReader, Damage};
use super::recorder::{Recorder, RecorderOptions, RecordingSummary};
use super::replay::Replay;
use crate::event::Event;
use crate::output_file::{AtomicFile, Inputs};
use crate::session::{Session, Sink, Step};

#[derive(Debug, Clone, serde::Serialize)]
pub struct SliceSummary {
    pub recording: RecordingSummary,
    /// Index (in the original) of the slice's first event.
    pub first_event_index: u64,
    /// Damage met in the original while slicing.
    pub damage: Vec<Damage>,
}

/// Writes the events with `from_ts_ns <= ts_ns <= to_ts_ns` (monotonic ns, as in events) to
/// `out`, which must not be one of `inputs` (the file `reader` reads). The slice is written
/// beside `out` and renamed into place when complete (crate::output_file).
pub fn slice(
    reader: CaptureReader,
    from_ts_ns: u64,
    to_ts_ns: u64,
    out: &Path,
    inputs: &Inputs,
) -> std::io::Result<SliceSummary> {
    let target = AtomicFile::create(out, inputs)?;
    let mut metadata = reader
        .header()
        .map(|h| h.metadata.clone())
        .unwrap_or_default();
    metadata.sequence = 0;
    let mut replay = Replay::new(reader);
    replay.seek(from_ts_ns.saturating_sub(1));
    let first_event_index = replay.position().event_index;
    let mut options = RecorderOptions::new(target.temporary_path().to_path_buf(), metadata);
    options.inputs = inputs.clone();
    let mut slice = SliceWriter(Recorder::start_at(options, replay.pipeline())?);
    while let Some(ts) = replay.next_event_ts() {
        if ts > to_ts_ns {
            break;
        }
        // The slice ends with its last event: what was in flight then is not flushed into it.
        if replay.step_into(&mut slice)?.is_none() {
            break;
        }
    }
    let damage = replay.damage().to_vec();
    let mut recording = slice.0.finish_after(&[], replay.pipeline())?;
    target.commit()?;
    recording.files = vec![out.to_path_buf()];
    Ok(SliceSummary {
        recording,
        first_event_index,
        damage,
    })
}

/// The slice's file, written step by step; unlike a live recording, a failing write fails the
/// slice (the file is all a slice is for).
struct SliceWriter(Recorder);

impl Sink for SliceWriter {
    fn step(
        &mut self,
        event: Option<&Event>,
        step: &Step,
        session: &Session,
    ) -> std::io::Result<()> {
        match event {
            Some(event) => self
                .0
                .record_after(event, &step.identity_answers, session.pipeline()),
            None => self.0.add_identity_answers(&step.identity_answers),
        }
    }
}
