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

/// [`repeat_as_new_processes`], with every round's processes also a different program (their
/// command name, executable and first argument get the round's number), so each round adds
/// new agents rather than more runs of the same ones: the workload for memory at many agents.
pub fn repeat_as_new_agents(fixtures: &[Vec<Event>], rounds: u32) -> Vec<Event> {
    let per_round = fixtures.iter().map(Vec::len).sum::<usize>().max(1);
    let mut events = repeat_as_new_processes(fixtures, rounds);
    for (index, event) in events.iter_mut().enumerate() {
        let suffix = format!("-{}", index / per_round);
        // The kernel's command name is at most 15 bytes.
        let keep = event.header.comm.len().min(15 - suffix.len().min(15));
        let mut comm: String = event.header.comm.chars().take(keep).collect();
        comm.push_str(&suffix);
        event.header.comm = comm.into();
        if let EventBody::Exec { filename, argv, .. } = &mut event.body {
            filename.push_str(&suffix);
            if let Some(first) = argv.first_mut() {
                first.push_str(&suffix);
            }
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_json::events_from_json_lines;

    const FIXTURE: &str = include_str!(concat!(
        env!("AGENTSCOPE_REPO"),
        "/tests/fixtures/capture/python_chat.jsonl"
    ));

    #[test]
    fn new_agents_are_new_programs_in_new_processes() {
        let fixture = events_from_json_lines(FIXTURE).unwrap();
        let events = repeat_as_new_agents(std::slice::from_ref(&fixture), 3);
        assert_eq!(events.len(), fixture.len() * 3);
        let comms: std::collections::BTreeSet<&str> =
            events.iter().map(|e| e.header.comm.as_str()).collect();
        assert!(
            comms.contains("python3-0") && comms.contains("python3-2"),
            "{comms:?}"
        );
        assert!(comms.iter().all(|c| c.len() <= 15), "{comms:?}");
        let pids: std::collections::BTreeSet<u32> = events.iter().map(|e| e.header.pid).collect();
        let first_round: std::collections::BTreeSet<u32> =
            fixture.iter().map(|e| e.header.pid).collect();
        assert_eq!(pids.len(), first_round.len() * 3);
        let execs: Vec<&str> = events
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Exec { filename, .. } => Some(filename.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(execs, ["/bin/echo-0", "/bin/echo-1", "/bin/echo-2"]);
    }
}
