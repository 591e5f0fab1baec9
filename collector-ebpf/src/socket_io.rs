//! Payloads of plain sockets and tracked pipe ends: `read`, `write`, `sendto`, `recvfrom`, and
//! the vectored `writev`, `readv`, `sendmsg`, `recvmsg` (walked by [`crate::vectored_io`]).
//! The buffer is stashed on entry and emitted on return, when the byte count is known. A
//! socket whose first bytes are a TLS record is left to [`crate::tls`]; inside an `SSL_*` call
//! the socket fd is only noted for the TLS record. A ClientHello as a socket's first bytes goes
//! to [`crate::tls_hello`]. Queries to port 53 go to [`crate::dns`],
//! pipe ends to [`crate::pipe_payload`]. Of a vectored call, the checks on first bytes look at
//! its first segment (rustls through tokio writes a whole ClientHello record as one).

use agentscope_common::{config, direction, source, stat, MutedSocketKey};
use aya_ebpf::{
    helpers::bpf_probe_read_user,
    macros::{map, tracepoint},
    maps::HashMap,
    programs::TracePointContext,
};

use crate::dns::{emit_dns, DNS_PORT};
use crate::emit::{bump, emit_payload, untracked};
use crate::maps::{
    SockKey, SockState, MUTED_SOCKETS, PIPES, SOCKS, SOCK_MUTED, SOCK_SAMPLED_OUT,
    SOCK_SEEN_PAYLOAD, SOCK_TLS,
};
use crate::output_tracking::{note_output_read, note_output_write};
use crate::pipe_payload::pipe_payload_wanted;
use crate::sockets::read_sockaddr;
use crate::task::{config, current_ids, tp_arg, tp_ret, traced};
use crate::tls::SSL_PENDING;
use crate::tls_hello::emit_tls_hello;
use crate::vectored_io::{emit_vectored, first_segment};

#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct IoArgs {
    /// The buffer; of a vectored call, its iovec array.
    pub(crate) buf: u64,
    pub(crate) fd: i32,
    pub(crate) direction: u32,
    /// Destination port given to sendto(), 0 if none.
    pub(crate) dport: u16,
    pub(crate) _pad: u16,
    /// Non-zero: the fd is a tracked pipe or socketpair, not an inet socket.
    pub(crate) pipe: u32,
    /// Segments in `buf` of a vectored call; 0 for a plain buffer.
    pub(crate) iovcnt: u64,
}

impl IoArgs {
    /// Where the call's first bytes are (`len` of them, at most `ret`): the buffer, or the
    /// first segment of a vectored call.
    #[inline(always)]
    pub(crate) fn head(&self, ret: u64) -> Option<(u64, u64)> {
        if self.iovcnt == 0 {
            return Some((self.buf, ret));
        }
        first_segment(self.buf, self.iovcnt, ret)
    }

    /// Emits the `len` bytes the call transferred as one call's payload, of connection
    /// `conn_id` (a socket's id, 0 for a pipe).
    #[inline(always)]
    pub(crate) fn emit(&self, source_kind: u32, len: u64, conn_id: u64) {
        if self.iovcnt == 0 {
            emit_payload(source_kind, self.direction, self.fd, conn_id, self.buf, len);
        } else {
            emit_vectored(
                source_kind,
                self.direction,
                self.fd,
                self.buf,
                self.iovcnt,
                len,
                conn_id,
            );
        }
    }
}

#[map]
static IO_PENDING: HashMap<u32, IoArgs> = HashMap::with_max_entries(16384, 0);

#[inline(always)]
fn io_enter(fd: i32, buf: u64, iovcnt: u64, dir: u32, dport: u16) {
    let (tgid, tid) = current_ids();
    if note_tls_transport(tgid, tid, fd) {
        return;
    }
    io_enter_plain(tgid, tid, fd, buf, iovcnt, dir, dport);
}

/// Inside an SSL call the socket traffic is ciphertext: remembers the fd for the TLS record
/// and marks the socket, rather than capturing it. Whether the thread is inside one.
#[inline(always)]
fn note_tls_transport(tgid: u32, tid: u32, fd: i32) -> bool {
    let Some(ssl) = SSL_PENDING.get_ptr_mut(&tid) else {
        return false;
    };
    unsafe { (*ssl).fd = fd };
    let key = SockKey { tgid, fd };
    if let Some(state) = SOCKS.get_ptr_mut(&key) {
        unsafe { (*state).flags |= SOCK_TLS };
    }
    true
}

/// A call outside any SSL call: stashed for its exit if its fd is a socket or tracked pipe.
#[inline(always)]
fn io_enter_plain(tgid: u32, tid: u32, fd: i32, buf: u64, iovcnt: u64, dir: u32, dport: u16) {
    let mut pipe = 0;
    if dport != DNS_PORT {
        let key = SockKey { tgid, fd };
        match unsafe { SOCKS.get(&key) } {
            Some(state) => {
                if state.flags & SOCK_TLS != 0 {
                    if dir == direction::INGRESS {
                        // A vectored read's buffer is its first segment.
                        let read_buf = if iovcnt == 0 {
                            buf
                        } else {
                            unsafe { bpf_probe_read_user(buf as *const u64) }.unwrap_or(0)
                        };
                        crate::tls_rustls::tls_socket_read(tgid, tid, fd, read_buf);
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
        iovcnt,
    };
    let _ = IO_PENDING.insert(&tid, &args, 0);
}

/// `writev`/`readv(fd, iov, iovcnt)`: stashed like a `write`/`read` of the segments.
#[inline(always)]
pub(crate) fn vectored_enter(fd: i32, iov: u64, iovcnt: u64, dir: u32) {
    if iov == 0 || iovcnt == 0 {
        return;
    }
    io_enter(fd, iov, iovcnt, dir, 0);
}

/// `sendmsg`/`recvmsg(fd, msg, flags)`: the segments of the `struct msghdr`.
#[inline(always)]
pub(crate) fn msg_enter(fd: i32, msg: u64, dir: u32) {
    // x86_64 struct msghdr: msg_iov @16, msg_iovlen @24.
    let iov: u64 = unsafe { bpf_probe_read_user((msg + 16) as *const u64) }.unwrap_or(0);
    let iovlen: u64 = unsafe { bpf_probe_read_user((msg + 24) as *const u64) }.unwrap_or(0);
    vectored_enter(fd, iov, iovlen, dir);
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
    let ret = ret as u64;
    let Some((head, head_len)) = args.head(ret) else {
        return;
    };
    let key = SockKey { tgid, fd: args.fd };
    // Pipes and sockets end in one emission, of a length the verifier no longer tells apart by
    // the path that got there ([`untracked`]): the pipe's JSON probe bounds the length
    // differently at each of its bytes, and each bound took the emission through the verifier
    // again (0.4 s of every collector's start on 6.18).
    let (source_kind, conn_id) = if args.pipe != 0 {
        if !pipe_payload_wanted(&key, &args, head, head_len, ret) {
            return;
        }
        (source::PIPE, 0)
    } else {
        match socket_payload_id(tgid, &key, &args, head, head_len, ret) {
            Some(id) => (source::SOCKET, id),
            None => return,
        }
    };
    args.emit(source_kind, untracked(ret), conn_id);
}

/// The socket's id when the `ret` bytes a call on it transferred (the first `head_len` at
/// `head`) are captured as its payload; `None` when they are not, or were emitted as
/// something else (a DNS query, a ClientHello).
#[inline(always)]
fn socket_payload_id(
    tgid: u32,
    key: &SockKey,
    args: &IoArgs,
    head: u64,
    head_len: u64,
    ret: u64,
) -> Option<u64> {
    let state = SOCKS.get_ptr_mut(key);
    let dport = match state {
        Some(state) if args.dport == 0 => unsafe { (*state).dport },
        _ => args.dport,
    };
    if dport == DNS_PORT && args.direction == direction::EGRESS {
        emit_dns(args.fd, dport, head, head_len);
        return None;
    }
    let state = unsafe { &mut *state? };
    if state.flags & SOCK_SEEN_PAYLOAD == 0 {
        state.flags |= SOCK_SEEN_PAYLOAD;
        // A TLS record header (handshake, version 3.x) on a socket's first bytes: the plaintext
        // is captured at the TLS library instead, if at all.
        let head_bytes: [u8; 2] =
            unsafe { bpf_probe_read_user(head as *const [u8; 2]) }.unwrap_or([0; 2]);
        if head_len >= 2 && head_bytes[0] == 0x16 && head_bytes[1] == 0x03 {
            state.flags |= SOCK_TLS;
            if args.direction == direction::EGRESS {
                emit_tls_hello(args.fd, dport, head, head_len);
            }
            return None;
        }
    }
    if config(config::CAPTURE_SOCKET_DATA) == 0 {
        return None;
    }
    if state.flags & SOCK_SAMPLED_OUT != 0 {
        crate::connection_sampling::count(tgid, ret);
        return None;
    }
    if muted(key, state) {
        bump(stat::OPAQUE_SOCKET_BYTES, ret);
        crate::left_out::opaque_socket(tgid, ret);
        return None;
    }
    Some(state.id)
}

/// Whether the collector asked to leave this socket's payloads out: marked on the socket once
/// a request in `MUTED_SOCKETS` names its id (a request for an earlier socket on the same fd
/// never matches a later one; ids are odd, so a request for id 0 matches none).
#[inline(always)]
fn muted(key: &SockKey, state: &mut SockState) -> bool {
    if state.flags & SOCK_MUTED != 0 {
        return true;
    }
    let request = MutedSocketKey {
        tgid: key.tgid,
        fd: key.fd,
    };
    match unsafe { MUTED_SOCKETS.get(&request) } {
        Some(id) if *id == state.id => {
            state.flags |= SOCK_MUTED;
            let _ = MUTED_SOCKETS.remove(&request);
            true
        }
        _ => false,
    }
}

/// `read`/`write(fd, buf, count)`: besides their payloads, what makes a process a consumer of
/// the collector's output ([`crate::output_tracking`]). The fd an SSL call reads or writes is
/// its transport socket, never collector output: the output check's walk of the fd table
/// (about ten kernel reads) is left out there.
#[inline(always)]
fn read_write_enter(ctx: &TracePointContext, dir: u32) {
    let fd = tp_arg::<i64>(ctx, 0) as i32;
    let (tgid, tid) = current_ids();
    if note_tls_transport(tgid, tid, fd) {
        return;
    }
    if dir == direction::EGRESS {
        note_output_write(fd);
    } else {
        note_output_read(fd);
    }
    io_enter_plain(tgid, tid, fd, tp_arg(ctx, 1), 0, dir, 0);
}

#[tracepoint]
pub fn sys_enter_write(ctx: TracePointContext) -> u32 {
    read_write_enter(&ctx, direction::EGRESS);
    0
}

#[tracepoint]
pub fn sys_enter_read(ctx: TracePointContext) -> u32 {
    read_write_enter(&ctx, direction::INGRESS);
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
        0,
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
        0,
        direction::INGRESS,
        0,
    );
    0
}

/// The return of every call [`io_enter`] stashes (`read`, `write`, `readv`, `writev`, `sendto`,
/// `recvfrom`, `sendmsg`, `recvmsg`): one program attached to each of their exit tracepoints,
/// which all share the layout of `syscall_trace_exit`. One program, not one per syscall,
/// because the verifier checks each loaded program whole: the payload emission inlined in
/// eight copies took about 1.7 s of every collector's start on 6.18 (0.21 s a copy).
#[tracepoint]
pub fn sys_exit_io(ctx: TracePointContext) -> u32 {
    io_exit(&ctx);
    0
}

#[tracepoint]
pub fn sys_enter_recvmsg(ctx: TracePointContext) -> u32 {
    msg_enter(
        tp_arg::<i64>(&ctx, 0) as i32,
        tp_arg(&ctx, 1),
        direction::INGRESS,
    );
    0
}
