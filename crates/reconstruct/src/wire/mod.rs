//! The wire-parser contract: what every protocol parser of a byte stream offers the stream
//! assembler ([`super::stream`]).
//!
//! A parser is fed one connection's (or one pipe session's) two byte directions as they were
//! captured, in pieces of any size: [`WireParser::on_bytes`] for bytes, [`WireParser::on_gap`]
//! for bytes the kernel announced but could not deliver, [`WireParser::finish`] when the
//! stream ends. Directions are given from the client's point of view (`Egress` carries the
//! client's messages, `Ingress` the server's), whichever end was captured: the assembler
//! turns the captured process's view into the client's, so parsers never need to know which
//! end they watch. Reconstructed messages are pushed onto `out` as [`WireMessage`]s, in the
//! order they completed.
//!
//! Implemented by HTTP/1.1 ([`super::http::HttpConnection`]), PostgreSQL
//! ([`super::postgres::PostgresConnection`]), Redis ([`super::redis::RedisConnection`]),
//! stdio MCP ([`super::mcp::StdioMcpConnection`]) and HTTP/2
//! ([`super::http2::Http2Connection`]).

use crate::event::Direction;

use super::http::PairedExchange;
use super::mcp::McpExchange;
use super::postgres::SqlStatement;
use super::redis::RedisCommand;

#[cfg(test)]
pub(crate) mod test_harness;

/// One message a wire parser reconstructed.
// Variants differ in size (an HTTP exchange is the largest); each message is moved once, from
// its parser to the reconstructor, so boxing would only add an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum WireMessage {
    Http(PairedExchange),
    Sql(SqlStatement),
    Redis(RedisCommand),
    Mcp(McpExchange),
}

/// What a parser did when what it holds did not fit the memory budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverBudget {
    /// In-flight messages were flushed (flagged as cut); the rest of the stream is not parsed.
    StopParsing,
    /// Buffers were dropped; parsing goes on, as after lost bytes.
    Continue,
}

/// A protocol parser of one stream's two directions. Input is untrusted: malformed,
/// truncated or hostile bytes give messages flagged as partial, never a panic, and what a
/// parser holds stays bounded.
/// `Send`: a pipeline, and the parsers it holds, may move to another thread.
pub trait WireParser: Send {
    /// Bytes of `direction` (client's view), in capture order within the direction.
    fn on_bytes(
        &mut self,
        direction: Direction,
        ts_ns: u64,
        bytes: &[u8],
        out: &mut Vec<WireMessage>,
    );

    /// `len` bytes of `direction` were lost at this point of the stream.
    fn on_gap(&mut self, direction: Direction, len: u64, ts_ns: u64, out: &mut Vec<WireMessage>);

    /// The stream ended (close, exit, eviction, capture stopped): what is in flight comes out,
    /// flagged as partial.
    fn finish(&mut self, ts_ns: u64, out: &mut Vec<WireMessage>);

    /// Bytes the parser holds, for the assembler to charge to the stream. `None` when the
    /// parser charges the budget itself, message by message (HTTP).
    fn held_bytes(&self) -> Option<usize>;

    /// The protocol was recognised from a connection already under way (HTTP/2 frames
    /// without the preface): counted in the reconstruction statistics.
    fn attached_mid_connection(&self) -> bool {
        false
    }

    /// What [`WireParser::held_bytes`] reported did not fit the budget: the parser sheds
    /// what it holds and says whether the stream is parsed further.
    fn on_over_budget(
        &mut self,
        direction: Direction,
        ts_ns: u64,
        out: &mut Vec<WireMessage>,
    ) -> OverBudget;
}
