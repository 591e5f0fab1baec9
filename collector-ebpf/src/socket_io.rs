//! Payloads of plain sockets and tracked pipe ends: `read`, `write`, `sendto`, `recvfrom`.
//! The buffer is stashed on entry and emitted on return, when the byte count is known. A
//! socket whose first bytes are a TLS record is left to [`crate::tls`]; inside an `SSL_*` call
//! the socket fd is only noted for the TLS record. A ClientHello as a socket's first bytes goes
//! to [`crate::tls_hello`]. Queries to port 53 go to [`crate::dns`],
//! pipe ends to [`crate::pipe_payload`].

use agentscope_common::{config, direction, source};
use aya_ebpf::{
    helpers::bpf_probe_read_user,
    macros::{map, tracepoint},
    maps::HashMap,
    programs::TracePointContext,
};

use crate::dns::{emit_dns, DNS_PORT};
use crate::emit::emit_payload;
use crate::maps::{SockKey, PIPES, SOCKS, SOCK_SEEN_PAYLOAD, SOCK_TLS};
use crate::output_tracking::{note_output_read, note_output_write};
use crate::pipe_payload::pipe_io_exit;
use crate::sockets::read_sockaddr;
use crate::task::{config, current_ids, tp_arg, tp_ret, traced};
use crate::tls::SSL_PENDING;
use crate::tls_hello::emit_tls_hello;

#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct IoArgs {
    pub(crate) buf: u64,
    pub(crate) fd: i32,
    pub(crate) direction: u32,
    /// Destination port given to sendto(), 0 if none.
    pub(crate) dport: u16,
    pub(crate) _pad: u16,
    /// Non-zero: the fd is a tracked pipe or socketpair, not an inet socket
    /// ([`WRITEV_FIRST_BYTES`]: a socket's first `writev`).
    pub(crate) pipe: u32,
    /// For [`WRITEV_FIRST_BYTES`]: the length of the first iovec, which `buf` points into.
    pub(crate) limit: u64,
}

/// [`IoArgs::pipe`] of a socket's first `writev` (rustls through tokio writes its records with
/// `writev`): only its first iovec is looked at, for a ClientHello; `writev` payloads of plain
/// sockets are not captured.
const WRITEV_FIRST_BYTES: u32 = 2;

#[map]
static IO_PENDING: HashMap<u32, IoArgs> = HashMap::with_max_entries(16384, 0);

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
                    if dir == direction::INGRESS {
                        crate::tls_rustls::tls_socket_read(tgid, tid, fd, buf);
                    }
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
        limit: 0,
    };
    let _ = IO_PENDING.insert(&tid, &args, 0);
}

/// `writev(fd, iov, iovcnt)` on a socket that has carried nothing yet: stashes its first
/// iovec, so the return can tell whether it starts with a ClientHello.
#[inline(always)]
pub(crate) fn writev_enter(fd: i32, iov: u64) {
    let (tgid, tid) = current_ids();
    if !traced(tgid) || SSL_PENDING.get_ptr(&tid).is_some() {
        return;
    }
    let key = SockKey { tgid, fd };
    match unsafe { SOCKS.get(&key) } {
        Some(state) if state.flags & (SOCK_SEEN_PAYLOAD | SOCK_TLS) == 0 => {}
        _ => return,
    }
    // struct iovec { void *iov_base; size_t iov_len; }
    let Ok(first) = (unsafe { bpf_probe_read_user(iov as *const [u64; 2]) }) else {
        return;
    };
    let args = IoArgs {
        buf: first[0],
        fd,
        direction: direction::EGRESS,
        dport: 0,
        _pad: 0,
        pipe: WRITEV_FIRST_BYTES,
        limit: first[1],
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
    if args.pipe == WRITEV_FIRST_BYTES {
        let ret = (ret as u64).min(args.limit) as i64;
        if ret >= 2 {
            writev_first_bytes(&key, &args, ret);
        }
        return;
    }
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
            if args.direction == direction::EGRESS {
                emit_tls_hello(args.fd, dport, args.buf, ret as u64);
            }
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

/// The first bytes of a socket, written with `writev`: a ClientHello is emitted and the socket
/// marked TLS, as for `write`; anything else only marks the socket as having carried data.
#[inline(always)]
fn writev_first_bytes(key: &SockKey, args: &IoArgs, ret: i64) {
    let Some(state) = SOCKS.get_ptr_mut(key) else {
        return;
    };
    let state = unsafe { &mut *state };
    if state.flags & SOCK_SEEN_PAYLOAD != 0 {
        return;
    }
    state.flags |= SOCK_SEEN_PAYLOAD;
    let head: [u8; 2] =
        unsafe { bpf_probe_read_user(args.buf as *const [u8; 2]) }.unwrap_or([0; 2]);
    if head[0] == 0x16 && head[1] == 0x03 {
        state.flags |= SOCK_TLS;
        emit_tls_hello(args.fd, state.dport, args.buf, ret as u64);
    }
}

#[tracepoint]
pub fn sys_exit_writev(ctx: TracePointContext) -> u32 {
    io_exit(&ctx);
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
