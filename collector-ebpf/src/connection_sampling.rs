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

use agentscope_common::{config, stat};

use crate::emit::bump;
use crate::maps::{SockKey, SOCKS, SOCK_SAMPLED_OUT};
use crate::task::config as config_value;

/// Whether the connection whose socket id is `id` is sampled out. A 64-bit mix of the id
/// (connect times, so consecutive ids differ in their low bits only) and the seed, so the kept
/// connections are spread evenly rather than following the clock's granularity.
#[inline(always)]
pub(crate) fn choose(id: u64) -> bool {
    let every = config_value(config::SAMPLE_CONNECTIONS);
    if every <= 1 {
        return false;
    }
    let mut x = id ^ config_value(config::SAMPLE_SEED);
    // splitmix64's finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    x % every != 0
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
