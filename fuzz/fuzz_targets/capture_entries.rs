//! Fuzzes what sits behind a block's CRC, which byte-level fuzzing of whole files rarely gets
//! past: event-chunk entries, and the fixed parts of header, chunk, keyframe and index blocks.
#![no_main]

use agentscope_capture::capture::{block, codec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 5 {
        0 => {
            let _ = codec::decode_entries(body);
        }
        1 => {
            let _ = block::FileHeader::decode(body);
        }
        2 => {
            let _ = block::ChunkHeader::decode(body);
        }
        3 => {
            let _ = block::KeyframeHeader::decode(body);
        }
        _ => {
            let _ = block::decode_index(body);
        }
    }
});
