//! The collector's own output and its consumers.
//!
//! Whoever reads the collector's output (`collect --json | cat`, a log shipper tailing the file
//! it is redirected to) would otherwise be captured reading JSON, which the collector prints,
//! which is read again: a loop that grows without end. So the kernel knows the file objects
//! that carry collector output (`OUTPUTS`, seeded by the collector), a process that reads one
//! becomes a consumer (`CONSUMERS`) whose payloads are no longer captured, and whatever pipe or
//! file a consumer writes to carries collector output too (`| jq . | cat`). Fds are resolved to
//! their file by [`crate::fd_file`]. Only pipes and regular files are followed: what is written
//! to a socket or terminal is read by the other side, not from the same object.
//!
//! Hooks: the vectored, positioned and zero-copy reads and writes (`readv`, `pread64`,
//! `splice`, `sendfile64`, ...); plain `read` and `write` call in from [`crate::socket_io`],
//! and `readv`/`writev` call on into it for their payloads.

use agentscope_common::{config, Consumer, FileId};
use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_ktime_get_boot_ns},
    macros::{map, tracepoint},
    maps::{HashMap, LruHashMap},
    programs::TracePointContext,
};

use crate::fd_file::{fd_file, fd_file_id, S_IFIFO};
use crate::task::{config, current_ids, tp_arg};

/// File objects (pipes, regular files) that carry the collector's output: its stdout, stderr
/// and output files (put here by the collector), and whatever a consumer writes to.
#[map]
static OUTPUTS: LruHashMap<FileId, u8> = LruHashMap::with_max_entries(65536, 0);

/// Processes that read from an `OUTPUTS` object: their payloads are not captured (the
/// collector must never capture what its own output produces).
/// Not an LRU: a consumer must not turn back into a captured process because others crowded
/// it out. Removed at exit (into `CONSUMERS_GONE`).
#[map]
static CONSUMERS: HashMap<u32, Consumer> = HashMap::with_max_entries(16384, 0);

/// Consumers that have exited, kept for the collector's report.
#[map]
static CONSUMERS_GONE: LruHashMap<u32, Consumer> = LruHashMap::with_max_entries(4096, 0);

#[inline(always)]
pub(crate) fn is_consumer(tgid: u32) -> bool {
    unsafe { CONSUMERS.get(&tgid) }.is_some()
}

/// The process has exited: it is no longer a consumer, but stays in the collector's report.
#[inline(always)]
pub(crate) fn forget_consumer(tgid: u32) {
    if let Some(consumer) = unsafe { CONSUMERS.get(&tgid) }.copied() {
        let _ = CONSUMERS_GONE.insert(&tgid, &consumer, 0);
        let _ = CONSUMERS.remove(&tgid);
    }
}

/// A read from `fd` is about to happen: reading collector output makes a consumer.
#[inline(always)]
pub(crate) fn note_output_read(fd: i32) {
    let (tgid, _) = current_ids();
    if tgid as u64 == config(config::SELF_TGID) || is_consumer(tgid) {
        return;
    }
    let Some(id) = fd_file_id(fd) else {
        return;
    };
    if unsafe { OUTPUTS.get(&id) }.is_some() {
        let consumer = Consumer {
            comm: bpf_get_current_comm().unwrap_or([0; 16]),
            since_ns: unsafe { bpf_ktime_get_boot_ns() },
        };
        let _ = CONSUMERS.insert(&tgid, &consumer, 0);
        // What it prints carries collector output, whoever else writes there too (the
        // children `xargs` starts write to its stdout).
        for fd in [1, 2] {
            if let Some(id) = fd_file_id(fd) {
                let _ = OUTPUTS.insert(&id, &1, 0);
            }
        }
    }
}

/// Whether `fd` of the current process is a pipe or file that carries collector output: what
/// is written to or read from it is not captured.
#[inline(always)]
pub(crate) fn is_output(fd: i32) -> bool {
    match fd_file_id(fd) {
        Some(id) => unsafe { OUTPUTS.get(&id) }.is_some(),
        None => false,
    }
}

/// `O_APPEND`: how log writers (container runtimes, shippers, `>>`) open their files.
const O_APPEND: u32 = 0o2000;

/// A write to `fd` is about to happen: what a consumer writes carries collector output when
/// it goes to a pipe, to its stdout or stderr, or is appended to a file (a log). A file it
/// rewrites whole (a config or a script it generates) is not followed: a harness that reads
/// the collector's output and then writes an agent's files would otherwise hide that agent.
#[inline(always)]
pub(crate) fn note_output_write(fd: i32) {
    let (tgid, _) = current_ids();
    if !is_consumer(tgid) {
        return;
    }
    if let Some(file) = fd_file(fd) {
        if file.file_type == S_IFIFO || fd <= 2 || file.flags & O_APPEND != 0 {
            let _ = OUTPUTS.insert(&file.id, &1, 0);
        }
    }
}

#[tracepoint]
pub fn sys_enter_readv(ctx: TracePointContext) -> u32 {
    note_output_read(tp_arg::<i64>(&ctx, 0) as i32);
    crate::socket_io::vectored_enter(
        tp_arg::<i64>(&ctx, 0) as i32,
        tp_arg(&ctx, 1),
        tp_arg(&ctx, 2),
        agentscope_common::direction::INGRESS,
    );
    0
}

#[tracepoint]
pub fn sys_enter_pread64(ctx: TracePointContext) -> u32 {
    note_output_read(tp_arg::<i64>(&ctx, 0) as i32);
    0
}

#[tracepoint]
pub fn sys_enter_preadv(ctx: TracePointContext) -> u32 {
    note_output_read(tp_arg::<i64>(&ctx, 0) as i32);
    0
}

#[tracepoint]
pub fn sys_enter_writev(ctx: TracePointContext) -> u32 {
    note_output_write(tp_arg::<i64>(&ctx, 0) as i32);
    crate::socket_io::vectored_enter(
        tp_arg::<i64>(&ctx, 0) as i32,
        tp_arg(&ctx, 1),
        tp_arg(&ctx, 2),
        agentscope_common::direction::EGRESS,
    );
    crate::tls_rustls::records_written(
        tp_arg::<i64>(&ctx, 0) as i32,
        tp_arg(&ctx, 1),
        tp_arg(&ctx, 2),
    );
    0
}

#[tracepoint]
pub fn sys_enter_pwrite64(ctx: TracePointContext) -> u32 {
    note_output_write(tp_arg::<i64>(&ctx, 0) as i32);
    0
}

#[tracepoint]
pub fn sys_enter_pwritev(ctx: TracePointContext) -> u32 {
    note_output_write(tp_arg::<i64>(&ctx, 0) as i32);
    0
}

/// splice(fd_in, off_in, fd_out, off_out, len, flags); copy_file_range has the same layout.
#[tracepoint]
pub fn sys_enter_splice(ctx: TracePointContext) -> u32 {
    note_output_read(tp_arg::<i64>(&ctx, 0) as i32);
    note_output_write(tp_arg::<i64>(&ctx, 2) as i32);
    0
}

#[tracepoint]
pub fn sys_enter_copy_file_range(ctx: TracePointContext) -> u32 {
    note_output_read(tp_arg::<i64>(&ctx, 0) as i32);
    note_output_write(tp_arg::<i64>(&ctx, 2) as i32);
    0
}

/// sendfile64(out_fd, in_fd, offset, count); tee(fd_in, fd_out, len, flags).
#[tracepoint]
pub fn sys_enter_sendfile64(ctx: TracePointContext) -> u32 {
    note_output_read(tp_arg::<i64>(&ctx, 1) as i32);
    note_output_write(tp_arg::<i64>(&ctx, 0) as i32);
    0
}

#[tracepoint]
pub fn sys_enter_tee(ctx: TracePointContext) -> u32 {
    note_output_read(tp_arg::<i64>(&ctx, 0) as i32);
    note_output_write(tp_arg::<i64>(&ctx, 1) as i32);
    0
}
