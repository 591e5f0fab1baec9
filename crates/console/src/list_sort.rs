//! Sort orders of the lists that have more than one useful order: the findings pane (when
//! raised, worst first, by agent) and the graph's rows under each node (by name, most calls
//! first, most recently seen first). `s` cycles the focused pane's order; a pane sorted other
//! than by default says so in its title.

use std::cmp::Ordering;

use crate::findings::FindingView;
use crate::graph_pane::EdgeView;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FindingOrder {
    /// As raised (the default).
    #[default]
    Time,
    /// Worst first, then as raised.
    Severity,
    /// By agent key, then as raised.
    Agent,
}

impl FindingOrder {
    pub fn next(self) -> Self {
        match self {
            Self::Time => Self::Severity,
            Self::Severity => Self::Agent,
            Self::Agent => Self::Time,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Time => "time",
            Self::Severity => "severity",
            Self::Agent => "agent",
        }
    }

    /// Compares two findings; ties keep the order they were raised in (the sort is stable).
    pub fn compare(self, a: &FindingView, b: &FindingView) -> Ordering {
        match self {
            Self::Time => Ordering::Equal,
            Self::Severity => b.severity.cmp(&a.severity),
            Self::Agent => a.agent_key.cmp(&b.agent_key),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EdgeOrder {
    /// By label (the default).
    #[default]
    Name,
    /// Most used first.
    Count,
    /// Most recently seen first.
    LastSeen,
}

impl EdgeOrder {
    pub fn next(self) -> Self {
        match self {
            Self::Name => Self::Count,
            Self::Count => Self::LastSeen,
            Self::LastSeen => Self::Name,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Count => "count",
            Self::LastSeen => "last seen",
        }
    }

    /// A total order: ties go by label, target and kind, so rows never swap between frames.
    pub fn compare(self, a: &EdgeView, b: &EdgeView) -> Ordering {
        let by_name = || (&a.label, &a.to, a.kind).cmp(&(&b.label, &b.to, b.kind));
        match self {
            Self::Name => by_name(),
            Self::Count => b.count.cmp(&a.count).then_with(by_name),
            Self::LastSeen => b.last_seen_ns.cmp(&a.last_seen_ns).then_with(by_name),
        }
    }
}

/// `↓severity` for a pane title, or nothing for the default order.
pub fn title_suffix(name: &str, default: bool) -> String {
    if default {
        String::new()
    } else {
        format!(" ↓{name}")
    }
}
