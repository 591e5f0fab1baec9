//! Gaps between a stream's calls: payload bytes of a stream (one direction of a socket, pipe
//! or TLS connection of one process) that the ring buffer had no room for, carried to the
//! stream's next delivered record.
//!
//! Why: a record's `lost_bytes` counted only its own call's undelivered bytes, so a whole call
//! the ring buffer dropped left no mark on the stream, and userspace joined the bytes around it
//! as if they were adjacent. Under a flood, a client writing `…&X-Amz-Signature=SECRET` one
//! byte per call lost `Signature=` and delivered the secret itself with nothing saying a name
//! was missing before it, so redaction could not know it was a value. Now the next record of
//! that stream reports the bytes lost before it, and userspace treats its start as a gap.
//!
//! Only streams that lost a whole call's last bytes have an entry (none at all on a node whose
//! ring buffer keeps up), so the lookup each call makes usually misses an empty map. The map is
//! an LRU: under a flood of many streams the oldest gaps are forgotten, which only makes a
//! later record of that stream look contiguous, as before.

use aya_ebpf::{macros::map, maps::LruHashMap};

/// One direction of one stream of one process, as userspace keys redaction state.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct StreamKey {
    pub(crate) tgid: u32,
    pub(crate) fd: i32,
    pub(crate) conn_id: u64,
    pub(crate) source: u32,
    pub(crate) direction: u32,
}

/// Bytes lost from each stream since its last delivered record.
#[map]
static STREAM_GAPS: LruHashMap<StreamKey, u64> = LruHashMap::with_max_entries(16384, 0);

/// Takes the bytes the stream lost before this call (0 when none), forgetting them: the call's
/// first record reports them, or [`note_lost`] puts them back if none of its records got
/// through.
#[inline(always)]
pub(crate) fn take_lost(key: &StreamKey) -> u64 {
    // SAFETY: the value is read at once, before any other map operation.
    let lost = match unsafe { STREAM_GAPS.get(key) } {
        Some(&lost) => lost,
        None => return 0,
    };
    let _ = STREAM_GAPS.remove(key);
    lost
}

/// Records `bytes` the stream lost at the end of a call, for its next record to report.
#[inline(always)]
pub(crate) fn note_lost(key: &StreamKey, bytes: u64) {
    if bytes == 0 {
        return;
    }
    // SAFETY: the value is read at once.
    let before = unsafe { STREAM_GAPS.get(key) }.copied().unwrap_or(0);
    let _ = STREAM_GAPS.insert(key, &(before + bytes), 0);
}
