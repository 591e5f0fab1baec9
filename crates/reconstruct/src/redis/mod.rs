//! Redis commands and their replies reconstructed from a RESP2/RESP3 connection.
//!
//! One [`RedisConnection`] per TCP connection is fed both byte directions as captured, in
//! pieces of any size. Client requests (RESP arrays, or inline commands such as `PING\r\n`)
//! become [`RedisCommand`]s holding the command name, the key names it addresses and its
//! argument count; each is returned once the server's reply (paired in order, as Redis
//! answers in order) has arrived. Values are never kept: `SET k v` records `k` only, and
//! `AUTH`/`HELLO ... AUTH` passwords are dropped as soon as they are read.
//!
//! # Why the RESP reader is written here
//!
//! The `redis-protocol` crate decodes RESP2/RESP3 but was not used: its nom decoder recurses
//! once per nesting level with no depth limit (a stream of `*1\r\n` repeated overflows the
//! stack, an abort rather than an error), it needs each whole frame in memory (a 100 MB
//! `SET` value would be buffered to learn only the key), and it does not parse inline
//! commands. RESP is line-framed and length-prefixed; the reader here is a resumable state
//! machine with an explicit stack (depth limit [`MAX_DEPTH`]) that keeps only the first bytes
//! of each top-level element and skips the rest as it streams by.
//!
//! # Limits
//!
//! Replies pair with commands by order. When capture starts mid-connection, replies that
//! arrive before any captured command are dropped (counted in [`RedisSession`]); a reply to an
//! uncaptured pipelined command can then pair with the wrong command. Pub/sub messages and
//! RESP3 pushes are recognised and not taken as replies. RESP3 streamed strings and
//! aggregates (`$?`, `*?`), which servers do not send today, are reported as protocol errors.

use std::collections::VecDeque;

use serde::Serialize;

use crate::event::Direction;

/// Nesting deeper than this is treated as a protocol error (Redis itself nests a few levels).
pub const MAX_DEPTH: usize = 64;
/// Header and inline-command lines longer than this are a protocol error (Redis's own limit
/// for inline requests is 64 KiB).
const MAX_LINE: usize = 64 * 1024;
/// Bytes kept of each argument (key names); longer names are cut.
const KEPT_ARG_BYTES: usize = 512;
/// Arguments kept per command; the rest are counted only.
const KEPT_ARGS: usize = 1024;
/// Commands waiting for a reply before the oldest is given up as partial.
const MAX_PENDING: usize = 10_000;

mod commands;
mod messages;
mod resp;
mod session;
#[cfg(test)]
mod tests;

#[allow(unused_imports)]
use commands::*;
#[allow(unused_imports)]
use messages::*;
pub use messages::{RedisCommand, RedisSession, ReplyKind};
#[allow(unused_imports)]
use resp::*;
pub use session::RedisConnection;
#[allow(unused_imports)]
use session::*;
