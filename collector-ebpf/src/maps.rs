//! Maps that several hook families share: the ring buffer the records go to, the counters
//! and configuration the collector reads and fills, the set of traced processes and their
//! parents, and the tables of sockets and pipe ends the traced processes hold, keyed by
//! (tgid, fd). Maps only one family uses live in that family's module.

use agentscope_common::{config, stat};
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};

/// Default size; the collector may resize it before load.
#[map]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(64 * 1024 * 1024, 0);

#[map]
pub(crate) static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

#[map]
pub(crate) static CONFIG: Array<u64> = Array::with_max_entries(config::COUNT, 0);

/// tgids to trace when `config::FILTER_PIDS` is set; children are added as they fork.
#[map]
pub(crate) static TARGETS: HashMap<u32, u8> = HashMap::with_max_entries(16384, 0);

/// tgid → parent tgid, seeded from /proc by the collector and kept by fork/exit.
#[map]
pub(crate) static PARENTS: LruHashMap<u32, u32> = LruHashMap::with_max_entries(131072, 0);

#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct SockKey {
    pub(crate) tgid: u32,
    pub(crate) fd: i32,
}

/// Socket flags kept in `SOCKS`.
pub(crate) const SOCK_TLS: u32 = 1;
pub(crate) const SOCK_SEEN_PAYLOAD: u32 = 2;
/// The collector asked for this socket's payloads to be left out (`MUTED_SOCKETS`).
pub(crate) const SOCK_MUTED: u32 = 4;
/// The connection was sampled out at its connect or accept (`connection_sampling.rs`).
pub(crate) const SOCK_SAMPLED_OUT: u32 = 8;

#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct SockState {
    pub(crate) flags: u32,
    pub(crate) dport: u16,
    pub(crate) family: u16,
    /// Boot-time ns of the connect or accept: the socket's id in its payloads' `conn_id`.
    pub(crate) id: u64,
}

/// Sockets whose payloads are captured: those connected or accepted while tracing (and any the
/// collector seeds from /proc).
#[map]
pub(crate) static SOCKS: LruHashMap<SockKey, SockState> = LruHashMap::with_max_entries(65536, 0);

/// Sockets whose payloads the collector asked to leave out, with the id of the socket meant
/// ([`agentscope_common::MutedSocketKey`]); an entry goes once its socket is marked
/// [`SOCK_MUTED`], and one for a socket already closed is pushed out by newer ones.
#[map]
pub(crate) static MUTED_SOCKETS: LruHashMap<agentscope_common::MutedSocketKey, u64> =
    LruHashMap::with_max_entries(4096, 0);

/// Pipe flags kept in `PIPES`.
/// The fd has carried a buffer that starts like JSON: its reads and writes are captured.
pub(crate) const PIPE_JSON_SEEN: u32 = 1;
/// The fd is closed by a successful exec (`O_CLOEXEC`, `F_DUPFD_CLOEXEC`, `FD_CLOEXEC`).
pub(crate) const PIPE_CLOEXEC: u32 = 2;
/// An `AF_UNIX` socketpair rather than a pipe (libuv, so Node, gives children those as stdio).
pub(crate) const PIPE_SOCKETPAIR: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct PipeState {
    pub(crate) flags: u32,
    pub(crate) _pad: u32,
}

/// Pipe and socketpair ends held by traced processes, keyed like `SOCKS`. An entry exists only
/// for an fd the process really holds: made by pipe/pipe2/socketpair, copied by dup/dup2/dup3/
/// fcntl(F_DUPFD), or inherited at fork (fds below `INHERITED_FDS`); removed by close,
/// close_range, exec (close-on-exec ends) and any open/accept that returns the same number.
#[map]
pub(crate) static PIPES: LruHashMap<SockKey, PipeState> = LruHashMap::with_max_entries(65536, 0);
