//! The RESP2/RESP3 reader: a resumable state machine with an explicit stack that keeps only
//! the first bytes of each top-level element.

#[allow(unused_imports)]
use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Client,
    Server,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TopKind {
    /// An inline command line.
    Inline,
    SimpleString,
    Error,
    Integer,
    Bulk,
    Verbatim,
    Array,
    Map,
    Set,
    /// RESP3 out-of-band data (`>`): pub/sub messages, client-side caching invalidations.
    Push,
    Nil,
    Double,
    Boolean,
    BigNumber,
}

/// A complete top-level value, with what was kept of it.
#[derive(Debug)]
pub(super) struct TopValue {
    pub(super) kind: TopKind,
    /// Declared length: elements of an aggregate (pairs for a map), bytes of a string.
    pub(super) len: u64,
    /// First bytes of the string for simple strings and errors.
    pub(super) text: Vec<u8>,
    pub(super) integer: i64,
    /// Strings directly inside a top-level aggregate (the arguments of a command), each cut
    /// at [`KEPT_ARG_BYTES`], at most [`KEPT_ARGS`] of them.
    pub(super) elements: Vec<Vec<u8>>,
    pub(super) element_count: usize,
    pub(super) inline: bool,
    pub(super) ts_ns: u64,
}

impl TopValue {
    pub(super) fn new(ts_ns: u64) -> Self {
        TopValue {
            kind: TopKind::Nil,
            len: 0,
            text: Vec::new(),
            integer: 0,
            elements: Vec::new(),
            element_count: 0,
            inline: false,
            ts_ns,
        }
    }

    pub(super) fn reply_kind(&self) -> ReplyKind {
        match self.kind {
            TopKind::SimpleString if self.text == b"OK" => ReplyKind::Ok,
            TopKind::SimpleString | TopKind::Inline => ReplyKind::Status {
                text: String::from_utf8_lossy(&self.text[..self.text.len().min(64)]).into_owned(),
            },
            TopKind::Error => ReplyKind::Error {
                message: error_message(&self.text),
            },
            TopKind::Integer => ReplyKind::Integer {
                value: self.integer,
            },
            TopKind::Bulk | TopKind::Verbatim => ReplyKind::Bulk { len: self.len },
            TopKind::Array | TopKind::Push => ReplyKind::Array { len: self.len },
            TopKind::Map => ReplyKind::Map { len: self.len },
            TopKind::Set => ReplyKind::Set { len: self.len },
            TopKind::Nil => ReplyKind::Nil,
            TopKind::Double => ReplyKind::Double,
            TopKind::Boolean => ReplyKind::Boolean,
            TopKind::BigNumber => ReplyKind::BigNumber,
        }
    }
}

/// Redis echoes the start of the arguments in "unknown command" errors; those may be secrets.
pub(super) fn error_message(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    match text.find(", with args beginning with:") {
        Some(at) => text[..at].to_string(),
        None => text.into_owned(),
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Level {
    /// Elements still expected.
    pub(super) remaining: u64,
    /// An attribute (`|`): it annotates the next value and is not an element itself.
    pub(super) attribute: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadState {
    /// Reading a header or simple-value line (up to '\n').
    Line,
    /// Reading a length-prefixed string body: `remaining` bytes, the last two being CRLF.
    Body { remaining: u64 },
    /// Skipping to the next line that starts a plausible top-level value.
    Resync,
}

/// Streams RESP values out of one direction's bytes.
#[derive(Debug)]
pub(super) struct RespReader {
    pub(super) side: Side,
    pub(super) state: ReadState,
    pub(super) line: Vec<u8>,
    pub(super) line_overflow: bool,
    pub(super) stack: Vec<Level>,
    pub(super) top: Option<TopValue>,
    /// Where the bytes of the string being read go: into the top value's text (1) or into a
    /// new element (2), or nowhere (0).
    pub(super) keep_target: u8,
    /// Last two body bytes seen, to check the CRLF terminator.
    pub(super) body_tail: [u8; 2],
    /// Nothing parsed yet: the first line must look like the start of a value.
    pub(super) fresh: bool,
    pub(super) unparsed_bytes: u64,
}

impl RespReader {
    pub(super) fn new(side: Side) -> Self {
        RespReader {
            side,
            state: ReadState::Line,
            line: Vec::new(),
            line_overflow: false,
            stack: Vec::new(),
            top: None,
            keep_target: 0,
            body_tail: [0; 2],
            fresh: true,
            unparsed_bytes: 0,
        }
    }

    pub(super) fn feed(&mut self, mut input: &[u8], ts_ns: u64) -> Vec<TopValue> {
        let mut out = Vec::new();
        while !input.is_empty() {
            match self.state {
                ReadState::Line => {
                    let end = memchr::memchr(b'\n', input);
                    let chunk = &input[..end.map_or(input.len(), |e| e + 1)];
                    if self.top.is_none() && self.stack.is_empty() && self.line.is_empty() {
                        self.top = Some(TopValue::new(ts_ns));
                    }
                    let room = MAX_LINE.saturating_sub(self.line.len());
                    self.line.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    self.line_overflow |= chunk.len() > room;
                    input = &input[chunk.len()..];
                    if end.is_some() {
                        let line = std::mem::take(&mut self.line);
                        let overflow = std::mem::replace(&mut self.line_overflow, false);
                        // An over-long line is a protocol error like a malformed one.
                        if overflow || !self.on_line(&line, &mut out) {
                            self.fail(line.len() as u64);
                            // The next byte starts a line: it may start a value.
                            self.state = ReadState::Line;
                        }
                    }
                }
                ReadState::Body { remaining } => {
                    let take = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    let bytes = &input[..take];
                    // The last two bytes of the body are the CRLF terminator, not content.
                    let content_left = remaining.saturating_sub(2);
                    let content = &bytes[..bytes
                        .len()
                        .min(usize::try_from(content_left).unwrap_or(usize::MAX))];
                    self.keep(content);
                    for &b in bytes {
                        self.body_tail = [self.body_tail[1], b];
                    }
                    input = &input[take..];
                    let remaining = remaining - take as u64;
                    if remaining == 0 {
                        self.state = ReadState::Line;
                        if self.body_tail != *b"\r\n" {
                            // Mid-data: look for the next line that starts a value.
                            self.fail(0);
                            continue;
                        }
                        self.element_done(&mut out);
                    } else {
                        self.state = ReadState::Body { remaining };
                    }
                }
                ReadState::Resync => {
                    // A value starts after a line end, with a type byte.
                    let mut resumed = false;
                    for at in memchr::memchr_iter(b'\n', input) {
                        if let Some(&next) = input.get(at + 1) {
                            if self.may_start_value(next) {
                                self.unparsed_bytes =
                                    self.unparsed_bytes.saturating_add(at as u64 + 1);
                                input = &input[at + 1..];
                                self.state = ReadState::Line;
                                resumed = true;
                                break;
                            }
                        }
                    }
                    if !resumed {
                        // A line end as the final byte: the next feed may start a value.
                        let ends_line = input.last() == Some(&b'\n');
                        self.unparsed_bytes =
                            self.unparsed_bytes.saturating_add(input.len() as u64);
                        if ends_line {
                            self.state = ReadState::Line;
                        }
                        input = &[];
                    }
                }
            }
        }
        out
    }

    pub(super) fn may_start_value(&self, byte: u8) -> bool {
        match self.side {
            Side::Client => byte == b'*' || byte.is_ascii_alphabetic(),
            Side::Server => b"+-:$*_,#(!=%~>|".contains(&byte),
        }
    }

    /// Gives up on the current value and looks for the next one.
    pub(super) fn fail(&mut self, extra_bytes: u64) {
        self.unparsed_bytes = self.unparsed_bytes.saturating_add(extra_bytes);
        self.stack.clear();
        self.top = None;
        self.keep_target = 0;
        self.line.clear();
        self.state = ReadState::Resync;
        self.fresh = true;
    }

    pub(super) fn keep(&mut self, bytes: &[u8]) {
        let Some(top) = self.top.as_mut() else { return };
        let target = match self.keep_target {
            1 => &mut top.text,
            2 => match top.elements.last_mut() {
                Some(element) => element,
                None => return,
            },
            _ => return,
        };
        let room = KEPT_ARG_BYTES.saturating_sub(target.len());
        target.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Handles one complete line (terminator included); false on a protocol error.
    pub(super) fn on_line(&mut self, line: &[u8], out: &mut Vec<TopValue>) -> bool {
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        let at_top = self.stack.is_empty();
        let Some(&type_byte) = content.first() else {
            // Redis ignores empty lines between inline commands.
            if at_top {
                self.top = None;
                return true;
            }
            return false;
        };
        let depth = self.stack.len();
        let payload = &content[1..];
        let fresh = std::mem::replace(&mut self.fresh, false);
        if at_top && self.side == Side::Client && type_byte != b'*' {
            return self.on_inline(content, fresh, out);
        }
        let top = self.top.get_or_insert_with(|| TopValue::new(0));
        // What this value is, when it is the top-level one.
        let kind = match type_byte {
            b'+' => TopKind::SimpleString,
            b'-' | b'!' => TopKind::Error,
            b':' => TopKind::Integer,
            b'$' => TopKind::Bulk,
            b'=' => TopKind::Verbatim,
            b'*' => TopKind::Array,
            b'%' => TopKind::Map,
            b'~' => TopKind::Set,
            b'>' => TopKind::Push,
            b'|' => TopKind::Map,
            b'_' => TopKind::Nil,
            b',' => TopKind::Double,
            b'#' => TopKind::Boolean,
            b'(' => TopKind::BigNumber,
            _ => return false,
        };
        if depth == 1 {
            top.element_count = top.element_count.saturating_add(1);
        }
        let keeps_element = depth == 1 && top.elements.len() < KEPT_ARGS;
        match type_byte {
            b'*' | b'%' | b'~' | b'>' | b'|' => {
                let Some(n) = parse_int(payload) else {
                    return false;
                };
                if n == -1 && matches!(type_byte, b'*') {
                    if depth == 0 {
                        top.kind = TopKind::Nil;
                    }
                    return self.element_done(out);
                }
                let Ok(n) = u64::try_from(n) else {
                    return false;
                };
                let attribute = type_byte == b'|';
                if depth == 0 && !attribute {
                    top.kind = kind;
                    top.len = n;
                }
                if self.stack.len() >= MAX_DEPTH {
                    return false;
                }
                let pairs = matches!(type_byte, b'%' | b'|');
                let count = if pairs { n.checked_mul(2) } else { Some(n) };
                let Some(count) = count else { return false };
                if count == 0 {
                    if attribute {
                        return true;
                    }
                    return self.element_done(out);
                }
                self.stack.push(Level {
                    remaining: count,
                    attribute,
                });
                true
            }
            b'$' | b'!' | b'=' => {
                let Some(n) = parse_int(payload) else {
                    return false;
                };
                if n == -1 && type_byte == b'$' {
                    if depth == 0 {
                        top.kind = TopKind::Nil;
                    }
                    if keeps_element {
                        top.elements.push(Vec::new());
                    }
                    return self.element_done(out);
                }
                let Ok(n) = u64::try_from(n) else {
                    return false;
                };
                if depth == 0 {
                    top.kind = kind;
                    top.len = n;
                }
                self.keep_target = if depth == 0 && type_byte == b'!' {
                    1
                } else if keeps_element {
                    top.elements.push(Vec::new());
                    2
                } else {
                    0
                };
                let Some(remaining) = n.checked_add(2) else {
                    return false;
                };
                self.body_tail = [0; 2];
                self.state = ReadState::Body { remaining };
                true
            }
            _ => {
                if depth == 0 {
                    top.kind = kind;
                    match type_byte {
                        b'+' | b'-' => {
                            top.text = payload[..payload.len().min(KEPT_ARG_BYTES)].to_vec()
                        }
                        b':' => match parse_int(payload) {
                            Some(n) => top.integer = n,
                            None => return false,
                        },
                        _ => {}
                    }
                } else if keeps_element {
                    top.elements
                        .push(payload[..payload.len().min(KEPT_ARG_BYTES)].to_vec());
                }
                self.element_done(out)
            }
        }
    }

    pub(super) fn on_inline(
        &mut self,
        content: &[u8],
        fresh: bool,
        out: &mut Vec<TopValue>,
    ) -> bool {
        let words: Vec<&[u8]> = content
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        let Some(first) = words.first() else {
            self.top = None;
            return true;
        };
        // After a resync or at the very start, only names clients really send inline count.
        let plausible = first.iter().all(|b| is_command_byte(*b))
            && first.len() <= 32
            && !looks_like_http_request_line(content);
        if !plausible || (fresh && !is_known_command(first)) {
            return false;
        }
        let mut top = self.top.take().unwrap_or_else(|| TopValue::new(0));
        top.kind = TopKind::Inline;
        top.inline = true;
        top.element_count = words.len();
        top.elements = words
            .iter()
            .take(KEPT_ARGS)
            .map(|w| w[..w.len().min(KEPT_ARG_BYTES)].to_vec())
            .collect();
        out.push(top);
        true
    }

    /// A value finished: count it against the enclosing aggregates, and emit the top-level
    /// value when it is complete.
    pub(super) fn element_done(&mut self, out: &mut Vec<TopValue>) -> bool {
        self.keep_target = 0;
        loop {
            let Some(level) = self.stack.last_mut() else {
                if let Some(top) = self.top.take() {
                    out.push(top);
                }
                return true;
            };
            level.remaining -= 1;
            if level.remaining > 0 {
                return true;
            }
            let finished = self.stack.pop();
            if finished.is_some_and(|l| l.attribute) {
                // The attribute annotated what follows; it is not an element of its parent.
                if self.stack.is_empty() {
                    // A top-level attribute: the real value comes next.
                    if let Some(top) = self.top.as_mut() {
                        top.elements.clear();
                        top.element_count = 0;
                    }
                }
                return true;
            }
        }
    }
}
