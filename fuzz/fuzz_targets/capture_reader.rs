//! Fuzzes the capture reader with arbitrary bytes behind a valid magic: opening, verifying,
//! reading every block and replaying must report damage, never panic or allocate wildly.
#![no_main]

use agentscope_capture::capture::{CaptureReader, Replay};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Most inputs would stop at the magic check; start them after it so the fuzzer explores
    // the blocks (inputs that begin with the magic themselves are used as they are).
    let magic = agentscope_capture::capture::block::MAGIC;
    let bytes = if data.starts_with(&magic) {
        data.to_vec()
    } else {
        let mut bytes = magic.to_vec();
        bytes.extend_from_slice(data);
        bytes
    };
    let Ok(reader) = CaptureReader::from_bytes("fuzz.cap", bytes) else {
        return;
    };
    let _ = reader.verify();
    for block in reader.blocks() {
        let _ = reader.read_events(block);
        let _ = reader.read_keyframe(block);
    }
    let mut replay = Replay::new(reader);
    replay.run_to_end();
    let _ = replay.pipeline().snapshot();
});
