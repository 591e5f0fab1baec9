//! `agentscope collect`: the live collector, headless. Prints events (one JSON object per line
//! with `--json`, a short text line otherwise) and a final summary with counts and drops.
//! Every event also goes through reconstruction and the model; `--graph-json` writes the
//! resulting agents, tool calls and graph when the collector stops.
//!
//! Events read from the ring buffer go through one [`Session`] step each; the stream server,
//! the recording, the printer, the baseline directory and the Kubernetes baseline store are its
//! sinks (`CollectSinks`), and the kernel's drop counts reach detection through
//! [`Session::note_losses_into`].

use std::io::Write as _;
use std::time::Duration;

use std::path::{Path, PathBuf};

use agentscope_capture::capture::{CollectorCounters, RecorderOptions};
use agentscope_capture::serve::ServeOptions;
use agentscope_event::{Event, EventBody};
use agentscope_identity::declared_objects::{DeclaredObjectsWatch, SNAPSHOT_INTERVAL};
use agentscope_identity::IdentityResolver;
use agentscope_kernel::collector::collector_made_event;
use agentscope_kernel::{Collector, Summary};
use agentscope_otlp::{ExportCounts, OtlpSink};
use agentscope_session::baseline_sink::BaselineDirSink;
use agentscope_session::kubernetes_baseline_store::KubernetesBaselineStore;
use agentscope_session::recorder_sink::RecorderSink;
use agentscope_session::server_sink::ServerSink;
use agentscope_session::{Session, Sink, SourceLosses, Step};

use crate::event_output::{start_graph, EventPrinter};
use crate::loop_turns::{LoopTurns, TurnKind};
use crate::stdout_queue::{Stdout, StdoutDrops, StdoutQueue};
use crate::thread_time::ThreadTime;
use agentscope_console::control_chars::escape_controls;
use anyhow::Context as _;
use clap::Args;

#[derive(Args, Debug)]
pub struct CollectArgs {
    #[command(flatten)]
    pub capture: agentscope_session::CaptureArgs,
    #[command(flatten)]
    pub detection: agentscope_session::detection_args::DetectionArgs,
    #[command(flatten)]
    pub select: agentscope_session::selector_args::SelectorArgs,
    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM).
    #[arg(short = 'd', long, value_name = "SECS")]
    duration: Option<f64>,
    /// One JSON object per event on stdout, then a summary object (see docs/events.md).
    #[arg(long)]
    json: bool,
    /// Write a line to stderr once the probes are attached (tests and scripts wait for it),
    /// then one each time a TLS library or executable is probed ("agentscope: probes attached
    /// to PATH: METHOD"): every later process that runs or loads it is probed from the start.
    #[arg(long)]
    ready_message: bool,
    /// When the collector stops, write the agents, their AI-BOMs, tool calls and the execution
    /// graph to FILE as JSON (schema: docs/graph.md).
    #[arg(short = 'g', long, value_name = "FILE")]
    graph_json: Option<PathBuf>,
    /// Do not print events (useful with --graph-json).
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Record everything to FILE.cap for offline replay (`agentscope replay`, `agentscope tui
    /// --replay`). Credentials are masked unless --keep-secrets; the file is mode 0600.
    #[arg(long, value_name = "FILE.cap")]
    record: Option<PathBuf>,
    /// Rotate the recording when a file reaches SIZE (e.g. 512M, 2G): files are named
    /// NAME.000000.cap, NAME.000001.cap, ... and each replays on its own.
    #[arg(long, value_name = "SIZE", requires = "record", value_parser = agentscope_session::size_arg::parse_size)]
    record_max_size: Option<u64>,
    /// With --record-max-size, keep at most N files (the oldest are deleted).
    #[arg(long, value_name = "N", requires = "record_max_size")]
    record_max_files: Option<usize>,
    /// Serve what is captured on a Unix socket for `agentscope tui --connect SOCKET` (created
    /// mode 0660; see docs/console.md, remote mode).
    #[arg(long, value_name = "SOCKET")]
    serve: Option<PathBuf>,
    /// Group of the --serve socket, whose members may attach (default: the group of the
    /// socket's directory).
    #[arg(long, value_name = "GROUP", requires = "serve")]
    serve_group: Option<String>,
    /// Also let this user attach to the --serve socket; repeat for several.
    #[arg(long = "serve-allow-uid", value_name = "UID", requires = "serve")]
    serve_allow_uids: Vec<u32>,
    /// Consoles served at once on the --serve socket; more are refused and told why.
    #[arg(long, value_name = "N", default_value_t = agentscope_capture::serve::DEFAULT_MAX_CONSOLES, requires = "serve")]
    serve_max_consoles: usize,
    /// When the collector stops, write every agent's baseline as detection learned it to DIR
    /// (one YAML file per agent, as `agentscope baseline export` writes; events lost while an
    /// agent learned make its baseline partial). Never the --baseline directory.
    #[arg(long, value_name = "DIR")]
    baseline_out: Option<PathBuf>,
    /// Share baselines across nodes through the Kubernetes API: what this node learns of each
    /// Kubernetes agent is written to an AgentObservation (server-side apply, field manager
    /// `agentscope/NODE`), and agents are judged against their approved AgentBaselines as soon
    /// as they are approved (watched). Needs the API (--kubeconfig or in-cluster) and the
    /// CRDs of deploy/crds/ (docs/baseline.md, "Across nodes").
    #[arg(long, value_enum, value_name = "STORE")]
    baseline_store: Option<BaselineStoreArg>,
    /// With --baseline-store: seconds between two writes of this node's observations (they
    /// are also written when the collector stops).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 30.0,
        requires = "baseline_store"
    )]
    baseline_sync_interval: f64,
    /// Enforce a promoted baseline's policy on an agent: `pid:PID=FILE` (that process and its
    /// descendants) or `cgroup:PATH=FILE` (a cgroup v2 directory: a container). Repeat for
    /// several agents. In audit mode what the policy does not allow runs and is reported as
    /// "would block"; in enforce mode it is denied. Pinned in --pin-dir, so it outlives the
    /// collector until `agentscope enforce off` (docs/enforcement.md).
    #[arg(long = "enforce", value_name = "SCOPE=FILE", value_parser = crate::enforce_policy::parse_enforce_arg)]
    enforce: Vec<crate::enforce_policy::EnforceArg>,
    /// Answer Kubernetes probes over HTTP on ADDR (e.g. `0.0.0.0:9810`): `/readyz` is 200
    /// once the kernel programs are attached and while the event loop turns, `/livez` while it
    /// turns (see deploy/daemonset.yaml).
    #[arg(long, value_name = "ADDR")]
    health_address: Option<std::net::SocketAddr>,
    /// The bpffs directory enforcement is pinned in. Without --enforce, a collector adopts the
    /// enforcement a collector that has gone left there (its events then reach this one).
    #[arg(long, value_name = "DIR", default_value = agentscope_kernel::enforcement_pins::DEFAULT_PIN_DIR)]
    pin_dir: PathBuf,
    /// An agent whose policy blocks more than N attempts in a minute is dropped back to audit,
    /// with a finding (0: never).
    #[arg(long, value_name = "N", default_value_t = agentscope_kernel::enforcement_disarm::DEFAULT_DISARM_AFTER)]
    disarm_after: u32,
    /// A DNS resolver every governed agent may reach on port 53 (besides /etc/resolv.conf's
    /// nameservers, always allowed): the answers it gives for a policy's names allow their
    /// addresses. Repeatable.
    #[arg(long, value_name = "ADDRESS")]
    resolver: Vec<std::net::IpAddr>,
    #[command(flatten)]
    pub memory: agentscope_session::memory_args::MemoryArgs,
    #[command(flatten)]
    pub otlp: crate::otlp_args::OtlpArgs,
}

/// Where baselines are shared across nodes.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum BaselineStoreArg {
    /// AgentObservation and AgentBaseline custom resources on the Kubernetes API.
    Kubernetes,
}

/// How long a stop waits for the last observations to reach the API server.
const STOP_STORE_FLUSH: Duration = Duration::from_millis(300);

/// Events read from the ring buffer at a time.
const BATCH_EVENTS: usize = 1024;
/// How long events are processed before the loop looks at its signals and timers again: a
/// batch can take far longer than this on a busy node, and a stop must not wait for it.
const PROCESS_SLICE: Duration = Duration::from_millis(20);
/// Events processed at a time after a stop, between two looks at the deadline.
const STOP_BATCH_EVENTS: usize = 16;
/// After a stop, how long what the ring buffer holds is still processed, and then how long the
/// rest may take to be counted. Together with writing the outputs, under one second.
const STOP_DRAIN: Duration = Duration::from_millis(200);
const STOP_DISCARD: Duration = Duration::from_millis(100);
/// Until when, from the stop's start, connections still open are flushed (their half-sent
/// exchanges parsed, redacted and emitted); those left are dropped unparsed and counted
/// (`connections_unflushed_at_stop`). The check comes between connections, so one
/// connection's flush (at most one message of the budget's largest, 32 MiB) can overrun it.
/// A debug build's stop spent 273-285 ms of CPU flushing 64 half-sent uploads (17 MB held)
/// before its byte loops were optimised, and a loaded CI run's 707 ms in this phase.
const STOP_FLUSH_UNTIL: Duration = Duration::from_millis(400);
/// Standard output's reader gets what is left of the stop's time after the outputs are
/// written (the recording and the graph must be complete, so they are not cut), up to these
/// points after the stop began: until the first, the lines still queued for it; until the
/// second, the summary. A busy node slows every step, so the points are fixed in time rather
/// than lengths, and each step gets at least [`STOP_STDOUT_LEAST`].
const STOP_STDOUT_UNTIL: Duration = Duration::from_millis(450);
const STOP_SUMMARY_UNTIL: Duration = Duration::from_millis(600);
const STOP_STDOUT_LEAST: Duration = Duration::from_millis(20);

/// How long OTLP export may still send what is queued after a stop, from the stop's start
/// (less when the endpoint answers: it ends as soon as the queue is empty).
const STOP_OTLP_UNTIL: Duration = Duration::from_millis(400);

/// Until when, from the stop's start, the last syncs of the recording and the graph are
/// waited for. They run in helper processes from the moment each file is written, beside the
/// rest of the stop; one not done by then finishes after the collector has exited (the data
/// is written: only a machine failure in the next seconds could lose it). Behind another
/// program's writeback one sync took 780 ms, which waited for made the stop miss its second.
/// The same point as the summary's: the stop's second also holds the time the loop takes to
/// see the signal (a turn, up to ~150 ms under load) and the process's exit.
const STOP_DISK_UNTIL: Duration = STOP_SUMMARY_UNTIL;

/// Everything `collect` hands each step to: the stream server, the recording, the event
/// printer, the baseline directory and OTLP export, in that order.
struct CollectSinks {
    server: Option<ServerSink>,
    recorder: Option<RecorderSink>,
    printer: PrinterSink,
    baselines: Option<BaselineDirSink>,
    otlp: Option<OtlpSink>,
    store: Option<KubernetesBaselineStore>,
}

impl CollectSinks {
    /// Says what the recording and the server have to say.
    fn report(&mut self) {
        let recorder = self.recorder.as_mut().map(RecorderSink::take_messages);
        let server = self.server.as_mut().map(ServerSink::take_messages);
        for message in recorder.into_iter().chain(server).flatten() {
            eprintln!("agentscope: {message}");
        }
        if let Some(message) = self.otlp.as_mut().and_then(OtlpSink::take_message) {
            eprintln!("agentscope: {message}");
        }
    }
}

impl Sink for CollectSinks {
    fn step(
        &mut self,
        event: Option<&Event>,
        step: &Step,
        session: &Session,
    ) -> std::io::Result<()> {
        self.server.step(event, step, session)?;
        self.recorder.step(event, step, session)?;
        self.printer.step(event, step, session)?;
        self.baselines.step(event, step, session)?;
        self.otlp.step(event, step, session)?;
        self.store.step(event, step, session)
    }

    fn tick(&mut self, now: std::time::Instant, session: &Session) -> std::io::Result<()> {
        self.server.tick(now, session)?;
        self.recorder.tick(now, session)?;
        self.printer.tick(now, session)?;
        self.baselines.tick(now, session)?;
        self.otlp.tick(now, session)?;
        self.store.tick(now, session)
    }

    fn finish(&mut self, step: &Step, session: &Session) -> std::io::Result<()> {
        self.server.finish(step, session)?;
        self.recorder.finish(step, session)?;
        self.printer.finish(step, session)?;
        self.baselines.finish(step, session)?;
        self.otlp.finish(step, session)?;
        self.store.finish(step, session)
    }
}

/// The event printer: one line per event (JSON with `--json`), flushed after each batch.
struct PrinterSink {
    out: StdoutQueue,
    printer: EventPrinter,
    quiet: bool,
    /// Events of the selected agents' processes only (`--namespace`, `--pod`, `--agent`).
    selector: agentscope_analysis::model::agent_selector::AgentSelector,
}

impl Sink for PrinterSink {
    fn step(&mut self, event: Option<&Event>, _: &Step, session: &Session) -> std::io::Result<()> {
        let pipeline = session.pipeline();
        match event {
            Some(event)
                if !self.quiet
                    && self.selector.selects_process(
                        pipeline.model(),
                        pipeline.processes(),
                        event.header.pid,
                        event.header.ts_ns,
                    ) =>
            {
                self.printer.print(&mut self.out, event)
            }
            _ => Ok(()),
        }
    }

    fn tick(&mut self, _: std::time::Instant, _: &Session) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Says which files were just probed, with `--ready-message` (a script waits for the line of
/// an agent's binary before starting the agent whose first connections it wants captured).
fn report_probed(collector: &mut Collector, ready_message: bool) {
    for probed in collector.take_probed() {
        if ready_message {
            eprintln!(
                "agentscope: probes attached to {}: {}",
                escape_controls(&probed.path),
                probed.method
            );
        }
    }
}

/// Marks the current recording file as collector output (see `Collector::mark_output_file`).
fn mark_recording(collector: &mut Collector, recorder: &Option<RecorderSink>) {
    if let Some(path) = recorder.as_ref().and_then(RecorderSink::current_path) {
        collector.mark_output_file(path);
    }
}

/// Hands the collector's counters to the session: the sinks store them, and what was lost
/// since the last time reaches detection (baselines learning then become partial).
fn note_counters(
    session: &mut Session,
    collector: &Collector,
    sinks: &mut CollectSinks,
) -> std::io::Result<()> {
    let summary = collector.summary();
    session.set_collector_counters(counters(&summary));
    session
        .note_losses_into(
            SourceLosses {
                kernel_dropped: summary.kernel.dropped,
                channel_dropped: 0,
                decode_errors: summary.decode_errors,
            },
            sinks,
        )
        .map(|_| ())
}

pub fn run(args: CollectArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(collect(args))
}

async fn collect(args: CollectArgs) -> anyhow::Result<()> {
    let baselines = match &args.baseline_out {
        Some(dir) => {
            if args.detection.baseline.as_deref().is_some_and(|approved| {
                std::fs::canonicalize(approved).ok() == std::fs::canonicalize(dir).ok()
            }) {
                anyhow::bail!(
                    "--baseline-out {} is the directory of approved baselines (--baseline): \
                     learned baselines would replace them; write them elsewhere and review",
                    dir.display()
                );
            }
            Some(
                BaselineDirSink::new(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?,
            )
        }
        None => None,
    };
    let health = crate::health_endpoint::Health::default();
    if let Some(address) = args.health_address {
        crate::health_endpoint::serve(address, health.clone()).await?;
    }
    let mut collector_options = args.capture.collector_options();
    let mut resolvers = args.resolver.clone();
    if let Ok(text) = std::fs::read_to_string("/etc/resolv.conf") {
        resolvers.extend(crate::enforce_policy::resolv_conf_nameservers(&text));
    }
    let governed = crate::enforce_policy::governed_agents(
        &args.enforce,
        &collector_options.proc_root,
        &resolvers,
    )?;
    collector_options.governed = governed.agents;
    collector_options.governed_file_finder = governed.file_finder;
    collector_options.pin_dir = args.pin_dir.clone();
    collector_options.disarm_after = args.disarm_after;
    let mut collector = Collector::start(collector_options)?;
    let mut identity = IdentityResolver::new(args.capture.identity_options());
    let node_name = identity.node_name();
    identity.start().await?;
    // The declared side of posture, into the recording and to consoles (docs/posture.md).
    let mut declared = identity.kube_client().map(|client| {
        DeclaredObjectsWatch::start(client, Some(node_name.clone()), SNAPSHOT_INTERVAL)
    });
    let store = match args.baseline_store {
        Some(BaselineStoreArg::Kubernetes) => {
            let Some(client) = identity.kube_client() else {
                anyhow::bail!(
                    "--baseline-store kubernetes needs the Kubernetes API: pass --kubeconfig PATH \
                     or run in a pod with a service account (and without --no-kubernetes)"
                );
            };
            let interval = Duration::from_secs_f64(args.baseline_sync_interval.max(0.1));
            Some(KubernetesBaselineStore::start(
                client,
                identity.node_name(),
                interval,
            ))
        }
        None => None,
    };
    let pipeline = args
        .capture
        .live_pipeline(args.memory.bytes(), identity, collector.processes().clone())
        .with_detection(args.detection.options()?);
    let mut session = Session::new(pipeline);
    let metadata = || {
        args.capture.recording_metadata(
            format!("agentscope {}", env!("CARGO_PKG_VERSION")),
            args.memory.bytes(),
        )
    };
    let recorder = match &args.record {
        Some(path) => {
            let mut options = RecorderOptions::new(path.clone(), metadata());
            options.max_file_bytes = args.record_max_size;
            options.max_files = args.record_max_files;
            let recorder = RecorderSink::start(options, &session)
                .with_context(|| format!("cannot record to {}", path.display()))?;
            Some(recorder)
        }
        None => None,
    };
    mark_recording(&mut collector, &recorder);
    let server = match &args.serve {
        Some(path) => {
            let mut options = ServeOptions::new(path.clone(), metadata());
            options.group = args.serve_group.clone();
            options.allow_uids = args.serve_allow_uids.clone();
            options.max_consoles = args.serve_max_consoles.max(1);
            options.queue_bytes = agentscope_capture::serve::console_queue_bytes(
                session.pipeline().memory_budget(),
                options.max_consoles,
            );
            Some(ServerSink::listen(options)?)
        }
        None => None,
    };
    let mut sinks = CollectSinks {
        server,
        recorder,
        printer: PrinterSink {
            out: StdoutQueue::start(
                || Stdout::open(stop_when_stdout_closes),
                crate::stdout_queue::QUEUE_BYTES,
            )?,
            printer: EventPrinter::new(args.json),
            quiet: args.quiet,
            selector: args.select.selector(),
        },
        baselines,
        otlp: None,
        store,
    };
    let mut otlp_message = None;
    if let Some((otlp, message)) = args
        .otlp
        .sink(Some(node_name), !args.capture.redact_secrets())?
    {
        sinks.otlp = Some(otlp);
        otlp_message = Some(message);
    }
    // Consoles see events within this long; the recording flushes on the same beat.
    let mut tick_timer = tokio::time::interval(Duration::from_millis(100));
    let mut counters_timer = tokio::time::interval(Duration::from_millis(250));
    // Both listeners exist for the whole run: a signal that arrives while a batch is being
    // processed is kept for the next poll (a listener made afresh each turn would miss it).
    // They exist before the collector says it is collecting: a stop asked for as soon as it
    // says so is a clean stop, not the default action's kill (no summary, no graph, a
    // recording unfinished).
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    health.collecting();
    if args.ready_message {
        eprintln!("agentscope: collecting");
    }
    report_probed(&mut collector, args.ready_message);
    if let Some(message) = otlp_message {
        eprintln!("{message}");
    }
    if let Some(active) = &sinks.server {
        eprintln!(
            "agentscope: serving consoles on {}",
            active.path().display()
        );
    }
    let deadline = args
        .duration
        .map(|secs| tokio::time::Instant::now() + Duration::from_secs_f64(secs.max(0.0)));
    let mut consumers_told = std::collections::BTreeSet::new();
    // Events read and not yet processed: a batch is processed a slice of time at a time.
    let mut backlog = std::collections::VecDeque::new();
    let mut turns = LoopTurns::default();
    loop {
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // A stop comes first whatever else is ready, then the timers (due only now and
            // then), then events: with the ring buffer always full, events are always ready.
            biased;
            _ = sleep => break,
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = counters_timer.tick() => {
                let began = std::time::Instant::now();
                // A rotated recording is a new file to mark.
                mark_recording(&mut collector, &sinks.recorder);
                for consumer in collector.consumers() {
                    if consumers_told.insert(consumer.pid) {
                        eprintln!("agentscope: {}", consumer.warning());
                    }
                }
                note_counters(&mut session, &collector, &mut sinks)?;
                // A quiet governed agent makes no events: its enforcement's upkeep (files
                // found again, disarms) runs here too.
                backlog.extend(collector.keep_enforcement());
                turns.ended(TurnKind::Counters, began);
            }
            _ = tick_timer.tick() => {
                let began = std::time::Instant::now();
                health.beat();
                if let Some(store) = &mut sinks.store {
                    store.apply_approved(&mut session);
                }
                session.tick(std::time::Instant::now(), &mut sinks)?;
                sinks.report();
                turns.ended(TurnKind::Tick, began);
            }
            Some(objects) = DeclaredObjectsWatch::next_of(&mut declared) => {
                let event = collector_made_event(EventBody::ClusterObjects(Box::new(objects)));
                session.feed_into(&event, &mut sinks)?;
            }
            batch = collector.next_batch(BATCH_EVENTS), if backlog.is_empty() => {
                let began = std::time::Instant::now();
                backlog.extend(batch?);
                report_probed(&mut collector, args.ready_message);
                process_slice(&mut backlog, &mut session, &mut sinks)?;
                collector.mute_sockets(session.take_opaque_sockets());
                turns.ended(TurnKind::Batch, began);
                // While the ring buffer stays full every poll is ready at once, and tokio only
                // looks at its timers and signals when the task yields (after a coop budget
                // of ~128 batches: seconds). Yield after each slice so --duration, SIGINT and
                // SIGTERM take effect at once.
                tokio::task::yield_now().await;
            }
            () = std::future::ready(()), if !backlog.is_empty() => {
                let began = std::time::Instant::now();
                process_slice(&mut backlog, &mut session, &mut sinks)?;
                collector.mute_sockets(session.take_opaque_sockets());
                turns.ended(TurnKind::Backlog, began);
                tokio::task::yield_now().await;
            }
        }
    }
    // Stop within a second under any load: nothing more is emitted, what the ring buffer
    // holds is processed for a bounded time, the rest is counted, then everything is written.
    let stop_time = ThreadTime::now();
    let stop_began = stop_time.at;
    let priority = raise_priority_for_the_stop();
    health.stopping();
    collector.stop_emitting();
    let drain_until = stop_began + STOP_DRAIN;
    // What was read before the stop is older than what the ring buffer still holds.
    while std::time::Instant::now() < drain_until {
        let Some(event) = backlog.pop_front() else {
            break;
        };
        session.feed_into(&event, &mut sinks)?;
    }
    collector.count_read_unprocessed(backlog.len() as u64);
    backlog.clear();
    loop {
        let (events, emptied) = collector.drain_until(STOP_BATCH_EVENTS, drain_until);
        for event in events {
            session.feed_into(&event, &mut sinks)?;
        }
        if emptied || std::time::Instant::now() >= drain_until {
            break;
        }
    }
    // Whose payloads the kernel left out, for the processes still running.
    for event in collector.left_out_at_stop() {
        session.feed_into(&event, &mut sinks)?;
    }
    collector.discard_rest(STOP_DISCARD);
    let outputs_time = ThreadTime::now();
    // The last drops reach detection before the baselines are written.
    note_counters(&mut session, &collector, &mut sinks)?;
    // Connections still open are flushed until the stop's point for it; the rest are
    // dropped unparsed and counted (the recording holds their bytes).
    let flush_until =
        (stop_began + STOP_FLUSH_UNTIL).max(std::time::Instant::now() + STOP_STDOUT_LEAST);
    session.finish_into_while(&mut sinks, &mut || std::time::Instant::now() < flush_until)?;
    // The baselines' last observations reach the API server (counted with the baselines).
    let mut store_warnings = Vec::new();
    if let Some(store) = &sinks.store {
        if !store.flush(STOP_STORE_FLUSH).await {
            store_warnings.push(format!(
                "the last AgentObservations did not reach the Kubernetes API within {} ms",
                STOP_STORE_FLUSH.as_millis()
            ));
        }
        store_warnings.extend(store.warnings());
        eprintln!(
            "agentscope: applied {} AgentObservations to the Kubernetes API",
            store.writes()
        );
    }
    let finished_time = ThreadTime::now();
    sinks.report();
    if let Some(baselines) = &sinks.baselines {
        eprintln!(
            "agentscope: wrote {} learned baselines to {}",
            baselines.written().len(),
            args.baseline_out
                .as_deref()
                .unwrap_or(Path::new(""))
                .display()
        );
    }
    // The recording is complete in the page cache; its last sync is under way.
    let recording_on_disk = sinks.recorder.as_mut().and_then(RecorderSink::take_on_disk);
    let pipeline = session.pipeline();
    let graph = match &args.graph_json {
        Some(path) => {
            let recording = agentscope_files::output_file::Inputs::new(args.record.iter());
            Some((
                path,
                start_graph(path, pipeline, &recording, &args.select.selector())?,
            ))
        }
        None => None,
    };
    for incident in pipeline.detector().incidents() {
        eprintln!(
            "agentscope: {} {}: {}",
            incident.id,
            incident.severity.name(),
            escape_controls(&incident.story)
        );
    }
    let mut summary = collector.summary();
    summary.warnings.extend(pipeline.identity_warnings());
    summary.warnings.extend(store_warnings);
    summary
        .warnings
        .extend(declared.iter().flat_map(DeclaredObjectsWatch::warnings));
    summary.memory = Some(pipeline.memory_budget().stats());
    summary.connections_unflushed_at_stop =
        pipeline.reconstruct_stats().connections_unflushed_at_stop;
    if summary.connections_unflushed_at_stop > 0 {
        let kept = if args.record.is_none() {
            "record with --record to keep their bytes"
        } else {
            "the recording holds their bytes: replay it to see them"
        };
        summary.warnings.push(format!(
            "{} connections still open at the stop were not parsed in the stop's time: \
             their exchanges in flight are not in this output ({kept})",
            summary.connections_unflushed_at_stop
        ));
    }
    // OTLP export sends what is queued while standard output drains: neither waits on the
    // other, and both are done by their points in the stop's second.
    if let Some(otlp) = &sinks.otlp {
        otlp.begin_settle();
    }
    let stdout_time = ThreadTime::now();
    let mut out = sinks.printer.out;
    let stdout_until =
        |point: Duration| (stop_began + point).max(std::time::Instant::now() + STOP_STDOUT_LEAST);
    let dropped = out.settle(stdout_until(STOP_STDOUT_UNTIL))?;
    if dropped.lines > 0 {
        eprintln!(
            "agentscope: {} lines ({} bytes) of standard output were dropped: its reader was \
             behind",
            dropped.lines, dropped.bytes
        );
    }
    let otlp = sinks.otlp.as_ref().map(|otlp| {
        let counts = otlp.settle(
            (stop_began + STOP_OTLP_UNTIL).max(std::time::Instant::now() + STOP_STDOUT_LEAST),
        );
        if counts.spans_dropped + counts.logs_dropped > 0 {
            eprintln!(
                "agentscope: OTLP export dropped {} spans and {} log records (exported {} and {})",
                counts.spans_dropped,
                counts.logs_dropped,
                counts.spans_exported,
                counts.logs_exported
            );
        }
        counts
    });
    print_summary(&mut out, &summary, dropped, otlp, args.json)?;
    let finished = out.finish(stdout_until(STOP_SUMMARY_UNTIL))?;
    if !finished.complete {
        // Counted from the summary on: what came before it is in the line above and in the
        // summary itself.
        let lines = finished.dropped.lines.saturating_sub(dropped.lines);
        let counted = if lines > 0 {
            format!(
                " ({lines} lines, {} bytes, dropped at the stop's end)",
                finished.dropped.bytes.saturating_sub(dropped.bytes)
            )
        } else {
            String::new()
        };
        eprintln!(
            "agentscope: standard output's reader took nothing in time: the summary was not \
             written to it{counted}"
        );
    }
    if let Some(err) = collector.last_decode_error() {
        eprintln!(
            "agentscope: {} records did not decode; last: {err}",
            summary.decode_errors
        );
    }
    // The graph is renamed into place once on disk, or at the deadline all the same.
    let disk_time = ThreadTime::now();
    let disk_until = stop_began + STOP_DISK_UNTIL;
    let mut not_on_disk = Vec::new();
    let mut graph_failed = None;
    if let Some((path, graph)) = graph {
        match graph.finish_by(Some(disk_until)) {
            Ok(true) => {}
            Ok(false) => not_on_disk.push(format!("the graph {}", path.display())),
            Err(err) => {
                graph_failed = Some(
                    anyhow::Error::new(err)
                        .context(format!("cannot write the graph to {}", path.display())),
                );
            }
        }
    }
    if let Some(mut on_disk) = recording_on_disk {
        match on_disk.wait_until(Some(disk_until)) {
            Ok(true) => {}
            Ok(false) => not_on_disk.push("the recording".to_string()),
            Err(err) => eprintln!(
                "agentscope: syncing the recording to disk failed ({err}): it reads back now, \
                 but a machine failure could lose its end"
            ),
        }
    }
    if !not_on_disk.is_empty() {
        eprintln!(
            "agentscope: {} not yet confirmed on disk {} ms after the stop: written, and the \
             kernel finishes the sync after the collector has exited (only a machine failure \
             in the next seconds could lose the end)",
            not_on_disk.join(" and "),
            STOP_DISK_UNTIL.as_millis()
        );
    }
    // Where a stop's second went, for whoever finds one slow: each phase's wall-clock time,
    // and of it the time on a CPU and waiting for one (the rest, the kernel held the thread:
    // the disk, memory reclaim).
    let now = ThreadTime::now();
    eprintln!(
        "agentscope: stopped in {} ms: events {}, recording and baselines {}, graph and \
         summary {}, standard output and OTLP export {}, waiting for the disk {}; {}",
        now.at.saturating_duration_since(stop_began).as_millis(),
        stop_time.describe_until(&outputs_time),
        outputs_time.describe_until(&finished_time),
        finished_time.describe_until(&stdout_time),
        stdout_time.describe_until(&disk_time),
        disk_time.describe_until(&now),
        turns.describe()
    );
    if let Err(err) = priority {
        eprintln!("agentscope: the stop ran at the collector's usual priority: {err}");
    }
    collector.close();
    if let Some(err) = graph_failed {
        return Err(err);
    }
    // The process ends here: freeing the pipeline's many small allocations one by one (tens
    // of milliseconds on a busy node) is left to the kernel.
    std::mem::forget(session);
    Ok(())
}

/// The stop's scheduling priority (nice) against whatever else runs on the node: the
/// highest. At -10, under a build at load 19 on 2 CPUs, a stop still waited 1086 of its
/// recording phase's 1478 ms for a CPU.
const STOP_NICE: libc::c_int = -20;

/// Raises the priority of the thread that runs the stop (this one) to [`STOP_NICE`]. Under a
/// build beside the collector (load 10-19 on 2 CPUs) a stop's thread spent 1731 of the
/// recording phase's 2193 ms runnable but waiting for a CPU: at the usual priority it gets a
/// tenth of the machine, and the stop's second is gone. The stop is short and bounded, so
/// taking the CPU for it costs others little. Needs CAP_SYS_NICE (root has it); without it
/// the stop runs as before, and its report says so.
fn raise_priority_for_the_stop() -> std::io::Result<()> {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    // SAFETY: setpriority on this thread (PRIO_PROCESS with a thread id applies to that
    // thread alone on Linux).
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, STOP_NICE) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn counters(summary: &Summary) -> CollectorCounters {
    CollectorCounters {
        received: summary.received,
        kernel_dropped: summary.kernel.dropped,
        kernel_lost_bytes: summary.kernel.lost_bytes,
        decode_errors: summary.decode_errors,
    }
}

/// The reader of `collect`'s output went away (`collect --json | head`): collecting on would
/// only fill a pipe nobody reads, so the collector stops the way SIGTERM stops it (one stop
/// path, whatever the loop waits on), finishing the recording and the graph JSON.
fn stop_when_stdout_closes() {
    // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGTERM);
    }
}

/// The summary goes to standard output, or to standard error once its reader has gone.
fn print_summary(
    out: &mut StdoutQueue,
    summary: &Summary,
    stdout_dropped: StdoutDrops,
    otlp: Option<ExportCounts>,
    json: bool,
) -> std::io::Result<()> {
    if out.is_closed() {
        return write_summary(
            &mut std::io::stderr().lock(),
            summary,
            stdout_dropped,
            otlp,
            json,
        );
    }
    write_summary(out, summary, stdout_dropped, otlp, json)
}

fn write_summary(
    out: &mut impl std::io::Write,
    summary: &Summary,
    stdout_dropped: StdoutDrops,
    otlp: Option<ExportCounts>,
    json: bool,
) -> std::io::Result<()> {
    if json {
        let mut value = serde_json::to_value(summary)?;
        // Standard output is this command's, not the kernel collector's: its count is added
        // here.
        if let Some(fields) = value.as_object_mut() {
            fields.insert("stdout_lines_dropped".into(), stdout_dropped.lines.into());
            if let Some(otlp) = otlp {
                fields.insert("otlp".into(), serde_json::to_value(otlp)?);
            }
        }
        let value = serde_json::json!({ "kind": "summary", "summary": value });
        return crate::event_output::write_json_line(out, &value);
    }
    writeln!(
        out,
        "summary: {} events received, {} dropped by the kernel ({} payload bytes lost), {} runtime-noise opens left out by the kernel, {} payload bytes of opaque sockets not copied, {} undecodable, {} TLS targets probed",
        summary.received, summary.kernel.dropped, summary.kernel.lost_bytes, summary.kernel.noise_opens_filtered, summary.kernel.opaque_socket_bytes, summary.decode_errors, summary.tls_targets
    )?;
    if summary.kernel.payloads_off_bytes > 0 {
        writeln!(
            out,
            "payloads left out on request (--no-payloads-of): {} bytes",
            summary.kernel.payloads_off_bytes
        )?;
    }
    if summary.kernel.sampled_out_bytes > 0 {
        writeln!(
            out,
            "payloads of sampled-out connections (--sample-connections): {} bytes",
            summary.kernel.sampled_out_bytes
        )?;
    }
    if let Some(memory) = &summary.memory {
        writeln!(
            out,
            "memory: {} KiB held at most of a {} KiB budget; over budget: {} bodies truncated, {} connections evicted, {} tool calls evicted, {} graph evictions, {} findings dropped, {} detection state sheddings, {} agents evicted; {} processes forgotten (process table full)",
            memory.peak_held_bytes >> 10,
            memory.budget_bytes >> 10,
            memory.bodies_truncated,
            memory.connections_evicted,
            memory.tool_calls_evicted,
            memory.graph_evictions,
            memory.findings_dropped,
            memory.detection_state_shed,
            memory.agents_evicted,
            memory.processes_forgotten
        )?;
    }
    if stdout_dropped.lines > 0 {
        writeln!(
            out,
            "standard output: {} lines dropped while its reader was behind",
            stdout_dropped.lines
        )?;
    }
    if let Some(otlp) = otlp {
        writeln!(
            out,
            "otlp: {} spans and {} log records exported, {} spans and {} log records dropped, {} failed exports",
            otlp.spans_exported, otlp.logs_exported, otlp.spans_dropped, otlp.logs_dropped, otlp.failed_exports
        )?;
    }
    for warning in &summary.warnings {
        writeln!(out, "warning: {}", escape_controls(warning))?;
    }
    Ok(())
}

/// Processes events from the front of `backlog` for at most [`PROCESS_SLICE`], then hands
/// the printed lines to standard output's queue.
fn process_slice(
    backlog: &mut std::collections::VecDeque<Event>,
    session: &mut Session,
    sinks: &mut CollectSinks,
) -> anyhow::Result<()> {
    let until = std::time::Instant::now() + PROCESS_SLICE;
    while let Some(event) = backlog.pop_front() {
        session.feed_into(&event, sinks)?;
        if std::time::Instant::now() >= until {
            break;
        }
    }
    sinks.printer.out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::event_output::tests::HOSTILE;

    #[test]
    fn summary_warnings_are_escaped() {
        let summary = Summary {
            warnings: vec![format!("cgroup {HOSTILE} unreadable")],
            ..Summary::default()
        };
        let mut out = Vec::new();
        write_summary(&mut out, &summary, StdoutDrops::default(), None, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("warning: cgroup \\x1b]0;pwned"), "{text}");
        assert!(!text.contains('\x1b'));
    }
}
