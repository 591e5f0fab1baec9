//! The records a Redis connection yields: commands, the shape of their replies, and what is
//! known of the session.

#[allow(unused_imports)]
use super::*;

/// The shape of a reply, never its data (except error messages and short status words).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReplyKind {
    /// `+OK`.
    Ok,
    /// Another simple string (`PONG`, `QUEUED`, a `TYPE` answer), at most 64 bytes.
    Status {
        text: String,
    },
    /// `-ERR ...` or a RESP3 blob error; the part that would echo arguments is cut off.
    Error {
        message: String,
    },
    Integer {
        value: i64,
    },
    /// Bulk or verbatim string of `len` bytes.
    Bulk {
        len: u64,
    },
    Array {
        len: u64,
    },
    Map {
        len: u64,
    },
    Set {
        len: u64,
    },
    /// RESP2 null bulk/array or RESP3 null.
    Nil,
    Double,
    Boolean,
    BigNumber,
}

/// One command and, once seen, its reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RedisCommand {
    /// Upper case; with the subcommand for container commands (`CONFIG GET`, `CLIENT SETNAME`,
    /// `XGROUP CREATE`).
    pub command: String,
    /// Key names the command addresses (for the commands this module knows), pub/sub channel
    /// names for publish/subscribe, the index for `FT.*` search. Never values.
    pub keys: Vec<String>,
    /// Arguments after the command name (subcommand included).
    pub arg_count: usize,
    pub reply: Option<ReplyKind>,
    /// Sent as an inline command (`PING\r\n`) rather than a RESP array.
    pub inline: bool,
    /// Vector similarity search: `FT.SEARCH`/`FT.AGGREGATE` with a `KNN` clause, or `VSIM`.
    pub vector_search: bool,
    pub ts_ns: u64,
    /// When the reply arrived (`ts_ns` when none did).
    pub end_ts_ns: u64,
    /// No reply was seen (the connection ended, or the capture did).
    pub partial: bool,
    /// `SELECT`'s database, applied to the session once the server accepts it.
    #[serde(skip)]
    pub(super) selected_db: Option<u32>,
}

/// What is known about the session as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RedisSession {
    /// ACL user from `AUTH user pass` or `HELLO n AUTH user pass` (never the password).
    pub user: Option<String>,
    /// `AUTH` or `HELLO ... AUTH` was sent.
    pub authenticated: bool,
    /// From `CLIENT SETNAME` or `HELLO ... SETNAME`.
    pub client_name: Option<String>,
    /// Database chosen with `SELECT` (0 until then).
    pub db: u32,
    /// `HELLO 3` was sent.
    pub resp3: bool,
    /// Bytes that could not be parsed (capture started mid-message, or corrupt data).
    pub unparsed_bytes: u64,
    /// Replies that arrived with no command waiting for them.
    pub unpaired_replies: u64,
}
