//! What detection remembers about one agent between observations (injected contents, tainted
//! calls, the data it read and where it sent data, first contacts, the open chain), and how
//! that memory is charged to the [`MemoryBudget`].
//!
//! Each part is count-capped, but the caps multiply (256 injected texts of 64 KiB, 8192 read
//! pieces, 1024 destinations with 64 field windows each), so an agent fed hostile content
//! could hold far more than the budget allows. After every observation the agent's estimated
//! heap is charged; when the budget refuses, the oldest read data, destinations, injected
//! contents and tainted calls are shed, oldest first, and each shedding is counted
//! ([`Pressure::DetectionStateShed`], `stats.memory.detection_state_shed`): detection may then
//! miss that an old read leaves or that old content is seen again.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::memory_budget::{json_value_bytes, Charge, MemoryBudget, Pressure};

use super::exfiltration::{Egress, ReadData};
use super::finding::FindingKind;

/// Injected contents remembered per agent (to recognise the same content seen again).
pub(super) const MAX_INJECTIONS_PER_AGENT: usize = 256;
/// Tainted tool calls remembered per agent.
pub(super) const MAX_TAINTED_CALLS: usize = 4096;
/// Injected text kept for matching the arguments it asked for.
pub(super) const MAX_INJECTED_TEXT: usize = 64 << 10;
/// Heap estimate of a small record (a map entry with its key) besides its strings.
const RECORD_OVERHEAD: usize = 128;

/// Detection state of one agent.
#[derive(Default)]
pub(super) struct AgentWatch {
    /// Injected contents seen: (content hash, rule signature, finding index).
    pub(super) injections: VecDeque<(u64, String, usize)>,
    /// Tool descriptions that carry instructions: description hash → finding index.
    pub(super) poisoned_descriptions: BTreeMap<u64, usize>,
    /// Tool calls requested by tainted turns, by call key.
    pub(super) tainted_calls: BTreeMap<String, TaintedCall>,
    pub(super) tainted_order: VecDeque<String>,
    /// What tainted calls did before they were found to be misuse (graph node ids).
    pub(super) touched: BTreeMap<String, Vec<String>>,
    /// The text of each injection finding (for matching the arguments it asked for).
    pub(super) injected_texts: VecDeque<(usize, String)>,
    /// Tool-misuse findings by (cause finding, tool, arguments): a repeat of the same call is
    /// counted on its finding.
    pub(super) misuse_by_call: BTreeMap<(usize, String, String), usize>,
    pub(super) chain: Option<Chain>,
    pub(super) tools_called: BTreeSet<String>,
    pub(super) read: ReadData,
    pub(super) egress: Egress,
    /// Destinations with the event time they were first contacted.
    pub(super) first_contact: BTreeMap<String, u64>,
    /// One finding per (kind, target).
    pub(super) reported: BTreeMap<(FindingKind, String), usize>,
    pub(super) token_read: Option<(usize, u64)>,
    pub(super) kubernetes_api: Option<(usize, u64)>,
    /// The incident the agent's last escape finding went to, and until when later ones join it.
    pub(super) escape_incident: Option<(usize, u64)>,
    /// Running estimates of the parts that are not self-measuring.
    injected_text_bytes: usize,
    tainted_bytes: usize,
    first_contact_bytes: usize,
    charge: Option<Charge>,
}

#[derive(Debug, Clone)]
pub(super) struct TaintedCall {
    /// The prompt-injection finding whose content the requesting turn read.
    pub(super) cause: usize,
    pub(super) name: String,
    pub(super) id: Option<String>,
    pub(super) arguments: serde_json::Value,
    pub(super) first_use: bool,
    /// Its tool-misuse finding, once raised.
    pub(super) misuse: Option<usize>,
}

impl TaintedCall {
    fn bytes(&self, key: &str) -> usize {
        2 * RECORD_OVERHEAD
            + 2 * key.len()
            + self.name.len()
            + self.id.as_ref().map_or(0, String::len)
            + json_value_bytes(&self.arguments)
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Chain {
    pub(super) incident: usize,
    pub(super) until_ns: u64,
    /// The session whose trigger opened it (see [`super::engine::same_session`]).
    pub(super) session: Option<u32>,
}

impl AgentWatch {
    pub(super) fn new(budget: Option<&MemoryBudget>) -> Self {
        Self {
            charge: budget.map(Charge::new),
            ..Default::default()
        }
    }

    /// Remembers the text of an injection finding, forgetting the oldest past the cap.
    pub(super) fn push_injected_text(&mut self, finding: usize, text: String) {
        if self.injected_texts.len() >= MAX_INJECTIONS_PER_AGENT {
            self.pop_injected_text();
        }
        self.injected_text_bytes += RECORD_OVERHEAD + text.capacity();
        self.injected_texts.push_back((finding, text));
    }

    fn pop_injected_text(&mut self) -> bool {
        let Some((_, text)) = self.injected_texts.pop_front() else {
            return false;
        };
        self.injected_text_bytes = self
            .injected_text_bytes
            .saturating_sub(RECORD_OVERHEAD + text.capacity());
        true
    }

    /// Remembers a tainted call, forgetting the oldest past the cap.
    pub(super) fn insert_tainted(&mut self, key: String, call: TaintedCall) {
        if self.tainted_order.len() >= MAX_TAINTED_CALLS {
            self.pop_tainted();
        }
        self.tainted_bytes += call.bytes(&key);
        self.tainted_order.push_back(key.clone());
        if let Some(earlier) = self.tainted_calls.insert(key.clone(), call) {
            self.tainted_bytes = self.tainted_bytes.saturating_sub(earlier.bytes(&key));
        }
    }

    fn pop_tainted(&mut self) -> bool {
        let Some(old) = self.tainted_order.pop_front() else {
            return false;
        };
        if let Some(call) = self.tainted_calls.remove(&old) {
            self.tainted_bytes = self.tainted_bytes.saturating_sub(call.bytes(&old));
        }
        self.touched.remove(&old);
        true
    }

    /// Notes the first contact of `destination` at `ts_ns` (later contacts change nothing).
    pub(super) fn contacted(&mut self, destination: String, ts_ns: u64) {
        if !self.first_contact.contains_key(&destination) {
            self.first_contact_bytes += RECORD_OVERHEAD + destination.len();
            self.first_contact.insert(destination, ts_ns);
        }
    }

    /// Estimated heap held by this agent's detection state.
    pub(super) fn held_bytes(&self) -> usize {
        let injections: usize = self
            .injections
            .iter()
            .map(|(_, signature, _)| RECORD_OVERHEAD + signature.len())
            .sum();
        RECORD_OVERHEAD * 8
            + injections
            + self.injected_text_bytes
            + self.tainted_bytes
            + self.first_contact_bytes
            + self.read.held_bytes()
            + self.egress.held_bytes()
            + RECORD_OVERHEAD
                * (self.poisoned_descriptions.len()
                    + self.touched.len()
                    + self.misuse_by_call.len()
                    + self.tools_called.len()
                    + self.reported.len())
    }

    /// Charges what the state holds now; sheds the oldest state until the budget accepts it.
    pub(super) fn charge_held(&mut self) {
        let Some(mut charge) = self.charge.take() else {
            return;
        };
        loop {
            let held = self.held_bytes();
            if charge.try_set(held) {
                break;
            }
            if !self.shed_oldest() {
                // Nothing sheddable is left: what remains is small and fixed per agent.
                charge.force_set(held);
                break;
            }
            charge.budget().note(Pressure::DetectionStateShed);
        }
        self.charge = Some(charge);
    }

    /// Forgets the oldest of the largest parts: read data (half of it), then destinations,
    /// injected texts, remembered injections, tainted calls, first contacts. False when
    /// nothing was left to forget.
    fn shed_oldest(&mut self) -> bool {
        let pieces = self.read.len();
        if pieces > 0 {
            self.read.forget_oldest(pieces.div_ceil(2));
            return true;
        }
        if self.egress.forget_oldest_destination() {
            return true;
        }
        if self.pop_injected_text() {
            return true;
        }
        if self.injections.pop_front().is_some() {
            return true;
        }
        if self.pop_tainted() {
            return true;
        }
        if let Some(destination) = self.first_contact.keys().next().cloned() {
            self.first_contact.remove(&destination);
            self.first_contact_bytes = self
                .first_contact_bytes
                .saturating_sub(RECORD_OVERHEAD + destination.len());
            return true;
        }
        false
    }
}
