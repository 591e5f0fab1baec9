//! `agentscope tui`: the console's command line. Without a source option it runs the
//! collector in-process and shows this node live (root needed); it also replays a capture
//! (`--replay FILE.cap`, from `agentscope collect --record` or the console's `r`) or a
//! JSON-lines event file (`--events`, from `agentscope collect --json`), or attaches to a
//! collector serving on a socket (`--connect SOCKET`, from `agentscope collect --serve`).

use std::path::PathBuf;
use std::time::Duration;

use std::io::IsTerminal as _;
use std::io::Write as _;

use anyhow::bail;
use clap::Args;

use super::live_collector::LiveArgs;
use super::remote_source::{self, RemoteSource};
use super::{run_console, ConsoleConfig, ConsoleOptions, JsonEventsSource, LiveSource, Theme};

/// Console options for these arguments (config, theme, agent selection).
fn console_options(config: ConsoleConfig, args: &TuiArgs) -> ConsoleOptions {
    let mut options = ConsoleOptions::new(config, args.theme.clone());
    options.selector = args.select.selector();
    if let Some(dir) = &args.detection.baseline {
        // The approved baselines first: what `P` promotes is what the agent is judged by.
        options.baseline_dirs.insert(0, dir.clone());
    }
    options
}

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
    /// Quit by itself after SECS (demos, scripts; with --headless-graph, stop following).
    #[arg(long, value_name = "SECS")]
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
    /// Live or --connect: judge agents against the cluster's approved AgentBaselines as
    /// they are approved (watched through the Kubernetes API: in a pod, --kubeconfig when
    /// live, else $KUBECONFIG or ~/.kube/config), so "new" in the graph is relative to what
    /// the cluster approved (docs/baseline.md, "Across nodes"). Writes nothing.
    #[arg(long, value_enum, value_name = "STORE", conflicts_with_all = ["replay", "events"])]
    pub baseline_store: Option<BaselineStoreArg>,
    /// The live console's memory budget (a replay uses the capture's).
    #[command(flatten)]
    pub memory: crate::memory_args::MemoryArgs,
    #[command(flatten)]
    pub select: crate::selector_args::SelectorArgs,
    #[command(flatten)]
    pub live: LiveArgs,
}

/// Where approved baselines come from.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum BaselineStoreArg {
    /// AgentBaseline custom resources on the Kubernetes API.
    Kubernetes,
}

/// The watch of approved AgentBaselines `--baseline-store` asks for, through `kubeconfig`
/// (else in-cluster or the default kubeconfig).
fn approved_watch(
    store: Option<BaselineStoreArg>,
    kubeconfig: Option<&std::path::Path>,
) -> anyhow::Result<Option<crate::approved_watch::ApprovedWatch>> {
    let Some(BaselineStoreArg::Kubernetes) = store else {
        return Ok(None);
    };
    let source = match kubeconfig {
        Some(path) => agentscope_identity::KubernetesSource::Kubeconfig(path.to_path_buf()),
        None => agentscope_identity::KubernetesSource::Infer,
    };
    crate::approved_watch::ApprovedWatch::start(&source).map(Some)
}

pub fn run(args: TuiArgs) -> anyhow::Result<()> {
    let config = ConsoleConfig::load(args.config.as_deref())?;
    if let Some(theme) = &args.theme {
        // Fail before the terminal is taken over.
        Theme::load(theme)?;
    }
    let duration = args
        .duration
        .map(Duration::try_from_secs_f64)
        .transpose()
        .map_err(|_| anyhow::anyhow!("--duration takes a number of seconds, at least 0"))?;
    let live_only = args.live.any_given() || args.memory.memory_budget.is_some();
    if let Some(socket) = &args.connect {
        if live_only {
            bail!(
                "--pid, --record-dir and the other capture options apply to the live console \
                 only (without --connect, --replay or --events)"
            );
        }
        let mut source = RemoteSource::connect(socket, Duration::from_secs(10))?
            .with_detection(args.detection.options()?);
        if let Some(watch) = approved_watch(args.baseline_store, None)? {
            source = source.with_approved_watch(watch);
        }
        if let Some(graph) = &args.headless_graph {
            // Scripts wait for this line before making the events they want to see.
            eprintln!("agentscope: attached to {}", socket.display());
            let summary = remote_source::run_headless(source, duration, graph)?;
            writeln!(
                std::io::stdout().lock(),
                "{}",
                serde_json::to_string(&summary)?
            )?;
            return Ok(());
        }
        let mut options = console_options(config, &args);
        options.app_options()?;
        options.quit_after = duration;
        require_terminal()?;
        return run_console(Box::new(source), options);
    }
    let mut options = console_options(config, &args);
    options.app_options()?;
    options.quit_after = duration;
    // Say so before loading eBPF programs or reading a file, not after.
    require_terminal()?;
    let replaying = args.replay.is_some() || args.events.is_some();
    if replaying && live_only {
        bail!(
            "--pid, --record-dir and the other capture options apply to the live console only \
             (without --connect, --replay or --events)"
        );
    }
    let mut source = match (&args.replay, &args.events) {
        (Some(path), _) => JsonEventsSource::open_capture(path)?,
        (None, Some(path)) => JsonEventsSource::open(path)?,
        (None, None) => {
            if args.paused || args.speed != 1.0 {
                bail!("--paused and --speed apply to replays (--replay or --events)");
            }
            let mut source = LiveSource::start(&args.live, args.memory.bytes())?
                .with_detection(args.detection.options()?);
            if let Some(watch) =
                approved_watch(args.baseline_store, args.live.capture.kubeconfig.as_deref())?
            {
                source = source.with_approved_watch(watch);
            }
            return run_console(Box::new(source), options);
        }
    }
    .at_speed(args.speed)
    .with_detection(args.detection.options()?);
    if args.paused {
        source = source.paused();
    }
    run_console(Box::new(source), options)
}

fn require_terminal() -> anyhow::Result<()> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!(
            "the console needs a terminal (stdin and stdout); for headless capture use \
             `agentscope collect`"
        );
    }
    Ok(())
}
