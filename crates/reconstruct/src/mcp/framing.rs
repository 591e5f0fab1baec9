//! Stdio framing: a pipe's byte stream cut into newline-delimited JSON-RPC messages, with
//! bounded lines and resynchronisation after lost bytes.

#[allow(unused_imports)]
use super::*;

/// One unit cut from a stdio byte stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StdioFrame {
    /// A line that parsed as JSON (not yet checked to be JSON-RPC).
    Message(Value),
    /// A line that is not JSON.
    Malformed {
        /// What serde_json reported.
        error: String,
        /// Bytes of the line, newline excluded.
        len: usize,
    },
    /// A line longer than the framer's bound: its bytes were dropped up to the next newline.
    Oversize { len: usize },
    /// A message cut short: the stream ended ([`StdioFramer::finish`]) or lost bytes
    /// ([`StdioFramer::mark_gap`]) before its newline. `len` bytes of it were kept (0 when the
    /// loss fell between lines).
    Truncated { len: usize },
}

/// Newline-delimited JSON framing (the MCP stdio transport) of a byte stream that arrives in
/// arbitrary pieces: a message may span pieces, a piece may hold several messages.
#[derive(Debug, Clone)]
pub struct StdioFramer {
    /// Bytes of the current, unfinished line.
    pub(super) line: Vec<u8>,
    pub(super) max_line: usize,
    /// Dropping an oversize line: its length so far.
    pub(super) skipping: Option<usize>,
    /// Bytes were lost since the last line boundary: the next line is either a whole message
    /// (kept if it parses) or the damaged rest of one (dropped; the gap was already reported).
    pub(super) resync: bool,
}

impl Default for StdioFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl StdioFramer {
    pub fn new() -> Self {
        Self::with_max_line(DEFAULT_MAX_LINE)
    }

    /// A framer that reports lines longer than `max_line` bytes as [`StdioFrame::Oversize`].
    pub fn with_max_line(max_line: usize) -> Self {
        StdioFramer {
            line: Vec::new(),
            max_line,
            skipping: None,
            resync: false,
        }
    }

    /// Bytes held for a line whose newline has not arrived yet.
    pub fn pending_len(&self) -> usize {
        self.line.len()
    }

    /// Feeds the next bytes of the stream; returns the frames they complete.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<StdioFrame> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let newline = memchr::memchr(b'\n', bytes);
            let (piece, rest) = match newline {
                Some(at) => (&bytes[..at], &bytes[at + 1..]),
                None => (bytes, &[][..]),
            };
            bytes = rest;
            let complete = newline.is_some();
            if let Some(skipped) = self.skipping.as_mut() {
                *skipped = skipped.saturating_add(piece.len());
                if complete {
                    let len = *skipped;
                    self.skipping = None;
                    if !std::mem::take(&mut self.resync) {
                        frames.push(StdioFrame::Oversize { len });
                    }
                }
                continue;
            }
            let total = self.line.len().saturating_add(piece.len());
            if total > self.max_line {
                self.line = Vec::new();
                if !complete {
                    self.skipping = Some(total);
                } else if !std::mem::take(&mut self.resync) {
                    frames.push(StdioFrame::Oversize { len: total });
                }
                continue;
            }
            if !complete {
                self.line.extend_from_slice(piece);
                continue;
            }
            let frame = if self.line.is_empty() {
                parse_line(piece)
            } else {
                self.line.extend_from_slice(piece);
                let line = std::mem::take(&mut self.line);
                parse_line(&line)
            };
            let resync = std::mem::take(&mut self.resync);
            match frame {
                Some(StdioFrame::Malformed { .. }) if resync => {}
                Some(frame) => frames.push(frame),
                None => {}
            }
        }
        frames
    }

    /// The capture lost bytes here. Reports the message they damaged (with the bytes of it
    /// that were kept) and resynchronises at the next newline.
    pub fn mark_gap(&mut self) -> StdioFrame {
        let line = std::mem::take(&mut self.line);
        let frame = match self.skipping.take() {
            Some(len) => StdioFrame::Oversize { len },
            None => StdioFrame::Truncated { len: line.len() },
        };
        self.resync = true;
        frame
    }

    /// The stream ended. A last line without its newline is still a message if it parses (the
    /// capture stopped just before the newline); otherwise it is reported truncated.
    pub fn finish(&mut self) -> Option<StdioFrame> {
        let resync = std::mem::take(&mut self.resync);
        if let Some(len) = self.skipping.take() {
            return (!resync).then_some(StdioFrame::Oversize { len });
        }
        let line = std::mem::take(&mut self.line);
        match parse_line(&line)? {
            StdioFrame::Malformed { .. } if resync => None,
            StdioFrame::Malformed { len, .. } => Some(StdioFrame::Truncated { len }),
            frame => Some(frame),
        }
    }
}

pub(super) fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |at| at + 1);
    &bytes[start..end]
}

/// A complete line (newline excluded): blank lines are not messages.
pub(super) fn parse_line(line: &[u8]) -> Option<StdioFrame> {
    let text = trim_ascii(line);
    if text.is_empty() {
        return None;
    }
    if let Some(value) = crate::json_read::parse::<Value>(text) {
        return Some(StdioFrame::Message(value));
    }
    // Parsed again only to say why it is not JSON.
    Some(match serde_json::from_slice::<Value>(text) {
        Ok(value) => StdioFrame::Message(value),
        Err(err) => StdioFrame::Malformed {
            error: err.to_string(),
            len: line.len(),
        },
    })
}
