//! Fuzzes the HTTP/2 parser directly: the input is cut into pieces fed to the client's or the
//! server's direction, or announced as lost bytes, so frame boundaries, CONTINUATION, padding,
//! HPACK (Huffman strings, table size updates, references) and gaps all meet hostile bytes.
//! Neither a panic nor unbounded growth is allowed: what the connection holds stays under the
//! parser's own bounds.
#![no_main]

use agentscope_event::event::Direction;
use agentscope_reconstruct::http2::{frame, Http2Connection};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut connection = Http2Connection::new();
    // The client's preface first, so the bytes after it are read as frames.
    connection.feed(Direction::Egress, frame::PREFACE, 0);
    let mut rest = data;
    let mut ts = 1;
    // Each piece: a control byte (direction, gap or bytes; length in the low bits), then the
    // bytes.
    while let Some((&control, tail)) = rest.split_first() {
        let len = usize::from(control & 0x3f) * 16 + 1;
        let direction = if control & 0x40 == 0 {
            Direction::Egress
        } else {
            Direction::Ingress
        };
        let take = len.min(tail.len());
        if control & 0x80 != 0 && take == 1 {
            connection.gap(direction, u64::from(tail[0]), ts);
        } else {
            connection.feed(direction, &tail[..take], ts);
        }
        assert!(connection.held() <= 4 << 20, "held {}", connection.held());
        rest = &tail[take..];
        ts += 1;
    }
    connection.close(ts);
});
