//! Reading capture files: the header, the block index (from the trailer, or by scanning a
//! file that has none), and the entries of each block, with damage located and reported
//! instead of stopping the read.
//!
//! A trailer is used only if it describes the file: its blocks tile the file from the header
//! to the trailer, each entry names the type and length found at its offset (at both ends of
//! the block), and its event total is the sum of its blocks'. Every block is then checked
//! (CRC) while opening, so what `cap info`, `cap verify` and a replay count is the same: the
//! intact blocks, whatever the trailer claimed. Otherwise the file is scanned.
//!
//! A scan walks the blocks by their lengths. A block that fails its checks is reported with
//! its offset and the reader searches forward, byte by byte, for the next position holding a
//! block whose lengths agree and whose CRC matches; everything intact after the damage is
//! recovered. Candidate CRCs come from prefix CRCs (range_crc.rs), so the search is linear in
//! the file size however many positions look like blocks. A cut-off tail is reported as
//! damage at the offset of the partial block.

use std::path::Path;

use super::block::{
    self, block_type, compression, BlockInfo, CaptureTotals, ChunkHeader, FileHeader, FrameError,
    KeyframeHeader, BLOCK_OVERHEAD,
};
use super::codec::{self, Entry};
use super::range_crc::{CrcWork, RangeCrc};
use super::writer::Keyframe;

/// Decompressed keyframe sizes beyond this are damage, never an allocation.
const MAX_UNCOMPRESSED: usize = 256 << 20;

/// An events block's entries (uncompressed) beyond this are damage. A writer ends a chunk once
/// it holds `chunk_bytes` (256 KiB for a recording, 128 KiB for a served stream), so a block
/// holds that plus the entries that completed it: the largest event is a cluster snapshot (at
/// most 4 MiB of objects), the others a few KiB. Decoded, entries take up to six times their
/// encoded bytes (an empty argument is 4 bytes on disk and a 24-byte `String`), so a damaged
/// block's entries stay near 100 MiB, where the 256 MiB that a block may be allowed 1.5 GiB.
pub const MAX_EVENTS_BLOCK_ENTRIES: usize = 16 << 20;

/// Errors that prevent reading a capture at all.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// One line: the OS error once (it is not also the error's source).
    #[error("cannot read {path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// A FIFO, a directory, a device: named, never waited on.
    #[error("{0}")]
    NotAFile(String),
    #[error("{0} is not an agentscope capture (no .cap magic at the start): check the file name, or whether the start of the file was lost")]
    NotACapture(String),
    #[error("{path} is capture format {major}.{minor}, newer than this agentscope reads (up to {}.x): upgrade agentscope", block::MAJOR_VERSION)]
    TooNew {
        path: String,
        major: u16,
        minor: u16,
    },
    #[error("{path} needs format features {features:#x} that this agentscope does not know: upgrade agentscope")]
    UnknownFeatures { path: String, features: u32 },
}

/// A damaged stretch of a capture.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Damage {
    pub offset: u64,
    /// Bytes that could not be used (to the next intact block, or the end).
    pub len: u64,
    pub what: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "offset {} ({} bytes): {}",
            self.offset, self.len, self.what
        )
    }
}

/// Where the block list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexSource {
    /// The index trailer written when the capture was closed.
    Trailer,
    /// No usable trailer (the recorder was killed, or the end is damaged): blocks were found
    /// by scanning the file.
    Scan,
}

enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(map) => map,
            Bytes::Owned(vec) => vec,
        }
    }
}

pub struct CaptureReader {
    name: String,
    bytes: Bytes,
    header: Option<FileHeader>,
    blocks: Vec<BlockInfo>,
    totals: Option<CaptureTotals>,
    index_source: IndexSource,
    damage: Vec<Damage>,
}

impl CaptureReader {
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let name = path.display().to_string();
        let io = |error| CaptureError::Io {
            path: name.clone(),
            error,
        };
        let file = match crate::input_file::open_regular(path, "a capture file") {
            Ok(file) => file,
            Err(crate::input_file::InputError::Io { error, .. }) => return Err(io(error)),
            Err(err) => return Err(CaptureError::NotAFile(err.to_string())),
        };
        let len = file.metadata().map_err(io)?.len();
        let bytes = if len == 0 {
            Bytes::Owned(Vec::new())
        } else {
            // SAFETY: the map is read-only. Captures are not modified in place: a recorder
            // only appends, and a file truncated under us by another process is outside what
            // this reader promises (it would fault, as any mapped reader would).
            Bytes::Mapped(unsafe { memmap2::Mmap::map(&file) }.map_err(io)?)
        };
        Self::load(name, bytes)
    }

    /// Reads a capture held in memory (tests, fuzzing).
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Result<Self, CaptureError> {
        Self::load(name.to_string(), Bytes::Owned(bytes))
    }

    fn load(name: String, bytes: Bytes) -> Result<Self, CaptureError> {
        let data = bytes.as_slice();
        if data.len() < block::MAGIC.len() || data[..8] != block::MAGIC {
            return Err(CaptureError::NotACapture(name));
        }
        let mut damage = Vec::new();
        let header = match block::unframe(&data[8..]) {
            Ok((block_type::HEADER, body)) => match FileHeader::decode(body) {
                Ok(header) => Some(header),
                Err(what) => {
                    damage.push(Damage {
                        offset: 8,
                        len: 0,
                        what,
                    });
                    None
                }
            },
            Ok((kind, _)) => {
                damage.push(Damage {
                    offset: 8,
                    len: 0,
                    what: format!(
                        "first block is a {} block, not the header",
                        block_type::name(kind)
                    ),
                });
                None
            }
            Err(err) => {
                damage.push(Damage {
                    offset: 8,
                    len: 0,
                    what: format!("header block: {err}"),
                });
                None
            }
        };
        if let Some(h) = &header {
            if h.major > block::MAJOR_VERSION {
                return Err(CaptureError::TooNew {
                    path: name,
                    major: h.major,
                    minor: h.minor,
                });
            }
            let unknown = h.required_features & !block::required::KNOWN;
            if unknown != 0 {
                return Err(CaptureError::UnknownFeatures {
                    path: name,
                    features: unknown,
                });
            }
        }
        let mut reader = Self {
            name,
            bytes,
            header,
            blocks: Vec::new(),
            totals: None,
            index_source: IndexSource::Scan,
            damage,
        };
        match reader.read_trailer() {
            Some((blocks, totals)) => {
                // The trailer describes the file; the blocks must still be intact.
                let data = reader.bytes.as_slice();
                let mut intact = Vec::with_capacity(blocks.len());
                for info in blocks {
                    let at = info.offset as usize;
                    match block::unframe(&data[at..at + info.len as usize]) {
                        Ok(_) => intact.push(info),
                        Err(err) => reader.damage.push(Damage {
                            offset: info.offset,
                            len: info.len as u64,
                            what: format!(
                                "damaged block (type {}): {err}",
                                block_type::name(info.kind)
                            ),
                        }),
                    }
                }
                reader.blocks = intact;
                reader.totals = Some(totals);
                reader.index_source = IndexSource::Trailer;
            }
            None => {
                let scanned = scan(reader.bytes.as_slice());
                reader.blocks = scanned.blocks;
                reader.damage.extend(scanned.damage);
                // A damaged header is also what the scan meets first: report it once.
                reader.damage.dedup_by_key(|d| d.offset);
                reader.damage.push(Damage {
                    offset: reader.file_len(),
                    len: 0,
                    what: NO_TRAILER.into(),
                });
            }
        }
        Ok(reader)
    }

    /// The index trailer, when the file ends with an intact one that describes it.
    fn read_trailer(&self) -> Option<(Vec<BlockInfo>, CaptureTotals)> {
        let data = self.bytes.as_slice();
        let total = block::u32_at(data, data.len().checked_sub(4)?)? as usize;
        let start = data.len().checked_sub(total)?;
        if start < 8 {
            return None;
        }
        let (kind, body) = block::unframe(&data[start..]).ok()?;
        if kind != block_type::INDEX {
            return None;
        }
        let (blocks, totals) = block::decode_index(body).ok()?;
        // Trust the trailer only if it describes the file it ends: the blocks it lists tile
        // the file from the end of the header to the trailer (the writer indexes every block
        // but those two), each offset holds a block of the listed type and length (at both
        // ends), and its event total is the sum of its blocks'. Two captures concatenated,
        // bytes inserted or removed, or a trailer from another file fail this.
        let header_len = match block::unframe(&data[8..]) {
            Ok((block_type::HEADER, body)) => body.len() + BLOCK_OVERHEAD,
            _ => return None,
        };
        let mut end = 8 + header_len;
        let mut events = 0u64;
        for b in &blocks {
            let len = b.len as usize;
            let at = usize::try_from(b.offset).ok()?;
            let describes = at == end
                && len >= BLOCK_OVERHEAD
                && at.checked_add(len)? <= start
                && block::u32_at(data, at) == Some(b.kind)
                && block::u32_at(data, at + 4) == Some(b.len)
                && block::u32_at(data, at + len - 4) == Some(b.len);
            if !describes {
                return None;
            }
            events += b.event_count as u64;
            end = at + len;
        }
        if end != start || events != totals.events {
            return None;
        }
        Some((blocks, totals))
    }

    /// Whether the file lacks its index trailer: the recording was cut short (killed, out
    /// of space, or still going) or its end is damaged.
    pub fn cut_short(&self) -> bool {
        self.index_source == IndexSource::Scan
    }

    /// Damaged keyframes found while opening: a replay that starts there starts from less
    /// state.
    pub fn damaged_keyframes(&self) -> usize {
        self.damage
            .iter()
            .filter(|d| d.what.contains("(type keyframe)"))
            .count()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn header(&self) -> Option<&FileHeader> {
        self.header.as_ref()
    }

    pub fn file_len(&self) -> u64 {
        self.bytes.as_slice().len() as u64
    }

    /// Blocks in file order (events and keyframes).
    pub fn blocks(&self) -> &[BlockInfo] {
        &self.blocks
    }

    pub fn totals(&self) -> Option<&CaptureTotals> {
        self.totals.as_ref()
    }

    pub fn index_source(&self) -> IndexSource {
        self.index_source
    }

    /// Damage found while opening: the header, blocks that fail their checks (listed by the
    /// trailer or met by the scan), and a missing trailer. Entries that do not decode are
    /// found reading the blocks ([`CaptureReader::read_events`], [`CaptureReader::verify`]).
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    pub fn event_blocks(&self) -> impl DoubleEndedIterator<Item = &BlockInfo> {
        self.blocks.iter().filter(|b| b.kind == block_type::EVENTS)
    }

    pub fn keyframe_blocks(&self) -> impl DoubleEndedIterator<Item = &BlockInfo> {
        self.blocks
            .iter()
            .filter(|b| b.kind == block_type::KEYFRAME)
    }

    /// The share of the file its keyframes take (`KeyframeSchedule` bounds it), from the
    /// index: 0 for an empty file.
    pub fn keyframe_share(&self) -> f64 {
        let bytes: u64 = self.keyframe_blocks().map(|b| u64::from(b.len)).sum();
        bytes as f64 / self.file_len().max(1) as f64
    }

    fn block_body(&self, info: &BlockInfo) -> Result<(u32, &[u8]), Damage> {
        let data = self.bytes.as_slice();
        let at = usize::try_from(info.offset).unwrap_or(usize::MAX);
        let bytes = data.get(at..).ok_or_else(|| Damage {
            offset: info.offset,
            len: 0,
            what: "block offset is past the end of the file".into(),
        })?;
        block::unframe(bytes).map_err(|err| Damage {
            offset: info.offset,
            len: info.len as u64,
            what: format!("{} block: {err}", block_type::name(info.kind)),
        })
    }

    /// An events block's fixed part and its payload as stored (compressed or not): for tools
    /// and benchmarks that work on the raw chunk.
    pub fn chunk_payload(&self, info: &BlockInfo) -> Result<(ChunkHeader, &[u8]), Damage> {
        let (_, body) = self.block_body(info)?;
        let (header, at) = ChunkHeader::decode(body).map_err(|what| Damage {
            offset: info.offset,
            len: info.len as u64,
            what,
        })?;
        Ok((header, &body[at..]))
    }

    /// The entries of an events block, decoded. Entries before a damaged one are returned
    /// with the damage.
    pub fn read_events(&self, info: &BlockInfo) -> (ChunkHeader, Vec<Entry>, Option<Damage>) {
        let fail = |what: String| Damage {
            offset: info.offset,
            len: info.len as u64,
            what,
        };
        let (kind, body) = match self.block_body(info) {
            Ok(found) => found,
            Err(damage) => return (ChunkHeader::default(), Vec::new(), Some(damage)),
        };
        if kind != block_type::EVENTS {
            let what = format!("expected an events block, found {}", block_type::name(kind));
            return (ChunkHeader::default(), Vec::new(), Some(fail(what)));
        }
        let (header, entries, error) = decode_events_body(body);
        (header, entries, error.map(fail))
    }

    pub fn read_keyframe(&self, info: &BlockInfo) -> Result<(KeyframeHeader, Keyframe), Damage> {
        let fail = |what: String| Damage {
            offset: info.offset,
            len: info.len as u64,
            what,
        };
        let (kind, body) = self.block_body(info)?;
        if kind != block_type::KEYFRAME {
            return Err(fail(format!(
                "expected a keyframe block, found {}",
                block_type::name(kind)
            )));
        }
        decode_keyframe_body(body).map_err(fail)
    }

    /// The last keyframe that reads back: the state as the recording ended (agents, the
    /// collector's loss counters).
    pub fn last_keyframe(&self) -> Option<(KeyframeHeader, Keyframe)> {
        self.keyframe_blocks()
            .rev()
            .find_map(|b| self.read_keyframe(b).ok())
    }

    /// The entries of an events block from event `first_event` (an index in the whole
    /// capture) on: a replay that starts at a keyframe drops the events before it, and keeps
    /// the identity answers that precede the events it replays.
    pub fn read_events_from(
        &self,
        info: &BlockInfo,
        first_event: u64,
    ) -> (Vec<Entry>, Option<Damage>) {
        let (_, mut entries, damage) = self.read_events(info);
        // In place: a block replayed whole (every block but a keyframe's) is not copied.
        let mut index = info.first_event_index;
        entries.retain(|entry| {
            let keep = index >= first_event;
            index += matches!(entry, Entry::Event(_)) as u64;
            keep
        });
        (entries, damage)
    }

    /// Reads every block and reports all damage: what opening found, blocks that fail their
    /// checks, and entries that do not decode. Without a trailer, the end is reported too.
    pub fn verify(&self) -> Vec<Damage> {
        // Opening checked every block's framing and CRC (and scanned the gaps when there was
        // no trailer): what is left is entries that do not decode.
        let mut damage = self.damage.clone();
        for info in &self.blocks {
            match info.kind {
                block_type::EVENTS => {
                    if let (_, _, Some(d)) = self.read_events(info) {
                        damage.push(d);
                    }
                }
                block_type::KEYFRAME => {
                    if let Err(d) = self.read_keyframe(info) {
                        damage.push(d);
                    }
                }
                _ => {}
            }
        }
        damage.sort_by_key(|d| d.offset);
        damage.dedup_by_key(|d| d.offset);
        damage
    }
}

/// The fixed part and entries of an events block's body. Entries before a damaged one are
/// returned with what is wrong (shared by files and live streams).
pub fn decode_events_body(body: &[u8]) -> (ChunkHeader, Vec<Entry>, Option<String>) {
    let (header, payload_at) = match ChunkHeader::decode(body) {
        Ok(found) => found,
        Err(what) => return (ChunkHeader::default(), Vec::new(), Some(what)),
    };
    let payload = &body[payload_at..];
    let decompressed;
    let entries_bytes = match header.compression {
        compression::NONE => payload,
        compression::ZSTD => match decompress(
            payload,
            header.uncompressed_len as usize,
            MAX_EVENTS_BLOCK_ENTRIES,
        ) {
            Ok(bytes) => {
                decompressed = bytes;
                &decompressed[..]
            }
            Err(what) => return (header, Vec::new(), Some(what)),
        },
        other => {
            return (
                header,
                Vec::new(),
                Some(format!("unknown compression {other}")),
            )
        }
    };
    if entries_bytes.len() > MAX_EVENTS_BLOCK_ENTRIES {
        return (
            header,
            Vec::new(),
            Some(format!(
                "events block of {} bytes of entries is impossible (at most {MAX_EVENTS_BLOCK_ENTRIES})",
                entries_bytes.len()
            )),
        );
    }
    let (entries, error) = codec::decode_entries(entries_bytes);
    (
        header,
        entries,
        error.map(|err| format!("events block: {err}")),
    )
}

/// The fixed part and state of a keyframe block's body.
pub fn decode_keyframe_body(body: &[u8]) -> Result<(KeyframeHeader, Keyframe), String> {
    let (header, payload_at) = KeyframeHeader::decode(body)?;
    let payload = &body[payload_at..];
    let json = match header.compression {
        compression::NONE => payload.to_vec(),
        compression::ZSTD => {
            decompress(payload, header.uncompressed_len as usize, MAX_UNCOMPRESSED)?
        }
        other => return Err(format!("unknown compression {other}")),
    };
    let keyframe =
        serde_json::from_slice(&json).map_err(|e| format!("keyframe state is not valid: {e}"))?;
    Ok((header, keyframe))
}

thread_local! {
    /// One zstd decompression context per thread, reused for every block: making one per
    /// block (`zstd::bulk::decompress`, which allocates and initialises its tables) cost more
    /// than decompressing the 256 KiB chunk itself (2.8% against 1.8% of a replay's time in
    /// the replay bench's profile). It holds a few hundred KiB for the thread's life. Each
    /// call starts a new frame, so one block's damage does not carry over to the next.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// `payload` decompressed to the `declared` size, which is damage above `most`.
fn decompress(payload: &[u8], declared: usize, most: usize) -> Result<Vec<u8>, String> {
    if declared > most {
        return Err(format!(
            "declared size {declared} is impossible (at most {most})"
        ));
    }
    let bytes = DECOMPRESSOR
        .with(|cell| {
            let mut cell = cell.borrow_mut();
            let decompressor = match &mut *cell {
                Some(decompressor) => decompressor,
                None => cell.insert(zstd::bulk::Decompressor::new()?),
            };
            decompressor.decompress(payload, declared)
        })
        .map_err(|e| format!("zstd data does not decompress: {e}"))?;
    if bytes.len() != declared {
        return Err(format!(
            "decompressed to {} bytes, {} declared",
            bytes.len(),
            declared
        ));
    }
    Ok(bytes)
}

const NO_TRAILER: &str = "no index trailer: the recording was cut short (the recorder was \
                          killed, ran out of space, or is still recording) or its end is \
                          damaged; blocks were found by scanning";

/// What a scan found, and what it cost.
pub(crate) struct Scan {
    pub blocks: Vec<BlockInfo>,
    pub damage: Vec<Damage>,
    /// Offsets tried as the start of a block while resynchronising.
    pub positions_tried: u64,
    /// CRC work spent on candidates while resynchronising.
    pub resync_crc: CrcWork,
    /// Bytes hashed checking the blocks walked (each byte of the file at most once).
    pub walk_bytes_hashed: u64,
}

/// Finds the blocks of a file by walking it, resynchronising after damage.
pub(crate) fn scan(data: &[u8]) -> Scan {
    let mut found = Scan {
        blocks: Vec::new(),
        damage: Vec::new(),
        positions_tried: 0,
        resync_crc: CrcWork::default(),
        walk_bytes_hashed: 0,
    };
    let mut crcs = RangeCrc::new(data, 8.min(data.len()));
    let mut pos = 8usize;
    // The header block is checked by the caller; skip it when intact.
    if let Ok((block_type::HEADER, _)) = block::unframe(&data[pos.min(data.len())..]) {
        pos += block::declared_len(&data[pos..]).unwrap_or(0);
    }
    while pos < data.len() {
        crcs.forget_before(pos);
        match block::unframe(&data[pos..]) {
            Ok((kind, body)) => {
                let len = body.len() + BLOCK_OVERHEAD;
                found.walk_bytes_hashed += (len - 8) as u64;
                if kind != block_type::INDEX && kind != block_type::HEADER {
                    found.blocks.push(describe(pos, kind, len, body));
                }
                pos += len;
            }
            Err(err) => {
                let next = resync(data, pos + 1, &mut crcs, &mut found.positions_tried);
                let kind = block_type::name(block::u32_at(data, pos).unwrap_or(0));
                let what = match (&err, next) {
                    (FrameError::Truncated { .. }, None) => {
                        format!(
                            "the file ends inside a block (type {kind}; {err}): it was cut short"
                        )
                    }
                    _ => format!("damaged block (type {kind}): {err}"),
                };
                let end = next.unwrap_or(data.len());
                found.damage.push(Damage {
                    offset: pos as u64,
                    len: (end - pos) as u64,
                    what,
                });
                pos = end;
            }
        }
    }
    found.resync_crc = crcs.work();
    found
}

/// The next offset at or after `from` where an intact block starts. Each offset costs two
/// reads of a length; only where the two lengths agree is a CRC computed, from prefix CRCs
/// at a bounded cost, so the search is linear in the bytes it passes.
fn resync(data: &[u8], from: usize, crcs: &mut RangeCrc, tried: &mut u64) -> Option<usize> {
    let last = data.len().saturating_sub(BLOCK_OVERHEAD - 1);
    for at in from..last {
        *tried += 1;
        let Ok(len) = block::declared_len(&data[at..]) else {
            continue;
        };
        let Some(end) = at.checked_add(len).filter(|&end| end <= data.len()) else {
            continue;
        };
        if block::u32_at(data, end - 4) != Some(len as u32) {
            continue;
        }
        crcs.forget_before(at);
        if block::u32_at(data, end - 8) == Some(crcs.crc(at, end - 8)) {
            return Some(at);
        }
    }
    None
}

fn describe(offset: usize, kind: u32, len: usize, body: &[u8]) -> BlockInfo {
    let mut info = BlockInfo {
        offset: offset as u64,
        kind,
        len: len as u32,
        ..Default::default()
    };
    match kind {
        block_type::EVENTS => {
            if let Ok((h, _)) = ChunkHeader::decode(body) {
                info.first_ts_ns = h.first_ts_ns;
                info.last_ts_ns = h.last_ts_ns;
                info.first_time_unix_ns = h.first_time_unix_ns;
                info.first_event_index = h.first_event_index;
                info.event_count = h.event_count;
            }
        }
        block_type::KEYFRAME => {
            if let Ok((h, _)) = KeyframeHeader::decode(body) {
                info.first_ts_ns = h.ts_ns;
                info.last_ts_ns = h.ts_ns;
                info.first_time_unix_ns = h.time_unix_ns;
                info.first_event_index = h.event_index;
            }
        }
        _ => {}
    }
    info
}
