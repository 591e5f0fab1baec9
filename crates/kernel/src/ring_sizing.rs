//! How large the kernel ring buffer is by default: by what the node can produce.
//!
//! Every CPU runs the kernel programs and writes records; one collector thread reads them. The
//! ring only has to hold what the CPUs write while that thread is busy or descheduled, so it
//! grows with the number of CPUs. Its memory is the kernel's, and it counts twice in the
//! collector's RSS (BPF maps the data pages twice so records that wrap read contiguously): a
//! fixed 64 MiB made 128 MiB of an idle collector's 157 MB on a 2-CPU node. Records the ring
//! cannot take are counted (`kernel.dropped`, `kernel.lost_bytes` in the summary), never lost
//! silently; `--ring-buffer-kib` overrides the default.

/// Ring bytes per online CPU.
pub const RING_BYTES_PER_CPU: u32 = 4 << 20;
/// The smallest default: what one busy agent's start (a Node or Python interpreter opening its
/// modules, about 20,000 records) fits in with room to spare.
pub const MIN_DEFAULT_RING_BYTES: u32 = 8 << 20;
/// The largest default (the former fixed size).
pub const MAX_DEFAULT_RING_BYTES: u32 = 64 << 20;

/// The default ring size for a node with `cpus` online CPUs (a power of two, as the kernel
/// requires).
pub fn default_ring_bytes_for(cpus: u32) -> u32 {
    RING_BYTES_PER_CPU
        .saturating_mul(cpus.max(1))
        .clamp(MIN_DEFAULT_RING_BYTES, MAX_DEFAULT_RING_BYTES)
        .next_power_of_two()
}

/// The default ring size for this node: every online CPU, not only those the collector's
/// cgroup may use, since the kernel programs run on all of them.
pub fn default_ring_bytes() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    default_ring_bytes_for(u32::try_from(online).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_cpus_between_the_bounds() {
        assert_eq!(default_ring_bytes_for(1), 8 << 20);
        assert_eq!(default_ring_bytes_for(2), 8 << 20);
        assert_eq!(default_ring_bytes_for(3), 16 << 20);
        assert_eq!(default_ring_bytes_for(4), 16 << 20);
        assert_eq!(default_ring_bytes_for(8), 32 << 20);
        assert_eq!(default_ring_bytes_for(16), 64 << 20);
        assert_eq!(default_ring_bytes_for(256), 64 << 20);
        assert_eq!(default_ring_bytes_for(0), 8 << 20);
    }

    #[test]
    fn this_node_gets_a_power_of_two_within_the_bounds() {
        let bytes = default_ring_bytes();
        assert!(bytes.is_power_of_two());
        assert!((MIN_DEFAULT_RING_BYTES..=MAX_DEFAULT_RING_BYTES).contains(&bytes));
    }
}
