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
    /// Non-zero: the fd is a tracked pipe or socketpair, not an inet socket.
    pub(crate) pipe: u32,
}

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
