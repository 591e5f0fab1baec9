//! The redaction policy as a property: a secret from any family, in a realistic carrier, after
//! any amount of earlier traffic, split at any boundary (two writes, many writes, one byte per
//! write, 16 KiB chunks), never reaches an output: not the collector's events, not their JSON
//! lines, not a capture written and read back, not the pipeline's graph JSON.

use proptest::prelude::*;

use super::EventRedactor;
// The whole-output checks drive the layers above redaction (pipeline, recorder, replay): those
// are dev-dependencies of this crate only, so the library itself cannot call up.
use crate::event::{Direction, Event, EventBody, Header, PayloadSource};
use agentscope_analysis::model::{HostOnlyIdentity, ModelOptions};
use agentscope_analysis::pipeline::Pipeline;
use agentscope_capture::capture::codec::Entry;
use agentscope_capture::capture::reader::CaptureReader;
use agentscope_capture::capture::recorder::{Recorder, RecorderOptions};
use agentscope_capture::capture::CaptureMetadata;
use agentscope_event::event_json::events_from_json_lines;
use agentscope_reconstruct::ReconstructOptions;

const CHUNK: usize = 16384;
const PID: u32 = 4242;
const FD: i32 = 7;

/// Secret families and the carrier each travels in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Cookie,
    SetCookie,
    TokenHeader,
    QueryParameter,
    FormField,
    JsonKey,
    ToolArguments,
    ConnectionString,
    SqlPassword,
    PostgresPasswordMessage,
    BearerInText,
}

pub(crate) const FAMILIES: &[Family] = &[
    Family::Cookie,
    Family::SetCookie,
    Family::TokenHeader,
    Family::QueryParameter,
    Family::FormField,
    Family::JsonKey,
    Family::ToolArguments,
    Family::ConnectionString,
    Family::SqlPassword,
    Family::PostgresPasswordMessage,
    Family::BearerInText,
];

/// Secret-bearing names by family, built from the patterns the policy promises to cover.
fn header_name(pick: usize) -> String {
    let vendors = [
        "",
        "X-",
        "X-Amz-",
        "X-Vault-",
        "Ocp-Apim-",
        "Private-",
        "X-Acme-Cloud-",
    ];
    let words = [
        "Token",
        "Security-Token",
        "Auth-Token",
        "Subscription-Key",
        "Api-Key",
        "Secret",
        "Session-Token",
        "Credential",
        "Signature",
        "Password",
    ];
    format!(
        "{}{}",
        vendors[pick % vendors.len()],
        words[pick / 7 % words.len()]
    )
}

fn parameter_name(pick: usize) -> &'static str {
    [
        "key",
        "api_key",
        "access_token",
        "token",
        "X-Amz-Signature",
        "sig",
        "X-Amz-Security-Token",
        "client_secret",
        "apiKey",
        "refresh_token",
    ][pick % 10]
}

fn json_key(pick: usize) -> String {
    let fixed = [
        "passwd",
        "password",
        "private_key",
        "aws_secret_access_key",
        "client_secret",
        "accessToken",
        "sessionToken",
        "db_pass",
    ];
    if pick.is_multiple_of(3) {
        // `*_API_KEY`: any service name.
        let services = ["OPENAI", "ANTHROPIC", "MY_TOOL", "STRIPE", "X"];
        format!("{}_API_KEY", services[pick / 3 % services.len()])
    } else {
        fixed[pick % fixed.len()].to_string()
    }
}

fn scheme(pick: usize) -> &'static str {
    [
        "postgresql",
        "postgres",
        "mysql",
        "redis",
        "rediss",
        "mongodb",
        "mongodb+srv",
        "amqp",
        "amqps",
    ][pick % 9]
}

/// A connection's bytes both ways, as the client sends and receives them.
pub(crate) struct Carrier {
    pub egress: Vec<u8>,
    pub ingress: Vec<u8>,
    pub port: u16,
}

fn http_padding(padding: usize) -> Vec<u8> {
    if padding == 0 {
        return Vec::new();
    }
    let mut out = format!(
        "POST /upload HTTP/1.1\r\nHost: api.example.com\r\nContent-Type: text/plain\r\nContent-Length: {padding}\r\n\r\n"
    )
    .into_bytes();
    out.extend(std::iter::repeat_n(b'a', padding));
    out
}

fn http_response(extra_header: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra_header}Content-Length: 2\r\n\r\n{{}}").into_bytes()
}

/// The carrier of `family` holding `secret`, after `padding` bytes of earlier traffic on the
/// same connection.
pub(crate) fn carrier(family: Family, secret: &str, pick: usize, padding: usize) -> Carrier {
    let mut egress = http_padding(padding);
    let padded_response = if padding > 0 {
        http_response("")
    } else {
        Vec::new()
    };
    let mut ingress = padded_response;
    let mut port = 80;
    let request = |target: &str, headers: &str, body: &str| {
        format!(
            "POST {target} HTTP/1.1\r\nHost: api.example.com\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    match family {
        Family::Cookie => {
            egress.extend(
                request(
                    "/v1/x",
                    &format!("Cookie: theme=dark; sid={secret}; lang=en\r\n"),
                    "{}",
                )
                .bytes(),
            );
            ingress.extend(http_response(""));
        }
        Family::SetCookie => {
            egress.extend(request("/login", "", "{}").bytes());
            ingress.extend(http_response(&format!(
                "Set-Cookie: sid={secret}; Path=/; HttpOnly\r\n"
            )));
        }
        Family::TokenHeader => {
            egress.extend(
                request(
                    "/v1/x",
                    &format!("{}: {secret}\r\n", header_name(pick)),
                    "{}",
                )
                .bytes(),
            );
            ingress.extend(http_response(""));
        }
        Family::QueryParameter => {
            let target = format!("/v1/search?q=cats&{}={secret}&page=2", parameter_name(pick));
            egress.extend(request(&target, "", "{}").bytes());
            ingress.extend(http_response(""));
        }
        Family::FormField => {
            let name = ["password", "client_secret", "passwd", "refresh_token"][pick % 4];
            let body = format!("grant_type=password&username=ann&{name}={secret}&scope=all");
            let head = format!(
                "POST /oauth/token HTTP/1.1\r\nHost: login.example.com\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            egress.extend(head.bytes().chain(body.bytes()));
            ingress.extend(http_response(""));
        }
        Family::JsonKey => {
            let body = format!(
                r#"{{"model":"gpt-4o","config":{{"region":"eu","{}": "{secret}"}},"n":1}}"#,
                json_key(pick)
            );
            egress.extend(request("/v1/tools/run", "", &body).bytes());
            ingress.extend(http_response(""));
        }
        Family::ToolArguments => {
            let arguments = serde_json::json!({
                "command": "deploy",
                "env": { json_key(pick): secret },
            })
            .to_string();
            let body = serde_json::json!({
                "model": "gpt-4o",
                "messages": [
                    {"role": "user", "content": "deploy it"},
                    {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "shell", "arguments": arguments}}]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
                ],
            })
            .to_string();
            egress.extend(
                format!(
                    "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .bytes(),
            );
            ingress.extend(http_response(""));
        }
        Family::ConnectionString => {
            let body = serde_json::json!({
                "tool": "db",
                "url": format!("{}://app:{secret}@db.internal:5432/shop", scheme(pick)),
            })
            .to_string();
            egress.extend(request("/v1/tools/run", "", &body).bytes());
            ingress.extend(http_response(""));
        }
        Family::SqlPassword | Family::PostgresPasswordMessage => {
            use super::postgres_password::tests::{message, startup_message};
            port = 5432;
            egress = startup_message("app");
            if family == Family::PostgresPasswordMessage {
                egress.extend(message(b'p', format!("{secret}\0").as_bytes()));
            } else {
                egress.extend(message(b'p', b"not-the-secret\0"));
            }
            let filler = "x".repeat(padding);
            egress.extend(message(b'Q', format!("SELECT '{filler}'\0").as_bytes()));
            if family == Family::SqlPassword {
                let statement = [
                    format!("ALTER USER app WITH PASSWORD '{secret}'"),
                    format!("CREATE ROLE reporter LOGIN PASSWORD '{secret}'"),
                    format!("ALTER ROLE app ENCRYPTED PASSWORD '{secret}' VALID UNTIL 'infinity'"),
                    format!("CREATE USER 'u'@'%' IDENTIFIED BY '{secret}'"),
                ][pick % 4]
                    .clone();
                egress.extend(message(b'Q', format!("{statement}\0").as_bytes()));
            }
            egress.extend(message(b'X', b""));
        }
        Family::BearerInText => {
            let body = serde_json::json!({
                "role": "tool",
                "content": format!("ran: curl -H 'Authorization: Bearer {secret}' https://api.example.com"),
            })
            .to_string();
            egress.extend(request("/v1/tools/result", "", &body).bytes());
            ingress.extend(http_response(""));
        }
    }
    Carrier {
        egress,
        ingress,
        port,
    }
}

fn header(ts_ns: u64) -> Header {
    Header {
        ts_ns,
        time_unix_ns: 1_700_000_000_000_000_000 + ts_ns,
        pid: PID,
        tid: PID,
        ppid: 1,
        uid: 1000,
        gid: 1000,
        cgroup_id: 1,
        comm: "agent".into(),
    }
}

/// The events the kernel would deliver: one call per write, each call cut in 16 KiB chunks.
pub(crate) fn events_of(
    carrier: &Carrier,
    egress_cuts: &[usize],
    ingress_cuts: &[usize],
) -> Vec<Event> {
    let mut ts = 1_000;
    let mut next_ts = || {
        ts += 1_000;
        ts
    };
    let mut events = vec![Event {
        header: header(next_ts()),
        body: EventBody::Connect {
            fd: FD,
            family: "inet",
            addr: "10.0.0.9".into(),
            port: carrier.port,
            ret: 0,
            payloads_sampled_out: false,
        },
    }];
    let mut call_id = 1;
    let mut writes =
        |bytes: &[u8], cuts: &[usize], direction: Direction, events: &mut Vec<Event>, ts: u64| {
            let mut bounds: Vec<usize> = cuts
                .iter()
                .copied()
                .filter(|&c| c > 0 && c < bytes.len())
                .collect();
            bounds.push(0);
            bounds.push(bytes.len());
            bounds.sort_unstable();
            bounds.dedup();
            for pair in bounds.windows(2) {
                let call = &bytes[pair[0]..pair[1]];
                call_id += 1;
                let chunks: Vec<&[u8]> = call.chunks(CHUNK).collect();
                for (seq, chunk) in chunks.iter().enumerate() {
                    events.push(Event {
                        header: header(ts + call_id),
                        body: EventBody::Data {
                            source: PayloadSource::Socket,
                            direction,
                            fd: FD,
                            conn_id: 0,
                            call_id,
                            seq: seq as u32,
                            offset: (seq * CHUNK) as u64,
                            total_len: call.len() as u64,
                            lost_bytes: 0,
                            last: seq + 1 == chunks.len(),
                            data: chunk.to_vec(),
                        },
                    });
                }
            }
        };
    let ts = next_ts();
    writes(
        &carrier.egress,
        egress_cuts,
        Direction::Egress,
        &mut events,
        ts,
    );
    writes(
        &carrier.ingress,
        ingress_cuts,
        Direction::Ingress,
        &mut events,
        ts + 1_000_000,
    );
    events.push(Event {
        header: header(ts + 2_000_000),
        body: EventBody::Close { fd: FD },
    });
    events
}

/// Each direction's bytes, reassembled from data events.
fn reassembled(events: &[Event]) -> (Vec<u8>, Vec<u8>) {
    let (mut egress, mut ingress) = (Vec::new(), Vec::new());
    for event in events {
        if let EventBody::Data {
            direction, data, ..
        } = &event.body
        {
            match direction {
                Direction::Egress => egress.extend_from_slice(data),
                _ => ingress.extend_from_slice(data),
            }
        }
    }
    (egress, ingress)
}

/// Every place `secret` stands in `original` must be `*` in `redacted` (same length).
pub(crate) fn assert_masked(
    original: &[u8],
    redacted: &[u8],
    secret: &str,
    what: &str,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(original.len(), redacted.len(), "{}: lengths kept", what);
    for at in memchr::memmem::find_iter(original, secret.as_bytes()) {
        let span = &redacted[at..at + secret.len()];
        prop_assert!(
            span.iter().all(|&b| b == b'*'),
            "{}: secret at {} left as {:?}",
            what,
            at,
            String::from_utf8_lossy(&span[..span.len().min(40)])
        );
    }
    Ok(())
}

/// No 8-byte piece of `secret` appears in `text`.
pub(crate) fn assert_absent(text: &[u8], secret: &str, what: &str) -> Result<(), TestCaseError> {
    for piece in secret.as_bytes().windows(8) {
        prop_assert!(
            memchr::memmem::find(text, piece).is_none(),
            "{}: {:?} of the secret appears",
            what,
            String::from_utf8_lossy(piece)
        );
    }
    Ok(())
}

/// Runs events through the collector-level redactor and checks every output.
pub(crate) fn check_every_output(
    family: Family,
    secret: &str,
    carrier: &Carrier,
    events: Vec<Event>,
    whole_pipeline: bool,
) -> Result<(), TestCaseError> {
    let mut redactor = EventRedactor::default();
    let mut redacted = events;
    for event in &mut redacted {
        redactor.redact(event);
    }
    let what = format!("{family:?}");
    let (egress, ingress) = reassembled(&redacted);
    assert_masked(&carrier.egress, &egress, secret, &format!("{what} egress"))?;
    assert_masked(
        &carrier.ingress,
        &ingress,
        secret,
        &format!("{what} ingress"),
    )?;
    if !whole_pipeline {
        return Ok(());
    }

    // JSON lines, as `collect --json` prints them, and read back.
    let lines: String = redacted
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    assert_absent(lines.as_bytes(), secret, &format!("{what} json lines"))?;
    let parsed = events_from_json_lines(&lines).unwrap();
    let (egress, ingress) = reassembled(&parsed);
    assert_masked(
        &carrier.egress,
        &egress,
        secret,
        &format!("{what} json egress"),
    )?;
    assert_masked(
        &carrier.ingress,
        &ingress,
        secret,
        &format!("{what} json ingress"),
    )?;

    // A capture written while the pipeline runs, and read back.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.cap");
    let mut pipeline = Pipeline::new(
        ReconstructOptions::default(),
        ModelOptions::default(),
        Box::new(HostOnlyIdentity),
    );
    let mut recorder = Recorder::start(
        RecorderOptions::new(path.clone(), capture_metadata()),
        &mut pipeline,
    )
    .unwrap();
    for event in &redacted {
        pipeline.push(event);
        recorder.record(event, &mut pipeline).unwrap();
    }
    pipeline.finish();
    recorder.finish(&mut pipeline).unwrap();
    let graph = serde_json::to_string_pretty(&pipeline.snapshot()).unwrap();
    assert_absent(graph.as_bytes(), secret, &format!("{what} graph json"))?;
    let raw = std::fs::read(&path).unwrap();
    assert_absent(&raw, secret, &format!("{what} capture bytes"))?;
    let reader = CaptureReader::open(&path).unwrap();
    let read_back: Vec<Event> = reader
        .event_blocks()
        .flat_map(|b| reader.read_events(b).1)
        .filter_map(|e| match e {
            Entry::Event(event) => Some(event),
            _ => None,
        })
        .collect();
    let (egress, ingress) = reassembled(&read_back);
    assert_masked(
        &carrier.egress,
        &egress,
        secret,
        &format!("{what} capture egress"),
    )?;
    assert_masked(
        &carrier.ingress,
        &ingress,
        secret,
        &format!("{what} capture ingress"),
    )?;
    let mut replay = agentscope_capture::capture::replay::Replay::new(reader);
    replay.run_to_end();
    let replayed = serde_json::to_string(&replay.pipeline().snapshot()).unwrap();
    assert_absent(
        replayed.as_bytes(),
        secret,
        &format!("{what} replayed graph"),
    )?;
    Ok(())
}

/// What the collector writes in a capture it records with redaction on.
fn capture_metadata() -> CaptureMetadata {
    CaptureMetadata {
        created_by: "agentscope test".into(),
        secrets_redacted: true,
        model_max_nodes: ModelOptions::default().max_nodes,
        model_max_edges: ModelOptions::default().max_edges,
        ..Default::default()
    }
}

fn secret_strategy() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{14,40}".prop_map(|s| format!("Zq{s}"))
}

fn family_strategy() -> impl Strategy<Value = Family> {
    (0..FAMILIES.len()).prop_map(|i| FAMILIES[i])
}

/// Cut points: none, one anywhere, several anywhere, or every byte around the secret.
fn cuts_for(
    len: usize,
    secret_at: Option<usize>,
    secret_len: usize,
    style: u8,
    seeds: &[usize],
) -> Vec<usize> {
    match style % 4 {
        0 => vec![seeds[0] % (len + 1)],
        1 => seeds.iter().map(|s| s % (len + 1)).collect(),
        2 => match secret_at {
            // One byte per write over the name, the separators and the value.
            Some(at) => (at.saturating_sub(48)..(at + secret_len + 8).min(len)).collect(),
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// The whole pipeline, every output.
    #[test]
    fn no_secret_reaches_any_output(
        family in family_strategy(),
        secret in secret_strategy(),
        pick in 0usize..1000,
        padding in prop_oneof![Just(0usize), 0usize..400, 16000usize..16800],
        style in 0u8..4,
        seeds in proptest::collection::vec(0usize..1_000_000, 1..12),
    ) {
        let carrier = carrier(family, &secret, pick, padding);
        let egress_at = memchr::memmem::find(&carrier.egress, secret.as_bytes());
        let ingress_at = memchr::memmem::find(&carrier.ingress, secret.as_bytes());
        prop_assert!(egress_at.is_some() || ingress_at.is_some(), "{:?} carries the secret", family);
        let egress_cuts = cuts_for(carrier.egress.len(), egress_at, secret.len(), style, &seeds);
        let ingress_cuts = cuts_for(carrier.ingress.len(), ingress_at, secret.len(), style, &seeds);
        let events = events_of(&carrier, &egress_cuts, &ingress_cuts);
        check_every_output(family, &secret, &carrier, events, true)?;
    }
}

/// Two writes split at every boundary, and one byte per write, for every family: the
/// collector-level redactor alone (cheap enough to be exhaustive).
#[test]
fn every_split_of_every_family_is_masked() {
    for &family in FAMILIES {
        for pick in 0..4 {
            let secret = format!("Zq{}Secret{pick}x9", "Ab3".repeat(pick + 3));
            let carrier = carrier(family, &secret, pick * 7 + 1, 0);
            let len = carrier.egress.len().max(carrier.ingress.len());
            for cut in 0..=len {
                let events = events_of(&carrier, &[cut], &[cut]);
                check_every_output(family, &secret, &carrier, events, false)
                    .unwrap_or_else(|e| panic!("{family:?} cut at {cut}: {e}"));
            }
            let every: Vec<usize> = (0..len).collect();
            let events = events_of(&carrier, &every, &every);
            check_every_output(family, &secret, &carrier, events, false)
                .unwrap_or_else(|e| panic!("{family:?} byte by byte: {e}"));
        }
    }
}

/// A secret whose value is far longer than the carried window, split across 16 KiB chunks
/// and single bytes, is masked to its end.
#[test]
fn values_longer_than_the_window_are_masked_to_their_end() {
    let secret = format!("Zq{}", "k7Q".repeat(12_000));
    for family in [
        Family::Cookie,
        Family::JsonKey,
        Family::TokenHeader,
        Family::FormField,
        Family::SqlPassword,
    ] {
        let carrier = carrier(family, &secret, 1, 100);
        for cuts in [
            vec![],
            (0..carrier.egress.len()).step_by(7).collect::<Vec<_>>(),
        ] {
            let events = events_of(&carrier, &cuts, &cuts);
            check_every_output(family, &secret, &carrier, events, false)
                .unwrap_or_else(|e| panic!("{family:?}: {e}"));
        }
    }
}

/// Streams the redactor forgot (more in flight than it tracks) still have an unfinished value
/// masked up to its end.
#[test]
fn forgotten_streams_fail_closed() {
    let mut redactor = EventRedactor::default();
    let key = |pid| super::StreamKey {
        pid,
        source: PayloadSource::Socket,
        direction: Direction::Egress,
        connection: 3,
    };
    let secret = "Zq".to_string() + &"s".repeat(3000);
    let mut first = format!("Cookie: {}", &secret[..2000]).into_bytes();
    redactor.streams.redact_chunk(key(1), 3, &mut first);
    for pid in 2..(super::MAX_STREAMS as u32 + 10) {
        redactor
            .streams
            .redact_chunk(key(pid), 3, &mut b"GET / HTTP/1.1\r\n".to_vec());
    }
    let mut rest = format!("{}\r\nHost: x\r\n", &secret[2000..]).into_bytes();
    redactor.streams.redact_chunk(key(1), 3, &mut rest);
    assert!(
        rest.starts_with(&[b'*'; 1000]),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    assert!(rest.ends_with(b"\r\nHost: x\r\n"));
    assert!(redactor.tracked_streams() <= super::MAX_STREAMS);
}

/// A command line carrying `secret` in one of the forms clients take passwords in.
fn argv_carrier(form: usize, secret: &str) -> Vec<String> {
    let words: Vec<String> = match form % 9 {
        0 => vec![
            "mysql".into(),
            "-uroot".into(),
            format!("-p{secret}"),
            "shop".into(),
        ],
        1 => vec!["tool".into(), format!("--password={secret}")],
        2 => vec![
            "tool".into(),
            "--api-key".into(),
            secret.into(),
            "run".into(),
        ],
        3 => vec![
            "curl".into(),
            "-H".into(),
            format!("Authorization: Bearer {secret}"),
            "https://api.example.com".into(),
        ],
        4 => vec![
            "curl".into(),
            "-H".into(),
            format!("X-Auth-Token: {secret}"),
        ],
        5 => vec![
            "psql".into(),
            format!("postgresql://app:{secret}@db:5432/shop"),
        ],
        6 => vec![
            "env".into(),
            format!("OPENAI_API_KEY={secret}"),
            "agent".into(),
        ],
        7 => vec![
            "sh".into(),
            "-c".into(),
            format!("mysql -h db -p{secret} -e 'select 1' && tool --token {secret}"),
        ],
        _ => vec![
            "redis-cli".into(),
            "-a".into(),
            secret.into(),
            "ping".into(),
        ],
    };
    words
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Secrets in the argv of an exec reach neither the event's JSON line nor the graph.
    #[test]
    fn no_argv_secret_reaches_any_output(form in 0usize..9, secret in secret_strategy()) {
        let mut event = Event {
            header: header(5_000),
            body: EventBody::Exec {
                filename: "/usr/bin/tool".into(),
                argv: argv_carrier(form, &secret),
                argv_truncated: false,
                filename_truncated: false,
            },
        };
        EventRedactor::default().redact(&mut event);
        let line = serde_json::to_string(&event).unwrap();
        assert_absent(line.as_bytes(), &secret, "exec json line")?;
        let mut pipeline = Pipeline::new(
            ReconstructOptions::default(),
            ModelOptions::default(),
            Box::new(HostOnlyIdentity),
        );
        pipeline.push(&event);
        pipeline.finish();
        let graph = serde_json::to_string(&pipeline.snapshot()).unwrap();
        assert_absent(graph.as_bytes(), &secret, "exec graph json")?;
    }
}

proptest! {
    /// Arbitrary bytes, cut anywhere, with any places in their calls (bytes lost or not, said
    /// consistently or not), never panic the redactor and keep every length; bytes it does
    /// not mask are passed through unchanged.
    #[test]
    fn arbitrary_streams_keep_lengths_and_never_panic(
        bytes in proptest::collection::vec(
            prop_oneof![
                any::<u8>(),
                Just(b'"'), Just(b'\\'), Just(b':'), Just(b'='), Just(b'\''), Just(b'\n'),
                Just(b'@'), Just(b'-'),
            ],
            0..600,
        ),
        seeds in proptest::collection::vec(0usize..600, 0..20),
        prefix in prop_oneof![
            Just(&b""[..]), Just(&b"Cookie: "[..]), Just(&b"{\"password\": \""[..]),
            Just(&b"x://u:"[..]), Just(&b"PASSWORD '"[..]), Just(&b"-----BEGIN RSA PRIVATE KEY-----\n"[..]),
            Just(&b"\0\0\0\x19\0\x03\0\0user\0app\0\0p\0\0\0\x0bsecret"[..]),
        ],
        places in proptest::collection::vec(
            (
                0u64..4,
                0u32..4,
                prop_oneof![0u64..40, any::<u64>()],
                any::<bool>(),
                prop_oneof![0u64..600, any::<u64>()],
                prop_oneof![0u64..600, any::<u64>()],
            ),
            0..20,
        ),
    ) {
        let mut stream = prefix.to_vec();
        stream.extend(bytes);
        let mut redactor = EventRedactor::default();
        let key = super::StreamKey {
            pid: 1,
            source: PayloadSource::Socket,
            direction: Direction::Egress,
            connection: 3,
        };
        let mut cuts: Vec<usize> = seeds.iter().map(|s| s % (stream.len() + 1)).collect();
        cuts.push(0);
        cuts.push(stream.len());
        cuts.sort_unstable();
        let mut out = Vec::new();
        for (i, pair) in cuts.windows(2).enumerate() {
            let mut chunk = stream[pair[0]..pair[1]].to_vec();
            // Places of any kind, consistent or not (lost bytes, calls, offsets, caps).
            let place = places.get(i).map(|&(call_id, seq, lost_bytes, last, offset, total_len)| {
                super::ChunkPlace { call_id, seq, lost_bytes, last, offset, total_len }
            });
            redactor.streams.redact_chunk_at(key, 3, place, &mut chunk);
            prop_assert_eq!(chunk.len(), pair[1] - pair[0]);
            out.extend(chunk);
        }
        for (was, now) in stream.iter().zip(&out) {
            prop_assert!(was == now || *now == b'*');
        }
    }
}

proptest! {
    /// Arbitrary command lines never panic argv redaction.
    #[test]
    fn arbitrary_argv_never_panics(
        argv in proptest::collection::vec("(-{0,2}[a-zA-Z_]{0,12}(=|:)?.{0,12}| )+", 0..8),
    ) {
        let mut argv = argv;
        super::redact_argv(&mut argv);
    }
}

/// The records the kernel delivers for one stream's `calls` (their lengths), cut in
/// `chunk`-byte chunks, at most `max_chunks` a call, the records `dropped` picks lost. Lost
/// bytes are reported as collector-ebpf/src/emit.rs reports them: on a call's first delivered
/// record, what the stream lost since its last delivered record; on each record, the call's
/// own bytes lost so far; on the last chunk, the bytes beyond the cap. Returns each delivered
/// record's place and where its bytes start in the stream.
pub(crate) fn kernel_records(
    calls: &[usize],
    chunk: usize,
    max_chunks: usize,
    mut dropped: impl FnMut() -> bool,
) -> Vec<(super::ChunkPlace, usize)> {
    let mut records = Vec::new();
    let mut stream_gap = 0u64;
    let mut call_at = 0;
    for (call_id, &total) in calls.iter().enumerate() {
        let deliverable = total.min(chunk * max_chunks);
        let beyond = (total - deliverable) as u64;
        let mut lost = std::mem::take(&mut stream_gap);
        let mut unreported = lost;
        let mut carried = lost;
        for seq in 0..max_chunks {
            let offset = seq * chunk;
            if offset >= deliverable {
                break;
            }
            let len = chunk.min(deliverable - offset);
            let last = offset + len == deliverable;
            if last {
                lost += beyond;
            }
            if dropped() {
                lost += len as u64;
                unreported += len as u64;
                if last {
                    unreported += beyond;
                }
            } else {
                let place = super::ChunkPlace {
                    call_id: call_id as u64,
                    seq: seq as u32,
                    lost_bytes: lost,
                    last,
                    offset: offset as u64,
                    total_len: total as u64,
                };
                records.push((place, call_at + offset));
                unreported = 0;
                lost -= carried;
                carried = 0;
            }
        }
        stream_gap += unreported;
        call_at += total;
    }
    records
}

/// A PostgreSQL connection from its start: StartupMessage, password message, a query of
/// `filler` bytes, Terminate. Returns the stream, where each message starts, and where the
/// password body is.
fn postgres_connection(
    secret: &str,
    filler: usize,
) -> (Vec<u8>, Vec<usize>, std::ops::Range<usize>) {
    use super::postgres_password::tests::{message, startup_message};
    let messages = [
        startup_message("app"),
        message(b'p', format!("{secret}\0").as_bytes()),
        message(
            b'Q',
            format!("SELECT '{}'\0", "x".repeat(filler)).as_bytes(),
        ),
        message(b'X', b""),
    ];
    let starts: Vec<usize> = messages
        .iter()
        .scan(0, |at, m| {
            let start = *at;
            *at += m.len();
            Some(start)
        })
        .collect();
    let password = starts[1] + 5..starts[2];
    (messages.concat(), starts, password)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Records lost anywhere, in any number (the kernel under a flood), never let a byte of a
    /// PostgreSQL password message's body through, and never panic. The client writes as
    /// PostgreSQL clients do: one byte per write (the hostile-node test), a message per
    /// write, or several messages per write; the calls are cut in chunks (16 KiB, or a few
    /// bytes so that calls span many) up to a cap (96 chunks, or 3 so bytes go beyond it).
    /// Writes are not cut inside messages: no client writes so, and a stream whose start was
    /// lost and whose next write begins inside a message is taken for another protocol (the
    /// rule that lets an HTTP stream with an early loss go; postgres_password.rs, the limit).
    #[test]
    fn dropped_records_never_let_the_postgres_password_through(
        secret in secret_strategy(),
        filler in prop_oneof![Just(0usize), 0usize..64, 16300usize..16500],
        writes in 0u8..3,
        chunking in 0u8..3,
        rate in 0u32..70,
        drops in proptest::collection::vec(0u32..100, 1..97),
        seeds in proptest::collection::vec(any::<bool>(), 4),
    ) {
        let (stream, starts, password) = postgres_connection(&secret, filler);
        let bounds: Vec<usize> = match writes {
            0 => (0..stream.len()).collect(),
            1 => starts.clone(),
            _ => starts.iter().zip(&seeds).filter(|(_, &cut)| cut).map(|(&at, _)| at).collect(),
        };
        let checked = deliver_with_drops(&stream, bounds, chunking, rate, &drops, password);
        prop_assert!(checked.is_ok(), "{}", checked.unwrap_err());
    }
}

/// The text families (the PostgreSQL ones have their own loss tests above).
const TEXT_FAMILIES: &[Family] = &[
    Family::Cookie,
    Family::SetCookie,
    Family::TokenHeader,
    Family::QueryParameter,
    Family::FormField,
    Family::JsonKey,
    Family::ToolArguments,
    Family::ConnectionString,
    Family::BearerInText,
];

/// The loss proptests' common step: the client writes `stream` in calls that start at `bounds`
/// (the stream's start and end are added), the kernel cuts them into records by one of three
/// chunkings (16 KiB up to 96 chunks, or a few bytes up to a cap, so calls span many records and
/// run beyond the cap) and drops a record when the next of `drops` is under `rate`; the records
/// left are checked by [`check_lossy_delivery`].
fn deliver_with_drops(
    stream: &[u8],
    mut bounds: Vec<usize>,
    chunking: u8,
    rate: u32,
    drops: &[u32],
    secret: std::ops::Range<usize>,
) -> Result<(), String> {
    bounds.push(0);
    bounds.push(stream.len());
    bounds.sort_unstable();
    bounds.dedup();
    let calls: Vec<usize> = bounds.windows(2).map(|w| w[1] - w[0]).collect();
    let (chunk, max_chunks) = [(CHUNK, 96), (5, 3), (2, 4)][chunking as usize];
    let mut k = 0;
    let records = kernel_records(&calls, chunk, max_chunks, || {
        k += 1;
        drops[k % drops.len()] < rate
    });
    check_lossy_delivery(stream, &calls, chunk, records, secret)
}

/// Delivers `stream`'s `records` (as [`kernel_records`] made them for `calls`) through one
/// redactor; fails if a delivered byte of `secret_at..secret_at + secret_len` is not masked.
fn check_lossy_delivery(
    stream: &[u8],
    calls: &[usize],
    chunk: usize,
    records: Vec<(super::ChunkPlace, usize)>,
    secret: std::ops::Range<usize>,
) -> Result<(), String> {
    let mut redactor = super::StreamRedactor::default();
    let key = super::StreamKey {
        pid: PID,
        source: PayloadSource::Socket,
        direction: Direction::Egress,
        connection: FD as u64,
    };
    let call_at: Vec<usize> = calls
        .iter()
        .scan(0, |at, &len| {
            let start = *at;
            *at += len;
            Some(start)
        })
        .collect();
    let mut delivered = Vec::new();
    for (place, at) in records {
        let call_end = call_at[place.call_id as usize] + calls[place.call_id as usize];
        let end = (at + chunk).min(call_end);
        let mut data = stream[at..end].to_vec();
        redactor.redact_chunk_at(key, FD, Some(place), &mut data);
        delivered.extend_from_slice(&data);
        for (i, &b) in data.iter().enumerate() {
            if secret.contains(&(at + i)) && b != b'*' {
                return Err(format!(
                    "secret byte {} passed; delivered: {:?}",
                    at + i,
                    String::from_utf8_lossy(&delivered)
                ));
            }
        }
    }
    Ok(())
}

/// Under a flood the kernel drops whole records, and the bytes lost may be a secret's name or
/// part of it (`Cook` of `Cookie:`, `_KEY` of `OPENAI_API_KEY`), its separator, or part of its
/// value. A run of 1 to 13 one-byte writes lost anywhere from 40 bytes before a secret to its
/// end, in every text family, never lets a delivered byte of the secret through (the
/// hostile-node test's client writes a byte per call; it found this leak).
#[test]
fn a_lost_run_of_writes_near_a_secret_never_lets_it_through() {
    for &family in TEXT_FAMILIES {
        for pick in 0..4 {
            let secret = format!("Zq{}Secret{pick}x9", "Ab3".repeat(pick + 3));
            let carrier = carrier(family, &secret, pick * 7 + 1, 0);
            for stream in [&carrier.egress, &carrier.ingress] {
                let Some(at) = memchr::memmem::find(stream, secret.as_bytes()) else {
                    continue;
                };
                let calls = vec![1usize; stream.len()];
                for run in [1usize, 2, 3, 5, 8, 13] {
                    for start in at.saturating_sub(40)..at + secret.len() {
                        let mut k = 0;
                        let records = kernel_records(&calls, CHUNK, 96, || {
                            k += 1;
                            (start + 1..=start + run).contains(&k)
                        });
                        check_lossy_delivery(stream, &calls, CHUNK, records, at..at + secret.len())
                            .unwrap_or_else(|e| {
                                panic!("{family:?} pick {pick}, {run} lost from {start}: {e}")
                            });
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Records lost anywhere, in any number, never let a delivered byte of a secret through,
    /// in any text family, whether the client writes a byte per call, the whole request in
    /// one call, or calls cut at random, in 16 KiB chunks or a few bytes (so a call spans many
    /// records and runs beyond the per-call cap).
    #[test]
    fn dropped_records_never_let_a_text_secret_through(
        family in proptest::sample::select(TEXT_FAMILIES),
        secret in secret_strategy(),
        pick in 0usize..4,
        padding in prop_oneof![Just(0usize), 0usize..300],
        writes in 0u8..3,
        chunking in 0u8..3,
        rate in 0u32..70,
        drops in proptest::collection::vec(0u32..100, 1..97),
        cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..8),
    ) {
        let carrier = carrier(family, &secret, pick, padding);
        for stream in [&carrier.egress, &carrier.ingress] {
            let Some(at) = memchr::memmem::find(stream, secret.as_bytes()) else {
                continue;
            };
            let bounds: Vec<usize> = match writes {
                0 => (0..stream.len()).collect(),
                1 => vec![],
                _ => cuts.iter().map(|cut| cut.index(stream.len())).collect(),
            };
            let secret_at = at..at + secret.len();
            let checked = deliver_with_drops(stream, bounds, chunking, rate, &drops, secret_at);
            prop_assert!(checked.is_ok(), "{:?}: {}", family, checked.unwrap_err());
        }
    }
}
