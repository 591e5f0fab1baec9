//! Writing one capture file: the header, event chunks, keyframes and the index trailer.
//!
//! Entries are gathered into a chunk that is compressed and written as one block when it is
//! full or when [`CaptureWriter::tick`] finds it older than the sync interval; a sync of the
//! file is asked for at that interval too. The syncs run in a helper process
//! ([`agentscope_files::disk_sync`]), so the caller (the collector's event loop) never waits
//! for the disk: behind another program's writeback one sync took 780 ms. A `kill -9` loses
//! nothing written (it is in the page cache); a power loss loses at most the last interval
//! plus the time the disk takes to answer, and everything before it reads back: blocks are
//! self-checking and the reader indexes a file without a trailer by scanning it.
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
use agentscope_files::disk_sync::DiskSync;

#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Uncompressed bytes gathered before a chunk is written.
    pub chunk_bytes: usize,
    /// Longest time written data waits before it is in a block and a sync to disk is asked
    /// for.
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
    /// The file, and what syncs it (`None` if no helper process could be started: then the
    /// writer syncs it itself, waiting).
    File(File, Option<DiskSync>),
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
        let sync = DiskSync::start(&file).ok();
        let mut writer = Self::with_output(Output::File(file, sync), path, options)?;
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
            Output::File(..) => Vec::new(),
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

    /// Bytes of the last keyframe written, as stored (0 before the first).
    pub fn last_keyframe_len(&self) -> u64 {
        self.last_keyframe_len
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

    /// Writes the open chunk and asks for a sync when the sync interval has passed; reports
    /// a sync that failed since. Call it often (the collector does after every batch and on
    /// a timer). It does not wait for the disk, and asks for no sync while one is under way
    /// (the next covers what was written meanwhile).
    pub fn tick(&mut self, now: Instant) -> std::io::Result<()> {
        let interval = self.options.sync_interval;
        if self
            .chunk_started
            .is_some_and(|started| now.duration_since(started) >= interval)
        {
            self.flush_chunk()?;
        }
        if let Output::File(_, Some(sync)) = &mut self.file {
            if let Some(err) = sync.take_error() {
                return Err(err);
            }
            if !sync.is_idle() {
                return Ok(());
            }
        }
        if self.unsynced && now.duration_since(self.last_sync) >= interval {
            self.sync()?;
        }
        Ok(())
    }

    /// Writes everything, the index trailer, and syncs, waiting for the disk. `loss` holds
    /// what the collector reported losing.
    pub fn finish(self, loss: CollectorCounters) -> std::io::Result<CaptureTotals> {
        let (totals, mut on_disk) = self.finish_unsynced(loss)?;
        on_disk.wait_until(None)?;
        Ok(totals)
    }

    /// Writes everything and the index trailer, and asks for the last sync without waiting
    /// for it: [`OnDisk`] says when it is done. The file is complete for any reader at once.
    pub fn finish_unsynced(
        mut self,
        loss: CollectorCounters,
    ) -> std::io::Result<(CaptureTotals, OnDisk)> {
        self.flush_chunk()?;
        self.totals.kernel_dropped = loss.kernel_dropped;
        self.totals.kernel_lost_bytes = loss.kernel_lost_bytes;
        self.totals.decode_errors = loss.decode_errors;
        let body = block::encode_index(&self.blocks, &self.totals);
        self.write_block(block_type::INDEX, &body, BlockInfo::default())?;
        self.sync()?;
        let sync = match self.file {
            Output::File(_, sync) => sync,
            Output::Memory(_) => None,
        };
        Ok((
            self.totals,
            OnDisk {
                syncs: sync.into_iter().collect(),
            },
        ))
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
        if kind == block_type::KEYFRAME {
            self.last_keyframe_len = framed.len() as u64;
        }
        let indexed = matches!(self.file, Output::File(..));
        if indexed && kind != block_type::INDEX && kind != block_type::HEADER {
            self.blocks.push(info);
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
            Output::File(file, _) => file.write_all(bytes)?,
            Output::Memory(buffer) => buffer.extend_from_slice(bytes),
        }
        self.offset += bytes.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    /// Asks for a sync of what was written so far (or makes it, without a helper process).
    fn sync(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Output::File(_, Some(sync)) => sync.request()?,
            Output::File(file, None) => file.sync_data()?,
            Output::Memory(_) => {}
        }
        self.last_sync = Instant::now();
        self.unsynced = false;
        Ok(())
    }
}

/// The last syncs of finished files, still under way: everything is written (in the page
/// cache, where every reader sees it); these say when it is on disk too, safe from a machine
/// failure. Dropped, the syncs finish on their own in their helper processes.
#[derive(Default)]
pub struct OnDisk {
    syncs: Vec<DiskSync>,
}

impl OnDisk {
    /// Adds the syncs of `other`.
    pub fn extend(&mut self, other: OnDisk) {
        self.syncs.extend(other.syncs);
    }

    /// Forgets the syncs that are done; reports the first that failed.
    pub fn poll(&mut self) -> std::io::Result<()> {
        let mut failed = None;
        self.syncs.retain_mut(|sync| match sync.take_error() {
            Some(err) => {
                failed.get_or_insert(err);
                false
            }
            None => !sync.is_idle(),
        });
        failed.map_or(Ok(()), Err)
    }

    /// Whether no sync is under way.
    pub fn is_empty(&self) -> bool {
        self.syncs.is_empty()
    }

    /// Waits until every file is on disk (`Ok(true)`) or until `deadline` (`Ok(false)`; `None`
    /// waits as long as it takes).
    pub fn wait_until(&mut self, deadline: Option<Instant>) -> std::io::Result<bool> {
        for sync in &mut self.syncs {
            if !sync.wait_until(deadline)? {
                return Ok(false);
            }
        }
        self.syncs.clear();
        Ok(true)
    }
}
