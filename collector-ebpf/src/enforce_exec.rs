//! Enforcement of governed agents' exec policies (issue 17): `sched_process_exec` fires in
//! the new image's task after the exec has succeeded and before it returns to user space, so
//! a `SIGKILL` sent there (`bpf_send_signal`) ends the process before one instruction of the
//! new program runs (kprobes and BPF-LSM, which could refuse the exec itself, are not
//! available on the target kernels; this is Tetragon's Sigkill approach). The executable is
//! the path the exec was given (the tracepoint's `filename`, from the kernel's own copy),
//! looked up in `EXEC_ALLOW` with the agent's id; a `#!` script is judged by its own path (the
//! exec names the script; the kernel runs its interpreter).
//!
//! An interpreter (`sh`, `python3`, `perl`…) is a program whose real program is what it reads,
//! so the policy allows it only in the forms that do not bring in a new program from
//! elsewhere: with inline code (`sh -c CMD`: the commands it runs are execs judged one by one)
//! or with a script path the policy lists (`sh /opt/ops/check.sh`). Given neither, it reads
//! its program from standard input (`curl … | sh`), and is killed like an executable the
//! policy does not allow. The arguments are read from the new image's own copy
//! (`mm->arg_start`, written by the kernel during the exec; no other thread exists yet).
//! Ungoverned processes return at once (the same lookups as `enforce.rs`).

use agentscope_common::{
    enforce::{self, MAX_EXEC_RULES, SIGKILL},
    kind, EnforceExecEvent, ExecAllowKey, PATH_LEN,
};
use aya_ebpf::{
    helpers::{
        bpf_probe_read_kernel_str_bytes,
        generated::{bpf_get_current_task, bpf_loop, bpf_probe_read_user, bpf_send_signal},
    },
    macros::{map, tracepoint},
    maps::{HashMap, PerCpuArray},
    programs::TracePointContext,
    EbpfContext as _,
};

use crate::emit::submit_value_urgent;
use crate::enforce::{governed_agent, AGENT_POLICIES};
use crate::enforce_file::offset;
use crate::fd_file::kernel_read;
use crate::task::fill_header;

/// (agent, executable or script path) pairs the policies allow → `enforce::EXEC_ALLOW_*`
/// (an interpreter's inline-code option letter in the second byte).
#[map]
static EXEC_ALLOW: HashMap<ExecAllowKey, u32> = HashMap::with_max_entries(MAX_EXEC_RULES, 0);

/// Bytes of an interpreter's argv read (a power of two: indices are masked with it).
const ARGS_SCAN: usize = 512;

#[map]
static EXEC_ARGS_SCRATCH: PerCpuArray<[u8; ARGS_SCAN + PATH_LEN]> =
    PerCpuArray::with_max_entries(1, 0);
#[map]
static EXEC_SCRIPT_SCRATCH: PerCpuArray<ExecAllowKey> = PerCpuArray::with_max_entries(1, 0);

/// The lookup key and the event do not fit the 512-byte stack together.
#[map]
static EXEC_KEY_SCRATCH: PerCpuArray<ExecAllowKey> = PerCpuArray::with_max_entries(1, 0);
#[map]
static EXEC_EVENT_SCRATCH: PerCpuArray<EnforceExecEvent> = PerCpuArray::with_max_entries(1, 0);

/// Offset of the `__data_loc char[] filename` field in the tracepoint's record.
const FILENAME_LOC: usize = 8;

#[tracepoint]
pub fn enforce_sched_process_exec(ctx: TracePointContext) -> u32 {
    let Some(agent) = governed_agent() else {
        return 0;
    };
    let Some(policy) = (unsafe { AGENT_POLICIES.get(&agent) }) else {
        return 0;
    };
    let mode = policy.exec;
    if mode == enforce::MODE_OFF {
        return 0;
    }
    let revision = policy.revision;
    let Some(key) = EXEC_KEY_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: a per-CPU slot only this program uses while it runs on this CPU.
    let key = unsafe { &mut *key };
    key.agent = agent;
    key._pad = 0;
    clear_path(key);
    let loc: u32 = unsafe { ctx.read_at::<u32>(FILENAME_LOC) }.unwrap_or(0);
    let at = (loc & 0xffff) as usize;
    let source = (ctx.as_ptr() as *const u8).wrapping_add(at);
    let len = match unsafe { bpf_probe_read_kernel_str_bytes(source, &mut key.path) } {
        Ok(bytes) => bytes.len(),
        Err(_) => return 0,
    };
    let reason = match unsafe { EXEC_ALLOW.get(&*key) }.copied() {
        None => enforce::EXEC_REASON_PROGRAM,
        Some(value) if value & 0xff == enforce::EXEC_ALLOW_INTERPRETER => {
            match interpreter_verdict(agent, (value >> 8) as u8) {
                None => return 0,
                Some(reason) => reason,
            }
        }
        Some(_) => return 0,
    };
    let enforcing = mode == enforce::MODE_ENFORCE;
    if let Some(event) = EXEC_EVENT_SCRATCH.get_ptr_mut(0) {
        // SAFETY: as the key's slot.
        let event = unsafe { &mut *event };
        fill_header(
            &mut event.header,
            kind::ENFORCE_EXEC,
            core::mem::size_of::<EnforceExecEvent>(),
        );
        event.agent = agent;
        event.revision = revision;
        event.action = if enforcing {
            enforce::ACTION_BLOCKED
        } else {
            enforce::ACTION_WOULD_BLOCK
        };
        event.reason = reason;
        event.path_len = len as u32;
        let (from, to) = (
            key.path.as_ptr() as *const u64,
            event.path.as_mut_ptr() as *mut u64,
        );
        for i in 0..PATH_LEN / 8 {
            // SAFETY: both are PATH_LEN bytes, 8-byte aligned in their map values.
            unsafe { core::ptr::write_volatile(to.add(i), core::ptr::read_volatile(from.add(i))) };
        }
        submit_value_urgent(event);
    }
    if enforcing {
        // SAFETY: a helper call; it signals the current task (the new image).
        unsafe { bpf_send_signal(SIGKILL) };
    }
    0
}

/// Zeroes a key's path (the whole key is hashed). Volatile stores, so the compiler does not
/// turn the loop into a `memset` call the BPF target lacks.
#[inline(always)]
fn clear_path(key: &mut ExecAllowKey) {
    let words = key.path.as_mut_ptr() as *mut u64;
    for i in 0..PATH_LEN / 8 {
        // SAFETY: within `path` (PATH_LEN bytes, 8-byte aligned in its map value).
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
    }
}

/// Whether an allowed interpreter runs a program the policy allows, from its arguments:
/// `None` when it does (inline code, or a listed script), else the `EXEC_REASON_*`.
/// `inline` is the interpreter's inline-code option letter (`c` for `sh -c`, `e` for
/// `perl -e`), found alone or in a cluster (`-ec`). Options before the script are skipped
/// (`-o VALUE` and `-O VALUE` with their value); `--` ends them; `-` alone is standard input.
#[inline(always)]
fn interpreter_verdict(agent: u32, inline: u8) -> Option<u16> {
    const DENY_STDIN: Option<u16> = Some(enforce::EXEC_REASON_STDIN_PROGRAM);
    const DENY_SCRIPT: Option<u16> = Some(enforce::EXEC_REASON_SCRIPT);
    let task = unsafe { bpf_get_current_task() };
    let Some(mm) = kernel_read::<u64>(task + offset(enforce::OFF_TASK_MM)) else {
        return DENY_SCRIPT;
    };
    let start: u64 = kernel_read(mm + offset(enforce::OFF_MM_ARG_START)).unwrap_or(0);
    let end: u64 = kernel_read(mm + offset(enforce::OFF_MM_ARG_END)).unwrap_or(0);
    if start == 0 || end <= start {
        return DENY_SCRIPT;
    }
    let mut len = (end - start) as usize;
    let complete = len <= ARGS_SCAN;
    if len > ARGS_SCAN {
        len = ARGS_SCAN;
    }
    let buf = EXEC_ARGS_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: a per-CPU slot only this program (and its loop callback) uses while it runs on
    // this CPU.
    let buf = unsafe { &mut *buf };
    // SAFETY: reads at most ARGS_SCAN bytes into a buffer of that size.
    if unsafe { bpf_probe_read_user(buf.as_mut_ptr() as *mut _, len as u32, start as *const _) }
        != 0
    {
        return DENY_SCRIPT;
    }
    buf[len.min(ARGS_SCAN)] = 0;
    let mut scan = ArgScan {
        len: len as u32,
        inline: u32::from(inline),
        arg: 0,
        pos: 0,
        flags: 0,
        script: NO_SCRIPT,
        verdict: VERDICT_NONE,
    };
    // SAFETY: the callback reads `scan` through the pointer only while bpf_loop runs.
    unsafe {
        bpf_loop(
            ARGS_SCAN as u32,
            scan_arg_byte as *mut core::ffi::c_void,
            &mut scan as *mut ArgScan as *mut core::ffi::c_void,
            0,
        )
    };
    match scan.verdict {
        VERDICT_INLINE => return None,
        VERDICT_STDIN => return DENY_STDIN,
        _ => {}
    }
    if scan.script == NO_SCRIPT {
        // No script among the arguments read: standard input, unless the list was cut.
        return if complete { DENY_STDIN } else { DENY_SCRIPT };
    }
    let script = scan.script as usize;
    if script >= len {
        return DENY_SCRIPT;
    }
    let key = EXEC_SCRIPT_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: as `buf`.
    let key = unsafe { &mut *key };
    key.agent = agent;
    key._pad = 0;
    clear_path(key);
    // The buffer has a NUL at `len` (and room for a whole path after it), so the copy stops
    // inside it.
    let source = buf.as_ptr().wrapping_add(script & (ARGS_SCAN - 1));
    let Ok(copied) = (unsafe { bpf_probe_read_kernel_str_bytes(source, &mut key.path) }) else {
        return DENY_SCRIPT;
    };
    // A script cut by the end of what was read, or longer than a rule can be, is unknown.
    if (!complete && script + copied.len() >= len) || copied.len() >= PATH_LEN - 1 {
        return DENY_SCRIPT;
    }
    if unsafe { EXEC_ALLOW.get(&*key) }.is_some() {
        None
    } else {
        DENY_SCRIPT
    }
}

const NO_SCRIPT: u32 = u32::MAX;
const VERDICT_NONE: u32 = 0;
/// Inline code: allowed.
const VERDICT_INLINE: u32 = 1;
/// `-` alone: the program comes from standard input.
const VERDICT_STDIN: u32 = 2;
/// `ArgScan::flags`.
const OPTION: u32 = 1;
const LONG_OPTION: u32 = 2;
const TAKES_VALUE: u32 = 4;
const SKIP_NEXT: u32 = 8;
const SKIPPING: u32 = 16;
const OPTIONS_DONE: u32 = 32;

/// State of the argument scan, shared with [`scan_arg_byte`] through `bpf_loop` (the verifier
/// checks the per-byte step once, not once per byte: a plain loop over the arguments with this
/// much state exceeds its budget).
#[repr(C)]
struct ArgScan {
    len: u32,
    inline: u32,
    /// Index of the argument the scan is in, and the position in it.
    arg: u32,
    pos: u32,
    flags: u32,
    /// Offset of the first non-option argument, or `NO_SCRIPT`.
    script: u32,
    verdict: u32,
}

/// One byte of the interpreter's NUL-separated argv; returns 1 to stop the loop.
#[inline(never)]
unsafe extern "C" fn scan_arg_byte(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: `ctx` is the `ArgScan` bpf_loop was given.
    let scan = unsafe { &mut *(ctx as *mut ArgScan) };
    if index >= u64::from(scan.len) {
        return 1;
    }
    let Some(buf) = EXEC_ARGS_SCRATCH.get_ptr(0) else {
        return 1;
    };
    // SAFETY: the per-CPU slot the program filled; the index is masked into it.
    let b = unsafe { (*buf)[index as usize & (ARGS_SCAN - 1)] };
    if b == 0 {
        if scan.arg >= 1 && scan.flags & OPTION != 0 {
            if scan.pos == 1 {
                scan.verdict = VERDICT_STDIN;
                return 1;
            }
            if scan.pos == 2 && scan.flags & LONG_OPTION != 0 {
                scan.flags |= OPTIONS_DONE;
            }
            if scan.pos == 2 && scan.flags & TAKES_VALUE != 0 {
                scan.flags |= SKIP_NEXT;
            }
        }
        scan.arg += 1;
        scan.pos = 0;
        scan.flags &= SKIP_NEXT | OPTIONS_DONE;
        return 0;
    }
    if scan.arg >= 1 && scan.pos == 0 {
        if scan.flags & SKIP_NEXT != 0 {
            scan.flags = (scan.flags & !SKIP_NEXT) | SKIPPING;
        } else if scan.flags & OPTIONS_DONE == 0 && (b == b'-' || b == b'+') {
            scan.flags |= OPTION;
        } else {
            scan.script = index as u32;
            return 1;
        }
    } else if scan.flags & OPTION != 0 && scan.flags & SKIPPING == 0 {
        if scan.pos == 1 {
            if b == b'-' {
                scan.flags |= LONG_OPTION;
            }
            if b == b'o' || b == b'O' {
                scan.flags |= TAKES_VALUE;
            }
        }
        if scan.flags & LONG_OPTION == 0 && u32::from(b) == scan.inline {
            scan.verdict = VERDICT_INLINE;
            return 1;
        }
    }
    scan.pos += 1;
    0
}
