//! Unit tests of the parser, on captured fixtures through the shared wire-test harness.

use super::*;
use crate::wire::test_harness::{self as harness, directions, load_data_events, rechunk, Chunk};
use proptest::prelude::*;

const RESP2: &str = include_str!(concat!(
    env!("AGENTSCOPE_REPO"),
    "/tests/fixtures/redis/resp2_session.jsonl"
));
const RESP3: &str = include_str!(concat!(
    env!("AGENTSCOPE_REPO"),
    "/tests/fixtures/redis/resp3_session.jsonl"
));
const PASSWORD: &str = "fixture-password-not-a-secret";

/// Feeds every chunk whole, then finishes.
fn run(chunks: &[Chunk]) -> (Vec<RedisCommand>, RedisConnection) {
    let (out, connection) = harness::run(RedisConnection::new(), chunks, 0);
    (harness::commands(out), connection)
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
                message: "WRONGTYPE Operation against a key holding the wrong kind of value".into(),
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
    let expected_requests = requests(&expected);
    harness::assert_same_at_every_cut(
        "resp2",
        RedisConnection::new,
        &egress,
        &[],
        Direction::Egress,
        0..=egress.len(),
        |out| requests(&harness::commands(out)),
        &expected_requests,
    );
    // The server stream is 150 KB (COMMAND DOCS): every position of the short replies
    // after it, and a stride through the large one.
    let docs_end = ingress.len() - 400;
    let cuts = (0..docs_end).step_by(997).chain(docs_end..=ingress.len());
    let expected = summary(&expected);
    harness::assert_same_at_every_cut(
        "resp2",
        RedisConnection::new,
        &egress,
        &ingress,
        Direction::Ingress,
        cuts,
        |out| summary(&harness::commands(out)),
        &expected,
    );
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
