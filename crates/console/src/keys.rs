//! Key bindings: the actions a key can trigger, their default keys, and the key syntax of the
//! config file (`q`, `space`, `ctrl-c`, `shift-tab`, `pagedown`, `f1`, ...).

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{bail, Context as _};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key asks for. The config file names them in snake case (`next_pane`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Top,
    Bottom,
    NextPane,
    PrevPane,
    DrillIn,
    Back,
    Filter,
    Zoom,
    PaneAgents,
    PaneGraph,
    PaneTimeline,
    PaneDetail,
    PaneAiBom,
    PaneFindings,
    PanePosture,
    PreviousSubject,
    Command,
    Sort,
    Pause,
    Slower,
    Faster,
    Step,
    SeekBack,
    SeekForward,
    SeekPrevFinding,
    SeekNextFinding,
    NextFinding,
    PrevFinding,
    NextEvidence,
    Record,
    Baseline,
    ExcludeEvidence,
    Promote,
    GroupBySession,
    ShowEnvironment,
    Help,
    Quit,
}

impl Action {
    pub const ALL: &'static [Action] = &[
        Action::Up,
        Action::Down,
        Action::Left,
        Action::Right,
        Action::PageUp,
        Action::PageDown,
        Action::Top,
        Action::Bottom,
        Action::NextPane,
        Action::PrevPane,
        Action::DrillIn,
        Action::Back,
        Action::Filter,
        Action::Zoom,
        Action::PaneAgents,
        Action::PaneGraph,
        Action::PaneTimeline,
        Action::PaneDetail,
        Action::PaneAiBom,
        Action::PaneFindings,
        Action::PanePosture,
        Action::PreviousSubject,
        Action::Command,
        Action::Sort,
        Action::Pause,
        Action::Slower,
        Action::Faster,
        Action::Step,
        Action::SeekBack,
        Action::SeekForward,
        Action::SeekPrevFinding,
        Action::SeekNextFinding,
        Action::NextFinding,
        Action::PrevFinding,
        Action::NextEvidence,
        Action::Record,
        Action::Baseline,
        Action::ExcludeEvidence,
        Action::Promote,
        Action::GroupBySession,
        Action::ShowEnvironment,
        Action::Help,
        Action::Quit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::Up => "up",
            Action::Down => "down",
            Action::Left => "left",
            Action::Right => "right",
            Action::PageUp => "page_up",
            Action::PageDown => "page_down",
            Action::Top => "top",
            Action::Bottom => "bottom",
            Action::NextPane => "next_pane",
            Action::PrevPane => "prev_pane",
            Action::DrillIn => "drill_in",
            Action::Back => "back",
            Action::Filter => "filter",
            Action::Zoom => "zoom",
            Action::PaneAgents => "pane_agents",
            Action::PaneGraph => "pane_graph",
            Action::PaneTimeline => "pane_timeline",
            Action::PaneDetail => "pane_detail",
            Action::PaneAiBom => "pane_aibom",
            Action::PaneFindings => "pane_findings",
            Action::PanePosture => "pane_posture",
            Action::PreviousSubject => "previous_subject",
            Action::Command => "command",
            Action::Sort => "sort",
            Action::Pause => "pause",
            Action::Slower => "slower",
            Action::Faster => "faster",
            Action::Step => "step",
            Action::SeekBack => "seek_back",
            Action::SeekForward => "seek_forward",
            Action::SeekPrevFinding => "seek_prev_finding",
            Action::SeekNextFinding => "seek_next_finding",
            Action::NextFinding => "next_finding",
            Action::PrevFinding => "prev_finding",
            Action::NextEvidence => "next_evidence",
            Action::Record => "record",
            Action::Baseline => "baseline",
            Action::ExcludeEvidence => "exclude_evidence",
            Action::Promote => "promote",
            Action::GroupBySession => "group_by_session",
            Action::ShowEnvironment => "show_environment",
            Action::Help => "help",
            Action::Quit => "quit",
        }
    }

    /// One line for the help overlay.
    pub fn description(self) -> &'static str {
        match self {
            Action::Up => "move up / scroll",
            Action::Down => "move down / scroll",
            Action::Left => "collapse / parent",
            Action::Right => "expand",
            Action::PageUp => "page up",
            Action::PageDown => "page down",
            Action::Top => "first row",
            Action::Bottom => "last row, follow",
            Action::NextPane => "next pane",
            Action::PrevPane => "previous pane",
            Action::DrillIn => "open / drill in",
            Action::Back => "back / clear filter",
            Action::Filter => "filter the pane",
            Action::Zoom => "zoom the pane",
            Action::PaneAgents => "agents pane",
            Action::PaneGraph => "graph pane",
            Action::PaneTimeline => "timeline pane",
            Action::PaneDetail => "detail pane",
            Action::PaneAiBom => "AI-BOM pane",
            Action::PaneFindings => "findings pane",
            Action::PanePosture => "posture pane",
            Action::PreviousSubject => "Detail: back",
            Action::Command => ":agent :finding :time",
            Action::Sort => "sort the list",
            Action::Pause => "pause / resume",
            Action::Slower => "replay slower",
            Action::Faster => "replay faster",
            Action::Step => "single step",
            Action::SeekBack => "seek back",
            Action::SeekForward => "seek forward",
            Action::SeekPrevFinding => "replay to previous finding",
            Action::SeekNextFinding => "replay to next finding",
            Action::NextFinding => "next finding",
            Action::PrevFinding => "previous finding",
            Action::NextEvidence => "finding's next evidence row",
            Action::Record => "record on/off (live)",
            Action::Baseline => "export agent baseline",
            Action::ExcludeEvidence => "…without the attack",
            Action::Promote => "promote audit → enforce",
            Action::GroupBySession => "group by session",
            Action::ShowEnvironment => "show environments",
            Action::Help => "this help",
            Action::Quit => "quit",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|a| a.name() == name)
    }

    fn default_keys(self) -> &'static [&'static str] {
        match self {
            Action::Up => &["up", "k"],
            Action::Down => &["down", "j"],
            Action::Left => &["left", "h"],
            Action::Right => &["right", "l"],
            Action::PageUp => &["pageup", "ctrl-b"],
            Action::PageDown => &["pagedown", "ctrl-f"],
            Action::Top => &["home", "g"],
            Action::Bottom => &["end", "G"],
            Action::NextPane => &["tab"],
            Action::PrevPane => &["shift-tab"],
            Action::DrillIn => &["enter"],
            Action::Back => &["esc"],
            Action::Filter => &["/"],
            Action::Zoom => &["z"],
            Action::PaneAgents => &["1"],
            Action::PaneGraph => &["2"],
            Action::PaneTimeline => &["3"],
            Action::PaneDetail => &["4"],
            Action::PaneAiBom => &["5"],
            Action::PaneFindings => &["6"],
            Action::PanePosture => &["7"],
            Action::PreviousSubject => &["backspace", "-"],
            Action::Command => &[":"],
            Action::Sort => &["s"],
            Action::Pause => &["space"],
            Action::Slower => &["["],
            Action::Faster => &["]"],
            Action::Step => &["."],
            Action::SeekBack => &["<"],
            Action::SeekForward => &[">"],
            Action::SeekPrevFinding => &["{"],
            Action::SeekNextFinding => &["}"],
            Action::NextFinding => &["n"],
            Action::PrevFinding => &["N"],
            Action::NextEvidence => &["e"],
            Action::Record => &["r"],
            Action::Baseline => &["b"],
            Action::ExcludeEvidence => &["x"],
            Action::Promote => &["P"],
            Action::GroupBySession => &["S"],
            Action::ShowEnvironment => &["v"],
            Action::Help => &["?"],
            Action::Quit => &["q", "ctrl-c"],
        }
    }
}

/// A key with its modifiers, normalised so that `G` and `shift-g` are the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    code: KeyCodeName,
    ctrl: bool,
    alt: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum KeyCodeName {
    Char(char),
    F(u8),
    Named(&'static str),
}

const NAMED: &[(&str, KeyCode)] = &[
    ("enter", KeyCode::Enter),
    ("esc", KeyCode::Esc),
    ("tab", KeyCode::Tab),
    ("backtab", KeyCode::BackTab),
    ("backspace", KeyCode::Backspace),
    ("delete", KeyCode::Delete),
    ("insert", KeyCode::Insert),
    ("up", KeyCode::Up),
    ("down", KeyCode::Down),
    ("left", KeyCode::Left),
    ("right", KeyCode::Right),
    ("pageup", KeyCode::PageUp),
    ("pagedown", KeyCode::PageDown),
    ("home", KeyCode::Home),
    ("end", KeyCode::End),
];

impl Key {
    /// Parses `q`, `G`, `space`, `ctrl-c`, `alt-x`, `shift-tab`, `f5`, `pagedown`.
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let mut ctrl = false;
        let mut alt = false;
        let mut shift = false;
        let mut rest = spec;
        // A bare "-" is a key; "ctrl--" is ctrl and "-".
        while let Some((modifier, after)) = rest.split_once('-').filter(|(m, a)| {
            !a.is_empty() && ["ctrl", "alt", "shift"].contains(&m.to_ascii_lowercase().as_str())
        }) {
            match modifier.to_ascii_lowercase().as_str() {
                "ctrl" => ctrl = true,
                "alt" => alt = true,
                _ => shift = true,
            }
            rest = after;
        }
        let lower = rest.to_ascii_lowercase();
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => {
                let c = if shift { c.to_ascii_uppercase() } else { c };
                KeyCodeName::Char(if ctrl { c.to_ascii_lowercase() } else { c })
            }
            _ if lower == "space" => KeyCodeName::Char(' '),
            _ if shift && lower == "tab" => KeyCodeName::Named("backtab"),
            _ if lower.starts_with('f') && lower[1..].parse::<u8>().is_ok_and(|n| n >= 1) => {
                KeyCodeName::F(lower[1..].parse().unwrap_or(1))
            }
            _ => match NAMED.iter().find(|(name, _)| *name == lower) {
                Some((name, _)) => KeyCodeName::Named(name),
                None => bail!("unknown key {spec:?}"),
            },
        };
        Ok(Self { code, ctrl, alt })
    }

    /// The key a terminal event stands for, if it is one bindings can name.
    pub fn from_event(event: &KeyEvent) -> Option<Self> {
        let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
        let alt = event.modifiers.contains(KeyModifiers::ALT);
        let code = match event.code {
            // Shift is already in the character ('G', '<', '?').
            KeyCode::Char(c) => KeyCodeName::Char(if ctrl { c.to_ascii_lowercase() } else { c }),
            KeyCode::F(n) => KeyCodeName::F(n),
            KeyCode::Tab if event.modifiers.contains(KeyModifiers::SHIFT) => {
                KeyCodeName::Named("backtab")
            }
            code => KeyCodeName::Named(NAMED.iter().find(|(_, c)| *c == code)?.0),
        };
        Some(Self { code, ctrl, alt })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("ctrl-")?;
        }
        if self.alt {
            f.write_str("alt-")?;
        }
        match self.code {
            KeyCodeName::Char(' ') => f.write_str("space"),
            KeyCodeName::Char(c) => write!(f, "{c}"),
            KeyCodeName::F(n) => write!(f, "f{n}"),
            KeyCodeName::Named("backtab") => f.write_str("shift-tab"),
            KeyCodeName::Named(name) => f.write_str(name),
        }
    }
}

/// Which key does what.
#[derive(Debug, Clone)]
pub struct KeyMap {
    by_key: BTreeMap<Key, Action>,
    by_action: BTreeMap<Action, Vec<Key>>,
}

impl Default for KeyMap {
    fn default() -> Self {
        Self::with_overrides(&BTreeMap::new()).expect("default bindings are valid (tested)")
    }
}

impl KeyMap {
    /// The defaults, with the actions named in `overrides` bound to the given keys instead.
    pub fn with_overrides(overrides: &BTreeMap<String, Vec<String>>) -> anyhow::Result<Self> {
        let mut by_action = BTreeMap::new();
        for action in Action::ALL {
            let keys = action
                .default_keys()
                .iter()
                .map(|k| Key::parse(k))
                .collect::<anyhow::Result<Vec<_>>>()?;
            by_action.insert(*action, keys);
        }
        for (name, keys) in overrides {
            let action = Action::from_name(name).with_context(|| {
                let names: Vec<_> = Action::ALL.iter().map(|a| a.name()).collect();
                format!("unknown action {name:?} (actions: {})", names.join(", "))
            })?;
            let keys = keys
                .iter()
                .map(|k| Key::parse(k).with_context(|| format!("keys.{name}")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            by_action.insert(action, keys);
        }
        let mut by_key = BTreeMap::new();
        for (action, keys) in &by_action {
            for key in keys {
                if let Some(other) = by_key.insert(*key, *action) {
                    bail!(
                        "key {key} is bound to both {} and {}",
                        other.name(),
                        action.name()
                    );
                }
            }
        }
        Ok(Self { by_key, by_action })
    }

    pub fn action(&self, event: &KeyEvent) -> Option<Action> {
        self.by_key.get(&Key::from_event(event)?).copied()
    }

    pub fn keys(&self, action: Action) -> &[Key] {
        self.by_action.get(&action).map_or(&[], Vec::as_slice)
    }

    /// `q, ctrl-c`: the keys of an action for the help overlay.
    pub fn describe(&self, action: Action) -> String {
        let keys: Vec<String> = self.keys(action).iter().map(Key::to_string).collect();
        if keys.is_empty() {
            "(unbound)".into()
        } else {
            keys.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn default_bindings() {
        let map = KeyMap::default();
        let none = KeyModifiers::NONE;
        assert_eq!(
            map.action(&press(KeyCode::Char('q'), none)),
            Some(Action::Quit)
        );
        assert_eq!(
            map.action(&press(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        // Terminals report shifted characters with SHIFT set; the character decides.
        assert_eq!(
            map.action(&press(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Some(Action::Bottom)
        );
        assert_eq!(
            map.action(&press(KeyCode::Char('<'), KeyModifiers::SHIFT)),
            Some(Action::SeekBack)
        );
        assert_eq!(
            map.action(&press(KeyCode::BackTab, KeyModifiers::SHIFT)),
            Some(Action::PrevPane)
        );
        assert_eq!(
            map.action(&press(KeyCode::Char(' '), none)),
            Some(Action::Pause)
        );
        assert_eq!(map.action(&press(KeyCode::Char('y'), none)), None);
        assert_eq!(map.describe(Action::Quit), "q, ctrl-c");
        assert_eq!(map.describe(Action::PrevPane), "shift-tab");
    }

    #[test]
    fn overrides_replace_an_actions_keys() {
        let overrides = BTreeMap::from([
            ("quit".to_string(), vec!["ctrl-q".to_string()]),
            ("pause".to_string(), vec!["p".to_string(), "f5".to_string()]),
        ]);
        let map = KeyMap::with_overrides(&overrides).unwrap();
        let none = KeyModifiers::NONE;
        assert_eq!(map.action(&press(KeyCode::Char('q'), none)), None);
        assert_eq!(
            map.action(&press(KeyCode::Char('q'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        assert_eq!(map.action(&press(KeyCode::F(5), none)), Some(Action::Pause));
        assert_eq!(map.action(&press(KeyCode::Char(' '), none)), None);
    }

    #[test]
    fn bad_bindings_are_reported() {
        let clash = BTreeMap::from([("pause".to_string(), vec!["q".to_string()])]);
        let err = KeyMap::with_overrides(&clash).unwrap_err().to_string();
        assert!(err.contains("bound to both"), "{err}");
        let unknown = BTreeMap::from([("jump".to_string(), vec!["x".to_string()])]);
        assert!(KeyMap::with_overrides(&unknown)
            .unwrap_err()
            .to_string()
            .contains("unknown action \"jump\""));
        let bad_key = BTreeMap::from([("quit".to_string(), vec!["hyper-q".to_string()])]);
        assert!(
            format!("{:#}", KeyMap::with_overrides(&bad_key).unwrap_err()).contains("unknown key")
        );
        assert_eq!(Key::parse("-").unwrap().to_string(), "-");
        assert_eq!(Key::parse("ctrl--").unwrap().to_string(), "ctrl--");
    }
}
