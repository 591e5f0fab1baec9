//! The pane switcher: every pane has a number (its place in the Tab order), a number key
//! focuses it, and the header line lists the panes by number. When the terminal cannot show
//! them all (AI-BOM and posture share one place; below [`crate::app::WIDE`] columns graph,
//! timeline, AI-BOM and posture share one; `z` shows only one pane), the header lists the panes
//! that are not on screen, so none vanishes without a hint.

use ratatui::text::Span;

use crate::app::PaneId;
use crate::text::text_width;
use crate::theme::Styles;

/// The panes in Tab order; a pane's number is its place here plus one.
pub const PANE_ORDER: [PaneId; 7] = [
    PaneId::Agents,
    PaneId::Graph,
    PaneId::Timeline,
    PaneId::Detail,
    PaneId::AiBom,
    PaneId::Findings,
    PaneId::Posture,
];

pub fn pane_name(pane: PaneId) -> &'static str {
    match pane {
        PaneId::Agents => "Agents",
        PaneId::Graph => "Graph",
        PaneId::Timeline => "Timeline",
        PaneId::Detail => "Detail",
        PaneId::AiBom => "AI-BOM",
        PaneId::Findings => "Findings",
        PaneId::Posture => "Posture",
    }
}

/// `1` for the agents pane, ..., `6` for the findings pane.
pub fn pane_number(pane: PaneId) -> usize {
    PANE_ORDER.iter().position(|p| *p == pane).unwrap_or(0) + 1
}

/// The switcher as spans of at most `room` columns: every pane by number (`1 Agents  2
/// Graph …`, the focused one highlighted, panes not on screen muted) when that fits, else
/// only the panes not on screen (`more: 3 Timeline  5 AI-BOM`), else nothing.
pub fn switcher_spans(
    focus: PaneId,
    shown: impl Fn(PaneId) -> bool,
    room: usize,
    styles: &Styles,
) -> Vec<Span<'static>> {
    let tab = |pane: PaneId| format!("{} {}", pane_number(pane), pane_name(pane));
    let mut full = Vec::new();
    for (i, pane) in PANE_ORDER.into_iter().enumerate() {
        if i > 0 {
            full.push(Span::raw("  "));
        }
        let style = if pane == focus {
            styles.title_focused.patch(styles.selection)
        } else if shown(pane) {
            styles.text
        } else {
            styles.muted
        };
        full.push(Span::styled(tab(pane), style));
    }
    if spans_width(&full) <= room {
        return full;
    }
    let hidden: Vec<PaneId> = PANE_ORDER.into_iter().filter(|p| !shown(*p)).collect();
    if hidden.is_empty() {
        return Vec::new();
    }
    let mut compact = vec![Span::styled("more: ", styles.muted)];
    for (i, pane) in hidden.into_iter().enumerate() {
        if i > 0 {
            compact.push(Span::raw("  "));
        }
        compact.push(Span::styled(tab(pane), styles.key));
    }
    if spans_width(&compact) <= room {
        compact
    } else {
        crate::text::truncate_spans(compact, room)
    }
}

pub fn spans_width(spans: &[Span<'_>]) -> usize {
    spans.iter().map(|s| text_width(&s.content)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theme::{ColorMode, Theme};

    fn text(spans: &[Span]) -> String {
        spans.iter().map(|s| s.content.as_ref()).collect()
    }

    #[test]
    fn all_panes_when_they_fit_else_the_hidden_ones() {
        let styles = Styles::new(&Theme::load("dark").unwrap(), ColorMode::None);
        let narrow = |p: PaneId| !matches!(p, PaneId::Timeline | PaneId::AiBom | PaneId::Posture);
        let full = switcher_spans(PaneId::Agents, narrow, 80, &styles);
        assert_eq!(
            text(&full),
            "1 Agents  2 Graph  3 Timeline  4 Detail  5 AI-BOM  6 Findings  7 Posture"
        );
        let compact = switcher_spans(PaneId::Agents, narrow, 40, &styles);
        assert_eq!(text(&compact), "more: 3 Timeline  5 AI-BOM  7 Posture");
        assert!(switcher_spans(PaneId::Agents, |_| true, 40, &styles).is_empty());
        assert_eq!(pane_number(PaneId::Findings), 6);
        assert_eq!(pane_number(PaneId::Posture), 7);
    }
}
