//! The HTTP/2 frame layer (RFC 9113 §4, §6) of one direction, read passively from captured
//! bytes fed in pieces of any size.
//!
//! Written here rather than taken from a crate: the maintained frame codecs (`h2`'s, the
//! `loona`/`fluke` ones) are parts of endpoints: they own the socket, answer SETTINGS and
//! PING, enforce flow control and refuse a peer's frames from their own side's point of
//! view, and none can be told that bytes were lost. An observer needs the opposite: both
//! directions read independently, never an answer, and a gap inside a DATA payload skipped
//! while staying in sync. The layer itself is small (a 9-byte header, then a payload), so it
//! is a state machine over the fed slices: DATA payloads are handed on as they arrive
//! (never buffered whole), every other frame's payload is collected up to a bound.
//! Header-block decoding (HPACK) is not done here but in [`super::header_block`].

/// The client connection preface (RFC 9113 §3.4), the first bytes of every HTTP/2 connection
/// the client opens.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame header length.
pub const HEADER_LEN: usize = 9;

/// A frame other than DATA whose payload is longer than this is not collected: the
/// connection is refused as hostile. A header block may span several frames; each frame is
/// bounded here, the whole block by [`super::header_block::MAX_BLOCK_BYTES`].
pub const MAX_CONTROL_PAYLOAD: usize = 256 << 10;

pub mod kind {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// A frame's 9-byte header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub length: usize,
    pub kind: u8,
    pub flags: u8,
    pub stream_id: u32,
}

impl FrameHeader {
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Self {
        Self {
            length: (usize::from(bytes[0]) << 16)
                | (usize::from(bytes[1]) << 8)
                | usize::from(bytes[2]),
            kind: bytes[3],
            flags: bytes[4],
            // The reserved bit is ignored on receipt (RFC 9113 §4.1).
            stream_id: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff,
        }
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// What the frame layer found in the fed bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameEvent<'a> {
    /// A piece of a DATA frame's payload, padding removed.
    Data { stream_id: u32, bytes: &'a [u8] },
    /// A DATA frame ended; `end_stream` when it carried END_STREAM.
    DataEnd { stream_id: u32, end_stream: bool },
    /// A whole frame other than DATA, its payload as sent (padding included).
    Frame {
        header: FrameHeader,
        payload: Vec<u8>,
    },
    /// Bytes did not follow the framing; nothing further in this direction can be read.
    Error(String),
}

/// What lost bytes did to the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapEffect {
    /// Nothing was lost (a zero-length gap).
    None,
    /// They fell inside a DATA frame of this stream (its payload or padding); the reader is
    /// still in sync.
    InData(u32),
    /// Frame boundaries are lost: later bytes of the direction are ignored.
    LostSync,
}

/// Where the reader stands within the direction's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Matching the client preface; `matched` bytes of it seen.
    Preface { matched: usize },
    /// Collecting a frame header.
    Header,
    /// Inside a DATA payload.
    Data {
        stream_id: u32,
        /// The pad-length octet is still to come.
        pad_length_pending: bool,
        data_remaining: usize,
        pad_remaining: usize,
        end_stream: bool,
    },
    /// Collecting a frame's payload.
    Payload { header: FrameHeader },
    /// Frame boundaries are unknown (bytes were lost, or the framing was broken).
    Lost,
}

/// One direction's frame reader.
#[derive(Debug)]
pub struct FrameReader {
    state: State,
    /// A frame header or a control frame's payload being collected.
    collected: Vec<u8>,
}

impl FrameReader {
    /// A reader that first expects the client preface (`preface`), or a frame header.
    pub fn new(preface: bool) -> Self {
        Self {
            state: if preface {
                State::Preface { matched: 0 }
            } else {
                State::Header
            },
            collected: Vec::new(),
        }
    }

    /// True once frame boundaries are unknown: later bytes of this direction are ignored.
    pub fn is_lost(&self) -> bool {
        self.state == State::Lost
    }

    /// Heap the reader holds.
    pub fn held_bytes(&self) -> usize {
        self.collected.capacity()
    }

    /// `lost` bytes never arrived. Inside a DATA payload whose remaining length covers them,
    /// the reader stays in sync (the caller flags the stream's body); anywhere else the frame
    /// boundaries are lost.
    pub fn gap(&mut self, lost: u64) -> GapEffect {
        let lost = usize::try_from(lost).unwrap_or(usize::MAX);
        if lost == 0 {
            return GapEffect::None;
        }
        if let State::Data {
            stream_id,
            pad_length_pending: false,
            data_remaining,
            pad_remaining,
            ..
        } = &mut self.state
        {
            if lost < *data_remaining + *pad_remaining {
                let from_data = lost.min(*data_remaining);
                *data_remaining -= from_data;
                *pad_remaining -= lost - from_data;
                return GapEffect::InData(*stream_id);
            }
        }
        self.lose();
        GapEffect::LostSync
    }

    fn lose(&mut self) {
        self.state = State::Lost;
        self.collected = Vec::new();
    }

    /// Reads the next event from `input`, consuming what it used; `None` when `input` is used
    /// up (or the direction is lost).
    pub fn next<'a>(&mut self, input: &mut &'a [u8]) -> Option<FrameEvent<'a>> {
        loop {
            if input.is_empty() && !self.ready_without_input() {
                return None;
            }
            match &mut self.state {
                State::Lost => {
                    *input = &[];
                    return None;
                }
                State::Preface { matched } => {
                    let want = &PREFACE[*matched..];
                    let take = want.len().min(input.len());
                    if input[..take] != want[..take] {
                        self.lose();
                        return Some(FrameEvent::Error(
                            "the client's bytes do not start with the HTTP/2 preface".into(),
                        ));
                    }
                    *matched += take;
                    *input = &input[take..];
                    if *matched == PREFACE.len() {
                        self.state = State::Header;
                    }
                }
                State::Header => {
                    let need = HEADER_LEN - self.collected.len();
                    let take = need.min(input.len());
                    let header_bytes: [u8; HEADER_LEN];
                    if self.collected.is_empty() && input.len() >= HEADER_LEN {
                        header_bytes = input[..HEADER_LEN].try_into().ok()?;
                        *input = &input[HEADER_LEN..];
                    } else {
                        self.collected.extend_from_slice(&input[..take]);
                        *input = &input[take..];
                        if self.collected.len() < HEADER_LEN {
                            return None;
                        }
                        header_bytes = self.collected[..HEADER_LEN].try_into().ok()?;
                        self.collected.clear();
                    }
                    let header = FrameHeader::parse(&header_bytes);
                    if let Some(event) = self.start_frame(header) {
                        return Some(event);
                    }
                }
                State::Data {
                    stream_id,
                    pad_length_pending,
                    data_remaining,
                    pad_remaining,
                    end_stream,
                } => {
                    let stream_id = *stream_id;
                    if *pad_length_pending {
                        let pad = usize::from(input[0]);
                        *input = &input[1..];
                        *pad_length_pending = false;
                        if pad > *data_remaining {
                            self.lose();
                            return Some(FrameEvent::Error(format!(
                                "DATA on stream {stream_id}: padding of {pad} bytes exceeds the frame"
                            )));
                        }
                        *data_remaining -= pad;
                        *pad_remaining = pad;
                        continue;
                    }
                    if *data_remaining > 0 {
                        let take = (*data_remaining).min(input.len());
                        let bytes = &input[..take];
                        *input = &input[take..];
                        *data_remaining -= take;
                        return Some(FrameEvent::Data { stream_id, bytes });
                    }
                    if *pad_remaining > 0 {
                        let take = (*pad_remaining).min(input.len());
                        *input = &input[take..];
                        *pad_remaining -= take;
                        if *pad_remaining > 0 {
                            return None;
                        }
                    }
                    let end_stream = *end_stream;
                    self.state = State::Header;
                    return Some(FrameEvent::DataEnd {
                        stream_id,
                        end_stream,
                    });
                }
                State::Payload { header } => {
                    let header = *header;
                    let take = (header.length - self.collected.len()).min(input.len());
                    if self.collected.is_empty() && take == header.length {
                        // The whole payload is in this piece: one copy, no growth.
                        let payload = input[..take].to_vec();
                        *input = &input[take..];
                        self.state = State::Header;
                        return Some(FrameEvent::Frame { header, payload });
                    }
                    self.collected.extend_from_slice(&input[..take]);
                    *input = &input[take..];
                    if self.collected.len() < header.length {
                        return None;
                    }
                    let payload = std::mem::take(&mut self.collected);
                    self.state = State::Header;
                    return Some(FrameEvent::Frame { header, payload });
                }
            }
        }
    }

    /// A state that completes without more bytes (an empty DATA frame's end, an empty
    /// control frame).
    fn ready_without_input(&self) -> bool {
        match &self.state {
            State::Data {
                pad_length_pending,
                data_remaining,
                pad_remaining,
                ..
            } => !*pad_length_pending && *data_remaining == 0 && *pad_remaining == 0,
            State::Payload { header } => header.length == self.collected.len(),
            _ => false,
        }
    }

    /// A frame header was read: what its payload is read as.
    fn start_frame(&mut self, header: FrameHeader) -> Option<FrameEvent<'static>> {
        if header.kind == kind::DATA {
            if header.stream_id == 0 {
                self.lose();
                return Some(FrameEvent::Error("DATA on stream 0".into()));
            }
            let padded = header.has(flag::PADDED);
            if padded && header.length == 0 {
                self.lose();
                return Some(FrameEvent::Error(format!(
                    "padded DATA on stream {} without room for its pad length",
                    header.stream_id
                )));
            }
            self.state = State::Data {
                stream_id: header.stream_id,
                pad_length_pending: padded,
                data_remaining: header.length - usize::from(padded),
                pad_remaining: 0,
                end_stream: header.has(flag::END_STREAM),
            };
            return None;
        }
        if header.length > MAX_CONTROL_PAYLOAD {
            self.lose();
            return Some(FrameEvent::Error(format!(
                "frame of type {:#x} announces {} bytes, more than the {} a header or control frame may take here",
                header.kind, header.length, MAX_CONTROL_PAYLOAD
            )));
        }
        self.state = State::Payload { header };
        None
    }
}

/// Strips a HEADERS or PUSH_PROMISE frame's padding and priority (or promised stream id):
/// the header-block fragment it carries. `Err` when the lengths do not fit the frame.
pub fn header_fragment(
    header: &FrameHeader,
    payload: &[u8],
) -> Result<std::ops::Range<usize>, String> {
    let mut start = 0;
    let mut end = payload.len();
    if header.has(flag::PADDED) {
        let pad = usize::from(
            *payload
                .first()
                .ok_or("padded frame without its pad length")?,
        );
        start = 1;
        end = end
            .checked_sub(pad)
            .filter(|&end| end >= start)
            .ok_or_else(|| format!("padding of {pad} bytes exceeds the frame"))?;
    }
    let skip = match header.kind {
        kind::HEADERS if header.has(flag::PRIORITY) => 5,
        kind::PUSH_PROMISE => 4,
        _ => 0,
    };
    start += skip;
    if start > end {
        return Err("frame too short for its priority or promised stream".into());
    }
    Ok(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend(stream.to_be_bytes());
        out.extend(payload);
        out
    }

    fn events(reader: &mut FrameReader, bytes: &[u8]) -> Vec<String> {
        let mut input = bytes;
        let mut out = Vec::new();
        while let Some(event) = reader.next(&mut input) {
            out.push(format!("{event:?}"));
        }
        out
    }

    /// Events with DATA pieces joined, whatever the cut.
    fn joined(pieces: &[&[u8]]) -> Vec<String> {
        let mut reader = FrameReader::new(true);
        let mut out: Vec<String> = Vec::new();
        let mut data: Vec<u8> = Vec::new();
        for piece in pieces {
            let mut input = *piece;
            while let Some(event) = reader.next(&mut input) {
                match event {
                    FrameEvent::Data { bytes, .. } => data.extend_from_slice(bytes),
                    other => {
                        if !data.is_empty() {
                            out.push(format!("data {:?}", String::from_utf8_lossy(&data)));
                            data.clear();
                        }
                        out.push(format!("{other:?}"));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn padded_data_and_empty_frames_read_the_same_at_every_cut() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(frame(kind::SETTINGS, 0, 0, &[0, 4, 0, 0, 0xff, 0xff]));
        bytes.extend(frame(kind::DATA, flag::PADDED, 1, b"\x03hello\0\0\0"));
        bytes.extend(frame(kind::DATA, 0, 3, b""));
        bytes.extend(frame(kind::SETTINGS, flag::ACK, 0, b""));
        bytes.extend(frame(kind::DATA, flag::END_STREAM, 1, b"world"));
        let whole = joined(&[&bytes]);
        assert_eq!(whole.len(), 7, "{whole:#?}");
        assert!(
            whole[1].contains("hello") && whole[5].contains("world"),
            "{whole:#?}"
        );
        for cut in 0..bytes.len() {
            assert_eq!(
                joined(&[&bytes[..cut], &bytes[cut..]]),
                whole,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn gap_inside_data_keeps_sync_and_elsewhere_loses_it() {
        let mut reader = FrameReader::new(false);
        let data = frame(kind::DATA, 0, 1, b"0123456789");
        events(&mut reader, &data[..12]);
        assert_eq!(reader.gap(4), GapEffect::InData(1));
        let rest = events(&mut reader, &data[16..]);
        assert_eq!(rest.len(), 2, "{rest:?}");
        assert!(!reader.is_lost());
        events(&mut reader, &frame(kind::PING, 0, 0, b"12345678")[..5]);
        assert_eq!(reader.gap(1), GapEffect::LostSync);
        assert!(reader.is_lost());
        assert!(events(&mut reader, b"anything").is_empty());
    }

    #[test]
    fn hostile_frames_are_refused_with_a_reason() {
        let mut reader = FrameReader::new(false);
        let huge = [0xff, 0xff, 0xff, kind::HEADERS, 0, 0, 0, 0, 1];
        let out = events(&mut reader, &huge);
        assert!(out[0].contains("announces 16777215 bytes"), "{out:?}");
        let mut reader = FrameReader::new(false);
        let out = events(&mut reader, &frame(kind::DATA, flag::PADDED, 1, b"\x09abc"));
        assert!(out[0].contains("padding of 9 bytes"), "{out:?}");
        let mut reader = FrameReader::new(true);
        let out = events(&mut reader, b"GET / HTTP/1.1\r\n");
        assert!(out[0].contains("preface"), "{out:?}");
        let header = FrameHeader::parse(&[0, 0, 2, kind::HEADERS, flag::PADDED, 0, 0, 0, 1]);
        assert!(header_fragment(&header, &[5, 0]).is_err());
    }
}
