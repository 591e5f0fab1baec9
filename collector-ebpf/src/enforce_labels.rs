//! Who each governed agent is, for userspace: `AGENT_LABELS` (agent id → its baseline's name
//! and scope, [`AgentLabel`]) lives in the kernel only so that it is pinned with the rest of
//! the enforcement state and survives the collector that wrote it (a collector adopting the
//! pinned enforcement reads it back). No program reads it.

use agentscope_common::{enforce::MAX_AGENTS, AgentLabel};
use aya_ebpf::{macros::map, maps::HashMap};

#[map]
pub(crate) static AGENT_LABELS: HashMap<u32, AgentLabel> = HashMap::with_max_entries(MAX_AGENTS, 0);
