//! TLS plaintext at Go's `crypto/tls`: uprobes at the start of `(*Conn).Write` (the buffer is
//! complete there), at the start of `(*Conn).Read` (stashing where the bytes will go) and where
//! `(*Conn).Read`'s byte count is known: its copy into the caller's buffer, or else every `RET`.
//! The collector finds the offsets in the binary's Go function table (`go_tls_targets` in the
//! kernel crate, whose module doc explains the placements: on instructions the kernel emulates
//! instead of single-stepping, where the code is recognised).
//!
//! "Start" is the prologue's stack-growth check's `JBE`, which runs again after morestack
//! restarts the function: the `*_check` programs read the flags the check's `CMP` left and
//! skip the run that branches to morestack (`CF` or `ZF` set), so each call counts once. The
//! `*_enter` programs sit on a first instruction (the check was not recognised) and count
//! every run. The registers still hold the arguments in both places.
//!
//! Never uretprobes: they overwrite the return address on the goroutine's stack, which the Go
//! runtime moves and copies when it grows, and the program crashes. Go code runs with the
//! register ABI (Go 1.17+ on x86-64): the receiver in `RAX`, the slice's pointer and length in
//! `RBX` and `RCX`, `runtime.memmove`'s destination, source and count in the same three, the
//! result `n` in `RAX` at return, and the current goroutine (`g`) always in `R14`. A goroutine
//! can move to another thread between `Read`'s entry and its copy or return, so the stash is
//! keyed by (tgid, `g`), never by thread id.
//!
//! `Read`'s buffer can be on the reading goroutine's own stack (`Read` does not let it
//! escape), and the runtime copies that stack elsewhere when it grows (or shrinks it during a
//! garbage collection while `Read` waits for data), keeping every frame at the same distance
//! from the stack's top (`g.stack.hi`). The stash keeps the stack's bounds at entry; at the copy
//! or `RET`, a buffer that was inside them is moved by however far the top moved.
//!
//! The connection identity is the `*tls.Conn`. Its socket fd is followed through
//! `Conn.conn` (a `net.Conn` interface: its data word points at a `*net.TCPConn`, whose first
//! word is the `*netFD`, whose `poll.FD` has `Sysfd` after the 16-byte `fdMutex`); layouts
//! stable since Go 1.x. The result is only trusted if it names a socket of this process that
//! carried a TLS ClientHello (`SOCKS` with `SOCK_TLS`); otherwise the fd is -1, as for Node.

use agentscope_common::{direction, source, stat};
use aya_ebpf::{
    bindings::pt_regs,
    helpers::bpf_probe_read_user,
    macros::{map, uprobe},
    maps::LruHashMap,
    programs::ProbeContext,
};

use crate::emit::{bump, emit_payload};
use crate::maps::{SockKey, SOCKS, SOCK_TLS};
use crate::task::{current_ids, traced};

#[repr(C)]
#[derive(Clone, Copy)]
struct GoroutineKey {
    tgid: u32,
    _pad: u32,
    /// The `g` pointer (`R14`).
    goroutine: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct GoReadArgs {
    conn: u64,
    buf: u64,
    /// The slice's length: a reported count beyond it is not trusted.
    len: u64,
    /// The goroutine's stack at entry (`g.stack.lo`, `g.stack.hi`), 0 if unreadable.
    stack_lo: u64,
    stack_hi: u64,
}

/// Offsets in the runtime's `g` of `stack.lo` and `stack.hi` (its first field, a `stack`
/// struct; unchanged since Go 1.4, the runtime's assembly depends on it).
const G_STACK_LO: u64 = 0;
const G_STACK_HI: u64 = 8;

/// `Read` calls in progress. LRU: a goroutine that never returns (its process died) is pushed
/// out instead of filling the map.
#[map]
static GO_TLS_READS: LruHashMap<GoroutineKey, GoReadArgs> = LruHashMap::with_max_entries(16384, 0);

#[inline(always)]
fn regs(ctx: &ProbeContext) -> &pt_regs {
    // SAFETY: a uprobe's context is the user registers; the verifier checks every field read.
    unsafe { &*ctx.regs }
}

#[inline(always)]
fn read_user_u64(addr: u64) -> Option<u64> {
    if addr == 0 {
        return None;
    }
    unsafe { bpf_probe_read_user(addr as *const u64) }.ok()
}

/// The socket fd behind a `*tls.Conn`, or -1 (see the module doc).
#[inline(always)]
fn conn_fd(tgid: u32, conn: u64) -> i32 {
    let Some(tcp_conn) = read_user_u64(conn.wrapping_add(8)) else {
        return -1;
    };
    let Some(net_fd) = read_user_u64(tcp_conn) else {
        return -1;
    };
    let Some(sysfd) = read_user_u64(net_fd.wrapping_add(16)) else {
        return -1;
    };
    if sysfd > i32::MAX as u64 {
        return -1;
    }
    let fd = sysfd as i32;
    match unsafe { SOCKS.get(&SockKey { tgid, fd }) } {
        Some(state) if state.flags & SOCK_TLS != 0 => fd,
        _ => -1,
    }
}

/// `JBE` taken: `CF` or `ZF` set (bits 0 and 6 of `RFLAGS`).
const JBE_TAKEN: u64 = (1 << 0) | (1 << 6);

/// Whether a probe on the stack check's `JBE` fired in the run that goes on into the body
/// (the other runs branch to morestack and start the function again).
#[inline(always)]
fn past_stack_check(r: &pt_regs) -> bool {
    r.eflags & JBE_TAKEN == 0
}

#[uprobe]
pub fn go_tls_write_check(ctx: ProbeContext) -> u32 {
    if past_stack_check(regs(&ctx)) {
        write_enter(&ctx);
    }
    0
}

#[uprobe]
pub fn go_tls_write_enter(ctx: ProbeContext) -> u32 {
    write_enter(&ctx);
    0
}

#[inline(always)]
fn write_enter(ctx: &ProbeContext) {
    let (tgid, _) = current_ids();
    if !traced(tgid) {
        return;
    }
    let r = regs(ctx);
    let (conn, buf, len) = (r.rax, r.rbx, r.rcx);
    // A Go length is a signed int: anything past i64::MAX is not a slice.
    if conn == 0 || buf == 0 || len == 0 || len > i64::MAX as u64 {
        return;
    }
    emit_payload(
        source::TLS_GO,
        direction::EGRESS,
        conn_fd(tgid, conn),
        conn,
        buf,
        len,
    );
}

#[uprobe]
pub fn go_tls_read_check(ctx: ProbeContext) -> u32 {
    if past_stack_check(regs(&ctx)) {
        read_enter(&ctx);
    }
    0
}

#[uprobe]
pub fn go_tls_read_enter(ctx: ProbeContext) -> u32 {
    read_enter(&ctx);
    0
}

#[inline(always)]
fn read_enter(ctx: &ProbeContext) {
    let (tgid, _) = current_ids();
    if !traced(tgid) {
        return;
    }
    let r = regs(ctx);
    let key = GoroutineKey {
        tgid,
        _pad: 0,
        goroutine: r.r14,
    };
    if r.rax == 0 || r.rbx == 0 || r.rcx == 0 || key.goroutine == 0 {
        return;
    }
    let args = GoReadArgs {
        conn: r.rax,
        buf: r.rbx,
        len: r.rcx,
        stack_lo: read_user_u64(key.goroutine.wrapping_add(G_STACK_LO)).unwrap_or(0),
        stack_hi: read_user_u64(key.goroutine.wrapping_add(G_STACK_HI)).unwrap_or(0),
    };
    let _ = GO_TLS_READS.insert(&key, &args, 0);
}

/// The stashed `Read` of the current goroutine, taken out of the map.
#[inline(always)]
fn take_read(tgid: u32, goroutine: u64) -> Option<GoReadArgs> {
    let key = GoroutineKey {
        tgid,
        _pad: 0,
        goroutine,
    };
    let args = (unsafe { GO_TLS_READS.get(&key) }).copied()?;
    let _ = GO_TLS_READS.remove(&key);
    Some(args)
}

/// On `Read`'s `CALL runtime.memmove` (to `RAX`, from `RBX`, count `RCX`): the decrypted bytes
/// being copied into the caller's buffer. Only trusted when the destination is that buffer
/// (where it is now, if the stack moved); anything else is counted in `stat::TLS_REJECTED`.
/// The bytes are read from the source, which is the connection's heap buffer.
#[uprobe]
pub fn go_tls_read_copy(ctx: ProbeContext) -> u32 {
    let (tgid, _) = current_ids();
    let r = regs(&ctx);
    let Some(args) = take_read(tgid, r.r14) else {
        return 0;
    };
    let n = r.rcx;
    if n == 0 || n > args.len || r.rbx == 0 || r.rax != buffer_now(&args, r.r14) {
        bump(stat::TLS_REJECTED, 1);
        return 0;
    }
    emit_read(tgid, &args, r.rbx, n);
    0
}

#[uprobe]
pub fn go_tls_read_return(ctx: ProbeContext) -> u32 {
    let (tgid, _) = current_ids();
    let r = regs(&ctx);
    let Some(args) = take_read(tgid, r.r14) else {
        return 0;
    };
    let n = r.rax as i64;
    if n <= 0 || n as u64 > args.len {
        return 0;
    }
    emit_read(tgid, &args, buffer_now(&args, r.r14), n as u64);
    0
}

/// Sends `n` bytes `Read` returned, from `bytes` (its copy's source, or the caller's buffer).
#[inline(always)]
fn emit_read(tgid: u32, args: &GoReadArgs, bytes: u64, n: u64) {
    emit_payload(
        source::TLS_GO,
        direction::INGRESS,
        conn_fd(tgid, args.conn),
        args.conn,
        bytes,
        n,
    );
}

/// Where `Read`'s buffer is now (at its copy or return): moved with the goroutine's stack if it was on it
/// and the stack was copied meanwhile (see the module doc).
#[inline(always)]
fn buffer_now(args: &GoReadArgs, goroutine: u64) -> u64 {
    if args.stack_lo == 0 || args.buf < args.stack_lo || args.buf >= args.stack_hi {
        return args.buf;
    }
    match read_user_u64(goroutine.wrapping_add(G_STACK_HI)) {
        Some(hi) if hi != 0 => args.buf.wrapping_add(hi.wrapping_sub(args.stack_hi)),
        _ => args.buf,
    }
}
