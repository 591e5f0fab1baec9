//! SQL statements reconstructed from a PostgreSQL wire-protocol (v3) connection.
//!
//! One [`PostgresConnection`] per TCP connection is fed both byte directions as they were
//! captured, in pieces of any size. It frames the messages of each direction, follows the
//! session (SSL/GSS negotiation, startup parameters, simple and extended query protocol) and
//! pairs every query with the backend's answer: `CommandComplete` (operation and row count),
//! `ErrorResponse` (severity, SQLSTATE, message), `DataRow`s, and `ReadyForQuery`, which ends
//! the statement. The SQL text is then read with `sqlparser` (PostgreSQL dialect) for the
//! tables it touches and for pgvector similarity search.
//!
//! # Why the framing is written here
//!
//! Both crates that parse the protocol were judged and not used:
//! - `pgwire` decodes both directions and is light without default features, but its message
//!   decoders read fields with `bytes::Buf::get_i16`/`get_u32` (which panic when a body is
//!   shorter than announced) and compute lengths as `msg_len - 4 - 2` (underflow). A passive
//!   observer sees truncated and mid-connection streams all the time, so that panics on input.
//! - `postgres-protocol` parses backend messages carefully, but has no frontend parser (the
//!   half that carries the SQL) and brings SCRAM/MD5 crypto crates along.
//!
//! The framing itself is a tag byte and a big-endian length; the few message bodies read here
//! are NUL-terminated strings. It is done with checked arithmetic and bounded buffers: only
//! the first [`SQL_TEXT_LIMIT`] bytes of a query are kept, row data is counted and skipped
//! without being buffered (except the first bytes of the rows answering a query of the system
//! catalogue, whose table names are read: [`catalogue`]), and bind parameter values are never
//! kept (they may be secrets).
//!
//! # Capture starting mid-connection
//!
//! Without the startup message the first bytes of a direction may be the middle of a message.
//! The framer then scans for a plausible message boundary (a tag valid for that direction, a
//! length within the tag's bounds, a body of the right shape, followed by another valid header
//! or the end of the data) and counts the bytes it skipped ([`PostgresConnection::session`]).
//! Backend answers whose query was not seen are still reported, with empty text and
//! `partial: true`.

use std::collections::{HashMap, VecDeque};
use std::ops::ControlFlow;

use serde::Serialize;
use sqlparser::ast::{ObjectName, Query, Statement, TableFactor, Visit, Visitor};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

use crate::event::Direction;

/// Bytes of SQL text kept per query; the rest is skipped and the text flagged truncated.
pub const SQL_TEXT_LIMIT: usize = 1 << 20;

/// PostgreSQL's own limit on a message (`PQ_LARGE_MESSAGE_LIMIT`, 1 GiB - 1).
const MAX_MESSAGE_LEN: usize = 0x3fff_ffff;
/// While resynchronising, a candidate message must be complete within this many bytes.
const RESYNC_MAX_LEN: usize = 64 * 1024;
/// Startup packets are at most this long (`MAX_STARTUP_PACKET_LENGTH`).
const MAX_STARTUP_LEN: usize = 10_000;

const SSL_REQUEST_CODE: u32 = 80_877_103;
const GSSENC_REQUEST_CODE: u32 = 80_877_104;
const CANCEL_REQUEST_CODE: u32 = 80_877_102;

mod catalogue;
mod framing;
mod messages;
mod session;
mod sql;
mod sql_analyses;
#[cfg(test)]
mod tests;

#[allow(unused_imports)]
use framing::*;
#[allow(unused_imports)]
use messages::*;
pub use messages::{PostgresSession, QueryProtocol, SqlStatement};
pub use session::PostgresConnection;
#[allow(unused_imports)]
use session::*;
#[allow(unused_imports)]
use sql::*;
