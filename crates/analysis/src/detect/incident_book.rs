//! The incident book: every finding the rules raised, and the incidents that correlate them.
//!
//! Rules (the modules of [`super::engine`]) raise [`Finding`]s here and say which incident a
//! finding belongs to; the book keeps one [`Incident`] per causal chain in one conversation.
//! A repeat of the same chain (the same injected content read again after its chain closed,
//! steering the same calls to the same places) is counted on the incident it repeats
//! ([`Incident::occurrences`], [`Incident::last_seen_ns`], [`ChainToolCall::calls`], and the
//! totals of its exfiltration findings), never appended, so an incident and its story stay
//! bounded however often an attack repeats, and the figures the story states are sums.
//! Every change is recorded in the [`ChangeFeed`] consumers follow.

use crate::memory_budget::{Charge, MemoryBudget, Pressure};
use crate::reconstruct::EventRange;

use super::changes::{ChangeFeed, DetectionChanges, DetectionCursor};
use super::finding::{
    ChainToolCall, Finding, FindingDetail, FindingKind, Incident, IncidentChain, IncidentIdentity,
    Severity,
};
use super::story;

/// Escape lines an incident's chain keeps.
pub(super) const MAX_ESCAPE_LINES: usize = 32;

/// Findings kept; later ones are counted, not kept.
const MAX_FINDINGS: usize = 100_000;
/// Evidence ranges kept per finding and per incident; later ones are merged into the last.
const MAX_EVIDENCE_RANGES: usize = 1024;

#[derive(Default)]
pub(super) struct IncidentBook {
    pub(super) findings: Vec<Finding>,
    pub(super) incidents: Vec<Incident>,
    pub(super) changes: ChangeFeed,
    findings_dropped: u64,
    /// Findings are charged here (an upper bound: twice their JSON size); they are never
    /// evicted (incidents point at them), so at the budget new ones are dropped and counted.
    budget: Option<Charge>,
    /// Agents a finding was raised for (kept or dropped) since
    /// [`IncidentBook::take_flagged_agents`] last ran, each once: the model sheds them after
    /// quiet agents under memory pressure.
    flagged: Vec<String>,
}

/// Agents [`IncidentBook::flagged`] holds at most: the pipeline takes them after every
/// observation, so this bounds only a detector nobody asks.
const FLAGGED_KEPT: usize = 256;

impl IncidentBook {
    pub(super) fn set_budget(&mut self, budget: &MemoryBudget) {
        self.budget = Some(Charge::new(budget));
    }

    pub(super) fn findings_dropped(&self) -> u64 {
        self.findings_dropped
    }

    /// Agents a finding was raised for since the last call.
    pub(super) fn take_flagged_agents(&mut self) -> Vec<String> {
        std::mem::take(&mut self.flagged)
    }

    pub(super) fn changes_since(&self, cursor: DetectionCursor) -> DetectionChanges<'_> {
        self.changes.since(cursor, &self.findings, &self.incidents)
    }

    /// Keeps a finding (numbering it); `None` when it was dropped for the limits.
    pub(super) fn push_finding(&mut self, mut finding: Finding) -> Option<usize> {
        if self.flagged.len() < FLAGGED_KEPT && !self.flagged.contains(&finding.agent) {
            self.flagged.push(finding.agent.clone());
        }
        if self.findings.len() >= MAX_FINDINGS {
            self.findings_dropped += 1;
            return None;
        }
        if let Some(charge) = self.budget.as_mut() {
            let bytes = 1024 + 2 * serde_json::to_vec(&finding).map_or(0, |json| json.len());
            if !charge.try_grow(bytes) {
                self.findings_dropped += 1;
                charge.budget().note(Pressure::FindingDropped);
                return None;
            }
        }
        finding.id = format!("f-{}", self.findings.len() + 1);
        self.findings.push(finding);
        let index = self.findings.len() - 1;
        self.changes.finding(index);
        Some(index)
    }

    /// A finding changed in place (its detail, its evidence).
    pub(super) fn finding_changed(&mut self, index: usize) {
        self.changes.finding(index);
    }

    /// Adds evidence to a finding and its incident.
    pub(super) fn add_evidence(&mut self, finding: usize, events: &[EventRange]) {
        let Some(f) = self.findings.get_mut(finding) else {
            return;
        };
        merge_events(&mut f.events, events);
        self.changes.finding(finding);
        if let Some(incident) = self.incident_of(finding) {
            merge_events(&mut self.incidents[incident].events, events);
            self.changes.incident(incident);
        }
    }

    pub(super) fn incident_index(&self, id: &str) -> Option<usize> {
        id.strip_prefix("inc-")
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| n.checked_sub(1))
            .filter(|&i| i < self.incidents.len())
    }

    /// The incident a finding belongs to.
    pub(super) fn incident_of(&self, finding: usize) -> Option<usize> {
        let id = self.findings.get(finding)?.incident.as_deref()?;
        self.incident_index(id)
    }

    /// Opens an incident with `finding` as its first finding and `trigger` as what started it.
    pub(super) fn open_incident(
        &mut self,
        agent: &str,
        finding: usize,
        ts_ns: u64,
        trigger: String,
    ) -> usize {
        let id = format!("inc-{}", self.incidents.len() + 1);
        let time_unix_ns = self.findings[finding].time_unix_ns;
        self.incidents.push(Incident {
            id,
            agent: agent.to_string(),
            agent_name: String::new(),
            severity: Severity::Low,
            story: String::new(),
            opened_ns: ts_ns,
            time_unix_ns,
            updated_ns: ts_ns,
            occurrences: 1,
            last_seen_ns: ts_ns,
            identity: IncidentIdentity::default(),
            findings: Vec::new(),
            events: Vec::new(),
            labels: Vec::new(),
            chain: IncidentChain {
                trigger,
                ..Default::default()
            },
        });
        let incident = self.incidents.len() - 1;
        self.join(incident, finding);
        incident
    }

    /// Puts a finding (of no incident yet) in an incident.
    pub(super) fn join(&mut self, incident: usize, finding: usize) {
        let Some(f) = self.findings.get_mut(finding) else {
            return;
        };
        if f.incident.is_some() {
            return;
        }
        let i = &mut self.incidents[incident];
        f.incident = Some(i.id.clone());
        i.findings.push(f.id.clone());
        merge_events(&mut i.events, &f.events);
        for label in &f.labels {
            if !i.labels.contains(label) {
                i.labels.push(*label);
            }
        }
        i.labels.sort();
        i.severity = i.severity.max(f.severity);
        i.updated_ns = i.updated_ns.max(f.ts_ns);
        i.last_seen_ns = i.last_seen_ns.max(f.ts_ns);
        self.changes.finding(finding);
        self.changes.incident(incident);
    }

    /// The chain of `incident` happened again, at `ts_ns`: counted, not appended.
    pub(super) fn repeat(&mut self, incident: usize, ts_ns: u64) {
        let i = &mut self.incidents[incident];
        i.occurrences = i.occurrences.saturating_add(1);
        i.last_seen_ns = i.last_seen_ns.max(ts_ns);
        i.updated_ns = i.updated_ns.max(ts_ns);
        self.changes.incident(incident);
    }

    /// A tool call of the chain: a call the chain already has (same tool, same arguments) is
    /// counted on it; its id stays that of the first. Returns its position in the chain.
    pub(super) fn add_tool_call(&mut self, incident: usize, call: ChainToolCall) -> usize {
        let calls = &mut self.incidents[incident].chain.tool_calls;
        let position = match calls
            .iter()
            .position(|c| c.name == call.name && c.arguments == call.arguments)
        {
            Some(position) => {
                let existing = &mut calls[position];
                existing.calls = existing.calls.saturating_add(1);
                for touched in call.touched {
                    if !existing.touched.contains(&touched) {
                        existing.touched.push(touched);
                    }
                }
                position
            }
            None => {
                calls.push(call);
                calls.len() - 1
            }
        };
        self.changes.incident(incident);
        position
    }

    /// Sensitive data or an API the chain touched.
    pub(super) fn add_data(&mut self, incident: usize, target: String) {
        let data = &mut self.incidents[incident].chain.data;
        if !data.contains(&target) {
            data.push(target);
            self.changes.incident(incident);
        }
    }

    /// A line of what enforcement stopped along the chain.
    pub(super) fn add_enforcement(&mut self, incident: usize, line: String) {
        let lines = &mut self.incidents[incident].chain.enforcement;
        if !lines.contains(&line) {
            lines.push(line);
            self.changes.incident(incident);
        }
    }

    /// A line of the chain's `escape` (an agent-escape finding joined it), up to
    /// [`MAX_ESCAPE_LINES`].
    pub(super) fn add_escape(&mut self, incident: usize, line: String) {
        let lines = &mut self.incidents[incident].chain.escape;
        // Bounded like the rest of the story: an agent writing to a thousand host paths has
        // a thousand findings, its story names the first ones.
        if lines.len() < MAX_ESCAPE_LINES && !lines.contains(&line) {
            lines.push(line);
            self.changes.incident(incident);
        }
    }

    /// The chain's egress line for an exfiltration finding, with the finding's totals.
    pub(super) fn set_egress(&mut self, incident: usize, finding: usize) {
        let FindingDetail::Exfiltration {
            destination,
            requests,
            matched_bytes,
            ..
        } = &self.findings[finding].detail
        else {
            return;
        };
        let line = format!(
            "exfiltration of {matched_bytes} bytes of read data to {destination} ({requests} request{})",
            if *requests == 1 { "" } else { "s" }
        );
        let egress = &mut self.incidents[incident].chain.egress;
        match egress
            .iter_mut()
            .find(|e| e.contains(&format!(" to {destination} (")))
        {
            Some(existing) => *existing = line,
            None => egress.push(line),
        }
        self.changes.incident(incident);
    }

    /// Recomputes an incident's severity and story from its findings and chain, with who the
    /// agent is now (`None`: unchanged).
    pub(super) fn retell(&mut self, incident: usize, identity: Option<(IncidentIdentity, String)>) {
        let Some(i) = self.incidents.get_mut(incident) else {
            return;
        };
        if let Some((identity, name)) = identity {
            i.identity = identity;
            i.agent_name = name;
        }
        let findings: Vec<&Finding> = i
            .findings
            .iter()
            .filter_map(|id| id.strip_prefix("f-")?.parse::<usize>().ok()?.checked_sub(1))
            .filter_map(|n| self.findings.get(n))
            .collect();
        let kinds: std::collections::BTreeSet<FindingKind> =
            findings.iter().map(|f| f.kind).collect();
        let mut severity = findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Low);
        // Injected instructions that the agent acted on against data, or data that left:
        // the worst case this product exists for.
        let acted = kinds.contains(&FindingKind::ToolMisuse)
            && (kinds.contains(&FindingKind::SensitiveAccess)
                || kinds.contains(&FindingKind::Exfiltration));
        if (kinds.contains(&FindingKind::PromptInjection) && acted)
            || (kinds.contains(&FindingKind::Exfiltration) && kinds.len() >= 3)
        {
            severity = Severity::Critical;
        }
        i.severity = severity;
        i.story = story::story(i);
        self.changes.incident(incident);
    }
}

/// Adds evidence ranges, sorted, overlapping and adjacent ones joined (the events of several
/// observations); past [`MAX_EVIDENCE_RANGES`] the last range is widened to cover the new
/// ones, so repeats cannot grow the list without bound.
pub(super) fn merge_events(into: &mut Vec<EventRange>, more: &[EventRange]) {
    for range in more {
        if !into.contains(range) {
            into.push(*range);
        }
    }
    into.sort_by_key(|r| (r.first, r.last));
    into.dedup_by(|next, kept| {
        if next.first <= kept.last.saturating_add(1) {
            kept.last = kept.last.max(next.last);
            true
        } else {
            false
        }
    });
    if into.len() > MAX_EVIDENCE_RANGES {
        let kept = MAX_EVIDENCE_RANGES - 1;
        let widest = into[kept..].iter().map(|r| r.last).max().unwrap_or(0);
        into.truncate(MAX_EVIDENCE_RANGES);
        into[kept].last = into[kept].last.max(widest);
    }
}
