//! Capture files (`.cap`): recording what the collector saw and replaying it through the same
//! pipeline as live capture.
//!
//! The format is documented in docs/capture-format.md. In short: a magic number, then blocks
//! framed as `type, length, body, CRC32C, length`; a header block with the version and
//! feature flags; zstd-compressed chunks of raw collector events and identity answers;
//! keyframes of pipeline state; and an index trailer. The length at both ends lets a reader
//! walk backwards from the end and resynchronise after damage; the CRC says which blocks are
//! intact.

pub mod codec;
