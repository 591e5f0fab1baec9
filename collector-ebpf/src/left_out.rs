//! Bytes the kernel left out, by process (`LEFT_OUT_BY_PROCESS`): the node-wide counters
//! (`stat::OPAQUE_SOCKET_BYTES`, `stat::PAYLOADS_OFF_BYTES`, `stat::SAMPLED_OUT_BYTES`) say
//! how much was not copied, this map says whose. The collector reads a process's entry when it
//! exits (and every entry when capture stops), reports it as a `payloads_left_out` event and
//! deletes it; the kernel never deletes one, so the counts outlive the process until the
//! collector has read them.

use agentscope_common::LeftOutBytes;
use aya_ebpf::{macros::map, maps::LruPerCpuHashMap};

/// Per CPU, so a count needs no atomic add (the collector sums the CPUs). An LRU: a node with
/// more processes whose bytes are left out than entries loses the oldest processes' counts
/// (the node-wide counters still hold their bytes), never a process's capture.
#[map]
static LEFT_OUT_BY_PROCESS: LruPerCpuHashMap<u32, LeftOutBytes> =
    LruPerCpuHashMap::with_max_entries(16384, 0);

/// `len` bytes of `tgid`'s plain socket were not copied: it carries no protocol the collector
/// reads.
#[inline(always)]
pub(crate) fn opaque_socket(tgid: u32, len: u64) {
    add(tgid, len, 0, 0);
}

/// `len` bytes of `tgid`'s payloads were not copied: its payloads are left out on request.
#[inline(always)]
pub(crate) fn on_request(tgid: u32, len: u64) {
    add(tgid, 0, len, 0);
}

/// `len` bytes of `tgid`'s payloads were not copied: their connection was sampled out.
#[inline(always)]
pub(crate) fn sampled_out(tgid: u32, len: u64) {
    add(tgid, 0, 0, len);
}

#[inline(always)]
fn add(tgid: u32, opaque_socket: u64, on_request: u64, sampled_out: u64) {
    match LEFT_OUT_BY_PROCESS.get_ptr_mut(&tgid) {
        // This CPU's slot: no other writer while this program runs on this CPU.
        Some(counts) => unsafe {
            (*counts).opaque_socket += opaque_socket;
            (*counts).on_request += on_request;
            (*counts).sampled_out += sampled_out;
        },
        None => {
            let counts = LeftOutBytes {
                opaque_socket,
                on_request,
                sampled_out,
            };
            let _ = LEFT_OUT_BY_PROCESS.insert(&tgid, &counts, 0);
        }
    }
}
