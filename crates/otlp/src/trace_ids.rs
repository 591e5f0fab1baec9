//! Trace and span ids derived from what was observed, not drawn at random.
//!
//! A span's parent may be exported before or after it (an `execute_tool` span ends when the
//! next model request carries its result, the `invoke_agent` span when the agent exits), so
//! each id must be known from the observation alone. Deriving ids from the node, the agent,
//! the run and the observation's place in time also makes a replay of a recording export the
//! same ids as the live run that recorded it. FNV-1a is written out here (a dozen lines)
//! because the ids must stay the same across Rust releases, which `std`'s hasher does not
//! promise.

use opentelemetry::trace::{SpanId, TraceId};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over `parts`, each followed by a separator so `("ab", "c")` and `("a", "bc")` differ.
fn fnv1a(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut hash = FNV_OFFSET ^ seed;
    for part in parts {
        for byte in part.iter().chain(std::iter::once(&0xff)) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
    }
    hash
}

/// A trace id from `parts` (never the invalid all-zero id).
pub fn trace_id(parts: &[&[u8]]) -> TraceId {
    let high = fnv1a(1, parts);
    let low = fnv1a(2, parts);
    let id = (u128::from(high) << 64) | u128::from(low);
    TraceId::from_bytes(id.max(1).to_be_bytes())
}

/// A span id from `parts` (never the invalid all-zero id).
pub fn span_id(parts: &[&[u8]]) -> SpanId {
    SpanId::from_bytes(fnv1a(3, parts).max(1).to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_tell_parts_apart() {
        assert_eq!(span_id(&[b"a", b"bc"]), span_id(&[b"a", b"bc"]));
        assert_ne!(span_id(&[b"ab", b"c"]), span_id(&[b"a", b"bc"]));
        assert_ne!(trace_id(&[b"x"]), trace_id(&[b"y"]));
        // Fixed values: an id must not change between releases (a replay of an old recording
        // must export the ids its live run exported).
        assert_eq!(format!("{}", span_id(&[b"agent"])), "8b068f7f11afbe24");
    }
}
