//! The timeline pane: the selected agent's observations in order (LLM calls, MCP tool calls,
//! execs, file, database and API access), filterable.
//!
//! Rows are the agent's log entries, addressed by their stable log positions. A filter keeps
//! the positions that match, extended as entries arrive (each entry is tested once) rather
//! than recomputed. Only the rows on screen are formatted. With the selection on the last row
//! the pane follows new entries, like `tail -f`.
//!
//! Grouped by session (`S`), the rows are the same entries ordered by session (the number the
//! log gave each run of the agent) and conversation within it, then by time: a list of
//! positions rebuilt when the log or the filter changed (at most the log's bounded length).

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};
use ratatui::Frame;

use super::entry_search::SearchableEntry;
use super::format::format_time;
use super::list::{render_rows, ListCursor};
use super::log::{AgentLog, LoggedObservation};
use super::search_query::SearchQuery;
use super::text::fit_columns;
use super::theme::Styles;
use agentscope_reconstruct::EventRange;

#[derive(Default)]
pub struct TimelinePane {
    agent: Option<String>,
    pub filter: String,
    query: SearchQuery,
    /// With a filter: log positions of the matching entries, ascending.
    matches: Vec<u64>,
    /// Log position up to which entries were tested against the filter.
    scanned_to: u64,
    generation: u64,
    /// The selected entry's log position; `None` follows the newest entry.
    selected: Option<u64>,
    cursor: ListCursor,
    pub last_area: Rect,
    /// The raw events of the finding being walked (Enter on a finding): rows holding any of
    /// them are marked.
    pub evidence: Vec<EventRange>,
    /// Rows grouped by session: the shown positions in session order.
    grouped: Option<Vec<u64>>,
    /// What `grouped` was built from: the log's generation, start and end and the number of
    /// filter matches (any change rebuilds it).
    grouped_from: (u64, u64, u64, usize),
}

impl TimelinePane {
    pub fn set_agent(&mut self, agent: Option<&str>) {
        if self.agent.as_deref() != agent {
            self.agent = agent.map(str::to_string);
            self.selected = None;
            self.cursor = ListCursor::default();
            self.matches.clear();
            self.scanned_to = 0;
        }
    }

    /// Groups the rows by session, or back to time order; the selected entry stays selected.
    pub fn toggle_group_by_session(&mut self, log: Option<&AgentLog>) {
        let keep = self.selected_position(log).filter(|_| !self.following());
        self.grouped = match self.grouped {
            Some(_) => None,
            None => Some(Vec::new()),
        };
        self.grouped_from = (u64::MAX, 0, 0, 0);
        self.sync(log);
        if let Some(position) = keep {
            self.selected = Some(position);
        }
    }

    pub fn grouped_by_session(&self) -> bool {
        self.grouped.is_some()
    }

    pub fn set_filter(&mut self, filter: String, log: Option<&AgentLog>) {
        self.filter = filter;
        self.query = SearchQuery::parse(&self.filter);
        self.matches.clear();
        self.scanned_to = 0;
        self.selected = None;
        self.sync(log);
    }

    /// What could not be parsed in the filter (a bad regular expression), to show.
    pub fn filter_error(&self) -> Option<&str> {
        self.query.error.as_deref()
    }

    pub fn following(&self) -> bool {
        self.selected.is_none()
    }

    /// Catches up with the log: drops filtered positions that left it, tests new entries.
    pub fn sync(&mut self, log: Option<&AgentLog>) {
        let Some(log) = log else {
            self.matches.clear();
            return;
        };
        if log.generation != self.generation {
            self.generation = log.generation;
            self.matches.clear();
            self.scanned_to = 0;
        }
        let start = log.start();
        if self.selected.is_some_and(|p| p < start) {
            self.selected = Some(start);
        }
        if !self.query.is_empty() {
            let dropped = self.matches.partition_point(|p| *p < start);
            self.matches.drain(..dropped);
            let from = self.scanned_to.max(start);
            for (position, entry) in log.iter_from(from) {
                if self.query.matches(&SearchableEntry::new(entry)) {
                    self.matches.push(position);
                }
            }
            self.scanned_to = log.end();
        }
        self.regroup(log);
    }

    /// Rebuilds the session order when grouped and the rows changed.
    fn regroup(&mut self, log: &AgentLog) {
        if self.grouped.is_none() {
            return;
        }
        let from = (log.generation, log.start(), log.end(), self.matches.len());
        if from == self.grouped_from {
            return;
        }
        self.grouped_from = from;
        let mut rows: Vec<u64> = if self.query.is_empty() {
            (log.start()..log.end()).collect()
        } else {
            self.matches.clone()
        };
        // Stable: time order within a session; entries of no session last.
        rows.sort_by_key(|p| {
            log.get(*p)
                .and_then(|e| e.session)
                .map_or((u32::MAX, u32::MAX), |s| s.order())
        });
        self.grouped = Some(rows);
    }

    pub fn len(&self, log: Option<&AgentLog>) -> usize {
        match log {
            None => 0,
            Some(_) if self.grouped.is_some() => self.grouped.as_ref().map_or(0, Vec::len),
            Some(_) if !self.query.is_empty() => self.matches.len(),
            Some(log) => log.len(),
        }
    }

    fn position_at(&self, row: usize, log: &AgentLog) -> Option<u64> {
        if let Some(grouped) = &self.grouped {
            return grouped.get(row).copied();
        }
        if self.query.is_empty() {
            let position = log.start() + row as u64;
            (position < log.end()).then_some(position)
        } else {
            self.matches.get(row).copied()
        }
    }

    fn row_of(&self, position: u64, log: &AgentLog) -> usize {
        if let Some(grouped) = &self.grouped {
            return grouped.iter().position(|p| *p == position).unwrap_or(0);
        }
        if self.query.is_empty() {
            position.saturating_sub(log.start()) as usize
        } else {
            self.matches.partition_point(|p| *p < position)
        }
    }

    fn selected_row(&self, log: &AgentLog) -> usize {
        let len = self.len(Some(log));
        match self.selected {
            None => len.saturating_sub(1),
            Some(position) => self.row_of(position, log).min(len.saturating_sub(1)),
        }
    }

    /// The words and phrases the filter looks for, to highlight in Detail.
    pub fn highlight_terms(&self) -> Vec<&str> {
        self.query.highlight_terms()
    }

    /// Selects the entry at log `position`, clearing a filter that hides it.
    pub fn select_position(&mut self, position: u64, log: Option<&AgentLog>) {
        let Some(log) = log else { return };
        if !self.query.is_empty() && self.matches.binary_search(&position).is_err() {
            self.set_filter(String::new(), Some(log));
        }
        let row = self.row_of(position, log);
        self.select_row(row, Some(log));
        // The last row means "follow"; an evidence row stays selected as entries arrive.
        self.selected = Some(position);
    }

    /// The log positions of the rows shown, in order.
    pub fn shown_positions<'a>(&'a self, log: &'a AgentLog) -> impl Iterator<Item = u64> + 'a {
        (0..self.len(Some(log))).filter_map(move |row| self.position_at(row, log))
    }

    /// The selected entry's log position.
    pub fn selected_position(&self, log: Option<&AgentLog>) -> Option<u64> {
        let log = log?;
        self.position_at(self.selected_row(log), log)
    }

    pub fn select_row(&mut self, row: usize, log: Option<&AgentLog>) {
        let Some(log) = log else { return };
        let len = self.len(Some(log));
        if len == 0 {
            return;
        }
        let row = row.min(len - 1);
        // The last row means "follow".
        self.selected = if row + 1 == len {
            None
        } else {
            self.position_at(row, log)
        };
        self.cursor.touched = true;
    }

    pub fn move_by(&mut self, delta: isize, log: Option<&AgentLog>) {
        let Some(log) = log else { return };
        let row = self.selected_row(log).saturating_add_signed(delta);
        self.select_row(row, Some(log));
    }

    pub fn scroll_by(&mut self, delta: isize, log: Option<&AgentLog>) {
        let len = self.len(log);
        let height = self.last_area.height as usize;
        let Some(log) = log else { return };
        self.cursor.selected = self.selected_row(log);
        self.cursor.scroll_by(delta, height, len);
        self.select_row(self.cursor.selected, Some(log));
    }

    pub fn row_at(&self, y: u16, log: Option<&AgentLog>) -> Option<usize> {
        self.cursor.row_at(self.last_area, y, self.len(log))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn render(
        &mut self,
        frame: &mut Frame,
        area: Rect,
        block: Block<'_>,
        log: Option<&AgentLog>,
        styles: &Styles,
        boot_offset: Option<i128>,
    ) {
        let inner = block.inner(area);
        frame.render_widget(block, area);
        self.last_area = inner;
        let len = self.len(log);
        let Some(log) = log.filter(|_| len > 0) else {
            let text = if self.agent.is_none() {
                "Select an agent to see its timeline."
            } else if !self.query.is_empty() {
                "No observation matches the filter."
            } else {
                "No observations for this agent yet."
            };
            frame.render_widget(
                Paragraph::new(Line::styled(text, styles.muted)).wrap(Wrap { trim: true }),
                inner,
            );
            return;
        };
        let height = inner.height as usize;
        self.cursor.selected = self.selected_row(log);
        self.cursor.scroll_into_view(height, len);
        let width = inner.width as usize;
        let lines = (self.cursor.offset..len.min(self.cursor.offset + height)).filter_map(|row| {
            let entry = log.get(self.position_at(row, log)?)?;
            let evidence = overlaps(&self.evidence, &entry.observation.events);
            Some(entry_line(entry, evidence, styles, width, boot_offset))
        });
        render_rows(
            frame,
            inner,
            lines,
            Some(self.cursor.selected - self.cursor.offset),
            styles.selection,
        );
    }

    /// `12-40/340 · following`: for the pane title.
    pub fn position_text(&self, log: Option<&AgentLog>) -> String {
        let len = self.len(log);
        if len == 0 {
            return String::new();
        }
        let row = log.map_or(0, |l| self.selected_row(l)) + 1;
        let follow = if self.following() {
            " · following"
        } else {
            ""
        };
        let grouped = if self.grouped.is_some() {
            " · by session"
        } else {
            ""
        };
        format!("{row}/{len}{follow}{grouped}")
    }
}

/// Whether any of `events` falls in one of `evidence`'s ranges.
pub fn overlaps(evidence: &[EventRange], events: &[EventRange]) -> bool {
    evidence.iter().any(|e| {
        events
            .iter()
            .any(|o| o.first <= e.last && e.first <= o.last)
    })
}

fn entry_line(
    entry: &LoggedObservation,
    evidence: bool,
    styles: &Styles,
    width: usize,
    boot_offset: Option<i128>,
) -> Line<'static> {
    let tag_style = entry
        .kind
        .colour_of()
        .map_or(styles.muted, |k| styles.node(k));
    let mut spans = Vec::new();
    if evidence {
        // Evidence of the finding being walked: marked, not only coloured (NO_COLOR).
        spans.push(Span::styled("◆", styles.error));
    }
    spans.extend([
        Span::styled(
            format!("{} ", format_time(entry.observation.ts_ns, boot_offset)),
            styles.muted,
        ),
        Span::styled(format!("{:<5} ", entry.kind.tag()), tag_style),
        // The session (one run of the agent: concurrent runs interleave in time) and
        // conversation within it, and the process (the agent or a tool it started).
        Span::styled(
            format!(
                "{:<4} ",
                entry.session.map_or_else(|| "-".to_string(), |s| s.label())
            ),
            styles.accent,
        ),
        Span::styled(format!("{:<7} ", entry.observation.actor.pid), styles.muted),
        Span::styled(entry.summary.clone(), styles.text),
    ]);
    fit_columns(spans, Vec::new(), width)
}
