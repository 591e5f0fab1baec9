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
    selected_db: Option<u32>,
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

/// Reassembles the commands of one Redis connection.
#[derive(Debug)]
pub struct RedisConnection {
    client: RespReader,
    server: RespReader,
    pending: VecDeque<RedisCommand>,
    session: RedisSession,
    /// Subscribed channels or patterns exist: pub/sub messages arrive unrequested.
    subscribed: bool,
    unknown_direction_bytes: u64,
}

impl Default for RedisConnection {
    fn default() -> Self {
        Self::new()
    }
}

impl RedisConnection {
    /// Upper bound of the heap this connection holds (charged to the memory budget by the
    /// reconstructor).
    pub fn held_bytes(&self) -> usize {
        let reader = |r: &RespReader| {
            r.line.capacity()
                + r.stack.capacity() * 64
                + r.top.as_ref().map_or(0, |t| {
                    256 + t.text.capacity() + KEPT_ARGS.min(t.len as usize) * 32
                })
        };
        let command = |c: &RedisCommand| {
            256 + c.command.len() + c.keys.iter().map(|k| 32 + k.len()).sum::<usize>()
        };
        reader(&self.client)
            + reader(&self.server)
            + self.pending.iter().map(command).sum::<usize>()
    }

    pub fn new() -> Self {
        RedisConnection {
            client: RespReader::new(Side::Client),
            server: RespReader::new(Side::Server),
            pending: VecDeque::new(),
            session: RedisSession::default(),
            subscribed: false,
            unknown_direction_bytes: 0,
        }
    }

    /// True when `first_bytes` (what the client sent first) is a RESP command array
    /// (`*N\r\n$M\r\nNAME`) or an inline command this module knows (`PING\r\n`).
    pub fn looks_like_redis(first_bytes: &[u8]) -> bool {
        if let Some(rest) = first_bytes.strip_prefix(b"*") {
            // *N\r\n$M\r\nNAME with a plausible command name.
            let Some(line_end) = memchr::memmem::find(rest, b"\r\n") else {
                return false;
            };
            if parse_int(&rest[..line_end]).is_none_or(|n| !(1..=1_048_576).contains(&n)) {
                return false;
            }
            let rest = &rest[line_end + 2..];
            let Some(rest) = rest.strip_prefix(b"$") else {
                return false;
            };
            let Some(line_end) = memchr::memmem::find(rest, b"\r\n") else {
                return false;
            };
            let Some(len) = parse_int(&rest[..line_end]).and_then(|n| usize::try_from(n).ok())
            else {
                return false;
            };
            let name = &rest[line_end + 2..];
            let name = name.get(..len).unwrap_or(name);
            return !name.is_empty() && name.iter().all(|b| is_command_byte(*b));
        }
        let line_end = memchr::memchr(b'\n', first_bytes).unwrap_or(first_bytes.len());
        let first_word = first_bytes[..line_end]
            .split(|b| b.is_ascii_whitespace())
            .next()
            .unwrap_or_default();
        line_end < first_bytes.len()
            && is_known_command(first_word)
            && !looks_like_http_request_line(&first_bytes[..line_end])
    }

    pub fn session(&self) -> &RedisSession {
        &self.session
    }

    /// Feeds bytes of one direction (`Egress` = client to server) and returns the commands
    /// whose replies arrived.
    pub fn feed(&mut self, direction: Direction, bytes: &[u8], ts_ns: u64) -> Vec<RedisCommand> {
        let mut out = Vec::new();
        match direction {
            Direction::Egress => {
                for value in self.client.feed(bytes, ts_ns) {
                    self.on_request(value, &mut out);
                }
            }
            Direction::Ingress => {
                for value in self.server.feed(bytes, ts_ns) {
                    self.on_reply(value, &mut out);
                }
            }
            Direction::Unknown => {
                self.unknown_direction_bytes = self
                    .unknown_direction_bytes
                    .saturating_add(bytes.len() as u64);
            }
        }
        self.session.unparsed_bytes = self
            .client
            .unparsed_bytes
            .saturating_add(self.server.unparsed_bytes)
            .saturating_add(self.unknown_direction_bytes);
        out
    }

    /// Ends the connection: commands still waiting for a reply are returned, flagged partial.
    pub fn finish(&mut self) -> Vec<RedisCommand> {
        self.pending
            .drain(..)
            .map(|mut command| {
                command.partial = true;
                command
            })
            .collect()
    }

    fn on_request(&mut self, value: TopValue, out: &mut Vec<RedisCommand>) {
        let args: Vec<&[u8]> = value.elements.iter().map(Vec::as_slice).collect();
        let Some(command) = describe_command(&args, value.element_count, &mut self.session) else {
            return;
        };
        if matches!(
            command.command.as_str(),
            "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE"
        ) {
            self.subscribed = true;
        }
        let mut command = command;
        command.inline = value.inline;
        command.ts_ns = value.ts_ns;
        command.end_ts_ns = value.ts_ns;
        if self.pending.len() >= MAX_PENDING {
            if let Some(mut oldest) = self.pending.pop_front() {
                oldest.partial = true;
                out.push(oldest);
            }
        }
        self.pending.push_back(command);
    }

    fn on_reply(&mut self, value: TopValue, out: &mut Vec<RedisCommand>) {
        if value.kind == TopKind::Push {
            return;
        }
        let front_subscribes = self
            .pending
            .front()
            .is_some_and(|c| c.command.ends_with("SUBSCRIBE"));
        if value.kind == TopKind::Array && !front_subscribes && self.subscribed {
            // RESP2 pub/sub: messages and extra (un)subscribe confirmations are arrays whose
            // first element names them.
            let first = value.elements.first().map(|e| e.to_ascii_lowercase());
            if first.is_some_and(|f| {
                matches!(
                    f.as_slice(),
                    b"message"
                        | b"pmessage"
                        | b"smessage"
                        | b"subscribe"
                        | b"psubscribe"
                        | b"ssubscribe"
                        | b"unsubscribe"
                        | b"punsubscribe"
                        | b"sunsubscribe"
                )
            }) {
                return;
            }
        }
        let Some(mut command) = self.pending.pop_front() else {
            self.session.unpaired_replies = self.session.unpaired_replies.saturating_add(1);
            return;
        };
        let reply = value.reply_kind();
        if let (Some(db), ReplyKind::Ok) = (command.selected_db, &reply) {
            self.session.db = db;
        }
        command.reply = Some(reply);
        command.end_ts_ns = value.ts_ns.max(command.ts_ns);
        out.push(command);
    }
}

/// Upper-cased command name, subcommand, keys, from the (kept) arguments of a request.
fn describe_command(
    args: &[&[u8]],
    element_count: usize,
    session: &mut RedisSession,
) -> Option<RedisCommand> {
    let name = args.first()?;
    if name.is_empty() {
        return None;
    }
    let name = String::from_utf8_lossy(name).to_ascii_uppercase();
    let rest = &args[1..];
    let text = |i: usize| rest.get(i).map(|a| String::from_utf8_lossy(a).into_owned());
    let upper = |i: usize| text(i).map(|a| a.to_ascii_uppercase());
    let mut command = name.clone();
    let mut keys: Vec<String> = Vec::new();
    let mut vector_search = false;
    let mut selected_db = None;
    let all = |from: usize| rest.iter().skip(from).map(|a| lossy(a)).collect::<Vec<_>>();
    match name.as_str() {
        // Whole argument list is keys (or channels).
        "DEL" | "UNLINK" | "EXISTS" | "TOUCH" | "MGET" | "WATCH" | "SINTER" | "SUNION"
        | "SDIFF" | "PFCOUNT" | "SINTERSTORE" | "SUNIONSTORE" | "SDIFFSTORE" | "PFMERGE"
        | "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE" | "UNSUBSCRIBE" | "PUNSUBSCRIBE"
        | "SUNSUBSCRIBE" => keys = all(0),
        // key value key value ...
        "MSET" | "MSETNX" => {
            keys = rest.iter().step_by(2).map(|a| lossy(a)).collect();
        }
        // Two keys.
        "RENAME" | "RENAMENX" | "COPY" | "SMOVE" | "LMOVE" | "RPOPLPUSH" | "BRPOPLPUSH"
        | "BLMOVE" | "GEOSEARCHSTORE" | "ZRANGESTORE" => {
            keys = all(0).into_iter().take(2).collect();
        }
        // Keys then a timeout.
        "BLPOP" | "BRPOP" | "BZPOPMIN" | "BZPOPMAX" => {
            keys = all(0);
            keys.pop();
        }
        // numkeys key... (after a script/function or a destination key)
        "EVAL" | "EVALSHA" | "EVAL_RO" | "EVALSHA_RO" | "FCALL" | "FCALL_RO" => {
            keys = numkeys_keys(rest, 1);
        }
        "ZUNIONSTORE" | "ZINTERSTORE" | "ZDIFFSTORE" => {
            keys = text(0).into_iter().collect();
            keys.extend(numkeys_keys(rest, 1));
        }
        "ZUNION" | "ZINTER" | "ZDIFF" | "ZINTERCARD" | "SINTERCARD" | "LMPOP" | "ZMPOP" => {
            keys = numkeys_keys(rest, 0);
        }
        "BLMPOP" | "BZMPOP" => keys = numkeys_keys(rest, 1),
        // ... STREAMS k1 k2 id1 id2
        "XREAD" | "XREADGROUP" => {
            if let Some(at) = rest.iter().position(|a| a.eq_ignore_ascii_case(b"STREAMS")) {
                let streams = &rest[at + 1..];
                keys = streams[..streams.len() / 2]
                    .iter()
                    .map(|a| lossy(a))
                    .collect();
            }
        }
        "PUBLISH" | "SPUBLISH" => keys = text(0).into_iter().collect(),
        "KEYS" | "SCAN" => {}
        "SELECT" => selected_db = text(0).and_then(|db| db.parse().ok()),
        "AUTH" => {
            session.authenticated = true;
            if rest.len() >= 2 {
                session.user = text(0);
            } else {
                session.user.get_or_insert_with(|| "default".into());
            }
        }
        "HELLO" => {
            if text(0).as_deref() == Some("3") {
                session.resp3 = true;
            }
            let mut i = 1;
            while i < rest.len() {
                match upper(i).as_deref() {
                    Some("AUTH") => {
                        session.authenticated = true;
                        session.user = text(i + 1);
                        i += 3;
                    }
                    Some("SETNAME") => {
                        session.client_name = text(i + 1);
                        i += 2;
                    }
                    _ => i += 1,
                }
            }
        }
        // Container commands: the subcommand is part of the name.
        "CONFIG" | "CLIENT" | "CLUSTER" | "COMMAND" | "SCRIPT" | "FUNCTION" | "ACL" | "DEBUG"
        | "PUBSUB" | "MODULE" | "LATENCY" | "SLOWLOG" | "MEMORY" | "OBJECT" | "XINFO"
        | "XGROUP" => {
            if let Some(sub) = upper(0) {
                command = format!("{name} {sub}");
                match (name.as_str(), sub.as_str()) {
                    ("CLIENT", "SETNAME") => session.client_name = text(1),
                    ("MEMORY", "USAGE")
                    | ("OBJECT", _)
                    | ("XINFO", "STREAM" | "GROUPS")
                    | ("XINFO", "CONSUMERS")
                    | ("XGROUP", _)
                        if sub != "HELP" =>
                    {
                        keys = text(1).into_iter().collect();
                    }
                    _ => {}
                }
            }
        }
        "FT.SEARCH" | "FT.AGGREGATE" | "FT.PROFILE" => {
            keys = text(0).into_iter().collect();
            vector_search = rest
                .iter()
                .any(|a| memchr::memmem::find(&a.to_ascii_uppercase(), b"KNN").is_some());
        }
        "VSIM" => {
            keys = text(0).into_iter().collect();
            vector_search = true;
        }
        _ if first_arg_is_key(&name) => keys = text(0).into_iter().collect(),
        _ => {}
    }
    Some(RedisCommand {
        command,
        keys,
        arg_count: element_count.saturating_sub(1),
        reply: None,
        inline: false,
        vector_search,
        ts_ns: 0,
        end_ts_ns: 0,
        partial: false,
        selected_db,
    })
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `numkeys key...` starting at `rest[at]`.
fn numkeys_keys(rest: &[&[u8]], at: usize) -> Vec<String> {
    let Some(count) = rest
        .get(at)
        .and_then(|n| parse_int(n))
        .and_then(|n| usize::try_from(n).ok())
    else {
        return Vec::new();
    };
    rest.iter()
        .skip(at + 1)
        .take(count)
        .map(|a| lossy(a))
        .collect()
}

/// Commands whose first argument is their (only) key.
fn first_arg_is_key(name: &str) -> bool {
    const SINGLE_KEY: &[&str] = &[
        "GET",
        "SET",
        "SETNX",
        "SETEX",
        "PSETEX",
        "GETSET",
        "GETDEL",
        "GETEX",
        "APPEND",
        "STRLEN",
        "INCR",
        "DECR",
        "INCRBY",
        "DECRBY",
        "INCRBYFLOAT",
        "GETRANGE",
        "SETRANGE",
        "SUBSTR",
        "LCS",
        "EXPIRE",
        "PEXPIRE",
        "EXPIREAT",
        "PEXPIREAT",
        "EXPIRETIME",
        "PEXPIRETIME",
        "TTL",
        "PTTL",
        "PERSIST",
        "TYPE",
        "DUMP",
        "RESTORE",
        "SORT",
        "SORT_RO",
        "HGET",
        "HSET",
        "HSETNX",
        "HMSET",
        "HMGET",
        "HDEL",
        "HGETALL",
        "HKEYS",
        "HVALS",
        "HLEN",
        "HEXISTS",
        "HINCRBY",
        "HINCRBYFLOAT",
        "HSCAN",
        "HSTRLEN",
        "HRANDFIELD",
        "HEXPIRE",
        "HTTL",
        "HGETDEL",
        "HGETEX",
        "HSETEX",
        "LPUSH",
        "RPUSH",
        "LPUSHX",
        "RPUSHX",
        "LPOP",
        "RPOP",
        "LLEN",
        "LRANGE",
        "LINDEX",
        "LSET",
        "LREM",
        "LTRIM",
        "LINSERT",
        "LPOS",
        "SADD",
        "SREM",
        "SMEMBERS",
        "SISMEMBER",
        "SMISMEMBER",
        "SCARD",
        "SPOP",
        "SRANDMEMBER",
        "SSCAN",
        "ZADD",
        "ZREM",
        "ZRANGE",
        "ZRANGEBYSCORE",
        "ZREVRANGE",
        "ZREVRANGEBYSCORE",
        "ZRANGEBYLEX",
        "ZREVRANGEBYLEX",
        "ZRANK",
        "ZREVRANK",
        "ZSCORE",
        "ZMSCORE",
        "ZCARD",
        "ZCOUNT",
        "ZLEXCOUNT",
        "ZINCRBY",
        "ZSCAN",
        "ZPOPMIN",
        "ZPOPMAX",
        "ZRANDMEMBER",
        "ZREMRANGEBYRANK",
        "ZREMRANGEBYSCORE",
        "ZREMRANGEBYLEX",
        "XADD",
        "XRANGE",
        "XREVRANGE",
        "XLEN",
        "XTRIM",
        "XDEL",
        "XACK",
        "XCLAIM",
        "XAUTOCLAIM",
        "XPENDING",
        "XSETID",
        "PFADD",
        "GEOADD",
        "GEOSEARCH",
        "GEODIST",
        "GEOPOS",
        "GEOHASH",
        "GEORADIUS",
        "GEORADIUSBYMEMBER",
        "GEORADIUS_RO",
        "GEORADIUSBYMEMBER_RO",
        "BITCOUNT",
        "SETBIT",
        "GETBIT",
        "BITPOS",
        "BITFIELD",
        "BITFIELD_RO",
        "JSON.GET",
        "JSON.SET",
        "JSON.DEL",
        "JSON.MGET",
        "JSON.TYPE",
        "JSON.ARRAPPEND",
        "JSON.NUMINCRBY",
        "JSON.OBJKEYS",
        "VADD",
        "VREM",
        "VCARD",
        "VDIM",
        "VEMB",
        "VINFO",
        "VGETATTR",
        "VSETATTR",
        "VLINKS",
        "VRANDMEMBER",
        "TS.ADD",
        "TS.GET",
        "TS.RANGE",
        "TS.CREATE",
        "BF.ADD",
        "BF.EXISTS",
    ];
    SINGLE_KEY.contains(&name)
}

fn is_command_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'|')
}

/// Inline commands are accepted only for names clients really send inline (health checks,
/// telnet sessions), so text protocols are not mistaken for Redis.
fn is_known_command(word: &[u8]) -> bool {
    const INLINE: &[&str] = &[
        "PING",
        "AUTH",
        "HELLO",
        "SELECT",
        "INFO",
        "QUIT",
        "ECHO",
        "GET",
        "SET",
        "DEL",
        "KEYS",
        "SCAN",
        "EXISTS",
        "TTL",
        "TYPE",
        "INCR",
        "DECR",
        "EXPIRE",
        "MGET",
        "MSET",
        "HGET",
        "HSET",
        "HGETALL",
        "LPUSH",
        "RPUSH",
        "LRANGE",
        "SADD",
        "SMEMBERS",
        "ZADD",
        "ZRANGE",
        "PUBLISH",
        "SUBSCRIBE",
        "CONFIG",
        "CLIENT",
        "DBSIZE",
        "FLUSHDB",
        "FLUSHALL",
        "MONITOR",
        "MULTI",
        "EXEC",
        "DISCARD",
        "WATCH",
        "COMMAND",
        "SAVE",
        "BGSAVE",
        "LASTSAVE",
        "TIME",
        "ROLE",
        "SHUTDOWN",
        "SLOWLOG",
        "MEMORY",
        "CLUSTER",
        "READONLY",
        "RESET",
    ];
    let Ok(word) = std::str::from_utf8(word) else {
        return false;
    };
    INLINE.iter().any(|c| c.eq_ignore_ascii_case(word))
}

/// `GET /path HTTP/1.1`: Redis port scanners and health checks send HTTP too.
fn looks_like_http_request_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0") || line.ends_with(b" HTTP/2")
}

fn parse_int(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// RESP reader

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TopKind {
    /// An inline command line.
    Inline,
    SimpleString,
    Error,
    Integer,
    Bulk,
    Verbatim,
    Array,
    Map,
    Set,
    /// RESP3 out-of-band data (`>`): pub/sub messages, client-side caching invalidations.
    Push,
    Nil,
    Double,
    Boolean,
    BigNumber,
}

/// A complete top-level value, with what was kept of it.
#[derive(Debug)]
struct TopValue {
    kind: TopKind,
    /// Declared length: elements of an aggregate (pairs for a map), bytes of a string.
    len: u64,
    /// First bytes of the string for simple strings and errors.
    text: Vec<u8>,
    integer: i64,
    /// Strings directly inside a top-level aggregate (the arguments of a command), each cut
    /// at [`KEPT_ARG_BYTES`], at most [`KEPT_ARGS`] of them.
    elements: Vec<Vec<u8>>,
    element_count: usize,
    inline: bool,
    ts_ns: u64,
}

impl TopValue {
    fn new(ts_ns: u64) -> Self {
        TopValue {
            kind: TopKind::Nil,
            len: 0,
            text: Vec::new(),
            integer: 0,
            elements: Vec::new(),
            element_count: 0,
            inline: false,
            ts_ns,
        }
    }

    fn reply_kind(&self) -> ReplyKind {
        match self.kind {
            TopKind::SimpleString if self.text == b"OK" => ReplyKind::Ok,
            TopKind::SimpleString | TopKind::Inline => ReplyKind::Status {
                text: String::from_utf8_lossy(&self.text[..self.text.len().min(64)]).into_owned(),
            },
            TopKind::Error => ReplyKind::Error {
                message: error_message(&self.text),
            },
            TopKind::Integer => ReplyKind::Integer {
                value: self.integer,
            },
            TopKind::Bulk | TopKind::Verbatim => ReplyKind::Bulk { len: self.len },
            TopKind::Array | TopKind::Push => ReplyKind::Array { len: self.len },
            TopKind::Map => ReplyKind::Map { len: self.len },
            TopKind::Set => ReplyKind::Set { len: self.len },
            TopKind::Nil => ReplyKind::Nil,
            TopKind::Double => ReplyKind::Double,
            TopKind::Boolean => ReplyKind::Boolean,
            TopKind::BigNumber => ReplyKind::BigNumber,
        }
    }
}

/// Redis echoes the start of the arguments in "unknown command" errors; those may be secrets.
fn error_message(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    match text.find(", with args beginning with:") {
        Some(at) => text[..at].to_string(),
        None => text.into_owned(),
    }
}

#[derive(Debug, Clone, Copy)]
struct Level {
    /// Elements still expected.
    remaining: u64,
    /// An attribute (`|`): it annotates the next value and is not an element itself.
    attribute: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    /// Reading a header or simple-value line (up to '\n').
    Line,
    /// Reading a length-prefixed string body: `remaining` bytes, the last two being CRLF.
    Body { remaining: u64 },
    /// Skipping to the next line that starts a plausible top-level value.
    Resync,
}

/// Streams RESP values out of one direction's bytes.
#[derive(Debug)]
struct RespReader {
    side: Side,
    state: ReadState,
    line: Vec<u8>,
    line_overflow: bool,
    stack: Vec<Level>,
    top: Option<TopValue>,
    /// Where the bytes of the string being read go: into the top value's text (1) or into a
    /// new element (2), or nowhere (0).
    keep_target: u8,
    /// Last two body bytes seen, to check the CRLF terminator.
    body_tail: [u8; 2],
    /// Nothing parsed yet: the first line must look like the start of a value.
    fresh: bool,
    unparsed_bytes: u64,
}

impl RespReader {
    fn new(side: Side) -> Self {
        RespReader {
            side,
            state: ReadState::Line,
            line: Vec::new(),
            line_overflow: false,
            stack: Vec::new(),
            top: None,
            keep_target: 0,
            body_tail: [0; 2],
            fresh: true,
            unparsed_bytes: 0,
        }
    }

    fn feed(&mut self, mut input: &[u8], ts_ns: u64) -> Vec<TopValue> {
        let mut out = Vec::new();
        while !input.is_empty() {
            match self.state {
                ReadState::Line => {
                    let end = memchr::memchr(b'\n', input);
                    let chunk = &input[..end.map_or(input.len(), |e| e + 1)];
                    if self.top.is_none() && self.stack.is_empty() && self.line.is_empty() {
                        self.top = Some(TopValue::new(ts_ns));
                    }
                    let room = MAX_LINE.saturating_sub(self.line.len());
                    self.line.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    self.line_overflow |= chunk.len() > room;
                    input = &input[chunk.len()..];
                    if end.is_some() {
                        let line = std::mem::take(&mut self.line);
                        let overflow = std::mem::replace(&mut self.line_overflow, false);
                        // An over-long line is a protocol error like a malformed one.
                        if overflow || !self.on_line(&line, &mut out) {
                            self.fail(line.len() as u64);
                            // The next byte starts a line: it may start a value.
                            self.state = ReadState::Line;
                        }
                    }
                }
                ReadState::Body { remaining } => {
                    let take = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    let bytes = &input[..take];
                    // The last two bytes of the body are the CRLF terminator, not content.
                    let content_left = remaining.saturating_sub(2);
                    let content = &bytes[..bytes
                        .len()
                        .min(usize::try_from(content_left).unwrap_or(usize::MAX))];
                    self.keep(content);
                    for &b in bytes {
                        self.body_tail = [self.body_tail[1], b];
                    }
                    input = &input[take..];
                    let remaining = remaining - take as u64;
                    if remaining == 0 {
                        self.state = ReadState::Line;
                        if self.body_tail != *b"\r\n" {
                            // Mid-data: look for the next line that starts a value.
                            self.fail(0);
                            continue;
                        }
                        self.element_done(&mut out);
                    } else {
                        self.state = ReadState::Body { remaining };
                    }
                }
                ReadState::Resync => {
                    // A value starts after a line end, with a type byte.
                    let mut resumed = false;
                    for at in memchr::memchr_iter(b'\n', input) {
                        if let Some(&next) = input.get(at + 1) {
                            if self.may_start_value(next) {
                                self.unparsed_bytes =
                                    self.unparsed_bytes.saturating_add(at as u64 + 1);
                                input = &input[at + 1..];
                                self.state = ReadState::Line;
                                resumed = true;
                                break;
                            }
                        }
                    }
                    if !resumed {
                        // A line end as the final byte: the next feed may start a value.
                        let ends_line = input.last() == Some(&b'\n');
                        self.unparsed_bytes =
                            self.unparsed_bytes.saturating_add(input.len() as u64);
                        if ends_line {
                            self.state = ReadState::Line;
                        }
                        input = &[];
                    }
                }
            }
        }
        out
    }

    fn may_start_value(&self, byte: u8) -> bool {
        match self.side {
            Side::Client => byte == b'*' || byte.is_ascii_alphabetic(),
            Side::Server => b"+-:$*_,#(!=%~>|".contains(&byte),
        }
    }

    /// Gives up on the current value and looks for the next one.
    fn fail(&mut self, extra_bytes: u64) {
        self.unparsed_bytes = self.unparsed_bytes.saturating_add(extra_bytes);
        self.stack.clear();
        self.top = None;
        self.keep_target = 0;
        self.line.clear();
        self.state = ReadState::Resync;
        self.fresh = true;
    }

    fn keep(&mut self, bytes: &[u8]) {
        let Some(top) = self.top.as_mut() else { return };
        let target = match self.keep_target {
            1 => &mut top.text,
            2 => match top.elements.last_mut() {
                Some(element) => element,
                None => return,
            },
            _ => return,
        };
        let room = KEPT_ARG_BYTES.saturating_sub(target.len());
        target.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Handles one complete line (terminator included); false on a protocol error.
    fn on_line(&mut self, line: &[u8], out: &mut Vec<TopValue>) -> bool {
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        let at_top = self.stack.is_empty();
        let Some(&type_byte) = content.first() else {
            // Redis ignores empty lines between inline commands.
            if at_top {
                self.top = None;
                return true;
            }
            return false;
        };
        let depth = self.stack.len();
        let payload = &content[1..];
        let fresh = std::mem::replace(&mut self.fresh, false);
        if at_top && self.side == Side::Client && type_byte != b'*' {
            return self.on_inline(content, fresh, out);
        }
        let top = self.top.get_or_insert_with(|| TopValue::new(0));
        // What this value is, when it is the top-level one.
        let kind = match type_byte {
            b'+' => TopKind::SimpleString,
            b'-' | b'!' => TopKind::Error,
            b':' => TopKind::Integer,
            b'$' => TopKind::Bulk,
            b'=' => TopKind::Verbatim,
            b'*' => TopKind::Array,
            b'%' => TopKind::Map,
            b'~' => TopKind::Set,
            b'>' => TopKind::Push,
            b'|' => TopKind::Map,
            b'_' => TopKind::Nil,
            b',' => TopKind::Double,
            b'#' => TopKind::Boolean,
            b'(' => TopKind::BigNumber,
            _ => return false,
        };
        if depth == 1 {
            top.element_count = top.element_count.saturating_add(1);
        }
        let keeps_element = depth == 1 && top.elements.len() < KEPT_ARGS;
        match type_byte {
            b'*' | b'%' | b'~' | b'>' | b'|' => {
                let Some(n) = parse_int(payload) else {
                    return false;
                };
                if n == -1 && matches!(type_byte, b'*') {
                    if depth == 0 {
                        top.kind = TopKind::Nil;
                    }
                    return self.element_done(out);
                }
                let Ok(n) = u64::try_from(n) else {
                    return false;
                };
                let attribute = type_byte == b'|';
                if depth == 0 && !attribute {
                    top.kind = kind;
                    top.len = n;
                }
                if self.stack.len() >= MAX_DEPTH {
                    return false;
                }
                let pairs = matches!(type_byte, b'%' | b'|');
                let count = if pairs { n.checked_mul(2) } else { Some(n) };
                let Some(count) = count else { return false };
                if count == 0 {
                    if attribute {
                        return true;
                    }
                    return self.element_done(out);
                }
                self.stack.push(Level {
                    remaining: count,
                    attribute,
                });
                true
            }
            b'$' | b'!' | b'=' => {
                let Some(n) = parse_int(payload) else {
                    return false;
                };
                if n == -1 && type_byte == b'$' {
                    if depth == 0 {
                        top.kind = TopKind::Nil;
                    }
                    if keeps_element {
                        top.elements.push(Vec::new());
                    }
                    return self.element_done(out);
                }
                let Ok(n) = u64::try_from(n) else {
                    return false;
                };
                if depth == 0 {
                    top.kind = kind;
                    top.len = n;
                }
                self.keep_target = if depth == 0 && type_byte == b'!' {
                    1
                } else if keeps_element {
                    top.elements.push(Vec::new());
                    2
                } else {
                    0
                };
                let Some(remaining) = n.checked_add(2) else {
                    return false;
                };
                self.body_tail = [0; 2];
                self.state = ReadState::Body { remaining };
                true
            }
            _ => {
                if depth == 0 {
                    top.kind = kind;
                    match type_byte {
                        b'+' | b'-' => {
                            top.text = payload[..payload.len().min(KEPT_ARG_BYTES)].to_vec()
                        }
                        b':' => match parse_int(payload) {
                            Some(n) => top.integer = n,
                            None => return false,
                        },
                        _ => {}
                    }
                } else if keeps_element {
                    top.elements
                        .push(payload[..payload.len().min(KEPT_ARG_BYTES)].to_vec());
                }
                self.element_done(out)
            }
        }
    }

    fn on_inline(&mut self, content: &[u8], fresh: bool, out: &mut Vec<TopValue>) -> bool {
        let words: Vec<&[u8]> = content
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        let Some(first) = words.first() else {
            self.top = None;
            return true;
        };
        // After a resync or at the very start, only names clients really send inline count.
        let plausible = first.iter().all(|b| is_command_byte(*b))
            && first.len() <= 32
            && !looks_like_http_request_line(content);
        if !plausible || (fresh && !is_known_command(first)) {
            return false;
        }
        let mut top = self.top.take().unwrap_or_else(|| TopValue::new(0));
        top.kind = TopKind::Inline;
        top.inline = true;
        top.element_count = words.len();
        top.elements = words
            .iter()
            .take(KEPT_ARGS)
            .map(|w| w[..w.len().min(KEPT_ARG_BYTES)].to_vec())
            .collect();
        out.push(top);
        true
    }

    /// A value finished: count it against the enclosing aggregates, and emit the top-level
    /// value when it is complete.
    fn element_done(&mut self, out: &mut Vec<TopValue>) -> bool {
        self.keep_target = 0;
        loop {
            let Some(level) = self.stack.last_mut() else {
                if let Some(top) = self.top.take() {
                    out.push(top);
                }
                return true;
            };
            level.remaining -= 1;
            if level.remaining > 0 {
                return true;
            }
            let finished = self.stack.pop();
            if finished.is_some_and(|l| l.attribute) {
                // The attribute annotated what follows; it is not an element of its parent.
                if self.stack.is_empty() {
                    // A top-level attribute: the real value comes next.
                    if let Some(top) = self.top.as_mut() {
                        top.elements.clear();
                        top.element_count = 0;
                    }
                }
                return true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconstruct::postgres::tests::{load_data_events, Chunk};
    use proptest::prelude::*;

    const RESP2: &str = include_str!("../../tests/fixtures/redis/resp2_session.jsonl");
    const RESP3: &str = include_str!("../../tests/fixtures/redis/resp3_session.jsonl");
    const PASSWORD: &str = "fixture-password-not-a-secret";

    fn run(chunks: &[Chunk]) -> (Vec<RedisCommand>, RedisConnection) {
        let mut connection = RedisConnection::new();
        let mut out = Vec::new();
        for (direction, bytes, ts) in chunks {
            out.extend(connection.feed(*direction, bytes, *ts));
        }
        out.extend(connection.finish());
        (out, connection)
    }

    fn rechunk(chunks: &[Chunk], piece: usize) -> Vec<Chunk> {
        chunks
            .iter()
            .flat_map(|(d, bytes, ts)| bytes.chunks(piece).map(move |p| (*d, p.to_vec(), *ts)))
            .collect()
    }

    fn directions(chunks: &[Chunk]) -> (Vec<u8>, Vec<u8>) {
        let (mut egress, mut ingress) = (Vec::new(), Vec::new());
        for (d, bytes, _) in chunks {
            match d {
                Direction::Egress => egress.extend_from_slice(bytes),
                _ => ingress.extend_from_slice(bytes),
            }
        }
        (egress, ingress)
    }

    fn summary(commands: &[RedisCommand]) -> Vec<(String, Vec<String>, usize, Option<ReplyKind>)> {
        commands
            .iter()
            .map(|c| {
                (
                    c.command.clone(),
                    c.keys.clone(),
                    c.arg_count,
                    c.reply.clone(),
                )
            })
            .collect()
    }

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn redis_cli_resp2_session_is_reconstructed() {
        let (commands, connection) = run(&load_data_events(RESP2));
        use ReplyKind::*;
        let expected = vec![
            ("AUTH", keys(&[]), 2, Ok),
            ("COMMAND DOCS", keys(&[]), 1, Array { len: 480 }),
            (
                "PING",
                keys(&[]),
                0,
                Status {
                    text: "PONG".into(),
                },
            ),
            ("CLIENT SETNAME", keys(&[]), 2, Ok),
            ("SET", keys(&["customer:1"]), 4, Ok),
            ("GET", keys(&["customer:1"]), 1, Bulk { len: 43 }),
            (
                "MGET",
                keys(&["customer:1", "customer:2"]),
                2,
                Array { len: 2 },
            ),
            ("HSET", keys(&["session:42"]), 5, Integer { value: 2 }),
            ("HGETALL", keys(&["session:42"]), 1, Array { len: 4 }),
            (
                "GET",
                keys(&["session:42"]),
                1,
                Error {
                    message: "WRONGTYPE Operation against a key holding the wrong kind of value"
                        .into(),
                },
            ),
            ("INCR", keys(&["counter:requests"]), 1, Integer { value: 1 }),
            ("LPUSH", keys(&["queue:jobs"]), 3, Integer { value: 2 }),
            ("LRANGE", keys(&["queue:jobs"]), 3, Array { len: 2 }),
            (
                "DEL",
                keys(&["customer:2", "queue:jobs"]),
                2,
                Integer { value: 1 },
            ),
            ("CONFIG GET", keys(&[]), 2, Array { len: 2 }),
            ("SELECT", keys(&[]), 1, Ok),
            ("GET", keys(&["customer:1"]), 1, Nil),
        ];
        let expected: Vec<_> = expected
            .into_iter()
            .map(|(c, k, n, r)| (c.to_string(), k, n, Some(r)))
            .collect();
        assert_eq!(summary(&commands), expected);
        assert!(commands.iter().all(|c| !c.partial && !c.inline));
        assert!(commands.iter().all(|c| c.end_ts_ns > c.ts_ns));
        let session = connection.session();
        assert_eq!(session.user.as_deref(), Some("agent"));
        assert!(session.authenticated);
        assert_eq!(session.client_name.as_deref(), Some("agent-cache"));
        assert_eq!(session.db, 1);
        assert!(!session.resp3);
        assert_eq!(session.unparsed_bytes, 0);
        assert_eq!(session.unpaired_replies, 0);
    }

    #[test]
    fn redis_cli_resp3_session_is_reconstructed() {
        let (commands, connection) = run(&load_data_events(RESP3));
        use ReplyKind::*;
        let got: Vec<(String, Option<ReplyKind>)> = commands
            .iter()
            .map(|c| (c.command.clone(), c.reply.clone()))
            .collect();
        let expected = [
            ("AUTH", Ok),
            ("HELLO", Map { len: 7 }),
            ("COMMAND DOCS", Map { len: 240 }),
            ("HSET", Integer { value: 2 }),
            ("HGETALL", Map { len: 2 }),
            ("SADD", Integer { value: 2 }),
            ("SMEMBERS", Set { len: 2 }),
            ("HGET", Nil),
        ]
        .map(|(c, r)| (c.to_string(), Some(r)));
        assert_eq!(got, expected);
        assert!(connection.session().resp3);
        assert_eq!(connection.session().unparsed_bytes, 0);
    }

    #[test]
    fn passwords_and_values_are_never_kept() {
        for fixture in [RESP2, RESP3] {
            let (commands, connection) = run(&load_data_events(fixture));
            let json = serde_json::to_string(&(&commands, connection.session())).unwrap();
            let debug = format!("{commands:?} {connection:?}");
            for secret in [PASSWORD, "Ada Lovelace", "compilers", "job-1", "cobol"] {
                assert!(!json.contains(secret), "{secret} in {json}");
                assert!(
                    !debug.contains(secret) || secret != PASSWORD,
                    "password in Debug"
                );
            }
        }
    }

    #[test]
    fn any_chunking_gives_the_same_commands() {
        for fixture in [RESP2, RESP3] {
            let chunks = load_data_events(fixture);
            let (whole, _) = run(&chunks);
            for piece in [1, 2, 5, 13, 4096] {
                let (pieces, connection) = run(&rechunk(&chunks, piece));
                assert_eq!(summary(&whole), summary(&pieces), "pieces of {piece}");
                assert_eq!(connection.session().unparsed_bytes, 0);
            }
        }
    }

    #[test]
    fn splitting_each_direction_at_every_position_gives_the_same_commands() {
        let chunks = load_data_events(RESP2);
        let (expected, _) = run(&chunks);
        let (egress, ingress) = directions(&chunks);
        // Requests alone (replies are paired the same way whatever the request chunking).
        let requests = |commands: &[RedisCommand]| -> Vec<(String, Vec<String>, usize)> {
            commands
                .iter()
                .map(|c| (c.command.clone(), c.keys.clone(), c.arg_count))
                .collect()
        };
        for cut in 0..=egress.len() {
            let mut connection = RedisConnection::new();
            connection.feed(Direction::Egress, &egress[..cut], 1);
            connection.feed(Direction::Egress, &egress[cut..], 2);
            let out = connection.finish();
            assert_eq!(requests(&expected), requests(&out), "egress cut at {cut}");
        }
        // The server stream is 150 KB (COMMAND DOCS): every position of the short replies
        // after it, and a stride through the large one.
        let docs_end = ingress.len() - 400;
        let cuts = (0..docs_end).step_by(997).chain(docs_end..=ingress.len());
        for cut in cuts {
            let mut connection = RedisConnection::new();
            connection.feed(Direction::Egress, &egress, 1);
            let mut out = connection.feed(Direction::Ingress, &ingress[..cut], 2);
            out.extend(connection.feed(Direction::Ingress, &ingress[cut..], 3));
            out.extend(connection.finish());
            assert_eq!(summary(&expected), summary(&out), "ingress cut at {cut}");
        }
    }

    #[test]
    fn truncated_server_stream_gives_partial_commands() {
        let chunks = load_data_events(RESP2);
        let (egress, ingress) = directions(&chunks);
        let (complete, _) = run(&chunks);
        let short_replies = ingress.len() - 400;
        for cut in short_replies..ingress.len() {
            let mut connection = RedisConnection::new();
            connection.feed(Direction::Egress, &egress, 1);
            let mut out = connection.feed(Direction::Ingress, &ingress[..cut], 2);
            let answered = out.len();
            out.extend(connection.finish());
            assert_eq!(out.len(), complete.len(), "cut at {cut}");
            for (i, command) in out.iter().enumerate() {
                assert_eq!(command.partial, i >= answered);
                assert_eq!(command.reply.is_none(), i >= answered);
                assert_eq!(command.command, complete[i].command);
            }
        }
    }

    #[test]
    fn inline_commands_and_pipelines() {
        let mut connection = RedisConnection::new();
        assert!(RedisConnection::looks_like_redis(b"PING\r\n"));
        let out = connection.feed(
            Direction::Egress,
            b"PING\r\nGET greeting\r\nAUTH hunter2\n",
            1,
        );
        assert!(out.is_empty());
        let out = connection.feed(
            Direction::Ingress,
            b"+PONG\r\n$5\r\nhello\r\n-WRONGPASS invalid username-password pair\r\n",
            2,
        );
        let got: Vec<(&str, Vec<String>, bool)> = out
            .iter()
            .map(|c| (c.command.as_str(), c.keys.clone(), c.inline))
            .collect();
        assert_eq!(
            got,
            [
                ("PING", vec![], true),
                ("GET", vec!["greeting".to_string()], true),
                ("AUTH", vec![], true)
            ]
        );
        assert_eq!(out[1].reply, Some(ReplyKind::Bulk { len: 5 }));
        assert!(!serde_json::to_string(&out).unwrap().contains("hunter2"));
        assert_eq!(connection.session().user.as_deref(), Some("default"));
    }

    #[test]
    fn errors_echoing_arguments_are_cut() {
        let mut connection = RedisConnection::new();
        connection.feed(
            Direction::Egress,
            b"*2\r\n$5\r\nAUTHX\r\n$6\r\nsecret\r\n",
            1,
        );
        let out = connection.feed(
            Direction::Ingress,
            b"-ERR unknown command 'AUTHX', with args beginning with: 'secret' \r\n",
            2,
        );
        assert_eq!(
            out[0].reply,
            Some(ReplyKind::Error {
                message: "ERR unknown command 'AUTHX'".into()
            })
        );
    }

    #[test]
    fn pubsub_messages_and_pushes_are_not_replies() {
        let mut connection = RedisConnection::new();
        connection.feed(
            Direction::Egress,
            b"*3\r\n$9\r\nSUBSCRIBE\r\n$4\r\nnews\r\n$6\r\nalerts\r\n",
            1,
        );
        let out = connection.feed(
            Direction::Ingress,
            b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$6\r\nalerts\r\n:2\r\n\
              *3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n",
            2,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].command, "SUBSCRIBE");
        assert_eq!(out[0].keys, ["news", "alerts"]);
        connection.feed(Direction::Egress, b"*1\r\n$4\r\nPING\r\n", 3);
        // A RESP3 push (client-side caching invalidation), then PING's reply.
        let out = connection.feed(
            Direction::Ingress,
            b">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nfoo\r\n+PONG\r\n",
            4,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].reply,
            Some(ReplyKind::Status {
                text: "PONG".into()
            })
        );
        assert_eq!(connection.session().unpaired_replies, 0);
    }

    #[test]
    fn resp3_attributes_and_nested_replies() {
        let mut connection = RedisConnection::new();
        connection.feed(Direction::Egress, b"*2\r\n$6\r\nLRANGE\r\n$1\r\nk\r\n", 1);
        // An attribute annotating the reply, then an array holding a nested map.
        let out = connection.feed(
            Direction::Ingress,
            b"|1\r\n+key-popularity\r\n%1\r\n$1\r\nk\r\n,0.19\r\n*2\r\n%1\r\n+a\r\n#t\r\n(3492890328409238509324850943850943825024385\r\n",
            2,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].reply, Some(ReplyKind::Array { len: 2 }));
    }

    #[test]
    fn key_extraction_for_common_command_shapes() {
        let cases: [(&[&str], &str, &[&str]); 12] = [
            (&["MSET", "a", "1", "b", "2"], "MSET", &["a", "b"]),
            (&["BLPOP", "q1", "q2", "0"], "BLPOP", &["q1", "q2"]),
            (
                &["EVAL", "return 1", "2", "k1", "k2", "arg"],
                "EVAL",
                &["k1", "k2"],
            ),
            (
                &["XREAD", "COUNT", "2", "STREAMS", "s1", "s2", "0", "0"],
                "XREAD",
                &["s1", "s2"],
            ),
            (
                &["ZUNIONSTORE", "dst", "2", "a", "b", "WEIGHTS", "1", "2"],
                "ZUNIONSTORE",
                &["dst", "a", "b"],
            ),
            (&["RENAME", "old", "new"], "RENAME", &["old", "new"]),
            (&["config", "set", "maxmemory", "1gb"], "CONFIG SET", &[]),
            (&["OBJECT", "ENCODING", "k"], "OBJECT ENCODING", &["k"]),
            (
                &["XGROUP", "CREATE", "stream", "g", "$"],
                "XGROUP CREATE",
                &["stream"],
            ),
            (&["PUBLISH", "news", "text"], "PUBLISH", &["news"]),
            (
                &[
                    "FT.SEARCH",
                    "docs",
                    "*=>[KNN 5 @vec $B]",
                    "PARAMS",
                    "2",
                    "B",
                    "xx",
                ],
                "FT.SEARCH",
                &["docs"],
            ),
            (
                &["HELLO", "3", "AUTH", "bob", "pw", "SETNAME", "svc"],
                "HELLO",
                &[],
            ),
        ];
        for (args, name, expected_keys) in cases {
            let mut session = RedisSession::default();
            let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            let command = describe_command(&raw, raw.len(), &mut session).unwrap();
            assert_eq!(command.command, name);
            assert_eq!(command.keys, expected_keys, "{args:?}");
            assert_eq!(command.arg_count, args.len() - 1);
            assert_eq!(command.vector_search, name == "FT.SEARCH");
            if name == "HELLO" {
                assert_eq!(session.user.as_deref(), Some("bob"));
                assert_eq!(session.client_name.as_deref(), Some("svc"));
                assert!(session.resp3);
            }
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let mut connection = RedisConnection::new();
        connection.feed(Direction::Egress, b"*1\r\n$4\r\nPING\r\n", 1);
        let hostile = b"*1\r\n".repeat(100_000);
        let out = connection.feed(Direction::Ingress, &hostile, 2);
        assert!(out.is_empty());
        assert!(connection.session().unparsed_bytes > 0);
        // The reader recovers for the next plausible reply.
        let out = connection.feed(Direction::Ingress, b"\r\n+PONG\r\n", 3);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn large_values_stream_through_without_being_kept() {
        let mut connection = RedisConnection::new();
        let value = vec![b'v'; 3 * 1024 * 1024];
        let mut request =
            format!("*3\r\n$3\r\nSET\r\n$8\r\nbig:blob\r\n${}\r\n", value.len()).into_bytes();
        request.extend_from_slice(&value);
        request.extend_from_slice(b"\r\n");
        for piece in request.chunks(16 * 1024) {
            connection.feed(Direction::Egress, piece, 1);
        }
        // Only the first bytes of each argument are held.
        assert!(connection.client.line.capacity() < 1024 * 1024);
        let out = connection.feed(Direction::Ingress, b"+OK\r\n", 2);
        assert_eq!(out[0].keys, ["big:blob"]);
        assert_eq!(out[0].arg_count, 2);
    }

    #[test]
    fn looks_like_redis_accepts_commands_only() {
        let (egress, _) = directions(&load_data_events(RESP2));
        assert!(RedisConnection::looks_like_redis(&egress));
        assert!(RedisConnection::looks_like_redis(b"*1\r\n$4\r\nPING\r\n"));
        assert!(RedisConnection::looks_like_redis(b"ping\r\n"));
        assert!(!RedisConnection::looks_like_redis(
            b"GET / HTTP/1.1\r\nHost: x\r\n"
        ));
        assert!(!RedisConnection::looks_like_redis(
            b"*1\r\n$4\r\n\x00\x01\r\n"
        ));
        assert!(!RedisConnection::looks_like_redis(&[
            0, 0, 0, 8, 4, 210, 22, 47
        ]));
        assert!(!RedisConnection::looks_like_redis(
            b"SSH-2.0-OpenSSH_9.2\r\n"
        ));
    }

    #[test]
    fn capture_starting_mid_stream_recovers() {
        let chunks = load_data_events(RESP2);
        let (complete, _) = run(&chunks);
        // Start inside the SET command's value and inside the reply stream before its +OK.
        let set_at = chunks
            .iter()
            .position(|(d, b, _)| {
                *d == Direction::Egress && memchr::memmem::find(b, b"$3\r\nSET").is_some()
            })
            .unwrap();
        let mut late: Vec<Chunk> = chunks[set_at..].to_vec();
        late[0].1.drain(..30);
        let (out, connection) = run(&late);
        assert!(connection.session().unparsed_bytes >= 30);
        // The SET is lost; its +OK has no command and is counted; the rest pair correctly.
        let after_set = complete.iter().position(|c| c.command == "SET").unwrap() + 1;
        assert_eq!(summary(&out), summary(&complete[after_set..]));
        assert_eq!(connection.session().unpaired_replies, 1);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(
            client in proptest::collection::vec(any::<u8>(), 0..2048),
            server in proptest::collection::vec(any::<u8>(), 0..2048),
        ) {
            let mut connection = RedisConnection::new();
            connection.feed(Direction::Egress, &client, 1);
            connection.feed(Direction::Ingress, &server, 2);
            connection.finish();
        }

        #[test]
        fn resp_shaped_garbage_never_panics(
            pieces in proptest::collection::vec(
                prop_oneof![
                    Just(b"*".to_vec()), Just(b"$".to_vec()), Just(b"%".to_vec()),
                    Just(b"|".to_vec()), Just(b"\r\n".to_vec()), Just(b"-1".to_vec()),
                    Just(b"3".to_vec()), Just(b"99999999999999999999".to_vec()),
                    Just(b"+OK".to_vec()), Just(b"_".to_vec()), Just(b">".to_vec()),
                ],
                0..200,
            ),
        ) {
            let bytes = pieces.concat();
            let mut connection = RedisConnection::new();
            connection.feed(Direction::Egress, &bytes, 1);
            connection.feed(Direction::Ingress, &bytes, 2);
            connection.finish();
        }

        #[test]
        fn corrupted_fixture_never_panics(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            piece in 1usize..5000,
        ) {
            let mut chunks = rechunk(&load_data_events(RESP3), piece);
            for (index, value) in flips {
                let chunk = index.index(chunks.len());
                let bytes = &mut chunks[chunk].1;
                if !bytes.is_empty() {
                    let at = index.index(bytes.len());
                    bytes[at] = value;
                }
            }
            run(&chunks);
        }
    }
}
