//! permessage-deflate (RFC 7692): what the handshake negotiated, and each direction's
//! bounded inflater.
//!
//! A compressed message (RSV1 on its first frame) is raw DEFLATE whose final empty stored
//! block's `00 00 ff ff` tail the sender removed; the receiver appends it again and inflates.
//! Unless the sender's side negotiated `*_no_context_takeover`, a direction's messages share
//! one LZ77 window: each message may refer to bytes of earlier ones, so a direction's
//! inflater lives as long as the connection. `*_max_window_bits` only lets a side use a
//! smaller window; flate2's raw inflater always keeps the largest (32 KiB), which decodes any
//! smaller one, so the bits are recorded but need nothing else.
//!
//! Inflation is bounded: a message that inflates beyond the limit (a decompression bomb)
//! stops there with an error and the prefix kept, never more memory. The direction's window
//! is then out of step with the sender's, so the inflater starts afresh and says so: a later
//! message that refers to the lost history fails to inflate (flagged corrupt) instead of
//! decoding wrongly.

use flate2::{Decompress, FlushDecompress, Status};

/// What the server's `Sec-WebSocket-Extensions` accepted (its answer is what is in effect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Negotiated {
    pub deflate: bool,
    pub client_no_context_takeover: bool,
    pub server_no_context_takeover: bool,
    pub client_max_window_bits: Option<u8>,
    pub server_max_window_bits: Option<u8>,
}

impl Negotiated {
    /// Reads the server's `Sec-WebSocket-Extensions` value: the first `permessage-deflate`
    /// offer it accepted, with its parameters. Anything else (or nothing) means no
    /// compression.
    pub fn from_response_header(value: Option<&str>) -> Negotiated {
        let mut negotiated = Negotiated::default();
        let Some(value) = value else {
            return negotiated;
        };
        let Some(extension) = value
            .split(',')
            .find(|e| e.split(';').next().map(str::trim) == Some("permessage-deflate"))
        else {
            return negotiated;
        };
        negotiated.deflate = true;
        for parameter in extension.split(';').skip(1) {
            let (name, bits) = match parameter.split_once('=') {
                Some((name, value)) => (name.trim(), value.trim().trim_matches('"').parse().ok()),
                None => (parameter.trim(), None),
            };
            match name {
                "client_no_context_takeover" => negotiated.client_no_context_takeover = true,
                "server_no_context_takeover" => negotiated.server_no_context_takeover = true,
                "client_max_window_bits" => negotiated.client_max_window_bits = bits,
                "server_max_window_bits" => negotiated.server_max_window_bits = bits,
                _ => {}
            }
        }
        negotiated
    }
}

/// Why a message did not inflate whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates beyond the limit: the first `limit` bytes are kept.
    TooLarge { limit: usize },
    /// The compressed bytes are not DEFLATE (or refer to history this inflater lost).
    Corrupt(String),
}

impl std::fmt::Display for InflateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InflateError::TooLarge { limit } => {
                write!(f, "compressed message inflates beyond {limit} bytes")
            }
            InflateError::Corrupt(reason) => write!(f, "compressed message corrupt: {reason}"),
        }
    }
}

/// One direction's inflater.
pub struct Inflater {
    decompress: Decompress,
    /// The sender keeps its window across messages.
    takeover: bool,
    /// The window was reset after a failure while the sender kept its own: later messages
    /// may refer to bytes this inflater never saw.
    history_lost: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("takeover", &self.takeover)
            .field("history_lost", &self.history_lost)
            .finish()
    }
}

/// The tail the sender stripped from each message (RFC 7692 §7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The first output buffer is four times the compressed size within these bounds; it then
/// doubles, capped at the limit. (flate2 zeroes the spare capacity it is given on every call,
/// so a large first buffer for a small message costs more than the inflation.)
const MIN_STEP: usize = 256;
const STEP: usize = 64 << 10;

/// What an inflater holds besides its output: flate2's raw inflate state and 32 KiB window.
pub const INFLATER_BYTES: usize = 48 << 10;

impl Inflater {
    pub fn new(takeover: bool) -> Self {
        Self {
            decompress: Decompress::new(false),
            takeover,
            history_lost: false,
        }
    }

    /// A message of this direction was lost (cut in capture): its window is unknown from here.
    pub fn lose_history(&mut self) {
        self.decompress.reset(false);
        self.history_lost = self.takeover;
    }

    /// Inflates one message's payload into at most `limit` bytes.
    pub fn inflate(&mut self, payload: &[u8], limit: usize) -> (Vec<u8>, Result<(), InflateError>) {
        if !self.takeover {
            self.decompress.reset(false);
        }
        let mut out = Vec::with_capacity(
            payload
                .len()
                .saturating_mul(4)
                .clamp(MIN_STEP, STEP)
                .min(limit + 1),
        );
        let result = self.run(payload, &mut out, limit);
        if result.is_err() {
            // The window no longer matches the sender's: start afresh (see the module doc).
            self.decompress.reset(false);
            self.history_lost = self.takeover;
        }
        let result = result.map_err(|error| match error {
            InflateError::Corrupt(reason) if self.history_lost => InflateError::Corrupt(format!(
                "{reason} (an earlier message of this direction did not inflate, so its window is unknown)"
            )),
            other => other,
        });
        (out, result)
    }

    fn run(&mut self, payload: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
        for input in [payload, &TAIL[..]] {
            let mut input = input;
            loop {
                if out.len() > limit {
                    out.truncate(limit);
                    return Err(InflateError::TooLarge { limit });
                }
                if out.capacity() == out.len() {
                    // Doubling, never past one byte over the limit (that byte says "too large").
                    let grow = out.len().max(MIN_STEP).min(limit + 1 - out.len()).max(1);
                    out.reserve_exact(grow);
                }
                let before_in = self.decompress.total_in();
                let before_out = out.len();
                let status = self
                    .decompress
                    .decompress_vec(input, out, FlushDecompress::Sync)
                    .map_err(|e| InflateError::Corrupt(e.to_string()))?;
                let used = (self.decompress.total_in() - before_in) as usize;
                input = &input[used..];
                let produced = out.len() - before_out;
                if status == Status::StreamEnd {
                    // A final block (BFINAL) ended the DEFLATE stream: the next message starts
                    // a new one, with the window the sender keeps (none, after BFINAL).
                    self.decompress.reset(false);
                    break;
                }
                if input.is_empty() && out.len() < out.capacity() {
                    break;
                }
                if used == 0 && produced == 0 {
                    if input.is_empty() {
                        break;
                    }
                    return Err(InflateError::Corrupt("inflater made no progress".into()));
                }
            }
        }
        if out.len() > limit {
            out.truncate(limit);
            return Err(InflateError::TooLarge { limit });
        }
        Ok(())
    }
}
