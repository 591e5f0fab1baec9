//! The observations waiting for their process to become an agent's, oldest first, indexed by
//! every pid of their lineages.
//!
//! The queue holds up to [`super::EARLIER_KEPT`] start-ups, most of them other processes'.
//! What happens to it is always about a few pids: a new agent pid releases what its lineage
//! holds, an exit moves what that process did, a tool-call link claims one action of one pid.
//! The index answers which waiting observations hold a pid without walking the queue; every
//! answer comes oldest first, so what is handed out keeps the queue's order.

use std::collections::{BTreeMap, VecDeque};

use agentscope_event::pid_keyed::PidMap;

use crate::reconstruct::Observation;

/// A waiting observation and the lineage its process had when it came.
pub(super) struct Waiting {
    pub lineage: Vec<u32>,
    pub observation: Observation,
}

#[derive(Default)]
pub(super) struct WaitingQueue {
    /// By arrival number: oldest first.
    by_number: BTreeMap<u64, Waiting>,
    next_number: u64,
    /// For every pid in a waiting lineage, the numbers of the waiting observations holding
    /// it, ascending (a number is pushed once per occurrence of the pid in the lineage).
    by_pid: PidMap<u32, VecDeque<u64>>,
}

impl WaitingQueue {
    pub fn len(&self) -> usize {
        self.by_number.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_number.is_empty()
    }

    pub fn push(&mut self, waiting: Waiting) {
        let number = self.next_number;
        self.next_number += 1;
        for pid in &waiting.lineage {
            self.by_pid.entry(*pid).or_default().push_back(number);
        }
        self.by_number.insert(number, waiting);
    }

    /// Takes the oldest out.
    pub fn pop_oldest(&mut self) -> Option<Waiting> {
        let (number, waiting) = self.by_number.pop_first()?;
        self.unindex(number, &waiting.lineage);
        Some(waiting)
    }

    /// Whether a waiting lineage holds `pid`.
    #[cfg(test)]
    pub fn holds(&self, pid: u32) -> bool {
        self.by_pid.contains_key(&pid)
    }

    /// The waiting observations whose lineages hold any of `pids`, oldest first.
    pub fn holding(&self, pids: impl IntoIterator<Item = u32>) -> Vec<u64> {
        let mut numbers: Vec<u64> = pids
            .into_iter()
            .filter_map(|pid| self.by_pid.get(&pid))
            .flatten()
            .copied()
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        numbers
    }

    /// Every waiting observation, oldest first.
    pub fn all(&self) -> Vec<u64> {
        self.by_number.keys().copied().collect()
    }

    pub fn get(&self, number: u64) -> Option<&Waiting> {
        self.by_number.get(&number)
    }

    pub fn remove(&mut self, number: u64) -> Option<Waiting> {
        let waiting = self.by_number.remove(&number)?;
        self.unindex(number, &waiting.lineage);
        Some(waiting)
    }

    fn unindex(&mut self, number: u64, lineage: &[u32]) {
        for pid in lineage {
            let Some(numbers) = self.by_pid.get_mut(pid) else {
                continue;
            };
            if let Ok(at) = numbers.binary_search(&number) {
                numbers.remove(at);
            }
            if numbers.is_empty() {
                self.by_pid.remove(pid);
            }
        }
    }

    /// The waiting observations in order (tests compare the index against them).
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = &Waiting> {
        self.by_number.values()
    }

    /// How many waiting lineages the index says hold each pid.
    #[cfg(test)]
    pub fn pid_counts(&self) -> std::collections::HashMap<u32, u32> {
        self.by_pid
            .iter()
            .map(|(pid, numbers)| (*pid, numbers.len() as u32))
            .collect()
    }
}
