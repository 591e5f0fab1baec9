//! The console's config file (TOML, documented in docs/console.md): theme and colour
//! overrides, key bindings, and the few numbers worth tuning. Every field is optional; an
//! unknown field is an error, so a typo does not silently do nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// A preset name (`dark`, `light`, `high-contrast`) or a theme file path.
    pub theme: Option<String>,
    /// Colour overrides laid over the theme, by colour name.
    #[serde(default)]
    pub colors: BTreeMap<String, String>,
    /// Action name → keys (replacing that action's default keys).
    #[serde(default)]
    pub keys: BTreeMap<String, Vec<String>>,
    /// Frames per second (at most 60).
    pub fps: Option<u32>,
    /// Events the source may feed per frame.
    pub max_events_per_tick: Option<usize>,
    /// How far `<` and `>` move a replay, in seconds.
    pub seek_seconds: Option<f64>,
    /// Observations kept per agent for the timeline.
    pub timeline_per_agent: Option<usize>,
    /// How long a new graph edge stays highlighted, in seconds of event time.
    pub new_edge_seconds: Option<f64>,
    /// Where `b` writes baselines (default: the current directory).
    pub baseline_dir: Option<PathBuf>,
}

impl ConsoleConfig {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// Reads `path`, or when none is given the default location if a file is there.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let (path, required) = match path {
            Some(path) => (path.to_path_buf(), true),
            None => match default_path() {
                Some(path) => (path, false),
                None => return Ok(Self::default()),
            },
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text).with_context(|| format!("config {}", path.display())),
            Err(err) if !required && err.kind() == std::io::ErrorKind::NotFound => {
                Ok(Self::default())
            }
            Err(err) => Err(err).with_context(|| format!("reading config {}", path.display())),
        }
    }
}

/// `$XDG_CONFIG_HOME/agentscope/console.toml`, else `~/.config/agentscope/console.toml`.
pub fn default_path() -> Option<PathBuf> {
    config_path_from(
        std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

fn config_path_from(xdg: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    let base = xdg
        .filter(|p| p.is_absolute())
        .or_else(|| home.map(|h| h.join(".config")))?;
    Some(base.join("agentscope").join("console.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses() {
        let config = ConsoleConfig::parse(
            r##"
            theme = "light"
            fps = 60
            seek_seconds = 30
            timeline_per_agent = 200
            new_edge_seconds = 2.5
            baseline_dir = "/tmp/baselines"
            [colors]
            accent = "#ff8800"
            [keys]
            quit = ["ctrl-q"]
            "##,
        )
        .unwrap();
        assert_eq!(config.theme.as_deref(), Some("light"));
        assert_eq!(config.fps, Some(60));
        assert_eq!(config.keys["quit"], vec!["ctrl-q"]);
        assert_eq!(config.colors["accent"], "#ff8800");
        assert_eq!(config.baseline_dir, Some(PathBuf::from("/tmp/baselines")));
    }

    #[test]
    fn typos_are_errors_and_a_missing_default_file_is_not() {
        let err = ConsoleConfig::parse("them = \"dark\"").unwrap_err();
        assert!(format!("{err:#}").contains("unknown field"), "{err:#}");
        let dir = tempfile::tempdir().unwrap();
        assert!(ConsoleConfig::load(Some(&dir.path().join("missing.toml"))).is_err());
        let path = dir.path().join("console.toml");
        std::fs::write(&path, "fps = 10\n").unwrap();
        assert_eq!(ConsoleConfig::load(Some(&path)).unwrap().fps, Some(10));
    }

    #[test]
    fn default_location_follows_xdg() {
        assert_eq!(
            config_path_from(Some("/x/cfg".into()), Some("/home/u".into())),
            Some(PathBuf::from("/x/cfg/agentscope/console.toml"))
        );
        // A relative XDG_CONFIG_HOME is invalid per the spec and ignored.
        assert_eq!(
            config_path_from(Some("rel".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.config/agentscope/console.toml"))
        );
        assert_eq!(config_path_from(None, None), None);
    }
}
