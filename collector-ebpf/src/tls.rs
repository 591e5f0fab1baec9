//! TLS plaintext at the OpenSSL API: uprobes on `SSL_write`, `SSL_read` and their `_ex` forms
//! (attached by the collector to every ELF file that exports them: a shared libssl, or an
//! executable such as Node that embeds OpenSSL), and one uretprobe for all four. The `SSL*` identifies the connection; the socket fd is learned from
//! a syscall nested in the call ([`crate::socket_io`]) when there is one.

use agentscope_common::{direction, source};
use aya_ebpf::{
    helpers::bpf_probe_read_user,
    macros::{map, uprobe, uretprobe},
    maps::{HashMap, LruHashMap},
    programs::{ProbeContext, RetProbeContext},
};

use crate::emit::emit_payload;
use crate::task::{current_ids, traced};

#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct SslArgs {
    pub(crate) ssl: u64,
    pub(crate) buf: u64,
    /// `_ex` variants: where OpenSSL stores the byte count; 0 for the plain variants.
    pub(crate) len_ptr: u64,
    /// Bytes the caller asked for: a reported length beyond it is not trusted.
    pub(crate) num: u64,
    /// Socket fd seen in a syscall nested in this call, -1 until then.
    pub(crate) fd: i32,
    pub(crate) direction: u32,
    /// Non-zero for a function the collector located in a stripped binary (BoringSSL in
    /// Bun, OpenSSL 3 in Codex CLI) rather than found exported: its `SSL*` was checked.
    pub(crate) located: u32,
    pub(crate) _pad: u32,
}

#[map]
pub(crate) static SSL_PENDING: HashMap<u32, SslArgs> = HashMap::with_max_entries(16384, 0);

/// `SSL*` → socket fd, learned from nested syscalls, for calls that make none (buffered reads).
#[map]
static SSL_FDS: LruHashMap<u64, i32> = LruHashMap::with_max_entries(65536, 0);

/// How a probed function was found, so what its arguments must be checked against.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    /// Exported under its OpenSSL name: trusted.
    Exported,
    /// BoringSSL's `SSL_write`/`SSL_read`, located in a stripped binary.
    BoringSslLocated,
    /// OpenSSL 3's `ssl_write_internal`/`ssl_read_internal`, located in a stripped binary.
    OpenSsl3Located,
    /// The same in OpenSSL 3.0/3.1 (the old `struct ssl_st`).
    OpenSsl30Located,
}

/// Where a function stores the byte count it wrote or read (the `_ex` forms and OpenSSL 3's
/// internal functions), or `None` when it returns it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum LengthAt {
    Returned,
    /// Through the pointer in the fourth argument.
    Arg3,
    /// Through the pointer in the fifth argument (`ssl_write_internal` with QUIC flags).
    Arg4,
}

#[inline(always)]
fn ssl_enter(ctx: &ProbeContext, dir: u32, extended: bool) {
    let length = if extended {
        LengthAt::Arg3
    } else {
        LengthAt::Returned
    };
    ssl_enter_checked(ctx, dir, length, Found::Exported);
}

/// Stashes a call's arguments until it returns. For a located function, first checks that
/// they look like a TLS write or read's ([`crate::tls_located`]); a call that does not is
/// counted and never emitted.
#[inline(always)]
pub(crate) fn ssl_enter_checked(ctx: &ProbeContext, dir: u32, length: LengthAt, found: Found) {
    let (tgid, tid) = current_ids();
    if !traced(tgid) {
        return;
    }
    let looks_right = match found {
        Found::Exported => true,
        Found::BoringSslLocated => crate::tls_located::arguments_look_right(ctx),
        Found::OpenSsl3Located => crate::tls_located::openssl3_arguments_look_right(ctx),
        Found::OpenSsl30Located => crate::tls_located::openssl30_arguments_look_right(ctx),
    };
    if !looks_right {
        return;
    }
    let args = SslArgs {
        ssl: ctx.arg::<u64>(0).unwrap_or(0),
        buf: ctx.arg::<u64>(1).unwrap_or(0),
        len_ptr: match length {
            LengthAt::Returned => 0,
            LengthAt::Arg3 => ctx.arg::<u64>(3).unwrap_or(0),
            LengthAt::Arg4 => ctx.arg::<u64>(4).unwrap_or(0),
        },
        num: ctx.arg::<u64>(2).unwrap_or(0),
        fd: -1,
        direction: dir,
        located: (found != Found::Exported) as u32,
        _pad: 0,
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
    // All probed functions return a C int: the upper half of the register is not sign-extended,
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
