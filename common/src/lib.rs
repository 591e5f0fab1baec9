//! Event records that the kernel programs write into the ring buffer and the collector decodes.
//!
//! Every record starts with an [`EventHeader`]; `header.kind` says which struct follows and
//! `header.size` how many bytes of the record are meaningful (payload records are variable-size:
//! only `data_len` bytes of `data` are sent). All structs are `#[repr(C)]` with explicit padding
//! and size assertions, so the layout is the contract between the two sides. New fields are only
//! ever appended.
//!
//! With the `user` feature every record struct derives zerocopy's `FromBytes` and `IntoBytes`
//! (which check at compile time that any bit pattern is valid and that there is no padding):
//! userspace decodes records with `FromBytes::read_from_prefix` and builds them in tests with
//! `IntoBytes::as_bytes`, instead of reading fields at offsets. The kernel side does not see
//! the derives.
#![no_std]

/// The traits the record structs implement with the `user` feature, so decoders and tests use
/// the same zerocopy as the derives.
#[cfg(feature = "user")]
pub use zerocopy;

/// Length of `task->comm`.
pub const COMM_LEN: usize = 16;
/// Bytes of a file name or path read from user memory (longer ones are flagged truncated).
pub const PATH_LEN: usize = 256;
/// Bytes of NUL-separated argv kept per exec.
pub const ARGV_LEN: usize = 2048;
/// Bytes read of one argument; a longer one is cut and the exec flagged `ARGV_TRUNCATED`.
pub const ARG_READ_LEN: usize = 512;
/// Arguments read per exec; more are flagged truncated.
pub const MAX_ARGS: usize = 32;
/// Payload bytes per ring-buffer record. A larger buffer is split into several records.
pub const CHUNK_LEN: usize = 16 * 1024;
/// Chunks emitted per read/write call: calls larger than `CHUNK_LEN * MAX_CHUNKS` report the
/// remainder in `lost_bytes` instead of being silently cut.
pub const MAX_CHUNKS: u32 = 96;
/// Bytes of a DNS datagram kept.
pub const DNS_LEN: usize = 512;
/// Bytes kept of the first write on a socket that starts with a TLS handshake record: enough
/// for a whole ClientHello with a post-quantum key share (about 1.3 KiB), so the server name
/// and ALPN are there whatever order the client puts its extensions in.
pub const TLS_HELLO_LEN: usize = 2048;

pub mod noise_paths;

/// Record kinds (`EventHeader::kind`).
pub mod kind {
    pub const EXEC: u32 = 1;
    pub const FORK: u32 = 2;
    pub const EXIT: u32 = 3;
    pub const OPEN: u32 = 4;
    pub const CONNECT: u32 = 5;
    pub const ACCEPT: u32 = 6;
    pub const TCP_STATE: u32 = 7;
    pub const DNS: u32 = 8;
    pub const DATA: u32 = 9;
    pub const CLOSE: u32 = 10;
    /// The first bytes of a socket that starts with a TLS ClientHello ([`TlsHelloEvent`]).
    pub const TLS_HELLO: u32 = 11;
    /// An enforcement decision against a governed agent's policy ([`EnforceEvent`]).
    pub const ENFORCE: u32 = 12;
    /// An exec a governed agent's policy does not allow ([`EnforceExecEvent`]).
    pub const ENFORCE_EXEC: u32 = 13;
    /// An open of a governed sensitive file a governed agent's policy does not allow
    /// ([`EnforceFileEvent`]).
    pub const ENFORCE_FILE: u32 = 14;
    /// A tracked process called a syscall that can leave its container: namespaces, mounts,
    /// root changes, kernel modules, ptrace attach ([`EscapeSyscallEvent`]). Numbered apart
    /// from the kinds above so branches adding kinds side by side do not collide.
    pub const ESCAPE_SYSCALL: u32 = 32;
}

/// Container-escape syscalls (`collector-ebpf/src/escape.rs`).
pub mod escape {
    /// `EscapeSyscallEvent::syscall`.
    pub const SETNS: u32 = 1;
    pub const UNSHARE: u32 = 2;
    pub const MOUNT: u32 = 3;
    pub const CHROOT: u32 = 4;
    pub const PIVOT_ROOT: u32 = 5;
    pub const INIT_MODULE: u32 = 6;
    pub const FINIT_MODULE: u32 = 7;
    pub const PTRACE: u32 = 8;
    /// `ptrace` requests that make the caller a tracer of another process; the others
    /// (peeks, pokes, continues) act on a process already traced and are not emitted.
    pub const PTRACE_ATTACH: u64 = 16;
    pub const PTRACE_SEIZE: u64 = 0x4206;
    /// Bytes kept of a mount's file-system type.
    pub const FSTYPE_LEN: usize = 32;
}

/// Bytes of `sun_path` in `struct sockaddr_un`.
pub const UNIX_PATH_LEN: usize = 108;

/// Enforcement of a baseline's policy in the kernel (`collector-ebpf/src/enforce.rs`).
pub mod enforce {
    /// A category's mode in [`AgentPolicy`]: nothing is checked.
    pub const MODE_OFF: u32 = 0;
    /// Checked; what the policy does not allow is let through and reported as "would block".
    pub const MODE_AUDIT: u32 = 1;
    /// Checked; what the policy does not allow is denied and reported as "blocked".
    pub const MODE_ENFORCE: u32 = 2;

    /// `EnforceEvent::category`.
    pub const CATEGORY_NETWORK: u16 = 1;
    pub const CATEGORY_EXEC: u16 = 2;
    pub const CATEGORY_FILES: u16 = 3;

    /// `EnforceEvent::action`.
    pub const ACTION_WOULD_BLOCK: u16 = 1;
    pub const ACTION_BLOCKED: u16 = 2;

    /// `EnforceEvent::hook`: which cgroup socket-address hook decided.
    pub const HOOK_CONNECT4: u16 = 1;
    pub const HOOK_CONNECT6: u16 = 2;
    pub const HOOK_SENDMSG4: u16 = 3;
    pub const HOOK_SENDMSG6: u16 = 4;

    /// Bits of [`super::NetAllowKey`] before the address: agent, port, protocol, padding.
    pub const NET_KEY_FIXED_BITS: u32 = 64;
    /// Governed agents at once (the maps' sizes).
    pub const MAX_AGENTS: u32 = 1024;
    /// Allow-list entries over all agents.
    pub const MAX_NET_RULES: u32 = 65536;
    /// Processes governed by process tree at once.
    pub const MAX_GOVERNED_TGIDS: u32 = 65536;
    /// Allowed executables over all agents.
    pub const MAX_EXEC_RULES: u32 = 16384;
    /// `SIGKILL`, sent to a process whose exec its policy does not allow.
    pub const SIGKILL: u32 = 9;
    /// Governed-file rules over all agents (each of `FILE_INODE_RULES`, `FILE_NAME_RULES`).
    pub const MAX_FILE_RULES: u32 = 16384;
    /// Bytes of a file name in a [`super::FileNameRuleKey`] (NUL-padded; a longer name is
    /// never governed by name).
    pub const FILE_NAME_LEN: usize = 64;

    /// Values of the kernel's `EXEC_ALLOW` map (low byte; the next byte of an interpreter's
    /// value is its inline-code option letter, `c` for `sh -c`, `e` for `perl -e`).
    /// An executable the agent may run.
    pub const EXEC_ALLOW_PROGRAM: u32 = 1;
    /// An interpreter the agent may run only with inline code (`sh -c CMD`) or with a script
    /// path the policy allows; reading its program from standard input (`curl … | sh`) or
    /// from another file is not allowed.
    pub const EXEC_ALLOW_INTERPRETER: u32 = 2;
    /// A script path an interpreter may be given (`sh /opt/ops/check.sh`).
    pub const EXEC_ALLOW_SCRIPT: u32 = 3;

    /// Indices of the kernel's `ENFORCE_OFFSETS` array: struct field offsets, from the
    /// running kernel's BTF, that the file and interpreter checks follow.
    /// `file.f_path` + `path.dentry`.
    pub const OFF_FILE_DENTRY: u32 = 0;
    /// `dentry.d_name` + `qstr.name`.
    pub const OFF_DENTRY_NAME: u32 = 1;
    /// `task_struct.mm`.
    pub const OFF_TASK_MM: u32 = 2;
    /// `mm_struct.arg_start`.
    pub const OFF_MM_ARG_START: u32 = 3;
    /// `mm_struct.arg_end`.
    pub const OFF_MM_ARG_END: u32 = 4;
    pub const OFFSETS_COUNT: u32 = 5;

    /// `EnforceExecEvent::reason`: why an exec was not allowed.
    /// The executable is not in the policy.
    pub const EXEC_REASON_PROGRAM: u16 = 0;
    /// An allowed interpreter given no inline code and no script: it reads its program from
    /// standard input (`curl … | sh`).
    pub const EXEC_REASON_STDIN_PROGRAM: u16 = 1;
    /// An allowed interpreter given a script the policy does not list.
    pub const EXEC_REASON_SCRIPT: u16 = 2;

    /// `EnforceFileEvent::syscall`.
    pub const FILE_SYSCALL_OPEN: u16 = 1;
    pub const FILE_SYSCALL_OPENAT: u16 = 2;
    pub const FILE_SYSCALL_OPENAT2: u16 = 3;
}

/// Flags on [`ExecEvent`].
pub mod exec_flags {
    pub const ARGV_TRUNCATED: u32 = 1;
    pub const FILENAME_TRUNCATED: u32 = 2;
    /// The argv could not be read (the stash from syscall entry was missing).
    pub const ARGV_MISSING: u32 = 4;
}

/// Flags on [`TlsHelloEvent`].
pub mod tls_hello_flags {
    /// The hello was written while the thread was inside a located OpenSSL 3 handshake
    /// (`SSL_do_handshake`, probed in a static binary that also links another TLS stack):
    /// evidence that this connection's plaintext goes through the probed functions.
    pub const IN_LOCATED_HANDSHAKE: u16 = 1;
}

/// Flags on [`ExitEvent`].
pub mod exit_flags {
    /// `exit_code` came from exit/exit_group; without it the process died another way
    /// (a signal, usually) and the code is unknown.
    pub const CODE_KNOWN: u32 = 1;
}

/// Which open syscall produced an [`OpenEvent`].
pub mod open_syscall {
    pub const OPEN: u32 = 1;
    pub const OPENAT: u32 = 2;
    pub const OPENAT2: u32 = 3;
}

/// Where payload bytes were captured (`DataEvent::source`).
pub mod source {
    /// Plaintext at the OpenSSL API (`SSL_write`, `SSL_read` and their `_ex` forms).
    pub const TLS_OPENSSL: u32 = 1;
    /// Plain TCP socket read/write/send/recv syscalls.
    pub const SOCKET: u32 = 2;
    /// Pipes and `AF_UNIX` socketpairs: the stdio of child processes (MCP over stdio). Only
    /// once the fd has carried a buffer that starts like JSON (see the kernel programs).
    pub const PIPE: u32 = 3;
    /// Plaintext at Go's `crypto/tls` (`(*Conn).Write` and `(*Conn).Read`); the connection
    /// identity (`conn_id`) is the `*tls.Conn`.
    pub const TLS_GO: u32 = 4;
    /// Plaintext of rustls (with aws-lc-rs) at aws-lc's AEAD seal and open, bound to its socket
    /// by the syscall that carried the record; `conn_id` is `0x5255 << 48` with the socket fd.
    pub const TLS_RUSTLS: u32 = 5;
}

/// Direction of payload bytes, from the traced process's point of view.
pub mod direction {
    /// The process wrote the bytes (a request, for a client).
    pub const EGRESS: u32 = 1;
    /// The process read the bytes (a response, for a client).
    pub const INGRESS: u32 = 2;
}

/// Flags on [`DataEvent`].
pub mod data_flags {
    /// Last record of this call.
    pub const LAST: u32 = 1;
}

/// Indexes into the `STATS` per-CPU array kept by the kernel programs.
pub mod stat {
    /// Records written to the ring buffer.
    pub const EMITTED: u32 = 0;
    /// Records the ring buffer had no room for.
    pub const DROPPED: u32 = 1;
    /// Payload bytes not delivered (ring full, or a call beyond `MAX_CHUNKS`).
    pub const LOST_BYTES: u32 = 2;
    /// Payload bytes of processes that read the collector's own output ("consumers"), and of
    /// pipes that carry it, left out on purpose so the collector never captures what its
    /// output produces.
    pub const CONSUMER_BYTES: u32 = 3;
    /// The part of `LOST_BYTES` the traced processes wrote (`direction::EGRESS`). A byte sent
    /// between two traced processes is captured twice, once written and once read, and can
    /// be lost on either side or both: per direction, delivered + lost = what was moved.
    pub const LOST_EGRESS_BYTES: u32 = 4;
    /// The part of `LOST_BYTES` the traced processes read (`direction::INGRESS`).
    pub const LOST_INGRESS_BYTES: u32 = 5;
    /// Calls to a located (not exported) TLS function whose arguments or `SSL*` did not look
    /// like a TLS read or write, so nothing was emitted: a misidentified function shows here.
    pub const TLS_REJECTED: u32 = 6;
    /// TLS application-data records decrypted by a located rustls AEAD whose connection could
    /// not be proven (no read of a TLS socket just before, on the same thread): not emitted.
    pub const TLS_UNBOUND: u32 = 7;
    /// Read-only opens of runtime noise (`noise_paths`) the kernel left out: what userspace
    /// would have hidden anyway, counted so the summary says how many (none when
    /// `config::KEEP_RUNTIME_NOISE` is set).
    pub const NOISE_OPENS_FILTERED: u32 = 8;
    /// Payload bytes of plain sockets the collector found to carry no protocol it reads
    /// (`MutedSocketKey`): moved by the traced processes, neither copied nor sent.
    pub const OPAQUE_SOCKET_BYTES: u32 = 9;
    /// Payload bytes of processes whose payloads the collector was told to leave out
    /// (`collect --no-payloads-of PID`, and their children started later): moved, neither
    /// copied nor sent.
    pub const PAYLOADS_OFF_BYTES: u32 = 10;
    /// Payload bytes of connections sampled out (`collect --sample-connections N`: one
    /// connection in N keeps its payloads), counted instead of copied.
    pub const SAMPLED_OUT_BYTES: u32 = 11;
    pub const COUNT: u32 = 12;
}

/// When a record wakes the collector's reader (collector-ebpf `emit.rs`), and how often the
/// reader looks at the ring buffer without being woken (crates/kernel `read_batch`).
///
/// A wake-up per record costs the writing process an irq_work and the reader a trip through
/// epoll for every record it reads while it keeps up (thousands a second for a busy agent).
/// Records are written without waking the reader unless the ring holds more than
/// `1 / 2^AVAIL_SHIFT` of its size (then the reader must hurry, or the ring fills and records
/// are dropped), or the record is urgent (an exec, whose binary the collector must look at for
/// TLS libraries before it talks; an enforcement verdict, which the disarmer acts on). The
/// reader reads the ring at least every `READER_POLL_MS`, so no record waits longer than that
/// (plus the time to read the records before it).
pub mod ring_wakeup {
    /// Wake the reader when the ring holds more than `size >> AVAIL_SHIFT` bytes (1/8).
    pub const AVAIL_SHIFT: u32 = 3;
    /// The reader reads the ring at least this often, woken or not.
    pub const READER_POLL_MS: u64 = 10;
}

/// Indexes into the `CONFIG` array the collector fills before attaching.
pub mod config {
    /// The collector's own tgid: its activity is never traced.
    pub const SELF_TGID: u32 = 0;
    /// Non-zero: trace only tgids in the `TARGETS` map (and their descendants).
    pub const FILTER_PIDS: u32 = 1;
    /// Non-zero: capture plain socket payloads.
    pub const CAPTURE_SOCKET_DATA: u32 = 2;
    /// Non-zero: capture JSON carried over pipes and socketpairs.
    pub const CAPTURE_PIPE_DATA: u32 = 3;
    /// Non-zero: the collector is stopping; programs emit nothing more, so the final drain of
    /// the ring buffer ends.
    pub const STOPPING: u32 = 4;
    /// Non-zero: the `OFF_*` kernel struct offsets below are filled (from the running
    /// kernel's BTF), so fds can be resolved to the file objects that carry the collector's
    /// output.
    pub const OUTPUT_TRACKING: u32 = 5;
    /// `task_struct.files`.
    pub const OFF_TASK_FILES: u32 = 6;
    /// `files_struct.fdt`.
    pub const OFF_FILES_FDT: u32 = 7;
    /// `fdtable.max_fds` (u32).
    pub const OFF_FDTABLE_MAX_FDS: u32 = 8;
    /// `fdtable.fd`.
    pub const OFF_FDTABLE_FD: u32 = 9;
    /// `file.f_inode`.
    pub const OFF_FILE_INODE: u32 = 10;
    /// `inode.i_mode` (u16).
    pub const OFF_INODE_MODE: u32 = 11;
    /// `inode.i_ino` (unsigned long).
    pub const OFF_INODE_INO: u32 = 12;
    /// `inode.i_sb`.
    pub const OFF_INODE_SB: u32 = 13;
    /// `super_block.s_dev` (the kernel's dev_t: major << 20 | minor).
    pub const OFF_SB_DEV: u32 = 14;
    /// `file.f_flags` (u32).
    pub const OFF_FILE_FLAGS: u32 = 15;
    /// Non-zero: send every open, runtime noise too (`collect --keep-runtime-noise`); zero:
    /// read-only opens of runtime noise (`noise_paths`) are counted in
    /// `stat::NOISE_OPENS_FILTERED` instead of sent.
    pub const KEEP_RUNTIME_NOISE: u32 = 16;
    /// N > 1: one inet connection in N keeps its payloads (plain and TLS), decided at its
    /// connect or accept from its id and [`SAMPLE_SEED`]; the others' are counted in
    /// `stat::SAMPLED_OUT_BYTES`. 0 or 1: every connection keeps them.
    pub const SAMPLE_CONNECTIONS: u32 = 17;
    /// Mixed into each connection's id before the sampling choice, so that a run's choices
    /// are not the previous run's (set by the collector at start).
    pub const SAMPLE_SEED: u32 = 18;
    pub const COUNT: u32 = 19;
}

/// A file object (pipe, regular file) by device and inode, as the kernel's `OUTPUTS` map keys
/// the objects that carry the collector's output.
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    /// The kernel's internal dev_t (`MKDEV(major, minor)` = major << 20 | minor).
    pub dev: u32,
    pub _pad: u32,
    pub ino: u64,
}

/// A process that read the collector's output (value of the kernel's `CONSUMERS` map).
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy, Debug)]
pub struct Consumer {
    pub comm: [u8; COMM_LEN],
    /// `bpf_ktime_get_boot_ns` when it first read the output.
    pub since_ns: u64,
}

#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy, Debug)]
pub struct EventHeader {
    pub kind: u32,
    /// Bytes of the record that are meaningful, header included.
    pub size: u32,
    /// `bpf_ktime_get_boot_ns`: nanoseconds since boot, suspend included.
    pub ts_ns: u64,
    pub cgroup_id: u64,
    /// Process id (the kernel's tgid).
    pub pid: u32,
    /// Thread id (the kernel's pid).
    pub tid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: [u8; COMM_LEN],
}

#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    pub header: EventHeader,
    /// Parent tgid as known to the kernel map (seeded from /proc, kept by fork events); 0 if unknown.
    pub ppid: u32,
    pub flags: u32,
    /// Arguments read (at most `MAX_ARGS`).
    pub argc: u32,
    /// Bytes used in `argv`: NUL-terminated arguments back to back.
    pub argv_len: u32,
    pub filename: [u8; PATH_LEN],
    pub argv: [u8; ARGV_LEN],
}

#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy)]
pub struct ForkEvent {
    pub header: EventHeader,
    /// The new process's pid.
    pub child_pid: u32,
    pub _pad: u32,
    pub clone_flags: u64,
}

#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy)]
pub struct ExitEvent {
    pub header: EventHeader,
    /// The status passed to exit/exit_group when `CODE_KNOWN` is set.
    pub exit_code: i32,
    pub flags: u32,
}

#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy)]
pub struct OpenEvent {
    pub header: EventHeader,
    pub dfd: i32,
    pub flags: i32,
    pub mode: u32,
    /// The new fd, or `-errno`.
    pub ret: i32,
    pub syscall: u32,
    /// Bytes of `path` read, NUL excluded; `PATH_LEN` means the path may be truncated.
    pub path_len: u32,
    pub path: [u8; PATH_LEN],
}

/// Flags of a [`SockAddrEvent`].
pub mod sock_flags {
    /// The connection was sampled out (`config::SAMPLE_CONNECTIONS`): its payloads are
    /// counted, never copied. Sent on the connect or accept itself, so a reader (and a replay)
    /// knows which connections it will see no bytes of, and why.
    pub const PAYLOADS_SAMPLED_OUT: u32 = 1;
}

/// connect() and accept()/accept4().
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy)]
pub struct SockAddrEvent {
    pub header: EventHeader,
    /// connect: the socket. accept: the listening socket.
    pub fd: i32,
    /// connect: 0 or `-errno` (`-EINPROGRESS` for non-blocking). accept: the new fd or `-errno`.
    pub ret: i32,
    /// `AF_INET`, `AF_INET6`, `AF_UNIX`, ... (0 when no address was given).
    pub family: u16,
    /// Port in host byte order.
    pub port: u16,
    /// [`sock_flags`]: what the kernel decided for the connection.
    pub flags: u32,
    /// IPv4 in the first 4 bytes, or IPv6; for `AF_UNIX` the first bytes of the path.
    pub addr: [u8; 16],
}

/// A connect or accept of an `AF_UNIX` socket: the [`SockAddrEvent`] (whose `addr` holds the
/// first 16 bytes of the path) and the whole `sun_path` after it. Other families' records stop
/// after the `SockAddrEvent`; `header.size` says which one was sent.
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy)]
pub struct UnixSockAddrEvent {
    pub sock: SockAddrEvent,
    /// Bytes of `path` that are the name: up to the first NUL of a path name; for an abstract
    /// name (`path[0] == 0`), what the address length passed to connect says (0 when unknown,
    /// as for accept).
    pub path_len: u32,
    pub _pad: u32,
    /// `sun_path` as given (an abstract name starts with a NUL byte), padded to 8 bytes.
    pub path: [u8; UNIX_PATH_LEN + 4],
}

/// A call of a container-escape syscall by a traced process, emitted when it returns.
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy)]
pub struct EscapeSyscallEvent {
    pub header: EventHeader,
    /// `escape::*`.
    pub syscall: u32,
    pub _pad: u32,
    /// The result: 0 (or a pid, an fd) or `-errno`.
    pub ret: i64,
    /// The first four arguments as passed (flags, fds and pids; pointers are meaningless to
    /// userspace but kept so every syscall has one shape).
    pub args: [u64; 4],
    /// Bytes of `path` and `path2` read (NUL excluded; `PATH_LEN` means possibly cut).
    pub path_len: u32,
    pub path2_len: u32,
    /// mount: the source; chroot: the new root; pivot_root: the new root.
    pub path: [u8; PATH_LEN],
    /// mount: the target; pivot_root: where the old root goes.
    pub path2: [u8; PATH_LEN],
    /// mount: the file-system type (NUL-terminated unless cut).
    pub fstype: [u8; escape::FSTYPE_LEN],
}

#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy)]
pub struct TcpStateEvent {
    pub header: EventHeader,
    pub skaddr: u64,
    pub oldstate: i32,
    pub newstate: i32,
    pub sport: u16,
    pub dport: u16,
    pub family: u16,
    pub protocol: u16,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy)]
pub struct DnsEvent {
    pub header: EventHeader,
    pub fd: i32,
    pub dport: u16,
    pub _pad: u16,
    /// Bytes of the datagram sent; `data` holds at most `DNS_LEN` of them.
    pub len: u32,
    pub _pad2: u32,
    pub data: [u8; DNS_LEN],
}

#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy)]
pub struct CloseEvent {
    pub header: EventHeader,
    pub fd: i32,
    pub _pad: u32,
}

/// The first write on a socket whose bytes start with a TLS handshake record (`16 03`):
/// emitted once per connection, whether or not the process's plaintext is captured, so a TLS
/// peer is never invisible. Userspace parses the server name and ALPN out of `data`.
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy)]
pub struct TlsHelloEvent {
    pub header: EventHeader,
    pub fd: i32,
    /// Destination port of the socket (host order).
    pub dport: u16,
    /// [`tls_hello_flags`].
    pub flags: u16,
    /// Bytes the write carried; `data` holds at most `TLS_HELLO_LEN` of them.
    pub len: u32,
    pub _pad2: u32,
    pub data: [u8; TLS_HELLO_LEN],
}

/// What a payload record ([`DataEvent`]) holds before its bytes. Records of one call share
/// `call_id`; `seq` numbers them from 0 and `offset` places them in the call's buffer, so
/// userspace can reassemble and see gaps. A record is variable-size (only `data_len` bytes of
/// `data` are sent), so userspace reads this prefix as a struct and the bytes after it.
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy)]
pub struct DataPrefix {
    pub header: EventHeader,
    pub source: u32,
    pub direction: u32,
    /// The socket fd, or -1 when it cannot be known (TLS over memory BIOs, as in Node).
    pub fd: i32,
    pub flags: u32,
    /// Connection identity: the `SSL*` for OpenSSL, the `*tls.Conn` for Go; for a plain
    /// socket the kernel's id of it (boot-time ns of its connect or accept: it tells a socket
    /// from the next one on the same fd, see [`MutedSocketKey`]), 0 for one seen before
    /// tracing or for pipes.
    pub conn_id: u64,
    /// Unique per read/write call (boot-time ns of the call's return, with the tid mixed in).
    pub call_id: u64,
    /// Bytes the call transferred.
    pub total_len: u64,
    /// Where this chunk starts in the call's buffer.
    pub offset: u64,
    /// Bytes of this call not delivered so far (ring full or beyond `MAX_CHUNKS`).
    pub lost_bytes: u64,
    pub seq: u32,
    pub data_len: u32,
}

/// A chunk of payload bytes: a [`DataPrefix`], then `prefix.data_len` meaningful bytes of `data`.
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy)]
pub struct DataEvent {
    pub prefix: DataPrefix,
    pub data: [u8; CHUNK_LEN],
}

/// Bytes of a `DataEvent` before `data`.
pub const DATA_PREFIX_LEN: usize = core::mem::size_of::<DataPrefix>();

/// A plain socket whose payloads the kernel stops copying (key of its `MUTED_SOCKETS`, written
/// by the collector; the value is the socket's id, a [`DataPrefix::conn_id`]): reconstruction
/// found its first bytes to be no protocol it reads, so whatever follows would be read and
/// dropped. The id makes the request apply to that socket only, never to a later one the
/// process opens on the same fd number before the request arrives.
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MutedSocketKey {
    pub tgid: u32,
    pub fd: i32,
}

/// What the kernel left out of one process's payloads (value of `LEFT_OUT_BY_PROCESS`, a
/// per-CPU map keyed by tgid, summed over CPUs by the collector): the same bytes as the
/// node-wide `stat::OPAQUE_SOCKET_BYTES`, `stat::PAYLOADS_OFF_BYTES` and
/// `stat::SAMPLED_OUT_BYTES`, by process, so a coverage report can say whose traffic is not in
/// the capture.
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeftOutBytes {
    /// Bytes of its plain sockets the collector found to carry no protocol it reads.
    pub opaque_socket: u64,
    /// Bytes of its payloads left out on request (`--no-payloads-of`).
    pub on_request: u64,
    /// Payload bytes of its connections sampled out (`--sample-connections`).
    pub sampled_out: u64,
}

/// A governed agent's modes (value of the kernel's `AGENT_POLICIES`, keyed by agent id).
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentPolicy {
    /// `enforce::MODE_*` per category.
    pub network: u32,
    pub exec: u32,
    pub files: u32,
    /// The baseline's revision the policy came from (named in events).
    pub revision: u32,
}

/// The data of a key of the kernel's `NET_ALLOW` LPM trie (the trie's key is a `u32` prefix
/// length, then this). An entry allows the agent to reach `addr` under the prefix with that
/// protocol and port (port 0: any port). The prefix length counts the whole data, so it is
/// [`enforce::NET_KEY_FIXED_BITS`] plus the address's prefix: agent, port and protocol always
/// match exactly. IPv4 addresses are stored IPv4-mapped (`::ffff:a.b.c.d`), so one trie holds
/// both families and an IPv4-mapped IPv6 destination matches its IPv4 rule.
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetAllowKey {
    pub agent: u32,
    /// Host byte order; 0 matches any port.
    pub port: u16,
    /// `IPPROTO_TCP` or `IPPROTO_UDP`.
    pub protocol: u8,
    pub _pad: u8,
    /// Network byte order, IPv4 mapped into IPv6.
    pub addr: [u8; 16],
}

/// A decision against a governed agent's policy: what it tried, and whether it was let
/// through ("would block", audit mode) or denied ("blocked").
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy)]
pub struct EnforceEvent {
    pub header: EventHeader,
    /// The governed agent's id (as the collector numbered the policies it loaded).
    pub agent: u32,
    /// The policy's baseline revision.
    pub revision: u32,
    /// `enforce::CATEGORY_*`.
    pub category: u16,
    /// `enforce::ACTION_*`.
    pub action: u16,
    /// `enforce::HOOK_*`.
    pub hook: u16,
    /// `IPPROTO_TCP`, `IPPROTO_UDP`.
    pub protocol: u16,
    /// `AF_INET` (IPv4, or IPv4-mapped IPv6 reported as IPv4) or `AF_INET6`.
    pub family: u16,
    /// Destination port, host byte order.
    pub port: u16,
    pub _pad: u32,
    /// Destination address: IPv4 in the first 4 bytes, or IPv6.
    pub addr: [u8; 16],
}

/// A key of the kernel's `EXEC_ALLOW` map: an executable an agent may run, as the exec named
/// it (the path given to `execve`, NUL-padded).
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecAllowKey {
    pub agent: u32,
    pub _pad: u32,
    pub path: [u8; PATH_LEN],
}

/// An exec a governed agent's policy does not allow: killed (`SIGKILL` before the new image
/// runs an instruction) in enforce mode, reported in audit mode.
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy)]
pub struct EnforceExecEvent {
    pub header: EventHeader,
    pub agent: u32,
    pub revision: u32,
    /// `enforce::ACTION_*`.
    pub action: u16,
    /// `enforce::EXEC_REASON_*`.
    pub reason: u16,
    /// Bytes of `path` (NUL excluded).
    pub path_len: u32,
    pub path: [u8; PATH_LEN],
}

/// A key of the kernel's `FILE_INODE_RULES` map: a governed sensitive file, by the inode the
/// collector resolved when enforcement began, that the agent may not open. The value is the
/// rule's index in the collector's list of that agent's governed files.
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileInodeRuleKey {
    pub agent: u32,
    /// The kernel's internal dev_t of the file's super block (as [`FileId::dev`]).
    pub dev: u32,
    pub ino: u64,
}

/// A key of the kernel's `FILE_NAME_RULES` map: a governed file in a volume the kubelet
/// writes atomically (service-account tokens, projected secrets), by its file system and its
/// name. Every rotation writes a new inode in a new `..<timestamp>` directory of the same
/// file system under the same name, so the rule outlives the swap of the `..data` link.
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileNameRuleKey {
    pub agent: u32,
    pub dev: u32,
    /// The file's own name (its dentry's), NUL-padded.
    pub name: [u8; enforce::FILE_NAME_LEN],
}

/// A successful open of a governed sensitive file its policy does not allow: the process
/// was killed (`SIGKILL` at the syscall's exit, before it returns to user space) in enforce
/// mode, reported in audit mode.
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy)]
pub struct EnforceFileEvent {
    pub header: EventHeader,
    pub agent: u32,
    pub revision: u32,
    /// `enforce::ACTION_*`.
    pub action: u16,
    /// `enforce::FILE_SYSCALL_*`.
    pub syscall: u16,
    /// The fd the open returned.
    pub fd: i32,
    /// Index of the matched rule in the collector's list of the agent's governed files.
    pub rule: u32,
    /// The opened file: its super block's dev_t and inode.
    pub dev: u32,
    pub ino: u64,
}

const _: () = {
    assert!(core::mem::size_of::<FileInodeRuleKey>() == 16);
    assert!(core::mem::size_of::<MutedSocketKey>() == 8);
    assert!(core::mem::size_of::<LeftOutBytes>() == 24);
    assert!(core::mem::size_of::<FileNameRuleKey>() == 8 + enforce::FILE_NAME_LEN);
    assert!(core::mem::size_of::<EnforceFileEvent>() == 56 + 32);
    assert!(core::mem::size_of::<ExecAllowKey>() == 8 + PATH_LEN);
    assert!(core::mem::size_of::<EnforceExecEvent>() == 56 + 16 + PATH_LEN);
    assert!(core::mem::size_of::<AgentPolicy>() == 16);
    assert!(core::mem::size_of::<NetAllowKey>() == 24);
    assert!(enforce::NET_KEY_FIXED_BITS as usize == 8 * 8);
    assert!(core::mem::size_of::<EnforceEvent>() == 56 + 40);
    assert!(core::mem::size_of::<EventHeader>() == 56);
    assert!(core::mem::size_of::<ExecEvent>() == 56 + 16 + PATH_LEN + ARGV_LEN);
    assert!(core::mem::size_of::<ForkEvent>() == 56 + 16);
    assert!(core::mem::size_of::<ExitEvent>() == 56 + 8);
    assert!(core::mem::size_of::<OpenEvent>() == 56 + 24 + PATH_LEN);
    assert!(core::mem::size_of::<SockAddrEvent>() == 56 + 32);
    assert!(core::mem::size_of::<UnixSockAddrEvent>() == 56 + 32 + 8 + UNIX_PATH_LEN + 4);
    assert!(
        core::mem::size_of::<EscapeSyscallEvent>()
            == 56 + 16 + 32 + 8 + 2 * PATH_LEN + escape::FSTYPE_LEN
    );
    assert!(core::mem::size_of::<TcpStateEvent>() == 56 + 56);
    assert!(core::mem::size_of::<DnsEvent>() == 56 + 16 + DNS_LEN);
    assert!(core::mem::size_of::<CloseEvent>() == 56 + 8);
    assert!(core::mem::size_of::<TlsHelloEvent>() == 56 + 16 + TLS_HELLO_LEN);
    assert!(DATA_PREFIX_LEN == 56 + 64);
    assert!(core::mem::offset_of!(DataEvent, data) == DATA_PREFIX_LEN);
    assert!(core::mem::size_of::<DataEvent>() == DATA_PREFIX_LEN + CHUNK_LEN);
    assert!(CHUNK_LEN.is_power_of_two());
    assert!(core::mem::size_of::<FileId>() == 16);
    assert!(core::mem::size_of::<Consumer>() == 24);
};

#[cfg(feature = "user")]
mod pod {
    use super::{
        AgentPolicy, Consumer, EventHeader, ExecAllowKey, FileId, FileInodeRuleKey,
        FileNameRuleKey, LeftOutBytes, MutedSocketKey, NetAllowKey,
    };

    // SAFETY: aya's `Pod` (map keys and values copied to and from the kernel) needs what the
    // zerocopy derives prove at compile time, checked just below: every bit pattern is a valid
    // value and there is no padding.
    unsafe impl aya::Pod for EventHeader {}
    unsafe impl aya::Pod for FileId {}
    unsafe impl aya::Pod for Consumer {}
    unsafe impl aya::Pod for AgentPolicy {}
    unsafe impl aya::Pod for NetAllowKey {}
    unsafe impl aya::Pod for MutedSocketKey {}
    unsafe impl aya::Pod for LeftOutBytes {}
    unsafe impl aya::Pod for ExecAllowKey {}
    unsafe impl aya::Pod for FileInodeRuleKey {}
    unsafe impl aya::Pod for FileNameRuleKey {}

    const fn plain_old_data<T: zerocopy::FromBytes + zerocopy::IntoBytes>() {}
    const _: () = {
        plain_old_data::<EventHeader>();
        plain_old_data::<FileId>();
        plain_old_data::<Consumer>();
        plain_old_data::<AgentPolicy>();
        plain_old_data::<NetAllowKey>();
        plain_old_data::<MutedSocketKey>();
        plain_old_data::<LeftOutBytes>();
        plain_old_data::<ExecAllowKey>();
        plain_old_data::<FileInodeRuleKey>();
        plain_old_data::<FileNameRuleKey>();
    };
}

/// Bytes of a governed agent's name (its baseline's agent key) kept in [`AgentLabel`].
pub const AGENT_LABEL_LEN: usize = 240;

/// What userspace needs to know of a governed agent that the kernel's decisions do not carry:
/// the value of `AGENT_LABELS` (keyed by agent id), pinned with the enforcement so that a
/// collector adopting it after a restart names the baselines in its events, and so that
/// `agentscope enforce status` can say who is governed. The kernel programs never read it.
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy)]
pub struct AgentLabel {
    /// `enforce_scope::*`.
    pub scope_kind: u32,
    /// Bytes of `name` used.
    pub name_len: u32,
    /// The cgroup id, or the process tree's root pid.
    pub scope: u64,
    /// The baseline's agent key, UTF-8.
    pub name: [u8; AGENT_LABEL_LEN],
}

/// `AgentLabel::scope_kind`.
pub mod enforce_scope {
    pub const CGROUP: u32 = 1;
    pub const PROCESS_TREE: u32 = 2;
}

const _: () = assert!(core::mem::size_of::<AgentLabel>() == 16 + AGENT_LABEL_LEN);

#[cfg(feature = "user")]
mod label_pod {
    // SAFETY: as in `pod` above (no padding, every bit pattern valid), proven just below.
    unsafe impl aya::Pod for super::AgentLabel {}
    const fn plain_old_data<T: zerocopy::FromBytes + zerocopy::IntoBytes>() {}
    const _: () = plain_old_data::<super::AgentLabel>();
}

/// The value of `FILE_RULE_PATHS` (keyed by `agent << 32 | rule`): a governed file's path as
/// the agent names it, pinned with the file rules so that a collector adopting the pinned
/// enforcement names the files in its decisions (the kernel's decisions carry the rule's
/// index only). The kernel programs never read it.
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy)]
pub struct FileRulePath {
    /// Bytes of `path` used.
    pub path_len: u32,
    pub _pad: u32,
    /// UTF-8.
    pub path: [u8; PATH_LEN],
}

const _: () = assert!(core::mem::size_of::<FileRulePath>() == 8 + PATH_LEN);

#[cfg(feature = "user")]
mod file_rule_path_pod {
    // SAFETY: as in `pod` above (no padding, every bit pattern valid), proven just below.
    unsafe impl aya::Pod for super::FileRulePath {}
    const fn plain_old_data<T: zerocopy::FromBytes + zerocopy::IntoBytes>() {}
    const _: () = plain_old_data::<super::FileRulePath>();
}

/// DNS names in enforcement (issue 17): the answers a governed agent reads for a name its
/// policy lists allow it to reach the answered addresses (`collector-ebpf/src/enforce_dns.rs`).
pub mod enforce_dns {
    /// Bytes of a name in wire form (length-prefixed labels, lower case, zero-padded).
    pub const NAME_LEN: usize = 128;
    /// Bytes of an answer read (a UDP DNS message without EDNS is at most 512).
    pub const MESSAGE_LEN: usize = 512;
    /// Names over all agents.
    pub const MAX_NAMES: u32 = 4096;
    /// Answered addresses allowed at once, over all agents.
    pub const MAX_ADDRESSES: u32 = 16384;
    /// Addresses one name may allow at once (more answers are not allowed until some expire).
    pub const ADDRESSES_PER_NAME: u32 = 16;
    /// An answer's addresses stay allowed for its smallest TTL, at least this long (a TTL of 0
    /// would expire before the application connects).
    pub const MIN_TTL_SECONDS: u32 = 30;
    /// Resource records of an answer looked at.
    pub const MAX_ANSWERS: u32 = 8;
}

/// A key of `DNS_NAMES`: a name an agent's policy lists, in wire form.
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy)]
pub struct DnsNameKey {
    pub agent: u32,
    pub _pad: u32,
    pub name: [u8; enforce_dns::NAME_LEN],
}

/// The value of `DNS_NAMES`.
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy, Debug, Default)]
pub struct DnsNameState {
    /// Names the `DNS_ALLOW` entries it caused.
    pub id: u32,
    /// Addresses it allows now (kept under [`enforce_dns::ADDRESSES_PER_NAME`]).
    pub addresses: u32,
}

/// A key of `DNS_ALLOW`: an address an agent was given in an answer to a listed name
/// (IPv4 mapped into IPv6, as in [`NetAllowKey`]).
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DnsAllowKey {
    pub agent: u32,
    pub addr: [u8; 16],
}

/// The value of `DNS_ALLOW`.
#[repr(C)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable)
)]
#[derive(Clone, Copy, Debug, Default)]
pub struct DnsAllowValue {
    /// Boot time (`bpf_ktime_get_boot_ns`) after which it no longer allows.
    pub expires_ns: u64,
    /// The name's `DnsNameState::id`.
    pub name_id: u32,
    pub _pad: u32,
}

const _: () = {
    assert!(core::mem::size_of::<DnsNameKey>() == 8 + enforce_dns::NAME_LEN);
    assert!(core::mem::size_of::<DnsNameState>() == 8);
    assert!(core::mem::size_of::<DnsAllowKey>() == 20);
    assert!(core::mem::size_of::<DnsAllowValue>() == 16);
};

#[cfg(feature = "user")]
mod dns_pod {
    use super::{DnsAllowKey, DnsAllowValue, DnsNameKey, DnsNameState};
    // SAFETY: as in `pod` above (no padding, every bit pattern valid), proven just below.
    unsafe impl aya::Pod for DnsNameKey {}
    unsafe impl aya::Pod for DnsNameState {}
    unsafe impl aya::Pod for DnsAllowKey {}
    unsafe impl aya::Pod for DnsAllowValue {}
    const fn plain_old_data<T: zerocopy::FromBytes + zerocopy::IntoBytes>() {}
    const _: () = {
        plain_old_data::<DnsNameKey>();
        plain_old_data::<DnsNameState>();
        plain_old_data::<DnsAllowKey>();
        plain_old_data::<DnsAllowValue>();
    };
}
