//! Who each governed agent is, and what its governed files are called, for userspace:
//! `AGENT_LABELS` (agent id → its baseline's name and scope, [`AgentLabel`]) and
//! `FILE_RULE_PATHS` (agent id and file rule → the path as the agent names it,
//! [`FileRulePath`]) live in the kernel only so that they are pinned with the rest of the
//! enforcement state and survive the collector that wrote them (a collector adopting the
//! pinned enforcement reads them back to name its decisions). No program reads them.

use agentscope_common::{
    enforce::{MAX_AGENTS, MAX_FILE_RULES},
    AgentLabel, FileRulePath,
};
use aya_ebpf::{bindings::BPF_F_NO_PREALLOC, macros::map, maps::HashMap};

#[map]
pub(crate) static AGENT_LABELS: HashMap<u32, AgentLabel> = HashMap::with_max_entries(MAX_AGENTS, 0);

/// Keyed by `agent << 32 | rule`. Not preallocated: most collectors govern no file, and a
/// full preallocation would hold MAX_FILE_RULES paths of kernel memory each.
#[map]
pub(crate) static FILE_RULE_PATHS: HashMap<u64, FileRulePath> =
    HashMap::with_max_entries(MAX_FILE_RULES, BPF_F_NO_PREALLOC);
