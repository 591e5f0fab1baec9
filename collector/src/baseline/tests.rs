//! Baselines learned from events captured by the real collector.

use super::*;
use crate::event_json::events_from_json_lines;

const PYTHON_STREAM: &str = include_str!("../../tests/fixtures/capture/python_chat_stream.jsonl");
const PYTHON_CHAT: &str = include_str!("../../tests/fixtures/capture/python_chat.jsonl");
const NODE_STREAM: &str = include_str!("../../tests/fixtures/capture/node_chat_stream.jsonl");
const MCP_HTTP: &str = include_str!("../../tests/fixtures/mcp/http-socket-events.jsonl");
const MCP_STDIO: &str = include_str!("../../tests/fixtures/mcp/stdio-pipe-events.jsonl");

fn learn(fixture: &str, period_seconds: u64) -> ReplayOutcome {
    learn_from_events(
        events_from_json_lines(fixture).unwrap(),
        ReplayOptions {
            learner: LearnerOptions::default().with_learning_period_seconds(period_seconds),
            ..Default::default()
        },
    )
}

#[test]
fn dump_fixture_baselines() {
    for (name, fixture) in [
        ("python_stream", PYTHON_STREAM),
        ("python_chat", PYTHON_CHAT),
        ("node", NODE_STREAM),
        ("mcp_http", MCP_HTTP),
        ("mcp_stdio", MCP_STDIO),
    ] {
        let outcome = learn(fixture, 3600);
        for b in outcome.learner().baselines() {
            eprintln!("==== {name}\n{}", b.to_yaml());
        }
    }
}
