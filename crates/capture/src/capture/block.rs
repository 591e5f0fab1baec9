//! Block framing and the fixed parts of each block type (docs/capture-format.md).
//!
//! Every block is `type:u32, total_length:u32, body, crc32c:u32, total_length:u32`, little
//! endian. The CRC covers the type, the first length and the body. Bodies begin with their
//! own fixed fields; fields are only ever appended, and each body says where its fixed part
//! ends, so an old reader skips fields it does not know and a new one sees which are absent.

use serde::{Deserialize, Serialize};

/// The first eight bytes of every capture. The high-bit byte and the CR LF catch transfers
/// that mangle binary files, as in PNG.
pub const MAGIC: [u8; 8] = *b"\x89ASC\r\n\x1a\n";

/// Format version. A reader refuses a newer major version and accepts any minor version.
pub const MAJOR_VERSION: u16 = 1;
pub const MINOR_VERSION: u16 = 0;

/// Features a reader must understand to read the file (bits in the header).
pub mod required {
    /// Chunks may be zstd-compressed.
    pub const ZSTD: u32 = 1;
    pub const KNOWN: u32 = ZSTD;
}

pub mod block_type {
    pub const HEADER: u32 = 1;
    pub const EVENTS: u32 = 2;
    pub const KEYFRAME: u32 = 3;
    pub const INDEX: u32 = 4;
    /// Live streams only (`agentscope collect --serve`): the collector's counters and what
    /// the server dropped for this reader, as JSON. Files never hold one; a file reader
    /// skips it like any block type it does not use.
    pub const STATUS: u32 = 5;

    pub fn name(kind: u32) -> &'static str {
        match kind {
            HEADER => "header",
            EVENTS => "events",
            KEYFRAME => "keyframe",
            INDEX => "index",
            STATUS => "status",
            _ => "unknown",
        }
    }
}

/// Type, two lengths and the CRC.
pub const BLOCK_OVERHEAD: usize = 16;
/// No writer makes bigger blocks; a larger length is damage, not a block.
pub const MAX_BLOCK_LEN: usize = 256 << 20;

pub mod compression {
    pub const NONE: u8 = 0;
    pub const ZSTD: u8 = 1;
}

/// Frames `body` as a block.
pub fn frame(kind: u32, body: &[u8]) -> Vec<u8> {
    let total = (body.len() + BLOCK_OVERHEAD) as u32;
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out
}

/// What is wrong with bytes that should hold a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("block is cut short: {have} of {need} bytes present")]
    Truncated { have: usize, need: usize },
    #[error("block length {0} is impossible")]
    BadLength(u64),
    #[error("block lengths disagree ({front} at the front, {back} at the end)")]
    LengthMismatch { front: u32, back: u32 },
    #[error("block checksum does not match (stored {stored:#010x}, computed {computed:#010x})")]
    BadCrc { stored: u32, computed: u32 },
}

pub fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at.checked_add(4)?)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
}

pub fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    bytes
        .get(at..at.checked_add(8)?)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
}

pub fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    bytes
        .get(at..at.checked_add(2)?)
        .map(|b| u16::from_le_bytes(b.try_into().unwrap_or_default()))
}

/// The declared total length of the block starting at `bytes`, if it is plausible.
pub fn declared_len(bytes: &[u8]) -> Result<usize, FrameError> {
    let Some(total) = u32_at(bytes, 4) else {
        return Err(FrameError::Truncated {
            have: bytes.len(),
            need: 8,
        });
    };
    let total = total as usize;
    if !(BLOCK_OVERHEAD..=MAX_BLOCK_LEN).contains(&total) {
        return Err(FrameError::BadLength(total as u64));
    }
    Ok(total)
}

/// Checks the block that starts at `bytes[0]` and returns its type and body. `bytes` may
/// extend past the block.
pub fn unframe(bytes: &[u8]) -> Result<(u32, &[u8]), FrameError> {
    let total = declared_len(bytes)?;
    if bytes.len() < total {
        return Err(FrameError::Truncated {
            have: bytes.len(),
            need: total,
        });
    }
    let block = &bytes[..total];
    let back = u32_at(block, total - 4).unwrap_or_default();
    if back as usize != total {
        return Err(FrameError::LengthMismatch {
            front: total as u32,
            back,
        });
    }
    let stored = u32_at(block, total - 8).unwrap_or_default();
    let computed = crc32c::crc32c(&block[..total - 8]);
    if stored != computed {
        return Err(FrameError::BadCrc { stored, computed });
    }
    let kind = u32_at(block, 0).unwrap_or_default();
    Ok((kind, &block[8..total - 8]))
}

/// What the header block says besides the version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaptureMetadata {
    /// `agentscope <version>`.
    pub created_by: String,
    pub hostname: String,
    /// Wall-clock time the capture started, ns since the Unix epoch.
    pub started_unix_ns: u64,
    /// Payload credentials were masked while recording (false with `--keep-secrets`), by the
    /// pipeline's reconstruction: a replay redacts the same way. One switch for one choice;
    /// files written before it was one also hold `reconstruct_redact_secrets`, always the
    /// same value, which readers ignore.
    pub secrets_redacted: bool,
    pub model_max_nodes: usize,
    pub model_max_edges: usize,
    /// Position in a rotated series (0 for the first or only file).
    #[serde(default)]
    pub sequence: u32,
    /// How the collector was told to capture (pids, payload sources), for the record.
    #[serde(default)]
    pub capture_filter: serde_json::Value,
    /// The pipeline's memory budget in bytes (`--memory-budget`); a replay cuts and evicts
    /// at the same points. 0 (files written before it existed): the default.
    #[serde(default)]
    pub memory_budget_bytes: usize,
}

/// The header block: version, feature flags and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct FileHeader {
    pub major: u16,
    pub minor: u16,
    pub required_features: u32,
    pub optional_features: u32,
    pub metadata: CaptureMetadata,
}

impl FileHeader {
    pub fn new(metadata: CaptureMetadata) -> Self {
        Self {
            major: MAJOR_VERSION,
            minor: MINOR_VERSION,
            required_features: required::ZSTD,
            optional_features: 0,
            metadata,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(&self.metadata).unwrap_or_default();
        let mut body = Vec::with_capacity(16 + json.len());
        body.extend_from_slice(&self.major.to_le_bytes());
        body.extend_from_slice(&self.minor.to_le_bytes());
        body.extend_from_slice(&self.required_features.to_le_bytes());
        body.extend_from_slice(&self.optional_features.to_le_bytes());
        body.extend_from_slice(&(json.len() as u32).to_le_bytes());
        body.extend_from_slice(&json);
        body
    }

    pub fn decode(body: &[u8]) -> Result<Self, String> {
        let short = || "header block is too short".to_string();
        let major = u16_at(body, 0).ok_or_else(short)?;
        let minor = u16_at(body, 2).ok_or_else(short)?;
        let required_features = u32_at(body, 4).ok_or_else(short)?;
        let optional_features = u32_at(body, 8).ok_or_else(short)?;
        let len = u32_at(body, 12).ok_or_else(short)? as usize;
        let json = body
            .get(16..16usize.saturating_add(len))
            .ok_or_else(short)?;
        let metadata = serde_json::from_slice(json)
            .map_err(|e| format!("header metadata is not valid JSON: {e}"))?;
        Ok(Self {
            major,
            minor,
            required_features,
            optional_features,
            metadata,
        })
    }
}

/// The fixed part of an events block; the (compressed) entries follow it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkHeader {
    pub first_ts_ns: u64,
    pub last_ts_ns: u64,
    pub first_time_unix_ns: u64,
    pub last_time_unix_ns: u64,
    /// Index in the whole capture of the chunk's first event.
    pub first_event_index: u64,
    pub event_count: u32,
    pub entry_count: u32,
    pub compression: u8,
    pub uncompressed_len: u32,
}

pub const CHUNK_FIXED_LEN: u32 = 60;

impl ChunkHeader {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&CHUNK_FIXED_LEN.to_le_bytes());
        for v in [
            self.first_ts_ns,
            self.last_ts_ns,
            self.first_time_unix_ns,
            self.last_time_unix_ns,
            self.first_event_index,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.event_count.to_le_bytes());
        out.extend_from_slice(&self.entry_count.to_le_bytes());
        out.extend_from_slice(&[self.compression, 0, 0, 0]);
        out.extend_from_slice(&self.uncompressed_len.to_le_bytes());
    }

    /// The fixed part and where the payload starts.
    pub fn decode(body: &[u8]) -> Result<(Self, usize), String> {
        let short = || "events block is too short".to_string();
        let fixed = u32_at(body, 0).ok_or_else(short)? as usize;
        if fixed < CHUNK_FIXED_LEN as usize || fixed > body.len() {
            return Err(format!(
                "events block fixed part of {fixed} bytes is impossible"
            ));
        }
        let header = Self {
            first_ts_ns: u64_at(body, 4).ok_or_else(short)?,
            last_ts_ns: u64_at(body, 12).ok_or_else(short)?,
            first_time_unix_ns: u64_at(body, 20).ok_or_else(short)?,
            last_time_unix_ns: u64_at(body, 28).ok_or_else(short)?,
            first_event_index: u64_at(body, 36).ok_or_else(short)?,
            event_count: u32_at(body, 44).ok_or_else(short)?,
            entry_count: u32_at(body, 48).ok_or_else(short)?,
            compression: *body.get(52).ok_or_else(short)?,
            uncompressed_len: u32_at(body, 56).ok_or_else(short)?,
        };
        Ok((header, fixed))
    }
}

/// The fixed part of a keyframe block; compressed JSON of the state follows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyframeHeader {
    pub ts_ns: u64,
    pub time_unix_ns: u64,
    /// Events in the whole capture before this keyframe.
    pub event_index: u64,
    pub compression: u8,
    pub uncompressed_len: u32,
}

pub const KEYFRAME_FIXED_LEN: u32 = 36;

impl KeyframeHeader {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&KEYFRAME_FIXED_LEN.to_le_bytes());
        for v in [self.ts_ns, self.time_unix_ns, self.event_index] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&[self.compression, 0, 0, 0]);
        out.extend_from_slice(&self.uncompressed_len.to_le_bytes());
    }

    pub fn decode(body: &[u8]) -> Result<(Self, usize), String> {
        let short = || "keyframe block is too short".to_string();
        let fixed = u32_at(body, 0).ok_or_else(short)? as usize;
        if fixed < KEYFRAME_FIXED_LEN as usize || fixed > body.len() {
            return Err(format!(
                "keyframe block fixed part of {fixed} bytes is impossible"
            ));
        }
        Ok((
            Self {
                ts_ns: u64_at(body, 4).ok_or_else(short)?,
                time_unix_ns: u64_at(body, 12).ok_or_else(short)?,
                event_index: u64_at(body, 20).ok_or_else(short)?,
                compression: *body.get(28).ok_or_else(short)?,
                uncompressed_len: u32_at(body, 32).ok_or_else(short)?,
            },
            fixed,
        ))
    }
}

/// One block as the index (and a scan) knows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BlockInfo {
    pub offset: u64,
    pub kind: u32,
    pub len: u32,
    pub first_ts_ns: u64,
    pub last_ts_ns: u64,
    pub first_time_unix_ns: u64,
    pub first_event_index: u64,
    pub event_count: u32,
}

pub const INDEX_ENTRY_LEN: u32 = 56;
pub const INDEX_FIXED_LEN: u32 = 16;

/// Totals written in the index trailer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureTotals {
    pub events: u64,
    pub events_by_kind: std::collections::BTreeMap<String, u64>,
    pub payload_bytes: u64,
    /// What the collector reported losing while recording.
    #[serde(default)]
    pub kernel_dropped: u64,
    #[serde(default)]
    pub kernel_lost_bytes: u64,
    #[serde(default)]
    pub decode_errors: u64,
}

pub fn encode_index(blocks: &[BlockInfo], totals: &CaptureTotals) -> Vec<u8> {
    let json = serde_json::to_vec(totals).unwrap_or_default();
    let mut body = Vec::with_capacity(16 + blocks.len() * INDEX_ENTRY_LEN as usize + json.len());
    body.extend_from_slice(&INDEX_FIXED_LEN.to_le_bytes());
    body.extend_from_slice(&INDEX_ENTRY_LEN.to_le_bytes());
    body.extend_from_slice(&(blocks.len() as u32).to_le_bytes());
    body.extend_from_slice(&(json.len() as u32).to_le_bytes());
    for b in blocks {
        body.extend_from_slice(&b.offset.to_le_bytes());
        body.extend_from_slice(&b.kind.to_le_bytes());
        body.extend_from_slice(&b.len.to_le_bytes());
        body.extend_from_slice(&b.first_ts_ns.to_le_bytes());
        body.extend_from_slice(&b.last_ts_ns.to_le_bytes());
        body.extend_from_slice(&b.first_time_unix_ns.to_le_bytes());
        body.extend_from_slice(&b.first_event_index.to_le_bytes());
        body.extend_from_slice(&b.event_count.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
    }
    body.extend_from_slice(&json);
    body
}

pub fn decode_index(body: &[u8]) -> Result<(Vec<BlockInfo>, CaptureTotals), String> {
    let short = || "index block is too short".to_string();
    let fixed = u32_at(body, 0).ok_or_else(short)? as usize;
    let entry_len = u32_at(body, 4).ok_or_else(short)? as usize;
    let count = u32_at(body, 8).ok_or_else(short)? as usize;
    let json_len = u32_at(body, 12).ok_or_else(short)? as usize;
    if fixed < INDEX_FIXED_LEN as usize || entry_len < INDEX_ENTRY_LEN as usize {
        return Err("index block layout is impossible".into());
    }
    let entries_len = count
        .checked_mul(entry_len)
        .and_then(|n| n.checked_add(fixed))
        .filter(|&end| end <= body.len())
        .ok_or("index entries run past the block")?;
    let mut blocks = Vec::with_capacity(count);
    for i in 0..count {
        let at = fixed + i * entry_len;
        blocks.push(BlockInfo {
            offset: u64_at(body, at).ok_or_else(short)?,
            kind: u32_at(body, at + 8).ok_or_else(short)?,
            len: u32_at(body, at + 12).ok_or_else(short)?,
            first_ts_ns: u64_at(body, at + 16).ok_or_else(short)?,
            last_ts_ns: u64_at(body, at + 24).ok_or_else(short)?,
            first_time_unix_ns: u64_at(body, at + 32).ok_or_else(short)?,
            first_event_index: u64_at(body, at + 40).ok_or_else(short)?,
            event_count: u32_at(body, at + 48).ok_or_else(short)?,
        });
    }
    let json = body
        .get(entries_len..entries_len.saturating_add(json_len))
        .ok_or("index totals run past the block")?;
    let totals =
        serde_json::from_slice(json).map_err(|e| format!("index totals are not JSON: {e}"))?;
    Ok((blocks, totals))
}
