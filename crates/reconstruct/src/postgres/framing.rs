//! Message framing of one direction: tag byte and big-endian length, with checked arithmetic,
//! bounded buffers, and resynchronisation on a plausible boundary when capture starts
//! mid-connection.

#[allow(unused_imports)]
use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Frontend,
    Backend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Nothing seen yet: the first byte tells a startup packet (0x00) from a typed message.
    Initial,
    /// An untyped packet (startup, SSL/GSS request) is next.
    Startup,
    /// The one-byte answer to an SSL or GSS encryption request is next.
    EncryptionAnswer,
    /// Tagged messages.
    Typed,
    /// Looking for a plausible message boundary.
    Unsynced,
    /// TLS or GSS ciphertext: counted, not parsed.
    Encrypted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Untyped {
    Startup,
    SslRequest,
    GssEncRequest,
    Cancel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FrameKind {
    Untyped(Untyped),
    Typed(u8),
    /// `S`/`G` (accepted) or `N` (refused) after an SSL or GSS request.
    EncryptionAnswer(bool),
}

#[derive(Debug)]
pub(super) struct Frame {
    pub(super) kind: FrameKind,
    /// The body (after tag and length), at most the kind's keep limit.
    pub(super) body: Vec<u8>,
    /// Part of the body was not kept, or (at the end of a stream) never arrived.
    pub(super) truncated: bool,
    pub(super) ts_ns: u64,
}

/// A message whose header was read and whose body is still arriving.
#[derive(Debug)]
pub(super) struct PartialBody {
    pub(super) kind: FrameKind,
    pub(super) kept: Vec<u8>,
    pub(super) keep_limit: usize,
    pub(super) remaining: usize,
    /// Body bytes beyond `keep_limit` were skipped.
    pub(super) dropped: bool,
    pub(super) ts_ns: u64,
}

/// Splits one direction's bytes into messages.
#[derive(Debug)]
pub(super) struct Framer {
    pub(super) side: Side,
    pub(super) mode: Mode,
    /// Unconsumed bytes start at `buf[start]`; `buf[0]` is byte `base` of the stream.
    pub(super) buf: Vec<u8>,
    pub(super) start: usize,
    pub(super) base: u64,
    /// (stream offset where a feed ended, its timestamp), for feeds not yet consumed.
    pub(super) feeds: VecDeque<(u64, u64)>,
    pub(super) body: Option<PartialBody>,
    /// Bytes of each `DataRow` body kept (0: rows are counted and skipped); the session sets
    /// it while the answer to a catalogue query runs ([`super::catalogue`]).
    pub(super) keep_row_bytes: usize,
}

impl Framer {
    /// Upper bound of the heap this framer holds.
    pub(super) fn held_bytes(&self) -> usize {
        self.buf.capacity()
            + self.feeds.len() * 16
            + self.body.as_ref().map_or(0, |b| b.kept.capacity())
    }

    pub(super) fn new(side: Side) -> Self {
        Framer {
            side,
            mode: Mode::Initial,
            buf: Vec::new(),
            start: 0,
            base: 0,
            feeds: VecDeque::new(),
            body: None,
            keep_row_bytes: 0,
        }
    }

    pub(super) fn push(&mut self, bytes: &[u8], ts_ns: u64) {
        if bytes.is_empty() {
            return;
        }
        self.buf.extend_from_slice(bytes);
        let end = self.base.saturating_add(self.buf.len() as u64);
        self.feeds.push_back((end, ts_ns));
    }

    /// Timestamp of the feed that brought the next unconsumed byte.
    pub(super) fn ts_at_start(&mut self) -> u64 {
        let position = self.base.saturating_add(self.start as u64);
        while self.feeds.len() > 1 && self.feeds.front().is_some_and(|(end, _)| *end <= position) {
            self.feeds.pop_front();
        }
        self.feeds.front().map_or(0, |(_, ts)| *ts)
    }

    pub(super) fn available(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    pub(super) fn consume(&mut self, n: usize, session: &mut PostgresSession, unparsed: bool) {
        let n = n.min(self.available().len());
        self.start += n;
        if unparsed {
            session.unparsed_bytes = session.unparsed_bytes.saturating_add(n as u64);
        }
    }

    /// Drops consumed bytes so the buffer holds only what is still needed.
    pub(super) fn compact(&mut self) {
        if self.start > 0 {
            let start = self.start.min(self.buf.len());
            self.buf.drain(..start);
            self.base = self.base.saturating_add(start as u64);
            self.start = 0;
        }
    }

    /// The next complete message, or `None` when more bytes are needed.
    pub(super) fn next_frame(&mut self, session: &mut PostgresSession) -> Option<Frame> {
        loop {
            if self.body.is_some() {
                return self.continue_body();
            }
            let data = self.available();
            if data.is_empty() {
                return None;
            }
            match self.mode {
                Mode::Encrypted => {
                    let n = data.len();
                    self.consume(n, session, true);
                    return None;
                }
                Mode::Initial => {
                    self.mode = if self.side == Side::Frontend && data[0] == 0 {
                        Mode::Startup
                    } else {
                        Mode::Typed
                    };
                }
                Mode::EncryptionAnswer => {
                    let answer = data[0];
                    match answer {
                        b'S' | b'G' | b'N' => {
                            let ts_ns = self.ts_at_start();
                            self.consume(1, session, false);
                            return Some(Frame {
                                kind: FrameKind::EncryptionAnswer(answer != b'N'),
                                body: Vec::new(),
                                truncated: false,
                                ts_ns,
                            });
                        }
                        // Old servers and some poolers answer with an ErrorResponse instead.
                        _ => self.mode = Mode::Typed,
                    }
                }
                Mode::Startup => {
                    if data.len() < 8 {
                        return None;
                    }
                    let Some(kind) = classify_untyped(data) else {
                        self.mode = Mode::Unsynced;
                        continue;
                    };
                    // classify_untyped checked 8 <= len <= MAX_STARTUP_LEN.
                    let len = be_u32(data, 0).unwrap_or(8) as usize;
                    let keep = if kind == Untyped::Startup {
                        MAX_STARTUP_LEN
                    } else {
                        0
                    };
                    self.begin_body(FrameKind::Untyped(kind), len.saturating_sub(8), keep);
                    self.consume(8, session, false);
                }
                Mode::Typed => {
                    if data.len() < 5 {
                        return None;
                    }
                    let tag = data[0];
                    let len = be_u32(data, 1).unwrap_or(0) as usize;
                    if !length_fits(self.side, tag, len) {
                        self.mode = Mode::Unsynced;
                        continue;
                    }
                    let keep = match (self.side, tag) {
                        (Side::Backend, b'D') => self.keep_row_bytes,
                        _ => keep_limit(self.side, tag),
                    };
                    self.begin_body(FrameKind::Typed(tag), len.saturating_sub(4), keep);
                    self.consume(5, session, false);
                }
                Mode::Unsynced => match find_boundary(self.side, data) {
                    Boundary::At(offset) => {
                        self.consume(offset, session, true);
                        self.mode = Mode::Typed;
                    }
                    Boundary::NeedMore(offset) => {
                        self.consume(offset, session, true);
                        return None;
                    }
                },
            }
        }
    }

    pub(super) fn begin_body(&mut self, kind: FrameKind, body_len: usize, keep_limit: usize) {
        let ts_ns = self.ts_at_start();
        self.body = Some(PartialBody {
            kind,
            kept: Vec::with_capacity(body_len.min(keep_limit).min(64 * 1024)),
            keep_limit,
            remaining: body_len,
            dropped: false,
            ts_ns,
        });
    }

    /// Moves available bytes into the message body in progress; the frame once complete.
    pub(super) fn continue_body(&mut self) -> Option<Frame> {
        let available = self.buf.len().saturating_sub(self.start);
        let body = self.body.as_mut()?;
        let take = available.min(body.remaining);
        let keep = take.min(body.keep_limit.saturating_sub(body.kept.len()));
        if let Some(bytes) = self.buf.get(self.start..self.start.saturating_add(keep)) {
            body.kept.extend_from_slice(bytes);
        }
        body.dropped |= keep < take;
        self.start = self.start.saturating_add(take);
        body.remaining -= take;
        if body.remaining > 0 {
            return None;
        }
        let body = self.body.take()?;
        Some(Frame {
            kind: body.kind,
            truncated: body.dropped,
            body: body.kept,
            ts_ns: body.ts_ns,
        })
    }

    /// At the end of the stream: the message that was cut off, with what arrived of it.
    pub(super) fn take_incomplete(&mut self) -> Option<Frame> {
        let body = self.body.take()?;
        Some(Frame {
            kind: body.kind,
            body: body.kept,
            truncated: true,
            ts_ns: body.ts_ns,
        })
    }
}

pub(super) fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

/// The kind of an untyped packet (length, 4-byte code), when `data` starts with a plausible one.
pub(super) fn classify_untyped(data: &[u8]) -> Option<Untyped> {
    let len = be_u32(data, 0)? as usize;
    let code = be_u32(data, 4)?;
    if !(8..=MAX_STARTUP_LEN).contains(&len) {
        return None;
    }
    match code {
        SSL_REQUEST_CODE if len == 8 => Some(Untyped::SslRequest),
        GSSENC_REQUEST_CODE if len == 8 => Some(Untyped::GssEncRequest),
        // Protocol 3.0 has a 4-byte secret key; 3.2 allows up to 256 bytes.
        CANCEL_REQUEST_CODE if (16..=268).contains(&len) => Some(Untyped::Cancel),
        // Protocol 3.x: major 3, minor 0..=2 today; a user key is the least a startup holds.
        _ if code >> 16 == 3 && (code & 0xffff) < 16 && len > 8 => Some(Untyped::Startup),
        _ => None,
    }
}

/// Bounds on the length field (which counts itself) of each message type, per direction;
/// false for tags the direction does not send.
pub(super) fn length_fits(side: Side, tag: u8, len: usize) -> bool {
    let (min, max) = match (side, tag) {
        // Sync, Flush, Terminate, CopyDone.
        (Side::Frontend, b'S' | b'H' | b'X' | b'c') => (4, 4),
        (Side::Frontend, b'Q') => (5, MAX_MESSAGE_LEN),
        (Side::Frontend, b'P') => (8, MAX_MESSAGE_LEN),
        (Side::Frontend, b'B') => (12, MAX_MESSAGE_LEN),
        (Side::Frontend, b'E') => (9, 4 + 64 + 4),
        (Side::Frontend, b'D' | b'C') => (6, 4 + 1 + 64),
        (Side::Frontend, b'p' | b'd' | b'f' | b'F') => (4, MAX_MESSAGE_LEN),
        // ParseComplete, BindComplete, CloseComplete, NoData, EmptyQuery, PortalSuspended,
        // CopyDone.
        (Side::Backend, b'1' | b'2' | b'3' | b'n' | b'I' | b's' | b'c') => (4, 4),
        (Side::Backend, b'Z') => (5, 5),
        (Side::Backend, b'K') => (12, 4 + 4 + 256),
        (Side::Backend, b'R') => (8, MAX_MESSAGE_LEN),
        (Side::Backend, b'S') => (6, 64 * 1024),
        (Side::Backend, b'C') => (5, 4 + 256),
        (Side::Backend, b'E' | b'N') => (5, MAX_MESSAGE_LEN),
        (Side::Backend, b'D' | b'T' | b't') => (6, MAX_MESSAGE_LEN),
        (Side::Backend, b'A') => (10, MAX_MESSAGE_LEN),
        (Side::Backend, b'G' | b'H' | b'W') => (7, MAX_MESSAGE_LEN),
        (Side::Backend, b'd' | b'V' | b'v') => (4, MAX_MESSAGE_LEN),
        _ => return false,
    };
    (min..=max).contains(&len)
}

/// Body bytes worth keeping for a message type: SQL text, names, tags, errors, an answer's
/// column names. Row data and bind parameters are skipped.
pub(super) fn keep_limit(side: Side, tag: u8) -> usize {
    match (side, tag) {
        (Side::Frontend, b'Q' | b'P') => SQL_TEXT_LIMIT,
        // Portal and statement names come first; the parameter values after them are not kept.
        (Side::Frontend, b'B') => 2 * 64,
        (Side::Frontend, b'E' | b'C') => 64 + 4,
        (Side::Backend, b'C' | b'R' | b'Z') => 256,
        (Side::Backend, b'S') => 1024,
        (Side::Backend, b'E' | b'N') => 4096,
        (Side::Backend, b'T') => 4096,
        _ => 0,
    }
}

pub(super) enum Boundary {
    /// A plausible message starts at this offset.
    At(usize),
    /// Bytes before this offset can be dropped; more data is needed to judge the rest.
    NeedMore(usize),
}

/// Scans for the first offset where a plausible message starts: a valid header, a complete
/// body of the right shape, and after it another valid header or the end of the data.
pub(super) fn find_boundary(side: Side, data: &[u8]) -> Boundary {
    for offset in 0..data.len() {
        let rest = &data[offset..];
        if rest.len() < 5 {
            return Boundary::NeedMore(offset);
        }
        let tag = rest[0];
        let len = be_u32(rest, 1).unwrap_or(0) as usize;
        if !length_fits(side, tag, len) || len > RESYNC_MAX_LEN {
            continue;
        }
        let Some(body) = rest.get(5..1 + len) else {
            return Boundary::NeedMore(offset);
        };
        if !body_is_plausible(side, tag, body) {
            continue;
        }
        let next = &rest[1 + len..];
        if next.is_empty() {
            return Boundary::At(offset);
        }
        if next.len() < 5 {
            return Boundary::NeedMore(offset);
        }
        let next_len = be_u32(next, 1).unwrap_or(0) as usize;
        if length_fits(side, next[0], next_len) {
            return Boundary::At(offset);
        }
    }
    Boundary::NeedMore(data.len())
}

/// Shape checks for the message types that are cheap to check.
pub(super) fn body_is_plausible(side: Side, tag: u8, body: &[u8]) -> bool {
    let one_string = |body: &[u8]| {
        body.last() == Some(&0)
            && memchr::memchr(0, body) == Some(body.len() - 1)
            && std::str::from_utf8(&body[..body.len() - 1]).is_ok()
    };
    match (side, tag) {
        (Side::Frontend, b'Q') => one_string(body),
        (Side::Frontend, b'P') => memchr::memchr_iter(0, body).count() >= 2,
        (Side::Frontend, b'E') => memchr::memchr(0, body).is_some_and(|n| n + 5 == body.len()),
        (Side::Frontend, b'D' | b'C') => matches!(body.first(), Some(b'S' | b'P')),
        (Side::Backend, b'Z') => matches!(body.first(), Some(b'I' | b'T' | b'E')),
        (Side::Backend, b'C') => {
            one_string(body) && body.first().is_some_and(|b| b.is_ascii_uppercase())
        }
        (Side::Backend, b'E' | b'N') => {
            body.first().is_some_and(|b| b.is_ascii_alphabetic()) && body.last() == Some(&0)
        }
        (Side::Backend, b'D') => {
            let columns = body.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
            columns.is_some_and(|c| usize::from(c) * 4 <= body.len() - 2)
        }
        _ => true,
    }
}

/// Reads fields from a message body without ever reading past it.
pub(super) struct BodyReader<'a> {
    pub(super) body: &'a [u8],
    pub(super) at: usize,
}

impl<'a> BodyReader<'a> {
    pub(super) fn new(body: &'a [u8]) -> Self {
        BodyReader { body, at: 0 }
    }

    pub(super) fn rest(&self) -> &'a [u8] {
        self.body.get(self.at..).unwrap_or_default()
    }

    pub(super) fn byte(&mut self) -> Option<u8> {
        let byte = *self.rest().first()?;
        self.at += 1;
        Some(byte)
    }

    pub(super) fn u32(&mut self) -> Option<u32> {
        let value = be_u32(self.rest(), 0)?;
        self.at += 4;
        Some(value)
    }

    /// A NUL-terminated string; `None` when the terminator is missing.
    pub(super) fn cstr(&mut self) -> Option<String> {
        let rest = self.rest();
        let end = memchr::memchr(0, rest)?;
        self.at += end + 1;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    /// A NUL-terminated string, or everything left when the terminator was cut off.
    pub(super) fn text_prefix(&mut self) -> String {
        let rest = self.rest();
        match memchr::memchr(0, rest) {
            Some(end) => {
                self.at += end + 1;
                String::from_utf8_lossy(&rest[..end]).into_owned()
            }
            None => {
                self.at = self.body.len();
                // A cut may split a UTF-8 sequence: drop the broken tail, keep the rest.
                let valid = match std::str::from_utf8(rest) {
                    Ok(text) => text.len(),
                    Err(e) if e.error_len().is_none() => e.valid_up_to(),
                    Err(_) => rest.len(),
                };
                String::from_utf8_lossy(&rest[..valid]).into_owned()
            }
        }
    }
}
