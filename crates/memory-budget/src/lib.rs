//! One memory budget for everything the pipeline keeps between events.
//!
//! Whatever an observed process controls the size of — HTTP bodies and buffers being
//! reassembled, other protocols' buffers, tool-call records, graph nodes and edges, agents
//! and their AI-BOMs, detection findings — is charged here by the holder that keeps it and released when it lets go. Each
//! holder charges an upper-bound estimate of its heap use (capacities, not lengths, for byte
//! buffers; a per-item overhead plus string lengths for records). When a charge is refused the
//! holder truncates or evicts and flags what it cut ([`Pressure`] counts it), so the total
//! charged never exceeds [`MemoryBudget::held_limit`].
//!
//! The budget `B` splits into three shares, all fixed fractions so that live capture and a
//! replay (which has no consoles) cut at exactly the same points:
//! - 3/4 of `B` for what the pipeline holds ([`MemoryBudget::held_limit`]);
//! - 1/8 of `B` for the queues of remote consoles ([`MemoryBudget::console_share`]);
//! - 1/8 of `B` as working room for the one message being interpreted: bodies are cut at
//!   [`MemoryBudget::max_message_bytes`] (`B/32`) and parsed only when their parsed form stays
//!   within a small multiple of that (see `agentscope_reconstruct::http`).
//!
//! Within the pipeline's share, what the model and detection keep (tool-call records, the
//! graph, agents, findings, detection state: [`MemoryBudget::records`]) may take at most 3/4
//! ([`MemoryBudget::records_limit`]). Those records shed their own oldest when they reach it;
//! without the limit they could fill the share, and every later body would be cut before it
//! could make a record that sheds them (a node that kept running new agents stopped seeing
//! their model calls).
//!
//! Accounting is deterministic: it depends only on the events in order, never on the
//! allocator or on time, so eviction happens at the same event in a live run and its replay.

pub mod heap_counter;
pub mod tombstone_sweep;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The largest body (or other single message) any budget lets a parser keep: 32 MiB. A decoded
/// body cut at this size is marked truncated.
pub const LARGEST_MESSAGE_BYTES: usize = 32 << 20;

/// Default budget: 64 MiB. Measured: the reference agents' captures peak below 1 MiB of held
/// state, so 64 MiB leaves two orders of magnitude of headroom for busy nodes while an
/// adversary can push the collector only to budget plus its fixed overhead (README).
pub const DEFAULT_MEMORY_BUDGET: usize = 64 << 20;
/// Below this the shares get too small to hold one ordinary LLM request.
pub const MIN_MEMORY_BUDGET: usize = 4 << 20;

/// What a refused charge did, counted per kind for the summary and `--graph-json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pressure {
    /// An HTTP body (or an event stream) was cut: the record is flagged `over_budget`.
    BodyTruncated,
    /// A connection's or stdio session's parser state was dropped; later bytes on it are not
    /// parsed.
    ConnectionEvicted,
    /// The oldest tool-call records were dropped to make room.
    ToolCallEvicted,
    /// Graph nodes or edges were evicted to make room (the graph is marked incomplete).
    GraphEvicted,
    /// A finding was not kept.
    FindingDropped,
    /// Detection forgot the oldest of an agent's remembered state (read data, destinations,
    /// injected contents, tainted calls) to make room.
    DetectionStateShed,
    /// An agent was forgotten to make room, the least recently active first (those detection
    /// raised findings for after quiet ones): its AI-BOM, its graph node with what only it
    /// reached, its tool calls and its detection state.
    AgentEvicted,
    /// A process was forgotten because the process table was full (see
    /// `agentscope_event::process_table::PROCESSES_KEPT`): what it does later is not placed in
    /// its lineage.
    ProcessForgotten,
}

const PRESSURE_KINDS: usize = 8;

#[derive(Debug)]
struct Inner {
    budget: usize,
    held_limit: usize,
    used: AtomicUsize,
    /// Of `used`, what records hold (see [`MemoryBudget::records`]).
    records_used: AtomicUsize,
    peak: AtomicUsize,
    pressure: [AtomicU64; PRESSURE_KINDS],
}

/// A shared handle on one budget; clones charge the same total.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    inner: Arc<Inner>,
    /// This handle charges records: also within [`MemoryBudget::records_limit`].
    records: bool,
}

/// What the budget did, for the summary line and `--graph-json` (`stats.memory`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// The budget `B` (`--memory-budget`).
    pub budget_bytes: u64,
    /// The pipeline's share of it (3/4).
    pub held_limit_bytes: u64,
    /// Charged now, and at most so far.
    pub held_bytes: u64,
    pub peak_held_bytes: u64,
    pub bodies_truncated: u64,
    pub connections_evicted: u64,
    pub tool_calls_evicted: u64,
    pub graph_evictions: u64,
    pub findings_dropped: u64,
    /// Times detection shed an agent's oldest remembered state.
    #[serde(default)]
    pub detection_state_shed: u64,
    /// Agents forgotten (least recently active first, with their graph chains and tool calls)
    /// to make room.
    #[serde(default)]
    pub agents_evicted: u64,
    /// Processes forgotten because the process table was full.
    #[serde(default)]
    pub processes_forgotten: u64,
}

impl MemoryStats {
    /// Something was cut or evicted because the budget was reached.
    pub fn pressured(&self) -> bool {
        self.bodies_truncated
            + self.connections_evicted
            + self.tool_calls_evicted
            + self.graph_evictions
            + self.findings_dropped
            + self.detection_state_shed
            + self.agents_evicted
            + self.processes_forgotten
            > 0
    }
}

impl Default for MemoryBudget {
    fn default() -> Self {
        Self::new(DEFAULT_MEMORY_BUDGET)
    }
}

impl MemoryBudget {
    /// A budget of `bytes` (raised to [`MIN_MEMORY_BUDGET`]).
    pub fn new(bytes: usize) -> Self {
        let budget = bytes.max(MIN_MEMORY_BUDGET);
        Self {
            inner: Arc::new(Inner {
                budget,
                held_limit: budget / 4 * 3,
                used: AtomicUsize::new(0),
                records_used: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
                pressure: Default::default(),
            }),
            records: false,
        }
    }

    /// A handle on the same budget for what the model and detection keep (records of what
    /// happened, as opposed to bytes being reassembled): its charges also count against
    /// [`MemoryBudget::records_limit`].
    pub fn records(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            records: true,
        }
    }

    /// What records may hold together: 3/4 of the pipeline's share (the rest is always there
    /// for bytes being reassembled).
    pub fn records_limit(&self) -> usize {
        self.inner.held_limit / 4 * 3
    }

    /// Charged by records now.
    pub fn records_used(&self) -> usize {
        self.inner.records_used.load(Ordering::Relaxed)
    }

    pub fn budget(&self) -> usize {
        self.inner.budget
    }

    /// What the pipeline may hold: 3/4 of the budget.
    pub fn held_limit(&self) -> usize {
        self.inner.held_limit
    }

    /// What all remote consoles' queues may hold together: 1/8 of the budget.
    pub fn console_share(&self) -> usize {
        self.inner.budget / 8
    }

    /// The largest body (or other single message) kept: 1/32 of the budget, at most 32 MiB.
    pub fn max_message_bytes(&self) -> usize {
        (self.inner.budget / 32).min(LARGEST_MESSAGE_BYTES)
    }

    pub fn used(&self) -> usize {
        self.inner.used.load(Ordering::Relaxed)
    }

    pub fn available(&self) -> usize {
        self.held_limit().saturating_sub(self.used())
    }

    /// Charges `bytes` if they fit; false (nothing charged) if they do not.
    pub fn try_charge(&self, bytes: usize) -> bool {
        if !self.records {
            return self.try_charge_total(bytes);
        }
        let limit = self.records_limit();
        let fits = self
            .inner
            .records_used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&n| n <= limit)
            })
            .is_ok();
        if fits && !self.try_charge_total(bytes) {
            self.release_records(bytes);
            return false;
        }
        fits
    }

    fn release_records(&self, bytes: usize) {
        let _ = self
            .inner
            .records_used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(bytes))
            });
    }

    fn try_charge_total(&self, bytes: usize) -> bool {
        let limit = self.held_limit();
        let mut used = self.used();
        loop {
            let Some(next) = used.checked_add(bytes).filter(|&n| n <= limit) else {
                return false;
            };
            match self.inner.used.compare_exchange_weak(
                used,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.inner.peak.fetch_max(next, Ordering::Relaxed);
                    return true;
                }
                Err(now) => used = now,
            }
        }
    }

    /// Charges `bytes` that are already held and cannot be refused (a fixed-size part of a
    /// record whose growth is checked); the total may pass the limit by that much until the
    /// holder evicts.
    pub fn force_charge(&self, bytes: usize) {
        if self.records {
            self.inner.records_used.fetch_add(bytes, Ordering::Relaxed);
        }
        let next = self.inner.used.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.inner.peak.fetch_max(next, Ordering::Relaxed);
    }

    pub fn release(&self, bytes: usize) {
        if self.records {
            self.release_records(bytes);
        }
        let _ = self
            .inner
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(bytes))
            });
    }

    /// Counts one cut or eviction of `kind`.
    pub fn note(&self, kind: Pressure) {
        self.note_many(kind, 1);
    }

    pub fn note_many(&self, kind: Pressure, count: u64) {
        self.inner.pressure[kind as usize].fetch_add(count, Ordering::Relaxed);
    }

    pub fn stats(&self) -> MemoryStats {
        let count = |kind: Pressure| self.inner.pressure[kind as usize].load(Ordering::Relaxed);
        MemoryStats {
            budget_bytes: self.inner.budget as u64,
            held_limit_bytes: self.inner.held_limit as u64,
            held_bytes: self.used() as u64,
            peak_held_bytes: self.inner.peak.load(Ordering::Relaxed) as u64,
            bodies_truncated: count(Pressure::BodyTruncated),
            connections_evicted: count(Pressure::ConnectionEvicted),
            tool_calls_evicted: count(Pressure::ToolCallEvicted),
            graph_evictions: count(Pressure::GraphEvicted),
            findings_dropped: count(Pressure::FindingDropped),
            detection_state_shed: count(Pressure::DetectionStateShed),
            agents_evicted: count(Pressure::AgentEvicted),
            processes_forgotten: count(Pressure::ProcessForgotten),
        }
    }
}

/// The bytes one holder has charged; dropping it releases them, so a holder that is dropped
/// (a closed connection, an evicted record) can never leak its share.
#[derive(Debug)]
pub struct Charge {
    budget: MemoryBudget,
    bytes: usize,
}

impl Charge {
    pub fn new(budget: &MemoryBudget) -> Self {
        Self {
            budget: budget.clone(),
            bytes: 0,
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// Grows the charge by `extra` if the budget has room.
    pub fn try_grow(&mut self, extra: usize) -> bool {
        let ok = self.budget.try_charge(extra);
        if ok {
            self.bytes += extra;
        }
        ok
    }

    /// Sets the charge to `bytes`: shrinking always works, growing only if it fits.
    pub fn try_set(&mut self, bytes: usize) -> bool {
        if bytes <= self.bytes {
            self.budget.release(self.bytes - bytes);
            self.bytes = bytes;
            true
        } else {
            self.try_grow(bytes - self.bytes)
        }
    }

    /// Sets the charge to `bytes` already held, even past the limit (see
    /// [`MemoryBudget::force_charge`]).
    pub fn force_set(&mut self, bytes: usize) {
        if bytes <= self.bytes {
            self.budget.release(self.bytes - bytes);
        } else {
            self.budget.force_charge(bytes - self.bytes);
        }
        self.bytes = bytes;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// Makes freed large buffers (bodies, chunks) go back to the system at once. glibc serves
/// allocations above a threshold with their own mappings, but raises that threshold to the size
/// of each such block freed (up to 32 MiB); after a few cut bodies every later one comes from
/// the heap, and freeing it leaves the pages resident, so RSS would keep what the budget
/// released. A fixed threshold keeps what is released out of RSS. Call once at start, before
/// threads.
pub fn return_large_frees_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
    }
}

/// Hands heap that was freed back to the system now. glibc keeps the freed pages of its main
/// heap mapped, so a burst of allocations that is over (the collector's start-up: 14 MiB of
/// `[heap]` in an idle collector before this was called after it) stays in RSS for the process's
/// life. One call costs a walk of the free lists; call it after such a burst, not per event.
pub fn return_freed_heap_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator's arenas to the kernel;
    // nothing live is touched.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Upper-bound estimate of the heap a parsed JSON value takes: every value costs a slot and
/// map-entry overhead, strings their length.
pub fn json_value_bytes(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    const SLOT: usize = 80;
    match value {
        Value::String(s) => SLOT + s.len(),
        Value::Array(items) => SLOT + items.iter().map(json_value_bytes).sum::<usize>(),
        Value::Object(map) => {
            SLOT + map
                .iter()
                .map(|(k, v)| SLOT + k.len() + json_value_bytes(v))
                .sum::<usize>()
        }
        _ => SLOT,
    }
}

/// Upper-bound estimate of the heap `serde_json` would need to parse `text`, without parsing
/// it: each structural byte can open at most one value.
///
/// Never inlined: small functions are otherwise compiled into each calling crate, at that
/// crate's optimisation level, and the dev profile (the end-to-end tests' collector) builds
/// reconstruction at 1, where this count is not vectorised: 0.9 GB/s there against 5.9 at this
/// crate's 2. A stop flushing 50 MB of half-sent bodies spent most of its 150 ms in it.
#[inline(never)]
pub fn json_text_tree_bytes(text: &[u8]) -> usize {
    // Counted in runs of 255 bytes into a byte-sized counter, which the compiler turns into
    // vector compares: this runs over every HTTP body reconstruction charges for. The add
    // wraps (a run cannot overflow it) because an overflow check, on in the dev profile,
    // keeps the loop scalar.
    let structural: usize = text
        .chunks(u8::MAX as usize)
        .map(|run| {
            run.iter().fold(0u8, |count, &b| {
                count.wrapping_add(u8::from(matches!(b, b'{' | b'[' | b',' | b':')))
            }) as usize
        })
        .sum();
    structural * JSON_VALUE_BYTES + JSON_VALUE_BYTES + text.len()
}

/// What [`json_text_tree_bytes`] counts per value a structural byte can open.
const JSON_VALUE_BYTES: usize = 80;

/// Whether [`json_text_tree_bytes`] of `text` is within `room`, without counting when even a
/// text of nothing but structural bytes would be (nearly every body, under any budget).
pub fn json_text_tree_fits(text: &[u8], room: usize) -> bool {
    let most = text
        .len()
        .saturating_mul(JSON_VALUE_BYTES + 1)
        .saturating_add(JSON_VALUE_BYTES);
    most <= room || json_text_tree_bytes(text) <= room
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_estimate_counts_every_structural_byte_whatever_the_length() {
        // Counted in runs of 255: texts across several runs, one all structural (a run's
        // count must not overflow its byte-sized counter), and one of the four kinds each.
        let naive = |text: &[u8]| {
            text.iter().filter(|b| b"{[,:".contains(b)).count() * 80 + 80 + text.len()
        };
        let mixed: Vec<u8> =
            br#"{"a":[1,2],"b":"x y"}"#.iter().cycle().take(1000).copied().collect();
        for text in [
            &mixed[..],
            &mixed[..255],
            &mixed[..256],
            &[b','; 600][..],
            b"{[,:",
            b"no structure here",
            b"",
        ] {
            assert_eq!(json_text_tree_bytes(text), naive(text), "{text:?}");
        }
        assert_eq!(json_text_tree_bytes(&[b':'; 600]), 600 * 80 + 80 + 600);
    }

    /// The shortcut answers as the count would, rooms around both texts' figures and the
    /// all-structural bound included.
    #[test]
    fn a_tree_fits_exactly_when_its_estimate_does() {
        let dense = [b'['; 300];
        let sparse: Vec<u8> = b"{\"text\": \"a long string value\"} "
            .iter()
            .cycle()
            .take(3000)
            .copied()
            .collect();
        for text in [&dense[..], &sparse[..], b""] {
            let estimate = json_text_tree_bytes(text);
            let bound = text.len() * 81 + 80;
            for room in [
                0,
                estimate - 1,
                estimate,
                estimate + 1,
                bound - 1,
                bound,
                usize::MAX,
            ] {
                assert_eq!(
                    json_text_tree_fits(text, room),
                    estimate <= room,
                    "{} bytes, room {room}",
                    text.len()
                );
            }
        }
    }

    #[test]
    fn charges_stop_at_the_held_limit_and_release_on_drop() {
        let budget = MemoryBudget::new(8 << 20);
        assert_eq!(budget.held_limit(), 6 << 20);
        let mut a = Charge::new(&budget);
        assert!(a.try_grow(5 << 20));
        let mut b = Charge::new(&budget);
        assert!(!b.try_grow(2 << 20));
        assert!(b.try_grow(1 << 20));
        assert_eq!(budget.used(), 6 << 20);
        drop(a);
        assert_eq!(budget.used(), 1 << 20);
        assert!(b.try_set(0));
        assert_eq!(budget.used(), 0);
        assert_eq!(budget.stats().peak_held_bytes, 6 << 20);
    }

    #[test]
    fn records_stop_at_their_limit_and_leave_the_rest_to_bytes_in_flight() {
        let budget = MemoryBudget::new(16 << 20);
        let records = budget.records();
        assert_eq!(
            (budget.held_limit(), records.records_limit()),
            (12 << 20, 9 << 20)
        );
        let mut record = Charge::new(&records);
        assert!(record.try_grow(9 << 20));
        assert!(
            !Charge::new(&records).try_grow(1),
            "records are at their limit"
        );
        let mut in_flight = Charge::new(&budget);
        assert!(in_flight.try_grow(3 << 20), "the rest is left");
        assert!(!in_flight.try_grow(1));
        drop(record);
        assert_eq!((budget.used(), budget.records_used()), (3 << 20, 0));
        // A record that fits its limit but not the total is refused, and not counted.
        assert!(in_flight.try_grow(6 << 20));
        assert!(!Charge::new(&records).try_grow(4 << 20));
        assert_eq!(budget.records_used(), 0);
    }

    #[test]
    fn tree_estimate_is_an_upper_bound_of_the_value_estimate() {
        let text = br#"{"a":[1,2,{"b":"xyz"}],"c":"hello"}"#;
        let value: serde_json::Value = serde_json::from_slice(text).unwrap();
        assert!(json_text_tree_bytes(text) >= json_value_bytes(&value));
    }
}
