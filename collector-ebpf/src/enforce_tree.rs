//! Enforcement's process trees kept current in the kernel, by programs of their own: a child
//! of a governed process is governed before it can run (`task_newtask`), and an exiting one is
//! forgotten (`sched_process_exit`), so its pid, once reused, governs nobody. These are apart
//! from the tracing programs of `process.rs` because they are pinned with the enforcement
//! (crates/kernel/src/enforcement_pins.rs): after the collector has gone (a restart, a crash)
//! they still follow the governed trees, and nothing else of the collector runs.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

use crate::enforce::GOVERNED_TGIDS;
use crate::task::current_ids;

const CLONE_THREAD: u64 = 0x0001_0000;

#[tracepoint]
pub fn enforce_task_newtask(ctx: TracePointContext) -> u32 {
    // task_newtask: `pid_t pid` at 8, `unsigned long clone_flags` at 32.
    let child: u32 = unsafe { ctx.read_at::<i32>(8) }.unwrap_or(0) as u32;
    let clone_flags: u64 = unsafe { ctx.read_at::<u64>(32) }.unwrap_or(0);
    if clone_flags & CLONE_THREAD != 0 || child == 0 {
        return 0;
    }
    let (tgid, _) = current_ids();
    if let Some(agent) = unsafe { GOVERNED_TGIDS.get(&tgid) }.copied() {
        let _ = GOVERNED_TGIDS.insert(&child, &agent, 0);
    }
    0
}

#[tracepoint]
pub fn enforce_sched_process_exit(ctx: TracePointContext) -> u32 {
    // sched_process_exit: `bool group_dead` at 32 (the whole thread group is gone).
    let group_dead: u8 = unsafe { ctx.read_at::<u8>(32) }.unwrap_or(0);
    if group_dead == 0 {
        return 0;
    }
    let (tgid, _) = current_ids();
    let _ = GOVERNED_TGIDS.remove(&tgid);
    0
}
