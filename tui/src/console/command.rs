//! `agentscope tui`: the console's command line. For now it opens a JSON-lines event file
//! (`--events`, as written by `agentscope collect --json`); live capture, recordings and
//! remote collectors are other sources of the same console.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use super::{run_console, ConsoleConfig, ConsoleOptions, JsonEventsSource, Theme};

#[derive(Args, Debug)]
pub struct TuiArgs {
    /// Replay events from a JSON-lines file written by `agentscope collect --json`.
    #[arg(long, value_name = "FILE.jsonl")]
    pub events: Option<PathBuf>,
    /// Config file (default: $XDG_CONFIG_HOME/agentscope/console.toml, if it exists).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Colour theme: dark, light, high-contrast, or a theme file.
    #[arg(long, value_name = "NAME|PATH")]
    pub theme: Option<String>,
    /// Start a replay paused.
    #[arg(long)]
    pub paused: bool,
    /// Replay speed (1 = as recorded).
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    pub speed: f64,
}

pub fn run(args: TuiArgs) -> anyhow::Result<()> {
    let config = ConsoleConfig::load(args.config.as_deref())?;
    if let Some(theme) = &args.theme {
        // Fail before the terminal is taken over.
        Theme::load(theme)?;
    }
    let options = ConsoleOptions::new(config, args.theme);
    options.app_options()?;
    let Some(path) = args.events else {
        bail!("nothing to show: give --events FILE.jsonl (a capture from `agentscope collect --json`)");
    };
    let mut source = JsonEventsSource::open(&path)?.at_speed(args.speed);
    if args.paused {
        source = source.paused();
    }
    run_console(Box::new(source), options)
}
