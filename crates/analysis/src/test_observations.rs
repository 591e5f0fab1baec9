//! Hand-made observations for unit tests: one place that builds an [`Observation`] of a
//! process, so tests of the model and of the pipeline's attribution say only what differs
//! (the pid, the time, the kind).

use crate::reconstruct::{Actor, EventRange, Observation, ObservationKind};

/// An observation of `pid` (a `python3` child of pid 1, uid 0, cgroup 1) at `ts_ns`, made of
/// event `index`.
pub(crate) fn observation(pid: u32, ts_ns: u64, index: u64, kind: ObservationKind) -> Observation {
    Observation {
        ts_ns,
        time_unix_ns: ts_ns,
        actor: Actor {
            pid,
            ppid: 1,
            uid: 0,
            gid: 0,
            cgroup_id: 1,
            comm: "python3".into(),
        },
        events: vec![EventRange::single(index)],
        protocol: None,
        kind,
    }
}
