//! Reconstruction under a memory budget: hostile inputs that used to take gigabytes (many
//! concurrent incomplete bodies, a response with a million tool calls) stay within the
//! budget's share and come out flagged.

use super::http::{HttpConnection, Side};
use super::llm;
use crate::memory_budget::MemoryBudget;

const BUDGET: usize = 64 << 20;
const PIECE: usize = 64 << 10;

#[test]
fn sixty_four_incomplete_31_mib_bodies_stay_within_the_budget_and_are_flagged() {
    let budget = MemoryBudget::new(BUDGET);
    let body_len = 31 << 20;
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: victim\r\nContent-Length: {}\r\n\r\n",
        body_len + 1
    );
    let piece = vec![b'x'; PIECE];
    let mut connections: Vec<HttpConnection> = (0..64)
        .map(|_| HttpConnection::with_budget(&budget))
        .collect();
    for conn in &mut connections {
        assert!(conn.feed(Side::Request, head.as_bytes(), 1).is_empty());
    }
    // Interleaved, as concurrent uploads arrive; none ever sends its last byte.
    for _ in 0..body_len / PIECE {
        for conn in &mut connections {
            assert!(conn.feed(Side::Request, &piece, 2).is_empty());
        }
        assert!(
            budget.used() <= budget.held_limit(),
            "{} bytes held, limit {}",
            budget.used(),
            budget.held_limit()
        );
    }
    let held: usize = connections.iter().map(HttpConnection::held_bytes).sum();
    assert_eq!(held, budget.used());
    assert!(held <= budget.held_limit());
    let stats = budget.stats();
    assert!(stats.peak_held_bytes <= budget.held_limit() as u64);
    assert_eq!(stats.bodies_truncated, 64, "{stats:?}");
    // A flood that filled the budget does not blind the collector to other traffic: a new
    // exchange is still read (its body is cut and flagged when there is no room for it).
    let mut fresh = HttpConnection::with_budget(&budget);
    fresh.feed(
        Side::Request,
        b"GET /health HTTP/1.1\r\nHost: api\r\n\r\n",
        4,
    );
    let done = fresh.feed(
        Side::Response,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        5,
    );
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].request.target, "/health");
    assert_eq!(done[0].response.as_ref().unwrap().status, 200);
    for mut conn in connections {
        let exchanges = conn.close(3);
        assert_eq!(exchanges.len(), 1);
        let request = &exchanges[0].request;
        assert!(request.over_budget);
        assert_eq!(request.completeness, super::http::Completeness::Truncated);
        assert!(request.body.len() <= budget.max_message_bytes());
    }
    // Closed connections give everything back.
    assert_eq!(budget.used(), 0);
}

/// The OpenAI Chat Completions fixture's request, answered by one response asking for a
/// million tool calls.
#[test]
fn a_million_tool_calls_in_one_response_stay_within_the_budget_and_are_flagged() {
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/llm/openai_chat"
    );
    let request_body = std::fs::read(format!("{fixtures}/tools_stream/request.body")).unwrap();
    let mut response_body = br#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":null,"tool_calls":["#.to_vec();
    for i in 0..1_000_000 {
        if i > 0 {
            response_body.push(b',');
        }
        response_body.extend_from_slice(
            format!(
                r#"{{"id":"call_{i}","type":"function","function":{{"name":"read_file","arguments":"{{\"path\":\"/etc/{i}\"}}"}}}}"#
            )
            .as_bytes(),
        );
    }
    response_body.extend_from_slice(br#"]}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#);
    // Sanity: unbudgeted, this is a million tool calls.
    assert!(response_body.len() > 64 << 20);

    let budget = MemoryBudget::new(BUDGET);
    let mut conn = HttpConnection::with_budget(&budget);
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        request_body.len()
    );
    conn.feed(Side::Request, request.as_bytes(), 1);
    conn.feed(Side::Request, &request_body, 1);
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        response_body.len()
    );
    conn.feed(Side::Response, head.as_bytes(), 2);
    let mut exchanges = Vec::new();
    for piece in response_body.chunks(PIECE) {
        exchanges.extend(conn.feed(Side::Response, piece, 3));
        assert!(budget.used() <= budget.held_limit());
    }
    assert_eq!(exchanges.len(), 1);
    let paired = exchanges.pop().unwrap();
    let response = paired.response.as_ref().unwrap();
    assert!(response.over_budget);
    assert!(response.body.len() <= budget.max_message_bytes());
    assert_eq!(budget.stats().bodies_truncated, 1);
    let exchange = super::http::HttpExchange {
        request: paired.request,
        response: paired.response,
        host: Some("api.openai.com".into()),
        port: Some(443),
        tls: true,
    };
    let call = llm::recognise(&exchange).expect("still recognised as an LLM call");
    assert!(call.partial);
    assert!(call.tool_calls.len() < 1_000_000);
}

/// A flood of 16 incomplete uploads (4 MiB sent of 9 MiB announced), then a real agent session: enough to put a 4 MiB
/// budget under pressure.
fn flood_then_session() -> Vec<crate::event::Event> {
    use crate::event::{Direction, EventBody, PayloadSource};
    let session = crate::capture::tests::fixture_events();
    let template = session
        .iter()
        .find(|e| matches!(e.body, EventBody::Data { .. }))
        .expect("the fixture has payloads")
        .clone();
    let start_ts = session
        .first()
        .map_or(1, |e| e.header.ts_ns)
        .saturating_sub(1_000_000_000);
    let mut events = Vec::new();
    let mut call_id = 1u64 << 40;
    let mut push = |events: &mut Vec<crate::event::Event>, fd: i32, data: Vec<u8>| {
        let mut event = template.clone();
        event.header.ts_ns = start_ts + events.len() as u64;
        call_id += 1;
        event.body = EventBody::Data {
            source: PayloadSource::Socket,
            direction: Direction::Egress,
            fd,
            conn_id: 0,
            call_id,
            seq: 0,
            offset: 0,
            total_len: data.len() as u64,
            lost_bytes: 0,
            last: true,
            data,
        };
        events.push(event);
    };
    for fd in 1000..1016 {
        push(
            &mut events,
            fd,
            format!(
                "POST /upload HTTP/1.1\r\nHost: victim\r\nContent-Length: {}\r\n\r\n",
                9 << 20
            )
            .into_bytes(),
        );
    }
    for _ in 0..(4 << 20) / (16 << 10) {
        for fd in 1000..1016 {
            push(&mut events, fd, vec![b'x'; 16 << 10]);
        }
    }
    events.extend(session);
    events
}

/// Eviction is part of the pipeline, so a replay of a capture cuts exactly where the live run
/// did: the budget travels in the capture's header.
#[test]
fn a_replay_cuts_and_evicts_exactly_where_the_live_run_did() {
    use crate::capture::{CaptureReader, Recorder, RecorderOptions, Replay};
    use crate::model::ModelOptions;
    use crate::pipeline::Pipeline;
    use crate::reconstruct::ReconstructOptions;

    let budget = 4 << 20;
    let events = flood_then_session();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flood.cap");
    let mut metadata = crate::capture::tests::metadata();
    metadata.memory_budget_bytes = budget;
    let mut live = Pipeline::new(
        ReconstructOptions {
            memory_budget: budget,
            ..ReconstructOptions::default()
        },
        ModelOptions::default(),
        Box::new(crate::capture::tests::ClusterIdentity),
    );
    let mut recorder =
        Recorder::start(RecorderOptions::new(path.clone(), metadata), &mut live).unwrap();
    for event in &events {
        live.push(event);
        recorder.record(event, &mut live).unwrap();
    }
    live.finish();
    recorder.finish(&mut live).unwrap();
    let live_snapshot = live.snapshot();
    let memory = live_snapshot.stats.memory.clone().unwrap();
    assert!(memory.bodies_truncated >= 16, "{memory:?}");
    assert!(memory.peak_held_bytes <= memory.budget_bytes, "{memory:?}");
    assert!(
        live_snapshot.stats.llm_calls > 0,
        "the session after the flood is still reconstructed"
    );

    let mut replay = Replay::new(CaptureReader::open(&path).unwrap());
    replay.run_to_end();
    assert_eq!(
        serde_json::to_string(&replay.pipeline().snapshot()).unwrap(),
        serde_json::to_string(&live_snapshot).unwrap(),
        "replay equals live, evictions and counters included"
    );

    // The budget is what decides: replayed with a larger one, nothing is cut.
    let mut roomy = Replay::new(CaptureReader::open(&path).unwrap()).with_memory_budget(1 << 30);
    roomy.run_to_end();
    let roomy_memory = roomy.pipeline().snapshot().stats.memory.unwrap();
    assert!(!roomy_memory.pressured(), "{roomy_memory:?}");
}
