//! Where a thread's time went between two points: on a CPU, waiting in the run queue for one,
//! or neither (blocked: on the disk, on memory reclaim, on a lock). The stop report gives it
//! for each phase, so a slow phase says whether the collector was working, starved of a CPU,
//! or held by the kernel, which its wall-clock time alone cannot tell.

use std::time::Instant;

/// A reading of the calling thread's scheduler counters (`/proc/thread-self/schedstat`: time
/// on a CPU and time runnable but waiting, in nanoseconds), with the time it was taken.
#[derive(Debug, Clone, Copy)]
pub struct ThreadTime {
    pub at: Instant,
    /// `None` where the kernel keeps no such counters.
    counters: Option<(u64, u64)>,
}

impl ThreadTime {
    pub fn now() -> Self {
        let counters = std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|text| parse_schedstat(&text));
        Self {
            at: Instant::now(),
            counters,
        }
    }

    /// `N ms`, and where known ` (cpu C, run queue Q)`: from this reading to `later`, taken on
    /// the same thread.
    pub fn describe_until(&self, later: &ThreadTime) -> String {
        let wall = later.at.saturating_duration_since(self.at).as_millis();
        match (self.counters, later.counters) {
            (Some((cpu0, queued0)), Some((cpu1, queued1))) => format!(
                "{wall} ms (cpu {}, run queue {})",
                cpu1.saturating_sub(cpu0) / 1_000_000,
                queued1.saturating_sub(queued0) / 1_000_000
            ),
            _ => format!("{wall} ms"),
        }
    }
}

/// `cpu_ns queued_ns timeslices`; anything else is not understood.
fn parse_schedstat(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_whitespace();
    let cpu = fields.next()?.parse().ok()?;
    let queued = fields.next()?.parse().ok()?;
    Some((cpu, queued))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_is_read_and_odd_text_is_not_guessed_at() {
        assert_eq!(parse_schedstat("123 456 7\n"), Some((123, 456)));
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(parse_schedstat("12 x 3"), None);
    }

    #[test]
    fn cpu_time_spent_between_two_readings_is_counted() {
        let before = ThreadTime::now();
        // Busy for ~30 ms of CPU.
        let began = Instant::now();
        let mut x = 0u64;
        while began.elapsed().as_millis() < 30 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = ThreadTime::now();
        let text = before.describe_until(&after);
        if before.counters.is_none() {
            // No scheduler statistics in this kernel: wall time only.
            assert!(text.ends_with(" ms"), "{text}");
            return;
        }
        let (cpu0, _) = before.counters.unwrap();
        let (cpu1, _) = after.counters.unwrap();
        assert!(cpu1 > cpu0, "{text}");
        assert!(text.contains("(cpu "), "{text}");
    }
}
