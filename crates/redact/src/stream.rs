//! Redaction of reassembled streams: every `data` chunk is masked with the bytes that came
//! before it on the same stream in view, so no split (two writes, 16 KiB chunks, one byte per
//! write) lets the tail of a secret through.
//!
//! A stream is a connection's direction as [docs/events.md] reassembles it: `pid` + `source` +
//! `direction` + `conn_id` (TLS) or `fd` (sockets, pipes). For each one the redactor keeps the
//! last [`CARRY_BYTES`] bytes (enough for a name, its separators and the start of its value),
//! the value the stream is inside when a secret outlives that window, and the PostgreSQL
//! frontend framing. A chunk is scanned as `carry ++ chunk`; what falls in the chunk is masked.
//! A stream that is HTTP/2 (its first chunk is the client preface, a server's first SETTINGS,
//! or a chain of frames) is also followed frame by frame ([`Http2Direction`]): secret values
//! inside its HPACK header blocks are masked there, and the byte-level rules read only its
//! DATA and control payloads (joined), never frame headers or header blocks, whose bytes they
//! could break.
//! State is bounded: at most [`MAX_STREAMS`] streams, the least recently used forgotten first;
//! a forgotten stream that was inside a secret keeps that fact (a few bytes) so its next chunk
//! is still masked up to the value's end, and one inside PostgreSQL framing comes back with
//! that framing lost (masked until a write starts with a message header).
//! Bytes lost before a chunk (a record the kernel dropped, a call cut at its cap) may have
//! held a secret's name or part of it, so what follows is masked to the end of its line
//! ([`OpenValue::AfterLoss`]), unless the chunk starts a call with an HTTP/1 message start or a
//! followed PostgreSQL message starts sooner (docs/redaction.md, "Lost bytes").
//! The PostgreSQL follower is told exactly how many bytes are missing around each chunk (from
//! the chunk's place in its call and the `lost_bytes` the kernel reports), so a loss moves its
//! framing on or loses it, never misreads it.

use std::collections::{HashMap, VecDeque};

use std::ops::Range;

use agentscope_http2_wire::frame::{
    looks_like_frame_chain, looks_like_preface, looks_like_server_settings, HEADER_LEN, PREFACE,
};

use super::http2_headers::{Http2Direction, Http2Start};
use super::postgres_password::{ChunkEdges, Gap, PostgresFrontend};
use super::scanner::{self, OpenValue};
use crate::event::{Direction, PayloadSource};

/// Bytes of a stream kept to scan the next chunk with.
pub const CARRY_BYTES: usize = 1024;
/// Streams tracked at once (each holds at most `CARRY_BYTES` + a few dozen bytes).
pub const MAX_STREAMS: usize = 1024;
/// Forgotten streams whose open secret value or PostgreSQL framing is remembered.
const MAX_FORGOTTEN: usize = 4096;
/// A value still unterminated after this many bytes is taken to have ended (a runaway quote
/// in binary data would otherwise mask the rest of a connection).
const MAX_OPEN_VALUE_BYTES: usize = 256 * 1024;

/// One direction of one connection or pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamKey {
    pub pid: u32,
    pub source: PayloadSource,
    pub direction: Direction,
    /// `conn_id` for TLS, the fd otherwise.
    pub connection: u64,
}

#[derive(Debug, Default)]
struct StreamState {
    carry: Vec<u8>,
    open: Option<OpenValue>,
    open_bytes: usize,
    postgres: PostgresFrontend,
    last_used: u64,
    /// The fd the stream was last seen on (TLS streams too, when known), so closing it
    /// forgets the stream even when the key (an `SSL*`) is reused by the next connection.
    fd: i32,
    /// Whether the stream is HTTP/2 was decided (from its first bytes).
    decided: bool,
    /// The first bytes, while they are too few to decide (a prefix of the preface, or of a
    /// server's SETTINGS frame header).
    undecided: Vec<u8>,
    /// The last chunk's call, place in it, whether it ended the call with nothing of it lost
    /// after it, and where the call's next byte would start, to notice bytes that never
    /// arrived.
    last_chunk: Option<(u64, u32, bool, u64)>,
    http2: Option<Box<Http2Direction>>,
}

/// Where a chunk stands in its stream, when the caller knows (the collector's `data` events):
/// a chunk that does not follow the previous one loses an HTTP/2 stream's framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPlace {
    /// The write or read call the chunk belongs to.
    pub call_id: u64,
    /// The chunk's index in its call.
    pub seq: u32,
    /// Bytes of the call not delivered so far (on a call's first delivered chunk, also what
    /// the stream lost before the call; on its last, also what is beyond the per-call cap).
    pub lost_bytes: u64,
    /// The call's final chunk.
    pub last: bool,
    /// Where the chunk starts in its call's bytes.
    pub offset: u64,
    /// Bytes the call transferred.
    pub total_len: u64,
}

impl ChunkPlace {
    /// Bytes the call transferred after this chunk that no chunk will bring: on the last
    /// chunk, what is beyond the per-call cap.
    fn lost_after(&self, len: usize) -> u64 {
        if self.last {
            self.total_len.saturating_sub(self.offset + len as u64)
        } else {
            0
        }
    }

    /// How many bytes of the stream are missing right before this chunk of `len` bytes, the
    /// stream's last chunk having been `last` (its call, and where that call's next byte
    /// would start).
    fn missing_before(&self, last: Option<(u64, u64)>, len: usize) -> Gap {
        match last {
            // The call's earlier chunks were seen: its own offsets say what is missing.
            Some((call, next_offset)) if call == self.call_id => self
                .offset
                .checked_sub(next_offset)
                .map_or(Gap::Unknown, Gap::bytes),
            // The stream's first chunk seen starts inside a call: what came before, nothing
            // says (a stream the redactor forgot, or one in flight when capture began).
            None if self.seq != 0 => Gap::Unknown,
            // The call's first delivered chunk: `lost_bytes` is what the stream lost before
            // the call plus the call's bytes before this chunk (all of them, as none was
            // delivered), plus on the last chunk what is beyond the cap.
            _ => match self.lost_bytes.checked_sub(self.lost_after(len)) {
                Some(before) if before >= self.offset => Gap::bytes(before),
                _ => Gap::Unknown,
            },
        }
    }
}

/// Per-stream redaction state for every stream in flight.
#[derive(Debug, Default)]
pub struct StreamRedactor {
    streams: HashMap<StreamKey, StreamState>,
    forgotten: HashMap<StreamKey, Forgotten>,
    forgotten_order: VecDeque<StreamKey>,
    tick: u64,
    room: ScanRoom,
}

/// What is remembered of a forgotten stream, so its next chunks still fail closed.
#[derive(Debug)]
struct Forgotten {
    /// The secret value it was inside.
    open: Option<OpenValue>,
    /// Its PostgreSQL framing, lost with it ([`PostgresFrontend::forgotten`]).
    postgres: Option<PostgresFrontend>,
}

impl StreamRedactor {
    /// Masks the secrets in `chunk`, the next bytes of stream `key`; returns how many values
    /// were masked.
    pub fn redact_chunk(&mut self, key: StreamKey, fd: i32, chunk: &mut [u8]) -> usize {
        self.redact_chunk_at(key, fd, None, chunk)
    }

    /// [`Self::redact_chunk`], with where the chunk stands in its stream when that is known.
    pub fn redact_chunk_at(
        &mut self,
        key: StreamKey,
        fd: i32,
        place: Option<ChunkPlace>,
        chunk: &mut [u8],
    ) -> usize {
        self.tick += 1;
        if !self.streams.contains_key(&key) {
            self.make_room();
            let forgotten = self.forgotten.remove(&key);
            let (open, postgres) = forgotten.map_or((None, None), |f| (f.open, f.postgres));
            self.streams.insert(
                key,
                StreamState {
                    open,
                    postgres: postgres.unwrap_or_default(),
                    ..StreamState::default()
                },
            );
        }
        let state = self.streams.get_mut(&key).expect("inserted above");
        state.last_used = self.tick;
        state.fd = fd;
        // One reading of where the chunk stands, two answers:
        // - `follows`: nothing at all was lost since the stream's last chunk. HTTP/2's framing
        //   is given up on any loss, wherever in the call it was (deliberately: a frame header
        //   may have been in it).
        // - `gap_before`: bytes are missing right before this chunk: the stream lost them
        //   before this call (the kernel reports them on the call's first delivered record),
        //   or the call's bytes before this chunk did not all arrive (a record lost, or a hole
        //   in the call).
        let (follows, gap_before) = match (place, state.last_chunk) {
            (None, _) => (true, false),
            (Some(place), last) if place.seq == 0 => {
                // The stream's last call never delivered its final chunk: what it lost is
                // missing here even when no count says so (the kernel's per-stream gap counts
                // are an LRU that forgets under the floods that drop records).
                let last_call_cut = last.is_some_and(|(_, _, ended, _)| !ended);
                (
                    place.lost_bytes == 0 && !last_call_cut,
                    place.offset > 0
                        || place.lost_bytes > place.lost_after(chunk.len())
                        || last_call_cut,
                )
            }
            (Some(place), Some((call, seq, _, next_offset))) => {
                let in_step = place.call_id == call && place.seq == seq.wrapping_add(1);
                (
                    place.lost_bytes == 0 && in_step,
                    !in_step || place.offset != next_offset,
                )
            }
            (Some(_), None) => (false, true),
        };
        // The PostgreSQL framing needs the sizes: how many bytes are missing before the chunk,
        // and after it on a call cut at the cap.
        let edges = place.map_or(ChunkEdges::CONTIGUOUS, |p| ChunkEdges {
            before: p.missing_before(
                state.last_chunk.map(|(call, _, _, next)| (call, next)),
                chunk.len(),
            ),
            starts_call: p.seq == 0,
            lost_after: p.lost_after(chunk.len()),
        });
        // A call cut at the per-call cap did not end whole: its next call follows a gap.
        state.last_chunk = place.map(|p| {
            let whole_end = p.last && p.lost_after(chunk.len()) == 0;
            (p.call_id, p.seq, whole_end, p.offset + chunk.len() as u64)
        });
        let starts_call = place.is_none_or(|p| p.seq == 0);
        if gap_before {
            // What was lost may have held a secret's name, whole or in part (`X-Amz-Signature=`,
            // `"pass` of `"password":"`, `Cook` of `Cookie:`), with its separator and value
            // arriving now: the chunk is masked from its start to the end of the line
            // ([`OpenValue::AfterLoss`]), or, on a PostgreSQL stream followed exactly, to the
            // next message. A private key already open runs on to its end line. Only a call
            // that starts with the start of an HTTP/1 message says the lost bytes were an
            // earlier message's, so nothing of them can be pending. The bytes kept from
            // before the gap are dropped: they do not join the bytes after it.
            let message_start =
                starts_call && place.is_none_or(|p| p.offset == 0) && starts_http1_message(chunk);
            state.open = match state.open {
                Some(OpenValue::Pem) => Some(OpenValue::Pem),
                _ if message_start => None,
                _ => Some(OpenValue::AfterLoss),
            };
            state.open_bytes = 0;
            state.carry.clear();
        }
        if !follows {
            if let Some(http2) = &mut state.http2 {
                http2.lose();
            }
        }
        if !state.decided {
            let mut joined = std::mem::take(&mut state.undecided);
            joined.extend_from_slice(chunk);
            match first_bytes(&joined, starts_call) {
                FirstBytes::TooFew => {
                    state.undecided = joined;
                    return redact_text(state, &mut self.room, chunk, edges);
                }
                FirstBytes::Http2(start) => {
                    let mut http2 = Box::new(Http2Direction::new(start));
                    // The bytes held while undecided: a piece of the preface or of a frame
                    // header, nothing to mask.
                    let mut held = joined[..joined.len() - chunk.len()].to_vec();
                    http2.redact(&mut held, &mut Vec::new());
                    state.http2 = Some(http2);
                    // Its DATA is read with no PostgreSQL framing (nor lost framing) from
                    // before: only the look-alike headers are searched for.
                    state.postgres = PostgresFrontend::not_postgres();
                }
                FirstBytes::Other => {}
            }
            state.decided = true;
        } else if state.http2.as_ref().is_some_and(|h| h.is_lost())
            && starts_call
            && follows
            && looks_like_frame_chain(chunk)
        {
            // Back in step after lost bytes: a write that starts with frames.
            state.http2 = Some(Box::new(Http2Direction::new(Http2Start::MidConnection)));
        }
        let Some(mut http2) = state.http2.take() else {
            return redact_text(state, &mut self.room, chunk, edges);
        };
        // An HTTP/2 stream is no PostgreSQL frontend: its text is given no gaps to lose
        // framing over (only look-alike headers are searched for in it).
        if http2.is_lost() {
            state.http2 = Some(http2);
            return redact_text(state, &mut self.room, chunk, ChunkEdges::CONTIGUOUS);
        }
        let mut text_ranges: Vec<Range<usize>> = Vec::new();
        let mut count = http2.redact(chunk, &mut text_ranges);
        state.http2 = Some(http2);
        if let [only] = text_ranges.as_slice() {
            count += redact_text(
                state,
                &mut self.room,
                &mut chunk[only.clone()],
                ChunkEdges::CONTIGUOUS,
            );
        } else if !text_ranges.is_empty() {
            let mut text: Vec<u8> = text_ranges
                .iter()
                .flat_map(|range| chunk[range.clone()].iter().copied())
                .collect();
            count += redact_text(state, &mut self.room, &mut text, ChunkEdges::CONTIGUOUS);
            let mut from = text.as_slice();
            for range in text_ranges {
                let (piece, rest) = from.split_at(range.len());
                chunk[range].copy_from_slice(piece);
                from = rest;
            }
        }
        count
    }

    /// Forgets the streams of a closed fd (a later stream on it is a new connection), the TLS
    /// ones over it included.
    pub fn forget_fd(&mut self, pid: u32, fd: i32) {
        if fd < 0 {
            return;
        }
        self.streams
            .retain(|key, state| key.pid != pid || state.fd != fd);
    }

    /// Streams tracked now.
    pub fn tracked(&self) -> usize {
        self.streams.len()
    }

    fn make_room(&mut self) {
        if self.streams.len() < MAX_STREAMS {
            return;
        }
        let Some((&oldest, _)) = self.streams.iter().min_by_key(|(_, s)| s.last_used) else {
            return;
        };
        let Some(state) = self.streams.remove(&oldest) else {
            return;
        };
        let postgres = state.postgres.forgotten();
        if state.open.is_some() || postgres.is_some() {
            if self.forgotten_order.len() >= MAX_FORGOTTEN {
                if let Some(old) = self.forgotten_order.pop_front() {
                    self.forgotten.remove(&old);
                }
            }
            let forgotten = Forgotten {
                open: state.open,
                postgres,
            };
            if self.forgotten.insert(oldest, forgotten).is_none() {
                self.forgotten_order.push_back(oldest);
            }
        }
    }
}

/// Whether `chunk` begins like an HTTP/1 message: a request line's method and space, or a
/// status line's version. Too few bytes to tell are no message start.
fn starts_http1_message(chunk: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"PATCH ",
        b"DELETE ",
        b"HEAD ",
        b"OPTIONS ",
        b"CONNECT ",
        b"TRACE ",
    ];
    chunk.starts_with(b"HTTP/1.") || METHODS.iter().any(|method| chunk.starts_with(method))
}

/// What a stream's first bytes say.
enum FirstBytes {
    /// Too few to tell (a prefix of the preface or of a SETTINGS frame header).
    TooFew,
    Http2(Http2Start),
    Other,
}

fn first_bytes(bytes: &[u8], starts_call: bool) -> FirstBytes {
    if bytes.len() < 4 && PREFACE.starts_with(bytes) {
        return FirstBytes::TooFew;
    }
    if looks_like_preface(bytes) {
        return FirstBytes::Http2(Http2Start::ClientPreface);
    }
    // A SETTINGS frame header on stream 0: length (at most 96), type 4, no flags.
    const SETTINGS_HEADER: [Option<u8>; HEADER_LEN] = [
        Some(0),
        Some(0),
        None,
        Some(4),
        Some(0),
        Some(0),
        Some(0),
        Some(0),
        Some(0),
    ];
    if bytes.len() < HEADER_LEN
        && bytes
            .iter()
            .zip(SETTINGS_HEADER)
            .all(|(&b, want)| want.is_none_or(|w| w == b))
    {
        return FirstBytes::TooFew;
    }
    if looks_like_server_settings(bytes) {
        return FirstBytes::Http2(Http2Start::ServerSettings);
    }
    if starts_call && looks_like_frame_chain(bytes) {
        return FirstBytes::Http2(Http2Start::MidConnection);
    }
    FirstBytes::Other
}

/// Buffers the byte-level rules reuse from chunk to chunk (every stream's), so scanning a chunk
/// allocates nothing: the window (`carry ++ chunk`) and its lower-case copy. The collector's
/// chunks are at most 16 KiB; a caller's larger buffer is scanned in room made for it alone.
#[derive(Debug, Default)]
struct ScanRoom {
    window: Vec<u8>,
    lower: Vec<u8>,
}

/// The room [`ScanRoom`] keeps between chunks: a window of `CARRY_BYTES` and a 16 KiB chunk.
const ROOM_KEPT: usize = CARRY_BYTES + 16 * 1024;

impl ScanRoom {
    /// Gives back what one larger buffer made it take.
    fn trim(&mut self) {
        if self.window.capacity() > ROOM_KEPT {
            self.window = Vec::new();
            self.lower = Vec::new();
        }
    }
}

/// The byte-level rules over the stream's next bytes (`carry ++ chunk`), with what is known
/// of the bytes missing around them. Every rule reads the chunk as it came; the masks are
/// written after.
fn redact_text(
    state: &mut StreamState,
    room: &mut ScanRoom,
    chunk: &mut [u8],
    edges: ChunkEdges,
) -> usize {
    let followed = state.postgres.follow_at(chunk, edges);

    // A value that began before the window still runs on.
    let mut open = None;
    let mut open_len = 0;
    if let Some(value) = state.open {
        let (mut len, mut still_open) = value.continue_in(chunk);
        if value == OpenValue::AfterLoss {
            // A PostgreSQL message starting at a known place ends what a loss left unknown.
            if let Some(&start) = followed.message_starts.iter().find(|&&at| at <= len) {
                len = start;
                still_open = None;
            }
        }
        open_len = len;
        state.open_bytes += len;
        open = still_open.filter(|_| state.open_bytes < MAX_OPEN_VALUE_BYTES);
    }

    let carried = state.carry.len();
    room.window.clear();
    room.window.extend_from_slice(&state.carry);
    room.window.extend_from_slice(chunk);
    let found = scanner::find(&room.window, &mut room.lower);
    let keep_from = room.window.len().saturating_sub(CARRY_BYTES);
    state.carry.clear();
    state.carry.extend_from_slice(&room.window[keep_from..]);
    room.trim();

    // The scan's masks first, while the chunk is as it came: one counts when it changes a
    // byte of the chunk (most chunks hold no secret, and then nothing is written).
    let mut count = usize::from(found.mask_from(carried, chunk) > 0);
    for range in followed.masks {
        chunk[range].fill(b'*');
        count += 1;
    }
    if open_len > 0 {
        chunk[..open_len].fill(b'*');
        count += 1;
    }
    if found.open.is_some() {
        open = found.open;
        state.open_bytes = 0;
    }
    state.open = open;
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"AmzSigS3cr3t20";

    fn key() -> StreamKey {
        StreamKey {
            pid: 7,
            source: PayloadSource::Socket,
            direction: Direction::Egress,
            connection: 3,
        }
    }

    /// Sends `bytes` one byte per call (as the hostile-node test's client does), the call
    /// numbered `first_call` onwards; the first call reports `lost_before` bytes lost before it.
    fn send_bytewise(
        redactor: &mut StreamRedactor,
        first_call: u64,
        lost_before: u64,
        bytes: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, &b) in bytes.iter().enumerate() {
            let place = ChunkPlace {
                call_id: first_call + i as u64,
                seq: 0,
                lost_bytes: if i == 0 { lost_before } else { 0 },
                last: true,
                offset: 0,
                total_len: 1,
            };
            let mut chunk = [b];
            redactor.redact_chunk_at(key(), 3, Some(place), &mut chunk);
            out.push(chunk[0]);
        }
        out
    }

    #[test]
    fn a_value_whose_name_was_lost_in_a_gap_is_masked_to_its_end() {
        // `Signature=` was never delivered: the kernel reports its 10 bytes on the next call.
        let mut redactor = StreamRedactor::default();
        send_bytewise(
            &mut redactor,
            0,
            0,
            b"GET /r.csv?X-Amz-Algorithm=AWS4&X-Amz-",
        );
        let after = send_bytewise(&mut redactor, 100, 10, b"AmzSigS3cr3t20 HTTP/1.1\r\n");
        assert_eq!(after, b"************************\n");
    }

    #[test]
    fn a_value_whose_name_was_lost_in_part_is_masked() {
        // The hostile-node leak: `_KEY` of `OPENAI_API_KEY` lost, then the separator and the
        // value arrive; nothing delivered says a name was there, only that bytes are missing.
        let mut redactor = StreamRedactor::default();
        send_bytewise(&mut redactor, 0, 0, br#"{"arguments":"{\"OPENAI_API"#);
        let after = send_bytewise(
            &mut redactor,
            100,
            4,
            b"\\\":\\\"EnvApiKeyS3cr3t08\\\",\\\"n\\\":1}\"}\n{\"next\":1}",
        );
        let after = String::from_utf8(after).unwrap();
        let (line, next) = after.split_once('\n').unwrap();
        assert!(line.bytes().all(|b| b == b'*'), "{after}");
        assert_eq!(next, r#"{"next":1}"#);
    }

    #[test]
    fn a_loss_before_a_call_that_starts_a_message_masks_nothing_of_it() {
        // A keep-alive connection lost the end of one request; the next request is written
        // as one call that starts with its request line: nothing of it can be a lost name's.
        let mut redactor = StreamRedactor::default();
        let mut first = *b"POST /a HTTP/1.1\r\nContent-Length: 20\r\n\r\n{\"pass";
        let whole = |call_id, lost_bytes, len| ChunkPlace {
            call_id,
            seq: 0,
            lost_bytes,
            last: true,
            offset: 0,
            total_len: len,
        };
        redactor.redact_chunk_at(key(), 3, Some(whole(1, 0, first.len() as u64)), &mut first);
        let next = b"GET /b?q=1 HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut second = *next;
        redactor.redact_chunk_at(key(), 3, Some(whole(2, 14, next.len() as u64)), &mut second);
        assert_eq!(&second, next);
    }

    #[test]
    fn without_the_gap_report_the_same_bytes_pass_as_text() {
        // The control: what the collector printed before the kernel reported gaps between
        // calls. Without the report nothing says a name was lost, and the bytes pass.
        let mut redactor = StreamRedactor::default();
        send_bytewise(
            &mut redactor,
            0,
            0,
            b"GET /r.csv?X-Amz-Algorithm=AWS4&X-Amz-",
        );
        let after = send_bytewise(&mut redactor, 100, 0, SECRET);
        assert_eq!(after, SECRET);
    }

    /// Chunk `seq` of a 100-byte call, at `offset`.
    fn place(seq: u32, offset: u64, lost_bytes: u64, last: bool) -> ChunkPlace {
        ChunkPlace {
            call_id: 9,
            seq,
            lost_bytes,
            last,
            offset,
            total_len: 100,
        }
    }

    #[test]
    fn a_gap_inside_a_call_masks_the_rest_of_the_line_and_only_that() {
        let mut redactor = StreamRedactor::default();
        let mut first = *b"{\"note\":\"hello\",\"x\":";
        redactor.redact_chunk_at(key(), 3, Some(place(0, 0, 0, false)), &mut first);
        assert_eq!(&first, b"{\"note\":\"hello\",\"x\":");
        // Chunk 1 (20 bytes at 20) was lost: chunk 2 says so with the call's lost bytes.
        let mut third = *b"hunter2 and the rest\"}";
        redactor.redact_chunk_at(key(), 3, Some(place(2, 40, 20, false)), &mut third);
        assert_eq!(&third, b"**********************");
        // The next chunk follows: the line runs on masked, and the next line is read again.
        let mut fourth = *b" plain\nwords";
        redactor.redact_chunk_at(key(), 3, Some(place(3, 62, 20, false)), &mut fourth);
        assert_eq!(&fourth, b"******\nwords");
    }

    #[test]
    fn bytes_beyond_the_cap_after_the_last_chunk_are_no_gap_before_it() {
        // A call cut at the per-call cap: its last chunk reports what is beyond it, which
        // follows the chunk; nothing of the chunk is masked.
        let mut redactor = StreamRedactor::default();
        let mut first = *b"AAAAAAAAAA";
        redactor.redact_chunk_at(key(), 3, Some(place(0, 0, 0, false)), &mut first);
        let mut last = *b"BBBBBBBBBB";
        redactor.redact_chunk_at(key(), 3, Some(place(1, 10, 80, true)), &mut last);
        assert_eq!(&last, b"BBBBBBBBBB");
        // The next call follows the 80 bytes beyond the cap: a gap before it.
        let mut next = *b"DDDD\nEEEE";
        let after_cut = ChunkPlace {
            call_id: 10,
            ..place(0, 0, 0, true)
        };
        redactor.redact_chunk_at(key(), 3, Some(after_cut), &mut next);
        assert_eq!(&next, b"****\nEEEE");
        // A single-chunk call cut the same way, on a stream of its own.
        let mut redactor = StreamRedactor::default();
        let mut only = *b"CCCCCCCCCC";
        let cut = ChunkPlace {
            call_id: 11,
            ..place(0, 0, 90, true)
        };
        redactor.redact_chunk_at(key(), 3, Some(cut), &mut only);
        assert_eq!(&only, b"CCCCCCCCCC");
    }

    /// The hostile-node test's PostgreSQL carrier: a StartupMessage (user=app, database=crm),
    /// a cleartext password message, then a query; and where the password body is.
    fn postgres_carrier() -> (Vec<u8>, Range<usize>) {
        let params = b"user\0app\0database\0crm\0\0";
        let mut stream = ((8 + params.len()) as u32).to_be_bytes().to_vec();
        stream.extend(196_608u32.to_be_bytes());
        stream.extend(params);
        let password = b"PgWirePassS3cr3t12\0";
        stream.push(b'p');
        stream.extend(((4 + password.len()) as u32).to_be_bytes());
        let at = stream.len();
        stream.extend(password);
        stream.push(b'Q');
        stream.extend(13u32.to_be_bytes());
        stream.extend(b"SELECT 1\0");
        (stream, at..at + password.len())
    }

    /// Sends `bytes` one byte per call, the calls at `dropped` lost (reported on the next
    /// delivered call, as the kernel does); returns each delivered byte as redacted, with its
    /// place in `bytes`.
    fn send_bytewise_dropping(bytes: &[u8], dropped: &[usize]) -> Vec<(usize, u8)> {
        let mut redactor = StreamRedactor::default();
        let mut out = Vec::new();
        let mut missing = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if dropped.contains(&i) {
                missing += 1;
                continue;
            }
            let place = ChunkPlace {
                call_id: i as u64,
                seq: 0,
                lost_bytes: missing,
                last: true,
                offset: 0,
                total_len: 1,
            };
            missing = 0;
            let mut chunk = [b];
            redactor.redact_chunk_at(key(), 3, Some(place), &mut chunk);
            out.push((i, chunk[0]));
        }
        out
    }

    fn assert_password_masked(out: &[(usize, u8)], password: &Range<usize>, dropped: &[usize]) {
        for &(at, b) in out {
            assert!(
                !password.contains(&at) || b == b'*',
                "password byte {at} passed with {dropped:?} dropped: {:?}",
                String::from_utf8_lossy(&out.iter().map(|&(_, b)| b).collect::<Vec<_>>())
            );
        }
    }

    #[test]
    fn the_hostile_postgres_carrier_with_any_byte_dropped_never_passes_its_password() {
        let (stream, password) = postgres_carrier();
        let query_at = password.end;
        for i in 0..stream.len() {
            let out = send_bytewise_dropping(&stream, &[i]);
            assert_password_masked(&out, &password, &[i]);
            // A byte lost inside the startup parameters or the password body moves the
            // framing on exactly: the query after it is followed, not masked.
            if (8..password.start - 5).contains(&i) || password.contains(&i) {
                let query: Vec<u8> = out
                    .iter()
                    .filter(|&&(at, _)| at >= query_at)
                    .map(|&(_, b)| b)
                    .collect();
                assert_eq!(&query[5..], b"SELECT 1\0", "byte {i} dropped");
            }
        }
        // Without any loss, the same.
        let out = send_bytewise_dropping(&stream, &[]);
        assert_password_masked(&out, &password, &[]);
        assert!(out.ends_with(&[(stream.len() - 1, 0)]));
    }

    #[test]
    fn the_hostile_postgres_carrier_with_any_two_bytes_dropped_never_passes_its_password() {
        let (stream, password) = postgres_carrier();
        for i in 0..stream.len() {
            for j in i + 1..stream.len() {
                let out = send_bytewise_dropping(&stream, &[i, j]);
                assert_password_masked(&out, &password, &[i, j]);
            }
        }
    }

    #[test]
    fn a_forgotten_postgres_stream_still_masks_its_password() {
        // The StartupMessage is followed, then more streams than are tracked push it out;
        // its password message comes after.
        let mut redactor = StreamRedactor::default();
        let (stream, password) = postgres_carrier();
        let at_call = |call_id| ChunkPlace {
            call_id,
            seq: 0,
            lost_bytes: 0,
            last: true,
            offset: 0,
            total_len: 0,
        };
        let startup_end = password.start - 5;
        let mut startup = stream[..startup_end].to_vec();
        let place = ChunkPlace {
            total_len: startup.len() as u64,
            ..at_call(1)
        };
        redactor.redact_chunk_at(key(), 3, Some(place), &mut startup);
        for pid in 0..MAX_STREAMS as u32 + 1 {
            let other = StreamKey {
                pid: 1000 + pid,
                ..key()
            };
            redactor.redact_chunk(other, 3, &mut b"GET / HTTP/1.1\r\n\r\n".to_vec());
        }
        let mut rest = stream[startup_end..].to_vec();
        let place = ChunkPlace {
            total_len: rest.len() as u64,
            ..at_call(2)
        };
        redactor.redact_chunk_at(key(), 3, Some(place), &mut rest);
        assert_eq!(
            &rest[5..5 + password.len()],
            &vec![b'*'; password.len()][..]
        );
    }
}
