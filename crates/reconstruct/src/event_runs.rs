//! The raw events one message was built from, as runs of consecutive event positions.
//!
//! A connection's events are not consecutive in the stream: another process's events come in
//! between (two sessions of one agent side by side, a database answering while a response
//! streams). One range from the first to the last event would claim those too, and whoever
//! follows an observation back to its events (the console marking a finding's evidence, `cap
//! slice`) would land on the other session's rows. So each gap starts a new run, and only
//! past [`MAX_RUNS`] are runs merged, the two closest first, so a message fed by thousands of
//! interleaved chunks still holds a bounded list.

use super::observation::EventRange;

/// Runs kept per message before the closest two are merged.
pub const MAX_RUNS: usize = 32;

/// The events that fed one message so far, in the order they were consumed.
#[derive(Debug, Default, Clone)]
pub struct EventRuns(Vec<EventRange>);

impl EventRuns {
    /// Notes event `index` (positions only grow within one stream).
    pub fn push(&mut self, index: u64) {
        if let Some(last) = self.0.last_mut() {
            if index >= last.first && index <= last.last.saturating_add(1) {
                last.last = last.last.max(index);
                return;
            }
        }
        self.0.push(EventRange::single(index));
        if self.0.len() > MAX_RUNS {
            self.merge_closest();
        }
    }

    /// The runs noted, leaving none.
    pub fn take(&mut self) -> Vec<EventRange> {
        std::mem::take(&mut self.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Merges the two neighbouring runs with the smallest gap between them.
    fn merge_closest(&mut self) {
        let Some(at) =
            (1..self.0.len()).min_by_key(|&i| self.0[i].first.saturating_sub(self.0[i - 1].last))
        else {
            return;
        };
        let next = self.0.remove(at);
        self.0[at - 1].extend(next.first);
        self.0[at - 1].extend(next.last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(indices: &[u64]) -> Vec<EventRange> {
        let mut runs = EventRuns::default();
        for &i in indices {
            runs.push(i);
        }
        runs.take()
    }

    #[test]
    fn consecutive_events_are_one_run_and_a_gap_starts_another() {
        assert_eq!(runs(&[3, 4, 5]), vec![EventRange { first: 3, last: 5 }]);
        assert_eq!(
            runs(&[3, 4, 9, 10, 12]),
            vec![
                EventRange { first: 3, last: 4 },
                EventRange { first: 9, last: 10 },
                EventRange::single(12),
            ]
        );
    }

    #[test]
    fn past_the_bound_the_closest_runs_merge() {
        // Every other event, then one far away: the far one keeps its own run.
        let mut indices: Vec<u64> = (0..=2 * MAX_RUNS as u64).step_by(2).collect();
        indices.push(10_000);
        let runs = runs(&indices);
        assert_eq!(runs.len(), MAX_RUNS);
        assert_eq!(runs.last(), Some(&EventRange::single(10_000)));
        assert_eq!(runs[0].first, 0);
        // Nothing is lost: every event is inside some run.
        for i in indices {
            assert!(runs.iter().any(|r| r.first <= i && i <= r.last), "{i}");
        }
    }
}
