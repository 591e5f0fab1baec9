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

/// Protocol 3.0 in a StartupMessage.
const PROTOCOL_3: u32 = 196_608;
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
        let State::Other { tail, have } = &self.state else {
            return None;
        };
        let kept = usize::from(*have);
        let mut window = tail[..kept].to_vec();
        window.extend_from_slice(chunk);
        let code = PROTOCOL_3.to_be_bytes();
        let startup = memchr::memmem::find_iter(&window, &code).find_map(|at| {
            if at < 4 || at + 4 <= kept {
                return None;
            }
            let len = u32::from_be_bytes([
                window[at - 4],
                window[at - 3],
                window[at - 2],
                window[at - 1],
            ]);
            // Lazily: `len - 8` only once the length is known to be at least 8.
            (8..=MAX_STARTUP)
                .contains(&len)
                .then(|| (at + 4, State::Startup { remaining: len - 8 }))
        });
        // A password message whose connection start was not seen (see the module doc).
        let password = memchr::memchr_iter(b'p', &window).find_map(|at| {
            let header = window.get(at..at + 5)?;
            if at + 5 <= kept {
                return None;
            }
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
            (header[1] == 0 && header[2] == 0 && (6..=MAX_UNFRAMED_PASSWORD).contains(&len)).then(
                || {
                    (
                        at + 5,
                        State::MessageBody {
                            remaining: len - 4,
                            mask: true,
                        },
                    )
                },
            )
        });
        let first = match (startup, password) {
            (Some(s), Some(p)) => Some(if s.0 <= p.0 { s } else { p }),
            (s, p) => s.or(p),
        };
        if let Some((end, state)) = first {
            self.state = state;
            return Some(end - kept);
        }
        let keep = window.len().min(7);
        let mut new_tail = [0; 7];
        new_tail[..keep].copy_from_slice(&window[window.len() - keep..]);
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
        self.follow_at(chunk, ChunkEdges::CONTIGUOUS)
    }

    /// Follows `chunk` (original bytes), with what is known of the bytes around it, and
    /// returns the ranges to mask.
    pub fn follow_at(&mut self, chunk: &[u8], edges: ChunkEdges) -> Vec<Range<usize>> {
        self.lose(edges.before);
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
                    }
                }
                State::MessageHeader { header, have } => {
                    header[usize::from(*have)] = chunk[i];
                    *have += 1;
                    i += 1;
                    if *have == 5 {
                        let password = header[0] == b'p';
                        self.state = match message_length(header) {
                            Some(4) => Self::message_header(),
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
                    }
                }
            }
        }
        self.lose(Gap::bytes(edges.lost_after));
        masks
    }
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
pub(crate) mod tests {
    use super::*;
    use proptest::strategy::Strategy as _;

    /// A StartupMessage for `user`/`database`, as libpq sends it.
    pub(crate) fn startup_message(user: &str) -> Vec<u8> {
        let mut body = PROTOCOL_3.to_be_bytes().to_vec();
        for part in ["user", user, "database", "app"] {
            body.extend_from_slice(part.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut message = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        message.extend(body);
        message
    }

    /// A typed frontend message.
    pub(crate) fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut message = vec![kind];
        message.extend(((body.len() + 4) as u32).to_be_bytes());
        message.extend_from_slice(body);
        message
    }

    #[test]
    fn password_messages_are_masked_at_any_split() {
        let mut stream = SSL_REQUEST.to_be_bytes().to_vec();
        stream.splice(0..0, 8u32.to_be_bytes());
        stream.extend(startup_message("app"));
        let password_at = stream.len() + 5;
        stream.extend(message(b'p', b"pg-Secret-123\0"));
        stream.extend(message(b'Q', b"SELECT 1\0"));
        for split in 0..=stream.len() {
            let mut state = PostgresFrontend::default();
            let mut out = stream.clone();
            let (a, b) = out.split_at_mut(split);
            for r in state.follow(&stream[..split]) {
                a[r].fill(b'*');
            }
            for r in state.follow(&stream[split..]) {
                b[r].fill(b'*');
            }
            assert_eq!(
                &out[password_at..password_at + 14],
                b"**************",
                "split at {split}"
            );
            assert!(out.ends_with(b"SELECT 1\0"), "split at {split}");
        }
    }

    #[test]
    fn a_reused_stream_key_starting_a_new_connection_is_followed() {
        let mut state = PostgresFrontend::default();
        state.follow(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(state.state, State::Other { .. }));
        let mut stream = startup_message("app");
        let at = stream.len() + 5;
        stream.extend(message(b'p', b"hunter2\0"));
        let masks = state.follow(&stream);
        assert_eq!(masks, vec![at..at + 8]);
    }

    #[test]
    fn a_new_connection_after_an_unseen_close_is_followed_byte_by_byte() {
        let mut state = PostgresFrontend::default();
        state.follow(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut stream = startup_message("app");
        let at = stream.len() + 5;
        stream.extend(message(b'p', b"hunter2\0"));
        let mut out = stream.clone();
        for (i, byte) in stream.iter().enumerate() {
            for r in state.follow(std::slice::from_ref(byte)) {
                assert_eq!(r, 0..1);
                out[i] = b'*';
            }
        }
        assert_eq!(&out[at..at + 8], b"********");
    }

    /// The connection's start was lost (kernel drops under load): the password message is
    /// still found by its header, byte by byte or whole.
    #[test]
    fn a_password_message_without_its_connection_start_is_masked() {
        let mut stream = startup_message("app");
        let password_message = message(b'p', b"PgWirePassS3cr3t12\0");
        // The first 10 bytes of the startup message were never delivered.
        stream.drain(..10);
        let at = stream.len() + 5;
        stream.extend(&password_message);
        stream.extend(message(b'Q', b"SELECT 1\0"));
        for one_byte_writes in [false, true] {
            let mut state = PostgresFrontend::default();
            let mut out = stream.clone();
            if one_byte_writes {
                for (i, byte) in stream.iter().enumerate() {
                    for r in state.follow(std::slice::from_ref(byte)) {
                        assert_eq!(r, 0..1);
                        out[i] = b'*';
                    }
                }
            } else {
                for r in state.follow(&stream) {
                    out[r].fill(b'*');
                }
            }
            assert_eq!(
                &out[at..at + 19],
                b"*******************",
                "{one_byte_writes}"
            );
            assert!(out.ends_with(b"SELECT 1\0"));
        }
    }

    /// Runs `pieces` (bytes, and what is missing around them) through a fresh follower;
    /// returns the bytes as they leave it and its state.
    fn follow_pieces(pieces: &[(&[u8], ChunkEdges)]) -> (Vec<u8>, PostgresFrontend) {
        let mut state = PostgresFrontend::default();
        let mut out = Vec::new();
        for (bytes, edges) in pieces {
            let mut piece = bytes.to_vec();
            for range in state.follow_at(bytes, *edges) {
                piece[range].fill(b'*');
            }
            out.extend(piece);
        }
        (out, state)
    }

    /// A call's first chunk with `before` missing before it.
    fn after(before: Gap) -> ChunkEdges {
        ChunkEdges {
            before,
            ..ChunkEdges::CONTIGUOUS
        }
    }

    const CALL: ChunkEdges = ChunkEdges::CONTIGUOUS;
    /// A chunk of a call that started earlier.
    const INSIDE: ChunkEdges = ChunkEdges {
        before: Gap::None,
        starts_call: false,
        lost_after: 0,
    };

    #[test]
    fn a_gap_inside_the_password_body_keeps_it_masked_and_framing_exact() {
        let startup = startup_message("app");
        let password = message(b'p', b"pg-Secret-123\0");
        let query = message(b'Q', b"SELECT 1\0");
        // `pg-S` arrives, `ecr` is lost, the rest follows, then a query.
        let (out, _) = follow_pieces(&[
            (&startup, CALL),
            (&password[..9], CALL),
            (&password[12..], after(Gap::Exact(3))),
            (&query, CALL),
        ]);
        let tail = password.len() - 12;
        let expected_end = [&b"****"[..], &vec![b'*'; tail], &query].concat();
        assert!(out.ends_with(&expected_end), "{out:?}");
    }

    #[test]
    fn a_gap_inside_a_query_body_resumes_framing_exactly() {
        let startup = startup_message("app");
        let first = message(b'Q', b"SELECT 'a long first statement'\0");
        let second = message(b'Q', b"SELECT 2\0");
        let password = message(b'p', b"late-Secret\0");
        // Ten bytes of the first query are lost, in its text.
        let (out, state) = follow_pieces(&[
            (&startup, CALL),
            (&first[..12], CALL),
            (&first[22..], after(Gap::Exact(10))),
            (&second, INSIDE),
            (&password, INSIDE),
        ]);
        assert_eq!(state.state, PostgresFrontend::message_header());
        let expected_end = [&second[..], &password[..5], b"************"].concat();
        assert!(out.ends_with(&expected_end), "{out:?}");
    }

    #[test]
    fn a_gap_over_a_message_header_masks_until_a_call_starts_with_one() {
        let startup = startup_message("app");
        let query = message(b'Q', b"SELECT 1\0");
        let password = message(b'p', b"pg-Secret-123\0");
        let later = message(b'Q', b"SELECT 2\0");
        // The query's header and first byte are lost: where the password message starts,
        // nothing says, even within the same call.
        let stream = [&query[6..], &password[..]].concat();
        let (out, state) = follow_pieces(&[(&startup, CALL), (&stream, after(Gap::Exact(6)))]);
        assert!(out.ends_with(&vec![b'*'; stream.len()]), "{out:?}");
        assert_eq!(state.state, State::Lost);
        // Chunks inside a call, and a call start right after another gap, stay masked; a call
        // starting with a header and nothing missing before it resumes the framing.
        let (out, state) = follow_pieces(&[
            (&startup, CALL),
            (&stream, after(Gap::Exact(6))),
            (&later, INSIDE),
            (&later, after(Gap::Exact(1))),
            (&later, CALL),
            (&password, CALL),
        ]);
        let masked_len = stream.len() + 2 * later.len();
        let expected = [
            &startup[..],
            &vec![b'*'; masked_len],
            &later,
            &password[..5],
            b"**************",
        ]
        .concat();
        assert_eq!(out, expected);
        assert_eq!(state.state, PostgresFrontend::message_header());
    }

    #[test]
    fn a_gap_of_unknown_size_masks_until_a_call_starts_with_a_header() {
        let startup = startup_message("app");
        let password = message(b'p', b"pg-Secret-123\0");
        let query = message(b'Q', b"SELECT 1\0");
        let (out, _) = follow_pieces(&[
            (&startup[..20], CALL),
            // Unknown bytes lost: even a call starting with a header does not resume.
            (&password, after(Gap::Unknown)),
            (b"  ", CALL),
            (&query, CALL),
        ]);
        let expected = [&startup[..20], &vec![b'*'; password.len() + 2], &query].concat();
        assert_eq!(out, expected);
        // A message body: the same.
        let (out, _) = follow_pieces(&[
            (&startup, CALL),
            (&query[..7], CALL),
            (&password, after(Gap::Unknown)),
        ]);
        assert!(out.ends_with(&vec![b'*'; password.len()]));
    }

    #[test]
    fn a_new_connection_ends_lost_framing() {
        let startup = startup_message("app");
        let password = message(b'p', b"pg-Secret-123\0");
        let mut ssl = 8u32.to_be_bytes().to_vec();
        ssl.extend(SSL_REQUEST.to_be_bytes());
        let (out, state) = follow_pieces(&[
            (&startup, CALL),
            (b"Q\0\0", after(Gap::Exact(2))),
            (&ssl, after(Gap::Exact(40))),
            (&startup, CALL),
            (&password, CALL),
        ]);
        assert!(out.ends_with(&[&ssl[..], &startup, &password[..5], b"**************"].concat()));
        assert_eq!(state.state, PostgresFrontend::message_header());
    }

    #[test]
    fn a_connection_reported_with_the_previous_ones_loss_is_followed() {
        // An fd closed after losing 3 bytes is reused; the kernel reports those 3 bytes on the
        // new connection's first record.
        let mut stream = startup_message("app");
        let at = stream.len() + 5;
        stream.extend(message(b'p', b"pg-Secret-123\0"));
        stream.extend(message(b'Q', b"SELECT 1\0"));
        let (out, _) = follow_pieces(&[(&stream, after(Gap::Exact(3)))]);
        assert_eq!(&out[at..at + 14], b"**************");
        assert!(out.ends_with(b"SELECT 1\0"));
    }

    /// The first 8 bytes with byte(s) `lost` missing, one byte per call.
    fn start_with_lost(stream: &[u8], lost: &[usize]) -> (Vec<u8>, PostgresFrontend) {
        let mut state = PostgresFrontend::default();
        let mut out = Vec::new();
        let mut missing = 0;
        for (at, &byte) in stream.iter().enumerate() {
            if lost.contains(&at) {
                missing += 1;
                continue;
            }
            let mut piece = [byte];
            for range in state.follow_at(&piece.clone(), after(Gap::bytes(missing))) {
                piece[range].fill(b'*');
            }
            missing = 0;
            out.push(piece[0]);
        }
        (out, state)
    }

    #[test]
    fn a_start_header_with_lost_bytes_is_postgres_when_its_known_bytes_agree() {
        let mut stream = startup_message("app");
        let at = stream.len() + 5;
        stream.extend(message(b'p', b"pg-Secret-123\0"));
        stream.extend(message(b'Q', b"SELECT 1\0"));
        // A length byte lost: the code says PostgreSQL, the length is unknown.
        let (out, state) = start_with_lost(&stream, &[2]);
        assert_eq!(state.state, State::Lost);
        assert!(out[7..].iter().all(|&b| b == b'*'));
        // A code byte or two lost: the rest agrees, the length is known, framing goes on.
        for lost in [&[5][..], &[4, 5], &[6, 7], &[4, 7]] {
            let (out, state) = start_with_lost(&stream, lost);
            let at = at - lost.len();
            assert_eq!(&out[at..at + 14], b"**************", "{lost:?}");
            assert!(out.ends_with(b"SELECT 1\0"), "{lost:?}");
            assert!(state.known);
        }
        // Three code bytes lost: too little to tell, so masked until a call says more.
        let (out, state) = start_with_lost(&stream, &[4, 5, 6]);
        assert_eq!(state.state, State::Lost);
        assert!(!state.known);
        assert!(out[5..].iter().all(|&b| b == b'*'));
        // An SSLRequest with a byte lost: the StartupMessage after it is followed.
        let mut ssl = 8u32.to_be_bytes().to_vec();
        ssl.extend(SSL_REQUEST.to_be_bytes());
        ssl.extend(&stream);
        let (out, _) = start_with_lost(&ssl, &[6]);
        assert_eq!(&out[at + 7..at + 21], b"**************");
        assert!(out.ends_with(b"SELECT 1\0"));
    }

    #[test]
    fn http_and_binary_streams_with_an_early_loss_are_not_masked_for_good() {
        let request = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";
        // Bytes of the first 8 lost: the known ones are text, which no header agrees with.
        for lost in [&[0][..], &[1, 2, 3], &[4, 5, 6], &[0, 1, 2, 3, 4, 5]] {
            let (out, state) = start_with_lost(request, lost);
            assert!(matches!(state.state, State::Other { .. }), "{lost:?}");
            assert!(!out.contains(&b'*'), "{lost:?}");
        }
        // The whole first write lost: nothing says what the stream is until the next write,
        // which no PostgreSQL client would start with.
        let (out, state) = follow_pieces(&[(request, after(Gap::Exact(300))), (request, CALL)]);
        assert_eq!(out, [&request[..], request].concat());
        assert!(matches!(state.state, State::Other { .. }));
        // A length-prefixed binary protocol whose start was lost up to the middle of a call:
        // masked up to its next write, which no PostgreSQL client would start with.
        let frame = [0, 0, 0, 12, 0x10, 0x20, 0x30, 0x40, 1, 2, 3, 4];
        let mid_call = ChunkEdges {
            before: Gap::Exact(16),
            ..INSIDE
        };
        let (out, state) =
            follow_pieces(&[(&frame[4..], mid_call), (&frame, CALL), (&frame, CALL)]);
        assert_eq!(out, [&[b'*'; 8][..], &frame, &frame].concat());
        assert!(matches!(state.state, State::Other { .. }));
        // Its first write partly lost: the code bytes that arrive are not PostgreSQL's.
        let (out, state) = follow_pieces(&[(&frame[3..], after(Gap::Exact(3))), (&frame, CALL)]);
        assert_eq!(out, [&frame[3..], &frame].concat());
        assert!(matches!(state.state, State::Other { .. }));
    }

    #[test]
    fn a_framing_break_after_lost_bytes_loses_the_framing() {
        let startup = startup_message("app");
        let query = message(b'Q', b"SELECT 'some text'\0");
        let password = message(b'p', b"pg-Secret-123\0");
        // Framing followed exactly over a reported gap; a break after it means a count was
        // off (a gap the kernel forgot): what follows is masked until a call starts with a
        // header.
        let broken = [&b"Zz\x7f\x7f\x7f\x7fmore"[..], &password].concat();
        let (out, state) = follow_pieces(&[
            (&startup, CALL),
            (&query[..8], CALL),
            (&query[10..], after(Gap::Exact(2))),
            (&broken, INSIDE),
        ]);
        assert!(out.ends_with(&vec![b'*'; broken.len()]), "{out:?}");
        assert_eq!(state.state, State::Lost);
        // Without any reported gap, a break says the stream is something else: only the
        // look-alike password header is found in it.
        let (out, state) = follow_pieces(&[(&startup, CALL), (&query, CALL), (&broken, INSIDE)]);
        let expected_end = [&broken[..15], b"**************"].concat();
        assert!(out.ends_with(&expected_end), "{out:?}");
        assert!(!state.known);
    }

    #[test]
    fn bytes_beyond_the_cap_move_the_framing_on() {
        let startup = startup_message("app");
        let query = message(b'Q', b"SELECT 'a long statement cut at the cap'\0");
        let password = message(b'p', b"pg-Secret-123\0");
        // A call cut at the cap inside a body: the next call is followed exactly.
        let cut = ChunkEdges {
            lost_after: (query.len() - 10) as u64,
            ..CALL
        };
        let (out, _) = follow_pieces(&[(&startup, CALL), (&query[..10], cut), (&password, CALL)]);
        assert!(out.ends_with(&[&password[..5], b"**************"].concat()));
        // Cut beyond the body: the next header is lost with it.
        let cut = ChunkEdges {
            lost_after: (query.len() - 10 + 3) as u64,
            ..CALL
        };
        let (out, state) = follow_pieces(&[
            (&startup, CALL),
            (&query[..10], cut),
            (&password[3..], INSIDE),
        ]);
        assert!(out.ends_with(&vec![b'*'; password.len() - 3]));
        assert_eq!(state.state, State::Lost);
    }

    #[test]
    fn a_forgotten_stream_inside_framing_comes_back_lost() {
        let mut state = PostgresFrontend::default();
        state.follow(&startup_message("app"));
        let forgotten = state.forgotten().expect("inside framing");
        assert_eq!(forgotten.state, State::Lost);
        assert!(forgotten.known);
        let mut other = PostgresFrontend::default();
        other.follow(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(other.forgotten(), None);
    }

    proptest::proptest! {
        /// Any bytes, in any pieces: no panic, and masks stay inside the piece they mask.
        #[test]
        fn arbitrary_streams_never_panic(
            pieces in proptest::collection::vec(
                (
                    proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
                    proptest::prop_oneof![
                        proptest::prelude::Just(Gap::None),
                        proptest::prelude::Just(Gap::Unknown),
                        (0u64..20).prop_map(Gap::Exact),
                        proptest::prelude::any::<u64>().prop_map(Gap::Exact),
                    ],
                    proptest::prelude::any::<bool>(),
                    proptest::prop_oneof![0u64..20, proptest::prelude::any::<u64>()],
                ),
                0..32,
            )
        ) {
            let mut state = PostgresFrontend::default();
            for (piece, before, starts_call, lost_after) in &pieces {
                let edges = ChunkEdges { before: *before, starts_call: *starts_call, lost_after: *lost_after };
                for range in state.follow_at(piece, edges) {
                    proptest::prop_assert!(range.end <= piece.len());
                }
            }
        }

        /// Headers that look like a startup or a password message with lengths too small to
        /// hold themselves (the subtraction that would underflow).
        #[test]
        fn short_lengths_in_look_alike_headers_never_panic(len in 0u32..16, junk in proptest::prelude::any::<u8>()) {
            let mut state = PostgresFrontend::default();
            state.follow(b"GET / HTTP/1.1\r\n\r\n");
            let mut bytes = vec![junk];
            bytes.extend(len.to_be_bytes());
            bytes.extend(PROTOCOL_3.to_be_bytes());
            bytes.push(b'p');
            bytes.extend(len.to_be_bytes());
            bytes.extend([0; 8]);
            state.follow(&bytes);
        }
    }

    #[test]
    fn other_protocols_are_left_alone() {
        let mut state = PostgresFrontend::default();
        assert!(state
            .follow(b"GET / HTTP/1.1\r\nHost: x\r\n\r\npassword")
            .is_empty());
        assert!(matches!(state.state, State::Other { .. }));
    }
}
