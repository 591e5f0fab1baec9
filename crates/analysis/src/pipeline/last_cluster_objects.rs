//! The last snapshot of the cluster's declared objects (`cluster_objects` events) the pipeline
//! saw, kept so that whatever starts from a keyframe has the declared side of posture: a
//! console attaching to a running collector (`tui --connect`), the files after the first of a
//! rotated recording, a replay that seeks. Without it each of those showed no declared side
//! until the objects next changed, which may be never.
//!
//! It is charged to the memory budget like anything else the pipeline keeps, at the event, so
//! live capture and replay keep it or not alike. A snapshot the budget cannot take is not kept
//! (the events themselves still pass on to the sinks); the one before it is let go either way,
//! since it no longer says what the cluster declares.

use serde::{Deserialize, Serialize};

use agentscope_event::cluster_objects::ClusterObjects;

use crate::memory_budget::{json_value_bytes, Charge, MemoryBudget};

/// A snapshot with the time it was read, as a keyframe carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimedClusterObjects {
    /// The event's wall-clock time (nanoseconds since the Unix epoch).
    pub time_unix_ns: u64,
    pub objects: ClusterObjects,
}

/// The kept snapshot and its charge.
#[derive(Debug, Default)]
pub(super) struct LastClusterObjects {
    kept: Option<(TimedClusterObjects, Charge)>,
}

impl LastClusterObjects {
    /// Keeps `objects` (read at `time_unix_ns`) in place of the one before, if `budget` has
    /// room for it; says whether it was kept.
    pub(super) fn keep(
        &mut self,
        budget: &MemoryBudget,
        time_unix_ns: u64,
        objects: &ClusterObjects,
    ) -> bool {
        // Release the old one first: the new one replaces it.
        self.kept = None;
        let bytes = objects
            .objects
            .iter()
            .map(json_value_bytes)
            .fold(std::mem::size_of::<ClusterObjects>(), usize::saturating_add);
        let mut charge = Charge::new(budget);
        if !charge.try_set(bytes) {
            return false;
        }
        self.kept = Some((
            TimedClusterObjects {
                time_unix_ns,
                objects: objects.clone(),
            },
            charge,
        ));
        true
    }

    pub(super) fn get(&self) -> Option<&TimedClusterObjects> {
        self.kept.as_ref().map(|(kept, _)| kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn objects(pods: usize) -> ClusterObjects {
        ClusterObjects {
            objects: (0..pods)
                .map(|i| {
                    json!({"kind": "Pod", "apiVersion": "v1",
                    "metadata": {"name": format!("p{i}"), "namespace": "shop"}})
                })
                .collect(),
            counts: [("Pod".to_string(), pods as u64)].into(),
            omitted: Default::default(),
            truncated: false,
            bytes: 0,
            node_name: None,
        }
    }

    #[test]
    fn the_kept_snapshot_is_charged_replaced_and_refused_past_the_budget() {
        let budget = MemoryBudget::new(4 << 20);
        let mut last = LastClusterObjects::default();
        assert!(last.keep(&budget, 1, &objects(10)));
        let one = budget.used();
        assert!(one > 10 * 80, "{one}");
        assert!(last.keep(&budget, 2, &objects(20)));
        assert!(
            budget.used() > one && budget.used() < 3 * one,
            "replaced, not added"
        );
        assert_eq!(last.get().unwrap().time_unix_ns, 2);
        // Far larger than the held share (3 MiB of 4): not kept, and the older one let go.
        assert!(!last.keep(&budget, 3, &objects(20_000)));
        assert!(last.get().is_none());
        assert_eq!(budget.used(), 0);
    }
}
