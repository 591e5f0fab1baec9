//! TLS plaintext of rustls with aws-lc-rs (Codex CLI 0.171 and later): rustls seals and opens
//! each TLS 1.3 record with aws-lc's `EVP_AEAD_CTX_seal` and `EVP_AEAD_CTX_open`, and each
//! TLS 1.2 record with `EVP_AEAD_CTX_open` and, to seal, `EVP_AEAD_CTX_seal_scatter` (AES-GCM,
//! whose record carries an 8-byte explicit nonce before the ciphertext) or `EVP_AEAD_CTX_seal`
//! (ChaCha20-Poly1305), located by the collector in the stripped binary
//! (`crates/kernel/src/tls_targets/aws_lc.rs`). rustls
//! has no read/write function that sees both the plaintext and the socket, so the plaintext is
//! taken at the AEAD and bound to its connection at the socket syscall that carries the record:
//!
//! - **Egress.** `seal` encrypts in place, so the plaintext is copied at its entry into
//!   `RUSTLS_SEALED`, keyed by (tgid, address of the record): rustls writes the 5-byte record
//!   header just before the sealed bytes (and TLS 1.2 AES-GCM's explicit nonce between them)
//!   and hands that very buffer to `writev` (tokio, or std's `write_vectored`). When a
//!   `writev` of the process names that address in an iovec and the bytes there are the
//!   record's header (`17 03 03` and the record's length), the record goes to that socket: the
//!   plaintext is emitted then, with the `writev`'s fd. The binding is by the buffer's address and its
//!   header, not by thread, so a record written later by another thread (tokio moves tasks) is
//!   still bound exactly; a record never written is never emitted (the map is an LRU).
//! - **Ingress.** `open` decrypts in place in rustls's receive buffer, which tokio-rustls fills
//!   with one `read`/`recvfrom` and decrypts (`read_tls` then `process_new_packets`) on the same
//!   thread before anything else. So an open is bound to the thread's last read on a TLS socket
//!   of the same process (`RUSTLS_LAST_READ`), if the record lies near the buffer that read
//!   filled (within [`RECEIVE_WINDOW`]); otherwise it is not emitted and counted
//!   (`stat::TLS_UNBOUND`). The plaintext is copied at the return.
//!
//! Only application data is emitted, TLS 1.3's or TLS 1.2's, told apart by the AAD rustls
//! passes: TLS 1.3's is exactly the record header `17 03 03 len` with `len` the ciphertext and
//! 16-byte tag, and the inner content type (the last non-zero plaintext byte) must be 23;
//! TLS 1.2's is 13 bytes, the record's sequence number, then `17 03 03` and the plaintext's
//! length (RFC 5246 6.2.3.3). Handshake and alert records are dropped. Each call's
//! `EVP_AEAD_CTX` must point at an `EVP_AEAD` method table in the probed binary (within 1 GiB
//! of the probed function, like the other located probes). Anything else (another AEAD user,
//! QUIC, a misidentified function) is counted in `stat::TLS_REJECTED` and never emitted.
//!
//! Connection identity: `conn_id` is [`CONN_TAG`] with the socket fd in the low 32 bits, the
//! same for both directions; the fd is carried too, so a close ends the stream as for the
//! other TLS sources.

use agentscope_common::{
    data_flags, direction, kind, source, stat, DataEvent, CHUNK_LEN, DATA_PREFIX_LEN,
};
use aya_ebpf::{
    helpers::{
        bpf_probe_read_user,
        generated::{bpf_loop, bpf_probe_read_user as raw_read_user},
    },
    macros::{map, uprobe, uretprobe},
    maps::{HashMap, LruHashMap, PerCpuArray},
    programs::{ProbeContext, RetProbeContext},
};

use crate::emit::{bump, emit_payload, submit, untracked};
use crate::output_tracking::is_consumer;
use crate::stream_gaps::{self, StreamKey};
use crate::task::{current_ids, fill_header, traced};

/// `conn_id` of a rustls connection: this tag (above any user-space address, so it never
/// equals an `SSL*` or `*tls.Conn`) with the socket fd in the low 32 bits.
pub(crate) const CONN_TAG: u64 = 0x5255_0000_0000_0000;
const TAG_LEN: u64 = 16;
const RECORD_HEADER_LEN: u64 = 5;
const APPLICATION_DATA: u8 = 23;
/// The largest record plaintext (`CHUNK_LEN`: one record is one chunk), without TLS 1.3's
/// inner content type byte.
const MAX_PLAINTEXT: u64 = 16384;
/// TLS 1.2's AAD: sequence number (8), type, version (2), plaintext length (2).
const TLS12_AAD_LEN: u64 = 13;
/// TLS 1.2 AES-GCM's explicit nonce, between the record header and the ciphertext.
const GCM_EXPLICIT_NONCE_LEN: u64 = 8;
/// The largest TLS 1.3 ciphertext (plaintext, content type, padding and tag).
const MAX_CIPHERTEXT: u64 = 16384 + 256;
/// How far from the buffer the thread's last read filled an opened record can lie: rustls
/// keeps at most a partial record before that buffer, and a read brings less than this.
const RECEIVE_WINDOW: u64 = 64 * 1024;
/// Trailing zero padding looked through for the inner content type.
const MAX_PADDING: usize = 32;
/// iovecs of one `writev` looked at (rustls passes at most 64).
const MAX_IOVECS: u64 = 64;
const SAME_IMAGE: u64 = 1 << 30;

#[repr(C)]
#[derive(Clone, Copy)]
struct RecordKey {
    tgid: u32,
    _pad: u32,
    /// Address of the record's header: the sealed bytes start `RECORD_HEADER_LEN` after it.
    record: u64,
}

/// A sealed record: the length its header will carry, and its plaintext as the event to emit.
#[repr(C)]
struct Sealed {
    record_len: u64,
    event: DataEvent,
}

/// Sealed application-data records waiting for the `writev` that sends them: the prefix is
/// filled at the seal (source, direction, lengths), the rest when the record is bound.
#[map]
static RUSTLS_SEALED: LruHashMap<RecordKey, Sealed> = LruHashMap::with_max_entries(256, 0);

/// A record is built here before it goes into `RUSTLS_SEALED` (it does not fit the stack).
#[map]
static RUSTLS_SEAL_SCRATCH: PerCpuArray<Sealed> = PerCpuArray::with_max_entries(1, 0);

/// Processes that sealed or opened a TLS 1.3 record through the probed AEAD: only their
/// `writev`s are looked at.
#[map]
static RUSTLS_PROCESSES: LruHashMap<u32, u8> = LruHashMap::with_max_entries(16384, 0);

#[repr(C)]
#[derive(Clone, Copy)]
struct LastRead {
    tgid: u32,
    fd: i32,
    buf: u64,
}

/// tid → the last `read`/`recvfrom` it started on a TLS socket.
#[map]
static RUSTLS_LAST_READ: LruHashMap<u32, LastRead> = LruHashMap::with_max_entries(16384, 0);

#[repr(C)]
#[derive(Clone, Copy)]
struct OpenArgs {
    out: u64,
    out_len_ptr: u64,
    plaintext_len: u64,
    /// The socket the record came from, or -1 when it could not be proven.
    fd: i32,
    /// 1: a TLS 1.2 record (all of its plaintext is application data; no inner content type).
    tls12: u32,
}

#[map]
static RUSTLS_OPEN_PENDING: HashMap<u32, OpenArgs> = HashMap::with_max_entries(16384, 0);

#[inline(always)]
fn reject() {
    bump(stat::TLS_REJECTED, 1);
}

#[inline(always)]
fn read_u64(address: u64) -> Option<u64> {
    unsafe { bpf_probe_read_user(address as *const u64) }.ok()
}

/// The `n`th stack argument (the seventh argument is the first) at a function's entry, where
/// `rsp` points at the return address.
#[inline(always)]
fn stack_arg(ctx: &ProbeContext, n: u64) -> Option<u64> {
    // SAFETY: a uprobe's context is the probed task's registers.
    let rsp = unsafe { (*ctx.regs).rsp };
    read_u64(rsp + 8 + 8 * n)
}

/// Whether the `EVP_AEAD_CTX` points at an `EVP_AEAD` method table in the probed binary.
#[inline(always)]
fn aead_in_image(ctx: &ProbeContext, aead_ctx: u64) -> bool {
    // SAFETY: a uprobe's context is the probed task's registers.
    let ip = unsafe { (*ctx.regs).rip };
    if aead_ctx == 0 || aead_ctx % 8 != 0 {
        return false;
    }
    let method = read_u64(aead_ctx).unwrap_or(0);
    method != 0 && method % 8 == 0 && method.abs_diff(ip) < SAME_IMAGE
}

/// What a call's AAD says the record is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Aad {
    /// TLS 1.3: the record header, `17 03 03 len` with `len == record_len`.
    Tls13,
    /// TLS 1.2: sequence number, then this content type, `03 03` and `len == plaintext_len`.
    Tls12 { content_type: u8 },
    /// Neither: not a TLS record rustls seals or opens.
    Other,
}

/// Reads the AAD (`ad`, `ad_len`) of a record whose TLS 1.3 record length would be
/// `record_len` and whose TLS 1.2 plaintext length would be `plaintext_len`.
#[inline(always)]
fn record_aad(ad: u64, ad_len: u64, record_len: u64, plaintext_len: u64) -> Aad {
    if ad_len == RECORD_HEADER_LEN {
        let Ok(h) = (unsafe { bpf_probe_read_user(ad as *const [u8; 5]) }) else {
            return Aad::Other;
        };
        if h[0] == APPLICATION_DATA
            && h[1] == 3
            && h[2] == 3
            && ((h[3] as u64) << 8 | h[4] as u64) == record_len
        {
            return Aad::Tls13;
        }
    } else if ad_len == TLS12_AAD_LEN {
        let Ok(a) = (unsafe { bpf_probe_read_user((ad + 8) as *const [u8; 5]) }) else {
            return Aad::Other;
        };
        // Change cipher spec (20) is never encrypted; alert, handshake and application data are.
        if (21..=23).contains(&a[0])
            && a[1] == 3
            && a[2] == 3
            && ((a[3] as u64) << 8 | a[4] as u64) == plaintext_len
        {
            return Aad::Tls12 { content_type: a[0] };
        }
    }
    Aad::Other
}

/// Copies `len` plaintext bytes at `input` into `RUSTLS_SEALED`, to be emitted when a
/// `writev` sends the record at `record` (whose header will say `record_len`).
#[inline(always)]
fn stash_sealed(tgid: u32, input: u64, len: u64, record: u64, record_len: u64) {
    let Some(sealed) = RUSTLS_SEAL_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let sealed = unsafe { &mut *sealed };
    let len = len as usize & (2 * CHUNK_LEN - 1);
    if len > CHUNK_LEN {
        return;
    }
    let read = unsafe {
        raw_read_user(
            sealed.event.data.as_mut_ptr() as *mut core::ffi::c_void,
            len as u32,
            input as *const core::ffi::c_void,
        )
    };
    if read != 0 {
        return;
    }
    sealed.record_len = record_len;
    let prefix = &mut sealed.event.prefix;
    prefix.source = source::TLS_RUSTLS;
    prefix.direction = direction::EGRESS;
    prefix.flags = data_flags::LAST;
    prefix.total_len = len as u64;
    prefix.offset = 0;
    prefix.lost_bytes = 0;
    prefix.seq = 0;
    prefix.data_len = len as u32;
    let key = RecordKey {
        tgid,
        _pad: 0,
        record,
    };
    let _ = RUSTLS_SEALED.insert(&key, sealed, 0);
    let _ = RUSTLS_PROCESSES.insert(&tgid, &1, 0);
}

/// `EVP_AEAD_CTX_seal(ctx, out, out_len, max_out_len, nonce, nonce_len, in, in_len, ad,
/// ad_len)`: rustls seals in place and appends the tag; TLS 1.3's `payload ‖ content type`,
/// or TLS 1.2's payload (ChaCha20-Poly1305).
#[uprobe]
pub fn rustls_seal_enter(ctx: ProbeContext) -> u32 {
    let (tgid, _) = current_ids();
    if !traced(tgid) {
        return 0;
    }
    let aead_ctx = ctx.arg::<u64>(0).unwrap_or(0);
    let out = ctx.arg::<u64>(1).unwrap_or(0);
    let max_out = ctx.arg::<u64>(3).unwrap_or(0);
    let input = stack_arg(&ctx, 0).unwrap_or(0);
    let in_len = stack_arg(&ctx, 1).unwrap_or(0);
    let ad = stack_arg(&ctx, 2).unwrap_or(0);
    let ad_len = stack_arg(&ctx, 3).unwrap_or(0);
    if input == 0
        || out < RECORD_HEADER_LEN
        || in_len == 0
        || in_len > MAX_PLAINTEXT + 1
        || max_out < in_len + TAG_LEN
        || !aead_in_image(&ctx, aead_ctx)
    {
        reject();
        return 0;
    }
    match record_aad(ad, ad_len, in_len + TAG_LEN, in_len) {
        Aad::Tls13 => {
            let content_type =
                unsafe { bpf_probe_read_user((input + in_len - 1) as *const u8) }.unwrap_or(0);
            if content_type == APPLICATION_DATA {
                stash_sealed(
                    tgid,
                    input,
                    in_len - 1,
                    out - RECORD_HEADER_LEN,
                    in_len + TAG_LEN,
                );
            }
        }
        Aad::Tls12 { content_type } => {
            if content_type == APPLICATION_DATA && in_len <= MAX_PLAINTEXT {
                stash_sealed(
                    tgid,
                    input,
                    in_len,
                    out - RECORD_HEADER_LEN,
                    in_len + TAG_LEN,
                );
            }
        }
        Aad::Other => reject(),
    }
    0
}

/// `EVP_AEAD_CTX_seal_scatter(ctx, out, out_tag, out_tag_len, max_out_tag_len, nonce,
/// nonce_len, in, in_len, extra_in, extra_in_len, ad, ad_len)`: rustls seals a TLS 1.2
/// AES-GCM record's payload in place (`in == out`, just after the explicit nonce) and appends
/// the tag it returns. Nothing else is accepted (TLS 1.3 goes through `EVP_AEAD_CTX_seal`).
#[uprobe]
pub fn rustls_seal_scatter_enter(ctx: ProbeContext) -> u32 {
    let (tgid, _) = current_ids();
    if !traced(tgid) {
        return 0;
    }
    let aead_ctx = ctx.arg::<u64>(0).unwrap_or(0);
    let out = ctx.arg::<u64>(1).unwrap_or(0);
    let input = stack_arg(&ctx, 1).unwrap_or(0);
    let in_len = stack_arg(&ctx, 2).unwrap_or(0);
    let extra_in_len = stack_arg(&ctx, 4).unwrap_or(0);
    let ad = stack_arg(&ctx, 5).unwrap_or(0);
    let ad_len = stack_arg(&ctx, 6).unwrap_or(0);
    let header_and_nonce = RECORD_HEADER_LEN + GCM_EXPLICIT_NONCE_LEN;
    if input != out
        || out < header_and_nonce
        || in_len == 0
        || in_len > MAX_PLAINTEXT
        || extra_in_len != 0
        || !aead_in_image(&ctx, aead_ctx)
    {
        reject();
        return 0;
    }
    match record_aad(ad, ad_len, 0, in_len) {
        Aad::Tls12 { content_type } => {
            if content_type == APPLICATION_DATA {
                stash_sealed(
                    tgid,
                    input,
                    in_len,
                    out - header_and_nonce,
                    GCM_EXPLICIT_NONCE_LEN + in_len + TAG_LEN,
                );
            }
        }
        _ => reject(),
    }
    0
}

/// State shared with [`bind_iovec`] through `bpf_loop`.
#[repr(C)]
struct WritevLoop {
    tgid: u32,
    fd: i32,
    iov: u64,
    count: u64,
}

/// `writev(fd, iov, iovcnt)` by a process that sealed records: each iovec that starts at a
/// sealed record's header sends that record on `fd` (called from the `writev` entry hook).
#[inline(always)]
pub(crate) fn records_written(fd: i32, iov: u64, iovcnt: u64) {
    let (tgid, _) = current_ids();
    if fd < 0 || iovcnt == 0 || unsafe { RUSTLS_PROCESSES.get(&tgid) }.is_none() || !traced(tgid) {
        return;
    }
    let mut state = WritevLoop {
        tgid,
        fd,
        iov,
        count: iovcnt,
    };
    unsafe {
        bpf_loop(
            MAX_IOVECS as u32,
            bind_iovec as *mut core::ffi::c_void,
            &mut state as *mut WritevLoop as *mut core::ffi::c_void,
            0,
        )
    };
}

/// One iovec of [`records_written`]; returns 1 to stop the loop.
#[inline(never)]
unsafe extern "C" fn bind_iovec(index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    let state = unsafe { &*(ctx as *const WritevLoop) };
    if index >= state.count {
        return 1;
    }
    // struct iovec { void *iov_base; size_t iov_len; }
    let Ok(entry) = (unsafe { bpf_probe_read_user((state.iov + 16 * index) as *const [u64; 2]) })
    else {
        return 1;
    };
    let key = RecordKey {
        tgid: state.tgid,
        _pad: 0,
        record: entry[0],
    };
    let Some(sealed) = RUSTLS_SEALED.get_ptr_mut(&key) else {
        return 0;
    };
    let sealed = unsafe { &mut *sealed };
    bind_record(state, &key, sealed, entry[1]);
    // Removed only once the record has been emitted from the map's own memory.
    let _ = RUSTLS_SEALED.remove(&key);
    0
}

/// Emits `sealed`'s plaintext, sealed at `key.record`, as written on `state.fd`, if the iovec
/// (of `iov_len` bytes) still starts with that record's header.
#[inline(always)]
fn bind_record(state: &WritevLoop, key: &RecordKey, sealed: &mut Sealed, iov_len: u64) {
    let record = &mut sealed.event;
    let len = record.prefix.data_len as u64;
    let header: [u8; 5] =
        unsafe { bpf_probe_read_user(key.record as *const [u8; 5]) }.unwrap_or([0; 5]);
    let record_len = (header[3] as u64) << 8 | header[4] as u64;
    // The bytes there must still be that record's header (the buffer was not reused for
    // something else since the seal).
    if iov_len < RECORD_HEADER_LEN
        || header[0] != APPLICATION_DATA
        || header[1] != 3
        || header[2] != 3
        || record_len != sealed.record_len
    {
        return;
    }
    if is_consumer(state.tgid) {
        bump(stat::CONSUMER_BYTES, len);
        return;
    }
    if crate::payload_switch::left_out(state.tgid, len) {
        return;
    }
    if crate::connection_sampling::tls_sampled_out(state.tgid, state.fd, len) {
        return;
    }
    fill_header(&mut record.prefix.header, kind::DATA, DATA_PREFIX_LEN);
    record.prefix.fd = state.fd;
    record.prefix.conn_id = CONN_TAG | state.fd as u32 as u64;
    record.prefix.call_id = record.prefix.header.ts_ns ^ ((record.prefix.header.tid as u64) << 40);
    let len = len as usize & (2 * CHUNK_LEN - 1);
    if len > CHUNK_LEN {
        return;
    }
    record.prefix.header.size = (DATA_PREFIX_LEN + len) as u32;
    let stream = StreamKey {
        tgid: state.tgid,
        fd: record.prefix.fd,
        conn_id: record.prefix.conn_id,
        source: record.prefix.source,
        direction: record.prefix.direction,
    };
    record.prefix.lost_bytes = stream_gaps::take_lost(&stream);
    if !submit(record as *const DataEvent, DATA_PREFIX_LEN + len) {
        bump(stat::LOST_BYTES, len as u64);
        bump(stat::LOST_EGRESS_BYTES, len as u64);
        stream_gaps::note_lost(&stream, record.prefix.lost_bytes + len as u64);
    }
}

/// A `read`/`recvfrom` on a socket marked TLS (called from the syscall's entry hook): the
/// thread's next opens are bound to it. Noted for every traced process, not only those seen
/// sealing or opening already: a process whose first records went by before the probes were
/// attached (a binary's first run, analysed while it connects) still has its later records
/// bound.
#[inline(always)]
pub(crate) fn tls_socket_read(tgid: u32, tid: u32, fd: i32, buf: u64) {
    if !traced(tgid) {
        return;
    }
    let _ = RUSTLS_LAST_READ.insert(&tid, &LastRead { tgid, fd, buf }, 0);
}

/// `EVP_AEAD_CTX_open(ctx, out, out_len, max_out_len, nonce, nonce_len, in, in_len, ad,
/// ad_len)`: rustls opens each received record in place.
#[uprobe]
pub fn rustls_open_enter(ctx: ProbeContext) -> u32 {
    let (tgid, tid) = current_ids();
    if !traced(tgid) {
        return 0;
    }
    let aead_ctx = ctx.arg::<u64>(0).unwrap_or(0);
    let out = ctx.arg::<u64>(1).unwrap_or(0);
    let out_len_ptr = ctx.arg::<u64>(2).unwrap_or(0);
    let max_out = ctx.arg::<u64>(3).unwrap_or(0);
    let input = stack_arg(&ctx, 0).unwrap_or(0);
    let in_len = stack_arg(&ctx, 1).unwrap_or(0);
    let ad = stack_arg(&ctx, 2).unwrap_or(0);
    let ad_len = stack_arg(&ctx, 3).unwrap_or(0);
    if input == 0
        || out == 0
        || out_len_ptr == 0
        || in_len <= TAG_LEN
        || in_len > MAX_CIPHERTEXT
        || max_out < in_len - TAG_LEN
        || !aead_in_image(&ctx, aead_ctx)
    {
        reject();
        return 0;
    }
    let tls12 = match record_aad(ad, ad_len, in_len, in_len - TAG_LEN) {
        Aad::Tls13 => 0,
        // TLS 1.2's content type is in the AAD: only application data is worth the return.
        Aad::Tls12 { content_type } if content_type == APPLICATION_DATA => 1,
        Aad::Tls12 { .. } => return 0,
        Aad::Other => {
            reject();
            return 0;
        }
    };
    let _ = RUSTLS_PROCESSES.insert(&tgid, &1, 0);
    let fd = match unsafe { RUSTLS_LAST_READ.get(&tid) } {
        Some(read)
            if read.tgid == tgid && read.fd >= 0 && input.abs_diff(read.buf) < RECEIVE_WINDOW =>
        {
            read.fd
        }
        _ => -1,
    };
    let args = OpenArgs {
        out,
        out_len_ptr,
        plaintext_len: in_len - TAG_LEN,
        fd,
        tls12,
    };
    let _ = RUSTLS_OPEN_PENDING.insert(&tid, &args, 0);
    0
}

#[uretprobe]
pub fn rustls_open_exit(ctx: RetProbeContext) -> u32 {
    let (_, tid) = current_ids();
    let Some(args) = (unsafe { RUSTLS_OPEN_PENDING.get(&tid) }).copied() else {
        return 0;
    };
    let _ = RUSTLS_OPEN_PENDING.remove(&tid);
    // `int` 1 on success.
    if ctx.ret::<i32>() != 1 {
        return 0;
    }
    let out_len = unsafe { bpf_probe_read_user(args.out_len_ptr as *const u64) }.unwrap_or(0);
    if out_len != args.plaintext_len || out_len == 0 {
        return 0;
    }
    let content_len = if args.tls12 != 0 {
        out_len
    } else {
        match tls13_content_len(args.out, out_len) {
            Some(len) => len,
            None => return 0,
        }
    };
    if args.fd < 0 {
        bump(stat::TLS_UNBOUND, 1);
        return 0;
    }
    // One emission, of a length the verifier no longer tells apart by the path that found it:
    // the padding scan ends in up to MAX_PADDING states, each of which took the emission
    // through the verifier again (0.9 s of every collector's start on 6.18).
    emit_payload(
        source::TLS_RUSTLS,
        direction::INGRESS,
        args.fd,
        CONN_TAG | args.fd as u32 as u64,
        args.out,
        untracked(content_len),
    );
    0
}

/// A TLS 1.3 record's content length, from its opened plaintext of `out_len` bytes at `out`,
/// when its inner content type (the last non-zero byte: zero padding may follow it) is
/// application data; `None` for any other record.
#[inline(always)]
fn tls13_content_len(out: u64, out_len: u64) -> Option<u64> {
    let tail_len = if out_len < MAX_PADDING as u64 {
        out_len
    } else {
        MAX_PADDING as u64
    };
    let mut tail = [0u8; MAX_PADDING];
    let tail_start = out + out_len - tail_len;
    let tail_len = tail_len as usize & (MAX_PADDING - 1 | MAX_PADDING);
    if tail_len == 0 || tail_len > MAX_PADDING {
        return None;
    }
    let read = unsafe {
        raw_read_user(
            tail.as_mut_ptr() as *mut core::ffi::c_void,
            tail_len as u32,
            tail_start as *const core::ffi::c_void,
        )
    };
    if read != 0 {
        return None;
    }
    let mut content_len = 0u64;
    let mut content_type = 0u8;
    let mut i = tail_len;
    while i > 0 {
        i -= 1;
        let byte = tail[i & (MAX_PADDING - 1)];
        if byte != 0 {
            content_type = byte;
            content_len = out_len - (tail_len - i) as u64;
            break;
        }
    }
    (content_type == APPLICATION_DATA && content_len > 0).then_some(content_len)
}
