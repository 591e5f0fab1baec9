//! agentscope's kernel programs.
//!
//! Only tracepoints, raw tracepoints and uprobes: kprobes are not compiled into the kernels we
//! target and fentry/fexit/LSM loads are refused there. Syscall tracepoints stash their arguments
//! per thread on entry and emit one record on exit, when the result is known. Payloads (TLS
//! plaintext at the OpenSSL API, plain socket reads and writes) are split into `CHUNK_LEN`
//! records; whatever cannot be delivered is counted, never silently cut.
#![no_std]
#![no_main]

use agentscope_common::{
    config, data_flags, direction, exec_flags, exit_flags, kind, open_syscall, source, stat,
    CloseEvent, DataEvent, DnsEvent, EventHeader, ExecEvent, ExitEvent, ForkEvent, OpenEvent,
    SockAddrEvent, TcpStateEvent, ARGV_LEN, ARG_READ_LEN, CHUNK_LEN, DATA_PREFIX_LEN, DNS_LEN,
    MAX_ARGS, MAX_CHUNKS, PATH_LEN,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_uid_gid, bpf_ktime_get_boot_ns, bpf_probe_read_user,
        generated::{
            bpf_loop, bpf_probe_read_user as raw_read_user, bpf_probe_read_user_str,
            bpf_ringbuf_output,
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
    _pad: [u16; 3],
}

#[map]
static IO_PENDING: HashMap<u32, IoArgs> = HashMap::with_max_entries(16384, 0);

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
}

/// Splits `total_len` bytes at `buf` into `DataEvent` records.
///
/// The chunks are emitted by `bpf_loop` (Linux 5.17+), so the verifier checks the chunk body
/// once rather than once per possible chunk; a plain loop over 96 chunks exceeds its budget.
#[inline(always)]
fn emit_payload(source_kind: u32, dir: u32, fd: i32, conn_id: u64, buf: u64, total_len: u64) {
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
        bump(stat::LOST_BYTES, beyond);
    }
}

/// One chunk of [`emit_payload`]; returns 1 to stop the loop.
#[inline(never)]
unsafe extern "C" fn emit_chunk(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    let state = unsafe { &*(ctx as *const ChunkLoop) };
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
        bump(stat::LOST_BYTES, len as u64);
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
    if unsafe { SOCKS.get(&key) }.is_none() {
        return 0;
    }
    let _ = SOCKS.remove(&key);
    if !traced(tgid) {
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
    if dport != DNS_PORT {
        let key = SockKey { tgid, fd };
        let Some(state) = (unsafe { SOCKS.get(&key) }) else {
            return;
        };
        if state.flags & SOCK_TLS != 0 {
            return;
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
        _pad: [0; 3],
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
