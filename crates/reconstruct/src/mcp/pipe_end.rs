//! Which end of a pipe a captured process holds, for MCP over stdio.
//!
//! MCP over stdio is read at the server, whose stdin carries the client's messages and whose
//! stdout its own (SDKs move them off fds 0 and 1, so the fd says nothing). The first message
//! on an end tells which side it is: a request only clients send, read by this process, makes
//! it the server.

use crate::event::Direction;

use super::Sender;

/// One end of a pipe, as far as its bytes have told.
pub enum PipeEnd {
    /// Bytes kept until a whole line shows whose messages these are. `scanned` is how much
    /// of `buffered` (whole lines) has been looked at, `lines` how many JSON lines it held.
    Undecided {
        buffered: Vec<u8>,
        scanned: usize,
        lines: usize,
    },
    /// The server's end: messages written by this sender.
    Server(Sender),
    /// The client's end (the server's end carries the same session) or not MCP.
    Ignored,
}

/// Bytes and lines looked at before an undecided pipe end is given up.
const PIPE_DECIDE_BYTES: usize = 256 << 10;
const PIPE_DECIDE_LINES: usize = 16;

impl PipeEnd {
    /// An end nothing has been read from yet.
    pub fn new() -> Self {
        PipeEnd::Undecided {
            buffered: Vec::new(),
            scanned: 0,
            lines: 0,
        }
    }

    /// Decides from the complete lines not looked at yet, if any tells.
    pub fn decide(
        direction: Direction,
        buffered: &[u8],
        scanned: &mut usize,
        lines: &mut usize,
    ) -> Option<PipeEnd> {
        while let Some(end) = memchr::memchr(b'\n', &buffered[*scanned..]) {
            let line = &buffered[*scanned..*scanned + end];
            *scanned += end + 1;
            if *lines >= PIPE_DECIDE_LINES {
                return Some(PipeEnd::Ignored);
            }
            let Some(message) = crate::json_read::parse::<serde_json::Value>(line) else {
                continue;
            };
            *lines += 1;
            let Some(writer) = Sender::guess_from_message(&message) else {
                continue;
            };
            let ours = matches!(direction, Direction::Egress);
            return Some(match (writer, ours) {
                // The server reads the client's requests and writes its own answers.
                (Sender::Client, false) | (Sender::Server, true) => PipeEnd::Server(writer),
                _ => PipeEnd::Ignored,
            });
        }
        (buffered.len() > PIPE_DECIDE_BYTES).then_some(PipeEnd::Ignored)
    }
}

impl Default for PipeEnd {
    fn default() -> Self {
        Self::new()
    }
}
