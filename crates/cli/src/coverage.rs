//! `agentscope coverage`: per process that talks TLS, its servers (SNI) and whether agentscope
//! sees its plaintext, how (which library, which method) or why not. Runs the live collector
//! for `--duration` seconds, or reads a recording (`--replay FILE.cap`); either way the events
//! go through the one session step ([`Session`]), and the table is the model's (`tls_coverage`
//! in the graph JSON).

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use agentscope_analysis::model::ProcessTlsCoverage;
use agentscope_analysis::pipeline::Pipeline;
use agentscope_capture::capture::CaptureEvents;
use agentscope_console::control_chars::escape_controls;
use agentscope_identity::IdentityResolver;
use agentscope_kernel::Collector;
use agentscope_session::recorded::{capture_session, SessionReplay};
use agentscope_session::{Session, Sink, SourceLosses};
use clap::Args;

use crate::output_format::{write_document, OutputFormat};
use serde::Serialize;

#[derive(Args, Debug)]
pub struct CoverageArgs {
    #[command(flatten)]
    pub capture: agentscope_session::CaptureArgs,
    /// Collect for this many seconds, then report.
    #[arg(long, value_name = "SECS", required_unless_present = "replay")]
    duration: Option<f64>,
    /// Report on a recording instead of collecting.
    #[arg(long, value_name = "FILE.cap", conflicts_with = "duration")]
    replay: Option<PathBuf>,
    /// Output format: text for people, json or yaml for programs (docs/cli.md).
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FORMAT",
        value_enum,
        default_value_t
    )]
    output: OutputFormat,
    /// Write a line to stderr once the probes are attached (tests and scripts wait for it).
    #[arg(long)]
    ready_message: bool,
    #[command(flatten)]
    pub memory: agentscope_session::memory_args::MemoryArgs,
}

/// The JSON document `coverage -o json` prints.
#[derive(Serialize)]
struct CoverageReport {
    schema: &'static str,
    processes: Vec<CoverageRow>,
}

#[derive(Serialize)]
struct CoverageRow {
    #[serde(flatten)]
    process: ProcessTlsCoverage,
    plaintext_seen: bool,
    /// `seen via ...` or `plaintext not visible: <why>`.
    verdict: String,
}

/// Events read from the ring buffer at a time.
const BATCH_EVENTS: usize = 1024;

pub fn run(args: CoverageArgs) -> anyhow::Result<()> {
    let rows = match &args.replay {
        Some(path) => {
            let mut entries = CaptureEvents::open(path)?;
            let session = capture_session(&mut entries, None, args.memory.asked());
            let mut replay = SessionReplay::new(entries, session);
            while replay.next_step(&mut ())?.is_some() {}
            rows_of(replay.session().pipeline())
        }
        None => rows_of(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(collect_into(
                    &args.capture,
                    &args.memory,
                    args.duration.unwrap_or(0.0),
                    args.ready_message,
                    &mut (),
                ))?
                .pipeline(),
        ),
    };
    let mut out = crate::stdout_pipe::StdoutPipe::new();
    match args.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            let report = CoverageReport {
                schema: "agentscope.coverage/v1",
                processes: rows,
            };
            write_document(&mut out, args.output, &report)?;
        }
        OutputFormat::Text => print_table(&mut out, &rows)?,
    }
    out.flush()?;
    Ok(())
}

fn rows_of(pipeline: &Pipeline) -> Vec<CoverageRow> {
    pipeline
        .model()
        .snapshot(None)
        .tls_coverage
        .into_iter()
        .map(|process| CoverageRow {
            plaintext_seen: process.plaintext_seen(),
            verdict: process.describe(),
            process,
        })
        .collect()
}

fn print_table(out: &mut impl std::io::Write, rows: &[CoverageRow]) -> std::io::Result<()> {
    if rows.is_empty() {
        return writeln!(out, "no TLS connection seen");
    }
    writeln!(
        out,
        "{:>7}  {:<32}  {:<32}  {:<9}  how / why not",
        "PID", "PROGRAM", "TLS PEERS (SNI)", "PLAINTEXT"
    )?;
    for row in rows {
        let p = &row.process;
        let peers: Vec<&str> = p.peers.iter().map(String::as_str).collect();
        // Programs and server names are the traced processes' choice: no raw controls.
        let line = format!(
            "{:>7}  {:<32}  {:<32}  {:<9}  {}",
            p.pid,
            p.program,
            peers.join(","),
            if row.plaintext_seen {
                "seen"
            } else {
                "NOT SEEN"
            },
            row.verdict
        );
        writeln!(out, "{}", escape_controls(&line))?;
    }
    Ok(())
}

/// Runs the collector for `duration` seconds (or until SIGINT/SIGTERM), hands every step to
/// `sink`, and returns the session every event went through (`agentscope posture` collects the
/// same way).
pub(crate) async fn collect_into(
    capture: &agentscope_session::CaptureArgs,
    memory: &agentscope_session::memory_args::MemoryArgs,
    duration: f64,
    ready_message: bool,
    sink: &mut impl Sink,
) -> anyhow::Result<Session> {
    let mut collector = Collector::start(capture.collector_options())?;
    let mut identity = IdentityResolver::new(capture.identity_options());
    identity.start().await?;
    let pipeline = capture.live_pipeline(memory.bytes(), identity, collector.processes().clone());
    let mut session = Session::new(pipeline);
    if ready_message {
        eprintln!("agentscope: collecting");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(duration.max(0.0));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    loop {
        tokio::select! {
            batch = collector.next_batch(BATCH_EVENTS) => {
                for event in batch? {
                    session.feed_into(&event, sink)?;
                }
                // As in `collect`: let timers and signals be seen under a full ring buffer.
                tokio::task::yield_now().await;
            }
            _ = tokio::time::sleep_until(deadline) => break,
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        }
    }
    collector.stop_emitting();
    let until = std::time::Instant::now() + Duration::from_millis(200);
    loop {
        let (events, emptied) = collector.drain_until(BATCH_EVENTS, until);
        for event in events {
            session.feed_into(&event, sink)?;
        }
        if emptied || std::time::Instant::now() >= until {
            break;
        }
    }
    collector.discard_rest(Duration::from_millis(100));
    let summary = collector.summary();
    session.note_losses_into(
        SourceLosses {
            kernel_dropped: summary.kernel.dropped,
            channel_dropped: 0,
            decode_errors: summary.decode_errors,
        },
        sink,
    )?;
    session.finish_into(sink)?;
    for warning in summary.warnings {
        eprintln!("agentscope: warning: {}", escape_controls(&warning));
    }
    collector.close();
    Ok(session)
}
