//! Socket lifecycle: `connect`, `accept`/`accept4` (with the peer or listening address) and
//! `close`. A connected or accepted inet socket enters `SOCKS`, which is what makes its
//! payloads captured ([`crate::socket_io`]); `close` ends it, and the stream of a pipe end
//! that carried JSON.

use agentscope_common::{kind, sock_flags, CloseEvent, SockAddrEvent};
use aya_ebpf::{
    helpers::bpf_probe_read_user,
    macros::{map, tracepoint},
    maps::HashMap,
    programs::TracePointContext,
};

use crate::emit::submit_value;
use crate::maps::{SockKey, SockState, PIPES, PIPE_JSON_SEEN, SOCKS, SOCK_SAMPLED_OUT};
use crate::pipes::forget_pipe;
use crate::task::{current_ids, fill_header, tp_arg, tp_ret, traced};

const AF_INET: u16 = 2;
pub(crate) const AF_INET6: u16 = 10;
pub(crate) const AF_UNIX: u16 = 1;

const EINPROGRESS: i64 = 115;

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

/// Reads a sockaddr from user memory into (family, port in host order, address bytes).
#[inline(always)]
pub(crate) fn read_sockaddr(addr: u64) -> Option<(u16, u16, [u8; 16])> {
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
        // Never 0 (0 is "no id"): successive sockets on one fd differ by their times.
        let id = event.header.ts_ns | 1;
        let mut flags = 0;
        let sampled_out = if args.kind == kind::CONNECT {
            crate::connection_sampling::choose_connect(
                tgid,
                id,
                event.family,
                event.port,
                &event.addr,
            )
        } else {
            crate::connection_sampling::choose(id)
        };
        if sampled_out {
            flags |= SOCK_SAMPLED_OUT;
            event.flags |= sock_flags::PAYLOADS_SAMPLED_OUT;
        }
        let state = SockState {
            flags,
            dport: event.port,
            family: event.family,
            id,
        };
        let _ = SOCKS.insert(&key, &state, 0);
    }
    if event.family == AF_UNIX {
        let addrlen = if args.kind == kind::CONNECT {
            args.addrlen as i64
        } else {
            crate::unix_sockets::written_addrlen(args.addrlen_ptr)
        };
        crate::unix_sockets::emit_unix(&event, args.addr, addrlen);
        return;
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
