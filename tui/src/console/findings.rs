//! The findings pane: incidents raised by detections, newest last, each tied to an agent.
//!
//! The console does not detect anything itself. Whatever does (the detection module) hands
//! [`FindingView`]s over through [`super::source::SourceUpdate::findings`]; until then the pane
//! shows an empty state that says so.

use std::collections::VecDeque;

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};
use ratatui::Frame;

use super::format::format_time;
use super::list::ListCursor;
use super::theme::Styles;

/// How bad a finding is, most severe last (so `max()` picks the worst). Constructed by the
/// detection module.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One incident as the console shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingView {
    pub severity: Severity,
    pub title: String,
    /// The agent it concerns (its key, as in the model).
    pub agent_key: String,
    /// What happened, in order, one step per line.
    pub story: String,
    /// Event time it was raised at (nanoseconds since boot, like every `ts_ns`).
    pub ts_ns: u64,
}

/// Findings kept; the oldest go first.
pub const FINDINGS_KEPT: usize = 1000;

#[derive(Default)]
pub struct FindingsPane {
    findings: VecDeque<FindingView>,
    pub cursor: ListCursor,
    pub filter: String,
    /// Indices into `findings` that match the filter.
    visible: Vec<usize>,
}

impl FindingsPane {
    pub fn push(&mut self, finding: FindingView) {
        if self.findings.len() == FINDINGS_KEPT {
            self.findings.pop_front();
        }
        self.findings.push_back(finding);
        self.refilter();
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
        let terms = super::format::filter_terms(&self.filter);
        self.visible = self
            .findings
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                super::format::matches_terms(
                    &terms,
                    &[f.severity.label(), &f.title, &f.agent_key, &f.story],
                )
            })
            .map(|(i, _)| i)
            .collect();
        self.cursor.clamp(self.visible.len());
    }

    pub fn len(&self) -> usize {
        self.visible.len()
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
                        format!("{:<8}", f.severity.label()),
                        styles.severity(f.severity),
                    ),
                    Span::styled(
                        format!("{} ", format_time(f.ts_ns, boot_offset)),
                        styles.muted,
                    ),
                    Span::styled(f.title.clone(), styles.text),
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
