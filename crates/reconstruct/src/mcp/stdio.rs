//! MCP over stdio: two framers (one per direction) coupled with a session. Implements the
//! wire-parser contract.

#[allow(unused_imports)]
use super::*;

/// An MCP session over stdio: one framer per direction feeding one [`McpSession`].
pub struct StdioMcpConnection {
    pub(super) session: McpSession,
    pub(super) from_client: StdioFramer,
    pub(super) from_server: StdioFramer,
}

impl Default for StdioMcpConnection {
    fn default() -> Self {
        Self::new()
    }
}

impl StdioMcpConnection {
    pub fn new() -> Self {
        StdioMcpConnection {
            session: McpSession::new(McpTransport::Stdio),
            from_client: StdioFramer::new(),
            from_server: StdioFramer::new(),
        }
    }

    pub fn session(&self) -> &McpSession {
        &self.session
    }

    pub(super) fn framer(&mut self, sender: Sender) -> &mut StdioFramer {
        match sender {
            Sender::Client => &mut self.from_client,
            Sender::Server => &mut self.from_server,
        }
    }

    /// Feeds bytes `sender` wrote (a pipe chunk), captured at `ts_ns`.
    pub fn feed_bytes(&mut self, sender: Sender, bytes: &[u8], ts_ns: u64) -> Vec<McpExchange> {
        let frames = self.framer(sender).push(bytes);
        let mut out = Vec::new();
        for frame in &frames {
            out.extend(self.session.feed_frame(sender, frame, ts_ns));
        }
        out
    }

    /// Bytes `sender` wrote were lost here (the kernel reported `lost_bytes`, or a chunk is
    /// missing): the damaged message is reported and framing resumes at the next line.
    /// Upper bound of the heap the unfinished lines and the session's pending requests hold
    /// (charged to the memory budget by the reconstructor).
    pub fn held_bytes(&self) -> usize {
        self.from_client.line.capacity()
            + self.from_server.line.capacity()
            + self.session.held_bytes()
    }

    /// The memory budget has no room for `sender`'s unfinished line: it is dropped as if its
    /// bytes had been lost, and its allocation returned.
    pub fn drop_buffers(&mut self, sender: Sender, ts_ns: u64) -> Vec<McpExchange> {
        let out = self.mark_gap(sender, ts_ns);
        self.framer(sender).line = Vec::new();
        out
    }

    pub fn mark_gap(&mut self, sender: Sender, ts_ns: u64) -> Vec<McpExchange> {
        let frame = self.framer(sender).mark_gap();
        self.session.feed_frame(sender, &frame, ts_ns)
    }

    /// Both streams ended: flushes cut lines and unanswered requests.
    pub fn finish(&mut self, ts_ns: u64) -> Vec<McpExchange> {
        let mut out = Vec::new();
        for sender in [Sender::Client, Sender::Server] {
            if let Some(frame) = self.framer(sender).finish() {
                out.extend(self.session.feed_frame(sender, &frame, ts_ns));
            }
        }
        out.extend(self.session.finish());
        out
    }
}

/// Stdio MCP as a wire parser: the client's messages are the client's stdout (the server's
/// stdin), the server's its stdout.
impl crate::wire::WireParser for StdioMcpConnection {
    fn on_bytes(
        &mut self,
        direction: Direction,
        ts_ns: u64,
        bytes: &[u8],
        out: &mut Vec<crate::wire::WireMessage>,
    ) {
        let records = self.feed_bytes(sender_of(direction), bytes, ts_ns);
        out.extend(records.into_iter().map(crate::wire::WireMessage::Mcp));
    }

    fn on_gap(
        &mut self,
        direction: Direction,
        _len: u64,
        ts_ns: u64,
        out: &mut Vec<crate::wire::WireMessage>,
    ) {
        let records = self.mark_gap(sender_of(direction), ts_ns);
        out.extend(records.into_iter().map(crate::wire::WireMessage::Mcp));
    }

    fn finish(&mut self, ts_ns: u64, out: &mut Vec<crate::wire::WireMessage>) {
        let records = StdioMcpConnection::finish(self, ts_ns);
        out.extend(records.into_iter().map(crate::wire::WireMessage::Mcp));
    }

    fn held_bytes(&self) -> Option<usize> {
        Some(StdioMcpConnection::held_bytes(self))
    }

    /// The unfinished line does not fit: it is dropped and reading goes on from the next
    /// line, as after lost bytes.
    fn on_over_budget(
        &mut self,
        direction: Direction,
        ts_ns: u64,
        out: &mut Vec<crate::wire::WireMessage>,
    ) -> crate::wire::OverBudget {
        let records = self.drop_buffers(sender_of(direction), ts_ns);
        out.extend(records.into_iter().map(crate::wire::WireMessage::Mcp));
        crate::wire::OverBudget::Continue
    }
}

/// Who wrote a direction (client's view).
pub(super) fn sender_of(direction: Direction) -> Sender {
    match direction {
        Direction::Egress => Sender::Client,
        _ => Sender::Server,
    }
}
