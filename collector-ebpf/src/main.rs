//! agentscope's kernel programs.
//!
//! Only tracepoints, raw tracepoints and uprobes: kprobes are not compiled into the kernels we
//! target and fentry/fexit/LSM loads are refused there. Syscall tracepoints stash their arguments
//! per thread on entry and emit one record on exit, when the result is known. Payloads (TLS
//! plaintext at the OpenSSL API, plain socket reads and writes, JSON over pipes) are split into
//! `CHUNK_LEN` records; whatever cannot be delivered is counted, never silently cut.
#![no_std]
#![no_main]

use agentscope_common::{
    config, data_flags, direction, exec_flags, exit_flags, kind, open_syscall, source, stat,
    CloseEvent, Consumer, DataEvent, DnsEvent, EventHeader, ExecEvent, ExitEvent, FileId,
    ForkEvent, OpenEvent, SockAddrEvent, TcpStateEvent, ARGV_LEN, ARG_READ_LEN, CHUNK_LEN,
    DATA_PREFIX_LEN, DNS_LEN, MAX_ARGS, MAX_CHUNKS, PATH_LEN,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_uid_gid, bpf_ktime_get_boot_ns, bpf_probe_read_kernel, bpf_probe_read_user,
        generated::{
            bpf_get_current_task, bpf_loop, bpf_probe_read_user as raw_read_user,
            bpf_probe_read_user_str, bpf_ringbuf_output,
        },
    },
    macros::{map, tracepoint, uprobe, uretprobe},
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::{ProbeContext, RetProbeContext, TracePointContext},
};

// ---------------------------------------------------------------------------------------------
// Maps
// ---------------------------------------------------------------------------------------------

/// Default size; the collector may resize it before load.
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(64 * 1024 * 1024, 0);

#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

#[map]
static CONFIG: Array<u64> = Array::with_max_entries(config::COUNT, 0);

/// tgids to trace when `config::FILTER_PIDS` is set; children are added as they fork.
#[map]
static TARGETS: HashMap<u32, u8> = HashMap::with_max_entries(16384, 0);

/// tgid → parent tgid, seeded from /proc by the collector and kept by fork/exit.
#[map]
static PARENTS: LruHashMap<u32, u32> = LruHashMap::with_max_entries(131072, 0);

/// Exec being prepared, keyed by tgid (a successful exec may change the calling thread's id).
#[map]
static EXEC_PENDING: HashMap<u32, ExecEvent> = HashMap::with_max_entries(4096, 0);

#[map]
static EXEC_SCRATCH: PerCpuArray<ExecEvent> = PerCpuArray::with_max_entries(1, 0);

#[map]
static EXIT_CODES: LruHashMap<u32, i32> = LruHashMap::with_max_entries(16384, 0);

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

#[map]
static OPEN_SCRATCH: PerCpuArray<OpenEvent> = PerCpuArray::with_max_entries(1, 0);

#[repr(C)]
#[derive(Clone, Copy)]
struct SockArgs {
    addr: u64,
    /// accept: pointer to the address length.
    addrlen_ptr: u64,
    fd: i32,
    /// connect: the address length passed in.
    addrlen: i32,
    kind: u32,
    _pad: u32,
}

#[map]
static SOCK_PENDING: HashMap<u32, SockArgs> = HashMap::with_max_entries(16384, 0);

#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
struct SockKey {
    tgid: u32,
    fd: i32,
}

/// Socket flags kept in `SOCKS`.
const SOCK_TLS: u32 = 1;
const SOCK_SEEN_PAYLOAD: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy)]
struct SockState {
    flags: u32,
    dport: u16,
    family: u16,
}

/// Sockets whose payloads are captured: those connected or accepted while tracing (and any the
/// collector seeds from /proc).
#[map]
static SOCKS: LruHashMap<SockKey, SockState> = LruHashMap::with_max_entries(65536, 0);

#[repr(C)]
#[derive(Clone, Copy)]
struct IoArgs {
    buf: u64,
    fd: i32,
    direction: u32,
    /// Destination port given to sendto(), 0 if none.
    dport: u16,
    _pad: u16,
    /// Non-zero: the fd is a tracked pipe or socketpair, not an inet socket.
    pipe: u32,
}

#[map]
static IO_PENDING: HashMap<u32, IoArgs> = HashMap::with_max_entries(16384, 0);

/// Pipe flags kept in `PIPES`.
/// The fd has carried a buffer that starts like JSON: its reads and writes are captured.
const PIPE_JSON_SEEN: u32 = 1;
/// The fd is closed by a successful exec (`O_CLOEXEC`, `F_DUPFD_CLOEXEC`, `FD_CLOEXEC`).
const PIPE_CLOEXEC: u32 = 2;
/// An `AF_UNIX` socketpair rather than a pipe (libuv, so Node, gives children those as stdio).
const PIPE_SOCKETPAIR: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy)]
struct PipeState {
    flags: u32,
    _pad: u32,
}

/// Pipe and socketpair ends held by traced processes, keyed like `SOCKS`. An entry exists only
/// for an fd the process really holds: made by pipe/pipe2/socketpair, copied by dup/dup2/dup3/
/// fcntl(F_DUPFD), or inherited at fork (fds below `INHERITED_FDS`); removed by close,
/// close_range, exec (close-on-exec ends) and any open/accept that returns the same number.
#[map]
static PIPES: LruHashMap<SockKey, PipeState> = LruHashMap::with_max_entries(65536, 0);

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

#[repr(C)]
#[derive(Clone, Copy)]
struct SslArgs {
    ssl: u64,
    buf: u64,
    /// `_ex` variants: where OpenSSL stores the byte count; 0 for the plain variants.
    len_ptr: u64,
    /// Bytes the caller asked for: a reported length beyond it is not trusted.
    num: u64,
    /// Socket fd seen in a syscall nested in this call, -1 until then.
    fd: i32,
    direction: u32,
}

#[map]
static SSL_PENDING: HashMap<u32, SslArgs> = HashMap::with_max_entries(16384, 0);

/// `SSL*` → socket fd, learned from nested syscalls, for calls that make none (buffered reads).
#[map]
static SSL_FDS: LruHashMap<u64, i32> = LruHashMap::with_max_entries(65536, 0);

#[map]
static DATA_SCRATCH: PerCpuArray<DataEvent> = PerCpuArray::with_max_entries(1, 0);

#[map]
static DNS_SCRATCH: PerCpuArray<DnsEvent> = PerCpuArray::with_max_entries(1, 0);

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

/// With a pid filter: TCP sockets (by `struct sock` address) of the traced processes, so state
/// changes made in softirq context (on behalf of no particular process) are still attributed.
#[map]
static TRACED_SOCKS: LruHashMap<u64, u8> = LruHashMap::with_max_entries(65536, 0);

/// With a pid filter: ports the traced processes listen on; sockets accepted on them are theirs.
#[map]
static TRACED_PORTS: LruHashMap<u16, u8> = LruHashMap::with_max_entries(4096, 0);

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const AF_UNIX: u16 = 1;
const CLONE_THREAD: u64 = 0x0001_0000;
const CLONE_PARENT: u64 = 0x0000_8000;
const EINPROGRESS: i64 = 115;
const DNS_PORT: u16 = 53;
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
const INHERITED_FDS: u32 = 64;
/// Bytes of a pipe buffer inspected for the start of JSON.
const JSON_PROBE_LEN: usize = 16;

#[inline(always)]
fn config(index: u32) -> u64 {
    CONFIG.get(index).copied().unwrap_or(0)
}

#[inline(always)]
fn bump(index: u32, by: u64) {
    if let Some(counter) = STATS.get_ptr_mut(index) {
        // Per-CPU slot: no other writer while this program runs on this CPU.
        unsafe { *counter += by };
    }
}

/// The collector is stopping: nothing more is emitted, so its last drain ends.
#[inline(always)]
fn stopping() -> bool {
    config(config::STOPPING) != 0
}

/// Whether activity of this process is traced: never the collector itself, and only the
/// targets (and their descendants) when a pid filter is set.
#[inline(always)]
fn traced(tgid: u32) -> bool {
    if tgid as u64 == config(config::SELF_TGID) {
        return false;
    }
    if config(config::FILTER_PIDS) != 0 {
        return unsafe { TARGETS.get(&tgid) }.is_some();
    }
    true
}

#[inline(always)]
fn current_ids() -> (u32, u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    ((pid_tgid >> 32) as u32, pid_tgid as u32)
}

#[inline(always)]
fn fill_header(header: &mut EventHeader, event_kind: u32, size: usize) {
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

/// Writes `size` bytes at `record` to the ring buffer, counting the outcome.
#[inline(always)]
fn submit<T>(record: *const T, size: usize) -> bool {
    if stopping() {
        return false;
    }
    let ret = unsafe {
        bpf_ringbuf_output(
            core::ptr::addr_of!(EVENTS) as *mut core::ffi::c_void,
            record as *mut core::ffi::c_void,
            size as u64,
            0,
        )
    };
    if ret == 0 {
        bump(stat::EMITTED, 1);
        true
    } else {
        bump(stat::DROPPED, 1);
        false
    }
}

/// Emits a fixed-size record built on the stack.
#[inline(always)]
fn submit_value<T>(record: &T) -> bool {
    submit(record as *const T, core::mem::size_of::<T>())
}

#[inline(always)]
fn tp_arg<T>(ctx: &TracePointContext, index: usize) -> T {
    // Syscall tracepoints: 8 bytes of common fields and syscall nr, then one u64 per argument.
    unsafe { ctx.read_at::<T>(16 + 8 * index) }.unwrap_or_else(|_| unsafe { core::mem::zeroed() })
}

#[inline(always)]
fn tp_ret(ctx: &TracePointContext) -> i64 {
    tp_arg::<i64>(ctx, 0)
}

/// Reads a sockaddr from user memory into (family, port in host order, address bytes).
#[inline(always)]
fn read_sockaddr(addr: u64) -> Option<(u16, u16, [u8; 16])> {
    if addr == 0 {
        return None;
    }
    let family: u16 = unsafe { bpf_probe_read_user(addr as *const u16) }.ok()?;
    let mut bytes = [0u8; 16];
    match family {
        AF_INET => {
            let raw: [u8; 8] = unsafe { bpf_probe_read_user(addr as *const [u8; 8]) }.ok()?;
            let port = u16::from_be_bytes([raw[2], raw[3]]);
            bytes[..4].copy_from_slice(&raw[4..8]);
            Some((family, port, bytes))
        }
        AF_INET6 => {
            let raw: [u8; 24] = unsafe { bpf_probe_read_user(addr as *const [u8; 24]) }.ok()?;
            let port = u16::from_be_bytes([raw[2], raw[3]]);
            bytes.copy_from_slice(&raw[8..24]);
            Some((family, port, bytes))
        }
        AF_UNIX => {
            let raw: [u8; 18] = unsafe { bpf_probe_read_user(addr as *const [u8; 18]) }.ok()?;
            bytes.copy_from_slice(&raw[2..18]);
            Some((family, 0, bytes))
        }
        _ => Some((family, 0, bytes)),
    }
}

/// State shared with [`emit_chunk`] through `bpf_loop`.
#[repr(C)]
struct ChunkLoop {
    buf: u64,
    deliverable: u64,
    beyond: u64,
    /// `direction::*` of the call, for the loss counters.
    dir: u64,
}

/// Counts payload bytes not delivered, in total and for their direction.
#[inline(always)]
fn count_lost(dir: u64, bytes: u64) {
    bump(stat::LOST_BYTES, bytes);
    if dir == direction::EGRESS as u64 {
        bump(stat::LOST_EGRESS_BYTES, bytes);
    } else {
        bump(stat::LOST_INGRESS_BYTES, bytes);
    }
}

/// Splits `total_len` bytes at `buf` into `DataEvent` records.
///
/// The chunks are emitted by `bpf_loop` (Linux 5.17+), so the verifier checks the chunk body
/// once rather than once per possible chunk; a plain loop over 96 chunks exceeds its budget.
#[inline(always)]
fn emit_payload(source_kind: u32, dir: u32, fd: i32, conn_id: u64, buf: u64, total_len: u64) {
    if stopping() {
        return;
    }
    let (tgid, _) = current_ids();
    if unsafe { CONSUMERS.get(&tgid) }.is_some() {
        bump(stat::CONSUMER_BYTES, total_len);
        return;
    }
    let Some(event) = DATA_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let event = unsafe { &mut *event };
    let capacity = CHUNK_LEN as u64 * MAX_CHUNKS as u64;
    let beyond = total_len.saturating_sub(capacity);
    fill_header(&mut event.header, kind::DATA, DATA_PREFIX_LEN);
    event.source = source_kind;
    event.direction = dir;
    event.fd = fd;
    event.conn_id = conn_id;
    event.call_id = event.header.ts_ns ^ ((event.header.tid as u64) << 40);
    event.total_len = total_len;
    event.lost_bytes = 0;
    let mut state = ChunkLoop {
        buf,
        deliverable: total_len - beyond,
        beyond,
        dir: dir as u64,
    };
    unsafe {
        bpf_loop(
            MAX_CHUNKS,
            emit_chunk as *mut core::ffi::c_void,
            &mut state as *mut ChunkLoop as *mut core::ffi::c_void,
            0,
        )
    };
    if beyond > 0 {
        count_lost(dir as u64, beyond);
    }
}

/// One chunk of [`emit_payload`]; returns 1 to stop the loop.
#[inline(never)]
unsafe extern "C" fn emit_chunk(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    let state = unsafe { &*(ctx as *const ChunkLoop) };
    if stopping() {
        return 1;
    }
    let Some(event) = DATA_SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    let event = unsafe { &mut *event };
    let offset = index * CHUNK_LEN as u64;
    if offset >= state.deliverable {
        return 1;
    }
    let mut len = state.deliverable - offset;
    if len > CHUNK_LEN as u64 {
        len = CHUNK_LEN as u64;
        event.flags = 0;
    } else {
        event.flags = data_flags::LAST;
        event.lost_bytes += state.beyond;
    }
    let len = len as usize & (2 * CHUNK_LEN - 1);
    if len > CHUNK_LEN {
        return 1;
    }
    event.header.size = (DATA_PREFIX_LEN + len) as u32;
    event.header.ts_ns = unsafe { bpf_ktime_get_boot_ns() };
    event.offset = offset;
    event.seq = index as u32;
    event.data_len = len as u32;
    let read = unsafe {
        raw_read_user(
            event.data.as_mut_ptr() as *mut core::ffi::c_void,
            len as u32,
            (state.buf + offset) as *const core::ffi::c_void,
        )
    };
    if read != 0 || !submit(event as *const DataEvent, DATA_PREFIX_LEN + len) {
        event.lost_bytes += len as u64;
        count_lost(state.dir, len as u64);
    }
    0
}

#[inline(always)]
fn emit_dns(fd: i32, dport: u16, buf: u64, len: u64) {
    let Some(event) = DNS_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let event = unsafe { &mut *event };
    fill_header(
        &mut event.header,
        kind::DNS,
        core::mem::size_of::<DnsEvent>(),
    );
    event.fd = fd;
    event.dport = dport;
    event.len = len as u32;
    let mut copy = len;
    if copy > DNS_LEN as u64 {
        copy = DNS_LEN as u64;
    }
    if copy == 0 {
        return;
    }
    let read = unsafe {
        raw_read_user(
            event.data.as_mut_ptr() as *mut core::ffi::c_void,
            copy as u32,
            buf as *const core::ffi::c_void,
        )
    };
    if read == 0 {
        submit(event as *const DnsEvent, core::mem::size_of::<DnsEvent>());
    }
}

// ---------------------------------------------------------------------------------------------
// The collector's own output and its consumers
// ---------------------------------------------------------------------------------------------
//
// Whoever reads the collector's output (`collect --json | cat`, a log shipper tailing the file
// it is redirected to) would otherwise be captured reading JSON, which the collector prints,
// which is read again: a loop that grows without end. So the kernel knows the file objects
// that carry collector output (`OUTPUTS`, seeded by the collector), a process that reads one
// becomes a consumer (`CONSUMERS`) whose payloads are no longer captured, and whatever pipe or
// file a consumer writes to carries collector output too (`| jq . | cat`). Fds are resolved to
// their file through kernel structs at offsets the collector reads from the kernel's BTF (Rust
// BPF has no CO-RE field access). Only pipes and regular files are followed: what is written
// to a socket or terminal is read by the other side, not from the same object.

const S_IFMT: u16 = 0o170000;
const S_IFIFO: u16 = 0o010000;
const S_IFREG: u16 = 0o100000;

#[inline(always)]
fn kernel_read<T>(addr: u64) -> Option<T> {
    unsafe { bpf_probe_read_kernel(addr as *const T) }.ok()
}

/// A pipe or regular file an fd refers to.
struct OpenFile {
    id: FileId,
    /// `S_IFIFO` or `S_IFREG`.
    file_type: u16,
    /// `file->f_flags` (`O_APPEND`, ...).
    flags: u32,
}

/// The pipe or regular file behind `fd` of the current process
/// (`task->files->fdt->fd[fd]->f_inode`), by device and inode.
#[inline(always)]
fn fd_file_id(fd: i32) -> Option<FileId> {
    fd_file(fd).map(|file| file.id)
}

#[inline(always)]
fn fd_file(fd: i32) -> Option<OpenFile> {
    if fd < 0 || config(config::OUTPUT_TRACKING) == 0 {
        return None;
    }
    let task = unsafe { bpf_get_current_task() };
    let files: u64 = kernel_read(task + config(config::OFF_TASK_FILES))?;
    if files == 0 {
        return None;
    }
    let fdt: u64 = kernel_read(files + config(config::OFF_FILES_FDT))?;
    let max_fds: u32 = kernel_read(fdt + config(config::OFF_FDTABLE_MAX_FDS))?;
    if fd as u32 >= max_fds {
        return None;
    }
    let fds: u64 = kernel_read(fdt + config(config::OFF_FDTABLE_FD))?;
    let file: u64 = kernel_read(fds + 8 * fd as u64)?;
    if file == 0 {
        return None;
    }
    let inode: u64 = kernel_read(file + config(config::OFF_FILE_INODE))?;
    let mode: u16 = kernel_read(inode + config(config::OFF_INODE_MODE))?;
    let file_type = mode & S_IFMT;
    if file_type != S_IFIFO && file_type != S_IFREG {
        return None;
    }
    let ino: u64 = kernel_read(inode + config(config::OFF_INODE_INO))?;
    let sb: u64 = kernel_read(inode + config(config::OFF_INODE_SB))?;
    let dev: u32 = kernel_read(sb + config(config::OFF_SB_DEV))?;
    let flags: u32 = kernel_read(file + config(config::OFF_FILE_FLAGS))?;
    Some(OpenFile {
        id: FileId { dev, _pad: 0, ino },
        file_type,
        flags,
    })
}

#[inline(always)]
fn is_consumer(tgid: u32) -> bool {
    unsafe { CONSUMERS.get(&tgid) }.is_some()
}

/// A read from `fd` is about to happen: reading collector output makes a consumer.
#[inline(always)]
fn note_output_read(fd: i32) {
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
fn is_output(fd: i32) -> bool {
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
fn note_output_write(fd: i32) {
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

// ---------------------------------------------------------------------------------------------
// Process lifecycle
// ---------------------------------------------------------------------------------------------

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
        submit(event as *const ExecEvent, core::mem::size_of::<ExecEvent>());
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
    if let Some(consumer) = unsafe { CONSUMERS.get(&tgid) }.copied() {
        let _ = CONSUMERS_GONE.insert(&tgid, &consumer, 0);
        let _ = CONSUMERS.remove(&tgid);
    }
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

// ---------------------------------------------------------------------------------------------
// File access
// ---------------------------------------------------------------------------------------------

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
    let Some(event) = OPEN_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let event = unsafe { &mut *event };
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
    submit(event as *const OpenEvent, core::mem::size_of::<OpenEvent>());
}

#[tracepoint]
pub fn sys_exit_open(ctx: TracePointContext) -> u32 {
    open_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit_openat(ctx: TracePointContext) -> u32 {
    open_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit_openat2(ctx: TracePointContext) -> u32 {
    open_exit(&ctx);
    0
}

// ---------------------------------------------------------------------------------------------
// Network: connect, accept, close, TCP state
// ---------------------------------------------------------------------------------------------

#[tracepoint]
pub fn sys_enter_connect(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current_ids();
    if !traced(tgid) {
        return 0;
    }
    let args = SockArgs {
        fd: tp_arg::<i64>(&ctx, 0) as i32,
        addr: tp_arg(&ctx, 1),
        addrlen: tp_arg::<i64>(&ctx, 2) as i32,
        addrlen_ptr: 0,
        kind: kind::CONNECT,
        _pad: 0,
    };
    let _ = SOCK_PENDING.insert(&tid, &args, 0);
    0
}

#[inline(always)]
fn accept_enter(ctx: &TracePointContext) {
    let (tgid, tid) = current_ids();
    if !traced(tgid) {
        return;
    }
    let args = SockArgs {
        fd: tp_arg::<i64>(ctx, 0) as i32,
        addr: tp_arg(ctx, 1),
        addrlen_ptr: tp_arg(ctx, 2),
        addrlen: 0,
        kind: kind::ACCEPT,
        _pad: 0,
    };
    let _ = SOCK_PENDING.insert(&tid, &args, 0);
}

#[tracepoint]
pub fn sys_enter_accept(ctx: TracePointContext) -> u32 {
    accept_enter(&ctx);
    0
}

#[tracepoint]
pub fn sys_enter_accept4(ctx: TracePointContext) -> u32 {
    accept_enter(&ctx);
    0
}

#[inline(always)]
fn sock_exit(ctx: &TracePointContext) {
    let (tgid, tid) = current_ids();
    let Some(args) = (unsafe { SOCK_PENDING.get(&tid) }).copied() else {
        return;
    };
    let _ = SOCK_PENDING.remove(&tid);
    let ret = tp_ret(ctx);
    let mut event: SockAddrEvent = unsafe { core::mem::zeroed() };
    fill_header(
        &mut event.header,
        args.kind,
        core::mem::size_of::<SockAddrEvent>(),
    );
    event.fd = args.fd;
    event.ret = ret as i32;
    if let Some((family, port, addr)) = read_sockaddr(args.addr) {
        event.family = family;
        event.port = port;
        event.addr = addr;
    }
    let usable = if args.kind == kind::CONNECT {
        ret == 0 || ret == -EINPROGRESS
    } else {
        ret >= 0
    };
    if args.kind == kind::ACCEPT && ret >= 0 {
        forget_pipe(tgid, ret as i32);
    }
    if usable && (event.family == AF_INET || event.family == AF_INET6) {
        let fd = if args.kind == kind::CONNECT {
            args.fd
        } else {
            ret as i32
        };
        let key = SockKey { tgid, fd };
        let state = SockState {
            flags: 0,
            dport: event.port,
            family: event.family,
        };
        let _ = SOCKS.insert(&key, &state, 0);
    }
    submit_value(&event);
}

#[tracepoint]
pub fn sys_exit_connect(ctx: TracePointContext) -> u32 {
    sock_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit_accept(ctx: TracePointContext) -> u32 {
    sock_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit_accept4(ctx: TracePointContext) -> u32 {
    sock_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_enter_close(ctx: TracePointContext) -> u32 {
    let (tgid, _) = current_ids();
    let fd = tp_arg::<i64>(&ctx, 0) as i32;
    let key = SockKey { tgid, fd };
    let socket = unsafe { SOCKS.get(&key) }.is_some();
    if socket {
        let _ = SOCKS.remove(&key);
    }
    // A pipe whose data was captured ends its stream here; other pipe ends close silently.
    let json_pipe = match unsafe { PIPES.get(&key) } {
        Some(state) => {
            let seen = state.flags & PIPE_JSON_SEEN != 0;
            let _ = PIPES.remove(&key);
            seen
        }
        None => false,
    };
    if !(socket || json_pipe) || !traced(tgid) {
        return 0;
    }
    let mut event: CloseEvent = unsafe { core::mem::zeroed() };
    fill_header(
        &mut event.header,
        kind::CLOSE,
        core::mem::size_of::<CloseEvent>(),
    );
    event.fd = fd;
    submit_value(&event);
    0
}

#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    let (tgid, _) = current_ids();
    if tgid as u64 == config(config::SELF_TGID) {
        return 0;
    }
    let skaddr = unsafe { ctx.read_at::<u64>(8) }.unwrap_or(0);
    let newstate = unsafe { ctx.read_at::<i32>(20) }.unwrap_or(0);
    if config(config::FILTER_PIDS) != 0 && !traced_socket(tgid, &ctx, skaddr, newstate) {
        return 0;
    }
    let mut event: TcpStateEvent = unsafe { core::mem::zeroed() };
    fill_header(
        &mut event.header,
        kind::TCP_STATE,
        core::mem::size_of::<TcpStateEvent>(),
    );
    unsafe {
        event.skaddr = ctx.read_at::<u64>(8).unwrap_or(0);
        event.oldstate = ctx.read_at::<i32>(16).unwrap_or(0);
        event.newstate = ctx.read_at::<i32>(20).unwrap_or(0);
        event.sport = ctx.read_at::<u16>(24).unwrap_or(0);
        event.dport = ctx.read_at::<u16>(26).unwrap_or(0);
        event.family = ctx.read_at::<u16>(28).unwrap_or(0);
        event.protocol = ctx.read_at::<u16>(30).unwrap_or(0);
        if event.family == AF_INET6 {
            event.saddr = ctx.read_at::<[u8; 16]>(40).unwrap_or([0; 16]);
            event.daddr = ctx.read_at::<[u8; 16]>(56).unwrap_or([0; 16]);
        } else {
            let s = ctx.read_at::<[u8; 4]>(32).unwrap_or([0; 4]);
            let d = ctx.read_at::<[u8; 4]>(36).unwrap_or([0; 4]);
            event.saddr[..4].copy_from_slice(&s);
            event.daddr[..4].copy_from_slice(&d);
        }
    }
    submit_value(&event);
    0
}

const TCP_SYN_SENT: i32 = 2;
const TCP_FIN_WAIT1: i32 = 4;
const TCP_CLOSE: i32 = 7;
const TCP_LAST_ACK: i32 = 9;
const TCP_LISTEN: i32 = 10;

/// With a pid filter, whether a TCP state change belongs to the traced tree. Many changes
/// happen in softirq context, where the current task is whoever was interrupted, so sockets
/// are attributed by address: a socket is the tree's once a traced process moves it into a
/// state only a system call makes (connect: SYN_SENT, listen: LISTEN, close or shutdown:
/// FIN_WAIT1 or LAST_ACK), or when its local port is one the tree listens on (accepted
/// connections).
#[inline(always)]
fn traced_socket(tgid: u32, ctx: &TracePointContext, skaddr: u64, newstate: i32) -> bool {
    let sport = unsafe { ctx.read_at::<u16>(24) }.unwrap_or(0);
    let mut owned = unsafe { TRACED_SOCKS.get(&skaddr) }.is_some()
        || unsafe { TRACED_PORTS.get(&sport) }.is_some();
    let by_syscall = newstate == TCP_SYN_SENT
        || newstate == TCP_LISTEN
        || newstate == TCP_FIN_WAIT1
        || newstate == TCP_LAST_ACK;
    if !owned && by_syscall && traced(tgid) {
        owned = true;
        if newstate == TCP_LISTEN {
            let _ = TRACED_PORTS.insert(&sport, &1, 0);
        }
    }
    if !owned {
        return false;
    }
    if newstate == TCP_CLOSE {
        let _ = TRACED_SOCKS.remove(&skaddr);
        let oldstate = unsafe { ctx.read_at::<i32>(16) }.unwrap_or(0);
        if oldstate == TCP_LISTEN {
            let _ = TRACED_PORTS.remove(&sport);
        }
    } else {
        let _ = TRACED_SOCKS.insert(&skaddr, &1, 0);
    }
    true
}

// ---------------------------------------------------------------------------------------------
// Plain socket payloads and DNS
// ---------------------------------------------------------------------------------------------

#[inline(always)]
fn io_enter(fd: i32, buf: u64, dir: u32, dport: u16) {
    let (tgid, tid) = current_ids();
    // Inside an SSL call the socket traffic is ciphertext: remember the fd for the TLS record
    // and mark the socket, rather than capturing it.
    if let Some(ssl) = SSL_PENDING.get_ptr_mut(&tid) {
        unsafe { (*ssl).fd = fd };
        let key = SockKey { tgid, fd };
        if let Some(state) = SOCKS.get_ptr_mut(&key) {
            unsafe { (*state).flags |= SOCK_TLS };
        }
        return;
    }
    let mut pipe = 0;
    if dport != DNS_PORT {
        let key = SockKey { tgid, fd };
        match unsafe { SOCKS.get(&key) } {
            Some(state) => {
                if state.flags & SOCK_TLS != 0 {
                    return;
                }
            }
            None => {
                if unsafe { PIPES.get(&key) }.is_none() {
                    return;
                }
                pipe = 1;
            }
        }
    }
    if !traced(tgid) {
        return;
    }
    let args = IoArgs {
        buf,
        fd,
        direction: dir,
        dport,
        _pad: 0,
        pipe,
    };
    let _ = IO_PENDING.insert(&tid, &args, 0);
}

#[inline(always)]
fn io_exit(ctx: &TracePointContext) {
    let (tgid, tid) = current_ids();
    let Some(args) = (unsafe { IO_PENDING.get(&tid) }).copied() else {
        return;
    };
    let _ = IO_PENDING.remove(&tid);
    let ret = tp_ret(ctx);
    if ret <= 0 {
        return;
    }
    let key = SockKey { tgid, fd: args.fd };
    if args.pipe != 0 {
        pipe_io_exit(&key, &args, ret as u64);
        return;
    }
    let state = SOCKS.get_ptr_mut(&key);
    let dport = match state {
        Some(state) if args.dport == 0 => unsafe { (*state).dport },
        _ => args.dport,
    };
    if dport == DNS_PORT && args.direction == direction::EGRESS {
        emit_dns(args.fd, dport, args.buf, ret as u64);
        return;
    }
    let Some(state) = state else {
        return;
    };
    let state = unsafe { &mut *state };
    if state.flags & SOCK_SEEN_PAYLOAD == 0 {
        state.flags |= SOCK_SEEN_PAYLOAD;
        // A TLS record header (handshake, version 3.x) on a socket's first bytes: the plaintext
        // is captured at the TLS library instead, if at all.
        let head: [u8; 2] =
            unsafe { bpf_probe_read_user(args.buf as *const [u8; 2]) }.unwrap_or([0; 2]);
        if ret >= 2 && head[0] == 0x16 && head[1] == 0x03 {
            state.flags |= SOCK_TLS;
            return;
        }
    }
    if config(config::CAPTURE_SOCKET_DATA) == 0 {
        return;
    }
    emit_payload(
        source::SOCKET,
        args.direction,
        args.fd,
        0,
        args.buf,
        ret as u64,
    );
}

#[tracepoint]
pub fn sys_enter_write(ctx: TracePointContext) -> u32 {
    note_output_write(tp_arg::<i64>(&ctx, 0) as i32);
    io_enter(
        tp_arg::<i64>(&ctx, 0) as i32,
        tp_arg(&ctx, 1),
        direction::EGRESS,
        0,
    );
    0
}

#[tracepoint]
pub fn sys_enter_read(ctx: TracePointContext) -> u32 {
    note_output_read(tp_arg::<i64>(&ctx, 0) as i32);
    io_enter(
        tp_arg::<i64>(&ctx, 0) as i32,
        tp_arg(&ctx, 1),
        direction::INGRESS,
        0,
    );
    0
}

#[tracepoint]
pub fn sys_enter_sendto(ctx: TracePointContext) -> u32 {
    let dport = read_sockaddr(tp_arg(&ctx, 4))
        .map(|(_, port, _)| port)
        .unwrap_or(0);
    io_enter(
        tp_arg::<i64>(&ctx, 0) as i32,
        tp_arg(&ctx, 1),
        direction::EGRESS,
        dport,
    );
    0
}

#[tracepoint]
pub fn sys_enter_recvfrom(ctx: TracePointContext) -> u32 {
    io_enter(
        tp_arg::<i64>(&ctx, 0) as i32,
        tp_arg(&ctx, 1),
        direction::INGRESS,
        0,
    );
    0
}

/// DNS in a `struct msghdr` (sendmsg, and each message of sendmmsg): glibc's resolver sends
/// its A and AAAA queries together with sendmmsg on a connected UDP socket.
#[inline(always)]
fn dns_from_msghdr(tgid: u32, fd: i32, msg: u64) {
    // x86_64 struct msghdr: msg_name @0, msg_iov @16, msg_iovlen @24.
    let name: u64 = unsafe { bpf_probe_read_user(msg as *const u64) }.unwrap_or(0);
    let iov: u64 = unsafe { bpf_probe_read_user((msg + 16) as *const u64) }.unwrap_or(0);
    let iovlen: u64 = unsafe { bpf_probe_read_user((msg + 24) as *const u64) }.unwrap_or(0);
    if iov == 0 || iovlen == 0 {
        return;
    }
    let dport = match read_sockaddr(name) {
        Some((_, port, _)) => port,
        None => unsafe { SOCKS.get(&SockKey { tgid, fd }) }
            .map(|s| s.dport)
            .unwrap_or(0),
    };
    if dport != DNS_PORT {
        return;
    }
    // A DNS query fits one iovec; struct iovec { base @0, len @8 }.
    let base: u64 = unsafe { bpf_probe_read_user(iov as *const u64) }.unwrap_or(0);
    let len: u64 = unsafe { bpf_probe_read_user((iov + 8) as *const u64) }.unwrap_or(0);
    if base != 0 {
        emit_dns(fd, dport, base, len);
    }
}

#[tracepoint]
pub fn sys_enter_sendmsg(ctx: TracePointContext) -> u32 {
    let (tgid, _) = current_ids();
    if traced(tgid) {
        dns_from_msghdr(tgid, tp_arg::<i64>(&ctx, 0) as i32, tp_arg(&ctx, 1));
    }
    0
}

/// Messages of one sendmmsg inspected for DNS (glibc sends two: A and AAAA).
const MMSG_DNS_MAX: u64 = 4;

#[tracepoint]
pub fn sys_enter_sendmmsg(ctx: TracePointContext) -> u32 {
    let (tgid, _) = current_ids();
    if !traced(tgid) {
        return 0;
    }
    let fd = tp_arg::<i64>(&ctx, 0) as i32;
    let msgs: u64 = tp_arg(&ctx, 1);
    let count: u64 = tp_arg::<u64>(&ctx, 2);
    for i in 0..MMSG_DNS_MAX {
        if i >= count {
            break;
        }
        // struct mmsghdr { struct msghdr msg_hdr; unsigned msg_len; } is 64 bytes.
        dns_from_msghdr(tgid, fd, msgs + 64 * i);
    }
    0
}

#[tracepoint]
pub fn sys_exit_write(ctx: TracePointContext) -> u32 {
    io_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit_read(ctx: TracePointContext) -> u32 {
    io_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit_sendto(ctx: TracePointContext) -> u32 {
    io_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit_recvfrom(ctx: TracePointContext) -> u32 {
    io_exit(&ctx);
    0
}

// ---------------------------------------------------------------------------------------------
// Pipes and socketpairs: MCP over stdio
// ---------------------------------------------------------------------------------------------
//
// There is no file type to look at in a syscall tracepoint without walking kernel structs, so
// pipe ends are tracked by fd from their creation (pipe, pipe2, socketpair) through dup, fork
// and exec to close. Most pipes carry no JSON-RPC: an end's data is captured only from the
// first read or write whose buffer starts like JSON (`{"`, `{}`, `[{`, `[]` after optional
// whitespace), which that end remembers.

#[inline(always)]
fn pipe_tracking(tgid: u32) -> bool {
    config(config::CAPTURE_PIPE_DATA) != 0 && traced(tgid)
}

/// The fd number now names something that is not a tracked pipe end.
#[inline(always)]
fn forget_pipe(tgid: u32, fd: i32) {
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

const SWEEP_INHERIT: u32 = 1;
const SWEEP_CLOSE: u32 = 2;
const SWEEP_SET_CLOEXEC: u32 = 3;
const SWEEP_EXEC: u32 = 4;

/// One pass over fds `first..=last` (below `INHERITED_FDS`) of `tgid`, shared with
/// [`sweep_fd`] through `bpf_loop`.
#[repr(C)]
struct FdSweep {
    tgid: u32,
    /// `SWEEP_INHERIT`: whose fd table was copied.
    parent: u32,
    first: u32,
    last: u32,
    mode: u32,
}

#[inline(always)]
fn sweep_fds(sweep: &mut FdSweep) {
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

/// Whether a buffer starts like a JSON object or array: optional whitespace, then `{"`, `{}`,
/// `[{` or `[]` (or a lone `{`/`[` at the end of a short buffer).
#[inline(always)]
fn starts_like_json(buf: u64, len: u64) -> bool {
    let mut head = [0u8; JSON_PROBE_LEN];
    let mut n = len;
    if n > JSON_PROBE_LEN as u64 {
        n = JSON_PROBE_LEN as u64;
    }
    if n == 0 {
        return false;
    }
    // A fixed-size read could run past the end of a short buffer into an unmapped page.
    let read = unsafe {
        raw_read_user(
            head.as_mut_ptr() as *mut core::ffi::c_void,
            n as u32,
            buf as *const core::ffi::c_void,
        )
    };
    if read != 0 {
        return false;
    }
    let mut first = 0u8;
    for (i, &byte) in head.iter().enumerate() {
        if i as u64 >= n {
            break;
        }
        if byte == b' ' || byte == b'\n' || byte == b'\r' || byte == b'\t' {
            continue;
        }
        if first == 0 {
            if byte != b'{' && byte != b'[' {
                return false;
            }
            first = byte;
            continue;
        }
        return if first == b'{' {
            byte == b'"' || byte == b'}'
        } else {
            byte == b'{' || byte == b']'
        };
    }
    first != 0
}

#[inline(always)]
fn pipe_io_exit(key: &SockKey, args: &IoArgs, len: u64) {
    let Some(state) = PIPES.get_ptr_mut(key) else {
        return;
    };
    let state = unsafe { &mut *state };
    if state.flags & PIPE_JSON_SEEN == 0 {
        if !starts_like_json(args.buf, len) {
            return;
        }
        state.flags |= PIPE_JSON_SEEN;
    }
    if is_output(args.fd) {
        bump(stat::CONSUMER_BYTES, len);
        return;
    }
    emit_payload(source::PIPE, args.direction, args.fd, 0, args.buf, len);
}

// ---------------------------------------------------------------------------------------------
// TLS plaintext at the OpenSSL API
// ---------------------------------------------------------------------------------------------

#[inline(always)]
fn ssl_enter(ctx: &ProbeContext, dir: u32, extended: bool) {
    let (tgid, tid) = current_ids();
    if !traced(tgid) {
        return;
    }
    let args = SslArgs {
        ssl: ctx.arg::<u64>(0).unwrap_or(0),
        buf: ctx.arg::<u64>(1).unwrap_or(0),
        len_ptr: if extended {
            ctx.arg::<u64>(3).unwrap_or(0)
        } else {
            0
        },
        num: ctx.arg::<u64>(2).unwrap_or(0),
        fd: -1,
        direction: dir,
    };
    let _ = SSL_PENDING.insert(&tid, &args, 0);
}

#[inline(always)]
fn ssl_exit(ctx: &RetProbeContext) {
    let (_, tid) = current_ids();
    let Some(args) = (unsafe { SSL_PENDING.get(&tid) }).copied() else {
        return;
    };
    let _ = SSL_PENDING.remove(&tid);
    // All four functions return a C int: the upper half of the register is not sign-extended,
    // so reading it as 64 bits would turn -1 (SSL_ERROR_WANT_READ) into 4 GiB.
    let ret = ctx.ret::<i32>() as i64;
    let len: u64 = if args.len_ptr != 0 {
        if ret != 1 {
            return;
        }
        unsafe { bpf_probe_read_user(args.len_ptr as *const u64) }.unwrap_or(0)
    } else {
        if ret <= 0 {
            return;
        }
        ret as u64
    };
    let requested = if args.len_ptr != 0 {
        args.num
    } else {
        args.num & 0xffff_ffff
    };
    if len == 0 || len > requested {
        return;
    }
    let fd = if args.fd >= 0 {
        let _ = SSL_FDS.insert(&args.ssl, &args.fd, 0);
        args.fd
    } else {
        unsafe { SSL_FDS.get(&args.ssl) }.copied().unwrap_or(-1)
    };
    emit_payload(
        source::TLS_OPENSSL,
        args.direction,
        fd,
        args.ssl,
        args.buf,
        len,
    );
}

#[uprobe]
pub fn ssl_write_enter(ctx: ProbeContext) -> u32 {
    ssl_enter(&ctx, direction::EGRESS, false);
    0
}

#[uprobe]
pub fn ssl_write_ex_enter(ctx: ProbeContext) -> u32 {
    ssl_enter(&ctx, direction::EGRESS, true);
    0
}

#[uprobe]
pub fn ssl_read_enter(ctx: ProbeContext) -> u32 {
    ssl_enter(&ctx, direction::INGRESS, false);
    0
}

#[uprobe]
pub fn ssl_read_ex_enter(ctx: ProbeContext) -> u32 {
    ssl_enter(&ctx, direction::INGRESS, true);
    0
}

#[uretprobe]
pub fn ssl_exit_probe(ctx: RetProbeContext) -> u32 {
    ssl_exit(&ctx);
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // SAFETY: the verifier rejects any program with a reachable panic path, so this is dead code.
    unsafe { core::hint::unreachable_unchecked() }
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
