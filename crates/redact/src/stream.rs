//! Redaction of reassembled streams: every `data` chunk is masked with the bytes that came
//! before it on the same stream in view, so no split (two writes, 16 KiB chunks, one byte per
//! write) lets the tail of a secret through.
//!
//! A stream is a connection's direction as [docs/events.md] reassembles it: `pid` + `source` +
//! `direction` + `conn_id` (TLS) or `fd` (sockets, pipes). For each one the redactor keeps the
//! last [`CARRY_BYTES`] bytes (enough for a name, its separators and the start of its value),
//! the value the stream is inside when a secret outlives that window, and the PostgreSQL
//! frontend framing. A chunk is scanned as `carry ++ chunk`; what falls in the chunk is masked.
//! State is bounded: at most [`MAX_STREAMS`] streams, the least recently used forgotten first;
//! a forgotten stream that was inside a secret keeps that fact (a few bytes) so its next chunk
//! is still masked up to the value's end.

use std::collections::{HashMap, VecDeque};

use super::postgres_password::PostgresFrontend;
use super::scanner::{self, OpenValue};
use crate::event::{Direction, PayloadSource};

/// Bytes of a stream kept to scan the next chunk with.
pub const CARRY_BYTES: usize = 1024;
/// Streams tracked at once (each holds at most `CARRY_BYTES` + a few dozen bytes).
pub const MAX_STREAMS: usize = 1024;
/// Forgotten streams whose open secret value is remembered.
const MAX_FORGOTTEN_OPEN: usize = 4096;
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
}

/// Per-stream redaction state for every stream in flight.
#[derive(Debug, Default)]
pub struct StreamRedactor {
    streams: HashMap<StreamKey, StreamState>,
    forgotten_open: HashMap<StreamKey, OpenValue>,
    forgotten_order: VecDeque<StreamKey>,
    tick: u64,
}

impl StreamRedactor {
    /// Masks the secrets in `chunk`, the next bytes of stream `key`; returns how many values
    /// were masked.
    pub fn redact_chunk(&mut self, key: StreamKey, fd: i32, chunk: &mut [u8]) -> usize {
        self.tick += 1;
        if !self.streams.contains_key(&key) {
            self.make_room();
            let open = self.forgotten_open.remove(&key);
            self.streams.insert(
                key,
                StreamState {
                    open,
                    ..StreamState::default()
                },
            );
        }
        let state = self.streams.get_mut(&key).expect("inserted above");
        state.last_used = self.tick;
        state.fd = fd;
        let original = chunk.to_vec();
        let mut count = 0;

        for range in state.postgres.follow(&original) {
            chunk[range].fill(b'*');
            count += 1;
        }

        // A value that began before the window still runs on.
        let mut open = None;
        if let Some(value) = state.open {
            let (len, still_open) = value.continue_in(&original);
            if len > 0 {
                chunk[..len].fill(b'*');
                count += 1;
            }
            state.open_bytes += len;
            open = still_open.filter(|_| state.open_bytes < MAX_OPEN_VALUE_BYTES);
        }

        let mut window = Vec::with_capacity(state.carry.len() + original.len());
        window.extend_from_slice(&state.carry);
        window.extend_from_slice(&original);
        let scan = scanner::scan(&mut window);
        let masked_in_chunk = &window[state.carry.len()..];
        let mut changed = false;
        for ((out, &masked), &was) in chunk.iter_mut().zip(masked_in_chunk).zip(&original) {
            if masked != was {
                *out = b'*';
                changed = true;
            }
        }
        count += usize::from(changed && scan.count > 0);
        if scan.open.is_some() {
            open = scan.open;
            state.open_bytes = 0;
        }
        state.open = open;

        let keep_from = (state.carry.len() + original.len()).saturating_sub(CARRY_BYTES);
        let carried = state.carry.len();
        if keep_from >= carried {
            state.carry.clear();
            state
                .carry
                .extend_from_slice(&original[keep_from - carried..]);
        } else {
            state.carry.drain(..keep_from);
            state.carry.extend_from_slice(&original);
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
        if let Some(open) = state.open {
            if self.forgotten_order.len() >= MAX_FORGOTTEN_OPEN {
                if let Some(old) = self.forgotten_order.pop_front() {
                    self.forgotten_open.remove(&old);
                }
            }
            self.forgotten_open.insert(oldest, open);
            self.forgotten_order.push_back(oldest);
        }
    }
}
