//! HTTP/2 frames (RFC 9113 §4, §6): the 9-byte header, the connection preface, and how a
//! direction's first bytes say it is HTTP/2 — the client preface, a server's first SETTINGS,
//! or, on a connection already open when capture began, a chain of valid frame headers.

/// The client connection preface (RFC 9113 §3.4), the first bytes of every HTTP/2 connection
/// the client opens.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame header length.
pub const HEADER_LEN: usize = 9;

/// Largest frame a peer may allow (SETTINGS_MAX_FRAME_SIZE's maximum is 2^24 - 1; common
/// servers allow up to 1 MiB, and a chain of headers longer than this is taken for
/// something else).
pub const MAX_RECOGNISED_FRAME: usize = 1 << 20;

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

    /// Whether this frame's payload is (a piece of) a header block.
    pub fn carries_header_block(&self) -> bool {
        matches!(
            self.kind,
            kind::HEADERS | kind::PUSH_PROMISE | kind::CONTINUATION
        )
    }

    /// Bytes before the payload proper: the pad length and the priority fields or promised
    /// stream id. (`0` for frames without them.)
    pub fn leading_fields(&self) -> usize {
        let padded = matches!(self.kind, kind::DATA | kind::HEADERS | kind::PUSH_PROMISE)
            && self.has(flag::PADDED);
        usize::from(padded)
            + match self.kind {
                kind::HEADERS if self.has(flag::PRIORITY) => 5,
                kind::PUSH_PROMISE => 4,
                _ => 0,
            }
    }

    /// Whether the header is one a conforming peer sends (type, flags, stream and length
    /// rules of RFC 9113 §6): what recognising HTTP/2 from frames alone asks of each header.
    /// Extension frame types are refused, so that other binary streams are not taken for it.
    pub fn is_plausible(&self, raw: &[u8; HEADER_LEN]) -> bool {
        let connection = self.stream_id == 0;
        let (allowed_flags, on_connection, length_ok) = match self.kind {
            kind::DATA => (0x09, false, true),
            kind::HEADERS => (0x2d, false, true),
            kind::PRIORITY => (0, false, self.length == 5),
            kind::RST_STREAM => (0, false, self.length == 4),
            kind::SETTINGS => (
                0x01,
                true,
                self.length.is_multiple_of(6) && (!self.has(flag::ACK) || self.length == 0),
            ),
            kind::PUSH_PROMISE => (0x0c, false, self.length >= 4),
            kind::PING => (0x01, true, self.length == 8),
            kind::GOAWAY => (0, true, self.length >= 8),
            kind::WINDOW_UPDATE => (0, connection, self.length == 4),
            kind::CONTINUATION => (0x04, false, true),
            _ => return false,
        };
        raw[5] & 0x80 == 0
            && self.flags & !allowed_flags == 0
            && connection == on_connection
            && length_ok
            && self.length <= MAX_RECOGNISED_FRAME
            && self.leading_fields() <= self.length
    }
}

/// True when `bytes` start like the HTTP/2 client preface (a prefix of it is enough: the
/// preface may arrive in several pieces).
pub fn looks_like_preface(bytes: &[u8]) -> bool {
    let n = bytes.len().min(PREFACE.len());
    n >= 4 && bytes[..n] == PREFACE[..n]
}

/// True when `bytes` start with a server's first SETTINGS frame (stream 0, no ACK, a whole
/// number of settings, at most the six RFC 9113 defines plus a few extensions): servers
/// (Go's `net/http`, python-hyper's `h2`) send it as soon as the connection is accepted,
/// often before they have read the client's preface, so a capture at the server may see it
/// first. It is the first frame of every server's direction.
pub fn looks_like_server_settings(bytes: &[u8]) -> bool {
    let Some(first) = bytes
        .get(..HEADER_LEN)
        .and_then(|b| <&[u8; HEADER_LEN]>::try_from(b).ok())
    else {
        return false;
    };
    let header = FrameHeader::parse(first);
    header.kind == kind::SETTINGS
        && header.flags == 0
        && first[5..] == [0, 0, 0, 0]
        && header.length.is_multiple_of(6)
        && header.length <= 6 * 16
}

/// True when `bytes`, the first seen of a direction already under way, are a chain of frames:
/// every frame header in them is [plausible](FrameHeader::is_plausible), each one starts where
/// the previous payload ends, and the last frame ends with the bytes or runs past them. At
/// least one header must be whole, and a lone header whose payload runs past `bytes` must be
/// a DATA, HEADERS or CONTINUATION frame (what a write cut at a chunk boundary looks like).
/// Text protocols never pass: their fourth byte would be a frame type above 9.
pub fn looks_like_frame_chain(bytes: &[u8]) -> bool {
    let mut at = 0;
    let mut frames = 0;
    while let Some(raw) = bytes
        .get(at..at + HEADER_LEN)
        .and_then(|b| <&[u8; HEADER_LEN]>::try_from(b).ok())
    {
        let header = FrameHeader::parse(raw);
        if !header.is_plausible(raw) {
            return false;
        }
        frames += 1;
        at += HEADER_LEN + header.length;
        if at >= bytes.len() {
            let whole = at == bytes.len();
            return whole
                || frames > 1
                || matches!(header.kind, kind::DATA | kind::HEADERS | kind::CONTINUATION);
        }
    }
    // Bytes left that are not a whole header: a chain cut inside a header is too weak a sign.
    false
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

/// A frame as bytes (tests and fixtures build connections with it).
pub fn encode_frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend(stream_id.to_be_bytes());
    out.extend(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_chains_are_recognised_and_text_is_not() {
        let mut chain = encode_frame(kind::HEADERS, flag::END_HEADERS, 5, &[0x82, 0x84]);
        chain.extend(encode_frame(
            kind::DATA,
            flag::END_STREAM,
            5,
            b"{\"model\":1}",
        ));
        assert!(looks_like_frame_chain(&chain));
        // Cut inside the last payload: still a chain.
        assert!(looks_like_frame_chain(&chain[..chain.len() - 3]));
        // Cut inside the second header: too weak.
        assert!(!looks_like_frame_chain(&chain[..HEADER_LEN + 2 + 4]));
        for text in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n\r\n",
            b"{\"jsonrpc\":\"2.0\"}\n",
            b"*1\r\n$4\r\nPING\r\n",
            PREFACE,
        ] {
            assert!(!looks_like_frame_chain(text), "{text:?}");
        }
        // A SETTINGS frame on a stream, a WINDOW_UPDATE of the wrong length: refused.
        assert!(!looks_like_frame_chain(&encode_frame(
            kind::SETTINGS,
            0,
            1,
            &[]
        )));
        assert!(!looks_like_frame_chain(&encode_frame(
            kind::WINDOW_UPDATE,
            0,
            0,
            &[0; 3]
        )));
        // A lone PING is whole: a chain.
        assert!(looks_like_frame_chain(&encode_frame(
            kind::PING,
            0,
            0,
            &[0; 8]
        )));
    }

    #[test]
    fn server_settings_and_preface() {
        assert!(looks_like_server_settings(&encode_frame(
            kind::SETTINGS,
            0,
            0,
            &[0, 3, 0, 0, 0, 100]
        )));
        assert!(!looks_like_server_settings(PREFACE));
        assert!(looks_like_preface(&PREFACE[..4]));
        assert!(!looks_like_preface(&PREFACE[..3]));
    }
}
