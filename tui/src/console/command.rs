//! `agentscope tui`: the console's command line. It replays a capture (`--replay FILE.cap`,
//! from `agentscope collect --record`) or a JSON-lines event file (`--events`, from
//! `agentscope collect --json`), or attaches to a collector serving on a socket (`--connect
//! SOCKET`, from `agentscope collect --serve`); live capture is another source of the same
//! console, still to come.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;

use super::remote_source::{self, RemoteSource};
use super::{run_console, ConsoleConfig, ConsoleOptions, JsonEventsSource, Theme};

#[derive(Args, Debug)]
pub struct TuiArgs {
    /// Replay a capture written by `agentscope collect --record`.
    #[arg(long, value_name = "FILE.cap", conflicts_with = "events")]
    pub replay: Option<PathBuf>,
    /// Replay events from a JSON-lines file written by `agentscope collect --json`.
    #[arg(long, value_name = "FILE.jsonl", conflicts_with = "connect")]
    pub events: Option<PathBuf>,
    /// Attach to a collector serving on SOCKET (`sudo agentscope collect --serve SOCKET`):
    /// the console runs unprivileged beside it.
    #[arg(long, value_name = "SOCKET", conflicts_with = "replay")]
    pub connect: Option<PathBuf>,
    /// With --connect, no terminal: follow the collector until it stops (or --duration), then
    /// write the model to FILE (docs/graph.md) and a summary on stdout (tests, scripts).
    #[arg(long, value_name = "FILE", requires = "connect", hide = true)]
    pub headless_graph: Option<PathBuf>,
    #[arg(long, value_name = "SECS", requires = "headless_graph", hide = true)]
    pub duration: Option<f64>,
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
    if let Some(socket) = &args.connect {
        let source = RemoteSource::connect(socket, Duration::from_secs(10))?
            .with_detection(args.detection.options()?);
        if let Some(graph) = &args.headless_graph {
            // Scripts wait for this line before making the events they want to see.
            eprintln!("agentscope: attached to {}", socket.display());
            let duration = args.duration.map(|s| Duration::from_secs_f64(s.max(0.0)));
            let summary = remote_source::run_headless(source, duration, graph)?;
            println!("{}", serde_json::to_string(&summary)?);
            return Ok(());
        }
        let options = ConsoleOptions::new(config, args.theme);
        options.app_options()?;
        return run_console(Box::new(source), options);
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
