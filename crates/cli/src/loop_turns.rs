//! How long the collector's loop spent on its longest single turn, and on what.
//!
//! A stop is noticed between two turns (the loop polls its signals first), so the time from
//! SIGTERM to the stop's start is at most the turn under way when the signal came. The stop
//! report names the longest turn of the run, so a stop that came late says where the loop was
//! held (a slow disk behind the recording's sync, a batch that took long) rather than leaving
//! only the stop's own, short, timings.

use std::time::{Duration, Instant};

/// What a turn of the loop did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnKind {
    /// Counters, consumers of the output, the recording's rotation.
    Counters,
    /// The tick: detection's timers, the recording's flush and sync, consoles' updates.
    Tick,
    /// A batch read from the ring buffer and a slice of it processed.
    Batch,
    /// A slice of events read earlier processed.
    Backlog,
}

impl TurnKind {
    fn name(self) -> &'static str {
        match self {
            TurnKind::Counters => "counters",
            TurnKind::Tick => "tick",
            TurnKind::Batch => "batch",
            TurnKind::Backlog => "backlog",
        }
    }
}

/// The longest turn so far.
#[derive(Debug, Default)]
pub struct LoopTurns {
    longest: Option<(Duration, TurnKind)>,
}

impl LoopTurns {
    /// A turn of `kind` that began at `began` has ended.
    pub fn ended(&mut self, kind: TurnKind, began: Instant) {
        let took = began.elapsed();
        if self.longest.is_none_or(|(longest, _)| took > longest) {
            self.longest = Some((took, kind));
        }
    }

    /// "the loop's longest turn N ms (kind)", for the stop report.
    pub fn describe(&self) -> String {
        match self.longest {
            Some((took, kind)) => format!(
                "the loop's longest turn {} ms ({})",
                took.as_millis(),
                kind.name()
            ),
            None => "the loop made no turn".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_turn_and_its_kind_are_kept() {
        let mut turns = LoopTurns::default();
        assert_eq!(turns.describe(), "the loop made no turn");
        let now = Instant::now();
        turns.ended(TurnKind::Tick, now - Duration::from_millis(40));
        turns.ended(TurnKind::Batch, now - Duration::from_millis(5));
        let described = turns.describe();
        assert!(described.ends_with("(tick)"), "{described}");
        let ms: u64 = described
            .trim_start_matches("the loop's longest turn ")
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(ms >= 40, "{described}");
    }
}
