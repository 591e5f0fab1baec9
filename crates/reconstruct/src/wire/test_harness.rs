//! The shared wire-test harness, used by the unit tests of every [`WireParser`]: load a
//! captured byte script from a fixture, feed it to a parser whole, in pieces of any size or
//! cut in two at every position of one direction, and compare the messages that come out.
//!
//! Scripts are written from the client's point of view (`Egress` is what the client sent),
//! the way the stream assembler feeds parsers.

use std::fmt::Debug;

use base64::Engine;

use crate::event::Direction;

use super::{WireMessage, WireParser};
use crate::http::PairedExchange;
use crate::mcp::McpExchange;
use crate::postgres::SqlStatement;
use crate::redis::RedisCommand;

/// One captured chunk: direction, bytes, timestamp.
pub(crate) type Chunk = (Direction, Vec<u8>, u64);

/// One step of a byte script fed to a parser.
pub(crate) type Step<'a> = (Direction, &'a [u8], u64);

/// The `data` events of a fixture written by scripts/regenerate-fixtures-data.sh.
pub(crate) fn load_data_events(jsonl: &str) -> Vec<Chunk> {
    jsonl
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            assert_eq!(event["kind"], "data");
            assert_eq!(event["lost_bytes"], 0, "fixture lost bytes");
            let direction = match event["direction"].as_str() {
                Some("egress") => Direction::Egress,
                Some("ingress") => Direction::Ingress,
                other => panic!("direction {other:?}"),
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(event["data_b64"].as_str().expect("data_b64"))
                .expect("base64");
            (direction, bytes, event["ts_ns"].as_u64().expect("ts_ns"))
        })
        .collect()
}

/// Feeds a byte script in order; returns what it completed (the parser is not finished).
pub(crate) fn feed<P: WireParser + ?Sized>(
    parser: &mut P,
    script: &[Step<'_>],
) -> Vec<WireMessage> {
    let mut out = Vec::new();
    for (direction, bytes, ts) in script {
        parser.on_bytes(*direction, *ts, bytes, &mut out);
    }
    out
}

/// Ends the stream at `ts_ns`; returns what was in flight.
pub(crate) fn finish<P: WireParser + ?Sized>(parser: &mut P, ts_ns: u64) -> Vec<WireMessage> {
    let mut out = Vec::new();
    parser.finish(ts_ns, &mut out);
    out
}

/// Feeds every chunk whole, then finishes at `finish_ts`.
pub(crate) fn run<P: WireParser>(
    mut parser: P,
    chunks: &[Chunk],
    finish_ts: u64,
) -> (Vec<WireMessage>, P) {
    let script: Vec<Step<'_>> = chunks
        .iter()
        .map(|(d, b, t)| (*d, b.as_slice(), *t))
        .collect();
    let mut out = feed(&mut parser, &script);
    out.extend(finish(&mut parser, finish_ts));
    (out, parser)
}

/// Same chunks, each cut into pieces of at most `piece` bytes (timestamps kept).
pub(crate) fn rechunk(chunks: &[Chunk], piece: usize) -> Vec<Chunk> {
    chunks
        .iter()
        .flat_map(|(d, bytes, ts)| bytes.chunks(piece).map(move |p| (*d, p.to_vec(), *ts)))
        .collect()
}

/// Each direction's stream joined: (client's, server's).
pub(crate) fn directions(chunks: &[Chunk]) -> (Vec<u8>, Vec<u8>) {
    let (mut egress, mut ingress) = (Vec::new(), Vec::new());
    for (d, bytes, _) in chunks {
        match d {
            Direction::Egress => egress.extend_from_slice(bytes),
            _ => ingress.extend_from_slice(bytes),
        }
    }
    (egress, ingress)
}

/// The script that cuts `direction`'s stream in two at `cut`, all the client's bytes before
/// all the server's (pairing needs only the order within each direction). An empty other
/// direction is not fed at all.
pub(crate) fn split_script<'a>(
    egress: &'a [u8],
    ingress: &'a [u8],
    direction: Direction,
    cut: usize,
) -> Vec<Step<'a>> {
    let mut script = Vec::new();
    match direction {
        Direction::Egress => {
            script.push((Direction::Egress, &egress[..cut], 1));
            script.push((Direction::Egress, &egress[cut..], 2));
            if !ingress.is_empty() {
                script.push((Direction::Ingress, ingress, 3));
            }
        }
        _ => {
            if !egress.is_empty() {
                script.push((Direction::Egress, egress, 1));
            }
            script.push((Direction::Ingress, &ingress[..cut], 2));
            script.push((Direction::Ingress, &ingress[cut..], 3));
        }
    }
    script
}

/// Cuts `direction`'s stream at every position in `cuts` and asserts that a fresh parser
/// gives `expected` (as `summary` sees it) each time.
#[allow(clippy::too_many_arguments)]
pub(crate) fn assert_same_at_every_cut<P: WireParser, S: PartialEq + Debug>(
    name: &str,
    new_parser: impl Fn() -> P,
    egress: &[u8],
    ingress: &[u8],
    direction: Direction,
    cuts: impl IntoIterator<Item = usize>,
    summary: impl Fn(Vec<WireMessage>) -> S,
    expected: &S,
) {
    for cut in cuts {
        let mut parser = new_parser();
        let mut out = feed(&mut parser, &split_script(egress, ingress, direction, cut));
        out.extend(finish(&mut parser, 4));
        assert_eq!(
            expected,
            &summary(out),
            "{name}: {direction:?} cut at {cut}"
        );
    }
}

/// The HTTP exchanges among `messages`.
pub(crate) fn exchanges(messages: Vec<WireMessage>) -> Vec<PairedExchange> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            WireMessage::Http(exchange) => Some(exchange),
            _ => None,
        })
        .collect()
}

/// The SQL statements among `messages`.
pub(crate) fn statements(messages: Vec<WireMessage>) -> Vec<SqlStatement> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            WireMessage::Sql(statement) => Some(statement),
            _ => None,
        })
        .collect()
}

/// The Redis commands among `messages`.
pub(crate) fn commands(messages: Vec<WireMessage>) -> Vec<RedisCommand> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            WireMessage::Redis(command) => Some(command),
            _ => None,
        })
        .collect()
}

/// The MCP records among `messages`.
pub(crate) fn mcp_records(messages: Vec<WireMessage>) -> Vec<McpExchange> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            WireMessage::Mcp(record) => Some(record),
            _ => None,
        })
        .collect()
}
