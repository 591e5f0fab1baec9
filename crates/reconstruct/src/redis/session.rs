//! The Redis session: pairs each request with its reply, in order. Implements the wire-parser
//! contract.

#[allow(unused_imports)]
use super::*;

/// Reassembles the commands of one Redis connection.
#[derive(Debug)]
pub struct RedisConnection {
    pub(super) client: RespReader,
    pub(super) server: RespReader,
    pub(super) pending: VecDeque<RedisCommand>,
    pub(super) session: RedisSession,
    /// Subscribed channels or patterns exist: pub/sub messages arrive unrequested.
    pub(super) subscribed: bool,
    pub(super) unknown_direction_bytes: u64,
}

impl Default for RedisConnection {
    fn default() -> Self {
        Self::new()
    }
}

impl RedisConnection {
    /// Upper bound of the heap this connection holds (charged to the memory budget by the
    /// reconstructor).
    pub fn held_bytes(&self) -> usize {
        let reader = |r: &RespReader| {
            r.line.capacity()
                + r.stack.capacity() * 64
                + r.top.as_ref().map_or(0, |t| {
                    256 + t.text.capacity() + KEPT_ARGS.min(t.len as usize) * 32
                })
        };
        let command = |c: &RedisCommand| {
            256 + c.command.len() + c.keys.iter().map(|k| 32 + k.len()).sum::<usize>()
        };
        reader(&self.client)
            + reader(&self.server)
            + self.pending.iter().map(command).sum::<usize>()
    }

    pub fn new() -> Self {
        RedisConnection {
            client: RespReader::new(Side::Client),
            server: RespReader::new(Side::Server),
            pending: VecDeque::new(),
            session: RedisSession::default(),
            subscribed: false,
            unknown_direction_bytes: 0,
        }
    }

    /// True when `first_bytes` (what the client sent first) is a RESP command array
    /// (`*N\r\n$M\r\nNAME`) or an inline command this module knows (`PING\r\n`).
    pub fn looks_like_redis(first_bytes: &[u8]) -> bool {
        if let Some(rest) = first_bytes.strip_prefix(b"*") {
            // *N\r\n$M\r\nNAME with a plausible command name.
            let Some(line_end) = memchr::memmem::find(rest, b"\r\n") else {
                return false;
            };
            if parse_int(&rest[..line_end]).is_none_or(|n| !(1..=1_048_576).contains(&n)) {
                return false;
            }
            let rest = &rest[line_end + 2..];
            let Some(rest) = rest.strip_prefix(b"$") else {
                return false;
            };
            let Some(line_end) = memchr::memmem::find(rest, b"\r\n") else {
                return false;
            };
            let Some(len) = parse_int(&rest[..line_end]).and_then(|n| usize::try_from(n).ok())
            else {
                return false;
            };
            let name = &rest[line_end + 2..];
            let name = name.get(..len).unwrap_or(name);
            return !name.is_empty() && name.iter().all(|b| is_command_byte(*b));
        }
        let line_end = memchr::memchr(b'\n', first_bytes).unwrap_or(first_bytes.len());
        let first_word = first_bytes[..line_end]
            .split(|b| b.is_ascii_whitespace())
            .next()
            .unwrap_or_default();
        line_end < first_bytes.len()
            && is_known_command(first_word)
            && !looks_like_http_request_line(&first_bytes[..line_end])
    }

    pub fn session(&self) -> &RedisSession {
        &self.session
    }

    /// Feeds bytes of one direction (`Egress` = client to server) and returns the commands
    /// whose replies arrived.
    pub fn feed(&mut self, direction: Direction, bytes: &[u8], ts_ns: u64) -> Vec<RedisCommand> {
        let mut out = Vec::new();
        match direction {
            Direction::Egress => {
                for value in self.client.feed(bytes, ts_ns) {
                    self.on_request(value, &mut out);
                }
            }
            Direction::Ingress => {
                for value in self.server.feed(bytes, ts_ns) {
                    self.on_reply(value, &mut out);
                }
            }
            Direction::Unknown => {
                self.unknown_direction_bytes = self
                    .unknown_direction_bytes
                    .saturating_add(bytes.len() as u64);
            }
        }
        self.session.unparsed_bytes = self
            .client
            .unparsed_bytes
            .saturating_add(self.server.unparsed_bytes)
            .saturating_add(self.unknown_direction_bytes);
        out
    }

    /// Ends the connection: commands still waiting for a reply are returned, flagged partial.
    pub fn finish(&mut self) -> Vec<RedisCommand> {
        self.pending
            .drain(..)
            .map(|mut command| {
                command.partial = true;
                command
            })
            .collect()
    }

    pub(super) fn on_request(&mut self, value: TopValue, out: &mut Vec<RedisCommand>) {
        let args: Vec<&[u8]> = value.elements.iter().map(Vec::as_slice).collect();
        let Some(command) = describe_command(&args, value.element_count, &mut self.session) else {
            return;
        };
        if matches!(
            command.command.as_str(),
            "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE"
        ) {
            self.subscribed = true;
        }
        let mut command = command;
        command.inline = value.inline;
        command.ts_ns = value.ts_ns;
        command.end_ts_ns = value.ts_ns;
        if self.pending.len() >= MAX_PENDING {
            if let Some(mut oldest) = self.pending.pop_front() {
                oldest.partial = true;
                out.push(oldest);
            }
        }
        self.pending.push_back(command);
    }

    pub(super) fn on_reply(&mut self, value: TopValue, out: &mut Vec<RedisCommand>) {
        if value.kind == TopKind::Push {
            return;
        }
        let front_subscribes = self
            .pending
            .front()
            .is_some_and(|c| c.command.ends_with("SUBSCRIBE"));
        if value.kind == TopKind::Array && !front_subscribes && self.subscribed {
            // RESP2 pub/sub: messages and extra (un)subscribe confirmations are arrays whose
            // first element names them.
            let first = value.elements.first().map(|e| e.to_ascii_lowercase());
            if first.is_some_and(|f| {
                matches!(
                    f.as_slice(),
                    b"message"
                        | b"pmessage"
                        | b"smessage"
                        | b"subscribe"
                        | b"psubscribe"
                        | b"ssubscribe"
                        | b"unsubscribe"
                        | b"punsubscribe"
                        | b"sunsubscribe"
                )
            }) {
                return;
            }
        }
        let Some(mut command) = self.pending.pop_front() else {
            self.session.unpaired_replies = self.session.unpaired_replies.saturating_add(1);
            return;
        };
        let reply = value.reply_kind();
        if let (Some(db), ReplyKind::Ok) = (command.selected_db, &reply) {
            self.session.db = db;
        }
        command.reply = Some(reply);
        command.end_ts_ns = value.ts_ns.max(command.ts_ns);
        out.push(command);
    }
}

/// Redis as a wire parser. Gaps are not passed on: the RESP reader finds its way back to a
/// value boundary by itself (see the module doc), as it always has.
impl crate::wire::WireParser for RedisConnection {
    fn on_bytes(
        &mut self,
        direction: Direction,
        ts_ns: u64,
        bytes: &[u8],
        out: &mut Vec<crate::wire::WireMessage>,
    ) {
        let records = self.feed(direction, bytes, ts_ns);
        out.extend(records.into_iter().map(crate::wire::WireMessage::Redis));
    }

    fn on_gap(
        &mut self,
        _direction: Direction,
        _len: u64,
        _ts_ns: u64,
        _out: &mut Vec<crate::wire::WireMessage>,
    ) {
    }

    fn finish(&mut self, _ts_ns: u64, out: &mut Vec<crate::wire::WireMessage>) {
        let records = RedisConnection::finish(self);
        out.extend(records.into_iter().map(crate::wire::WireMessage::Redis));
    }

    fn held_bytes(&self) -> Option<usize> {
        Some(RedisConnection::held_bytes(self))
    }

    /// What is in flight is flushed (flagged as cut); the rest of the connection is not parsed.
    fn on_over_budget(
        &mut self,
        _direction: Direction,
        ts_ns: u64,
        out: &mut Vec<crate::wire::WireMessage>,
    ) -> crate::wire::OverBudget {
        crate::wire::WireParser::finish(self, ts_ns, out);
        crate::wire::OverBudget::StopParsing
    }
}
