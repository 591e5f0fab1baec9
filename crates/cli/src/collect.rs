//! `agentscope collect`: the live collector, headless. Prints events (one JSON object per line
//! with `--json`, a short text line otherwise) and a final summary with counts and drops.
//! Every event also goes through reconstruction and the model; `--graph-json` writes the
//! resulting agents, tool calls and graph when the collector stops.

use std::io::Write as _;
use std::time::Duration;

use std::path::PathBuf;

use agentscope_analysis::model::ModelOptions;
use agentscope_analysis::pipeline::Pipeline;
use agentscope_capture::capture::{CollectorCounters, Recorder, RecorderOptions};
use agentscope_capture::serve::{ServeOptions, StreamServer};
use agentscope_event::Event;
use agentscope_identity::IdentityResolver;
use agentscope_kernel::{Collector, Summary};
use agentscope_reconstruct::ReconstructOptions;

use crate::event_output::{print_event, write_graph};
use crate::stdout_pipe::StdoutPipe;
use agentscope_console::control_chars::escape_controls;
use anyhow::Context as _;
use clap::Args;

#[derive(Args, Debug)]
pub struct CollectArgs {
    #[command(flatten)]
    pub capture: agentscope_session::CaptureArgs,
    #[command(flatten)]
    pub detection: agentscope_session::detection_args::DetectionArgs,
    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// One JSON object per event on stdout, then a summary object (see docs/events.md).
    #[arg(long)]
    json: bool,
    /// Write a line to stderr once the probes are attached (tests and scripts wait for it).
    #[arg(long)]
    ready_message: bool,
    /// When the collector stops, write the agents, their AI-BOMs, tool calls and the execution
    /// graph to FILE as JSON (schema: docs/graph.md).
    #[arg(long, value_name = "FILE")]
    graph_json: Option<PathBuf>,
    /// Do not print events (useful with --graph-json).
    #[arg(long)]
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
    #[command(flatten)]
    pub memory: agentscope_session::memory_args::MemoryArgs,
}

/// Events read from the ring buffer at a time: few enough that one batch is processed well
/// within the stop deadline.
const BATCH_EVENTS: usize = 1024;
/// Events processed at a time after a stop, between two looks at the deadline.
const STOP_BATCH_EVENTS: usize = 16;
/// After a stop, how long what the ring buffer holds is still processed, and then how long the
/// rest may take to be counted. Together with writing the outputs, under one second.
const STOP_DRAIN: Duration = Duration::from_millis(200);
const STOP_DISCARD: Duration = Duration::from_millis(100);

/// Marks the current recording file as collector output (see `Collector::mark_output_file`).
fn mark_recording(collector: &mut Collector, recorder: &Option<Recorder>) {
    if let Some(path) = recorder.as_ref().and_then(|r| r.current_path()) {
        collector.mark_output_file(path);
    }
}

pub fn run(args: CollectArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(collect(args))
}

async fn collect(args: CollectArgs) -> anyhow::Result<()> {
    let mut collector = Collector::start(args.capture.collector_options())?;
    let mut identity = IdentityResolver::new(args.capture.identity_options());
    identity.start().await?;
    let mut pipeline = Pipeline::new(
        ReconstructOptions {
            redact_secrets: args.capture.redact_secrets(),
            memory_budget: args.memory.bytes(),
        },
        ModelOptions::default(),
        Box::new(identity),
    )
    .with_processes(collector.processes().clone())
    .with_detection(args.detection.options()?);
    let metadata = || {
        args.capture.recording_metadata(
            format!("agentscope {}", env!("CARGO_PKG_VERSION")),
            args.memory.bytes(),
        )
    };
    let mut recorder = match &args.record {
        Some(path) => {
            let mut options = RecorderOptions::new(path.clone(), metadata());
            options.max_file_bytes = args.record_max_size;
            options.max_files = args.record_max_files;
            let recorder = Recorder::start(options, &mut pipeline)
                .with_context(|| format!("cannot record to {}", path.display()))?;
            Some(recorder)
        }
        None => None,
    };
    mark_recording(&mut collector, &recorder);
    let mut server = match &args.serve {
        Some(path) => {
            let mut options = ServeOptions::new(path.clone(), metadata());
            options.group = args.serve_group.clone();
            options.allow_uids = args.serve_allow_uids.clone();
            options.max_consoles = args.serve_max_consoles.max(1);
            options.queue_bytes = agentscope_capture::serve::console_queue_bytes(
                pipeline.memory_budget(),
                options.max_consoles,
            );
            Some(StreamServer::bind(options, &mut pipeline)?)
        }
        None => None,
    };
    // Consoles see events within this long.
    let mut serve_timer = tokio::time::interval(Duration::from_millis(100));
    let mut flush_timer = tokio::time::interval(Duration::from_millis(250));
    if args.ready_message {
        eprintln!("agentscope: collecting");
    }
    if let Some(active) = &server {
        eprintln!(
            "agentscope: serving consoles on {}",
            active.path().display()
        );
    }
    let deadline = args
        .duration
        .map(|secs| tokio::time::Instant::now() + Duration::from_secs_f64(secs.max(0.0)));
    // Both listeners exist for the whole run: a signal that arrives while a batch is being
    // processed is kept for the next poll (a listener made afresh each turn would miss it).
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut out = StdoutPipe::new().on_close(stop_when_stdout_closes);
    let mut consumers_told = std::collections::BTreeSet::new();
    loop {
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            batch = collector.next_batch(BATCH_EVENTS) => {
                for event in batch? {
                    pipeline.push(&event);
                    serve(&mut server, &mut recorder, &event, &mut pipeline);
                    record(&mut recorder, &event, &mut pipeline);
                    if !args.quiet {
                        print_event(&mut out, &event, args.json)?;
                    }
                }
                out.flush()?;
                // While the ring buffer stays full every poll is ready at once, and tokio only
                // looks at its timers and signals when the task yields (after a coop budget
                // of ~128 batches: seconds). Yield after each batch so --duration, SIGINT and
                // SIGTERM take effect at once.
                tokio::task::yield_now().await;
            }
            _ = flush_timer.tick() => {
                // A rotated recording is a new file to mark.
                mark_recording(&mut collector, &recorder);
                for consumer in collector.consumers() {
                    if consumers_told.insert(consumer.pid) {
                        eprintln!("agentscope: {}", consumer.warning());
                    }
                }
                if let Some(active) = recorder.as_mut() {
                    active.set_collector_counters(counters(&collector.summary()));
                    if let Err(err) = active.tick(std::time::Instant::now()) {
                        stop_recording(&mut recorder, &err);
                    }
                }
            }
            _ = serve_timer.tick(), if server.is_some() => {
                if let Some(active) = server.as_mut() {
                    active.tick(std::time::Instant::now(), &pipeline, counters(&collector.summary()));
                    for message in active.take_messages() {
                        eprintln!("agentscope: {message}");
                    }
                }
            }
            _ = sleep => break,
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        }
    }
    // Stop within a second under any load: nothing more is emitted, what the ring buffer
    // holds is processed for a bounded time, the rest is counted, then everything is written.
    collector.stop_emitting();
    let drain_until = std::time::Instant::now() + STOP_DRAIN;
    loop {
        let (events, emptied) = collector.drain_until(STOP_BATCH_EVENTS, drain_until);
        for event in events {
            pipeline.push(&event);
            serve(&mut server, &mut recorder, &event, &mut pipeline);
            record(&mut recorder, &event, &mut pipeline);
            if !args.quiet {
                print_event(&mut out, &event, args.json)?;
            }
        }
        if emptied || std::time::Instant::now() >= drain_until {
            break;
        }
    }
    collector.discard_rest(STOP_DISCARD);
    pipeline.finish();
    if let Some(mut active) = server.take() {
        let answers = pipeline.take_identity_answers();
        if let Some(recording) = recorder.as_mut() {
            if let Err(err) = recording.add_identity_answers(&answers) {
                stop_recording(&mut recorder, &err);
            }
        }
        for message in active.take_messages() {
            eprintln!("agentscope: {message}");
        }
        active.finish(
            &answers,
            counters(&collector.summary()),
            "the collector stopped",
        );
    }
    if let Some(mut active) = recorder.take() {
        active.set_collector_counters(counters(&collector.summary()));
        match active.finish(&mut pipeline) {
            Ok(done) => {
                let files: Vec<String> =
                    done.files.iter().map(|f| f.display().to_string()).collect();
                eprintln!(
                    "agentscope: recorded {} events to {}",
                    done.events,
                    files.join(", ")
                );
            }
            Err(err) => eprintln!(
                "agentscope: finishing the recording failed ({err}); what was written before \
                 still reads back (`agentscope cap verify` shows where it ends)"
            ),
        }
    }
    if let Some(path) = &args.graph_json {
        let recording = agentscope_files::output_file::Inputs::new(args.record.iter());
        write_graph(path, &pipeline, &recording)?;
    }
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
    summary.memory = Some(pipeline.memory_budget().stats());
    print_summary(&mut out, &summary, args.json)?;
    out.flush()?;
    if let Some(err) = collector.last_decode_error() {
        eprintln!(
            "agentscope: {} records did not decode; last: {err}",
            summary.decode_errors
        );
    }
    collector.close();
    Ok(())
}

/// Sends an event the pipeline has just been fed to the consoles, with the identity answers
/// feeding it produced; the recorder gets the same answers (taken once for both).
fn serve(
    server: &mut Option<StreamServer>,
    recorder: &mut Option<Recorder>,
    event: &Event,
    pipeline: &mut Pipeline,
) {
    let Some(active) = server.as_mut() else {
        return;
    };
    let answers = pipeline.take_identity_answers();
    if let Some(recording) = recorder.as_mut() {
        if let Err(err) = recording.add_identity_answers(&answers) {
            stop_recording(recorder, &err);
        }
    }
    active.publish(event, &answers);
}

/// Records an event the pipeline has just been fed. A failing disk ends the recording, not
/// the collection: what was written stays readable.
fn record(recorder: &mut Option<Recorder>, event: &Event, pipeline: &mut Pipeline) {
    if let Some(active) = recorder.as_mut() {
        if let Err(err) = active.record(event, pipeline) {
            stop_recording(recorder, &err);
        }
    }
}

fn stop_recording(recorder: &mut Option<Recorder>, err: &std::io::Error) {
    if let Some(active) = recorder.take() {
        let path = active
            .current_path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        eprintln!(
            "agentscope: recording to {path} stopped: {err}. Collection goes on; the file \
             holds everything up to the last complete block (check it with `agentscope cap \
             verify {path}`)"
        );
    }
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
    out: &mut StdoutPipe<impl std::io::Write>,
    summary: &Summary,
    json: bool,
) -> std::io::Result<()> {
    if out.is_closed() {
        return write_summary(&mut std::io::stderr().lock(), summary, json);
    }
    write_summary(out, summary, json)
}

fn write_summary(
    out: &mut impl std::io::Write,
    summary: &Summary,
    json: bool,
) -> std::io::Result<()> {
    if json {
        let value = serde_json::json!({ "kind": "summary", "summary": summary });
        serde_json::to_writer(&mut *out, &value)?;
        return writeln!(out);
    }
    writeln!(
        out,
        "summary: {} events received, {} dropped by the kernel ({} payload bytes lost), {} undecodable, {} TLS targets probed",
        summary.received, summary.kernel.dropped, summary.kernel.lost_bytes, summary.decode_errors, summary.tls_targets
    )?;
    if let Some(memory) = &summary.memory {
        writeln!(
            out,
            "memory: {} KiB held at most of a {} KiB budget; over budget: {} bodies truncated, {} connections evicted, {} tool calls evicted, {} graph evictions, {} findings dropped, {} detection state sheddings",
            memory.peak_held_bytes >> 10,
            memory.budget_bytes >> 10,
            memory.bodies_truncated,
            memory.connections_evicted,
            memory.tool_calls_evicted,
            memory.graph_evictions,
            memory.findings_dropped,
            memory.detection_state_shed
        )?;
    }
    for warning in &summary.warnings {
        writeln!(out, "warning: {}", escape_controls(warning))?;
    }
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
        write_summary(&mut out, &summary, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("warning: cgroup \\x1b]0;pwned"), "{text}");
        assert!(!text.contains('\x1b'));
    }
}
