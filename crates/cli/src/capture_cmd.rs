//! `agentscope replay` (headless replay of a capture through the pipeline) and
//! `agentscope cap info|verify|slice` (inspecting, checking and cutting capture files).
//! None of them needs privileges.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use agentscope_capture::capture::{slice, CaptureEvents, CaptureReader, IndexSource};
use agentscope_files::output_file::Inputs;
use agentscope_session::recorded::{capture_session, SessionReplay};
use anyhow::{bail, Context as _};

use agentscope_console::control_chars::escape_controls;
use clap::{Args, Subcommand};

use crate::exit_status;
use crate::output_format::{write_document, OutputFormat};

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The capture to replay.
    file: PathBuf,
    #[command(flatten)]
    detection: agentscope_session::detection_args::DetectionArgs,
    #[command(flatten)]
    memory: agentscope_session::memory_args::MemoryArgs,
    #[command(flatten)]
    select: agentscope_session::selector_args::SelectorArgs,
    /// Write the agents, tool calls and graph as JSON to FILE when the replay ends (the same
    /// document `agentscope collect --graph-json` writes).
    #[arg(short = 'g', long, value_name = "FILE")]
    graph_json: Option<PathBuf>,
    /// Print events as text lines while replaying (as `agentscope collect` does). Without
    /// it or --json, only the summary is printed (on stderr).
    #[arg(long, conflicts_with = "json")]
    events: bool,
    /// Print events as JSON lines (as `agentscope collect --json`) while replaying.
    #[arg(long)]
    json: bool,
    /// Events are not printed unless asked for (--events, --json): kept so scripts that
    /// passed it still run.
    #[arg(long, hide = true, conflicts_with_all = ["events", "json"])]
    quiet: bool,
    #[command(flatten)]
    otlp: crate::otlp_args::OtlpArgs,
}

#[derive(Subcommand, Debug)]
pub enum CapCommand {
    /// Time span, events, agents, blocks and any damage of a capture.
    Info {
        /// The capture file.
        file: PathBuf,
        /// Output format: text for people, json or yaml for programs (docs/cli.md).
        #[arg(
            short = 'o',
            long = "output",
            value_name = "FORMAT",
            value_enum,
            default_value_t
        )]
        output: OutputFormat,
    },
    /// Read every block; exit 3 and name each damaged offset if any is damaged.
    Verify {
        /// The capture file.
        file: PathBuf,
    },
    /// Cut the events between two times into a new capture that replays on its own.
    Slice {
        /// The capture to cut from.
        file: PathBuf,
        /// Start: an offset from the capture's start (`+90s`, `+2m30s`) or a UTC time
        /// (`2026-11-22T10:15:00Z`). Default: the start.
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// End, in the same forms. Default: the end.
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// The new capture (never one of the inputs).
        #[arg(short = 'w', long = "write", value_name = "OUT.cap")]
        output: PathBuf,
    },
}

fn open(path: &Path) -> anyhow::Result<CaptureReader> {
    Ok(CaptureReader::open(path)?)
}

/// How long a replay's OTLP export may take to send what is queued once the replay ended.
const OTLP_REPLAY_SETTLE: std::time::Duration = std::time::Duration::from_secs(10);

pub fn run_replay(args: ReplayArgs) -> anyhow::Result<()> {
    let mut entries = CaptureEvents::open(&args.file)?;
    let session = capture_session(
        &mut entries,
        Some(&args.detection.options()?),
        args.memory.asked(),
    );
    // Named as the live run named it: the node the recording was made on.
    let node = entries
        .reader()
        .header()
        .map(|header| header.metadata.hostname.clone())
        .filter(|name| !name.is_empty());
    // A replay never puts secrets into exported content, whatever the recording kept.
    let mut otlp = match args.otlp.sink(node, false)? {
        Some((otlp, message)) => {
            eprintln!("{message}");
            Some(otlp)
        }
        None => None,
    };
    let mut replay = SessionReplay::new(entries, session);
    let mut out = crate::stdout_pipe::StdoutPipe::new();
    let print = args.events || args.json;
    let mut printer = crate::event_output::EventPrinter::new(args.json);
    let selector = args.select.selector();
    let mut events = 0u64;
    while let Some((event, _)) = replay.next_step(&mut otlp)? {
        if let Some(event) = event {
            events += 1;
            let pipeline = replay.session().pipeline();
            if print
                && selector.selects_process(
                    pipeline.model(),
                    pipeline.processes(),
                    event.header.pid,
                    event.header.ts_ns,
                )
            {
                printer.print(&mut out, &event)?;
            }
        }
        // The reader left (`replay --json | head`): stop, unless the graph JSON needs the rest.
        if out.is_closed() && args.graph_json.is_none() {
            return Ok(());
        }
    }
    out.flush()?;
    if let Some(otlp) = &mut otlp {
        // A replay is not in a hurry: what is queued gets the exporter's retries.
        let counts = otlp.settle(std::time::Instant::now() + OTLP_REPLAY_SETTLE);
        if let Some(message) = otlp.take_message() {
            eprintln!("agentscope: {message}");
        }
        eprintln!(
            "agentscope: OTLP export: {} spans and {} log records exported, {} spans and {} \
             log records dropped",
            counts.spans_exported, counts.logs_exported, counts.spans_dropped, counts.logs_dropped
        );
    }
    let pipeline = replay.session().pipeline();
    if let Some(path) = &args.graph_json {
        crate::event_output::write_graph(path, pipeline, &Inputs::new([&args.file]), &selector)?;
    }
    // The same counts as `cap info` and `cap verify`: events replayed, then every damaged
    // place (what opening found, then what reading the blocks found); agents, calls,
    // findings and incidents of the selected agents.
    let snapshot = selector.apply(pipeline.snapshot());
    let (llm_calls, tool_calls) = if selector.is_all() {
        (snapshot.stats.llm_calls, snapshot.stats.tool_calls)
    } else {
        snapshot.agents.iter().fold((0, 0), |(llm, tools), agent| {
            (llm + agent.llm_calls, tools + agent.tool_calls)
        })
    };
    eprintln!(
        "agentscope: replayed {events} events of {} (agents {}, LLM calls {}, tool calls {}, \
         findings {}, incidents {})",
        args.file.display(),
        snapshot.agents.len(),
        llm_calls,
        tool_calls,
        snapshot.findings.len(),
        snapshot.incidents.len()
    );
    let reader = replay.entries().reader();
    if reader.cut_short() {
        eprintln!(
            "agentscope: warning: {} was cut short (no index trailer); the events before the \
             cut were replayed",
            args.file.display()
        );
    }
    let keyframes = reader.damaged_keyframes();
    if keyframes > 0 {
        eprintln!(
            "agentscope: warning: {keyframes} damaged keyframe(s) in {}: state they held \
             (processes, identities, agents) may be missing from the replay",
            args.file.display()
        );
    }
    for warning in pipeline.identity_warnings() {
        eprintln!("agentscope: warning: {}", escape_controls(&warning));
    }
    let mut damage = replay.entries().damage().to_vec();
    damage.sort_by_key(|d| d.offset);
    damage.dedup_by_key(|d| d.offset);
    for damage in damage {
        eprintln!(
            "agentscope: damaged, skipped: {}",
            escape_controls(&damage.to_string())
        );
    }
    Ok(())
}

pub fn run_cap(command: CapCommand) -> anyhow::Result<u8> {
    match command {
        CapCommand::Info { file, output } => {
            info(&file, output, &mut std::io::stdout().lock()).map(|()| exit_status::OK)
        }
        CapCommand::Verify { file } => verify(&file).map(|intact| {
            if intact {
                exit_status::OK
            } else {
                exit_status::FOUND
            }
        }),
        CapCommand::Slice {
            file,
            from,
            to,
            output,
        } => cut(&file, from.as_deref(), to.as_deref(), &output).map(|()| exit_status::OK),
    }
}

fn format_time(unix_ns: u64) -> String {
    if unix_ns == 0 {
        return "-".into();
    }
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(unix_ns);
    humantime::format_rfc3339_millis(time).to_string()
}

fn info(path: &Path, format: OutputFormat, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let reader = open(path)?;
    let damage = reader.verify();
    let events: Vec<_> = reader.event_blocks().collect();
    let first = events.iter().find(|b| b.event_count > 0);
    let last_ts = events.iter().map(|b| b.last_ts_ns).max().unwrap_or(0);
    let first_ts = first.map_or(0, |b| b.first_ts_ns);
    let boot = first.map_or(0, |b| b.first_time_unix_ns.saturating_sub(b.first_ts_ns));
    let event_count: u64 = events.iter().map(|b| b.event_count as u64).sum();
    let keyframes = reader.keyframe_blocks().count();
    // The last readable keyframe holds the agent registry as the recording ended.
    let last_keyframe = reader.last_keyframe();
    let agents: Vec<serde_json::Value> = last_keyframe
        .as_ref()
        .map(|(_, k)| {
            k.pipeline
                .agents
                .iter()
                .map(|a| {
                    serde_json::json!({
                        "key": a.key,
                        "llm_calls": a.llm_calls,
                        "tool_calls": a.tool_calls,
                        "pod": a.identity.pod,
                        "service_account": a.identity.service_account,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let header = reader.header();
    let summary = serde_json::json!({
        "file": path.display().to_string(),
        "bytes": reader.file_len(),
        "format": header.map(|h| format!("{}.{}", h.major, h.minor)),
        "metadata": header.map(|h| &h.metadata),
        "first_time": format_time(boot + first_ts),
        "last_time": format_time(if last_ts > 0 { boot + last_ts } else { 0 }),
        "duration_s": (last_ts.saturating_sub(first_ts)) as f64 / 1e9,
        "events": event_count,
        "totals": reader.totals(),
        "blocks": {
            "events": events.len(),
            "keyframes": keyframes,
        },
        "bytes_per_event": if event_count > 0 { reader.file_len() as f64 / event_count as f64 } else { 0.0 },
        "index": reader.index_source(),
        "agents": agents,
        "collector": last_keyframe.as_ref().map(|(_, k)| k.collector),
        "damage": damage,
    });
    if format != OutputFormat::Text {
        return write_document(out, format, &summary);
    }
    writeln!(
        out,
        "file        {} ({} bytes)",
        escape_controls(&path.display().to_string()),
        reader.file_len()
    )?;
    if let Some(h) = header {
        writeln!(
            out,
            "format      {}.{}, written by {} on {}",
            h.major,
            h.minor,
            escape_controls(&h.metadata.created_by),
            escape_controls(&h.metadata.hostname)
        )?;
        writeln!(
            out,
            "secrets     {}",
            if h.metadata.secrets_redacted {
                "redacted while recording"
            } else {
                "KEPT (recorded with --keep-secrets): handle this file as a credential"
            }
        )?;
    }
    writeln!(
        out,
        "time        {} .. {} ({:.3} s)",
        summary["first_time"].as_str().unwrap_or("-"),
        summary["last_time"].as_str().unwrap_or("-"),
        summary["duration_s"].as_f64().unwrap_or(0.0)
    )?;
    writeln!(
        out,
        "events      {event_count} ({:.1} bytes per event in the file)",
        summary["bytes_per_event"].as_f64().unwrap_or(0.0)
    )?;
    if let Some(totals) = reader.totals() {
        let kinds: Vec<String> = totals
            .events_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        writeln!(out, "            {}", kinds.join(", "))?;
        writeln!(
            out,
            "            {} payload bytes; the collector lost {} records and {} payload bytes",
            totals.payload_bytes, totals.kernel_dropped, totals.kernel_lost_bytes
        )?;
    }
    writeln!(
        out,
        "blocks      {} event chunks, {keyframes} keyframes; index {}",
        events.len(),
        match reader.index_source() {
            IndexSource::Trailer => "from the trailer",
            IndexSource::Scan => "rebuilt by scanning (no trailer)",
        }
    )?;
    writeln!(out, "agents      {}", agents.len())?;
    for agent in &agents {
        writeln!(
            out,
            "            {} ({} LLM calls, {} tool calls)",
            escape_controls(agent["key"].as_str().unwrap_or("?")),
            agent["llm_calls"],
            agent["tool_calls"]
        )?;
    }
    if damage.is_empty() {
        writeln!(out, "damage      none")?;
    } else {
        writeln!(out, "damage      {} places:", damage.len())?;
        for d in &damage {
            writeln!(out, "            {}", escape_controls(&d.to_string()))?;
        }
    }
    Ok(())
}

fn verify(path: &Path) -> anyhow::Result<bool> {
    let reader = open(path)?;
    let damage = reader.verify();
    let blocks = reader.blocks().len();
    let events: u64 = reader.event_blocks().map(|b| b.event_count as u64).sum();
    let mut report = Vec::new();
    if damage.is_empty() {
        writeln!(
            report,
            "{}: ok ({blocks} blocks, {events} events, index from the trailer)",
            path.display()
        )?;
    } else {
        writeln!(
            report,
            "{}: DAMAGED in {} places ({blocks} intact blocks, {events} events recovered):",
            path.display(),
            damage.len()
        )?;
        for d in &damage {
            writeln!(report, "  {d}")?;
        }
    }
    // The verdict is the exit status; a reader that left early does not change it.
    match std::io::stdout().lock().write_all(&report) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => return Err(err.into()),
        _ => {}
    }
    Ok(damage.is_empty())
}

/// A time argument as monotonic ns of the capture: `+DURATION` from its first event, or an
/// RFC 3339 UTC time.
fn parse_time(text: &str, first_ts: u64, boot_unix_ns: u64) -> anyhow::Result<u64> {
    if let Some(offset) = text.strip_prefix('+') {
        let offset = humantime::parse_duration(offset)
            .with_context(|| format!("\"{text}\": expected an offset like +90s or +2m30s"))?;
        return Ok(first_ts.saturating_add(offset.as_nanos() as u64));
    }
    let time = humantime::parse_rfc3339_weak(text).with_context(|| {
        format!("\"{text}\": expected +OFFSET (+90s) or a UTC time (2026-11-22T10:15:00Z)")
    })?;
    let unix = time
        .duration_since(std::time::UNIX_EPOCH)
        .context("times before 1970 are not in any capture")?
        .as_nanos() as u64;
    Ok(unix.saturating_sub(boot_unix_ns))
}

fn cut(path: &Path, from: Option<&str>, to: Option<&str>, output: &Path) -> anyhow::Result<()> {
    let reader = open(path)?;
    let first = reader
        .event_blocks()
        .find(|b| b.event_count > 0)
        .copied()
        .context("the capture holds no events")?;
    let boot = first.first_time_unix_ns.saturating_sub(first.first_ts_ns);
    let from_ts = match from {
        Some(text) => parse_time(text, first.first_ts_ns, boot)?,
        None => 0,
    };
    let to_ts = match to {
        Some(text) => parse_time(text, first.first_ts_ns, boot)?,
        None => u64::MAX,
    };
    if to_ts < from_ts {
        bail!("--to is before --from");
    }
    let summary = slice::slice(reader, from_ts, to_ts, output, &Inputs::new([path]))
        .with_context(|| format!("cannot write {}", output.display()))?;
    eprintln!(
        "agentscope: wrote {} events (from event {} of the original) to {}",
        summary.recording.events,
        summary.first_event_index,
        output.display()
    );
    for damage in &summary.damage {
        eprintln!("agentscope: damaged in the original, skipped: {damage}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentscope_analysis::model::{HostOnlyIdentity, ModelOptions};
    use agentscope_analysis::pipeline::Pipeline;
    use agentscope_capture::capture::{CaptureMetadata, Recorder, RecorderOptions};
    use agentscope_event::event_json::events_from_json_lines;
    use agentscope_reconstruct::ReconstructOptions;

    /// A capture whose host name and agent carry terminal escapes.
    fn hostile_capture(path: &Path) {
        let fixture =
            Path::new(env!("AGENTSCOPE_REPO")).join("tests/fixtures/capture/python_chat.jsonl");
        let text = std::fs::read_to_string(fixture)
            .unwrap()
            .replace("\"comm\":\"python3\"", "\"comm\":\"py\\u001b[2J\"");
        let mut pipeline = Pipeline::new(
            ReconstructOptions::default(),
            ModelOptions::default(),
            Box::new(HostOnlyIdentity),
        );
        let metadata = CaptureMetadata {
            hostname: "node\x1b]0;pwned\x07".into(),
            ..CaptureMetadata::default()
        };
        let options = RecorderOptions::new(path.to_path_buf(), metadata);
        let mut recorder = Recorder::start(options, &mut pipeline).unwrap();
        for event in events_from_json_lines(&text).unwrap() {
            pipeline.push(&event);
            recorder.record(&event, &mut pipeline).unwrap();
        }
        pipeline.finish();
        recorder.finish(&mut pipeline).unwrap();
    }

    #[test]
    fn info_text_escapes_what_the_capture_names() {
        let dir = tempfile::tempdir().unwrap();
        let cap = dir.path().join("hostile\x1b[1m.cap");
        hostile_capture(&cap);
        let mut out = Vec::new();
        info(&cap, OutputFormat::Text, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
        assert!(text.contains("node\\x1b]0;pwned\\x07"), "{text}");
        assert!(text.contains("hostile\\x1b[1m.cap"), "{text}");
        assert!(text.contains("py\\x1b[2J"), "{text}");
        // JSON stays JSON: serde_json escapes the same characters its own way.
        let mut out = Vec::new();
        info(&cap, OutputFormat::Json, &mut out).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["metadata"]["hostname"], "node\x1b]0;pwned\x07");
        // YAML too: the same document, its escapes, no raw control character on the terminal.
        let mut out = Vec::new();
        info(&cap, OutputFormat::Yaml, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
        let yaml: serde_json::Value = serde_norway::from_str(&text).unwrap();
        assert_eq!(yaml, value, "YAML and JSON are the same document");
    }
}
