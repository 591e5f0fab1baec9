//! Per-connection sampling (`collect --sample-connections N`): one inet connection in N keeps
//! its payloads, plain and TLS; the others' payload bytes are counted (`stat::SAMPLED_OUT_BYTES`
//! and by process, `left_out.rs`) and never copied, which is where capture's cost per byte is.
//!
//! The choice is made once per connection, at its connect or accept, from the socket's id and
//! the run's seed, kept on the socket (`SOCK_SAMPLED_OUT`) and sent on the connect or accept
//! record (`sock_flags::PAYLOADS_SAMPLED_OUT`), so that readers, and replays of a recording,
//! know which connections they will see no bytes of. Everything else about a sampled-out
//! connection (its connect, DNS, TLS ClientHello, close) is still sent. TLS plaintext follows
//! its transport socket's choice when the library call names the socket's fd (OpenSSL and
//! BoringSSL on sockets, Go, rustls); a TLS connection whose fd the probes cannot see (Node's
//! memory BIOs) is never sampled out, so sampling never hides what it cannot account for.
//!
//! Nor does it hide a destination: a process's first connect to each address and port (of its
//! first `KEPT_DESTINATIONS`) is kept whatever the draw says (`SAMPLING_DESTINATIONS`). An
//! agent is recognised from its model calls, so with one connection in N kept, an agent whose
//! one connection to its provider was drawn out (N-1 times in N) would go unseen; now its first
//! connection to the provider, and to each database and tool server, shows it. Accepts
//! are drawn as before (a server's peers are clients, each a new address and port).

use agentscope_common::{config, stat};
use aya_ebpf::{bindings::BPF_NOEXIST, macros::map, maps::LruHashMap};

use crate::emit::bump;
use crate::maps::{SockKey, SOCKS, SOCK_SAMPLED_OUT};
use crate::task::config as config_value;

/// How many destinations of a process have their first connection kept.
const KEPT_DESTINATIONS: usize = 8;

/// The destinations a process has connected to while sampling is on: hashes of family,
/// address and port, 0 for a free slot.
#[repr(C)]
#[derive(Clone, Copy)]
struct Destinations {
    hashes: [u64; KEPT_DESTINATIONS],
}

/// By tgid; removed when the process exits (`forget`). An LRU: a node with more connecting
/// processes than entries forgets the oldest ones' destinations, and their next connect to
/// each is kept again (a connection more, never one less).
#[map]
static SAMPLING_DESTINATIONS: LruHashMap<u32, Destinations> =
    LruHashMap::with_max_entries(16384, 0);

/// splitmix64's finaliser: spreads ids (connect times, whose low bits alone differ) and
/// addresses over 64 bits.
#[inline(always)]
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Whether the connection whose socket id is `id` is sampled out: drawn from the id and the
/// run's seed, so the kept connections are spread evenly rather than following the clock's
/// granularity.
#[inline(always)]
pub(crate) fn choose(id: u64) -> bool {
    let every = config_value(config::SAMPLE_CONNECTIONS);
    every > 1 && drawn_out(id, every)
}

/// The draw for one connection in `every` (more than 1) kept.
#[inline(always)]
fn drawn_out(id: u64, every: u64) -> bool {
    mix(id ^ config_value(config::SAMPLE_SEED)) % every != 0
}

/// Whether `tgid`'s connect, whose socket id is `id`, to `addr` and `port` (of `family`) is
/// sampled out: never its first connect to a destination (of its first `KEPT_DESTINATIONS`),
/// otherwise drawn as [`choose`] draws.
#[inline(always)]
pub(crate) fn choose_connect(tgid: u32, id: u64, family: u16, port: u16, addr: &[u8; 16]) -> bool {
    let every = config_value(config::SAMPLE_CONNECTIONS);
    if every <= 1 {
        return false;
    }
    let low = u64::from_le_bytes([
        addr[0], addr[1], addr[2], addr[3], addr[4], addr[5], addr[6], addr[7],
    ]);
    let high = u64::from_le_bytes([
        addr[8], addr[9], addr[10], addr[11], addr[12], addr[13], addr[14], addr[15],
    ]);
    let destination = mix(mix(low ^ (u64::from(family) << 16 | u64::from(port))) ^ high) | 1;
    !first_connect_to(tgid, destination) && drawn_out(id, every)
}

/// Whether `tgid` connects to `destination` for the first time (remembering it if there is
/// room). Threads of one process connecting at the same instant may both take a slot's
/// destination for new: at worst a connection more is kept, never one less.
#[inline(always)]
fn first_connect_to(tgid: u32, destination: u64) -> bool {
    if SAMPLING_DESTINATIONS.get_ptr_mut(&tgid).is_none() {
        let empty = Destinations {
            hashes: [0; KEPT_DESTINATIONS],
        };
        // NOEXIST: a thread of the process that got here first keeps what it wrote.
        let _ = SAMPLING_DESTINATIONS.insert(&tgid, &empty, BPF_NOEXIST as u64);
    }
    // None only if the LRU could not make room: then drawn like any other connection.
    let Some(seen) = SAMPLING_DESTINATIONS.get_ptr_mut(&tgid) else {
        return false;
    };
    let seen = unsafe { &mut *seen };
    for slot in 0..KEPT_DESTINATIONS {
        let hash = seen.hashes[slot];
        if hash == destination {
            return false;
        }
        if hash == 0 {
            seen.hashes[slot] = destination;
            return true;
        }
    }
    false
}

/// `tgid` exited: its destinations go with it (a later process given its pid starts afresh).
#[inline(always)]
pub(crate) fn forget(tgid: u32) {
    if config_value(config::SAMPLE_CONNECTIONS) > 1 {
        let _ = SAMPLING_DESTINATIONS.remove(&tgid);
    }
}

/// `len` payload bytes of `tgid`'s sampled-out connection: counted, not copied.
#[inline(always)]
pub(crate) fn count(tgid: u32, len: u64) {
    bump(stat::SAMPLED_OUT_BYTES, len);
    crate::left_out::sampled_out(tgid, len);
}

/// For a TLS library call on `fd`: whether its transport socket was sampled out; if so, counts
/// the `len` bytes of the call. Costs a lookup only while sampling is on.
#[inline(always)]
pub(crate) fn tls_sampled_out(tgid: u32, fd: i32, len: u64) -> bool {
    if fd < 0 || config_value(config::SAMPLE_CONNECTIONS) <= 1 {
        return false;
    }
    match unsafe { SOCKS.get(&SockKey { tgid, fd }) } {
        Some(state) if state.flags & SOCK_SAMPLED_OUT != 0 => {
            count(tgid, len);
            true
        }
        _ => false,
    }
}
