//! Which pipe traffic is captured. Most pipes carry no JSON-RPC: an end's data is captured
//! only from the first read or write whose buffer starts like JSON (`{"`, `{}`, `[{`, `[]`
//! after optional whitespace), which that end remembers; never what carries the collector's
//! own output.

use agentscope_common::stat;
use aya_ebpf::helpers::generated::bpf_probe_read_user as raw_read_user;

use crate::emit::bump;
use crate::maps::{SockKey, PIPES, PIPE_JSON_SEEN};
use crate::output_tracking::is_output;
use crate::socket_io::IoArgs;

/// Bytes of a pipe buffer inspected for the start of JSON.
const JSON_PROBE_LEN: usize = 16;

/// Whether a buffer starts like a JSON object or array: optional whitespace, then `{"`, `{}`,
/// `[{` or `[]` (or a lone `{`/`[` at the end of a short buffer).
#[inline(always)]
fn starts_like_json(buf: u64, len: u64) -> bool {
    let mut head = [0u8; JSON_PROBE_LEN];
    let mut n = len;
    if n > JSON_PROBE_LEN as u64 {
        n = JSON_PROBE_LEN as u64;
    }
    if n == 0 {
        return false;
    }
    // A fixed-size read could run past the end of a short buffer into an unmapped page.
    let read = unsafe {
        raw_read_user(
            head.as_mut_ptr() as *mut core::ffi::c_void,
            n as u32,
            buf as *const core::ffi::c_void,
        )
    };
    if read != 0 {
        return false;
    }
    let mut first = 0u8;
    for (i, &byte) in head.iter().enumerate() {
        if i as u64 >= n {
            break;
        }
        if byte == b' ' || byte == b'\n' || byte == b'\r' || byte == b'\t' {
            continue;
        }
        if first == 0 {
            if byte != b'{' && byte != b'[' {
                return false;
            }
            first = byte;
            continue;
        }
        return if first == b'{' {
            byte == b'"' || byte == b'}'
        } else {
            byte == b'{' || byte == b']'
        };
    }
    first != 0
}

/// Whether the `len` bytes a call on a pipe end transferred (the first `head_len` at `head`)
/// are captured; the caller emits them.
#[inline(always)]
pub(crate) fn pipe_payload_wanted(
    key: &SockKey,
    args: &IoArgs,
    head: u64,
    head_len: u64,
    len: u64,
) -> bool {
    let Some(state) = PIPES.get_ptr_mut(key) else {
        return false;
    };
    let state = unsafe { &mut *state };
    if state.flags & PIPE_JSON_SEEN == 0 {
        if !starts_like_json(head, head_len) {
            return false;
        }
        state.flags |= PIPE_JSON_SEEN;
    }
    if is_output(args.fd) {
        bump(stat::CONSUMER_BYTES, len);
        return false;
    }
    true
}
