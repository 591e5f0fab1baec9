//! Writing records to the ring buffer: fixed-size records, and payloads split into
//! `CHUNK_LEN` chunks, each read from user memory straight into its ring reservation
//! (`payload_reserve.rs`). Every outcome is counted in `STATS` (emitted, dropped, bytes lost per
//! direction), so nothing is silently cut. Records wake the reader only when the ring is
//! filling up or the record is urgent (`agentscope_common::ring_wakeup` says why).

use agentscope_common::{
    data_flags, direction, kind, ring_wakeup, source, stat, DataPrefix, CHUNK_LEN, DATA_PREFIX_LEN,
    MAX_CHUNKS,
};
use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE},
    helpers::{
        bpf_ktime_get_boot_ns, bpf_probe_read_kernel,
        generated::{bpf_loop, bpf_ringbuf_output, bpf_ringbuf_query},
    },
    macros::map,
    maps::PerCpuArray,
};

use crate::maps::{EVENTS, STATS};
use crate::output_tracking::is_consumer;
use crate::payload_reserve::emit_user_chunk;
use crate::payload_switch;
use crate::stream_gaps::{self, StreamKey};
use crate::task::{current_ids, fill_header, stopping};

/// A payload call being emitted: the prefix of its records (filled once, updated per chunk;
/// the chunks themselves are read into their ring reservations, `payload_reserve.rs`) and the
/// chunk loop's state.
#[repr(C)]
struct PayloadScratch {
    prefix: DataPrefix,
    /// In the map value rather than on the stack: the verifier does not track its values, so
    /// the loop's callback converges at once. On the stack, each chunk's size class (a range
    /// of lengths added to `unreported`) made another state, and the callback exceeded the
    /// million-instruction limit.
    chunks: ChunkLoop,
}

#[map]
static DATA_SCRATCH: PerCpuArray<PayloadScratch> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub(crate) fn bump(index: u32, by: u64) {
    if let Some(counter) = STATS.get_ptr_mut(index) {
        // Per-CPU slot: no other writer while this program runs on this CPU.
        unsafe { *counter += by };
    }
}

/// Whether a record may wait for the reader's next look at the ring buffer: not when the ring
/// holds more than `1 / 2^AVAIL_SHIFT` of its size, where the reader must catch up before it
/// fills (the kernel's default, waking only a reader that has read everything, never wakes
/// one that is behind).
#[inline(always)]
pub(crate) fn wake_flags() -> u64 {
    let ring = core::ptr::addr_of!(EVENTS) as *mut core::ffi::c_void;
    let (avail, size) = unsafe {
        (
            bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA as u64),
            bpf_ringbuf_query(ring, BPF_RB_RING_SIZE as u64),
        )
    };
    if avail > size >> ring_wakeup::AVAIL_SHIFT {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// Writes `size` bytes at `record` to the ring buffer, counting the outcome. The reader is
/// woken only when the ring is filling up: otherwise it reads the record at its next look
/// (within `ring_wakeup::READER_POLL_MS`).
#[inline(always)]
pub(crate) fn submit<T>(record: *const T, size: usize) -> bool {
    output(record, size, wake_flags())
}

/// Writes a record the collector must act on at once (an exec, an enforcement verdict),
/// waking the reader.
#[inline(always)]
pub(crate) fn submit_urgent<T>(record: *const T, size: usize) -> bool {
    output(record, size, BPF_RB_FORCE_WAKEUP as u64)
}

#[inline(always)]
fn output<T>(record: *const T, size: usize, flags: u64) -> bool {
    if stopping() {
        return false;
    }
    let ret = unsafe {
        bpf_ringbuf_output(
            core::ptr::addr_of!(EVENTS) as *mut core::ffi::c_void,
            record as *mut core::ffi::c_void,
            size as u64,
            flags,
        )
    };
    if ret == 0 {
        bump(stat::EMITTED, 1);
        true
    } else {
        bump(stat::DROPPED, 1);
        false
    }
}

/// `value`, as a number the verifier knows nothing about (copied by a helper, whose output it
/// does not track). Paths that reach an emission with lengths the verifier can tell apart (a
/// loop that breaks at each position) are each checked through the whole emission again; an
/// untracked length makes them one state, checked once. The emission bounds every length
/// itself, so nothing it relied on is lost.
#[inline(always)]
pub(crate) fn untracked(value: u64) -> u64 {
    unsafe { bpf_probe_read_kernel(&value as *const u64) }.unwrap_or(0)
}

/// Emits a fixed-size record built on the stack.
#[inline(always)]
pub(crate) fn submit_value<T>(record: &T) -> bool {
    submit(record as *const T, core::mem::size_of::<T>())
}

/// Emits a fixed-size urgent record built on the stack (see [`submit_urgent`]).
#[inline(always)]
pub(crate) fn submit_value_urgent<T>(record: &T) -> bool {
    submit_urgent(record as *const T, core::mem::size_of::<T>())
}

/// The state of [`emit_chunk`]'s loop over a call's chunks.
#[repr(C)]
struct ChunkLoop {
    buf: u64,
    deliverable: u64,
    beyond: u64,
    /// `direction::*` of the call, for the loss counters.
    dir: u64,
    /// Bytes lost (this call's, and the stream's before it) that no delivered record has
    /// reported yet: what the stream's next call reports if this one ends with a loss.
    unreported: u64,
    /// The stream's bytes lost before this call, in `lost_bytes` until a record reports them
    /// (later records count only the call's own losses, as before).
    carried: u64,
}

/// Counts payload bytes not delivered, in total and for their direction.
#[inline(always)]
pub(crate) fn count_lost(dir: u64, bytes: u64) {
    bump(stat::LOST_BYTES, bytes);
    if dir == direction::EGRESS as u64 {
        bump(stat::LOST_EGRESS_BYTES, bytes);
    } else {
        bump(stat::LOST_INGRESS_BYTES, bytes);
    }
}

/// Splits `total_len` bytes at `buf` into `DataEvent` records.
///
/// The chunks are emitted by `bpf_loop` (Linux 5.17+), so the verifier checks the chunk body
/// once rather than once per possible chunk; a plain loop over 96 chunks exceeds its budget.
#[inline(always)]
pub(crate) fn emit_payload(
    source_kind: u32,
    dir: u32,
    fd: i32,
    conn_id: u64,
    buf: u64,
    total_len: u64,
) {
    if stopping() {
        return;
    }
    let (tgid, _) = current_ids();
    if is_consumer(tgid) {
        bump(stat::CONSUMER_BYTES, total_len);
        return;
    }
    if payload_switch::left_out(tgid, total_len) {
        return;
    }
    // A plain socket's choice was applied before its call got here (`socket_io.rs`).
    if source_kind != source::SOCKET
        && crate::connection_sampling::tls_sampled_out(tgid, fd, total_len)
    {
        return;
    }
    let Some(scratch) = DATA_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let scratch = unsafe { &mut *scratch };
    let prefix = &mut scratch.prefix;
    let capacity = CHUNK_LEN as u64 * MAX_CHUNKS as u64;
    let beyond = total_len.saturating_sub(capacity);
    fill_header(&mut prefix.header, kind::DATA, DATA_PREFIX_LEN);
    prefix.source = source_kind;
    prefix.direction = dir;
    prefix.fd = fd;
    prefix.conn_id = conn_id;
    prefix.call_id = prefix.header.ts_ns ^ ((prefix.header.tid as u64) << 40);
    prefix.total_len = total_len;
    let stream = StreamKey {
        tgid,
        fd,
        conn_id,
        source: source_kind,
        direction: dir,
    };
    // The first record reports what the stream lost before this call.
    prefix.lost_bytes = stream_gaps::take_lost(&stream);
    scratch.chunks = ChunkLoop {
        buf,
        deliverable: total_len - beyond,
        beyond,
        dir: dir as u64,
        unreported: prefix.lost_bytes,
        carried: prefix.lost_bytes,
    };
    unsafe {
        bpf_loop(
            MAX_CHUNKS,
            emit_chunk as *mut core::ffi::c_void,
            core::ptr::null_mut(),
            0,
        )
    };
    if beyond > 0 {
        count_lost(dir as u64, beyond);
    }
    stream_gaps::note_lost(&stream, scratch.chunks.unreported);
}

/// One chunk of [`emit_payload`]; returns 1 to stop the loop.
#[inline(never)]
unsafe extern "C" fn emit_chunk(index: u64, _ctx: *mut core::ffi::c_void) -> i64 {
    if stopping() {
        return 1;
    }
    let Some(scratch) = DATA_SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    let scratch = unsafe { &mut *scratch };
    let (prefix, state) = (&mut scratch.prefix, &mut scratch.chunks);
    let offset = index * CHUNK_LEN as u64;
    if offset >= state.deliverable {
        return 1;
    }
    let mut len = state.deliverable - offset;
    if len > CHUNK_LEN as u64 {
        len = CHUNK_LEN as u64;
        prefix.flags = 0;
    } else {
        prefix.flags = data_flags::LAST;
        prefix.lost_bytes += state.beyond;
    }
    let len = len as usize & (2 * CHUNK_LEN - 1);
    if len > CHUNK_LEN {
        return 1;
    }
    prefix.header.size = (DATA_PREFIX_LEN + len) as u32;
    prefix.header.ts_ns = unsafe { bpf_ktime_get_boot_ns() };
    prefix.offset = offset;
    prefix.seq = index as u32;
    prefix.data_len = len as u32;
    if emit_user_chunk(prefix, state.buf + offset, len).is_err() {
        prefix.lost_bytes += len as u64;
        count_lost(state.dir, len as u64);
        state.unreported += len as u64;
        if prefix.flags == data_flags::LAST {
            state.unreported += state.beyond;
        }
    } else {
        state.unreported = 0;
        prefix.lost_bytes -= state.carried;
        state.carried = 0;
    }
    0
}
