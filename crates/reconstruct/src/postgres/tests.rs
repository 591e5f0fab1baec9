//! Unit tests of the parser, on captured fixtures through the shared wire-test harness.

use super::*;
use crate::wire::test_harness::{self as harness, directions, load_data_events, rechunk, Chunk};
use proptest::prelude::*;

const SIMPLE: &str = include_str!(concat!(
    env!("AGENTSCOPE_REPO"),
    "/tests/fixtures/postgres/simple_query.jsonl"
));
const ERROR: &str = include_str!(concat!(
    env!("AGENTSCOPE_REPO"),
    "/tests/fixtures/postgres/query_error.jsonl"
));
const EXTENDED: &str = include_str!(concat!(
    env!("AGENTSCOPE_REPO"),
    "/tests/fixtures/postgres/extended_query.jsonl"
));
const PREPARED: &str = include_str!(concat!(
    env!("AGENTSCOPE_REPO"),
    "/tests/fixtures/postgres/prepared_statements.jsonl"
));
const TLS: &str = include_str!(concat!(
    env!("AGENTSCOPE_REPO"),
    "/tests/fixtures/postgres/tls_session.jsonl"
));
const ALL: [(&str, &str); 5] = [
    ("simple_query", SIMPLE),
    ("query_error", ERROR),
    ("extended_query", EXTENDED),
    ("prepared_statements", PREPARED),
    ("tls_session", TLS),
];

/// Feeds every chunk whole, then finishes.
fn run(chunks: &[Chunk]) -> (Vec<SqlStatement>, PostgresConnection) {
    let (out, connection) = harness::run(PostgresConnection::new(), chunks, 0);
    (harness::statements(out), connection)
}

fn summary(statements: &[SqlStatement]) -> Vec<(String, String, Vec<String>, Option<u64>)> {
    statements
        .iter()
        .map(|s| {
            (
                s.text.clone(),
                s.operation.clone(),
                s.tables.clone(),
                s.rows,
            )
        })
        .collect()
}

#[test]
fn psql_simple_queries_are_paired_with_their_results() {
    let (statements, connection) = run(&load_data_events(SIMPLE));
    let session = connection.session();
    assert_eq!(session.user.as_deref(), Some("postgres"));
    assert_eq!(session.database.as_deref(), Some("crm"));
    assert_eq!(session.application_name.as_deref(), Some("psql"));
    assert_eq!(session.auth_method.as_deref(), Some("ok"));
    assert!(session.ssl_requested && !session.encrypted);
    assert!(session
        .server_version
        .as_deref()
        .is_some_and(|v| v.starts_with("15")));
    assert_eq!(session.unparsed_bytes, 0);

    let expected: Vec<(&str, Vec<&str>, Option<u64>)> = vec![
        ("SELECT", vec!["customers"], Some(1)),
        ("INSERT", vec!["customers"], Some(1)),
        ("UPDATE", vec!["public.customers"], Some(2)),
        ("SELECT", vec!["customers"], Some(2)),
        ("SELECT", vec!["customers"], Some(2)),
        ("DELETE", vec!["customers"], Some(1)),
    ];
    assert_eq!(statements.len(), expected.len(), "{statements:#?}");
    for (statement, (operation, tables, rows)) in statements.iter().zip(expected) {
        assert_eq!(statement.operation, operation, "{statement:#?}");
        assert_eq!(statement.tables, tables, "{statement:#?}");
        assert_eq!(statement.rows, rows, "{statement:#?}");
        assert_eq!(statement.protocol, QueryProtocol::Simple);
        assert_eq!(statement.user.as_deref(), Some("postgres"));
        assert_eq!(statement.database.as_deref(), Some("crm"));
        assert!(!statement.partial && !statement.sql_parse_failed);
        assert!(statement.error.is_none());
        assert!(statement.end_ts_ns > statement.ts_ns);
    }
    assert!(statements[0]
        .text
        .starts_with("SELECT id, name, email FROM customers"));
    // Only the `<->` query is a nearest-neighbour search.
    let searches: Vec<bool> = statements.iter().map(|s| s.vector_search).collect();
    assert_eq!(searches, [false, false, false, false, true, false]);
}

#[test]
fn error_response_is_attached_to_its_query() {
    let (statements, _) = run(&load_data_events(ERROR));
    assert_eq!(statements.len(), 2, "{statements:#?}");
    assert_eq!(statements[0].rows, Some(1));
    assert!(statements[0].error.is_none());
    let failed = &statements[1];
    assert_eq!(failed.text, "SELECT * FROM invoices WHERE customer_id = 1");
    assert_eq!(failed.tables, ["invoices"]);
    assert_eq!(failed.operation, "SELECT");
    assert_eq!(failed.sqlstate.as_deref(), Some("42P01"));
    assert_eq!(
        failed.error.as_deref(),
        Some("ERROR 42P01: relation \"invoices\" does not exist")
    );
    assert_eq!(failed.rows, None);
    assert!(!failed.partial);
}

#[test]
fn libpq_extended_protocol_pairs_execute_with_parse_text() {
    let (statements, connection) = run(&load_data_events(EXTENDED));
    assert_eq!(
        connection.session().application_name.as_deref(),
        Some("pgbench")
    );
    assert_eq!(statements.len(), 4, "{statements:#?}");
    for (i, statement) in statements.iter().enumerate() {
        assert_eq!(statement.protocol, QueryProtocol::Extended);
        assert_eq!(statement.statement_name, None, "unnamed statement");
        assert_eq!(statement.tables, ["customers"]);
        assert_eq!(statement.rows, Some(1));
        let (text, operation) = if i % 2 == 0 {
            (
                "SELECT name, email, plan FROM customers WHERE id = $1;",
                "SELECT",
            )
        } else {
            (
                "UPDATE customers SET balance = balance + 1 WHERE id = $1;",
                "UPDATE",
            )
        };
        assert_eq!(statement.text, text);
        assert_eq!(statement.operation, operation);
        assert!(!statement.partial);
    }
}

#[test]
fn named_prepared_statements_are_resolved_at_bind() {
    let (statements, _) = run(&load_data_events(PREPARED));
    // The two Parse-only batches report nothing; each of the four executions does.
    assert_eq!(statements.len(), 4, "{statements:#?}");
    let names: Vec<Option<&str>> = statements
        .iter()
        .map(|s| s.statement_name.as_deref())
        .collect();
    assert_eq!(names, [Some("P_0"), Some("P_1"), Some("P_0"), Some("P_1")]);
    assert_eq!(statements[2].operation, "SELECT");
    assert!(statements[2].text.starts_with("SELECT name, email"));
    assert_eq!(statements[3].operation, "UPDATE");
    assert!(statements.iter().all(|s| s.rows == Some(1) && !s.partial));
}

#[test]
fn tls_upgrade_stops_parsing_and_is_reported() {
    let chunks = load_data_events(TLS);
    let (statements, connection) = run(&chunks);
    assert!(statements.is_empty(), "{statements:#?}");
    let session = connection.session();
    assert!(session.ssl_requested && session.encrypted);
    let (egress, ingress) = directions(&chunks);
    // Everything after the 8-byte SSLRequest and the 1-byte 'S' is ciphertext.
    assert_eq!(
        session.unparsed_bytes,
        (egress.len() - 8 + ingress.len() - 1) as u64
    );
}

#[test]
fn stream_starting_at_the_startup_message_is_parsed_like_the_whole_one() {
    // What a TLS-plaintext capture (libssl) of the same session looks like: no SSLRequest
    // and no 'N', the first bytes are the StartupMessage.
    let chunks = load_data_events(SIMPLE);
    let (expected, _) = run(&chunks);
    assert_eq!(chunks[0].1.len(), 8, "SSLRequest");
    assert_eq!(chunks[1].1, b"N");
    let (statements, connection) = run(&chunks[2..]);
    assert_eq!(summary(&statements), summary(&expected));
    assert!(!connection.session().ssl_requested);
    assert_eq!(connection.session().user.as_deref(), Some("postgres"));
}

#[test]
fn gss_encryption_refused_then_startup() {
    let mut connection = PostgresConnection::new();
    let gss_request = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];
    assert!(PostgresConnection::looks_like_postgres(&gss_request));
    connection.feed(Direction::Egress, &gss_request, 1);
    connection.feed(Direction::Ingress, b"N", 2);
    let body = b"\0\x03\0\0user\0agent\0database\0crm\0\0";
    let mut startup = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    startup.extend_from_slice(body);
    connection.feed(Direction::Egress, &startup, 3);
    let session = connection.session();
    assert_eq!(session.user.as_deref(), Some("agent"));
    assert_eq!(session.database.as_deref(), Some("crm"));
    assert!(!session.encrypted);
    assert_eq!(session.unparsed_bytes, 0);
}

#[test]
fn any_chunking_gives_the_same_statements() {
    for (name, fixture) in ALL {
        let chunks = load_data_events(fixture);
        let (whole, _) = run(&chunks);
        let (bytewise, _) = run(&rechunk(&chunks, 1));
        assert_eq!(summary(&whole), summary(&bytewise), "{name}: byte by byte");
        for piece in [2, 3, 7, 64] {
            let (pieces, _) = run(&rechunk(&chunks, piece));
            assert_eq!(
                summary(&whole),
                summary(&pieces),
                "{name}: pieces of {piece}"
            );
        }
    }
}

#[test]
fn splitting_each_direction_at_every_position_gives_the_same_statements() {
    for (name, fixture) in ALL {
        let chunks = load_data_events(fixture);
        let (expected, _) = run(&chunks);
        let (egress, ingress) = directions(&chunks);
        let summarise = |out| summary(&harness::statements(out));
        let expected = summary(&expected);
        for (direction, len) in [
            (Direction::Egress, egress.len()),
            (Direction::Ingress, ingress.len()),
        ] {
            harness::assert_same_at_every_cut(
                name,
                PostgresConnection::new,
                &egress,
                &ingress,
                direction,
                0..=len,
                summarise,
                &expected,
            );
        }
    }
}

#[test]
fn truncated_server_stream_gives_partial_statements() {
    let chunks = load_data_events(SIMPLE);
    let (egress, ingress) = directions(&chunks);
    let (complete, _) = run(&chunks);
    for cut in 0..ingress.len() {
        let mut connection = PostgresConnection::new();
        let mut out = connection.feed(Direction::Egress, &egress, 1);
        out.extend(connection.feed(Direction::Ingress, &ingress[..cut], 2));
        let answered = out.len();
        out.extend(connection.finish());
        // Every query is still reported, in order; those not answered are partial.
        assert_eq!(out.len(), complete.len(), "cut at {cut}");
        for (i, (got, want)) in out.iter().zip(&complete).enumerate() {
            assert_eq!(got.text, want.text);
            assert_eq!(got.partial, i >= answered, "cut at {cut}: {got:#?}");
        }
    }
}

#[test]
fn query_cut_off_mid_message_is_reported_partial_with_its_prefix() {
    let mut connection = PostgresConnection::new();
    let mut message = vec![b'Q'];
    let sql = b"SELECT name FROM customers WHERE plan = 'enterprise'\0";
    message.extend_from_slice(&((sql.len() + 4) as u32).to_be_bytes());
    message.extend_from_slice(sql);
    assert!(connection
        .feed(Direction::Egress, &message[..30], 7)
        .is_empty());
    let out = connection.finish();
    assert_eq!(out.len(), 1);
    assert!(out[0].partial && out[0].text_truncated);
    assert_eq!(out[0].text, "SELECT name FROM customer");
    assert_eq!(out[0].operation, "SELECT");
    assert_eq!(out[0].ts_ns, 7);
}

#[test]
fn capture_starting_mid_connection_resynchronises() {
    let chunks = load_data_events(SIMPLE);
    let (complete, _) = run(&chunks);
    // Capture starts inside the first query's text and inside its answer; the chunks after
    // that arrive as captured.
    let first_query = chunks
        .iter()
        .position(|(_, bytes, _)| bytes.first() == Some(&b'Q'))
        .unwrap();
    let mut late: Vec<Chunk> = chunks[first_query..].to_vec();
    let text_at = memchr::memmem::find(&late[0].1, b"pro'").unwrap();
    late[0].1.drain(..text_at);
    let answer_at = memchr::memmem::find(&late[1].1, b"Alan Turing").unwrap();
    late[1].1.drain(..answer_at);
    let (out, connection) = run(&late);
    assert!(connection.session().unparsed_bytes > 0);
    assert_eq!(connection.session().user, None);
    // The first query's answer arrives without its query: reported, empty text, partial.
    assert!(out[0].text.is_empty() && out[0].partial, "{out:#?}");
    assert_eq!(out[0].operation, "SELECT");
    assert_eq!(out[0].rows, Some(1));
    // Everything after it is complete and right.
    assert_eq!(summary(&out[1..]), summary(&complete[1..]));
    assert!(out[1..].iter().all(|s| !s.partial));
}

#[test]
fn looks_like_postgres_accepts_startup_and_encryption_requests_only() {
    for fixture in [SIMPLE, TLS] {
        let chunks = load_data_events(fixture);
        let (egress, _) = directions(&chunks);
        assert!(PostgresConnection::looks_like_postgres(&egress));
    }
    let startup: Vec<u8> = {
        let body = b"\0\x03\0\0user\0agent\0\0";
        let mut m = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        m.extend_from_slice(body);
        m
    };
    assert!(PostgresConnection::looks_like_postgres(&startup));
    assert!(PostgresConnection::looks_like_postgres(&[
        0, 0, 0, 8, 4, 210, 22, 48
    ]));
    assert!(!PostgresConnection::looks_like_postgres(
        b"GET / HTTP/1.1\r\n"
    ));
    assert!(!PostgresConnection::looks_like_postgres(
        b"*1\r\n$4\r\nPING\r\n"
    ));
    assert!(!PostgresConnection::looks_like_postgres(&[0, 0, 0, 8]));
    assert!(!PostgresConnection::looks_like_postgres(&[
        0x16, 3, 1, 2, 0, 1, 0, 1
    ]));
}

#[test]
fn command_tags_give_operation_and_count() {
    assert_eq!(parse_command_tag("INSERT 0 5"), ("INSERT".into(), Some(5)));
    assert_eq!(parse_command_tag("SELECT 12"), ("SELECT".into(), Some(12)));
    assert_eq!(
        parse_command_tag("CREATE TABLE"),
        ("CREATE TABLE".into(), None)
    );
    assert_eq!(parse_command_tag("COPY 3"), ("COPY".into(), Some(3)));
    assert_eq!(parse_command_tag(""), (String::new(), None));
}

#[test]
fn sql_analysis_finds_tables_and_vector_search() {
    let cases: [(&str, &str, &[&str], bool); 9] = [
        (
            "SELECT * FROM crm.customers c JOIN orders o ON o.cid = c.id",
            "SELECT",
            &["crm.customers", "orders"],
            false,
        ),
        (
            "INSERT INTO audit_log (x) SELECT x FROM staging",
            "INSERT",
            &["audit_log", "staging"],
            false,
        ),
        (
            "WITH recent AS (SELECT * FROM events) SELECT * FROM recent",
            "SELECT",
            &["events"],
            false,
        ),
        ("SELECT * FROM generate_series(1, 3)", "SELECT", &[], false),
        (
            "SELECT id FROM items ORDER BY embedding <=> '[1,2,3]' LIMIT 5",
            "SELECT",
            &["items"],
            true,
        ),
        (
            "SELECT id FROM items ORDER BY embedding <#> $1 LIMIT 5",
            "SELECT",
            &["items"],
            true,
        ),
        (
            "SELECT cosine_distance(embedding, $1::vector) FROM docs",
            "SELECT",
            &["docs"],
            true,
        ),
        (
            "INSERT INTO docs (embedding) VALUES ('[1,2]'::vector)",
            "INSERT",
            &["docs"],
            false,
        ),
        (
            "SELECT '<->' AS not_an_operator FROM t -- a <-> b",
            "SELECT",
            &["t"],
            false,
        ),
    ];
    for (sql, operation, tables, vector) in cases {
        let analysis = analyse_sql(sql);
        assert!(!analysis.parse_failed, "{sql}");
        assert_eq!(analysis.operation, operation, "{sql}");
        assert_eq!(analysis.tables, tables, "{sql}");
        let vector_search =
            analysis.distance_operator || analysis.vector_cast && analysis.operation == "SELECT";
        assert_eq!(vector_search, vector, "{sql}");
    }
    let broken = analyse_sql("SELEKT oops FROM");
    assert!(broken.parse_failed);
    assert_eq!(broken.operation, "SELEKT");
    assert!(broken.tables.is_empty());
}

#[test]
fn failed_parse_without_execute_is_reported_with_its_error() {
    let mut connection = PostgresConnection::new();
    let mut client = Vec::new();
    let parse_body = b"s1\0SELEC name FROM\0\0\0";
    client.push(b'P');
    client.extend_from_slice(&((parse_body.len() + 4) as u32).to_be_bytes());
    client.extend_from_slice(parse_body);
    client.extend_from_slice(b"S\0\0\0\x04");
    assert!(connection.feed(Direction::Egress, &client, 1).is_empty());
    let error_body = b"SERROR\0VERROR\0C42601\0Msyntax error at or near \"WHERE\"\0\0";
    let mut server = vec![b'E'];
    server.extend_from_slice(&((error_body.len() + 4) as u32).to_be_bytes());
    server.extend_from_slice(error_body);
    server.extend_from_slice(b"Z\0\0\0\x05I");
    let out = connection.feed(Direction::Ingress, &server, 2);
    assert_eq!(out.len(), 1, "{out:#?}");
    assert_eq!(out[0].statement_name.as_deref(), Some("s1"));
    assert_eq!(out[0].sqlstate.as_deref(), Some("42601"));
    assert!(out[0].sql_parse_failed);
    assert_eq!(out[0].operation, "SELEC");
    assert_eq!(out[0].text, "SELEC name FROM");
}

#[test]
fn bind_parameters_are_not_kept() {
    let chunks = load_data_events(EXTENDED);
    let (statements, _) = run(&chunks);
    let json = serde_json::to_string(&statements).unwrap();
    // pgbench bound the value "2"; results (names, emails) are never kept either.
    assert!(!json.contains("Alan Turing") && !json.contains("alan@example.com"));
}

proptest! {
    #[test]
    fn random_bytes_never_panic(
        client in proptest::collection::vec(any::<u8>(), 0..2048),
        server in proptest::collection::vec(any::<u8>(), 0..2048),
        split in 0usize..2048,
    ) {
        let mut connection = PostgresConnection::new();
        let cut = split.min(client.len());
        connection.feed(Direction::Egress, &client[..cut], 1);
        connection.feed(Direction::Ingress, &server, 2);
        connection.feed(Direction::Egress, &client[cut..], 3);
        connection.finish();
    }

    #[test]
    fn corrupted_fixture_never_panics(
        fixture in 0usize..5,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        piece in 1usize..300,
    ) {
        let mut chunks = rechunk(&load_data_events(ALL[fixture].1), piece);
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

    #[test]
    fn random_split_points_give_the_same_statements(
        fixture in 0usize..5,
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let chunks = load_data_events(ALL[fixture].1);
        let (expected, _) = run(&chunks);
        let (egress, ingress) = directions(&chunks);
        let mut positions: Vec<usize> = cuts.iter().map(|c| c.index(egress.len() + 1)).collect();
        positions.sort_unstable();
        let mut connection = PostgresConnection::new();
        let mut out = Vec::new();
        let mut from = 0;
        for to in positions.into_iter().chain([egress.len()]) {
            out.extend(connection.feed(Direction::Egress, &egress[from..to], 1));
            from = to;
        }
        out.extend(connection.feed(Direction::Ingress, &ingress, 2));
        out.extend(connection.finish());
        prop_assert_eq!(summary(&expected), summary(&out));
    }
}
