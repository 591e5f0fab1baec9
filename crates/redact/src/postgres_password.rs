//! The PostgreSQL password message: a frontend `p` message (cleartext password, MD5 hash,
//! SASL initial response or SASL response) on a stream that began with a StartupMessage.
//!
//! Byte patterns cannot find it (it is length-prefixed binary with no name next to the value),
//! so this follows the frontend's message framing from the start of the stream, across chunks
//! of any size, and masks the body of every `p` message. Hand-written: the framing is two
//! length-prefixed layouts (startup, then type + length), needs to resume mid-header, and has
//! to be told where bytes are missing, which no parser library models.
//!
//! When the start of a connection was never seen (the collector attached mid-connection), the
//! framing cannot be followed; a password message header is then looked for on its own: `p`
//! and a big-endian length under [`MAX_UNFRAMED_PASSWORD`], whose high bytes are zero — five
//! bytes that text protocols do not hold (three of them NUL) and that a PostgreSQL client sends
//! before its password.
//!
//! # Lost bytes
//!
//! Under a flood the kernel drops records; the collector reports how many bytes of a stream
//! are missing before a chunk (and, on a call's last chunk, beyond the per-call cap after it),
//! exactly per stream ([`Gap`]). Reading on as if the bytes were adjacent would misread every
//! length after the hole, and the password's header with them, so every gap is applied to the
//! framing:
//!
//! - A gap of known size wholly inside a StartupMessage's parameters or a message body moves
//!   the framing on by that many bytes and following goes on exactly (a `p` body stays
//!   masked).
//! - A gap that covers a header (the startup header's length, a message's type or length), or
//!   whose size is unknown, loses the framing of a stream that is a PostgreSQL frontend: the
//!   follower is then `Lost` and masks every byte until a call starts, with nothing missing
//!   before it, with the header of a message a client sends (a frontend type letter and a
//!   length, and the headers after it in the chunk chain the same way) or with a StartupMessage /
//!   SSLRequest / GSSENCRequest header (a new connection, whatever was missing); following
//!   resumes there. Clients start their writes at message boundaries, so a client writing
//!   whole messages is followed again at its next write, and one writing a byte per call
//!   stays masked. Masking a stream too much is the failure chosen; passing a password is
//!   not.
//! - A gap inside the first 8 bytes leaves some of them known. The stream is taken as
//!   PostgreSQL when every known byte agrees with a StartupMessage (protocol 3.0, length up to
//!   10000), an SSLRequest or a GSSENCRequest header and at least two of the four code bytes
//!   are known (HTTP cannot agree: its first bytes are never NUL, 3, 4, 0xd2 or 0x16); with the
//!   whole length known it goes on exactly, otherwise it is `Lost`. When no known byte
//!   disagrees but fewer than two code bytes are known (or the whole start was lost), nothing
//!   says what the stream is: it is `Lost` too, but only until a call's first chunk shows
//!   bytes no PostgreSQL client starts a write with (5 bytes that are not the header of a
//!   message a client sends, and not the start of a StartupMessage header: an HTTP request
//!   line, a JSON line, a binary length prefix), where the stream is taken to be something
//!   else. So an HTTP or binary stream with an early loss is masked up to its next write, not
//!   for good, while a PostgreSQL client writing one byte per call is masked for good. The
//!   limit: a client whose start was lost and whose next write begins inside a message is
//!   taken for something else, and only an intact password header is then found.
//! - A framing break (a message header that cannot be one) on a stream known to be PostgreSQL
//!   (it began with a StartupMessage, SSLRequest or GSSENCRequest header, whole or with enough
//!   of it known) means the stream is not (or no longer) PostgreSQL when nothing was lost on
//!   it: an fd reused after a close the collector did not see. It goes back to looking for a
//!   StartupMessage or an unframed password header, as before. When the collector has reported
//!   a gap on it since it began, the break more likely means a count was off: the kernel keeps
//!   the per-stream gap counts in an LRU map, which forgets under the very floods that drop
//!   records, so a forgotten gap reaches userspace silently, and a framing followed on after
//!   it has no known position. It is then `Lost` (mask until a call starts with a header), so
//!   a password after a silent gap is masked; the cost, on a flooded node only, is masking a
//!   reused fd's next protocol until its close is seen. A stream that only looked like
//!   PostgreSQL (a header found in the middle of other bytes) goes back to looking either way:
//!   it may well not be PostgreSQL, and masking it for good is what is to be avoided.
//! - A stream the redactor forgets (more in flight than it tracks) while inside the framing
//!   comes back `Lost` ([`PostgresFrontend::forgotten`]): what it sent meanwhile is unknown.

use std::ops::Range;
use std::sync::LazyLock;

use memchr::memmem::Finder;

/// Protocol 3.0 in a StartupMessage.
const PROTOCOL_3: u32 = 196_608;
/// Searchers built once: every chunk of every stream not known to be PostgreSQL is searched for
/// a connection's start and an unframed password message.
static STARTUP_CODE: LazyLock<Finder<'static>> =
    LazyLock::new(|| Finder::new(&PROTOCOL_3_CODE).into_owned());
const PROTOCOL_3_CODE: [u8; 4] = PROTOCOL_3.to_be_bytes();
/// A password message's type and the high bytes of its length (at most
/// `MAX_UNFRAMED_PASSWORD`), which a `p` in text is not followed by.
static PASSWORD_START: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"p\0\0"));

/// Where `needle` starts in `tail ++ chunk`, in order, as positions in those bytes joined,
/// without joining them: a start in `tail` is found in the tail and the chunk's first bytes.
fn starts_in_joined<'a>(
    needle: &'a Finder<'static>,
    tail: &[u8],
    chunk: &'a [u8],
) -> impl Iterator<Item = usize> + 'a {
    let kept = tail.len();
    let mut edge = [0u8; 16];
    let from_chunk = chunk
        .len()
        .min(needle.needle().len().saturating_sub(1))
        .min(edge.len() - kept);
    edge[..kept].copy_from_slice(tail);
    edge[kept..kept + from_chunk].copy_from_slice(&chunk[..from_chunk]);
    // At most a few: the needles are 3 and 4 bytes and the tail 7.
    let in_tail: Vec<usize> = needle
        .find_iter(&edge[..kept + from_chunk])
        .filter(|&at| at < kept)
        .collect();
    // Then on from where the last of them ends, as one search of the joined bytes goes on
    // (it reports no two overlapping starts).
    let resume = in_tail
        .last()
        .map_or(0, |&at| (at + needle.needle().len()).saturating_sub(kept));
    in_tail.into_iter().chain(
        needle
            .find_iter(&chunk[resume..])
            .map(move |at| at + resume + kept),
    )
}

/// SSLRequest and GSSENCRequest: the client waits for one byte, then (when refused) sends its
/// StartupMessage on the same stream.
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
/// Longest StartupMessage accepted (the server's own limit is 10000).
const MAX_STARTUP: u32 = 10_000;
/// Longest password message recognised without the connection's start (a cleartext
/// password, an MD5 hash or a SASL message are all far shorter).
const MAX_UNFRAMED_PASSWORD: u32 = 4_096;
/// Longest message length a typed message header may state (the server refuses longer).
const MAX_MESSAGE: u32 = 1 << 30;

/// Bytes of a stream missing at one place, as the collector reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// Nothing is missing.
    None,
    /// Exactly this many bytes are missing.
    Exact(u64),
    /// Bytes are missing; how many is not known.
    Unknown,
}

impl Gap {
    /// `n` bytes missing (none when `n` is 0).
    pub fn bytes(n: u64) -> Gap {
        if n == 0 {
            Gap::None
        } else {
            Gap::Exact(n)
        }
    }
}

/// What is known around a chunk: bytes missing before and after it, and whether a write or
/// read call starts with it (where a client starts a message, and where lost framing can be
/// found again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkEdges {
    /// Bytes of the stream missing right before the chunk.
    pub before: Gap,
    /// The chunk is the first of its call.
    pub starts_call: bool,
    /// Bytes missing right after the chunk that no later chunk reports (on a call's last
    /// chunk, what is beyond the per-call cap).
    pub lost_after: u64,
}

impl ChunkEdges {
    /// A chunk that follows the previous one and starts a call: all a caller that does not
    /// know where its chunks stand can say.
    pub const CONTIGUOUS: ChunkEdges = ChunkEdges {
        before: Gap::None,
        starts_call: true,
        lost_after: 0,
    };
}

/// Where a stream is in the frontend protocol, and what is known of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostgresFrontend {
    state: State,
    /// The stream is a PostgreSQL frontend: it began with a StartupMessage, SSLRequest or
    /// GSSENCRequest header, seen whole or with enough of it to tell (see the module doc).
    /// Framing found in the middle of other bytes does not count.
    known: bool,
    /// Bytes were reported missing since the stream began (see the module doc on breaks).
    gapped: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum State {
    /// Reading the first 8 bytes (length and code) of the stream.
    #[default]
    Start,
    /// `missing` has a bit set for each of the 8 header bytes lost in a gap.
    StartHeader {
        header: [u8; 8],
        have: u8,
        missing: u8,
    },
    /// Inside the StartupMessage's parameters.
    Startup {
        remaining: u32,
    },
    /// Between or inside typed messages.
    MessageHeader {
        header: [u8; 5],
        have: u8,
    },
    MessageBody {
        remaining: u32,
        mask: bool,
    },
    /// Not (or no longer) inside a PostgreSQL frontend stream; `tail` holds the last bytes
    /// seen, so a StartupMessage header split across writes is still found.
    Other {
        tail: [u8; 7],
        have: u8,
    },
    /// The framing was lost to missing bytes: every byte is masked until a call starts with a
    /// header (see the module doc).
    Lost,
}

/// What the first bytes of a call say, for a stream whose framing is lost (a StartupMessage
/// header is looked for first, on any stream between messages).
enum CallStart {
    /// Message headers that chain to the end of the chunk.
    Messages,
    /// Bytes no PostgreSQL client starts a write with.
    NotPostgres,
    /// Too few bytes to tell.
    TooShort,
}

impl PostgresFrontend {
    fn other() -> State {
        State::Other {
            tail: [0; 7],
            have: 0,
        }
    }

    fn message_header() -> State {
        State::MessageHeader {
            header: [0; 5],
            have: 0,
        }
    }

    /// A follower for a stream known to be something else: it only looks for the headers
    /// (a StartupMessage, an unframed password message) that start PostgreSQL framing.
    pub fn not_postgres() -> PostgresFrontend {
        PostgresFrontend {
            state: Self::other(),
            known: false,
            gapped: false,
        }
    }

    /// The stream is not (or no longer) PostgreSQL.
    fn go_other(&mut self) {
        self.state = Self::other();
        self.known = false;
        self.gapped = false;
    }

    /// A new connection starts on the stream.
    fn restart(&mut self) {
        self.state = State::Start;
        self.known = false;
        self.gapped = false;
    }

    /// What to remember of a stream the redactor forgets (too many in flight), for when it
    /// comes back: inside PostgreSQL framing, the framing is lost with it.
    pub fn forgotten(&self) -> Option<PostgresFrontend> {
        let framed = match self.state {
            State::Other { .. } => false,
            State::Start => self.known,
            _ => true,
        };
        framed.then_some(PostgresFrontend {
            state: State::Lost,
            known: self.known,
            gapped: true,
        })
    }

    /// In a stream that is not PostgreSQL (yet): a StartupMessage header anywhere starts a new
    /// connection's framing (an fd or `SSL*` reused after a close the collector did not see).
    /// Returns where in `chunk` the framing resumes, if it does.
    fn find_startup(&mut self, chunk: &[u8]) -> Option<usize> {
        let State::Other { tail, have } = self.state else {
            return None;
        };
        // Searched as `tail ++ chunk` (positions below are in those bytes), without joining
        // them: a chunk is up to 16 KiB and the tail at most 7 bytes.
        let kept = usize::from(have);
        let tail = &tail[..kept];
        let len = kept + chunk.len();
        let byte = |at: usize| {
            if at < kept {
                tail[at]
            } else {
                chunk[at - kept]
            }
        };
        let be_u32 =
            |at: usize| u32::from_be_bytes([byte(at), byte(at + 1), byte(at + 2), byte(at + 3)]);
        let startup = starts_in_joined(&STARTUP_CODE, tail, chunk).find_map(|at| {
            if at < 4 || at + 4 <= kept {
                return None;
            }
            let len = be_u32(at - 4);
            // Lazily: `len - 8` only once the length is known to be at least 8.
            (8..=MAX_STARTUP)
                .contains(&len)
                .then(|| (at + 4, State::Startup { remaining: len - 8 }))
        });
        // A password message whose connection start was not seen (see the module doc).
        let password = starts_in_joined(&PASSWORD_START, tail, chunk).find_map(|at| {
            if at + 5 > len || at + 5 <= kept {
                return None;
            }
            let message_len = be_u32(at + 1);
            (byte(at + 1) == 0
                && byte(at + 2) == 0
                && (6..=MAX_UNFRAMED_PASSWORD).contains(&message_len))
            .then(|| {
                (
                    at + 5,
                    State::MessageBody {
                        remaining: message_len - 4,
                        mask: true,
                    },
                )
            })
        });
        let first = match (startup, password) {
            (Some(s), Some(p)) => Some(if s.0 <= p.0 { s } else { p }),
            (s, p) => s.or(p),
        };
        if let Some((end, state)) = first {
            self.state = state;
            return Some(end - kept);
        }
        let keep = len.min(7);
        let mut new_tail = [0; 7];
        for (i, at) in (len - keep..len).enumerate() {
            new_tail[i] = byte(at);
        }
        self.state = State::Other {
            tail: new_tail,
            have: keep as u8,
        };
        None
    }

    /// Applies `gap` (bytes missing at this point of the stream) to the framing.
    fn lose(&mut self, gap: Gap) {
        let n = match gap {
            Gap::None | Gap::Exact(0) => return,
            Gap::Exact(n) => Some(n),
            Gap::Unknown => None,
        };
        self.gapped = true;
        match &mut self.state {
            State::Start => match n {
                Some(n) if n < 8 => {
                    self.state = State::StartHeader {
                        header: [0; 8],
                        have: n as u8,
                        missing: (1u8 << n) - 1,
                    }
                }
                // Nothing of the header is left: what the stream is, nothing says.
                _ => self.state = State::Lost,
            },
            State::StartHeader {
                header,
                have,
                missing,
            } => {
                let room = 8 - u64::from(*have);
                match n {
                    Some(n) if n < room => {
                        for at in *have..*have + n as u8 {
                            *missing |= 1 << at;
                        }
                        *have += n as u8;
                    }
                    _ => {
                        for at in *have..8 {
                            *missing |= 1 << at;
                        }
                        let (header, missing) = (*header, *missing);
                        self.decide_start(header, missing);
                        // What is left of the gap lies after the header.
                        self.lose(match n {
                            Some(n) => Gap::bytes(n - room),
                            None => Gap::Unknown,
                        });
                    }
                }
            }
            State::Startup { remaining } | State::MessageBody { remaining, .. } => match n {
                Some(n) if n <= u64::from(*remaining) => {
                    *remaining -= n as u32;
                    if *remaining == 0 {
                        self.state = Self::message_header();
                    }
                }
                _ => self.state = State::Lost,
            },
            State::MessageHeader { .. } => self.state = State::Lost,
            // The bytes kept do not join the bytes after the gap.
            State::Other { have, .. } => *have = 0,
            State::Lost => {}
        }
    }

    /// The first 8 bytes are in (`missing`: those lost in a gap): what the stream is.
    fn decide_start(&mut self, header: [u8; 8], missing: u8) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let code = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if missing == 0 {
            self.state = match code {
                PROTOCOL_3 if (8..=MAX_STARTUP).contains(&len) => {
                    State::Startup { remaining: len - 8 }
                }
                SSL_REQUEST | GSSENC_REQUEST if len == 8 => State::Start,
                _ => return self.go_other(),
            };
            self.known = true;
            return;
        }
        let known_at = |at: usize| missing & (1 << at) == 0;
        let agrees = |len: u32, code: u32| {
            let mut want = [0; 8];
            want[..4].copy_from_slice(&len.to_be_bytes());
            want[4..].copy_from_slice(&code.to_be_bytes());
            (0..8).all(|at| !known_at(at) || header[at] == want[at])
        };
        let startup = (8..=MAX_STARTUP).any(|len| agrees(len, PROTOCOL_3));
        let request = agrees(8, SSL_REQUEST) || agrees(8, GSSENC_REQUEST);
        if !startup && !request {
            return self.go_other();
        }
        // The codes differ in every byte, so with a code byte known at most one kind agrees.
        let code_bytes_known = (4..8).filter(|&at| known_at(at)).count();
        if code_bytes_known < 2 {
            // Too little to tell; `Lost` until a call says what the stream is.
            self.state = State::Lost;
            return;
        }
        self.known = true;
        self.state = if request {
            // Its length is 8 whatever was lost: the StartupMessage comes next.
            State::Start
        } else if (0..4).all(known_at) {
            State::Startup { remaining: len - 8 }
        } else {
            State::Lost
        };
    }

    /// Follows `chunk` (original bytes), the next bytes of the stream with nothing missing
    /// around it, and returns the ranges to mask.
    #[cfg(test)]
    pub fn follow(&mut self, chunk: &[u8]) -> Vec<Range<usize>> {
        self.follow_at(chunk, ChunkEdges::CONTIGUOUS).masks
    }

    /// Follows `chunk` (original bytes), with what is known of the bytes around it, and
    /// returns the ranges to mask and where messages start.
    pub fn follow_at(&mut self, chunk: &[u8], edges: ChunkEdges) -> Followed {
        self.lose(edges.before);
        let mut message_starts = Vec::new();
        if edges.starts_call {
            let lost = self.state == State::Lost;
            let between_messages = lost
                || matches!(
                    self.state,
                    State::Other { .. }
                        | State::MessageHeader { have: 0, .. }
                        | State::StartHeader { .. }
                );
            if between_messages && starts_like_startup(chunk) {
                // A write that is a whole StartupMessage header starts a new connection, even
                // on a stream key reused from an earlier one (an `SSL*` address, an fd whose
                // close was lost), and even after a gap: the kernel reports what a closed fd
                // lost on the first record of the next connection on that fd, which a header
                // cut short by that gap would then be misread with.
                self.restart();
                message_starts.push(0);
            } else if lost {
                match call_start(chunk) {
                    CallStart::Messages if edges.before == Gap::None => {
                        self.state = Self::message_header();
                    }
                    // Lost without knowing the stream was PostgreSQL: a write no client of it
                    // would start says it is something else.
                    CallStart::NotPostgres if !self.known => self.go_other(),
                    _ => {}
                }
            }
        }
        // A gap that ended exactly at a message's end: the chunk starts the next one.
        if self.known && self.state == Self::message_header() {
            message_starts.push(0);
        }
        let mut masks = Vec::new();
        let mut i = 0;
        while i < chunk.len() {
            match &mut self.state {
                State::Lost => {
                    masks.push(i..chunk.len());
                    break;
                }
                State::Other { .. } => match self.find_startup(&chunk[i..]) {
                    Some(resume) => i += resume,
                    None => break,
                },
                State::Start => {
                    self.state = State::StartHeader {
                        header: [0; 8],
                        have: 0,
                        missing: 0,
                    };
                }
                State::StartHeader {
                    header,
                    have,
                    missing,
                } => {
                    header[usize::from(*have)] = chunk[i];
                    *have += 1;
                    i += 1;
                    if *have == 8 {
                        let (header, missing) = (*header, *missing);
                        self.decide_start(header, missing);
                    }
                }
                State::Startup { remaining } => {
                    let take = (*remaining as usize).min(chunk.len() - i);
                    i += take;
                    *remaining -= take as u32;
                    if *remaining == 0 {
                        self.state = Self::message_header();
                        message_starts.push(i);
                    }
                }
                State::MessageHeader { header, have } => {
                    header[usize::from(*have)] = chunk[i];
                    *have += 1;
                    i += 1;
                    if *have == 5 {
                        let password = header[0] == b'p';
                        self.state = match message_length(header) {
                            Some(4) => {
                                message_starts.push(i);
                                Self::message_header()
                            }
                            Some(len) => State::MessageBody {
                                remaining: len - 4,
                                mask: password,
                            },
                            // A framing break on a known stream after lost bytes: the
                            // framing was lost (see the module doc), from this header on.
                            None if self.known && self.gapped => {
                                i = i.saturating_sub(5);
                                State::Lost
                            }
                            None => {
                                self.go_other();
                                continue;
                            }
                        };
                    }
                }
                State::MessageBody { remaining, mask } => {
                    let take = (*remaining as usize).min(chunk.len() - i);
                    if *mask {
                        masks.push(i..i + take);
                    }
                    i += take;
                    *remaining -= take as u32;
                    if *remaining == 0 {
                        self.state = Self::message_header();
                        message_starts.push(i);
                    }
                }
            }
        }
        self.lose(Gap::bytes(edges.lost_after));
        if !self.known {
            message_starts.clear();
        }
        Followed {
            masks,
            message_starts,
        }
    }
}

/// What following a chunk found.
#[derive(Debug, Default)]
pub struct Followed {
    /// Ranges of the chunk to mask (password message bodies, bytes of lost framing).
    pub masks: Vec<Range<usize>>,
    /// Offsets in the chunk (its length included: the next chunk) where a message of a stream
    /// known to be PostgreSQL starts with its framing followed exactly: bytes from there on are
    /// read in a known place, whatever was lost before.
    pub message_starts: Vec<usize>,
}

/// The length a typed message header states, if it is one.
fn message_length(header: &[u8]) -> Option<u32> {
    let [kind, a, b, c, d, ..] = *header else {
        return None;
    };
    let len = u32::from_be_bytes([a, b, c, d]);
    (kind.is_ascii_alphabetic() && (4..=MAX_MESSAGE).contains(&len)).then_some(len)
}

/// The length a frontend message header states, if it is one a client sends: framing is
/// resumed only on these (text rarely holds one of these letters followed by a byte under
/// `@`; the fixed-length ones must state 4).
fn frontend_message_length(header: &[u8]) -> Option<u32> {
    let len = message_length(header)?;
    match header[0] {
        // Sync, Flush, CopyDone, Terminate.
        b'S' | b'H' | b'c' | b'X' => (len == 4).then_some(len),
        // Bind, Close, CopyData, CopyFail, Describe, Execute, FunctionCall, Parse, the
        // password messages, Query.
        b'B' | b'C' | b'd' | b'f' | b'D' | b'E' | b'F' | b'P' | b'p' | b'Q' => Some(len),
        _ => None,
    }
}

/// What a call's first chunk says about where PostgreSQL framing could resume.
fn call_start(chunk: &[u8]) -> CallStart {
    // A start that could still be a StartupMessage header (its length's high byte is 0,
    // which no message type is).
    if chunk.len() < 5 || (chunk.len() < 8 && chunk[0] == 0) {
        return CallStart::TooShort;
    }
    let mut at = 0;
    while let Some(header) = chunk.get(at..at + 5) {
        match frontend_message_length(header) {
            Some(len) => at += 1 + len as usize,
            None => return CallStart::NotPostgres,
        }
    }
    CallStart::Messages
}

/// Whether `chunk` begins with a StartupMessage, SSLRequest or GSSENCRequest header.
fn starts_like_startup(chunk: &[u8]) -> bool {
    let [a, b, c, d, e, f, g, h, ..] = *chunk else {
        return false;
    };
    let len = u32::from_be_bytes([a, b, c, d]);
    let code = u32::from_be_bytes([e, f, g, h]);
    (code == PROTOCOL_3 && (8..=MAX_STARTUP).contains(&len))
        || (len == 8 && (code == SSL_REQUEST || code == GSSENC_REQUEST))
}

#[cfg(test)]
pub(crate) mod tests;
