//! Command interpretation: names, subcommands and the keys a request addresses, never its
//! values.

#[allow(unused_imports)]
use super::*;

/// Upper-cased command name, subcommand, keys, from the (kept) arguments of a request.
pub(super) fn describe_command(
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

pub(super) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `numkeys key...` starting at `rest[at]`.
pub(super) fn numkeys_keys(rest: &[&[u8]], at: usize) -> Vec<String> {
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
pub(super) fn first_arg_is_key(name: &str) -> bool {
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

pub(super) fn is_command_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'|')
}

/// Inline commands are accepted only for names clients really send inline (health checks,
/// telnet sessions), so text protocols are not mistaken for Redis.
pub(super) fn is_known_command(word: &[u8]) -> bool {
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
pub(super) fn looks_like_http_request_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0") || line.ends_with(b" HTTP/2")
}

pub(super) fn parse_int(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}
