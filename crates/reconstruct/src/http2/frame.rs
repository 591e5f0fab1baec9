//! The HTTP/2 frame layer (RFC 9113 §4, §6) of one direction, read passively from captured
//! bytes fed in pieces of any size: DATA payloads are handed on as they arrive (never
//! buffered whole), every other frame's payload is collected up to a bound.
//!
//! The walk itself (what each byte is, and lost bytes) is [`agentscope_http2_wire::walker`],
//! shared with redaction, which masks header values in the same frames before they reach
//! this layer; the reasons for not taking a crate's codec are given there. Header-block
//! decoding (HPACK) is not done here but in [`super::header_block`].

pub use agentscope_http2_wire::frame::{
    flag, header_fragment, kind, FrameHeader, HEADER_LEN, PREFACE,
};
pub use agentscope_http2_wire::walker::GapEffect;
use agentscope_http2_wire::walker::{FrameWalker, Part, Step};

/// A frame other than DATA whose payload is longer than this is not collected: the
/// connection is refused as hostile. A header block may span several frames; each frame is
/// bounded here, the whole block by [`super::header_block::MAX_BLOCK_BYTES`].
pub const MAX_CONTROL_PAYLOAD: usize = 256 << 10;

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

/// One direction's frame reader.
#[derive(Debug)]
pub struct FrameReader {
    walker: FrameWalker,
    /// A control frame's payload being collected.
    collected: Vec<u8>,
}

impl FrameReader {
    /// A reader that first expects the client preface (`preface`), or a frame header.
    pub fn new(preface: bool) -> Self {
        Self {
            walker: FrameWalker::new(preface, MAX_CONTROL_PAYLOAD),
            collected: Vec::new(),
        }
    }

    /// True once frame boundaries are unknown: later bytes of this direction are ignored.
    pub fn is_lost(&self) -> bool {
        self.walker.is_lost()
    }

    /// Heap the reader holds.
    pub fn held_bytes(&self) -> usize {
        self.collected.capacity()
    }

    /// `lost` bytes never arrived. Inside a DATA payload whose remaining length covers them,
    /// the reader stays in sync (the caller flags the stream's body); anywhere else the frame
    /// boundaries are lost.
    pub fn gap(&mut self, lost: u64) -> GapEffect {
        let effect = self.walker.gap(lost);
        if effect == GapEffect::LostSync {
            self.collected = Vec::new();
        }
        effect
    }

    /// Reads the next event from `input`, consuming what it used; `None` when `input` is used
    /// up (or the direction is lost).
    pub fn next<'a>(&mut self, input: &mut &'a [u8]) -> Option<FrameEvent<'a>> {
        let bytes: &'a [u8] = input;
        let mut at = 0;
        let event = loop {
            let Some(step) = self.walker.next(bytes, &mut at) else {
                break None;
            };
            match step {
                Step::Bytes {
                    part: Part::Data,
                    range,
                } => {
                    let stream_id = self.walker.current().map_or(0, |h| h.stream_id);
                    break Some(FrameEvent::Data {
                        stream_id,
                        bytes: &bytes[range],
                    });
                }
                Step::Bytes {
                    part: Part::Preface | Part::Header,
                    ..
                } => {}
                Step::Bytes { range, .. } => {
                    // A control frame's payload, as sent: fields and padding included.
                    if self.walker.current().is_some_and(|h| h.kind != kind::DATA) {
                        self.collected.extend_from_slice(&bytes[range]);
                    }
                }
                Step::Start(header) => {
                    if header.kind != kind::DATA {
                        self.collected = Vec::with_capacity(header.length);
                    }
                }
                Step::End(header) if header.kind == kind::DATA => {
                    break Some(FrameEvent::DataEnd {
                        stream_id: header.stream_id,
                        end_stream: header.has(flag::END_STREAM),
                    });
                }
                Step::End(header) => {
                    break Some(FrameEvent::Frame {
                        header,
                        payload: std::mem::take(&mut self.collected),
                    });
                }
                Step::Error(reason) => {
                    self.collected = Vec::new();
                    break Some(FrameEvent::Error(reason));
                }
            }
        };
        *input = &bytes[at..];
        if self.walker.is_lost() {
            *input = &[];
        }
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use agentscope_http2_wire::frame::encode_frame as frame;

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
