//! Writing one capture file: the header, event chunks, keyframes and the index trailer.
//!
//! Entries are gathered into a chunk that is compressed and written as one block when it is
//! full or when [`CaptureWriter::tick`] finds it older than the sync interval; the file is
//! synced at that interval too. A crash (kill -9, power loss) therefore loses at most the
//! last interval, and everything before it reads back: blocks are self-checking and the
//! reader indexes a file without a trailer by scanning it.
//!
//! The same writer also encodes a live stream ([`CaptureWriter::in_memory`]): blocks are
//! gathered in memory for the caller to send (`agentscope collect --serve`), nothing is
//! synced, and no index is kept (a stream has no trailer and may run for months).

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::block::{
    self, block_type, compression, BlockInfo, CaptureTotals, ChunkHeader, FileHeader,
    KeyframeHeader,
};
use super::codec;
use crate::event::{Event, EventBody};
use crate::model::IdentityAnswer;
use crate::output_file::{self, Inputs};
use crate::pipeline::PipelineState;

#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Uncompressed bytes gathered before a chunk is written.
    pub chunk_bytes: usize,
    /// Longest time written data waits before it is in a block and synced to disk.
    pub sync_interval: Duration,
    pub zstd_level: i32,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            chunk_bytes: 256 << 10,
            sync_interval: Duration::from_secs(1),
            zstd_level: 3,
        }
    }
}

/// What a keyframe holds: the pipeline's state and the collector's loss counters, so a file
/// (or the part after the keyframe) stands alone.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Keyframe {
    pub pipeline: PipelineState,
    #[serde(default)]
    pub collector: CollectorCounters,
}

pub use agentscope_event::collector_counters::CollectorCounters;

/// Where the blocks go.
enum Output {
    File(File),
    /// Encoded bytes not yet taken by [`CaptureWriter::take_bytes`].
    Memory(Vec<u8>),
}

pub struct CaptureWriter {
    file: Output,
    path: PathBuf,
    options: WriterOptions,
    compressor: zstd::bulk::Compressor<'static>,
    offset: u64,
    chunk: Vec<u8>,
    chunk_header: ChunkHeader,
    /// When the oldest entry of the open chunk was added.
    chunk_started: Option<Instant>,
    blocks: Vec<BlockInfo>,
    totals: CaptureTotals,
    next_event_index: u64,
    last_sync: Instant,
    unsynced: bool,
    /// Length of the last keyframe block written: the closing keyframe will be about as long.
    last_keyframe_len: u64,
    /// Length the index trailer would have now.
    index_len: u64,
}

impl CaptureWriter {
    /// Creates (or empties) `path`, readable by its owner only (captures hold payloads);
    /// refuses a symbolic link there and any of `inputs` (crate::output_file).
    pub fn create(
        path: &Path,
        inputs: &Inputs,
        header: &FileHeader,
        options: WriterOptions,
    ) -> std::io::Result<Self> {
        let file = output_file::create_streaming(path, inputs)?;
        let mut writer = Self::with_output(Output::File(file), path, options)?;
        writer.write_raw(&block::MAGIC)?;
        writer.write_block(block_type::HEADER, &header.encode(), BlockInfo::default())?;
        writer.sync()?;
        Ok(writer)
    }

    /// A writer that keeps the blocks in memory for [`CaptureWriter::take_bytes`]: the magic
    /// and header are not written (each reader of a stream gets its own copy, see
    /// [`CaptureWriter::stream_start`]), nothing is synced and no index is kept.
    pub fn in_memory(options: WriterOptions) -> std::io::Result<Self> {
        Self::with_output(Output::Memory(Vec::new()), Path::new(""), options)
    }

    /// The magic and header block that start a capture or a stream.
    pub fn stream_start(header: &FileHeader) -> Vec<u8> {
        let mut out = block::MAGIC.to_vec();
        out.extend_from_slice(&block::frame(block_type::HEADER, &header.encode()));
        out
    }

    /// The blocks written since the last call (in-memory writers; empty for files).
    pub fn take_bytes(&mut self) -> Vec<u8> {
        match &mut self.file {
            Output::Memory(bytes) => std::mem::take(bytes),
            Output::File(_) => Vec::new(),
        }
    }

    /// Writes the open chunk as a block now, however young it is.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.flush_chunk()
    }

    /// Whether entries are waiting in the open chunk.
    pub fn has_open_chunk(&self) -> bool {
        self.chunk_header.entry_count > 0
    }

    fn with_output(file: Output, path: &Path, options: WriterOptions) -> std::io::Result<Self> {
        let compressor = zstd::bulk::Compressor::new(options.zstd_level)?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            options,
            compressor,
            offset: 0,
            chunk: Vec::new(),
            chunk_header: ChunkHeader::default(),
            chunk_started: None,
            blocks: Vec::new(),
            totals: CaptureTotals::default(),
            next_event_index: 0,
            last_sync: Instant::now(),
            unsynced: false,
            last_keyframe_len: 0,
            index_len: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the file plus the open chunk (uncompressed, so an overestimate).
    pub fn size(&self) -> u64 {
        self.offset + self.chunk.len() as u64
    }

    /// Bytes written to the file so far (blocks as stored, compressed), without the open
    /// chunk.
    pub fn bytes_written(&self) -> u64 {
        self.offset
    }

    /// Bytes that closing the file now would add besides the open chunk: a closing keyframe
    /// (estimated as long as the last one) and the index trailer (exact for the blocks so
    /// far, plus the two that closing writes).
    pub fn closing_bytes(&self) -> u64 {
        self.last_keyframe_len + self.index_len + 2 * block::INDEX_ENTRY_LEN as u64
    }

    pub fn totals(&self) -> &CaptureTotals {
        &self.totals
    }

    pub fn write_event(&mut self, event: &Event) -> std::io::Result<()> {
        self.note_entry();
        let h = &mut self.chunk_header;
        let ts = event.header.ts_ns;
        if h.event_count == 0 {
            h.first_ts_ns = ts;
            h.first_time_unix_ns = event.header.time_unix_ns;
        }
        h.last_ts_ns = h.last_ts_ns.max(ts);
        h.last_time_unix_ns = h.last_time_unix_ns.max(event.header.time_unix_ns);
        h.event_count += 1;
        self.next_event_index += 1;
        self.totals.events += 1;
        *self
            .totals
            .events_by_kind
            .entry(event.body.kind_name().to_string())
            .or_default() += 1;
        if let EventBody::Data { data, .. } = &event.body {
            self.totals.payload_bytes += data.len() as u64;
        }
        codec::encode_event(event, &mut self.chunk);
        if self.chunk.len() >= self.options.chunk_bytes {
            self.flush_chunk()?;
        }
        Ok(())
    }

    pub fn write_identity(&mut self, answer: &IdentityAnswer) -> std::io::Result<()> {
        self.note_entry();
        codec::encode_identity(answer, &mut self.chunk);
        Ok(())
    }

    fn note_entry(&mut self) {
        if self.chunk_header.entry_count == 0 {
            // Also for a chunk of identity answers only: they belong before this event.
            self.chunk_header.first_event_index = self.next_event_index;
        }
        self.chunk_header.entry_count += 1;
        self.chunk_started.get_or_insert_with(Instant::now);
    }

    /// Writes pending events, then a keyframe. `time_unix_ns` is the wall-clock time of the
    /// state (that of the last event).
    pub fn write_keyframe(
        &mut self,
        keyframe: &Keyframe,
        time_unix_ns: u64,
    ) -> std::io::Result<()> {
        self.flush_chunk()?;
        let json = serde_json::to_vec(keyframe).map_err(std::io::Error::other)?;
        let compressed = self.compressor.compress(&json)?;
        let header = KeyframeHeader {
            ts_ns: keyframe.pipeline.last_ts_ns,
            time_unix_ns,
            event_index: keyframe.pipeline.next_event_index,
            compression: compression::ZSTD,
            uncompressed_len: json.len() as u32,
        };
        let mut body = Vec::with_capacity(compressed.len() + 64);
        header.encode(&mut body);
        body.extend_from_slice(&compressed);
        let info = BlockInfo {
            first_ts_ns: header.ts_ns,
            last_ts_ns: header.ts_ns,
            first_time_unix_ns: time_unix_ns,
            first_event_index: header.event_index,
            ..Default::default()
        };
        self.write_block(block_type::KEYFRAME, &body, info)
    }

    /// Continues the event numbering of the capture this file continues (rotation, slices).
    pub fn set_next_event_index(&mut self, index: u64) {
        if self.chunk_header.entry_count == 0 {
            self.next_event_index = index;
        }
    }

    /// Writes the open chunk and syncs when the sync interval has passed. Call it often
    /// (the collector does after every batch and on a timer).
    pub fn tick(&mut self, now: Instant) -> std::io::Result<()> {
        let interval = self.options.sync_interval;
        if self
            .chunk_started
            .is_some_and(|started| now.duration_since(started) >= interval)
        {
            self.flush_chunk()?;
        }
        if self.unsynced && now.duration_since(self.last_sync) >= interval {
            self.sync()?;
        }
        Ok(())
    }

    /// Writes everything, the index trailer, and syncs. `loss` holds what the collector
    /// reported losing.
    pub fn finish(mut self, loss: CollectorCounters) -> std::io::Result<CaptureTotals> {
        self.flush_chunk()?;
        self.totals.kernel_dropped = loss.kernel_dropped;
        self.totals.kernel_lost_bytes = loss.kernel_lost_bytes;
        self.totals.decode_errors = loss.decode_errors;
        let body = block::encode_index(&self.blocks, &self.totals);
        self.write_block(block_type::INDEX, &body, BlockInfo::default())?;
        self.sync()?;
        Ok(self.totals)
    }

    fn flush_chunk(&mut self) -> std::io::Result<()> {
        self.chunk_started = None;
        if self.chunk_header.entry_count == 0 {
            return Ok(());
        }
        let compressed = self.compressor.compress(&self.chunk)?;
        let mut header = std::mem::take(&mut self.chunk_header);
        header.uncompressed_len = self.chunk.len() as u32;
        let (payload, kind) = if compressed.len() < self.chunk.len() {
            (&compressed[..], compression::ZSTD)
        } else {
            (&self.chunk[..], compression::NONE)
        };
        header.compression = kind;
        let mut body = Vec::with_capacity(payload.len() + 64);
        header.encode(&mut body);
        body.extend_from_slice(payload);
        self.chunk.clear();
        let info = BlockInfo {
            first_ts_ns: header.first_ts_ns,
            last_ts_ns: header.last_ts_ns,
            first_time_unix_ns: header.first_time_unix_ns,
            first_event_index: header.first_event_index,
            event_count: header.event_count,
            ..Default::default()
        };
        self.write_block(block_type::EVENTS, &body, info)
    }

    fn write_block(&mut self, kind: u32, body: &[u8], mut info: BlockInfo) -> std::io::Result<()> {
        let framed = block::frame(kind, body);
        info.offset = self.offset;
        info.kind = kind;
        info.len = framed.len() as u32;
        self.write_raw(&framed)?;
        let indexed = matches!(self.file, Output::File(_));
        if indexed && kind != block_type::INDEX && kind != block_type::HEADER {
            self.blocks.push(info);
            if kind == block_type::KEYFRAME {
                self.last_keyframe_len = framed.len() as u64;
            }
            // Once per block, not per event: the totals' JSON is what varies.
            let totals = serde_json::to_vec(&self.totals).map_or(0, |j| j.len());
            self.index_len = (block::BLOCK_OVERHEAD
                + block::INDEX_FIXED_LEN as usize
                + self.blocks.len() * block::INDEX_ENTRY_LEN as usize
                + totals
                + 64) as u64;
        }
        Ok(())
    }

    fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match &mut self.file {
            Output::File(file) => file.write_all(bytes)?,
            Output::Memory(buffer) => buffer.extend_from_slice(bytes),
        }
        self.offset += bytes.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if let Output::File(file) = &self.file {
            file.sync_data()?;
        }
        self.last_sync = Instant::now();
        self.unsynced = false;
        Ok(())
    }
}
