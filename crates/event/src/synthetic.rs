//! Synthetic workloads from events the real collector captured (benchmarks, footprint): the fixtures repeated, each
//! round as new processes (fresh pids) and later in time, so every round opens new
//! connections and agents instead of hitting warm ones, and tool-call windows close as in a
//! long capture.

use crate::event::{Event, EventBody};

pub fn repeat_as_new_processes(fixtures: &[Vec<Event>], rounds: u32) -> Vec<Event> {
    let mut events = Vec::new();
    for round in 0..rounds {
        let shift = round * 100_000;
        let later = u64::from(round) * 600 * 1_000_000_000;
        for fixture in fixtures {
            for event in fixture {
                let mut event = event.clone();
                event.header.ts_ns += later;
                event.header.time_unix_ns += later;
                event.header.pid += shift;
                event.header.tid += shift;
                if event.header.ppid != 0 {
                    event.header.ppid += shift;
                }
                if let EventBody::Fork { child_pid, .. } = &mut event.body {
                    *child_pid += shift;
                }
                events.push(event);
            }
        }
    }
    events
}
