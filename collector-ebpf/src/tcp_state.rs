//! TCP state changes (`sock:inet_sock_set_state`). With a pid filter they are attributed by
//! socket address and listening port rather than by the current task, because many of them
//! happen in softirq context on behalf of no particular process.

use agentscope_common::{config, kind, TcpStateEvent};
use aya_ebpf::{
    macros::{map, tracepoint},
    maps::LruHashMap,
    programs::TracePointContext,
};

use crate::emit::submit_value;
use crate::sockets::AF_INET6;
use crate::task::{config, current_ids, fill_header, traced};

/// With a pid filter: TCP sockets (by `struct sock` address) of the traced processes, so state
/// changes made in softirq context (on behalf of no particular process) are still attributed.
#[map]
static TRACED_SOCKS: LruHashMap<u64, u8> = LruHashMap::with_max_entries(65536, 0);

/// With a pid filter: ports the traced processes listen on; sockets accepted on them are theirs.
#[map]
static TRACED_PORTS: LruHashMap<u16, u8> = LruHashMap::with_max_entries(4096, 0);

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
