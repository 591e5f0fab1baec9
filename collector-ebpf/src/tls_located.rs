//! TLS plaintext at BoringSSL's `SSL_write` and `SSL_read` where the binary does not export
//! them (Bun, so Claude Code), and at OpenSSL 3's `ssl_write_internal`/`ssl_read_internal` in
//! a static binary that does not export OpenSSL (Codex CLI; checks at the end of this file):
//! the collector locates them from the binary's own code
//! (`crates/kernel/src/tls_targets/{boringssl,openssl3}.rs`) and attaches these entry probes
//! at the offsets found; returns go to the same `ssl_exit_probe` as OpenSSL's.
//!
//! A located function could be the wrong one, so nothing is emitted unless the call looks like
//! a TLS write or read: the length is a non-negative C `int` below 1 GiB, the buffer is
//! readable, and the `SSL*` points at readable memory whose method table (`method`, a static
//! table) and handshake function (`do_handshake`) lie in the same binary as the probed function
//! (within 1 GiB of it: the binary's images are smaller; a heap pointer or a small integer is not)
//! and whose `s3` state is set. Every rejected call is counted in `stat::TLS_REJECTED`; the
//! return must still report at most the bytes asked for. The field offsets are those of
//! BoringSSL's `struct ssl_st` (`ssl/internal.h`): `method` at 0, `do_handshake` at 0x28, `s3`
//! at 0x30 (the located `SSL_read` itself reads `s3` at 0x30). The `version` field at 0x10 is
//! not used: Bun's BoringSSL leaves it 0 after the handshake.

use agentscope_common::{direction, stat};
use aya_ebpf::{
    helpers::bpf_probe_read_user,
    macros::{map, uprobe, uretprobe},
    maps::HashMap,
    programs::{ProbeContext, RetProbeContext},
};

use crate::emit::bump;
use crate::task::{current_ids, traced};
use crate::tls::{ssl_enter_checked, Found, LengthAt};

const SSL_METHOD_OFFSET: u64 = 0;
const SSL_DO_HANDSHAKE_OFFSET: u64 = 0x28;
const SSL_S3_OFFSET: u64 = 0x30;
/// Larger than any TLS write or read a client makes; a wrong function's third argument is
/// often a pointer or a flag word.
const MAX_LEN: i64 = 1 << 30;
/// How far the binary's own code and static data can be from the probed function.
const SAME_IMAGE: u64 = 1 << 30;

#[inline(always)]
fn near(address: u64, ip: u64) -> bool {
    address != 0 && address.abs_diff(ip) < SAME_IMAGE
}

#[inline(always)]
fn read_u64(address: u64) -> Option<u64> {
    unsafe { bpf_probe_read_user(address as *const u64) }.ok()
}

#[inline(always)]
fn reject() -> bool {
    bump(stat::TLS_REJECTED, 1);
    false
}

/// `SSL_write(SSL *ssl, const void *buf, int num)` / `SSL_read(SSL *ssl, void *buf, int num)`.
#[inline(always)]
pub(crate) fn arguments_look_right(ctx: &ProbeContext) -> bool {
    let ssl = ctx.arg::<u64>(0).unwrap_or(0);
    let buf = ctx.arg::<u64>(1).unwrap_or(0);
    let num = ctx.arg::<u64>(2).unwrap_or(0) as u32 as i32 as i64;
    if ssl == 0 || ssl % 8 != 0 || buf == 0 || !(0..MAX_LEN).contains(&num) {
        return reject();
    }
    if num > 0 && unsafe { bpf_probe_read_user(buf as *const u8) }.is_err() {
        return reject();
    }
    // SAFETY: a uprobe's context is the probed task's registers.
    let ip = unsafe { (*ctx.regs).rip };
    let method = read_u64(ssl + SSL_METHOD_OFFSET).unwrap_or(0);
    let handshake = read_u64(ssl + SSL_DO_HANDSHAKE_OFFSET).unwrap_or(0);
    let s3 = read_u64(ssl + SSL_S3_OFFSET).unwrap_or(0);
    if !near(method, ip) || method % 8 != 0 || !near(handshake, ip) || s3 == 0 || s3 % 8 != 0 {
        return reject();
    }
    true
}

#[uprobe]
pub fn located_ssl_write_enter(ctx: ProbeContext) -> u32 {
    ssl_enter_checked(
        &ctx,
        direction::EGRESS,
        LengthAt::Returned,
        Found::BoringSslLocated,
    );
    0
}

#[uprobe]
pub fn located_ssl_read_enter(ctx: ProbeContext) -> u32 {
    ssl_enter_checked(
        &ctx,
        direction::INGRESS,
        LengthAt::Returned,
        Found::BoringSslLocated,
    );
    0
}

/// OpenSSL 3's `struct ssl_st` (`ssl/ssl_local.h`, 3.2 to 3.6): `int type` at 0
/// (`SSL_TYPE_SSL_CONNECTION` is 0; QUIC objects have the top bit of the low byte set),
/// `SSL_CTX *ctx` at 8, `const SSL_METHOD *defltmeth` at 0x10, `const SSL_METHOD *method` at
/// 0x18. In `SSL_METHOD`, `ssl_read` is at 0x50 and `ssl_write` at 0x60 (the located
/// functions call through exactly these).
const OSSL_TYPE_OFFSET: u64 = 0;
const OSSL_CTX_OFFSET: u64 = 0x8;
const OSSL_DEFLTMETH_OFFSET: u64 = 0x10;
const OSSL_METHOD_OFFSET: u64 = 0x18;
const OSSL_METHOD_READ_OFFSET: u64 = 0x50;
const OSSL_METHOD_WRITE_OFFSET: u64 = 0x60;

/// `ssl_read_internal(SSL *s, void *buf, size_t num, size_t *readbytes)` /
/// `ssl_write_internal(SSL *s, const void *buf, size_t num, [uint64_t flags,] size_t
/// *written)` of OpenSSL 3: the length is a `size_t` below 1 GiB, the buffer readable, the
/// `SSL*` a TLS connection (type 0) whose context is set and whose method tables and their
/// read and write functions lie in the probed binary.
#[inline(always)]
pub(crate) fn openssl3_arguments_look_right(ctx: &ProbeContext) -> bool {
    let ssl = ctx.arg::<u64>(0).unwrap_or(0);
    let buf = ctx.arg::<u64>(1).unwrap_or(0);
    let num = ctx.arg::<u64>(2).unwrap_or(u64::MAX);
    if ssl == 0 || ssl % 8 != 0 || buf == 0 || num >= MAX_LEN as u64 {
        return reject();
    }
    if num > 0 && unsafe { bpf_probe_read_user(buf as *const u8) }.is_err() {
        return reject();
    }
    // SAFETY: a uprobe's context is the probed task's registers.
    let ip = unsafe { (*ctx.regs).rip };
    let kind =
        unsafe { bpf_probe_read_user((ssl + OSSL_TYPE_OFFSET) as *const u32) }.unwrap_or(u32::MAX);
    let ssl_ctx = read_u64(ssl + OSSL_CTX_OFFSET).unwrap_or(0);
    let defltmeth = read_u64(ssl + OSSL_DEFLTMETH_OFFSET).unwrap_or(0);
    let method = read_u64(ssl + OSSL_METHOD_OFFSET).unwrap_or(0);
    if kind != 0 || ssl_ctx == 0 || ssl_ctx % 8 != 0 || !near(defltmeth, ip) || !near(method, ip) {
        return reject();
    }
    let read = read_u64(method + OSSL_METHOD_READ_OFFSET).unwrap_or(0);
    let write = read_u64(method + OSSL_METHOD_WRITE_OFFSET).unwrap_or(0);
    if !near(read, ip) || !near(write, ip) {
        return reject();
    }
    true
}

/// OpenSSL 3.0/3.1's `struct ssl_st`: `int version` at 0, `const SSL_METHOD *method` at 8;
/// in that `SSL_METHOD`, `ssl_read` at 0x38 and `ssl_write` at 0x48 (the located functions
/// call through exactly these).
const OSSL30_METHOD_OFFSET: u64 = 0x8;
const OSSL30_METHOD_READ_OFFSET: u64 = 0x38;
const OSSL30_METHOD_WRITE_OFFSET: u64 = 0x48;

/// As [`openssl3_arguments_look_right`] for OpenSSL 3.0/3.1: the `SSL*`'s version is a TLS
/// or DTLS one (or `TLS_ANY_VERSION` before the handshake settles it), its method table and
/// that table's read and write functions lie in the probed binary.
#[inline(always)]
pub(crate) fn openssl30_arguments_look_right(ctx: &ProbeContext) -> bool {
    let ssl = ctx.arg::<u64>(0).unwrap_or(0);
    let buf = ctx.arg::<u64>(1).unwrap_or(0);
    let num = ctx.arg::<u64>(2).unwrap_or(u64::MAX);
    if ssl == 0 || ssl % 8 != 0 || buf == 0 || num >= MAX_LEN as u64 {
        return reject();
    }
    if num > 0 && unsafe { bpf_probe_read_user(buf as *const u8) }.is_err() {
        return reject();
    }
    // SAFETY: a uprobe's context is the probed task's registers.
    let ip = unsafe { (*ctx.regs).rip };
    let version = unsafe { bpf_probe_read_user(ssl as *const u32) }.unwrap_or(0);
    let known = matches!(version, 0x300..=0x304 | 0x10000 | 0x100 | 0xfeff | 0xfefd);
    let method = read_u64(ssl + OSSL30_METHOD_OFFSET).unwrap_or(0);
    if !known || !near(method, ip) || method % 8 != 0 {
        return reject();
    }
    let read = read_u64(method + OSSL30_METHOD_READ_OFFSET).unwrap_or(0);
    let write = read_u64(method + OSSL30_METHOD_WRITE_OFFSET).unwrap_or(0);
    if !near(read, ip) || !near(write, ip) {
        return reject();
    }
    true
}

#[uprobe]
pub fn located_openssl30_read_enter(ctx: ProbeContext) -> u32 {
    ssl_enter_checked(
        &ctx,
        direction::INGRESS,
        LengthAt::Arg3,
        Found::OpenSsl30Located,
    );
    0
}

#[uprobe]
pub fn located_openssl30_write_enter(ctx: ProbeContext) -> u32 {
    ssl_enter_checked(
        &ctx,
        direction::EGRESS,
        LengthAt::Arg3,
        Found::OpenSsl30Located,
    );
    0
}

#[uprobe]
pub fn located_openssl3_read_enter(ctx: ProbeContext) -> u32 {
    ssl_enter_checked(
        &ctx,
        direction::INGRESS,
        LengthAt::Arg3,
        Found::OpenSsl3Located,
    );
    0
}

/// `ssl_write_internal(s, buf, num, written)`, OpenSSL 3.0 to 3.2.
#[uprobe]
pub fn located_openssl3_write_enter(ctx: ProbeContext) -> u32 {
    ssl_enter_checked(
        &ctx,
        direction::EGRESS,
        LengthAt::Arg3,
        Found::OpenSsl3Located,
    );
    0
}

/// `ssl_write_internal(s, buf, num, flags, written)`, OpenSSL 3.3 and later.
#[uprobe]
pub fn located_openssl3_write_flags_enter(ctx: ProbeContext) -> u32 {
    ssl_enter_checked(
        &ctx,
        direction::EGRESS,
        LengthAt::Arg4,
        Found::OpenSsl3Located,
    );
    0
}

/// Threads inside a located OpenSSL 3 `SSL_do_handshake` (tid → 1). A static binary can link
/// OpenSSL and another TLS stack (Codex CLI: OpenSSL 3 and rustls): a ClientHello written
/// inside the located handshake is evidence that the connection's plaintext goes through the
/// probed functions ([`crate::tls_hello`] flags it); one written outside it is another stack's.
#[map]
static IN_HANDSHAKE: HashMap<u32, u32> = HashMap::with_max_entries(16384, 0);

#[inline(always)]
pub(crate) fn in_located_handshake() -> bool {
    let (_, tid) = current_ids();
    unsafe { IN_HANDSHAKE.get(&tid) }.is_some()
}

#[uprobe]
pub fn located_openssl3_handshake_enter(_ctx: ProbeContext) -> u32 {
    let (tgid, tid) = current_ids();
    if traced(tgid) {
        let _ = IN_HANDSHAKE.insert(&tid, &1, 0);
    }
    0
}

#[uretprobe]
pub fn located_openssl3_handshake_exit(_ctx: RetProbeContext) -> u32 {
    let (_, tid) = current_ids();
    let _ = IN_HANDSHAKE.remove(&tid);
    0
}
