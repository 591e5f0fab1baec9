//! `agentscope tui`: the console's command line. It replays a capture (`--replay FILE.cap`,
//! from `agentscope collect --record`) or a JSON-lines event file (`--events`, from
//! `agentscope collect --json`); live capture and remote collectors are other sources of the
//! same console, still to come.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use super::{run_console, ConsoleConfig, ConsoleOptions, JsonEventsSource, Theme};

#[derive(Args, Debug)]
pub struct TuiArgs {
    /// Replay a capture written by `agentscope collect --record`.
    #[arg(long, value_name = "FILE.cap", conflicts_with = "events")]
    pub replay: Option<PathBuf>,
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
    #[command(flatten)]
    pub detection: crate::detection_args::DetectionArgs,
}

pub fn run(args: TuiArgs) -> anyhow::Result<()> {
    let config = ConsoleConfig::load(args.config.as_deref())?;
    if let Some(theme) = &args.theme {
        // Fail before the terminal is taken over.
        Theme::load(theme)?;
    }
    let options = ConsoleOptions::new(config, args.theme);
    options.app_options()?;
    let mut source = match (&args.replay, &args.events) {
        (Some(path), _) => JsonEventsSource::open_capture(path)?,
        (None, Some(path)) => JsonEventsSource::open(path)?,
        (None, None) => bail!(
            "nothing to show: give --replay FILE.cap (from `agentscope collect --record`) or \
             --events FILE.jsonl (from `agentscope collect --json`); the live console is not \
             built yet"
        ),
    }
    .at_speed(args.speed)
    .with_detection(args.detection.options()?);
    if args.paused {
        source = source.paused();
    }
    run_console(Box::new(source), options)
}
