//! Container-escape syscalls: `setns`, `unshare`, `mount`, `chroot`, `pivot_root`,
//! `init_module`, `finit_module`, and `ptrace` attach/seize. A traced process's call is
//! stashed per thread at entry (its arguments) and emitted at exit with its result, the paths
//! it named (mount source and target, the new root) and a mount's file-system type, so
//! userspace can tell an attempt refused (`-EPERM`) from one that worked. Only traced
//! processes reach the map, and `ptrace` only for the requests that make the caller a tracer
//! (peeks and pokes on a process already traced are the debugger's daily work, not news).
//!
//! Not seen here: the new mount API (`fsopen`, `fsmount`, `move_mount`, `open_tree`),
//! namespaces made by `clone`/`clone3` flags (the fork record carries `clone_flags`), and
//! anything submitted through io_uring.

use agentscope_common::{escape, kind, EscapeSyscallEvent, PATH_LEN};
use aya_ebpf::{
    helpers::generated::bpf_probe_read_user_str,
    macros::{map, tracepoint},
    maps::{LruHashMap, PerCpuArray},
    programs::TracePointContext,
};

use crate::emit::submit;
use crate::task::{current_ids, fill_header, tp_arg, tp_ret, traced};

#[repr(C)]
#[derive(Clone, Copy)]
struct EscapeArgs {
    syscall: u32,
    _pad: u32,
    args: [u64; 4],
}

/// LRU: a thread whose exit is never seen (killed mid-call) must not hold a slot for good.
#[map]
static ESCAPE_PENDING: LruHashMap<u32, EscapeArgs> = LruHashMap::with_max_entries(4096, 0);

/// A 650-byte record does not fit beside the locals on the 512-byte BPF stack.
#[map]
static ESCAPE_SCRATCH: PerCpuArray<EscapeSyscallEvent> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn enter(ctx: &TracePointContext, syscall: u32) {
    let (tgid, tid) = current_ids();
    if !traced(tgid) {
        return;
    }
    let args = EscapeArgs {
        syscall,
        _pad: 0,
        args: [
            tp_arg(ctx, 0),
            tp_arg(ctx, 1),
            tp_arg(ctx, 2),
            tp_arg(ctx, 3),
        ],
    };
    if syscall == escape::PTRACE
        && args.args[0] != escape::PTRACE_ATTACH
        && args.args[0] != escape::PTRACE_SEIZE
    {
        return;
    }
    let _ = ESCAPE_PENDING.insert(&tid, &args, 0);
}

/// Reads a user string into `buf`; returns its length (NUL excluded), `PATH_LEN` if cut.
#[inline(always)]
fn read_str(buf: &mut [u8; PATH_LEN], ptr: u64) -> u32 {
    if ptr == 0 {
        return 0;
    }
    let n = unsafe {
        bpf_probe_read_user_str(buf.as_mut_ptr() as *mut _, PATH_LEN as u32, ptr as *const _)
    };
    if n <= 0 {
        0
    } else if n >= PATH_LEN as i64 {
        PATH_LEN as u32
    } else {
        (n - 1) as u32
    }
}

#[inline(always)]
fn exit(ctx: &TracePointContext) {
    let (_, tid) = current_ids();
    let Some(args) = (unsafe { ESCAPE_PENDING.get(&tid) }).copied() else {
        return;
    };
    let _ = ESCAPE_PENDING.remove(&tid);
    let Some(event) = ESCAPE_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let event = unsafe { &mut *event };
    fill_header(
        &mut event.header,
        kind::ESCAPE_SYSCALL,
        core::mem::size_of::<EscapeSyscallEvent>(),
    );
    event.syscall = args.syscall;
    event.ret = tp_ret(ctx);
    event.args = args.args;
    event.path_len = 0;
    event.path2_len = 0;
    event.path[0] = 0;
    event.path2[0] = 0;
    event.fstype[0] = 0;
    match args.syscall {
        escape::MOUNT => {
            event.path_len = read_str(&mut event.path, args.args[0]);
            event.path2_len = read_str(&mut event.path2, args.args[1]);
            if args.args[2] != 0 {
                unsafe {
                    bpf_probe_read_user_str(
                        event.fstype.as_mut_ptr() as *mut _,
                        escape::FSTYPE_LEN as u32,
                        args.args[2] as *const _,
                    )
                };
            }
        }
        escape::CHROOT => {
            event.path_len = read_str(&mut event.path, args.args[0]);
        }
        escape::PIVOT_ROOT => {
            event.path_len = read_str(&mut event.path, args.args[0]);
            event.path2_len = read_str(&mut event.path2, args.args[1]);
        }
        _ => {}
    }
    submit(
        event as *const EscapeSyscallEvent,
        core::mem::size_of::<EscapeSyscallEvent>(),
    );
}

macro_rules! escape_syscall {
    ($enter:ident, $exit:ident, $syscall:expr) => {
        #[tracepoint]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            enter(&ctx, $syscall);
            0
        }

        #[tracepoint]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            exit(&ctx);
            0
        }
    };
}

escape_syscall!(sys_enter_setns, sys_exit_setns, escape::SETNS);
escape_syscall!(sys_enter_unshare, sys_exit_unshare, escape::UNSHARE);
escape_syscall!(sys_enter_mount, sys_exit_mount, escape::MOUNT);
escape_syscall!(sys_enter_chroot, sys_exit_chroot, escape::CHROOT);
escape_syscall!(
    sys_enter_pivot_root,
    sys_exit_pivot_root,
    escape::PIVOT_ROOT
);
escape_syscall!(
    sys_enter_init_module,
    sys_exit_init_module,
    escape::INIT_MODULE
);
escape_syscall!(
    sys_enter_finit_module,
    sys_exit_finit_module,
    escape::FINIT_MODULE
);
escape_syscall!(sys_enter_ptrace, sys_exit_ptrace, escape::PTRACE);
