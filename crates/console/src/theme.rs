//! Colour themes: the presets in `themes/*.toml` (compiled in, so the binary works from any
//! directory), theme files of the user's own, per-colour overrides from the config file, and
//! how colours reach the terminal: 24-bit when `COLORTERM` says the terminal takes it, the
//! nearest of the 256 xterm colours otherwise, and none at all under `NO_COLOR` (selection and
//! focus then show as reverse video and bold).

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr as _;

use anyhow::{bail, Context as _};
use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

use agentscope_analysis::model::NodeKind;

use agentscope_analysis::detect::Severity;

/// Built-in themes: name → TOML text.
pub const PRESETS: &[(&str, &str)] = &[
    ("dark", include_str!("../../../themes/dark.toml")),
    ("light", include_str!("../../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../../themes/high-contrast.toml"),
    ),
];

/// The colour names a theme sets (every preset sets all of them).
pub const COLOR_NAMES: &[&str] = &[
    "foreground",
    "background",
    "muted",
    "border",
    "border_focused",
    "title",
    "selection_fg",
    "selection_bg",
    "accent",
    "new_edge",
    "status_fg",
    "status_bg",
    "warning",
    "error",
    "severity_critical",
    "severity_high",
    "severity_medium",
    "severity_low",
    "severity_info",
    "agent",
    "model",
    "tool",
    "mcp_server",
    "api",
    "data",
    "identity",
    "command",
];

/// A theme file: optionally a preset to start from, then colours by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    name: Option<String>,
    /// Preset the file's colours are laid over (default: `dark`).
    base: Option<String>,
    #[serde(default)]
    colors: BTreeMap<String, String>,
}

/// A theme: a colour for every name in [`COLOR_NAMES`].
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    colors: BTreeMap<&'static str, Color>,
}

impl Theme {
    /// A preset by name, or a theme file by path.
    pub fn load(name_or_path: &str) -> anyhow::Result<Self> {
        if let Some(theme) = Self::preset(name_or_path) {
            return Ok(theme);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            let names: Vec<_> = PRESETS.iter().map(|(n, _)| *n).collect();
            bail!(
                "theme {name_or_path:?} is neither a preset ({}) nor a file",
                names.join(", ")
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading theme {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("theme {}", path.display()))
    }

    pub fn preset(name: &str) -> Option<Self> {
        let (_, text) = PRESETS.iter().find(|(n, _)| *n == name)?;
        Some(Self::parse(text).expect("built-in themes are valid (tested)"))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: ThemeFile = toml::from_str(text)?;
        let mut theme = match file.base.as_deref() {
            Some(base) => Self::preset(base)
                .with_context(|| format!("base theme {base:?} is not a preset"))?,
            None => Self {
                name: String::new(),
                colors: BTreeMap::new(),
            },
        };
        theme.name = file.name.unwrap_or_else(|| "custom".into());
        theme.apply_overrides(&file.colors)?;
        if file.base.is_none() {
            // A theme without a base must be complete; fill gaps from dark so a missing
            // colour is never black-on-black.
            let missing: Vec<&str> = COLOR_NAMES
                .iter()
                .copied()
                .filter(|n| !theme.colors.contains_key(n))
                .collect();
            if !missing.is_empty() {
                let dark = Self::preset("dark").expect("dark preset");
                for name in missing {
                    theme.colors.insert(name, dark.colors[name]);
                }
            }
        }
        Ok(theme)
    }

    /// Sets colours by name (`"#rrggbb"`, a colour name such as `light_red`, `reset`, or an
    /// index 0-255).
    pub fn apply_overrides(&mut self, colors: &BTreeMap<String, String>) -> anyhow::Result<()> {
        for (name, value) in colors {
            let Some(known) = COLOR_NAMES.iter().find(|n| **n == name.as_str()) else {
                bail!(
                    "unknown colour name {name:?} (known: {})",
                    COLOR_NAMES.join(", ")
                );
            };
            let color = Color::from_str(value)
                .map_err(|_| anyhow::anyhow!("colour {name} = {value:?} is not a colour"))?;
            self.colors.insert(known, color);
        }
        Ok(())
    }

    pub fn color(&self, name: &str) -> Color {
        self.colors.get(name).copied().unwrap_or(Color::Reset)
    }
}

/// What the terminal can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMode {
    /// `NO_COLOR` is set: attributes only.
    None,
    /// 256 xterm colours.
    Ansi256,
    /// 24-bit colour (`COLORTERM=truecolor` or `24bit`).
    TrueColor,
}

impl ColorMode {
    /// From `NO_COLOR` (any non-empty value, as no-color.org says) and `COLORTERM`.
    pub fn from_env(no_color: Option<&str>, colorterm: Option<&str>) -> Self {
        if no_color.is_some_and(|v| !v.is_empty()) {
            ColorMode::None
        } else if colorterm.is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v == "truecolor" || v == "24bit"
        }) {
            ColorMode::TrueColor
        } else {
            ColorMode::Ansi256
        }
    }

    pub fn detect() -> Self {
        Self::from_env(
            std::env::var("NO_COLOR").ok().as_deref(),
            std::env::var("COLORTERM").ok().as_deref(),
        )
    }

    fn map(self, color: Color) -> Color {
        match (self, color) {
            (ColorMode::None, _) => Color::Reset,
            (ColorMode::Ansi256, Color::Rgb(r, g, b)) => Color::Indexed(nearest_xterm(r, g, b)),
            _ => color,
        }
    }
}

/// The nearest of the xterm 256 colours (the 6×6×6 cube and the grey ramp; the first 16 vary
/// by terminal and are not used).
pub fn nearest_xterm(r: u8, g: u8, b: u8) -> u8 {
    const LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];
    let nearest_level = |c: u8| {
        (0..6)
            .min_by_key(|i| (i32::from(LEVELS[*i]) - i32::from(c)).abs())
            .unwrap_or(0)
    };
    let (ri, gi, bi) = (nearest_level(r), nearest_level(g), nearest_level(b));
    let cube = (LEVELS[ri], LEVELS[gi], LEVELS[bi]);
    let cube_index = 16 + 36 * ri + 6 * gi + bi;
    let mean = (u32::from(r) + u32::from(g) + u32::from(b)) / 3;
    let grey_step = ((mean.saturating_sub(8) + 5) / 10).min(23);
    let grey = (8 + 10 * grey_step) as u8;
    let distance = |(cr, cg, cb): (u8, u8, u8)| {
        let d = |a: u8, b: u8| (i32::from(a) - i32::from(b)).pow(2);
        d(cr, r) + d(cg, g) + d(cb, b)
    };
    if distance((grey, grey, grey)) < distance(cube) {
        232 + grey_step as u8
    } else {
        cube_index as u8
    }
}

/// Ready-made styles for every part of the screen.
#[derive(Debug, Clone)]
pub struct Styles {
    pub text: Style,
    pub muted: Style,
    pub border: Style,
    pub border_focused: Style,
    pub title: Style,
    pub title_focused: Style,
    pub selection: Style,
    pub accent: Style,
    pub new_edge: Style,
    pub status: Style,
    pub warning: Style,
    pub error: Style,
    pub key: Style,
    severities: [Style; 5],
    kinds: BTreeMap<&'static str, Style>,
}

impl Styles {
    pub fn new(theme: &Theme, mode: ColorMode) -> Self {
        let fg = |name: &str| Style::new().fg(mode.map(theme.color(name)));
        let base = Style::new()
            .fg(mode.map(theme.color("foreground")))
            .bg(mode.map(theme.color("background")));
        let plain = mode == ColorMode::None;
        let bold_if_plain = |style: Style| {
            if plain {
                style.add_modifier(Modifier::BOLD)
            } else {
                style
            }
        };
        let kinds = [
            "agent",
            "model",
            "tool",
            "mcp_server",
            "api",
            "data",
            "identity",
            "command",
        ]
        .into_iter()
        .map(|name| (name, fg(name)))
        .collect();
        Self {
            text: base,
            muted: if plain {
                Style::new().add_modifier(Modifier::DIM)
            } else {
                fg("muted")
            },
            border: fg("border"),
            border_focused: bold_if_plain(fg("border_focused")).add_modifier(Modifier::BOLD),
            title: fg("title"),
            title_focused: fg("border_focused").add_modifier(Modifier::BOLD),
            selection: if plain {
                Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
            } else {
                Style::new()
                    .fg(mode.map(theme.color("selection_fg")))
                    .bg(mode.map(theme.color("selection_bg")))
            },
            accent: bold_if_plain(fg("accent")),
            new_edge: if plain {
                Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
            } else {
                fg("new_edge").add_modifier(Modifier::BOLD)
            },
            status: if plain {
                Style::new().add_modifier(Modifier::REVERSED)
            } else {
                Style::new()
                    .fg(mode.map(theme.color("status_fg")))
                    .bg(mode.map(theme.color("status_bg")))
            },
            warning: bold_if_plain(fg("warning")),
            error: fg("error").add_modifier(Modifier::BOLD),
            key: bold_if_plain(fg("accent")).add_modifier(Modifier::BOLD),
            severities: [
                fg("severity_info"),
                fg("severity_low"),
                fg("severity_medium"),
                bold_if_plain(fg("severity_high")),
                fg("severity_critical").add_modifier(Modifier::BOLD),
            ],
            kinds,
        }
    }

    pub fn severity(&self, severity: Severity) -> Style {
        // `severities[0]` (severity_info) styles no detection severity; themes may still set it.
        self.severities[severity as usize + 1]
    }

    pub fn node(&self, kind: NodeKind) -> Style {
        let name = match kind {
            NodeKind::Agent => "agent",
            NodeKind::Model => "model",
            NodeKind::Tool => "tool",
            NodeKind::McpServer => "mcp_server",
            NodeKind::Api => "api",
            NodeKind::Data => "data",
            NodeKind::Identity => "identity",
            NodeKind::Command => "command",
        };
        self.kinds.get(name).copied().unwrap_or(self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_set_every_colour() {
        for (name, text) in PRESETS {
            let file: ThemeFile = toml::from_str(text).unwrap();
            for color in COLOR_NAMES {
                assert!(
                    file.colors.contains_key(*color),
                    "preset {name} lacks {color}"
                );
            }
            let theme = Theme::parse(text).unwrap();
            assert_eq!(theme.name, *name);
        }
    }

    #[test]
    fn theme_files_and_overrides() {
        let theme = Theme::parse("base = \"light\"\n[colors]\naccent = \"#ff0000\"\n").unwrap();
        assert_eq!(theme.color("accent"), Color::Rgb(255, 0, 0));
        assert_eq!(
            theme.color("foreground"),
            Theme::preset("light").unwrap().color("foreground")
        );
        let err = Theme::parse("[colors]\naccnet = \"red\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("unknown colour name \"accnet\""));
        let err = Theme::parse("[colors]\naccent = \"blurple\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("not a colour"));
        assert!(Theme::load("no-such-theme").is_err());
    }

    #[test]
    fn colour_modes_follow_the_environment() {
        assert_eq!(ColorMode::from_env(Some("1"), None), ColorMode::None);
        assert_eq!(
            ColorMode::from_env(Some(""), Some("truecolor")),
            ColorMode::TrueColor
        );
        assert_eq!(
            ColorMode::from_env(None, Some("24bit")),
            ColorMode::TrueColor
        );
        assert_eq!(ColorMode::from_env(None, None), ColorMode::Ansi256);
        assert_eq!(nearest_xterm(255, 0, 0), 196);
        assert_eq!(nearest_xterm(0, 0, 0), 16);
        assert_eq!(nearest_xterm(128, 128, 128), 244);
        let theme = Theme::preset("dark").unwrap();
        let plain = Styles::new(&theme, ColorMode::None);
        assert_eq!(plain.selection.fg, None);
        assert!(plain.selection.add_modifier.contains(Modifier::REVERSED));
        let indexed = Styles::new(&theme, ColorMode::Ansi256);
        assert!(matches!(indexed.accent.fg, Some(Color::Indexed(_))));
        let rgb = Styles::new(&theme, ColorMode::TrueColor);
        assert!(matches!(rgb.accent.fg, Some(Color::Rgb(..))));
    }
}
