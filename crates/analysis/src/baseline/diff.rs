//! Comparing two baselines (`agentscope baseline diff OLD NEW`): entries added and removed,
//! section by section, as text for people and as JSON for tools.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use super::format::AgentBaseline;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SectionDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// What changed from one baseline to another. Only the spec counts as a difference; the
/// metadata (times, counts) of two exports of the same behaviour always differs and is shown
/// for context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaselineDiff {
    pub old_agent: String,
    pub new_agent: String,
    pub old_status: super::BaselineStatus,
    pub new_status: super::BaselineStatus,
    /// Section (`data.tables`) → entries added and removed; sections without changes are left
    /// out.
    pub sections: BTreeMap<&'static str, SectionDiff>,
}

impl BaselineDiff {
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }

    pub fn added(&self) -> usize {
        self.sections.values().map(|s| s.added.len()).sum()
    }

    pub fn removed(&self) -> usize {
        self.sections.values().map(|s| s.removed.len()).sum()
    }

    /// For people: a header, then `+`/`-` lines per section.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        if self.old_agent == self.new_agent {
            let _ = writeln!(out, "agent {}", self.old_agent);
        } else {
            let _ = writeln!(out, "agent {} -> {}", self.old_agent, self.new_agent);
        }
        if self.old_status != self.new_status {
            let _ = writeln!(out, "status {:?} -> {:?}", self.old_status, self.new_status);
        }
        if self.is_empty() {
            let _ = writeln!(out, "no differences");
            return out;
        }
        for (section, diff) in &self.sections {
            let _ = writeln!(out, "{section}:");
            for entry in &diff.added {
                let _ = writeln!(out, "  + {entry}");
            }
            for entry in &diff.removed {
                let _ = writeln!(out, "  - {entry}");
            }
        }
        let _ = writeln!(out, "{} added, {} removed", self.added(), self.removed());
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// Entries of `new` that `old` lacks (added) and entries of `old` that `new` lacks (removed).
pub fn diff(old: &AgentBaseline, new: &AgentBaseline) -> BaselineDiff {
    let entries = |baseline: &AgentBaseline| -> BTreeSet<(&'static str, String)> {
        baseline
            .spec
            .items()
            .iter()
            .map(|item| (item.section(), item.describe()))
            .collect()
    };
    let (before, after) = (entries(old), entries(new));
    let mut sections: BTreeMap<&'static str, SectionDiff> = BTreeMap::new();
    for (section, entry) in after.difference(&before) {
        sections
            .entry(section)
            .or_default()
            .added
            .push(entry.clone());
    }
    for (section, entry) in before.difference(&after) {
        sections
            .entry(section)
            .or_default()
            .removed
            .push(entry.clone());
    }
    BaselineDiff {
        old_agent: old.metadata.agent.clone(),
        new_agent: new.metadata.agent.clone(),
        old_status: old.metadata.status,
        new_status: new.metadata.status,
        sections,
    }
}
