//! The PostgreSQL password message: a frontend `p` message (cleartext password, MD5 hash,
//! SASL initial response or SASL response) on a stream that began with a StartupMessage.
//!
//! Byte patterns cannot find it (it is length-prefixed binary with no name next to the value),
//! so this follows the frontend's message framing from the start of the stream, across chunks
//! of any size, and masks the body of every `p` message. Hand-written: the framing is two
//! length-prefixed layouts (startup, then type + length) and needs to resume mid-header.
//!
//! When the start of a connection was never seen (the kernel dropped events under load, or the
//! collector attached mid-connection), the framing cannot be followed; a password message
//! header is then looked for on its own: `p` and a big-endian length under
//! [`MAX_UNFRAMED_PASSWORD`], whose high bytes are zero — five bytes that text protocols do not
//! hold (three of them NUL) and that a PostgreSQL client sends before its password.

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

/// Where a stream is in the frontend protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PostgresFrontend {
    /// Reading the first 8 bytes (length and code) of the stream.
    #[default]
    Start,
    StartHeader {
        header: [u8; 8],
        have: u8,
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
}

impl PostgresFrontend {
    fn other() -> Self {
        PostgresFrontend::Other {
            tail: [0; 7],
            have: 0,
        }
    }

    /// In a stream that is not PostgreSQL (yet): a StartupMessage header anywhere starts a new
    /// connection's framing (an fd or `SSL*` reused after a close the collector did not see).
    /// Returns where in `chunk` the framing resumes, if it does.
    fn find_startup(&mut self, chunk: &[u8]) -> Option<usize> {
        let PostgresFrontend::Other { tail, have } = self else {
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
                .then(|| (at + 4, PostgresFrontend::Startup { remaining: len - 8 }))
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
                        PostgresFrontend::MessageBody {
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
            *self = state;
            return Some(end - kept);
        }
        let keep = window.len().min(7);
        let mut new_tail = [0; 7];
        new_tail[..keep].copy_from_slice(&window[window.len() - keep..]);
        *self = PostgresFrontend::Other {
            tail: new_tail,
            have: keep as u8,
        };
        None
    }
}

impl PostgresFrontend {
    /// Follows `chunk` (original bytes) and returns the ranges to mask.
    pub fn follow(&mut self, chunk: &[u8]) -> Vec<std::ops::Range<usize>> {
        // A write that is a whole StartupMessage header starts a new connection, even on a
        // stream key reused from an earlier one (an `SSL*` address, an fd whose close was lost).
        let between_messages = matches!(
            self,
            PostgresFrontend::Other { .. } | PostgresFrontend::MessageHeader { have: 0, .. }
        );
        if between_messages && starts_like_startup(chunk) {
            *self = PostgresFrontend::Start;
        }
        let mut masks = Vec::new();
        let mut i = 0;
        while i < chunk.len() {
            match self {
                PostgresFrontend::Other { .. } => match self.find_startup(&chunk[i..]) {
                    Some(resume) => i += resume,
                    None => break,
                },
                PostgresFrontend::Start => {
                    *self = PostgresFrontend::StartHeader {
                        header: [0; 8],
                        have: 0,
                    };
                }
                PostgresFrontend::StartHeader { header, have } => {
                    header[usize::from(*have)] = chunk[i];
                    *have += 1;
                    i += 1;
                    if *have == 8 {
                        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
                        let code = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
                        *self = match code {
                            PROTOCOL_3 if (8..=MAX_STARTUP).contains(&len) => {
                                PostgresFrontend::Startup { remaining: len - 8 }
                            }
                            SSL_REQUEST | GSSENC_REQUEST if len == 8 => PostgresFrontend::Start,
                            _ => PostgresFrontend::other(),
                        };
                    }
                }
                PostgresFrontend::Startup { remaining } => {
                    let take = (*remaining as usize).min(chunk.len() - i);
                    i += take;
                    *remaining -= take as u32;
                    if *remaining == 0 {
                        *self = PostgresFrontend::MessageHeader {
                            header: [0; 5],
                            have: 0,
                        };
                    }
                }
                PostgresFrontend::MessageHeader { header, have } => {
                    header[usize::from(*have)] = chunk[i];
                    *have += 1;
                    i += 1;
                    if *have == 5 {
                        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
                        *self = if !(4..=1 << 30).contains(&len) || !header[0].is_ascii_alphabetic()
                        {
                            PostgresFrontend::other()
                        } else if len == 4 {
                            PostgresFrontend::MessageHeader {
                                header: [0; 5],
                                have: 0,
                            }
                        } else {
                            PostgresFrontend::MessageBody {
                                remaining: len - 4,
                                mask: header[0] == b'p',
                            }
                        };
                    }
                }
                PostgresFrontend::MessageBody { remaining, mask } => {
                    let take = (*remaining as usize).min(chunk.len() - i);
                    if *mask {
                        masks.push(i..i + take);
                    }
                    i += take;
                    *remaining -= take as u32;
                    if *remaining == 0 {
                        *self = PostgresFrontend::MessageHeader {
                            header: [0; 5],
                            have: 0,
                        };
                    }
                }
            }
        }
        masks
    }
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
        assert!(matches!(state, PostgresFrontend::Other { .. }));
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

    proptest::proptest! {
        /// Any bytes, in any pieces: no panic, and masks stay inside the piece they mask.
        #[test]
        fn arbitrary_streams_never_panic(
            pieces in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 0..32)
        ) {
            let mut state = PostgresFrontend::default();
            for piece in &pieces {
                for range in state.follow(piece) {
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
        assert!(matches!(state, PostgresFrontend::Other { .. }));
    }
}
