//! Hash tables kept at a bound by evicting: clearing the tombstones their removals leave.
//!
//! std's `HashMap` (hashbrown) marks a removed slot as a tombstone when a lookup may have
//! probed past it, and does not give that slot's room back. A table kept at its bound by
//! evicting collects tombstones until an insert finds no room; holding more than half of what
//! it has room for, it then doubles instead of cleaning up. That is memory no budget charged,
//! at a moment nobody chose: the process table, at its bound of 32,768 on a node whose exits
//! are lost, doubled after 14-15 bounds' worth of processes (about 8 MB more). Rebuilding a
//! table once tombstones have taken half the free room a clean one would have (and at least a
//! sixteenth of its room, so a rebuild costs at most 16 moves per tombstone) keeps its size,
//! for a pass over its entries every several batches of evictions.
//!
//! The tombstones are counted from what `HashMap::capacity` reports (entries plus the room
//! left for more): a table's room at its last rebuild or growth, less its room now.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// What a table's room was when it was last clean; see the module doc.
#[derive(Debug, Default, Clone)]
pub struct TombstoneSweep {
    clean_room: usize,
}

impl TombstoneSweep {
    /// Call after removing entries from `map` (and only then): rebuilds it when its
    /// tombstones have taken half the free room it had when clean. Returns whether it did.
    pub fn after_removals<K: Eq + Hash, V, S: BuildHasher + Default>(
        &mut self,
        map: &mut HashMap<K, V, S>,
    ) -> bool {
        let room = map.capacity();
        if room >= self.clean_room {
            // First look, or the table grew (a growth rehashes it clean).
            self.clean_room = room;
            return false;
        }
        let tombstones = self.clean_room - room;
        let clean_free = self.clean_room.saturating_sub(map.len());
        // Half the free room, and a sixteenth of the table at least: a table nearly full of
        // entries would otherwise be rebuilt at every removal (it grows instead, as it must).
        if tombstones * 2 < clean_free || tombstones * 16 < self.clean_room {
            return false;
        }
        *map = std::mem::take(map).into_iter().collect();
        self.clean_room = map.capacity();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table kept at its bound by evicting a tenth at a time: without the sweep it doubles
    /// (the room it reports jumps); with it, it keeps its room and is rebuilt now and then.
    #[test]
    fn a_table_churning_at_its_bound_keeps_its_room() {
        const BOUND: u64 = 4_096;
        let churn = |sweep: Option<&mut TombstoneSweep>| {
            let mut sweep = sweep;
            let mut map: HashMap<u64, [u64; 4]> = HashMap::new();
            let mut oldest = 0;
            let mut rebuilds = 0;
            let mut room_at_bound = None;
            for key in 0..40 * BOUND {
                if map.len() as u64 >= BOUND {
                    // Before the first removal: the room a clean growth left.
                    room_at_bound.get_or_insert(map.capacity());
                    for old in oldest..oldest + BOUND / 10 {
                        map.remove(&old);
                    }
                    oldest += BOUND / 10;
                    if let Some(sweep) = sweep.as_deref_mut() {
                        rebuilds += usize::from(sweep.after_removals(&mut map));
                    }
                }
                map.insert(key, [key; 4]);
            }
            (room_at_bound.unwrap(), map.capacity(), rebuilds)
        };
        let (room, unswept_room, _) = churn(None);
        assert!(
            unswept_room > room,
            "this churn no longer makes an unswept table grow ({room} -> {unswept_room}): \
             the test shows nothing"
        );
        let mut sweep = TombstoneSweep::default();
        let (room, swept_room, rebuilds) = churn(Some(&mut sweep));
        assert!(swept_room <= room, "room for {room} grew to {swept_room}");
        assert!(rebuilds > 0);
        // Rebuilt every several batches of evictions, not after each.
        assert!(rebuilds < 40 * 10 / 3, "{rebuilds} rebuilds");
    }

    /// A table nearly full of entries, churning one at a time, is not rebuilt at every
    /// removal: a rebuild waits for tombstones worth a sixteenth of its room.
    #[test]
    fn a_nearly_full_table_is_not_rebuilt_at_every_removal() {
        let mut map: HashMap<u64, u64> = HashMap::with_capacity(4_000);
        let mut key = 0;
        while map.len() < map.capacity() {
            map.insert(key, key);
            key += 1;
        }
        let room = map.capacity() as u64;
        let mut sweep = TombstoneSweep::default();
        sweep.after_removals(&mut map);
        let mut rebuilds = 0;
        const CHURN: u64 = 10_000;
        for _ in 0..CHURN {
            map.remove(&(key - room));
            rebuilds += u64::from(sweep.after_removals(&mut map));
            map.insert(key, key);
            key += 1;
        }
        assert!(
            rebuilds <= CHURN * 16 / room + 1,
            "{rebuilds} rebuilds of a table of {room}"
        );
    }
}
