//! `agentscope coverage`: per process that talks TLS, its servers (SNI) and whether agentscope
//! sees its plaintext, how (which library, which method) or why not; then per process whose
//! payloads the kernel left out (plain sockets of no protocol agentscope reads,
//! `--no-payloads-of`, connections sampled out by `--sample-connections`), how many bytes.
//! Runs the live collector for `--duration` seconds, or reads a recording (`--replay
//! FILE.cap`); either way the events go through the one session step, and the tables are the
//! model's (`tls_coverage` and `payloads_left_out` in the graph JSON).

use std::io::Write as _;
use std::path::PathBuf;

use agentscope_analysis::model::{ProcessPayloadsLeftOut, ProcessTlsCoverage};
use agentscope_analysis::pipeline::Pipeline;
use agentscope_capture::capture::CaptureEvents;
use agentscope_console::control_chars::escape_controls;
use agentscope_session::recorded::{capture_session, SessionReplay};
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
    /// Processes whose payloads the kernel left out, most bytes first; left out when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    payloads_left_out: Vec<ProcessPayloadsLeftOut>,
    /// Connections whose connect or accept said the kernel sampled them out; left out when
    /// none.
    #[serde(skip_serializing_if = "agentscope_reconstruct::reconstructor::is_zero")]
    connections_sampled_out: u64,
}

#[derive(Serialize)]
struct CoverageRow {
    #[serde(flatten)]
    process: ProcessTlsCoverage,
    plaintext_seen: bool,
    /// `seen via ...` or `plaintext not visible: <why>`.
    verdict: String,
}

pub fn run(args: CoverageArgs) -> anyhow::Result<()> {
    let report = match &args.replay {
        Some(path) => {
            let mut entries = CaptureEvents::open(path)?;
            let session = capture_session(&mut entries, None, args.memory.asked());
            let mut replay = SessionReplay::new(entries, session);
            while replay.next_step(&mut ())?.is_some() {}
            report_of(replay.session().pipeline())
        }
        None => report_of(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(crate::live_session::collect(
                    &args.capture,
                    &args.memory,
                    args.duration,
                    args.ready_message,
                    &mut (),
                    None,
                ))?
                .pipeline(),
        ),
    };
    let mut out = crate::stdout_pipe::StdoutPipe::new();
    match args.output {
        OutputFormat::Json | OutputFormat::Yaml => write_document(&mut out, args.output, &report)?,
        OutputFormat::Text => {
            print_table(&mut out, &report.processes)?;
            print_left_out(&mut out, &report.payloads_left_out)?;
            if report.connections_sampled_out > 0 {
                writeln!(
                    out,
                    "\n{} connections sampled out (--sample-connections): their connects are in \
                     this capture, their payloads are not",
                    report.connections_sampled_out
                )?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn report_of(pipeline: &Pipeline) -> CoverageReport {
    let snapshot = pipeline.model().snapshot(None);
    CoverageReport {
        schema: "agentscope.coverage/v1",
        processes: snapshot
            .tls_coverage
            .into_iter()
            .map(|process| CoverageRow {
                plaintext_seen: process.plaintext_seen(),
                verdict: process.describe(),
                process,
            })
            .collect(),
        payloads_left_out: snapshot.payloads_left_out,
        connections_sampled_out: pipeline.reconstruct_stats().connections_sampled_out,
    }
}

/// The processes whose payloads the kernel counted instead of copying, after the TLS table;
/// the program last, as it is the one column of any length.
fn print_left_out(
    out: &mut impl std::io::Write,
    processes: &[ProcessPayloadsLeftOut],
) -> std::io::Result<()> {
    if processes.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\npayloads the kernel left out (counted, not copied: not in this capture)"
    )?;
    writeln!(
        out,
        "{:>7}  {:>14}  {:>14}  {:>14}  {:<15}  PROGRAM",
        "PID", "OPAQUE SOCKETS", "ON REQUEST", "SAMPLED OUT", "UNTIL"
    )?;
    for process in processes {
        // Programs are the traced processes' choice: no raw controls.
        let line = format!(
            "{:>7}  {:>14}  {:>14}  {:>14}  {:<15}  {}",
            process.pid,
            bytes(process.opaque_socket_bytes),
            bytes(process.on_request_bytes),
            bytes(process.sampled_out_bytes),
            if process.running {
                "capture stopped"
            } else {
                "it exited"
            },
            process.program,
        );
        writeln!(out, "{}", escape_controls(&line))?;
    }
    Ok(())
}

/// `N bytes`, or `-` for none.
fn bytes(count: u64) -> String {
    if count == 0 {
        "-".to_string()
    } else {
        format!("{count} bytes")
    }
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
