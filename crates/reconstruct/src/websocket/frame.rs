//! WebSocket framing (RFC 6455 §5.2) of one direction, read passively in pieces of any size.
//!
//! A frame is a 2-byte head (FIN, RSV1-3, opcode; MASK, a 7-bit length), an extended length
//! (16 or 64 bits) when the 7-bit one says 126 or 127, a 4-byte masking key when MASK is set
//! (every client frame), then the payload, XORed with the key. The reader hands out the
//! frame's header, then its payload unmasked in as many pieces as the input came in, then the
//! frame's end, holding at most one incomplete head (14 bytes) between feeds.

/// Opcodes (RFC 6455 §5.2, §11.8).
pub mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;

    /// Control frames have the high bit of the opcode set.
    pub fn is_control(opcode: u8) -> bool {
        opcode & 0x8 != 0
    }
}

/// Control frames carry at most this much (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: u64 = 125;

/// The longest frame head: 2 bytes, a 64-bit length, a masking key.
const MAX_HEAD_LEN: usize = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1: the message is compressed (permessage-deflate), on its first frame.
    pub rsv1: bool,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub len: u64,
}

/// What the reader found in its input.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameEvent<'a> {
    Start(FrameHeader),
    /// A piece of the current frame's payload, unmasked.
    Payload(&'a [u8]),
    /// The current frame's payload is complete.
    End,
    /// The bytes are not WebSocket framing: the direction is not read further.
    Error(String),
}

#[derive(Debug, Clone, Copy)]
enum State {
    Head,
    Payload {
        mask: Option<[u8; 4]>,
        remaining: u64,
        /// Position in the masking key of the next payload byte.
        key_at: usize,
    },
    /// Frame boundaries are unknown (broken framing, or bytes lost outside a payload).
    Lost,
}

/// What a gap did to the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapEffect {
    /// The lost bytes were inside the current frame's payload, which goes on after them.
    InPayload,
    /// Frame boundaries are lost: nothing further is read in this direction.
    LostSync,
}

/// One direction's frame reader.
#[derive(Debug)]
pub struct FrameReader {
    head: Vec<u8>,
    state: State,
    /// Unmasked payload handed out by the last event.
    scratch: Vec<u8>,
}

impl Default for FrameReader {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameReader {
    pub fn new() -> Self {
        Self {
            head: Vec::with_capacity(MAX_HEAD_LEN),
            state: State::Head,
            scratch: Vec::new(),
        }
    }

    pub fn is_lost(&self) -> bool {
        matches!(self.state, State::Lost)
    }

    /// Heap the reader holds.
    pub fn held_bytes(&self) -> usize {
        self.head.capacity() + self.scratch.capacity()
    }

    /// Reads the next event from `input`, advancing it; `None` when `input` is used up (or
    /// the direction is lost).
    pub fn next<'s>(&'s mut self, input: &mut &[u8]) -> Option<FrameEvent<'s>> {
        loop {
            match self.state {
                State::Lost => {
                    *input = &[];
                    return None;
                }
                State::Payload { remaining: 0, .. } => {
                    self.state = State::Head;
                    return Some(FrameEvent::End);
                }
                State::Payload {
                    mask,
                    remaining,
                    key_at,
                } => {
                    if input.is_empty() {
                        return None;
                    }
                    let take = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    let (piece, rest) = input.split_at(take);
                    *input = rest;
                    self.scratch.clear();
                    self.scratch.extend_from_slice(piece);
                    if let Some(key) = mask {
                        for (i, byte) in self.scratch.iter_mut().enumerate() {
                            *byte ^= key[(key_at + i) % 4];
                        }
                    }
                    self.state = State::Payload {
                        mask,
                        remaining: remaining - take as u64,
                        key_at: (key_at + take) % 4,
                    };
                    return Some(FrameEvent::Payload(&self.scratch));
                }
                State::Head => {
                    if input.is_empty() {
                        return None;
                    }
                    let need = head_len(&self.head, input);
                    let take = need.saturating_sub(self.head.len()).min(input.len());
                    self.head.extend_from_slice(&input[..take]);
                    *input = &input[take..];
                    if self.head.len() < head_len(&self.head, &[]) || self.head.len() < 2 {
                        continue;
                    }
                    let parsed = parse_head(&self.head);
                    self.head.clear();
                    match parsed {
                        Ok(header) => {
                            self.state = State::Payload {
                                mask: header.mask,
                                remaining: header.len,
                                key_at: 0,
                            };
                            return Some(FrameEvent::Start(header));
                        }
                        Err(reason) => {
                            self.state = State::Lost;
                            *input = &[];
                            return Some(FrameEvent::Error(reason));
                        }
                    }
                }
            }
        }
    }

    /// The input was used up: a large piece's unmasking buffer is not kept between feeds.
    pub fn trim(&mut self) {
        if self.scratch.capacity() > 16 << 10 {
            self.scratch = Vec::new();
        }
    }

    /// `len` bytes of this direction were lost.
    pub fn gap(&mut self, len: u64) -> GapEffect {
        match &mut self.state {
            State::Payload {
                remaining, key_at, ..
            } if *remaining > len => {
                *remaining -= len;
                *key_at = (*key_at + (len % 4) as usize) % 4;
                GapEffect::InPayload
            }
            _ => {
                self.state = State::Lost;
                self.head = Vec::new();
                GapEffect::LostSync
            }
        }
    }

    /// Stops reading this direction (the parser above gave up on it).
    pub fn lose(&mut self) {
        self.state = State::Lost;
        self.head = Vec::new();
        self.scratch = Vec::new();
    }
}

/// How long the head that starts with `have` (then `more`) is; 2 until its second byte is
/// known.
fn head_len(have: &[u8], more: &[u8]) -> usize {
    let Some(second) = have.get(1).or_else(|| more.get(1 - have.len().min(1))) else {
        return 2;
    };
    let length = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let key = if second & 0x80 != 0 { 4 } else { 0 };
    2 + length + key
}

fn parse_head(head: &[u8]) -> Result<FrameHeader, String> {
    let (first, second) = (head[0], head[1]);
    let opcode = first & 0x0f;
    if first & 0x30 != 0 {
        return Err(format!(
            "frame with RSV2/RSV3 set ({first:#04x}): no extension in use defines them"
        ));
    }
    if !matches!(opcode, 0x0..=0x2 | 0x8..=0xA) {
        return Err(format!("reserved opcode {opcode:#x}"));
    }
    let mut at = 2;
    let len = match second & 0x7f {
        126 => {
            at += 2;
            u64::from(u16::from_be_bytes([head[2], head[3]]))
        }
        127 => {
            at += 8;
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&head[2..10]);
            let len = u64::from_be_bytes(bytes);
            if len >> 63 != 0 {
                return Err("64-bit frame length with its high bit set".to_string());
            }
            len
        }
        short => u64::from(short),
    };
    let mask = (second & 0x80 != 0).then(|| [head[at], head[at + 1], head[at + 2], head[at + 3]]);
    let fin = first & 0x80 != 0;
    if opcode::is_control(opcode) && (len > MAX_CONTROL_PAYLOAD || !fin) {
        return Err(format!(
            "control frame {opcode:#x} of {len} bytes, fin={fin} (at most 125 bytes, unfragmented)"
        ));
    }
    Ok(FrameHeader {
        fin,
        rsv1: first & 0x40 != 0,
        opcode,
        mask,
        len,
    })
}

/// A frame's bytes, as an endpoint would write it (tests build inputs with it).
#[cfg(test)]
pub fn encode(fin: bool, rsv1: bool, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode];
    let masked = u8::from(mask.is_some()) << 7;
    match payload.len() {
        n if n < 126 => out.push(masked | n as u8),
        n if n <= 0xffff => {
            out.push(masked | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(masked | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}
