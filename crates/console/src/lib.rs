//! The investigation console (`agentscope tui`): a terminal UI over a [`Source`] of
//! observations (a live collector, a recording, a JSON-lines event file) showing the agents on
//! a node, each agent's execution graph, timeline, AI-BOM and findings, and any item in full.
//!
//! The loop in [`run_console`] never blocks on the source: every frame it reads the terminal's
//! pending input, applies the [`Effect`]s the input produced, polls the source for a bounded
//! number of events, and draws. Panes render only what is visible. docs/console.md is the
//! user's guide.

pub mod agents_pane;
pub mod aibom;
pub mod app;
pub mod approved_watch;
pub mod baseline;
pub mod breadcrumbs;
pub mod command;
pub mod command_line;
pub mod config;
pub mod control_chars;
pub mod detail;
pub mod edge_novelty;
pub mod entry_search;
pub mod findings;
pub mod format;
pub mod graph_pane;
pub mod json_source;
pub mod key_hints;
pub mod keys;
pub mod lineage;
pub mod list;
pub mod list_sort;
pub mod live_collector;
pub mod live_recording;
pub mod live_source;
pub mod log;
pub mod pane_switcher;
pub mod posture_lines;
pub mod promotion;
pub mod remote_source;
pub mod search_query;
pub mod source;
pub mod text;
pub mod theme;
pub mod timeline_pane;

#[cfg(test)]
mod tests;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ratatui::crossterm::event::{self, DisableMouseCapture, EnableMouseCapture};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};

// The console's API for sources and the detection module (some of it unused by this binary
// until they land).
#[allow(unused_imports)]
pub use agentscope_analysis::detect::Severity;
#[allow(unused_imports)]
pub use app::{App, AppOptions, Effect};
pub use baseline::{yaml_exporter, BaselineExporter};
pub use config::ConsoleConfig;
#[cfg(test)]
pub use findings::FindingView;
pub use json_source::JsonEventsSource;
pub use live_source::LiveSource;
#[allow(unused_imports)]
pub use source::{
    ControlError, ControlResult, RecordingState, ReplayStatus, Source, SourceMode, SourceStatus,
    SourceUpdate, SourcedObservation, SpeedChange,
};
pub use theme::{ColorMode, Theme};

use keys::KeyMap;
use log::LogLimits;
use theme::Styles;

/// Frames per second unless the config says otherwise.
pub const DEFAULT_FPS: u32 = 30;
/// Events a source may feed per frame unless the config says otherwise (at 30 fps, 600,000
/// events per second).
pub const DEFAULT_EVENTS_PER_TICK: usize = 20_000;

/// How to run the console.
pub struct ConsoleOptions {
    pub config: ConsoleConfig,
    /// `--theme`: a preset name or a theme file (overrides the config's `theme`).
    pub theme: Option<String>,
    /// Colour support; `None` reads `NO_COLOR` and `COLORTERM`.
    pub color_mode: Option<ColorMode>,
    /// What `b` does with the selected agent.
    pub exporter: BaselineExporter,
    /// Quit by itself after this long (`--duration`: demos and scripts).
    pub quit_after: Option<Duration>,
    /// The agents shown (`--namespace`, `--pod`, `--agent`).
    pub selector: agentscope_analysis::model::agent_selector::AgentSelector,
    /// Where `P` looks for an agent's baseline to promote (`--baseline DIR` first).
    pub baseline_dirs: Vec<PathBuf>,
}

impl ConsoleOptions {
    /// Options from a loaded config, with the default YAML baseline exporter writing to the
    /// config's `baseline_dir` (default: the current directory).
    pub fn new(config: ConsoleConfig, theme: Option<String>) -> Self {
        let dir = config
            .baseline_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("."));
        Self {
            config,
            theme,
            color_mode: None,
            exporter: yaml_exporter(dir.clone()),
            quit_after: None,
            selector: Default::default(),
            baseline_dirs: vec![dir],
        }
    }

    /// The app's options: theme, colours, keys and tunables resolved and checked.
    pub fn app_options(&self) -> anyhow::Result<AppOptions> {
        let config = &self.config;
        let theme_name = self
            .theme
            .as_deref()
            .or(config.theme.as_deref())
            .unwrap_or("dark");
        let mut theme = Theme::load(theme_name)?;
        theme
            .apply_overrides(&config.colors)
            .context("config [colors]")?;
        let keymap = KeyMap::with_overrides(&config.keys).context("config [keys]")?;
        let mode = self.color_mode.unwrap_or_else(ColorMode::detect);
        let seconds = |value: Option<f64>, default: f64| {
            (value.unwrap_or(default).max(0.0) * 1e9).min(u64::MAX as f64) as u64
        };
        Ok(AppOptions {
            keymap,
            styles: Styles::new(&theme, mode),
            seek_ns: config.seek_seconds.map(|s| seconds(Some(s), 0.0)),
            new_edge_ns: seconds(config.new_edge_seconds, 5.0),
            // Rebuilding the agent tree and the graph rows four to five times a second is
            // enough to look live and keeps a large graph cheap.
            refresh_every_ticks: u64::from(self.fps() / 4).max(1),
            adaptive_refresh: true,
            log_limits: LogLimits {
                entries: config.timeline_per_agent.unwrap_or(5000).max(1),
                ..LogLimits::default()
            },
            selector: self.selector.clone(),
            baseline_dirs: self.baseline_dirs.clone(),
        })
    }

    pub fn fps(&self) -> u32 {
        self.config.fps.unwrap_or(DEFAULT_FPS).clamp(1, 60)
    }
}

/// Restores the terminal however the console ends (error, panic or quit).
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> anyhow::Result<Self> {
        enable_raw_mode().context("the console needs a terminal (raw mode failed)")?;
        let guard = Self;
        execute!(std::io::stdout(), EnterAlternateScreen, EnableMouseCapture)?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = execute!(std::io::stdout(), DisableMouseCapture, LeaveAlternateScreen);
        let _ = disable_raw_mode();
        let _ = std::io::stdout().flush();
    }
}

/// Runs the console over `source` until the user quits.
pub fn run_console(mut source: Box<dyn Source>, mut options: ConsoleOptions) -> anyhow::Result<()> {
    let app_options = options.app_options()?;
    let frame_time = Duration::from_secs(1) / options.fps();
    let max_events = options
        .config
        .max_events_per_tick
        .unwrap_or(DEFAULT_EVENTS_PER_TICK)
        .max(1);
    let mut app = App::new(app_options);

    let _guard = TerminalGuard::enter()?;
    // A panic must leave a usable terminal before its message is printed.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = execute!(std::io::stdout(), DisableMouseCapture, LeaveAlternateScreen);
        let _ = disable_raw_mode();
        previous_hook(info);
    }));
    let backend = ratatui::backend::CrosstermBackend::new(std::io::stdout());
    let mut terminal = ratatui::Terminal::new(backend)?;
    terminal.clear()?;

    let started = Instant::now();
    let result = (|| -> anyhow::Result<()> {
        loop {
            let frame_start = Instant::now();
            if options
                .quit_after
                .is_some_and(|limit| started.elapsed() >= limit)
            {
                return Ok(());
            }
            let update = source.poll(max_events);
            app.ingest(update, source.pipeline());
            terminal.draw(|frame| app.render(frame, source.pipeline()))?;
            // Input until the next frame is due; every pending event is handled.
            let mut quit = false;
            loop {
                let left = frame_time.saturating_sub(frame_start.elapsed());
                if !event::poll(left)? {
                    break;
                }
                let input = event::read()?;
                for effect in app.handle_event(&input) {
                    quit |= app.apply_effect(effect, source.as_mut(), &mut options.exporter);
                }
                if quit {
                    return Ok(());
                }
                if frame_start.elapsed() >= frame_time {
                    break;
                }
            }
        }
    })();
    result
}

// The layers below, under the names this crate's modules use for them.
pub(crate) use agentscope_session::{detection_args, memory_args, selector_args};
