//! A walk over one direction's bytes that says what each byte is — the preface, a frame
//! header, a DATA payload, a piece of a header block, padding, a control frame's payload —
//! for bytes fed in pieces of any size, without holding any of them.
//!
//! Both readers of HTTP/2 are built on it: reconstruction collects what it needs from the
//! pieces (`agentscope-reconstruct`'s frame reader), redaction masks header values in place as
//! the pieces go by (`agentscope-redact`). An observer cannot ask for a frame to be resent, so
//! the walk also takes lost bytes ([`FrameWalker::gap`]): inside a DATA payload it stays in
//! step, anywhere else the frame boundaries are lost and it says so.

use std::ops::Range;

use crate::frame::{flag, kind, FrameHeader, HEADER_LEN, PREFACE};

/// What a run of bytes is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The client preface.
    Preface,
    /// A frame header.
    Header,
    /// A pad length, priority fields or a promised stream id.
    Fields,
    /// A DATA frame's payload (padding excluded).
    Data,
    /// A piece of a header block (HEADERS, PUSH_PROMISE, CONTINUATION; padding and fields
    /// excluded).
    HeaderBlock,
    /// Padding.
    Padding,
    /// The payload of any other frame.
    Payload,
}

/// One step of the walk. Ranges are into the slice given to [`FrameWalker::next`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// These bytes are a `Part` of the current frame (or the preface).
    Bytes { part: Part, range: Range<usize> },
    /// A frame header was read whole; its payload follows.
    Start(FrameHeader),
    /// The current frame's payload ended.
    End(FrameHeader),
    /// Bytes did not follow the framing; nothing further of this direction is walked.
    Error(String),
}

/// What lost bytes did to the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapEffect {
    /// Nothing was lost (a zero-length gap).
    None,
    /// They fell inside a DATA frame of this stream (its payload or padding); the walk is
    /// still in step.
    InData(u32),
    /// Frame boundaries are lost: later bytes of the direction are not walked.
    LostSync,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct InFrame {
    header: FrameHeader,
    pad_length_pending: bool,
    fields_left: usize,
    body_left: usize,
    pad_left: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Preface {
        matched: usize,
    },
    Header {
        have: usize,
        bytes: [u8; HEADER_LEN],
    },
    Frame(InFrame),
    Lost,
}

/// One direction's walk.
#[derive(Debug, Clone)]
pub struct FrameWalker {
    state: State,
    /// A frame whose header was just read, announced before its payload.
    starting: Option<FrameHeader>,
    /// Frames other than DATA longer than this are refused.
    max_control_payload: usize,
}

impl FrameWalker {
    /// A walk that first expects the client preface (`preface`), or a frame header; frames
    /// other than DATA longer than `max_control_payload` are refused as hostile.
    pub fn new(preface: bool, max_control_payload: usize) -> Self {
        Self {
            state: if preface {
                State::Preface { matched: 0 }
            } else {
                State::Header {
                    have: 0,
                    bytes: [0; HEADER_LEN],
                }
            },
            starting: None,
            max_control_payload,
        }
    }

    /// True once frame boundaries are unknown.
    pub fn is_lost(&self) -> bool {
        self.state == State::Lost
    }

    /// True when the walk stands between frames (the next byte starts a frame header).
    pub fn at_frame_boundary(&self) -> bool {
        matches!(self.state, State::Header { have: 0, .. }) && self.starting.is_none()
    }

    /// The frame being walked, once its header is read.
    pub fn current(&self) -> Option<&FrameHeader> {
        match &self.state {
            State::Frame(frame) => Some(&frame.header),
            _ => None,
        }
    }

    /// Gives up on the frame boundaries.
    pub fn lose(&mut self) {
        self.state = State::Lost;
        self.starting = None;
    }

    /// `lost` bytes never arrived. Inside a DATA payload whose remaining length covers them
    /// the walk stays in step; anywhere else the frame boundaries are lost.
    pub fn gap(&mut self, lost: u64) -> GapEffect {
        let lost = usize::try_from(lost).unwrap_or(usize::MAX);
        if lost == 0 {
            return GapEffect::None;
        }
        if let State::Frame(frame) = &mut self.state {
            if frame.header.kind == kind::DATA
                && !frame.pad_length_pending
                && lost < frame.body_left + frame.pad_left
            {
                let from_body = lost.min(frame.body_left);
                frame.body_left -= from_body;
                frame.pad_left -= lost - from_body;
                return GapEffect::InData(frame.header.stream_id);
            }
        }
        self.lose();
        GapEffect::LostSync
    }

    /// The next step over `input[*at..]`, advancing `*at` past the bytes it covers; `None`
    /// when `input` is used up (or the walk is lost).
    pub fn next(&mut self, input: &[u8], at: &mut usize) -> Option<Step> {
        if let Some(header) = self.starting.take() {
            return Some(Step::Start(header));
        }
        let available = input.len().saturating_sub(*at);
        match &mut self.state {
            State::Lost => {
                *at = input.len();
                None
            }
            State::Preface { matched } => {
                if available == 0 {
                    return None;
                }
                let want = &PREFACE[*matched..];
                let take = want.len().min(available);
                if input[*at..*at + take] != want[..take] {
                    self.lose();
                    return Some(Step::Error(
                        "the client's bytes do not start with the HTTP/2 preface".into(),
                    ));
                }
                *matched += take;
                if *matched == PREFACE.len() {
                    self.state = State::Header {
                        have: 0,
                        bytes: [0; HEADER_LEN],
                    };
                }
                Some(self.bytes(Part::Preface, at, take))
            }
            State::Header { have, bytes } => {
                if available == 0 {
                    return None;
                }
                let take = (HEADER_LEN - *have).min(available);
                bytes[*have..*have + take].copy_from_slice(&input[*at..*at + take]);
                *have += take;
                if *have == HEADER_LEN {
                    let header = FrameHeader::parse(bytes);
                    if let Err(reason) = self.start_frame(header) {
                        self.lose();
                        return Some(Step::Error(reason));
                    }
                }
                Some(self.bytes(Part::Header, at, take))
            }
            State::Frame(frame) => {
                if frame.pad_length_pending {
                    if available == 0 {
                        return None;
                    }
                    let pad = usize::from(input[*at]);
                    frame.pad_length_pending = false;
                    if pad > frame.body_left {
                        let reason = format!(
                            "frame of type {:#x} on stream {}: padding of {pad} bytes exceeds the frame",
                            frame.header.kind, frame.header.stream_id
                        );
                        self.lose();
                        return Some(Step::Error(reason));
                    }
                    frame.body_left -= pad;
                    frame.pad_left = pad;
                    return Some(self.bytes(Part::Fields, at, 1));
                }
                if frame.fields_left > 0 {
                    if available == 0 {
                        return None;
                    }
                    let take = frame.fields_left.min(available);
                    frame.fields_left -= take;
                    return Some(self.bytes(Part::Fields, at, take));
                }
                if frame.body_left > 0 {
                    if available == 0 {
                        return None;
                    }
                    let take = frame.body_left.min(available);
                    frame.body_left -= take;
                    let part = match frame.header.kind {
                        kind::DATA => Part::Data,
                        _ if frame.header.carries_header_block() => Part::HeaderBlock,
                        _ => Part::Payload,
                    };
                    return Some(self.bytes(part, at, take));
                }
                if frame.pad_left > 0 {
                    if available == 0 {
                        return None;
                    }
                    let take = frame.pad_left.min(available);
                    frame.pad_left -= take;
                    return Some(self.bytes(Part::Padding, at, take));
                }
                let header = frame.header;
                self.state = State::Header {
                    have: 0,
                    bytes: [0; HEADER_LEN],
                };
                Some(Step::End(header))
            }
        }
    }

    fn bytes(&self, part: Part, at: &mut usize, take: usize) -> Step {
        let range = *at..*at + take;
        *at += take;
        Step::Bytes { part, range }
    }

    /// A frame header was read: how its payload is laid out.
    fn start_frame(&mut self, header: FrameHeader) -> Result<(), String> {
        if header.kind == kind::DATA && header.stream_id == 0 {
            return Err("DATA on stream 0".into());
        }
        if header.carries_header_block() && header.stream_id == 0 {
            return Err("header block on stream 0".into());
        }
        if header.kind != kind::DATA && header.length > self.max_control_payload {
            return Err(format!(
                "frame of type {:#x} announces {} bytes, more than the {} a header or control frame may take here",
                header.kind, header.length, self.max_control_payload
            ));
        }
        let leading = header.leading_fields();
        if leading > header.length {
            return Err(if header.kind == kind::DATA {
                format!(
                    "padded DATA on stream {} without room for its pad length",
                    header.stream_id
                )
            } else {
                format!(
                    "frame of type {:#x} on stream {} too short for its padding, priority or promised stream",
                    header.kind, header.stream_id
                )
            });
        }
        let padded = matches!(header.kind, kind::DATA | kind::HEADERS | kind::PUSH_PROMISE)
            && header.has(flag::PADDED);
        self.state = State::Frame(InFrame {
            header,
            pad_length_pending: padded,
            fields_left: leading - usize::from(padded),
            body_left: header.length - leading,
            pad_left: 0,
        });
        self.starting = Some(header);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_frame;

    /// (part, bytes) runs with adjacent runs of one part joined, plus starts and ends.
    fn walk(pieces: &[&[u8]]) -> Vec<String> {
        let mut walker = FrameWalker::new(true, 1 << 16);
        let mut out: Vec<String> = Vec::new();
        let mut run: Option<(Part, Vec<u8>)> = None;
        for piece in pieces {
            let mut at = 0;
            while let Some(step) = walker.next(piece, &mut at) {
                match step {
                    Step::Bytes { part, range } => match &mut run {
                        Some((p, bytes)) if *p == part => bytes.extend(&piece[range]),
                        _ => {
                            if let Some((p, bytes)) = run.take() {
                                out.push(format!("{p:?} {bytes:?}"));
                            }
                            run = Some((part, piece[range].to_vec()));
                        }
                    },
                    other => {
                        if let Some((p, bytes)) = run.take() {
                            out.push(format!("{p:?} {bytes:?}"));
                        }
                        out.push(format!("{other:?}"));
                    }
                }
            }
            assert_eq!(at, piece.len());
        }
        if let Some((p, bytes)) = run.take() {
            out.push(format!("{p:?} {bytes:?}"));
        }
        out
    }

    #[test]
    fn every_part_is_named_the_same_at_every_cut() {
        let mut bytes = PREFACE.to_vec();
        bytes.extend(encode_frame(
            kind::SETTINGS,
            0,
            0,
            &[0, 4, 0, 0, 0xff, 0xff],
        ));
        bytes.extend(encode_frame(
            kind::HEADERS,
            flag::PADDED | flag::PRIORITY,
            1,
            b"\x02\x80\0\0\x03\x10\x82\x84\0\0",
        ));
        bytes.extend(encode_frame(
            kind::CONTINUATION,
            flag::END_HEADERS,
            1,
            b"\x86",
        ));
        bytes.extend(encode_frame(
            kind::DATA,
            flag::PADDED,
            1,
            b"\x03hello\0\0\0",
        ));
        bytes.extend(encode_frame(kind::DATA, flag::END_STREAM, 3, b""));
        bytes.extend(encode_frame(
            kind::PUSH_PROMISE,
            flag::END_HEADERS,
            1,
            b"\0\0\0\x02\x82",
        ));
        let whole = walk(&[&bytes]);
        let text = whole.join("\n");
        assert!(text.contains("HeaderBlock [130, 132]"), "{text}");
        assert!(text.contains("HeaderBlock [134]"), "{text}");
        assert!(text.contains("Data [104, 101, 108, 108, 111]"), "{text}");
        assert!(text.contains("HeaderBlock [130]"), "{text}");
        assert_eq!(whole.iter().filter(|s| s.starts_with("End")).count(), 6);
        for cut in 0..bytes.len() {
            for cut2 in (cut..bytes.len()).step_by(7) {
                assert_eq!(
                    walk(&[&bytes[..cut], &bytes[cut..cut2], &bytes[cut2..]]),
                    whole,
                    "cut at {cut} and {cut2}"
                );
            }
        }
    }

    #[test]
    fn gaps_and_hostile_frames() {
        let mut walker = FrameWalker::new(false, 1 << 16);
        let data = encode_frame(kind::DATA, 0, 1, b"0123456789");
        let mut at = 0;
        while walker.next(&data[..12], &mut at).is_some() {}
        assert_eq!(walker.gap(4), GapEffect::InData(1));
        assert_eq!(walker.gap(100), GapEffect::LostSync);
        assert!(walker.is_lost());

        let mut walker = FrameWalker::new(false, 100);
        let mut at = 0;
        let steps: Vec<Step> =
            std::iter::from_fn(|| walker.next(&[0, 1, 0, kind::SETTINGS, 0, 0, 0, 0, 0], &mut at))
                .collect();
        assert!(
            matches!(&steps[..], [Step::Error(e)] if e.contains("announces 256 bytes")),
            "{steps:?}"
        );
        let mut walker = FrameWalker::new(false, 100);
        let frame = encode_frame(kind::HEADERS, flag::PADDED, 1, b"\x09ab");
        let mut at = 0;
        let steps: Vec<Step> = std::iter::from_fn(|| walker.next(&frame, &mut at)).collect();
        assert!(
            steps
                .iter()
                .any(|s| matches!(s, Step::Error(e) if e.contains("padding of 9"))),
            "{steps:?}"
        );
    }
}
