//! Capture files (`.cap`): recording what the collector saw and replaying it through the same
//! pipeline as live capture.
//!
//! The format is documented in docs/capture-format.md. In short: a magic number, then blocks
//! framed as `type, length, body, CRC32C, length`; a header block with the version and
//! feature flags; zstd-compressed chunks of raw collector events and identity answers;
//! keyframes of pipeline state; and an index trailer. The length at both ends lets a reader
//! walk backwards from the end and resynchronise after damage; the CRC says which blocks are
//! intact.

pub mod block;
pub mod codec;
pub mod keyframe_schedule;
pub mod range_crc;
pub mod reader;
pub mod recorder;
pub mod replay;
pub mod session_replay;
pub mod slice;
pub mod stream;
pub mod writer;

pub use block::{CaptureMetadata, CaptureTotals, FileHeader};
pub use keyframe_schedule::KeyframeSchedule;
pub use reader::{CaptureError, CaptureReader, Damage, IndexSource};
pub use recorder::{Recorder, RecorderOptions, RecordingSummary};
pub use replay::{CaptureContents, CaptureEvents, Position, RecordedIdentity, Replay, Start};
pub use session_replay::{capture_session, EventList, RecordedEntries, SessionReplay};
pub use stream::{stream_pipeline, StreamDecoder, StreamError, StreamItem, StreamStatus};
pub use writer::{CaptureWriter, CollectorCounters, Keyframe, OnDisk, WriterOptions};

#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod memory_budget_tests;
