//! Processes whose payloads are left out on request (`collect --no-payloads-of PID`): a
//! trusted process that moves much data (a batch job, a proxy) costs the node a copy of every
//! byte otherwise. Its other events (exec, connect, opens, DNS) are still sent; its payload
//! bytes are counted in `stat::PAYLOADS_OFF_BYTES` and by process (`left_out.rs`). Children
//! started later inherit the switch (a process's work is often done by what it spawns); the
//! collector seeds `PAYLOADS_OFF`, the fork and exit hooks keep it.

use agentscope_common::stat;
use aya_ebpf::{macros::map, maps::HashMap};

use crate::emit::bump;

/// Processes whose payloads are not copied. Not an LRU: a process must not come back into
/// view because others crowded it out. A full map refuses a child, which is then captured as
/// any process is (the failure that hides nothing).
#[map]
static PAYLOADS_OFF: HashMap<u32, u8> = HashMap::with_max_entries(4096, 0);

/// Whether `tgid`'s payloads are left out; if so, counts the `len` bytes of the call.
#[inline(always)]
pub(crate) fn left_out(tgid: u32, len: u64) -> bool {
    if unsafe { PAYLOADS_OFF.get(&tgid) }.is_none() {
        return false;
    }
    bump(stat::PAYLOADS_OFF_BYTES, len);
    crate::left_out::on_request(tgid, len);
    true
}

/// `child` was forked by `parent`: it inherits the switch.
#[inline(always)]
pub(crate) fn inherit(parent: u32, child: u32) {
    if unsafe { PAYLOADS_OFF.get(&parent) }.is_some() {
        let _ = PAYLOADS_OFF.insert(&child, &1, 0);
    }
}

/// The process has exited: its pid may be reused by another process.
#[inline(always)]
pub(crate) fn forget(tgid: u32) {
    let _ = PAYLOADS_OFF.remove(&tgid);
}
