//! The findings pane: incidents raised by detection, and findings that belong to no incident,
//! newest last, each tied to an agent.
//!
//! The console does not detect anything itself: detection runs in the pipeline (live and in
//! replays alike), and [`views_of`] turns what it raised into [`FindingView`]s. An incident
//! grows as its chain does, so a view with the same id replaces the earlier one.

use std::collections::VecDeque;

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};
use ratatui::Frame;

use agentscope_analysis::detect::{self, DetectionCursor, Severity};

use super::format::format_time;
use super::list::ListCursor;
use super::text::visible;
use super::theme::Styles;

/// One incident (or standalone finding) as the console shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingView {
    /// The incident's or finding's id (`inc-1`, `f-7`).
    pub id: String,
    pub severity: Severity,
    pub title: String,
    /// The agent it concerns (its key, as in the model).
    pub agent_key: String,
    /// What happened, in order, one step per line.
    pub story: String,
    /// Event time it was raised at (nanoseconds since boot, like every `ts_ns`).
    pub ts_ns: u64,
    /// The raw events behind it: Enter on the finding walks the timeline rows that hold them.
    pub evidence: Vec<agentscope_reconstruct::EventRange>,
    /// An incident's steps, one per finding in the order they joined: the raw events each is
    /// about. The walk stops once at each step (the injected ticket, the misused calls, the
    /// read, the POST); empty for a finding alone, whose walk stops at every evidence row.
    pub steps: Vec<Vec<agentscope_reconstruct::EventRange>>,
    /// What detection matched in the content (the injected phrase), highlighted in Detail
    /// when the walk reaches the row that carried it.
    pub matched: Vec<String>,
    /// Findings it holds (an incident grows as its chain goes on; 1 for a finding).
    pub findings: usize,
    /// How many times the chain happened (an incident's repeats; 1 for a finding).
    pub occurrences: u32,
    /// Event time of its latest finding or repeat: the row's time, so a row that grows
    /// shows it.
    pub last_seen_ns: u64,
}

/// Steps an incident's walk stops at, at most (an incident that grew past this many findings
/// is walked through its first ones).
pub const MAX_WALK_STEPS: usize = 64;

/// Findings kept; the oldest go first.
pub const FINDINGS_KEPT: usize = 1000;

#[derive(Default)]
pub struct FindingsPane {
    findings: VecDeque<FindingView>,
    pub cursor: ListCursor,
    pub filter: String,
    /// Indices into `findings` that match the filter, in `order`.
    visible: Vec<usize>,
    pub order: super::list_sort::FindingOrder,
}

impl FindingsPane {
    /// Adds a view, or replaces the one with the same id (an incident that grew).
    pub fn push(&mut self, finding: FindingView) {
        if !finding.id.is_empty() {
            if let Some(existing) = self.findings.iter_mut().find(|f| f.id == finding.id) {
                if *existing != finding {
                    *existing = finding;
                    self.refilter();
                }
                return;
            }
        }
        if self.findings.len() == FINDINGS_KEPT {
            self.findings.pop_front();
        }
        self.findings.push_back(finding);
        self.refilter();
    }

    /// Keeps only the views `keep` says to (the selected agents').
    pub fn retain(&mut self, keep: impl Fn(&FindingView) -> bool) {
        let before = self.findings.len();
        self.findings.retain(|f| keep(f));
        if self.findings.len() != before {
            self.refilter();
        }
    }

    /// Drops the view with this id (a finding that joined an incident).
    pub fn remove(&mut self, id: &str) {
        let before = self.findings.len();
        self.findings.retain(|f| f.id != id);
        if self.findings.len() != before {
            self.refilter();
        }
    }

    pub fn clear(&mut self) {
        self.findings.clear();
        self.visible.clear();
        self.cursor = ListCursor::default();
    }

    pub fn set_filter(&mut self, filter: String) {
        self.filter = filter;
        self.refilter();
    }

    fn refilter(&mut self) {
        let query = super::search_query::SearchQuery::parse(&self.filter);
        self.visible = self
            .findings
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                query.matches(&[f.severity.name(), &f.title, &f.agent_key, &f.story][..])
            })
            .map(|(i, _)| i)
            .collect();
        let order = self.order;
        let findings = &self.findings;
        self.visible
            .sort_by(|a, b| order.compare(&findings[*a], &findings[*b]));
        self.cursor.clamp(self.visible.len());
    }

    /// Shows the findings in `order`, the same finding staying selected.
    pub fn set_order(&mut self, order: super::list_sort::FindingOrder) {
        let selected = self.selected().map(|f| f.id.clone());
        self.order = order;
        self.refilter();
        if let Some(id) = selected {
            self.select_id(&id);
        }
    }

    /// Selects the finding with this id, if it is shown; returns it.
    pub fn select_id(&mut self, id: &str) -> Option<&FindingView> {
        let row = self
            .visible
            .iter()
            .position(|i| self.findings[*i].id == id)?;
        self.cursor.select(row, self.visible.len());
        self.selected()
    }

    /// Every finding held, as raised (filter and order aside).
    pub fn all(&self) -> impl Iterator<Item = &FindingView> {
        self.findings.iter()
    }

    pub fn len(&self) -> usize {
        self.visible.len()
    }

    pub fn is_empty(&self) -> bool {
        self.visible.is_empty()
    }

    pub fn selected(&self) -> Option<&FindingView> {
        self.visible
            .get(self.cursor.selected)
            .and_then(|i| self.findings.get(*i))
    }

    /// The worst severity among an agent's findings, for the marker in the agents tree.
    pub fn worst_for(&self, agent_key: &str) -> Option<Severity> {
        self.findings
            .iter()
            .filter(|f| f.agent_key == agent_key)
            .map(|f| f.severity)
            .max()
    }

    /// An agent's findings and incidents.
    pub fn of_agent<'a>(&'a self, agent_key: &'a str) -> impl Iterator<Item = &'a FindingView> {
        self.findings
            .iter()
            .filter(move |f| f.agent_key == agent_key)
    }

    /// Moves to the next finding (wrapping); returns it.
    pub fn select_next(&mut self) -> Option<&FindingView> {
        if self.visible.is_empty() {
            return None;
        }
        let next = if self.cursor.touched {
            (self.cursor.selected + 1) % self.visible.len()
        } else {
            0
        };
        self.cursor.select(next, self.visible.len());
        self.selected()
    }

    /// Moves to the previous finding (wrapping); returns it.
    pub fn select_prev(&mut self) -> Option<&FindingView> {
        if self.visible.is_empty() {
            return None;
        }
        let len = self.visible.len();
        let prev = if self.cursor.touched {
            (self.cursor.selected + len - 1) % len
        } else {
            len - 1
        };
        self.cursor.select(prev, len);
        self.selected()
    }

    /// The ids of the findings held.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.findings.iter().map(|f| f.id.as_str())
    }

    pub fn render(
        &mut self,
        frame: &mut Frame,
        area: Rect,
        block: Block<'_>,
        styles: &Styles,
        boot_offset: Option<i128>,
    ) {
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if self.visible.is_empty() {
            let text = if self.findings.is_empty() {
                vec![
                    Line::styled("No findings.", styles.muted),
                    Line::styled(
                        "Incidents raised by detections are listed here; n jumps to the next one.",
                        styles.muted,
                    ),
                ]
            } else {
                vec![Line::styled("No finding matches the filter.", styles.muted)]
            };
            frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), inner);
            return;
        }
        let height = inner.height as usize;
        self.cursor.scroll_into_view(height, self.visible.len());
        let lines: Vec<Line> = self
            .visible
            .iter()
            .enumerate()
            .skip(self.cursor.offset)
            .take(height)
            .map(|(row, index)| {
                let f = &self.findings[*index];
                let line = Line::from(vec![
                    Span::styled(
                        // "critical" is 8 letters: the column is one wider than the longest.
                        format!("{:<9}", f.severity.name()),
                        styles.severity(f.severity),
                    ),
                    // When it last grew: a live incident's row moves on as the attack does.
                    Span::styled(
                        format!("{} ", format_time(f.last_seen_ns, boot_offset)),
                        styles.muted,
                    ),
                    Span::styled(growth(f), styles.accent),
                    Span::styled(visible(&f.title), styles.text),
                ]);
                if row == self.cursor.selected {
                    line.style(styles.selection)
                } else {
                    line
                }
            })
            .collect();
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

/// `[5] ` for an incident of five findings, `[5 ×3] ` when its chain happened three times;
/// nothing for a lone finding.
fn growth(f: &FindingView) -> String {
    match (f.findings, f.occurrences) {
        (0 | 1, 0 | 1) => String::new(),
        (n, 0 | 1) => format!("[{n}] "),
        (n, times) => format!("[{n} ×{times}] "),
    }
}

/// Standalone findings below this stay out of the pane (they are in `--graph-json`).
const STANDALONE_MIN: detect::Severity = detect::Severity::Medium;

/// Keeps the pane in step with what detection raised, following its change feed: incidents
/// that changed (grew, repeated), standalone findings, and findings that have since joined an
/// incident (their view goes).
#[derive(Default)]
pub struct DetectionSync {
    cursor: DetectionCursor,
}

impl DetectionSync {
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    pub fn sync(&mut self, detector: &detect::Detector, pane: &mut FindingsPane) {
        let changes = detector.changes_since(self.cursor);
        self.cursor = changes.next;
        for finding in changes.findings {
            if finding.incident.is_none() && finding.severity >= STANDALONE_MIN {
                pane.push(finding_view(finding));
            }
        }
        for incident in changes.incidents {
            for id in &incident.findings {
                pane.remove(id);
            }
            pane.push(incident_view(incident, detector.findings()));
        }
    }
}

/// An incident: its story one step per line, then each finding with its evidence.
pub fn incident_view(incident: &detect::Incident, findings: &[detect::Finding]) -> FindingView {
    let mut story: Vec<String> = detect::story::steps(incident)
        .into_iter()
        .enumerate()
        .map(|(i, step)| if i == 0 { step } else { format!("→ {step}") })
        .collect();
    story.push(String::new());
    story.push(format!("Findings ({}):", incident.findings.len()));
    for id in &incident.findings {
        if let Some(finding) = findings.iter().find(|f| &f.id == id) {
            story.push(format!(
                "{} {} {}: {}",
                finding.id,
                finding.severity.name(),
                finding.kind.name(),
                finding.summary
            ));
        }
    }
    let labels: Vec<&str> = incident.labels.iter().map(|l| l.id).collect();
    story.push(String::new());
    story.push(format!("Labels: {}", labels.join(", ")));
    story.push(format!("Evidence: {}", event_ranges(&incident.events)));
    let joined: Vec<&detect::Finding> = incident
        .findings
        .iter()
        .filter_map(|id| findings.iter().find(|f| &f.id == id))
        .collect();
    let matched = joined.iter().copied().flat_map(matched_phrases).collect();
    let steps = joined
        .iter()
        .take(MAX_WALK_STEPS)
        .map(|f| {
            if f.subject_events.is_empty() {
                f.events.clone()
            } else {
                f.subject_events.clone()
            }
        })
        .collect();
    FindingView {
        id: incident.id.clone(),
        severity: incident.severity,
        title: format!("{} {}", incident.id, incident.story),
        agent_key: incident.agent.clone(),
        story: story.join("\n"),
        ts_ns: incident.opened_ns,
        evidence: incident.events.clone(),
        steps,
        matched,
        findings: incident.findings.len(),
        occurrences: incident.occurrences,
        last_seen_ns: incident.last_seen_ns.max(incident.updated_ns),
    }
}

/// What a finding matched in the content: the phrases a prompt-injection finding's rules
/// matched, the pieces of read data an exfiltration carried.
fn matched_phrases(finding: &detect::Finding) -> Vec<String> {
    match &finding.detail {
        detect::FindingDetail::PromptInjection { hits, .. } => {
            hits.iter().map(|h| h.matched.clone()).collect()
        }
        detect::FindingDetail::Exfiltration { samples, .. } => samples.clone(),
        _ => Vec::new(),
    }
}

/// A finding that belongs to no incident.
pub fn finding_view(finding: &detect::Finding) -> FindingView {
    let labels: Vec<&str> = finding.labels.iter().map(|l| l.id).collect();
    FindingView {
        id: finding.id.clone(),
        severity: finding.severity,
        title: format!(
            "{} {}: {}",
            finding.id,
            finding.kind.name(),
            finding.summary
        ),
        agent_key: finding.agent.clone(),
        story: format!(
            "{}\n\nLabels: {}\nEvidence: {}",
            finding.summary,
            labels.join(", "),
            event_ranges(&finding.events)
        ),
        ts_ns: finding.ts_ns,
        evidence: finding.events.clone(),
        steps: Vec::new(),
        matched: matched_phrases(finding),
        findings: 1,
        occurrences: 1,
        last_seen_ns: finding.ts_ns,
    }
}

/// `events 12-14, 30` (raw event positions, as `agentscope cap slice` and replays count them).
fn event_ranges(ranges: &[agentscope_reconstruct::EventRange]) -> String {
    let parts: Vec<String> = ranges.iter().take(12).map(ToString::to_string).collect();
    let more = ranges.len().saturating_sub(12);
    format!(
        "events {}{}",
        parts.join(", "),
        if more > 0 {
            format!(" (+{more} more)")
        } else {
            String::new()
        }
    )
}
