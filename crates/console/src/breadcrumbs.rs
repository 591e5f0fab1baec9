//! Breadcrumbs: where Detail is (`agent › finding › event`) and the way back. Detail shows
//! what was last opened (Enter, `e`, `n`/`N`, a `:` jump, a click); every opening puts what
//! Detail showed before on a bounded history, and the back key (Backspace or `-`) takes it
//! off again. The trail itself is built by the app, which knows names; this module keeps the
//! history and draws the line.

use std::collections::VecDeque;

use ratatui::text::Span;

use crate::pane_switcher::spans_width;
use crate::text::{text_width, truncate_spans, visible};
use crate::theme::Styles;

/// Subjects kept for going back; older ones are forgotten.
pub const HISTORY_KEPT: usize = 32;

/// What Detail showed before, newest last.
#[derive(Debug, Clone)]
pub struct SubjectHistory<T> {
    back: VecDeque<T>,
}

impl<T> Default for SubjectHistory<T> {
    fn default() -> Self {
        Self {
            back: VecDeque::new(),
        }
    }
}

impl<T> SubjectHistory<T> {
    pub fn push(&mut self, subject: T) {
        if self.back.len() == HISTORY_KEPT {
            self.back.pop_front();
        }
        self.back.push_back(subject);
    }

    pub fn pop(&mut self) -> Option<T> {
        self.back.pop_back()
    }

    pub fn len(&self) -> usize {
        self.back.len()
    }

    pub fn is_empty(&self) -> bool {
        self.back.is_empty()
    }
}

/// Longest single crumb, in columns (an event's summary can be a whole URL).
const CRUMB_MAX: usize = 40;

/// The breadcrumb line in at most `room` columns: `⌫ agent › inc-1 › http 23:24:45.688`,
/// the back key first when there is somewhere to go back to. When the trail is too long its
/// first crumbs give way to `…`: where you are matters more than where you started.
pub fn crumb_spans(
    trail: &[String],
    back_key: Option<&str>,
    room: usize,
    styles: &Styles,
) -> Vec<Span<'static>> {
    let mut lead = Vec::new();
    if let Some(key) = back_key {
        lead.push(Span::styled(format!(" {key}"), styles.key));
        lead.push(Span::styled(" back · ", styles.muted));
    } else {
        lead.push(Span::raw(" "));
    }
    if trail.is_empty() {
        lead.push(Span::styled(
            "Detail: nothing opened (Enter opens the selection)",
            styles.muted,
        ));
        return truncate_spans(lead, room);
    }
    let crumbs: Vec<String> = trail
        .iter()
        .map(|c| {
            let c = visible(c);
            if text_width(&c) > CRUMB_MAX {
                let cut: String = c.chars().take(CRUMB_MAX - 1).collect();
                format!("{cut}…")
            } else {
                c
            }
        })
        .collect();
    let separator = " › ";
    let lead_width = spans_width(&lead);
    // Drop crumbs from the front until the rest fits.
    let mut first = 0;
    loop {
        let elided = usize::from(first > 0) * (1 + text_width(separator));
        let width: usize = crumbs[first..].iter().map(|c| text_width(c)).sum::<usize>()
            + text_width(separator) * (crumbs.len() - first - 1)
            + elided;
        if lead_width + width <= room || first + 1 == crumbs.len() {
            break;
        }
        first += 1;
    }
    let mut spans = lead;
    if first > 0 {
        spans.push(Span::styled(format!("…{separator}"), styles.muted));
    }
    let last = crumbs.len() - 1;
    for (i, crumb) in crumbs.into_iter().enumerate().skip(first) {
        if i > first {
            spans.push(Span::styled(separator, styles.muted));
        }
        let style = if i == last {
            styles.title_focused
        } else {
            styles.text
        };
        spans.push(Span::styled(crumb, style));
    }
    truncate_spans(spans, room)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theme::{ColorMode, Theme};

    fn text(spans: &[Span]) -> String {
        spans.iter().map(|s| s.content.as_ref()).collect()
    }

    #[test]
    fn the_history_is_bounded_and_the_trail_keeps_its_end() {
        let mut history = SubjectHistory::default();
        for i in 0..HISTORY_KEPT + 5 {
            history.push(i);
        }
        assert_eq!(history.len(), HISTORY_KEPT);
        assert_eq!(history.pop(), Some(HISTORY_KEPT + 4));

        let styles = Styles::new(&Theme::load("dark").unwrap(), ColorMode::None);
        let trail: Vec<String> = ["incident_agent.py", "inc-1", "http 23:24:45.688"]
            .map(String::from)
            .to_vec();
        let wide = crumb_spans(&trail, Some("⌫"), 80, &styles);
        assert_eq!(
            text(&wide),
            " ⌫ back · incident_agent.py › inc-1 › http 23:24:45.688"
        );
        let narrow = crumb_spans(&trail, Some("⌫"), 40, &styles);
        assert_eq!(text(&narrow), " ⌫ back · … › inc-1 › http 23:24:45.688");
        assert_eq!(
            text(&crumb_spans(&[], None, 80, &styles)),
            " Detail: nothing opened (Enter opens the selection)"
        );
    }
}
