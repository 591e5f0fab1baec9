//! The current task and what a hook was given: its ids, the record header that names it,
//! whether it is traced at all (never the collector itself; with a pid filter only the targets
//! and their descendants), the collector's configuration, and syscall tracepoint arguments.

use agentscope_common::{config, EventHeader};
use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_uid_gid, bpf_ktime_get_boot_ns,
    },
    programs::TracePointContext,
};

use crate::maps::{CONFIG, TARGETS};

#[inline(always)]
pub(crate) fn config(index: u32) -> u64 {
    CONFIG.get(index).copied().unwrap_or(0)
}

/// The collector is stopping: nothing more is emitted, so its last drain ends.
#[inline(always)]
pub(crate) fn stopping() -> bool {
    config(config::STOPPING) != 0
}

/// Whether activity of this process is traced: never the collector itself, and only the
/// targets (and their descendants) when a pid filter is set.
#[inline(always)]
pub(crate) fn traced(tgid: u32) -> bool {
    if tgid as u64 == config(config::SELF_TGID) {
        return false;
    }
    if config(config::FILTER_PIDS) != 0 {
        return unsafe { TARGETS.get(&tgid) }.is_some();
    }
    true
}

#[inline(always)]
pub(crate) fn current_ids() -> (u32, u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    ((pid_tgid >> 32) as u32, pid_tgid as u32)
}

#[inline(always)]
pub(crate) fn fill_header(header: &mut EventHeader, event_kind: u32, size: usize) {
    let (tgid, tid) = current_ids();
    let uid_gid = bpf_get_current_uid_gid();
    header.kind = event_kind;
    header.size = size as u32;
    header.ts_ns = unsafe { bpf_ktime_get_boot_ns() };
    header.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    header.pid = tgid;
    header.tid = tid;
    header.uid = uid_gid as u32;
    header.gid = (uid_gid >> 32) as u32;
    header.comm = bpf_get_current_comm().unwrap_or([0; 16]);
}

#[inline(always)]
pub(crate) fn tp_arg<T>(ctx: &TracePointContext, index: usize) -> T {
    // Syscall tracepoints: 8 bytes of common fields and syscall nr, then one u64 per argument.
    unsafe { ctx.read_at::<T>(16 + 8 * index) }.unwrap_or_else(|_| unsafe { core::mem::zeroed() })
}

#[inline(always)]
pub(crate) fn tp_ret(ctx: &TracePointContext) -> i64 {
    tp_arg::<i64>(ctx, 0)
}
