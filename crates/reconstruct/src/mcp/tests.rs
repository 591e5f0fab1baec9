//! Unit tests of the parser, on captured fixtures through the shared wire-test harness.

use super::*;
use crate::wire::test_harness as harness;
use base64::Engine as _;
use proptest::prelude::*;
use serde_json::json;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("AGENTSCOPE_REPO"))
        .join("tests/fixtures/mcp")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A pipe chunk as the collector printed it.
struct Chunk {
    pid: u64,
    direction: Direction,
    ts_ns: u64,
    bytes: Vec<u8>,
}

fn pipe_chunks() -> Vec<Chunk> {
    String::from_utf8(fixture("stdio-pipe-events.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let e: Value = serde_json::from_str(line).unwrap();
            Chunk {
                pid: e["pid"].as_u64().unwrap(),
                direction: match e["direction"].as_str().unwrap() {
                    "egress" => Direction::Egress,
                    _ => Direction::Ingress,
                },
                ts_ns: e["ts_ns"].as_u64().unwrap(),
                bytes: base64::engine::general_purpose::STANDARD
                    .decode(e["data_b64"].as_str().unwrap())
                    .unwrap(),
            }
        })
        .collect()
}

/// Which captured process is the server: the one whose first ingress message only a client
/// sends.
fn server_pid(chunks: &[Chunk]) -> u64 {
    let first = chunks
        .iter()
        .find(|c| c.direction == Direction::Ingress)
        .unwrap();
    let mut framer = StdioFramer::new();
    let StdioFrame::Message(message) = &framer.push(&first.bytes)[0] else {
        panic!("first ingress chunk is a message");
    };
    match Sender::guess_from_message(message) {
        Some(Sender::Client) => first.pid,
        _ => chunks.iter().find(|c| c.pid != first.pid).unwrap().pid,
    }
}

fn dump() -> Value {
    serde_json::from_slice(&fixture("client-dump.json")).unwrap()
}

/// Feeds the chunks `pid` captured, each cut at `splits` (relative positions), in capture
/// order, as seen from `observed`.
fn records_from(
    chunks: &[Chunk],
    pid: u64,
    observed: Sender,
    split: &dyn Fn(&[u8]) -> Vec<usize>,
) -> Vec<McpExchange> {
    let mut script = Vec::new();
    for chunk in chunks.iter().filter(|c| c.pid == pid) {
        let direction = match Sender::of_stream(observed, chunk.direction).unwrap() {
            Sender::Client => Direction::Egress,
            Sender::Server => Direction::Ingress,
        };
        let mut start = 0;
        for end in split(&chunk.bytes).into_iter().chain([chunk.bytes.len()]) {
            let end = end.clamp(start, chunk.bytes.len());
            script.push((direction, &chunk.bytes[start..end], chunk.ts_ns));
            start = end;
        }
    }
    let mut connection = StdioMcpConnection::new();
    let mut out = harness::feed(&mut connection, &script);
    out.extend(harness::finish(&mut connection, u64::MAX));
    harness::mcp_records(out)
}

fn whole(_: &[u8]) -> Vec<usize> {
    Vec::new()
}

fn bytewise(bytes: &[u8]) -> Vec<usize> {
    (1..bytes.len()).collect()
}

fn without_times(mut records: Vec<McpExchange>) -> Vec<McpExchange> {
    for r in &mut records {
        r.request_ts_ns = None;
        r.response_ts_ns = None;
    }
    records
}

fn detail<'a>(records: &'a [McpExchange], method: &str, nth: usize) -> &'a McpDetail {
    &records
        .iter()
        .filter(|r| r.kind == ExchangeKind::Call && r.method.as_deref() == Some(method))
        .nth(nth)
        .unwrap_or_else(|| panic!("no {method} #{nth}"))
        .detail
}

#[test]
fn captured_session_gives_the_records_the_client_saw() {
    let chunks = pipe_chunks();
    let server = server_pid(&chunks);
    let records = records_from(&chunks, server, Sender::Server, &whole);
    let dump = dump();

    assert!(records.iter().all(|r| !r.partial), "{records:#?}");
    let kinds: Vec<(ExchangeKind, Option<&str>)> = records
        .iter()
        .map(|r| (r.kind, r.method.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ExchangeKind::Call, Some("initialize")),
            (
                ExchangeKind::Notification,
                Some("notifications/initialized")
            ),
            (ExchangeKind::Call, Some("tools/list")),
            (ExchangeKind::Call, Some("tools/call")),
            (ExchangeKind::Call, Some("tools/call")),
            (ExchangeKind::Call, Some("resources/read")),
            (ExchangeKind::Call, Some("prompts/get")),
        ]
    );
    assert!(records.iter().all(|r| r.initiator == Sender::Client));
    assert!(records
        .iter()
        .all(|r| r.transport == McpTransport::Stdio && r.session_id.is_none()));
    for r in records.iter().filter(|r| r.kind == ExchangeKind::Call) {
        assert!(r.response_ts_ns >= r.request_ts_ns, "{r:?}");
    }

    let McpDetail::Initialize(init) = detail(&records, "initialize", 0) else {
        panic!()
    };
    assert_eq!(
        init.protocol_version.as_deref(),
        dump["initialize"]["protocolVersion"].as_str()
    );
    assert_eq!(init.requested_protocol_version, init.protocol_version);
    let server_info = init.server.clone().unwrap();
    assert_eq!(
        server_info.name.as_deref(),
        dump["initialize"]["serverInfo"]["name"].as_str()
    );
    assert_eq!(
        server_info.version.as_deref(),
        dump["initialize"]["serverInfo"]["version"].as_str()
    );
    assert_eq!(
        init.client.as_ref().unwrap().name.as_deref(),
        Some("agentscope-test-agent")
    );
    assert_eq!(
        init.server_capabilities.as_ref(),
        Some(&dump["initialize"]["capabilities"])
    );
    assert_eq!(
        init.instructions.as_deref(),
        dump["initialize"]["instructions"].as_str()
    );

    let McpDetail::ToolsList(list) = detail(&records, "tools/list", 0) else {
        panic!()
    };
    let tool = &dump["tools_list"]["tools"][0];
    assert_eq!(list.tools.len(), 1);
    assert_eq!(list.tools[0].name, tool["name"].as_str().unwrap());
    assert_eq!(list.tools[0].title.as_deref(), tool["title"].as_str());
    assert_eq!(
        list.tools[0].description.as_deref(),
        tool["description"].as_str()
    );
    assert_eq!(
        list.tools[0].input_schema,
        SchemaSummary {
            schema_type: Some("object".into()),
            properties: vec!["path".into()],
            required: vec!["path".into()],
        }
    );
    assert!(list.tools[0].has_output_schema);
    let annotations = list.tools[0].annotations.clone().unwrap();
    assert_eq!(annotations.read_only_hint, Some(true));
    assert_eq!(annotations.open_world_hint, Some(false));

    for (nth, key) in [(0, "read_file"), (1, "read_missing_file")] {
        let McpDetail::ToolsCall(call) = detail(&records, "tools/call", nth) else {
            panic!()
        };
        assert_eq!(call.name.as_deref(), Some("read_file"));
        assert_eq!(
            call.result_text.as_deref(),
            dump[key]["content"][0]["text"].as_str()
        );
        assert_eq!(call.is_error, dump[key]["isError"].as_bool());
        assert_eq!(
            call.structured_content.as_ref(),
            dump[key].get("structuredContent")
        );
        assert_eq!(call.content_types, ["text"]);
    }
    let tool_call = records
        .iter()
        .find(|r| r.method.as_deref() == Some("tools/call"))
        .unwrap();
    assert_eq!(tool_call.tool_name.as_deref(), Some("read_file"));

    let McpDetail::ResourcesRead(read) = detail(&records, "resources/read", 0) else {
        panic!()
    };
    let content = &dump["resource"]["contents"][0];
    assert_eq!(read.uri.as_deref(), content["uri"].as_str());
    assert_eq!(
        read.contents[0].mime_type.as_deref(),
        content["mimeType"].as_str()
    );
    assert_eq!(
        read.contents[0].text_len,
        Some(content["text"].as_str().unwrap().chars().count())
    );

    let McpDetail::PromptsGet(prompt) = detail(&records, "prompts/get", 0) else {
        panic!()
    };
    assert_eq!(prompt.name.as_deref(), Some("summarize_file"));
    assert_eq!(prompt.arguments.as_ref().unwrap()["style"], "terse");
    assert_eq!(
        prompt.description.as_deref(),
        dump["prompt"]["description"].as_str()
    );
    assert_eq!(prompt.message_roles, ["user"]);
}

#[test]
fn client_and_server_views_agree() {
    let chunks = pipe_chunks();
    let server = server_pid(&chunks);
    let client = chunks.iter().find(|c| c.pid != server).unwrap().pid;
    let from_server = without_times(records_from(&chunks, server, Sender::Server, &whole));
    let from_client = without_times(records_from(&chunks, client, Sender::Client, &whole));
    assert_eq!(from_server.len(), 7);
    assert_eq!(from_server, from_client);
}

#[test]
fn chunk_boundaries_do_not_matter() {
    let chunks = pipe_chunks();
    let server = server_pid(&chunks);
    let reference = records_from(&chunks, server, Sender::Server, &whole);
    assert_eq!(
        records_from(&chunks, server, Sender::Server, &bytewise),
        reference
    );
    // Every message at once, as a reader with a big buffer might see it.
    let mut connection = StdioMcpConnection::new();
    let mut records = Vec::new();
    records.extend(connection.feed_bytes(
        Sender::Client,
        &fixture("stdio-client-to-server.ndjson"),
        0,
    ));
    records.extend(connection.feed_bytes(
        Sender::Server,
        &fixture("stdio-server-to-client.ndjson"),
        0,
    ));
    records.extend(connection.finish(0));
    // Fed this way, the notification completes before the initialize call does.
    let sorted = |records: Vec<McpExchange>| {
        let mut records = without_times(records);
        records.sort_by_key(|r| (r.request_id.clone(), r.method.clone()));
        records
    };
    assert_eq!(sorted(records), sorted(reference));
}

proptest! {
    #[test]
    fn random_split_points_give_the_same_records(seed in any::<u64>()) {
        let chunks = pipe_chunks();
        let server = server_pid(&chunks);
        let reference = records_from(&chunks, server, Sender::Server, &whole);
        let split = |bytes: &[u8]| -> Vec<usize> {
            let mut state = seed | 1;
            let mut points: Vec<usize> = (0..4)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state % (bytes.len() as u64 + 1)) as usize
                })
                .collect();
            points.sort_unstable();
            points
        };
        prop_assert_eq!(records_from(&chunks, server, Sender::Server, &split), reference);
    }

    #[test]
    fn truncated_streams_are_flagged_not_fatal(cut in 0usize..4096) {
        let requests = fixture("stdio-client-to-server.ndjson");
        let responses = fixture("stdio-server-to-client.ndjson");
        let cut = cut.min(responses.len());
        let mut connection = StdioMcpConnection::new();
        let mut records = connection.feed_bytes(Sender::Client, &requests, 0);
        records.extend(connection.feed_bytes(Sender::Server, &responses[..cut], 1));
        records.extend(connection.finish(2));
        let calls = records.iter().filter(|r| r.kind == ExchangeKind::Call).count();
        let unanswered = records.iter().filter(|r| r.kind == ExchangeKind::Unanswered).count();
        // Six requests: each is answered or reported unanswered, never lost.
        prop_assert_eq!(calls + unanswered, 6);
        prop_assert!(records.iter().filter(|r| r.kind == ExchangeKind::Unanswered).all(|r| r.partial));
        // Losing only the final newline leaves the last message whole.
        if cut + 1 < responses.len() {
            prop_assert!(unanswered >= 1);
        } else {
            prop_assert_eq!(unanswered, 0);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8)) {
        let mut connection = StdioMcpConnection::new();
        for (i, piece) in pieces.iter().enumerate() {
            let sender = if i % 2 == 0 { Sender::Client } else { Sender::Server };
            let _ = connection.feed_bytes(sender, piece, i as u64);
            if i == 3 {
                let _ = connection.mark_gap(sender, i as u64);
            }
        }
        let _ = connection.finish(99);
    }

    #[test]
    fn damaged_fixture_never_panics(flip in 0usize..4096, bit in 0u8..8) {
        let mut requests = fixture("stdio-client-to-server.ndjson");
        let at = flip % requests.len();
        requests[at] ^= 1 << bit;
        let mut connection = StdioMcpConnection::new();
        let _ = connection.feed_bytes(Sender::Client, &requests, 0);
        let _ = connection.feed_bytes(Sender::Server, &fixture("stdio-server-to-client.ndjson"), 1);
        let _ = connection.finish(2);
    }
}

#[test]
fn framer_handles_several_lines_partial_lines_and_blank_lines() {
    let mut framer = StdioFramer::new();
    let frames = framer.push(b"{\"a\":1}\n\n  \r\n{\"b\":2}\r\n{\"c\":");
    assert_eq!(
        frames,
        [
            StdioFrame::Message(json!({"a": 1})),
            StdioFrame::Message(json!({"b": 2}))
        ]
    );
    assert_eq!(framer.pending_len(), 5);
    assert_eq!(framer.push(b"3}\n"), [StdioFrame::Message(json!({"c": 3}))]);
    assert_eq!(framer.pending_len(), 0);
    assert_eq!(framer.finish(), None);
}

#[test]
fn framer_reports_malformed_and_cut_lines() {
    let mut framer = StdioFramer::new();
    let frames = framer.push(b"not json\n{\"ok\":true}\n{\"cut\":");
    assert!(matches!(frames[0], StdioFrame::Malformed { len: 8, .. }));
    assert_eq!(frames[1], StdioFrame::Message(json!({"ok": true})));
    assert_eq!(framer.finish(), Some(StdioFrame::Truncated { len: 7 }));
    // A last message whose newline was not captured still counts.
    let mut framer = StdioFramer::new();
    assert!(framer.push(b"{\"last\":1}").is_empty());
    assert_eq!(
        framer.finish(),
        Some(StdioFrame::Message(json!({"last": 1})))
    );
}

#[test]
fn framer_bounds_oversize_lines_and_resumes() {
    let mut framer = StdioFramer::with_max_line(16);
    let mut frames = framer.push(b"{\"big\":\"0123456789");
    frames.extend(framer.push(b"0123456789\"}\n{\"small\":1}\n"));
    assert_eq!(
        frames,
        [
            StdioFrame::Oversize { len: 30 },
            StdioFrame::Message(json!({"small": 1}))
        ]
    );
    assert!(framer.pending_len() <= 16);
    // One piece holding a whole oversize line.
    assert_eq!(
        framer.push(b"{\"big\":\"01234567890123\"}\n"),
        [StdioFrame::Oversize { len: 24 }]
    );
}

#[test]
fn framer_resynchronises_after_a_gap() {
    let mut framer = StdioFramer::new();
    assert!(framer.push(b"{\"id\":1,\"res").is_empty());
    assert_eq!(framer.mark_gap(), StdioFrame::Truncated { len: 12 });
    // The rest of the damaged message is dropped; the next whole one is kept.
    assert_eq!(
        framer.push(b"ult\":{}}\n{\"id\":2}\n"),
        [StdioFrame::Message(json!({"id": 2}))]
    );
    // A gap that fell between lines: the next line is whole and kept.
    assert_eq!(framer.mark_gap(), StdioFrame::Truncated { len: 0 });
    assert_eq!(
        framer.push(b"{\"id\":3}\n"),
        [StdioFrame::Message(json!({"id": 3}))]
    );
}

fn feed(session: &mut McpSession, sender: Sender, message: Value) -> Vec<McpExchange> {
    session.feed_message(sender, &message, 0)
}

#[test]
fn errors_orphans_and_unanswered_requests_are_flagged() {
    let mut session = McpSession::new(McpTransport::Http);
    session.set_session_id("abc");
    // A response whose request came before the capture started.
    let orphan = feed(
        &mut session,
        Sender::Server,
        json!({"jsonrpc": "2.0", "id": 7, "result": {}}),
    );
    assert_eq!(orphan[0].kind, ExchangeKind::UnmatchedResponse);
    assert!(orphan[0].partial);
    assert_eq!(orphan[0].request_id.as_deref(), Some("7"));
    assert_eq!(orphan[0].initiator, Sender::Client);

    assert!(feed(
        &mut session,
        Sender::Client,
        json!({"jsonrpc": "2.0", "id": "x1", "method": "tools/call", "params": {"name": "drop_db"}})
    )
    .is_empty());
    let error = feed(
        &mut session,
        Sender::Server,
        json!({"jsonrpc": "2.0", "id": "x1", "error": {"code": -32602, "message": "Unknown tool"}}),
    );
    assert_eq!(error[0].kind, ExchangeKind::Call);
    assert_eq!(error[0].tool_name.as_deref(), Some("drop_db"));
    assert_eq!(error[0].session_id.as_deref(), Some("abc"));
    assert_eq!(
        error[0].error,
        Some(JsonRpcError {
            code: -32602,
            message: "Unknown tool".into(),
            data: None
        })
    );

    assert!(feed(
        &mut session,
        Sender::Client,
        json!({"jsonrpc": "2.0", "id": 9, "method": "resources/read", "params": {"uri": "file:///etc/passwd"}})
    )
    .is_empty());
    assert_eq!(session.pending_requests(), 1);
    let flushed = session.finish();
    assert_eq!(flushed.len(), 1);
    assert_eq!(flushed[0].kind, ExchangeKind::Unanswered);
    assert!(flushed[0].partial);
    assert_eq!(
        flushed[0].resource_uri.as_deref(),
        Some("file:///etc/passwd")
    );
    assert_eq!(session.pending_requests(), 0);
}

#[test]
fn ids_pair_by_type_and_direction() {
    let mut session = McpSession::new(McpTransport::Stdio);
    feed(
        &mut session,
        Sender::Client,
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
    );
    // The server asks the client something with the same id: a separate request.
    feed(
        &mut session,
        Sender::Server,
        json!({"jsonrpc": "2.0", "id": 1, "method": "sampling/createMessage", "params": {"maxTokens": 5}}),
    );
    // "1" is not 1.
    let wrong_type = feed(
        &mut session,
        Sender::Server,
        json!({"jsonrpc": "2.0", "id": "1", "result": {}}),
    );
    assert_eq!(wrong_type[0].kind, ExchangeKind::UnmatchedResponse);
    let sampling = feed(
        &mut session,
        Sender::Client,
        json!({"jsonrpc": "2.0", "id": 1, "result": {"role": "assistant"}}),
    );
    assert_eq!(
        sampling[0].method.as_deref(),
        Some("sampling/createMessage")
    );
    assert_eq!(sampling[0].initiator, Sender::Server);
    let ping = feed(
        &mut session,
        Sender::Server,
        json!({"jsonrpc": "2.0", "id": 1, "result": {}}),
    );
    assert_eq!(ping[0].method.as_deref(), Some("ping"));
    assert_eq!(ping[0].initiator, Sender::Client);
    assert!(matches!(ping[0].detail, McpDetail::Other { .. }));
}

#[test]
fn batches_reused_ids_and_invalid_messages() {
    let mut session = McpSession::new(McpTransport::Stdio);
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 0}},
        {"jsonrpc": "2.0", "id": 1, "method": "prompts/list"},
        42,
        {"jsonrpc": "1.0", "id": 2, "method": "x"},
        {"jsonrpc": "2.0", "id": {"obj": 1}, "method": "x"},
        {"jsonrpc": "2.0", "id": 3}
    ]);
    let records = feed(&mut session, Sender::Client, batch);
    let kinds: Vec<ExchangeKind> = records.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            ExchangeKind::Notification,
            ExchangeKind::Unanswered,
            ExchangeKind::Invalid,
            ExchangeKind::Invalid,
            ExchangeKind::Invalid,
            ExchangeKind::Invalid
        ]
    );
    assert_eq!(records[1].method.as_deref(), Some("tools/list"));
    let answer = feed(
        &mut session,
        Sender::Server,
        json!([{"jsonrpc": "2.0", "id": 1, "result": {"prompts": []}}]),
    );
    assert_eq!(answer[0].method.as_deref(), Some("prompts/list"));
    assert_eq!(
        feed(&mut session, Sender::Client, json!([]))[0].kind,
        ExchangeKind::Invalid
    );
}

#[test]
fn pending_requests_are_bounded() {
    let mut session = McpSession::new(McpTransport::Stdio);
    let mut evicted = 0;
    for id in 0..MAX_PENDING_REQUESTS + 10 {
        evicted += feed(
            &mut session,
            Sender::Client,
            json!({"jsonrpc": "2.0", "id": id, "method": "ping"}),
        )
        .len();
    }
    assert_eq!(evicted, 10);
    assert_eq!(session.pending_requests(), MAX_PENDING_REQUESTS);
}

#[test]
fn json_names_follow_opentelemetry() {
    let chunks = pipe_chunks();
    let server = server_pid(&chunks);
    let records = records_from(&chunks, server, Sender::Server, &whole);
    let call = records
        .iter()
        .find(|r| r.method.as_deref() == Some("tools/call"))
        .unwrap();
    let json = serde_json::to_value(call).unwrap();
    assert_eq!(json["mcp.method.name"], "tools/call");
    assert_eq!(json["jsonrpc.request.id"], "3");
    assert_eq!(json["gen_ai.tool.name"], "read_file");
    assert_eq!(json["network.transport"], "pipe");
    assert_eq!(json["kind"], "call");
    assert_eq!(json["detail"]["type"], "tools_call");
    assert!(json["detail"]["gen_ai.tool.call.arguments"]["path"].is_string());
    let read = records
        .iter()
        .find(|r| r.method.as_deref() == Some("resources/read"))
        .unwrap();
    assert_eq!(
        serde_json::to_value(read).unwrap()["mcp.resource.uri"],
        "notes://agentscope/today"
    );
}

#[test]
fn sender_helpers() {
    assert_eq!(
        Sender::of_stream(Sender::Server, Direction::Ingress),
        Some(Sender::Client)
    );
    assert_eq!(
        Sender::of_stream(Sender::Client, Direction::Egress),
        Some(Sender::Client)
    );
    assert_eq!(Sender::of_stream(Sender::Client, Direction::Unknown), None);
    assert_eq!(
        Sender::guess_from_message(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize"})),
        Some(Sender::Client)
    );
    assert_eq!(
        Sender::guess_from_message(
            &json!({"jsonrpc": "2.0", "id": 1, "result": {"serverInfo": {}}})
        ),
        Some(Sender::Server)
    );
    assert_eq!(
        Sender::guess_from_message(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})),
        None
    );
}
