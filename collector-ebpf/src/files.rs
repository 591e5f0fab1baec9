//! File access: `open`, `openat` and `openat2`. Arguments are stashed per thread on entry and
//! one record is sent on return, with the new fd or `-errno`. Read-only opens of runtime noise
//! (`agentscope_common::noise_paths`) are counted in `STATS` instead of sent, unless the
//! collector keeps them (`config::KEEP_RUNTIME_NOISE`, `collect --keep-runtime-noise`).

use agentscope_common::{
    config, kind, noise_paths::NoiseScan, open_syscall, stat, OpenEvent, PATH_LEN,
};
use aya_ebpf::{
    helpers::{
        bpf_probe_read_user,
        generated::{bpf_loop, bpf_probe_read_user_str},
    },
    macros::{map, tracepoint},
    maps::{HashMap, PerCpuArray},
    programs::TracePointContext,
};

use crate::emit::{bump, submit};
use crate::pipes::forget_pipe;
use crate::task::{config, current_ids, fill_header, tp_arg, tp_ret, traced};

#[repr(C)]
#[derive(Clone, Copy)]
struct OpenArgs {
    filename: u64,
    dfd: i32,
    flags: i32,
    mode: u32,
    syscall: u32,
}

#[map]
static OPEN_PENDING: HashMap<u32, OpenArgs> = HashMap::with_max_entries(16384, 0);

/// The open record being built, and the runtime-noise scan of its path.
#[repr(C)]
struct OpenScratch {
    event: OpenEvent,
    /// Room for the scan's reads past the path: the compiler may check a read's bounds on one
    /// copy of the position and load through another, which the verifier then only knows as
    /// below `PATH_LEN` (the longest literal the scan compares is 15 bytes).
    slack: [u8; 32],
    /// In the map value rather than on the stack: the verifier does not track its values, so
    /// the `bpf_loop` callback is verified once, not once per combination of flags.
    scan: NoiseScan,
}

#[map]
static OPEN_SCRATCH: PerCpuArray<OpenScratch> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn open_enter(args: OpenArgs) {
    let (tgid, tid) = current_ids();
    if traced(tgid) {
        let _ = OPEN_PENDING.insert(&tid, &args, 0);
    }
}

#[tracepoint]
pub fn sys_enter_open(ctx: TracePointContext) -> u32 {
    open_enter(OpenArgs {
        filename: tp_arg(&ctx, 0),
        dfd: -100,
        flags: tp_arg::<u64>(&ctx, 1) as i32,
        mode: tp_arg::<u64>(&ctx, 2) as u32,
        syscall: open_syscall::OPEN,
    });
    0
}

#[tracepoint]
pub fn sys_enter_openat(ctx: TracePointContext) -> u32 {
    open_enter(OpenArgs {
        filename: tp_arg(&ctx, 1),
        dfd: tp_arg::<i64>(&ctx, 0) as i32,
        flags: tp_arg::<u64>(&ctx, 2) as i32,
        mode: tp_arg::<u64>(&ctx, 3) as u32,
        syscall: open_syscall::OPENAT,
    });
    0
}

#[tracepoint]
pub fn sys_enter_openat2(ctx: TracePointContext) -> u32 {
    // struct open_how { u64 flags; u64 mode; u64 resolve; }
    let how: u64 = tp_arg(&ctx, 2);
    let flags: u64 = unsafe { bpf_probe_read_user(how as *const u64) }.unwrap_or(0);
    let mode: u64 = unsafe { bpf_probe_read_user((how + 8) as *const u64) }.unwrap_or(0);
    open_enter(OpenArgs {
        filename: tp_arg(&ctx, 1),
        dfd: tp_arg::<i64>(&ctx, 0) as i32,
        flags: flags as i32,
        mode: mode as u32,
        syscall: open_syscall::OPENAT2,
    });
    0
}

#[inline(always)]
fn open_exit(ctx: &TracePointContext) {
    let (_, tid) = current_ids();
    let Some(args) = (unsafe { OPEN_PENDING.get(&tid) }).copied() else {
        return;
    };
    let _ = OPEN_PENDING.remove(&tid);
    let Some(scratch) = OPEN_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let event = unsafe { &mut (*scratch).event };
    fill_header(
        &mut event.header,
        kind::OPEN,
        core::mem::size_of::<OpenEvent>(),
    );
    event.dfd = args.dfd;
    event.flags = args.flags;
    event.mode = args.mode;
    event.syscall = args.syscall;
    event.ret = tp_ret(ctx) as i32;
    if event.ret >= 0 {
        forget_pipe(current_ids().0, event.ret);
    }
    let n = unsafe {
        bpf_probe_read_user_str(
            event.path.as_mut_ptr() as *mut _,
            PATH_LEN as u32,
            args.filename as *const _,
        )
    };
    event.path_len = if n > 0 { (n - 1) as u32 } else { 0 };
    if n >= PATH_LEN as i64 {
        event.path_len = PATH_LEN as u32;
    }
    if is_runtime_noise(event) {
        bump(stat::NOISE_OPENS_FILTERED, 1);
        return;
    }
    submit(event as *const OpenEvent, core::mem::size_of::<OpenEvent>());
}

/// Flags that make an open a write: never left out.
const WRITE_FLAGS: i32 = 0o3 /* O_ACCMODE */ | 0o100 /* O_CREAT */ | 0o1000 /* O_TRUNC */;
const ENOENT: i32 = 2;

/// A read-only open of a runtime-noise path that succeeded or found nothing: what userspace
/// hides anyway (`noise_paths` says which paths). Other failures (`EACCES`, `EPERM`: a
/// sandbox or a policy said no) are always sent, and so is everything when the collector
/// keeps runtime noise.
#[inline(always)]
fn is_runtime_noise(event: &OpenEvent) -> bool {
    if event.flags & WRITE_FLAGS != 0 || (event.ret < 0 && event.ret != -ENOENT) {
        return false;
    }
    if config(config::KEEP_RUNTIME_NOISE) != 0 {
        return false;
    }
    let len = event.path_len;
    if len == 0 || len as usize >= PATH_LEN {
        return false;
    }
    let Some(scratch) = OPEN_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    unsafe { (*scratch).scan = NoiseScan::new(len) };
    // One callback per byte: the verifier checks the scan once, not once per position.
    unsafe {
        bpf_loop(
            len,
            noise_step as *mut core::ffi::c_void,
            core::ptr::null_mut(),
            0,
        )
    };
    let scratch = unsafe { &*scratch };
    scratch.scan.droppable(&scratch.event.path)
}

/// One byte of [`is_runtime_noise`]'s scan of `OPEN_SCRATCH`'s path.
#[inline(never)]
unsafe extern "C" fn noise_step(index: u64, _ctx: *mut core::ffi::c_void) -> i64 {
    let Some(scratch) = OPEN_SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    let scratch = unsafe { &mut *scratch };
    scratch.scan.step(&scratch.event.path, index as usize);
    0
}

/// The return of `open`, `openat` and `openat2`: one program attached to each of their exit
/// tracepoints (one layout), so the path scan is verified once, not three times (see
/// `sys_exit_io` in [`crate::socket_io`]).
#[tracepoint]
pub fn sys_exit_opens(ctx: TracePointContext) -> u32 {
    open_exit(&ctx);
    0
}
