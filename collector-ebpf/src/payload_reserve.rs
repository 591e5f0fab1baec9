//! Payload records written with one copy: the bytes are read from user memory straight into a
//! ring-buffer reservation, instead of into a per-CPU scratch record that `bpf_ringbuf_output`
//! then copies again (`ssl_exit_probe`, which made both copies, took two thirds of the programs'
//! time per 8 KiB TLS request; DEVELOPERS.md, Benchmarks, has what removing one saved).
//!
//! `bpf_ringbuf_reserve` takes only a size the verifier knows as a constant, so a chunk is
//! reserved in the smallest of [`CLASSES`] that holds it: every class is its own branch, in
//! which the size is a constant. The record's header still declares `DATA_PREFIX_LEN +
//! data_len` bytes, which is all userspace reads (`agentscope_event::decode` never looks past
//! `header.size`), so the record format is unchanged; the reservation's tail after the data is
//! ring space not written (stale bytes of earlier records the collector already read, never
//! decoded nor sent anywhere). That tail is less than [`CLASS_STEP`] bytes for chunks over
//! `CLASS_STEP` and less than half the chunk's room below it: for a 16 KiB chunk nothing, for
//! an 8.3 KiB one 0.2 KiB (an 8.5 KiB class).
//!
//! Dynptrs were the other way: `bpf_ringbuf_reserve_dynptr` takes any size, but the read into
//! it needs the `bpf_probe_read_user_dynptr` kfunc (in 6.18), and aya 0.14 cannot load a
//! program that calls a kfunc (no `BPF_PSEUDO_KFUNC_CALL` relocation), while
//! `bpf_dynptr_data` only hands out slices of constant size.

use agentscope_common::{stat, DataPrefix, CHUNK_LEN, DATA_PREFIX_LEN};
use aya_ebpf::{bindings::BPF_RB_NO_WAKEUP, helpers::generated::bpf_probe_read_user};

use crate::emit::{bump, wake_flags};
use crate::maps::EVENTS;
use crate::task::stopping;

/// A payload record as reserved: the prefix and room for `N` bytes, of which the prefix's
/// `data_len` are written. The first `DATA_PREFIX_LEN + data_len` bytes have `DataEvent`'s
/// layout.
#[repr(C)]
struct ClassRecord<const N: usize> {
    prefix: DataPrefix,
    data: [u8; N],
}

/// Room between two classes above the small ones.
const CLASS_STEP: usize = 512;

/// Why a chunk was not delivered.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotDelivered {
    /// The collector is stopping: nothing more is emitted.
    Stopping,
    /// The ring buffer had no room (counted `stat::DROPPED`).
    NoRoom,
    /// The user memory could not be read (the reservation is discarded).
    Unreadable,
}

/// Writes one payload record: `prefix` (whose `data_len` and `header.size` the caller has set
/// for `len` bytes), then `len` bytes read from `src` in user memory, in the smallest class
/// that holds them. Counts `stat::EMITTED` or `stat::DROPPED` as `emit::submit` does; the
/// caller counts the bytes lost.
#[inline(always)]
pub(crate) fn emit_user_chunk(
    prefix: &DataPrefix,
    src: u64,
    len: usize,
) -> Result<(), NotDelivered> {
    if stopping() {
        return Err(NotDelivered::Stopping);
    }
    // The class chain, smallest first; in each arm the size is a constant for the verifier.
    macro_rules! by_class {
        ($($i:literal),+) => {
            $(if len <= CLASSES[$i] {
                return emit_in_class::<{ CLASSES[$i] }>(prefix, src, len);
            })+
        };
    }
    // Every index of `CLASSES`, 0 to `CLASS_COUNT - 1`.
    by_class!(
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
        25, 26, 27, 28, 29, 30, 31, 32, 33
    );
    // Longer than a chunk: the caller never asks for it.
    Err(NotDelivered::Unreadable)
}

const CLASS_COUNT: usize = 3 + (CHUNK_LEN - 1024) / CLASS_STEP + 1;

/// The record sizes reserved (payload bytes after the prefix): 128, 256 and 512 B, then every
/// [`CLASS_STEP`] from 1 KiB to `CHUNK_LEN`.
const CLASSES: [usize; CLASS_COUNT] = {
    let mut classes = [0; CLASS_COUNT];
    classes[0] = 128;
    classes[1] = 256;
    classes[2] = 512;
    let mut i = 3;
    while i < CLASS_COUNT {
        classes[i] = 1024 + (i - 3) * CLASS_STEP;
        i += 1;
    }
    classes
};

const _: () = {
    // The largest class holds a whole chunk; each class above 512 B is one step above the one
    // before, so the unwritten tail of a record is under a step (or under half the record's
    // room for the small ones).
    assert!(CLASSES[CLASS_COUNT - 1] == CHUNK_LEN);
    let mut i = 1;
    while i < CLASS_COUNT {
        assert!(CLASSES[i] > CLASSES[i - 1]);
        assert!(CLASSES[i] - CLASSES[i - 1] <= CLASS_STEP || CLASSES[i] <= 2 * CLASSES[i - 1]);
        i += 1;
    }
    assert!(core::mem::offset_of!(ClassRecord<128>, data) == DATA_PREFIX_LEN);
    assert!(core::mem::size_of::<ClassRecord<CHUNK_LEN>>() == DATA_PREFIX_LEN + CHUNK_LEN);
};

#[inline(always)]
fn emit_in_class<const N: usize>(
    prefix: &DataPrefix,
    src: u64,
    len: usize,
) -> Result<(), NotDelivered> {
    // Bounds the read for the verifier whatever the compiler kept of the caller's comparison
    // (a mask that keeps every `len <= N` as it is).
    let len = len & (2 * N.next_power_of_two() - 1);
    if len > N {
        return Err(NotDelivered::Unreadable);
    }
    let Some(mut entry) = EVENTS.reserve::<ClassRecord<N>>(0) else {
        bump(stat::DROPPED, 1);
        return Err(NotDelivered::NoRoom);
    };
    let record = entry.as_mut_ptr();
    // SAFETY: `record` points at the reservation, `N + DATA_PREFIX_LEN` bytes, and `len <= N`.
    let read = unsafe {
        (*record).prefix = *prefix;
        bpf_probe_read_user(
            (*record).data.as_mut_ptr() as *mut core::ffi::c_void,
            len as u32,
            src as *const core::ffi::c_void,
        )
    };
    if read != 0 {
        entry.discard(BPF_RB_NO_WAKEUP as u64);
        return Err(NotDelivered::Unreadable);
    }
    entry.submit(wake_flags());
    bump(stat::EMITTED, 1);
    Ok(())
}
