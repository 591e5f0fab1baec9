//! Pipes and socketpairs: which fds of a traced process are pipe ends (the stdio of child
//! processes, so MCP over stdio).
//!
//! There is no file type to look at in a syscall tracepoint without walking kernel structs, so
//! pipe ends are tracked by fd from their creation (pipe, pipe2, socketpair) through dup, fork
//! and exec to close. Their data is captured by [`crate::pipe_payload`].

use agentscope_common::config;
use aya_ebpf::{
    helpers::{bpf_probe_read_user, generated::bpf_loop},
    macros::{map, tracepoint},
    maps::HashMap,
    programs::TracePointContext,
};

use crate::maps::{
    PipeState, SockKey, PIPES, PIPE_CLOEXEC, PIPE_JSON_SEEN, PIPE_SOCKETPAIR, SOCKS,
};
use crate::sockets::AF_UNIX;
use crate::task::{config, current_ids, tp_arg, tp_ret, traced};

/// `O_CLOEXEC`, which is also `SOCK_CLOEXEC`.
const O_CLOEXEC: u64 = 0o2000000;
const F_DUPFD: u64 = 0;
const F_SETFD: u64 = 2;
const F_DUPFD_CLOEXEC: u64 = 1030;
const FD_CLOEXEC: u64 = 1;
const CLOSE_RANGE_CLOEXEC: u64 = 4;
/// Fds a child inherits tracked pipe state for, and that close_range and exec sweep: a fixed
/// bound keeps the sweep cheap and verifiable. Higher fds inherited across fork and used without
/// a dup are not followed.
pub(crate) const INHERITED_FDS: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy)]
struct FdPairArgs {
    /// User pointer to the `int[2]` the kernel fills.
    fds: u64,
    /// `PIPE_*` flags for both new fds.
    flags: u32,
    _pad: u32,
}

#[map]
static FDPAIR_PENDING: HashMap<u32, FdPairArgs> = HashMap::with_max_entries(16384, 0);

#[repr(C)]
#[derive(Clone, Copy)]
struct DupArgs {
    oldfd: i32,
    /// The new fd is close-on-exec (dup3 with `O_CLOEXEC`, `F_DUPFD_CLOEXEC`).
    cloexec: u32,
}

#[map]
static DUP_PENDING: HashMap<u32, DupArgs> = HashMap::with_max_entries(16384, 0);

#[inline(always)]
fn pipe_tracking(tgid: u32) -> bool {
    config(config::CAPTURE_PIPE_DATA) != 0 && traced(tgid)
}

/// The fd number now names something that is not a tracked pipe end.
#[inline(always)]
pub(crate) fn forget_pipe(tgid: u32, fd: i32) {
    let _ = PIPES.remove(&SockKey { tgid, fd });
}

#[inline(always)]
fn fdpair_enter(fds: u64, flags: u32) {
    let (tgid, tid) = current_ids();
    if !pipe_tracking(tgid) {
        return;
    }
    let args = FdPairArgs {
        fds,
        flags,
        _pad: 0,
    };
    let _ = FDPAIR_PENDING.insert(&tid, &args, 0);
}

#[inline(always)]
fn fdpair_exit(ctx: &TracePointContext) {
    let (tgid, tid) = current_ids();
    let Some(args) = (unsafe { FDPAIR_PENDING.get(&tid) }).copied() else {
        return;
    };
    let _ = FDPAIR_PENDING.remove(&tid);
    if tp_ret(ctx) != 0 {
        return;
    }
    let Ok(fds) = (unsafe { bpf_probe_read_user(args.fds as *const [i32; 2]) }) else {
        return;
    };
    let state = PipeState {
        flags: args.flags,
        _pad: 0,
    };
    for fd in fds {
        let key = SockKey { tgid, fd };
        let _ = SOCKS.remove(&key);
        let _ = PIPES.insert(&key, &state, 0);
    }
}

#[tracepoint]
pub fn sys_enter_pipe(ctx: TracePointContext) -> u32 {
    fdpair_enter(tp_arg(&ctx, 0), 0);
    0
}

#[tracepoint]
pub fn sys_enter_pipe2(ctx: TracePointContext) -> u32 {
    let flags: u64 = tp_arg(&ctx, 1);
    let cloexec = if flags & O_CLOEXEC != 0 {
        PIPE_CLOEXEC
    } else {
        0
    };
    fdpair_enter(tp_arg(&ctx, 0), cloexec);
    0
}

#[tracepoint]
pub fn sys_enter_socketpair(ctx: TracePointContext) -> u32 {
    let family = tp_arg::<u64>(&ctx, 0);
    if family != AF_UNIX as u64 {
        return 0;
    }
    let sock_type: u64 = tp_arg(&ctx, 1);
    let cloexec = if sock_type & O_CLOEXEC != 0 {
        PIPE_CLOEXEC
    } else {
        0
    };
    fdpair_enter(tp_arg(&ctx, 3), PIPE_SOCKETPAIR | cloexec);
    0
}

#[tracepoint]
pub fn sys_exit_pipe(ctx: TracePointContext) -> u32 {
    fdpair_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit_pipe2(ctx: TracePointContext) -> u32 {
    fdpair_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit_socketpair(ctx: TracePointContext) -> u32 {
    fdpair_exit(&ctx);
    0
}

#[inline(always)]
fn dup_enter(oldfd: i32, cloexec: bool) {
    let (tgid, tid) = current_ids();
    if !pipe_tracking(tgid) {
        return;
    }
    let args = DupArgs {
        oldfd,
        cloexec: cloexec as u32,
    };
    let _ = DUP_PENDING.insert(&tid, &args, 0);
}

/// The new fd shares the old one's open file, so it is a pipe end exactly when the old one is.
#[inline(always)]
fn dup_exit(ctx: &TracePointContext) {
    let (tgid, tid) = current_ids();
    let Some(args) = (unsafe { DUP_PENDING.get(&tid) }).copied() else {
        return;
    };
    let _ = DUP_PENDING.remove(&tid);
    let ret = tp_ret(ctx);
    if ret < 0 {
        return;
    }
    let new_key = SockKey {
        tgid,
        fd: ret as i32,
    };
    let old_key = SockKey {
        tgid,
        fd: args.oldfd,
    };
    match unsafe { PIPES.get(&old_key) }.copied() {
        Some(old) => {
            // dup and dup2 clear close-on-exec on the new fd; dup3 and F_DUPFD_CLOEXEC set it.
            let mut flags = old.flags & !PIPE_CLOEXEC;
            if args.cloexec != 0 {
                flags |= PIPE_CLOEXEC;
            }
            let _ = SOCKS.remove(&new_key);
            let _ = PIPES.insert(&new_key, &PipeState { flags, _pad: 0 }, 0);
        }
        None => forget_pipe(tgid, ret as i32),
    }
}

#[tracepoint]
pub fn sys_enter_dup(ctx: TracePointContext) -> u32 {
    dup_enter(tp_arg::<i64>(&ctx, 0) as i32, false);
    0
}

#[tracepoint]
pub fn sys_enter_dup2(ctx: TracePointContext) -> u32 {
    dup_enter(tp_arg::<i64>(&ctx, 0) as i32, false);
    0
}

#[tracepoint]
pub fn sys_enter_dup3(ctx: TracePointContext) -> u32 {
    let flags: u64 = tp_arg(&ctx, 2);
    dup_enter(tp_arg::<i64>(&ctx, 0) as i32, flags & O_CLOEXEC != 0);
    0
}

#[tracepoint]
pub fn sys_enter_fcntl(ctx: TracePointContext) -> u32 {
    let fd = tp_arg::<i64>(&ctx, 0) as i32;
    let cmd: u64 = tp_arg::<u64>(&ctx, 1) & 0xffff_ffff;
    if cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC {
        dup_enter(fd, cmd == F_DUPFD_CLOEXEC);
    } else if cmd == F_SETFD {
        let (tgid, _) = current_ids();
        if let Some(state) = PIPES.get_ptr_mut(&SockKey { tgid, fd }) {
            let arg: u64 = tp_arg(&ctx, 2);
            unsafe {
                if arg & FD_CLOEXEC != 0 {
                    (*state).flags |= PIPE_CLOEXEC;
                } else {
                    (*state).flags &= !PIPE_CLOEXEC;
                }
            }
        }
    }
    0
}

#[tracepoint]
pub fn sys_exit_dup(ctx: TracePointContext) -> u32 {
    dup_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit_dup2(ctx: TracePointContext) -> u32 {
    dup_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit_dup3(ctx: TracePointContext) -> u32 {
    dup_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit_fcntl(ctx: TracePointContext) -> u32 {
    dup_exit(&ctx);
    0
}

/// close_range(2): Python's subprocess closes every inherited fd above 2 in the child with it.
#[tracepoint]
pub fn sys_enter_close_range(ctx: TracePointContext) -> u32 {
    let (tgid, _) = current_ids();
    let first = tp_arg::<u64>(&ctx, 0) & 0xffff_ffff;
    let max = tp_arg::<u64>(&ctx, 1) & 0xffff_ffff;
    let flags: u64 = tp_arg(&ctx, 2);
    if first >= INHERITED_FDS as u64 || max < first {
        return 0;
    }
    let last = if max >= INHERITED_FDS as u64 {
        INHERITED_FDS - 1
    } else {
        max as u32
    };
    sweep_fds(&mut FdSweep {
        tgid,
        parent: 0,
        first: first as u32,
        last,
        mode: if flags & CLOSE_RANGE_CLOEXEC != 0 {
            SWEEP_SET_CLOEXEC
        } else {
            SWEEP_CLOSE
        },
    });
    0
}

pub(crate) const SWEEP_INHERIT: u32 = 1;
const SWEEP_CLOSE: u32 = 2;
const SWEEP_SET_CLOEXEC: u32 = 3;
pub(crate) const SWEEP_EXEC: u32 = 4;

/// One pass over fds `first..=last` (below `INHERITED_FDS`) of `tgid`, shared with
/// [`sweep_fd`] through `bpf_loop`.
#[repr(C)]
pub(crate) struct FdSweep {
    pub(crate) tgid: u32,
    /// `SWEEP_INHERIT`: whose fd table was copied.
    pub(crate) parent: u32,
    pub(crate) first: u32,
    pub(crate) last: u32,
    pub(crate) mode: u32,
}

#[inline(always)]
pub(crate) fn sweep_fds(sweep: &mut FdSweep) {
    unsafe {
        bpf_loop(
            INHERITED_FDS,
            sweep_fd as *mut core::ffi::c_void,
            sweep as *mut FdSweep as *mut core::ffi::c_void,
            0,
        )
    };
}

/// One fd of [`sweep_fds`]; returns 1 to stop the loop.
#[inline(never)]
unsafe extern "C" fn sweep_fd(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    let sweep = unsafe { &*(ctx as *const FdSweep) };
    let fd = index as u32;
    if fd > sweep.last {
        return 1;
    }
    if fd < sweep.first {
        return 0;
    }
    let key = SockKey {
        tgid: sweep.tgid,
        fd: fd as i32,
    };
    match sweep.mode {
        SWEEP_INHERIT => {
            let parent = SockKey {
                tgid: sweep.parent,
                fd: fd as i32,
            };
            // A reused pid may have left entries behind: the copy replaces them either way.
            match unsafe { PIPES.get(&parent) }.copied() {
                Some(state) => {
                    // Each process shows JSON on its own before its traffic is captured.
                    let inherited = PipeState {
                        flags: state.flags & !PIPE_JSON_SEEN,
                        _pad: 0,
                    };
                    let _ = PIPES.insert(&key, &inherited, 0);
                }
                None => {
                    let _ = PIPES.remove(&key);
                }
            }
        }
        SWEEP_CLOSE => {
            let _ = PIPES.remove(&key);
        }
        SWEEP_SET_CLOEXEC => {
            if let Some(state) = PIPES.get_ptr_mut(&key) {
                unsafe { (*state).flags |= PIPE_CLOEXEC };
            }
        }
        _ => {
            if let Some(state) = unsafe { PIPES.get(&key) } {
                if state.flags & PIPE_CLOEXEC != 0 {
                    let _ = PIPES.remove(&key);
                }
            }
        }
    }
    0
}
