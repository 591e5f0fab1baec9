//! TCP state changes (`sock:inet_sock_set_state`). Many happen in softirq context, where the
//! current task is whoever the interrupt found running (`ksoftirqd`, another process), so each
//! change is attributed to the socket's owner: the process that last moved the socket through
//! a state only a system call makes (connect, listen, close or shutdown), or that listens on
//! its local port (accepted connections). The owner decides the pid filter's verdict and is
//! what the record's header names; a socket with no known owner keeps the current task.

use agentscope_common::{config, kind, EventHeader, TcpStateEvent, COMM_LEN};
use aya_ebpf::{
    helpers::{bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_uid_gid},
    macros::{map, tracepoint},
    maps::LruHashMap,
    programs::TracePointContext,
};

use crate::emit::submit_value;
use crate::sockets::AF_INET6;
use crate::task::{config, current_ids, fill_header, traced};

/// Who a socket belongs to, as a record's header names a process.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SocketOwner {
    tgid: u32,
    tid: u32,
    uid: u32,
    gid: u32,
    cgroup_id: u64,
    comm: [u8; COMM_LEN],
}

/// TCP sockets (by `struct sock` address) and their owners: with a pid filter only the traced
/// processes' sockets, otherwise every socket a process moved through a system-call state.
#[map]
static SOCKET_OWNERS: LruHashMap<u64, SocketOwner> = LruHashMap::with_max_entries(65536, 0);

/// Ports processes listen on, and who listens (with a pid filter, only the traced
/// processes'); sockets accepted on them are the listener's.
#[map]
static LISTENING_PORTS: LruHashMap<u16, SocketOwner> = LruHashMap::with_max_entries(4096, 0);

#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    let (tgid, _) = current_ids();
    if tgid as u64 == config(config::SELF_TGID) {
        return 0;
    }
    let skaddr = unsafe { ctx.read_at::<u64>(8) }.unwrap_or(0);
    let newstate = unsafe { ctx.read_at::<i32>(20) }.unwrap_or(0);
    let owner = socket_owner(tgid, &ctx, skaddr, newstate);
    if config(config::FILTER_PIDS) != 0 && owner.is_none() {
        return 0;
    }
    let mut event: TcpStateEvent = unsafe { core::mem::zeroed() };
    fill_header(
        &mut event.header,
        kind::TCP_STATE,
        core::mem::size_of::<TcpStateEvent>(),
    );
    if let Some(owner) = owner {
        name_owner(&mut event.header, &owner);
    }
    unsafe {
        event.skaddr = skaddr;
        event.oldstate = ctx.read_at::<i32>(16).unwrap_or(0);
        event.newstate = newstate;
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

/// The header names the owner when the change ran on someone else's time (softirq).
#[inline(always)]
fn name_owner(header: &mut EventHeader, owner: &SocketOwner) {
    if header.pid == owner.tgid {
        return;
    }
    header.pid = owner.tgid;
    header.tid = owner.tid;
    header.uid = owner.uid;
    header.gid = owner.gid;
    header.cgroup_id = owner.cgroup_id;
    header.comm = owner.comm;
}

/// The current task, as a socket owner.
#[inline(always)]
fn current_owner() -> SocketOwner {
    let (tgid, tid) = current_ids();
    let uid_gid = bpf_get_current_uid_gid();
    SocketOwner {
        tgid,
        tid,
        uid: uid_gid as u32,
        gid: (uid_gid >> 32) as u32,
        cgroup_id: unsafe { bpf_get_current_cgroup_id() },
        comm: bpf_get_current_comm().unwrap_or([0; COMM_LEN]),
    }
}

const TCP_SYN_SENT: i32 = 2;
const TCP_FIN_WAIT1: i32 = 4;
const TCP_CLOSE: i32 = 7;
const TCP_LAST_ACK: i32 = 9;
const TCP_LISTEN: i32 = 10;

/// The owner of the socket a state change is about, kept up to date: a process that moves
/// the socket into a state only a system call makes (connect: SYN_SENT, listen: LISTEN, close
/// or shutdown: FIN_WAIT1 or LAST_ACK) becomes its owner (with a pid filter, only a traced
/// one); a socket whose local port someone listens on is the listener's (accepted
/// connections). `None`: no owner known (with a pid filter: not the traced tree's).
#[inline(always)]
fn socket_owner(
    tgid: u32,
    ctx: &TracePointContext,
    skaddr: u64,
    newstate: i32,
) -> Option<SocketOwner> {
    let sport = unsafe { ctx.read_at::<u16>(24) }.unwrap_or(0);
    let by_syscall = newstate == TCP_SYN_SENT
        || newstate == TCP_LISTEN
        || newstate == TCP_FIN_WAIT1
        || newstate == TCP_LAST_ACK;
    let mut owner = None;
    if by_syscall && traced(tgid) {
        let current = current_owner();
        if newstate == TCP_LISTEN {
            let _ = LISTENING_PORTS.insert(&sport, &current, 0);
        }
        owner = Some(current);
    }
    if owner.is_none() {
        owner = unsafe { SOCKET_OWNERS.get(&skaddr) }.copied();
    }
    if owner.is_none() {
        owner = unsafe { LISTENING_PORTS.get(&sport) }.copied();
    }
    let found = owner?;
    if newstate == TCP_CLOSE {
        let _ = SOCKET_OWNERS.remove(&skaddr);
        let oldstate = unsafe { ctx.read_at::<i32>(16) }.unwrap_or(0);
        if oldstate == TCP_LISTEN {
            let _ = LISTENING_PORTS.remove(&sport);
        }
    } else {
        let _ = SOCKET_OWNERS.insert(&skaddr, &found, 0);
    }
    Some(found)
}
