//! Process lifecycle: fork (`task_newtask`), exec (`execve`, `execveat`: argv is read on
//! entry, the record sent on a successful return) and exit (`sched_process_exit`, with the code
//! given to `exit`/`exit_group`). Keeps the `PARENTS` and `TARGETS` maps, so a pid filter
//! follows descendants, and carries pipe-end state across fork and exec. (Enforcement's process
//! trees are followed by programs of their own, pinned with it: `enforce_tree.rs`.)

use agentscope_common::{
    config, exec_flags, exit_flags, kind, ExecEvent, ExitEvent, ForkEvent, ARGV_LEN, ARG_READ_LEN,
    MAX_ARGS, PATH_LEN,
};
use aya_ebpf::{
    helpers::{bpf_probe_read_user, generated::bpf_probe_read_user_str},
    macros::{map, tracepoint},
    maps::{HashMap, LruHashMap, PerCpuArray},
    programs::TracePointContext,
};

use crate::emit::{submit_urgent, submit_value};
use crate::maps::{PARENTS, TARGETS};
use crate::output_tracking::forget_consumer;
use crate::pipes::{sweep_fds, FdSweep, INHERITED_FDS, SWEEP_EXEC, SWEEP_INHERIT};
use crate::task::{config, current_ids, fill_header, tp_arg, tp_ret, traced};

const CLONE_THREAD: u64 = 0x0001_0000;
const CLONE_PARENT: u64 = 0x0000_8000;

/// Exec being prepared, keyed by tgid (a successful exec may change the calling thread's id).
#[map]
static EXEC_PENDING: HashMap<u32, ExecEvent> = HashMap::with_max_entries(4096, 0);

#[map]
static EXEC_SCRATCH: PerCpuArray<ExecEvent> = PerCpuArray::with_max_entries(1, 0);

#[map]
static EXIT_CODES: LruHashMap<u32, i32> = LruHashMap::with_max_entries(16384, 0);

#[tracepoint]
pub fn task_newtask(ctx: TracePointContext) -> u32 {
    let child: u32 = unsafe { ctx.read_at::<i32>(8) }.unwrap_or(0) as u32;
    let clone_flags: u64 = unsafe { ctx.read_at::<u64>(32) }.unwrap_or(0);
    if clone_flags & CLONE_THREAD != 0 || child == 0 {
        return 0;
    }
    let (tgid, _) = current_ids();
    let parent = if clone_flags & CLONE_PARENT != 0 {
        unsafe { PARENTS.get(&tgid) }.copied().unwrap_or(0)
    } else {
        tgid
    };
    let _ = PARENTS.insert(&child, &parent, 0);
    crate::payload_switch::inherit(tgid, child);
    if !traced(tgid) {
        return 0;
    }
    if config(config::FILTER_PIDS) != 0 {
        let _ = TARGETS.insert(&child, &1, 0);
    }
    // The child starts with a copy of the caller's fd table (CLONE_PARENT only changes who
    // the parent is): so does its pipe state.
    if config(config::CAPTURE_PIPE_DATA) != 0 {
        sweep_fds(&mut FdSweep {
            tgid: child,
            parent: tgid,
            first: 0,
            last: INHERITED_FDS - 1,
            mode: SWEEP_INHERIT,
        });
    }
    let mut event: ForkEvent = unsafe { core::mem::zeroed() };
    fill_header(
        &mut event.header,
        kind::FORK,
        core::mem::size_of::<ForkEvent>(),
    );
    event.child_pid = child;
    event.clone_flags = clone_flags;
    submit_value(&event);
    0
}

#[inline(always)]
fn exec_enter(filename: u64, argv: u64) {
    let (tgid, _) = current_ids();
    if !traced(tgid) {
        return;
    }
    let Some(event) = EXEC_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let event = unsafe { &mut *event };
    event.flags = 0;
    event.argc = 0;
    event.argv_len = 0;
    let name_len = unsafe {
        bpf_probe_read_user_str(
            event.filename.as_mut_ptr() as *mut _,
            PATH_LEN as u32,
            filename as *const _,
        )
    };
    if name_len >= PATH_LEN as i64 {
        event.flags |= exec_flags::FILENAME_TRUNCATED;
    }
    let mut pos: usize = 0;
    for i in 0..MAX_ARGS {
        let arg: u64 =
            unsafe { bpf_probe_read_user((argv + 8 * i as u64) as *const u64) }.unwrap_or(0);
        if arg == 0 {
            break;
        }
        if pos > ARGV_LEN - ARG_READ_LEN {
            event.flags |= exec_flags::ARGV_TRUNCATED;
            break;
        }
        let n = unsafe {
            bpf_probe_read_user_str(
                event.argv.as_mut_ptr().add(pos) as *mut _,
                ARG_READ_LEN as u32,
                arg as *const _,
            )
        };
        if n <= 0 {
            break;
        }
        if n >= ARG_READ_LEN as i64 {
            event.flags |= exec_flags::ARGV_TRUNCATED;
        }
        pos += n as usize;
        event.argc += 1;
        if i == MAX_ARGS - 1 {
            let next: u64 =
                unsafe { bpf_probe_read_user((argv + 8 * MAX_ARGS as u64) as *const u64) }
                    .unwrap_or(0);
            if next != 0 {
                event.flags |= exec_flags::ARGV_TRUNCATED;
            }
        }
    }
    event.argv_len = pos as u32;
    let _ = EXEC_PENDING.insert(&tgid, event, 0);
}

#[tracepoint]
pub fn sys_enter_execve(ctx: TracePointContext) -> u32 {
    exec_enter(tp_arg(&ctx, 0), tp_arg(&ctx, 1));
    0
}

#[tracepoint]
pub fn sys_enter_execveat(ctx: TracePointContext) -> u32 {
    exec_enter(tp_arg(&ctx, 1), tp_arg(&ctx, 2));
    0
}

#[inline(always)]
fn exec_exit(ctx: &TracePointContext) {
    let (tgid, _) = current_ids();
    let Some(event) = EXEC_PENDING.get_ptr_mut(&tgid) else {
        return;
    };
    if tp_ret(ctx) == 0 {
        let event = unsafe { &mut *event };
        fill_header(
            &mut event.header,
            kind::EXEC,
            core::mem::size_of::<ExecEvent>(),
        );
        event.ppid = unsafe { PARENTS.get(&tgid) }.copied().unwrap_or(0);
        // Urgent: the collector looks at the new binary for TLS libraries before it talks.
        submit_urgent(event as *const ExecEvent, core::mem::size_of::<ExecEvent>());
        sweep_fds(&mut FdSweep {
            tgid,
            parent: 0,
            first: 0,
            last: INHERITED_FDS - 1,
            mode: SWEEP_EXEC,
        });
    }
    let _ = EXEC_PENDING.remove(&tgid);
}

#[tracepoint]
pub fn sys_exit_execve(ctx: TracePointContext) -> u32 {
    exec_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit_execveat(ctx: TracePointContext) -> u32 {
    exec_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_enter_exit_group(ctx: TracePointContext) -> u32 {
    let (tgid, _) = current_ids();
    let code: i64 = tp_arg(&ctx, 0);
    let _ = EXIT_CODES.insert(&tgid, &(code as i32), 0);
    0
}

#[tracepoint]
pub fn sys_enter_exit(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current_ids();
    // A lone thread leaving with exit() ends the process as well; remember its code too.
    if tgid == tid {
        let code: i64 = tp_arg(&ctx, 0);
        let _ = EXIT_CODES.insert(&tgid, &(code as i32), 0);
    }
    0
}

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let group_dead: u8 = unsafe { ctx.read_at::<u8>(32) }.unwrap_or(0);
    if group_dead == 0 {
        return 0;
    }
    let (tgid, _) = current_ids();
    let code = unsafe { EXIT_CODES.get(&tgid) }.copied();
    let _ = EXIT_CODES.remove(&tgid);
    let _ = PARENTS.remove(&tgid);
    forget_consumer(tgid);
    crate::payload_switch::forget(tgid);
    crate::connection_sampling::forget(tgid);
    let was_traced = traced(tgid);
    let _ = TARGETS.remove(&tgid);
    if !was_traced {
        return 0;
    }
    let mut event: ExitEvent = unsafe { core::mem::zeroed() };
    fill_header(
        &mut event.header,
        kind::EXIT,
        core::mem::size_of::<ExitEvent>(),
    );
    if let Some(code) = code {
        event.exit_code = code;
        event.flags = exit_flags::CODE_KNOWN;
    }
    submit_value(&event);
    0
}
