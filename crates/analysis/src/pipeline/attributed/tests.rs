//! The waiting queue's pid index against the queue itself: after every step (observations
//! kept, the oldest dropped at the bound, exits of a waiting process, of an ancestor of one
//! and of a stranger), each pid is indexed once for every waiting lineage that holds it, so
//! what an exit, a new agent pid or a link looks up through the index is what a walk of the
//! queue would have found.

use std::collections::HashMap;

use super::*;
use crate::model::ModelOptions;
use crate::reconstruct::file_access::classify;
use crate::test_observations::observation;

const SHELL: u32 = 10;
const PSQL: u32 = 11;
const CAT: u32 = 20;
const STRANGER: u32 = 30;

fn processes() -> ProcessTable {
    let mut table = ProcessTable::default();
    table.learn(SHELL, 1, "sh");
    table.learn(PSQL, SHELL, "psql");
    table.learn(CAT, 1, "cat");
    table
}

fn file_open(pid: u32, ts_ns: u64) -> Observation {
    let path = "/srv/app/data/orders.csv";
    observation(
        pid,
        ts_ns,
        ts_ns,
        ObservationKind::FileOpen {
            path: path.into(),
            class: classify(path),
            write: false,
        },
    )
}

fn exit(pid: u32, ts_ns: u64) -> Observation {
    observation(
        pid,
        ts_ns,
        ts_ns,
        ObservationKind::Exit { exit_code: Some(0) },
    )
}

/// The index as it should be: every waiting lineage's pids, counted.
fn assert_index_matches_queue(earlier: &EarlierObservations) {
    let mut expected: HashMap<u32, u32> = HashMap::new();
    for waiting in earlier.waiting.iter() {
        for pid in &waiting.lineage {
            *expected.entry(*pid).or_default() += 1;
        }
    }
    assert_eq!(earlier.waiting.pid_counts(), expected);
}

#[test]
fn the_pid_index_counts_exactly_the_waiting_lineages() {
    let table = processes();
    let model = Model::new(ModelOptions::default());
    let mut earlier = EarlierObservations::default();
    let mut ts = 0;
    let settle = |earlier: &mut EarlierObservations, observation: Observation| {
        let out = earlier.settle(&observation, None, &model, &table);
        assert!(out.is_empty(), "nobody is an agent: nothing is handed out");
        assert_index_matches_queue(earlier);
    };

    settle(&mut earlier, file_open(PSQL, next(&mut ts)));
    settle(&mut earlier, file_open(CAT, next(&mut ts)));
    assert_eq!(earlier.waiting.len(), 2);
    assert_eq!(
        earlier.waiting.pid_counts().get(&SHELL),
        Some(&1),
        "psql's lineage holds its shell"
    );

    // The shell is in psql's lineage but made nothing itself: its exit moves nothing; a
    // stranger's exit finds nothing either.
    settle(&mut earlier, exit(SHELL, next(&mut ts)));
    settle(&mut earlier, exit(STRANGER, next(&mut ts)));
    assert_eq!(earlier.waiting.len(), 2);
    assert!(earlier.exited.is_empty());

    // psql's exit moves what it did to the exited list, where only a link finds it.
    settle(&mut earlier, exit(PSQL, next(&mut ts)));
    assert_eq!(earlier.waiting.len(), 1);
    assert_eq!(earlier.exited.len(), 1);
    assert!(!earlier.waiting.holds(PSQL));
    assert!(!earlier.waiting.holds(SHELL));

    // At the bound the oldest are dropped, and their lineages leave the index with them.
    for _ in 0..EARLIER_KEPT + 5 {
        settle(&mut earlier, file_open(CAT, next(&mut ts)));
    }
    assert_eq!(earlier.waiting.len(), EARLIER_KEPT);
    assert_eq!(earlier.dropped(), 6);
    assert_eq!(
        earlier.waiting.pid_counts().get(&CAT),
        Some(&(EARLIER_KEPT as u32))
    );

    settle(&mut earlier, exit(CAT, next(&mut ts)));
    assert!(earlier.waiting.is_empty());
    assert!(earlier.waiting.pid_counts().is_empty());
    assert_eq!(earlier.exited.len(), EXITED_KEPT_FOR_LINKS);
}

fn next(ts: &mut u64) -> u64 {
    *ts += 1_000;
    *ts
}
