//! The change feed of detection: which findings and incidents were raised or changed, in
//! order, for consumers (the console, exporters) that show them as they grow.
//!
//! Each consumer keeps its own [`DetectionCursor`] and asks for what changed since it, so
//! several consumers read one feed without taking from each other, and a consumer that only
//! holds a shared reference to the pipeline can follow it. The feed keeps only the latest
//! change of each finding and incident, so it is bounded by what detection keeps.

use std::collections::BTreeMap;

use super::finding::{Finding, Incident};

/// Where a consumer is in the feed; the default is the start (everything is news).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetectionCursor(u64);

/// What changed after a cursor: each changed finding and incident once, in their latest
/// version, in the order of their latest change.
#[derive(Debug, Default)]
pub struct DetectionChanges<'a> {
    pub findings: Vec<&'a Finding>,
    pub incidents: Vec<&'a Incident>,
    /// The cursor to ask from next time.
    pub next: DetectionCursor,
}

impl DetectionChanges<'_> {
    pub fn is_empty(&self) -> bool {
        self.findings.is_empty() && self.incidents.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Changed {
    Finding(usize),
    Incident(usize),
}

/// The latest change of every finding and incident, by sequence number.
#[derive(Debug, Default)]
pub(super) struct ChangeFeed {
    next: u64,
    latest: BTreeMap<Changed, u64>,
    by_sequence: BTreeMap<u64, Changed>,
}

impl ChangeFeed {
    pub(super) fn finding(&mut self, index: usize) {
        self.mark(Changed::Finding(index));
    }

    pub(super) fn incident(&mut self, index: usize) {
        self.mark(Changed::Incident(index));
    }

    fn mark(&mut self, changed: Changed) {
        let sequence = self.next;
        self.next += 1;
        if let Some(earlier) = self.latest.insert(changed, sequence) {
            self.by_sequence.remove(&earlier);
        }
        self.by_sequence.insert(sequence, changed);
    }

    pub(super) fn since<'a>(
        &self,
        cursor: DetectionCursor,
        findings: &'a [Finding],
        incidents: &'a [Incident],
    ) -> DetectionChanges<'a> {
        let mut changes = DetectionChanges {
            next: DetectionCursor(self.next),
            ..Default::default()
        };
        for changed in self.by_sequence.range(cursor.0..).map(|(_, c)| *c) {
            match changed {
                Changed::Finding(i) => changes.findings.extend(findings.get(i)),
                Changed::Incident(i) => changes.incidents.extend(incidents.get(i)),
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_consumer_sees_every_change_once_in_its_latest_version() {
        let mut feed = ChangeFeed::default();
        let findings: Vec<Finding> = Vec::new();
        let incidents: Vec<Incident> = Vec::new();
        feed.finding(0);
        feed.incident(0);
        feed.finding(0);
        let sequences: Vec<Changed> = feed.by_sequence.values().copied().collect();
        assert_eq!(sequences, [Changed::Incident(0), Changed::Finding(0)]);
        let first = feed.since(DetectionCursor::default(), &findings, &incidents);
        let cursor = first.next;
        assert!(feed.since(cursor, &findings, &incidents).is_empty());
        feed.incident(0);
        assert_eq!(feed.by_sequence.range(cursor.0..).count(), 1);
        assert_eq!(feed.latest.len(), 2);
    }
}
