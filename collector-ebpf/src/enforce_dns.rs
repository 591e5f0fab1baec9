//! DNS names in governed agents' network policies (issue 17): a name the policy lists allows
//! the addresses the agent's own DNS answers for it return. The race (an application connects
//! right after `recvfrom` returns, before any userspace could have seen the answer) is closed
//! here, in the kernel: the answer is parsed at the exit of the `recvfrom` that read it, and
//! its addresses are in `DNS_ALLOW` before the syscall returns to the application, so its
//! `connect` finds them (`enforce.rs` looks `DNS_ALLOW` up after `NET_ALLOW`).
//!
//! Only a datagram from port 53 that parses as a response is read; its question's name is
//! looked up, with the agent, in `DNS_NAMES` (written from the policy); the A and AAAA records
//! of its answer section (the first `MAX_ANSWERS`) are allowed, for any port and TCP or UDP,
//! until the record's TTL (at least `MIN_TTL_SECONDS`) has passed, the kernel checking the
//! expiry itself; at most `ADDRESSES_PER_NAME` addresses per name at once (the collector
//! removes expired entries and gives their places back). The message is read from the
//! application's buffer after the kernel wrote it: a process that races its own buffer, or
//! that can send itself datagrams from port 53, can make answers up (docs/enforcement.md).
//!
//! The parser is hand-written because nothing else runs in the kernel; it reads a fixed
//! 512-byte copy with every offset masked into it, so it cannot read out of bounds whatever
//! the message says.

use agentscope_common::{
    enforce_dns::{
        ADDRESSES_PER_NAME, MAX_ADDRESSES, MAX_ANSWERS, MAX_NAMES, MESSAGE_LEN, MIN_TTL_SECONDS,
        NAME_LEN,
    },
    DnsAllowKey, DnsAllowValue, DnsNameKey, DnsNameState,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns,
        generated::{bpf_loop, bpf_probe_read_user},
    },
    macros::{map, tracepoint},
    maps::{HashMap, LruHashMap, PerCpuArray},
    programs::TracePointContext,
};

use crate::enforce::governed_agent;
use crate::sockets::read_sockaddr;
use crate::task::{tp_arg, tp_ret};

/// (agent, name) → its state; written by the collector from the policies.
#[map]
static DNS_NAMES: HashMap<DnsNameKey, DnsNameState> = HashMap::with_max_entries(MAX_NAMES, 0);

/// (agent, address) → until when an answer allows it.
#[map]
pub(crate) static DNS_ALLOW: HashMap<DnsAllowKey, DnsAllowValue> =
    HashMap::with_max_entries(MAX_ADDRESSES, 0);

/// A governed thread's `recvfrom` in progress: its buffer and source address pointers (LRU: a
/// thread killed inside `recvfrom` never reaches the exit that removes its entry).
#[repr(C)]
#[derive(Clone, Copy)]
struct PendingRecv {
    buf: u64,
    src: u64,
}

#[map]
static DNS_RECV: LruHashMap<u64, PendingRecv> = LruHashMap::with_max_entries(4096, 0);

#[map]
static DNS_MESSAGE: PerCpuArray<[u8; MESSAGE_LEN]> = PerCpuArray::with_max_entries(1, 0);
#[map]
static DNS_KEY: PerCpuArray<DnsNameKey> = PerCpuArray::with_max_entries(1, 0);
#[map]
static DNS_LOOP: PerCpuArray<AnswerLoop> = PerCpuArray::with_max_entries(1, 0);

const DNS_PORT: u16 = 53;
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const MASK: usize = MESSAGE_LEN - 1;
const _: () = assert!(MESSAGE_LEN.is_power_of_two());

#[tracepoint]
pub fn enforce_dns_recvfrom_enter(ctx: TracePointContext) -> u32 {
    if governed_agent().is_none() {
        return 0;
    }
    let pending = PendingRecv {
        buf: tp_arg(&ctx, 1),
        src: tp_arg(&ctx, 4),
    };
    let _ = DNS_RECV.insert(&bpf_get_current_pid_tgid(), &pending, 0);
    0
}

#[tracepoint]
pub fn enforce_dns_recvfrom_exit(ctx: TracePointContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    let Some(pending) = (unsafe { DNS_RECV.get(&id) }).copied() else {
        return 0;
    };
    let _ = DNS_RECV.remove(&id);
    let ret = tp_ret(&ctx);
    if ret < 12 {
        return 0;
    }
    match read_sockaddr(pending.src) {
        Some((_, port, _)) if port == DNS_PORT => {}
        _ => return 0,
    }
    let Some(agent) = governed_agent() else {
        return 0;
    };
    let Some(message) = DNS_MESSAGE.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: a per-CPU slot only this program uses while it runs on this CPU.
    let message = unsafe { &mut *message };
    let len = if ret as usize > MESSAGE_LEN {
        MESSAGE_LEN
    } else {
        ret as usize
    };
    if unsafe {
        bpf_probe_read_user(
            message.as_mut_ptr() as *mut core::ffi::c_void,
            len as u32,
            pending.buf as *const core::ffi::c_void,
        )
    } != 0
    {
        return 0;
    }
    allow_answers(agent, message, len);
    0
}

#[inline(always)]
fn byte(message: &[u8; MESSAGE_LEN], at: usize) -> u8 {
    // SAFETY: masked into the array.
    unsafe { *message.get_unchecked(at & MASK) }
}

#[inline(always)]
fn be16(message: &[u8; MESSAGE_LEN], at: usize) -> u16 {
    u16::from_be_bytes([byte(message, at), byte(message, at + 1)])
}

/// State shared with [`allow_record`] through `bpf_loop` (one verification of the record's
/// body rather than one per record). It is kept in a map, not on the stack: values read back
/// from a map are unknown to the verifier, so the question name's 128 possible ends (and each
/// record's offsets) do not each get the rest of the program verified again (which gave
/// `E2BIG`).
#[repr(C)]
#[derive(Clone, Copy)]
struct AnswerLoop {
    at: u64,
    len: u64,
    answers: u64,
    now: u64,
    agent: u32,
    name_id: u32,
    added: u32,
    _pad: u32,
}

#[inline(always)]
fn allow_answers(agent: u32, message: &[u8; MESSAGE_LEN], len: usize) {
    // A response (QR), no error (RCODE 0), one question.
    if byte(message, 2) & 0x80 == 0 || byte(message, 3) & 0x0f != 0 || be16(message, 4) != 1 {
        return;
    }
    let Some(key) = DNS_KEY.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: as the message's slot.
    let key = unsafe { &mut *key };
    key.agent = agent;
    key._pad = 0;
    let words = key.name.as_mut_ptr() as *mut u64;
    for i in 0..NAME_LEN / 8 {
        // SAFETY: within `name`; volatile, so no `memset` call the BPF target lacks.
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
    }
    // The question's name, as it is on the wire (length-prefixed labels), in lower case (the
    // length bytes are under 64, so never letters); branch-free, for the verifier.
    let mut name_end = 0usize;
    for i in 0..NAME_LEN {
        let b = byte(message, 12 + i);
        let upper = (b.wrapping_sub(b'A') < 26) as u8;
        key.name[i] = b | (upper << 5);
        if b == 0 {
            name_end = 12 + i + 1;
            break;
        }
    }
    if name_end == 0 {
        return;
    }
    let Some(state) = (unsafe { DNS_NAMES.get(&*key) }).copied() else {
        return;
    };
    let Some(answers) = DNS_LOOP.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: as the message's slot.
    let answers = unsafe { &mut *answers };
    *answers = AnswerLoop {
        // After the question's name: its type and class.
        at: (name_end + 4) as u64,
        len: len as u64,
        answers: be16(message, 6) as u64,
        now: unsafe { bpf_ktime_get_boot_ns() },
        agent,
        name_id: state.id,
        added: state.addresses,
        _pad: 0,
    };
    unsafe {
        bpf_loop(
            MAX_ANSWERS,
            allow_record as *mut core::ffi::c_void,
            core::ptr::null_mut(),
            0,
        )
    };
    let Some(answers) = DNS_LOOP.get(0) else {
        return;
    };
    if answers.added != state.addresses {
        let counted = DnsNameState {
            id: state.id,
            addresses: answers.added,
        };
        let _ = DNS_NAMES.insert(&*key, &counted, 0);
    }
}

/// One resource record of the answer section: an A or AAAA record's address is allowed.
/// Returns 1 to stop the loop.
#[inline(never)]
unsafe extern "C" fn allow_record(index: u64, _ctx: *mut core::ffi::c_void) -> i64 {
    let Some(state) = DNS_LOOP.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: the per-CPU slot `allow_answers` filled.
    let state = unsafe { &mut *state };
    if index >= state.answers || state.at >= state.len {
        return 1;
    }
    let Some(message) = DNS_MESSAGE.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: the per-CPU slot `enforce_dns_recvfrom_exit` filled.
    let message = unsafe { &*message };
    let mut at = skip_name(message, state.at as usize);
    let kind = be16(message, at);
    let ttl = u32::from_be_bytes([
        byte(message, at + 4),
        byte(message, at + 5),
        byte(message, at + 6),
        byte(message, at + 7),
    ]);
    let rdlen = be16(message, at + 8) as usize;
    at += 10;
    state.at = (at + rdlen) as u64;
    if state.at > state.len {
        return 1;
    }
    let mut entry = DnsAllowKey {
        agent: state.agent,
        addr: [0; 16],
    };
    if kind == TYPE_A && rdlen == 4 {
        entry.addr[10] = 0xff;
        entry.addr[11] = 0xff;
        for i in 0..4 {
            entry.addr[12 + i] = byte(message, at + i);
        }
    } else if kind == TYPE_AAAA && rdlen == 16 {
        for i in 0..16 {
            entry.addr[i] = byte(message, at + i);
        }
    } else {
        return 0;
    }
    let ttl = if ttl < MIN_TTL_SECONDS {
        MIN_TTL_SECONDS
    } else {
        ttl
    };
    let now = state.now;
    let known = unsafe { DNS_ALLOW.get(&entry) }.is_some_and(|v| v.expires_ns > now);
    if !known {
        if state.added >= ADDRESSES_PER_NAME {
            return 0;
        }
        state.added += 1;
    }
    let value = DnsAllowValue {
        expires_ns: now + ttl as u64 * 1_000_000_000,
        name_id: state.name_id,
        _pad: 0,
    };
    let _ = DNS_ALLOW.insert(&entry, &value, 0);
    0
}

/// The offset after a resource record's name: a compression pointer (what resolvers send), or
/// up to 16 labels.
#[inline(always)]
fn skip_name(message: &[u8; MESSAGE_LEN], mut at: usize) -> usize {
    for _ in 0..16 {
        let b = byte(message, at);
        if b & 0xc0 == 0xc0 {
            return at + 2;
        }
        if b == 0 {
            return at + 1;
        }
        at += b as usize + 1;
    }
    at
}

/// Whether an answer to one of its names allows `agent` to reach `addr` (IPv4 mapped), now.
#[inline(always)]
pub(crate) fn dns_allowed(agent: u32, addr: [u8; 16]) -> bool {
    let key = DnsAllowKey { agent, addr };
    match unsafe { DNS_ALLOW.get(&key) } {
        Some(value) => value.expires_ns > unsafe { bpf_ktime_get_boot_ns() },
        None => false,
    }
}
