//! The hint line: the keys of the focused pane, k9s-style, as the key map binds them (a
//! rebound key shows its new name), cut to the terminal's width from the least useful end.
//! While a filter or a `:` command is typed, it shows the editing keys and the syntax instead.

use ratatui::text::{Line, Span};

use crate::app::PaneId;
use crate::keys::{Action, KeyMap};
use crate::pane_switcher::spans_width;
use crate::theme::Styles;

/// What is being typed, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Editing {
    None,
    Filter,
    Command,
}

/// A pane's keys, most useful first.
fn pane_hints(pane: PaneId, detail_has_finding: bool) -> Vec<(Action, &'static str)> {
    use Action::*;
    match pane {
        PaneId::Agents => vec![
            (DrillIn, "open"),
            (Right, "expand"),
            (Filter, "filter"),
            (NextFinding, "finding"),
            (Command, "jump"),
            (PreviousSubject, "back"),
            (Baseline, "baseline"),
        ],
        PaneId::Graph => vec![
            (DrillIn, "open"),
            (Right, "expand"),
            (Left, "fold"),
            (Sort, "sort"),
            (Filter, "filter"),
            (PreviousSubject, "back"),
            (Command, "jump"),
            (Zoom, "zoom"),
        ],
        PaneId::Timeline => vec![
            (DrillIn, "open"),
            (Filter, "search"),
            (NextEvidence, "evidence"),
            (PreviousSubject, "back"),
            (Bottom, "follow"),
            (Command, "jump"),
            (Zoom, "zoom"),
        ],
        PaneId::Detail => {
            let mut hints = vec![(Down, "scroll"), (PageDown, "page")];
            if detail_has_finding {
                hints.push((DrillIn, "evidence"));
            }
            hints.extend([
                (PreviousSubject, "back"),
                (Zoom, "zoom"),
                (NextFinding, "finding"),
                (Command, "jump"),
            ]);
            hints
        }
        PaneId::AiBom | PaneId::Posture => vec![
            (Down, "scroll"),
            (PageDown, "page"),
            (Zoom, "zoom"),
            (Command, "jump"),
        ],
        PaneId::Findings => vec![
            (DrillIn, "evidence"),
            (NextFinding, "next"),
            (PrevFinding, "prev"),
            (Sort, "sort"),
            (Filter, "filter"),
            (PreviousSubject, "back"),
            (Command, "jump"),
        ],
    }
}

/// A key's name as short as the line needs it.
pub fn short_key(name: &str) -> String {
    match name {
        "enter" => "⏎".into(),
        "backspace" => "⌫".into(),
        "up" => "↑".into(),
        "down" => "↓".into(),
        "left" => "←".into(),
        "right" => "→".into(),
        "tab" => "⇥".into(),
        "pagedown" => "pgdn".into(),
        "pageup" => "pgup".into(),
        other => other.into(),
    }
}

/// The first key bound to `action`, short; `None` when it is unbound.
pub fn first_key(keymap: &KeyMap, action: Action) -> Option<String> {
    keymap
        .keys(action)
        .first()
        .map(|k| short_key(&k.to_string()))
}

/// The pane-number keys as one hint: `1-7` with the default bindings.
fn pane_keys(keymap: &KeyMap) -> Option<String> {
    let first = first_key(keymap, Action::PaneAgents)?;
    let last = first_key(keymap, Action::PanePosture)?;
    Some(format!("{first}-{last}"))
}

/// The hint line for `focus`, at most `width` columns.
pub fn hint_line(
    focus: PaneId,
    editing: Editing,
    detail_has_finding: bool,
    keymap: &KeyMap,
    styles: &Styles,
    width: usize,
) -> Line<'static> {
    let pairs: Vec<(String, String)> = match editing {
        Editing::Filter => vec![
            ("⏎".into(), "keep".into()),
            ("esc".into(), "clear".into()),
            (
                "".into(),
                "words \"a phrase\" !not /regex/ kind: tool: pid: host: comm:".into(),
            ),
        ],
        Editing::Command => vec![
            ("⏎".into(), "go".into()),
            ("esc".into(), "cancel".into()),
            ("".into(), crate::command_line::SYNTAX.into()),
        ],
        Editing::None => {
            let mut pairs: Vec<(String, String)> = pane_hints(focus, detail_has_finding)
                .into_iter()
                .filter_map(|(action, label)| Some((first_key(keymap, action)?, label.to_string())))
                .collect();
            if let Some(keys) = pane_keys(keymap) {
                pairs.push((keys, "pane".into()));
            }
            pairs
        }
    };
    let mut spans: Vec<Span<'static>> = Vec::new();
    for (key, label) in pairs {
        let mut pair = vec![Span::raw(" ")];
        if !key.is_empty() {
            pair.push(Span::styled(key, styles.key));
            pair.push(Span::raw(" "));
        }
        pair.push(Span::styled(label, styles.muted));
        if spans_width(&spans) + spans_width(&pair) + 1 > width {
            break;
        }
        spans.extend(pair);
        spans.push(Span::raw(" "));
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::theme::{ColorMode, Theme};

    #[test]
    fn every_pane_has_hints_that_fit_80_columns() {
        let styles = Styles::new(&Theme::load("dark").unwrap(), ColorMode::None);
        let keymap = KeyMap::default();
        for pane in crate::pane_switcher::PANE_ORDER {
            let line = hint_line(pane, Editing::None, true, &keymap, &styles, 80);
            let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
            assert!(crate::text::text_width(&text) <= 80, "{text}");
            assert!(text.contains("⏎") || text.contains("↓"), "{pane:?}: {text}");
        }
        let findings = hint_line(
            PaneId::Findings,
            Editing::None,
            false,
            &keymap,
            &styles,
            200,
        );
        let text: String = findings.spans.iter().map(|s| s.content.as_ref()).collect();
        assert_eq!(
            text,
            " ⏎ evidence  n next  N prev  s sort  / filter  ⌫ back  : jump  1-7 pane "
        );
    }
}
