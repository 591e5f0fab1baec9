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
    let fixtures = concat!(env!("AGENTSCOPE_REPO"), "/tests/fixtures/llm/openai_chat");
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
        protocol: Default::default(),
    };
    let call = llm::recognise(&exchange).expect("still recognised as an LLM call");
    assert!(call.partial);
    assert!(call.tool_calls.len() < 1_000_000);
}
