//! Payloads handed to the kernel as an iovec array (`writev`, `readv`, `sendmsg`, `recvmsg`):
//! the segments are walked in order and emitted as one call's consecutive bytes, in the same
//! `CHUNK_LEN` records at the same offsets a `write` of the concatenated bytes would produce, so
//! reassembly and redaction cannot tell the two apart. Many real clients write this way
//! (grpcio's `sendmsg`, Node's corked `writev`, tokio, nginx).
//!
//! What is walked is bounded, like a `write`: at most [`MAX_IOVECS`] segments and
//! `CHUNK_LEN * MAX_CHUNKS` bytes per call, and never more than the call returned (a `readv`
//! fills its segments in order up to its return value). Bytes beyond either cap, and segments
//! that cannot be read, are counted as lost (`stat::LOST_BYTES` and the direction's counter, and
//! the call's `lost_bytes`), never silently cut; userspace sees them as a gap.
//!
//! Segments are copied into one record until it holds `CHUNK_LEN` bytes, in pieces of at most
//! [`PIECE_LEN`]: the verifier cannot relate a piece's length to where it lands in the record,
//! so the scratch record has `PIECE_LEN` bytes of slack after `CHUNK_LEN`, which keeps every
//! copy inside the map value (a per-CPU value is limited to 32 KiB, so the slack cannot be a
//! whole chunk). The walk runs in `bpf_loop`, so the verifier checks its body once; its state
//! lives in the same per-CPU map value as the record rather than on the stack, because the
//! verifier follows stack values exactly and would verify the body again for every distinct
//! offset and fill it could reach (the program was refused as too large), while a map value is
//! simply unknown to it. One map lookup per step: the steps are most of a vectored call's cost.

use agentscope_common::{data_flags, kind, DataPrefix, CHUNK_LEN, DATA_PREFIX_LEN, MAX_CHUNKS};
use aya_ebpf::{
    helpers::{
        bpf_ktime_get_boot_ns, bpf_probe_read_user,
        generated::{bpf_loop, bpf_probe_read_user as raw_read_user},
    },
    macros::map,
    maps::PerCpuArray,
};

use crate::emit::{bump, count_lost, submit};
use crate::output_tracking::is_consumer;
use crate::stream_gaps::{self, StreamKey};
use crate::task::{current_ids, fill_header, stopping};
use agentscope_common::stat;

/// Segments walked per call. grpcio gathers at most 260 per `sendmsg` but a unary call uses a
/// handful; Node's corked `writev` and nginx's header-plus-body writes use a few more.
pub(crate) const MAX_IOVECS: u64 = 128;

/// iovecs read from user memory at once.
const IOV_BATCH: usize = 8;

/// Largest single copy into the record (see the module doc).
const PIECE_LEN: usize = CHUNK_LEN / 2;

/// A `DataEvent` with slack after its data, and the walk's state. The first
/// `DATA_PREFIX_LEN + CHUNK_LEN` bytes have `DataEvent`'s layout, and only
/// `DATA_PREFIX_LEN + data_len` bytes are ever sent.
#[repr(C)]
struct VectoredRecord {
    prefix: DataPrefix,
    data: [u8; CHUNK_LEN + PIECE_LEN],
    walk: Walk,
}

const _: () = {
    assert!(core::mem::offset_of!(VectoredRecord, data) == DATA_PREFIX_LEN);
    assert!(core::mem::size_of::<VectoredRecord>() <= 32 * 1024);
    assert!(PIECE_LEN.is_power_of_two());
};

#[map]
static VECTORED_SCRATCH: PerCpuArray<VectoredRecord> = PerCpuArray::with_max_entries(1, 0);

/// The first segment of an iovec array, capped at the call's byte count: where the checks on a
/// connection's first bytes (TLS record, JSON on a pipe, DNS) look.
#[inline(always)]
pub(crate) fn first_segment(iov: u64, iovcnt: u64, ret: u64) -> Option<(u64, u64)> {
    if iovcnt == 0 {
        return None;
    }
    // struct iovec { void *iov_base; size_t iov_len; }
    let first = unsafe { bpf_probe_read_user(iov as *const [u64; 2]) }.ok()?;
    Some((first[0], first[1].min(ret)))
}

/// The state of one walk, shared with [`walk_step`] through the scratch record.
#[repr(C)]
struct Walk {
    /// The next iovec to read, and how many may still be read.
    iov: u64,
    iovecs_left: u64,
    /// iovecs read ahead ([`IOV_BATCH`] per read of user memory, which costs about as much
    /// as a copy), and the next of them to use.
    batch: [[u64; 2]; IOV_BATCH],
    batch_len: u64,
    batch_next: u64,
    /// The part of the current segment not yet copied.
    seg_base: u64,
    seg_left: u64,
    /// Bytes still to place (the call's return, capped at `CHUNK_LEN * MAX_CHUNKS`).
    remaining: u64,
    /// Offset in the call of the next byte to place, and of the record's first byte.
    placed: u64,
    record_start: u64,
    /// Bytes in the record so far.
    fill: u64,
    seq: u64,
    /// Bytes lost so far (unreadable memory, a full ring).
    lost: u64,
    total_len: u64,
    dir: u64,
    /// The stream's bytes lost before this call, reported by the call's first delivered record
    /// (stream_gaps.rs).
    carried: u64,
    /// Bytes lost that no delivered record has reported: the stream's next call reports them.
    unreported: u64,
}

/// Emits the bytes an iovec call transferred (`total_len`, its return value) as one call.
#[inline(always)]
pub(crate) fn emit_vectored(
    source_kind: u32,
    dir: u32,
    fd: i32,
    iov: u64,
    iovcnt: u64,
    total_len: u64,
    conn_id: u64,
) {
    if stopping() {
        return;
    }
    let (tgid, _) = current_ids();
    if is_consumer(tgid) {
        bump(stat::CONSUMER_BYTES, total_len);
        return;
    }
    if crate::payload_switch::left_out(tgid, total_len) {
        return;
    }
    let Some(record) = VECTORED_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let record = unsafe { &mut *record };
    fill_header(&mut record.prefix.header, kind::DATA, DATA_PREFIX_LEN);
    record.prefix.source = source_kind;
    record.prefix.direction = dir;
    record.prefix.fd = fd;
    record.prefix.conn_id = conn_id;
    record.prefix.call_id = record.prefix.header.ts_ns ^ ((record.prefix.header.tid as u64) << 40);
    record.prefix.total_len = total_len;
    let capacity = CHUNK_LEN as u64 * MAX_CHUNKS as u64;
    record.walk = Walk {
        iov,
        iovecs_left: iovcnt.min(MAX_IOVECS),
        batch: [[0; 2]; IOV_BATCH],
        batch_len: 0,
        batch_next: 0,
        seg_base: 0,
        seg_left: 0,
        remaining: total_len.min(capacity),
        placed: 0,
        record_start: 0,
        fill: 0,
        seq: 0,
        lost: 0,
        total_len,
        dir: dir as u64,
        carried: 0,
        unreported: 0,
    };
    let stream = StreamKey {
        tgid,
        fd,
        conn_id,
        source: source_kind,
        direction: dir,
    };
    record.walk.carried = stream_gaps::take_lost(&stream);
    record.walk.unreported = record.walk.carried;
    // Each step makes one copy, reading the next iovec first when the segment is done. A copy
    // ends a segment, a piece or a record, so a walk takes at most
    // 2 * MAX_IOVECS + 3 * MAX_CHUNKS + 1 steps (an empty segment takes a step too).
    unsafe {
        bpf_loop(
            (2 * MAX_IOVECS + 3 * MAX_CHUNKS as u64 + 1) as u32,
            walk_step as *mut core::ffi::c_void,
            core::ptr::null_mut(),
            0,
        )
    };
    // What the walk did not reach: beyond the byte or segment cap, or an unreadable iovec.
    let beyond = total_len.saturating_sub(record.walk.placed);
    if beyond > 0 {
        count_lost(dir as u64, beyond);
    }
    stream_gaps::note_lost(&stream, record.walk.unreported);
}

/// Sends the record built so far; `last` marks the call's final record.
#[inline(always)]
fn flush(record: &mut VectoredRecord, last: bool) {
    let len = record.walk.fill as usize;
    if len == 0 || len > CHUNK_LEN {
        return;
    }
    let beyond = if last {
        record.walk.total_len.saturating_sub(record.walk.placed)
    } else {
        0
    };
    record.prefix.flags = if last { data_flags::LAST } else { 0 };
    record.prefix.lost_bytes = record.walk.lost + beyond + record.walk.carried;
    record.prefix.header.size = (DATA_PREFIX_LEN + len) as u32;
    record.prefix.header.ts_ns = unsafe { bpf_ktime_get_boot_ns() };
    record.prefix.offset = record.walk.record_start;
    record.prefix.seq = record.walk.seq as u32;
    record.prefix.data_len = len as u32;
    if submit(record as *const VectoredRecord, DATA_PREFIX_LEN + len) {
        record.walk.carried = 0;
        record.walk.unreported = 0;
    } else {
        record.walk.lost += len as u64;
        record.walk.unreported += len as u64 + beyond;
        count_lost(record.walk.dir, len as u64);
        if stopping() {
            // Nothing more is emitted: end the walk at its next step.
            record.walk.seg_left = 0;
            record.walk.remaining = 0;
        }
    }
    record.walk.seq += 1;
    record.walk.record_start += len as u64;
    record.walk.fill = 0;
}

/// One step of [`emit_vectored`]'s walk; returns 1 to stop the loop.
#[inline(never)]
unsafe extern "C" fn walk_step(_index: u64, _ctx: *mut core::ffi::c_void) -> i64 {
    let Some(record) = VECTORED_SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    let record = unsafe { &mut *record };
    if record.walk.seg_left == 0 {
        if record.walk.remaining == 0 || record.walk.iovecs_left == 0 {
            flush(record, true);
            return 1;
        }
        if record.walk.batch_next >= record.walk.batch_len {
            let mut count = record.walk.iovecs_left.min(IOV_BATCH as u64);
            count &= (2 * IOV_BATCH - 1) as u64;
            if count == 0 || count > IOV_BATCH as u64 {
                return 1;
            }
            let read = unsafe {
                raw_read_user(
                    record.walk.batch.as_mut_ptr() as *mut core::ffi::c_void,
                    (count * 16) as u32,
                    record.walk.iov as *const core::ffi::c_void,
                )
            };
            if read != 0 {
                flush(record, true);
                return 1;
            }
            record.walk.iov += count * 16;
            record.walk.batch_len = count;
            record.walk.batch_next = 0;
        }
        let segment = record.walk.batch[record.walk.batch_next as usize & (IOV_BATCH - 1)];
        record.walk.batch_next += 1;
        record.walk.iovecs_left -= 1;
        record.walk.seg_base = segment[0];
        record.walk.seg_left = segment[1].min(record.walk.remaining);
        if record.walk.seg_left == 0 {
            return 0;
        }
    }
    let room = CHUNK_LEN as u64 - record.walk.fill;
    let mut len = record.walk.seg_left.min(room).min(PIECE_LEN as u64);
    // Bounds the verifier can see: the copy starts inside the first CHUNK_LEN bytes of `data`
    // and is at most PIECE_LEN long, so it ends inside the slack.
    let at = record.walk.fill as usize & (CHUNK_LEN - 1);
    len &= (2 * PIECE_LEN - 1) as u64;
    if len == 0 || len > PIECE_LEN as u64 {
        return 1;
    }
    let read = unsafe {
        raw_read_user(
            record.data.as_mut_ptr().add(at) as *mut core::ffi::c_void,
            len as u32,
            record.walk.seg_base as *const core::ffi::c_void,
        )
    };
    if read == 0 {
        record.walk.fill += len;
    } else {
        // Unreadable (not resident) user memory: send what the record holds, and the next
        // record starts after the hole, which userspace sees as a gap.
        flush(record, false);
        record.walk.record_start += len;
        record.walk.lost += len;
        record.walk.unreported += len;
        count_lost(record.walk.dir, len);
    }
    let walk = &mut record.walk;
    walk.placed += len;
    walk.seg_base += len;
    walk.seg_left -= len;
    walk.remaining -= len;
    let done = walk.remaining == 0;
    if walk.fill >= CHUNK_LEN as u64 || done {
        flush(record, done);
    }
    if done {
        return 1;
    }
    0
}
