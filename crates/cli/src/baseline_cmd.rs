//! `agentscope baseline`: export an agent's learned baseline from recorded events, compare
//! two baselines, check recorded events against approved baselines, and promote an approved
//! baseline to a policy the kernel enforces (docs/baseline.md, docs/enforcement.md).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};

use agentscope_analysis::baseline::{
    self, kubescape, learn_from_feed, AgentBaseline, LearnerOptions, LossCounts, ReplayOptions,
    ReplayOutcome,
};
use agentscope_analysis::model::HostOnlyIdentity;
use agentscope_analysis::pipeline::Pipeline;
use agentscope_capture::capture::{CaptureEvents, CaptureReader};
use agentscope_event::event_json::{events_from_json_lines, json_lines_text};
use agentscope_files::input_file;
use agentscope_files::output_file::{self, Inputs};
use agentscope_session::recorded::{capture_session, EventList, SessionReplay};
use agentscope_session::Session;

use crate::exit_status;
use crate::output_format::OutputFormat;

#[derive(Args)]
pub struct BaselineArgs {
    #[command(subcommand)]
    command: BaselineCommand,
}

#[derive(Subcommand)]
enum BaselineCommand {
    /// Learn baselines from recorded events and write one agent's.
    Export(ExportArgs),
    /// Compare two baseline files: exit 0 when their entries are the same, 1 when not.
    Diff(DiffArgs),
    /// Judge recorded events against approved baselines and print the deviations
    /// (exit 0 when there are none, 1 when there are).
    Check(CheckArgs),
    /// Make a baseline a policy: set its enforcement modes (off, audit, enforce) per category,
    /// deriving what is allowed from what it learned, and bump its revision. Refuses a baseline
    /// that is partial or still learning, or that holds evidence of an incident.
    Promote(PromoteArgs),
    /// Merge the AgentObservations every node wrote for a workload (`collect
    /// --baseline-store kubernetes`) into a candidate baseline per agent, for review.
    Candidate(crate::baseline_cluster_cmd::CandidateArgs),
    /// Write a workload's candidate (merged afresh, or a reviewed file) as its agents'
    /// AgentBaselines, locked: every collector with --baseline-store kubernetes judges the
    /// agents against them from then on.
    Approve(crate::baseline_cluster_cmd::ApproveArgs),
    /// Print the CustomResourceDefinitions of AgentBaseline and AgentObservation
    /// (deploy/crds/crds.yaml).
    Crds,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Off,
    Audit,
    Enforce,
}

impl From<ModeArg> for baseline::EnforceMode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Off => baseline::EnforceMode::Off,
            ModeArg::Audit => baseline::EnforceMode::Audit,
            ModeArg::Enforce => baseline::EnforceMode::Enforce,
        }
    }
}

#[derive(Args)]
#[group(id = "promote_output", required = true, multiple = false)]
struct PromoteOutput {
    /// Where to write the promoted baseline (never over the input; `-` is standard output).
    #[arg(short = 'w', long = "write", alias = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace FILE itself (atomically; the revision says it changed).
    #[arg(long)]
    in_place: bool,
}

#[derive(Args)]
struct PromoteArgs {
    /// The baseline (an AgentBaseline YAML file).
    file: PathBuf,
    /// Network connections and datagrams (connect, sendto/sendmsg).
    #[arg(long, value_enum, value_name = "MODE")]
    network: Option<ModeArg>,
    /// Executables run (not enforced by the kernel yet: the mode is recorded).
    #[arg(long, value_enum, value_name = "MODE")]
    exec: Option<ModeArg>,
    /// Sensitive files opened (not enforced by the kernel yet: the mode is recorded).
    #[arg(long, value_enum, value_name = "MODE")]
    files: Option<ModeArg>,
    #[command(flatten)]
    output: PromoteOutput,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// agentscope's own document (apiVersion agentscope.dev/v1, kind AgentBaseline).
    Agentscope,
    /// A Kubescape ApplicationProfile (spdx.softwarecomposition.kubescape.io/v1beta1).
    Kubescape,
}

#[derive(Args)]
#[group(required = true, multiple = false, id = "input")]
struct EventInput {
    /// A capture (`agentscope collect --record`): replayed with the identities it recorded.
    #[arg(long = "capture", alias = "from", value_name = "FILE.cap")]
    capture: Option<PathBuf>,
    /// Events as JSON lines (`agentscope collect --json` output); `-` reads standard input.
    #[arg(long, value_name = "FILE.jsonl")]
    events: Option<PathBuf>,
}

#[derive(Args)]
struct EventSource {
    #[command(flatten)]
    input: EventInput,
    /// Learning period in seconds, from each agent's first observation (event time).
    #[arg(long, value_name = "SECS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    learning_period: u64,
}

#[derive(Args)]
struct ExportArgs {
    /// The agent key (`<workload>:<program>`); without it, the agents found are listed.
    #[arg(long, value_name = "KEY")]
    agent: Option<String>,
    #[command(flatten)]
    source: EventSource,
    /// Where to write (never over one of the inputs); `-` is standard output.
    #[arg(short = 'w', long = "write", alias = "output", value_name = "FILE")]
    output: PathBuf,
    /// Which document to write.
    #[arg(long, value_enum, default_value_t = ExportFormat::Agentscope)]
    format: ExportFormat,
}

#[derive(Args)]
struct DiffArgs {
    /// The baseline before (an AgentBaseline YAML file).
    old: PathBuf,
    /// The baseline after.
    new: PathBuf,
    /// Output format: text for people, json or yaml for programs (docs/cli.md).
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FORMAT",
        value_enum,
        default_value_t
    )]
    output: OutputFormat,
}

#[derive(Args)]
struct CheckArgs {
    /// Directory of approved baselines (`*.yaml`, one per agent).
    #[arg(long, value_name = "DIR")]
    baseline: PathBuf,
    #[command(flatten)]
    source: EventSource,
    /// Output format: text for people; json is one JSON object per deviation (JSON lines),
    /// yaml a list of them.
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FORMAT",
        value_enum,
        default_value_t
    )]
    output: OutputFormat,
}

/// Runs the subcommand: its exit status (differences and deviations are
/// [`exit_status::FOUND`]); errors go back to `main`, which reports them.
pub fn run(args: BaselineArgs) -> Result<u8> {
    match args.command {
        BaselineCommand::Export(args) => export(args),
        BaselineCommand::Diff(args) => diff(args),
        BaselineCommand::Check(args) => check(args),
        BaselineCommand::Promote(args) => promote(args),
        BaselineCommand::Candidate(args) => crate::baseline_cluster_cmd::candidate(args),
        BaselineCommand::Approve(args) => crate::baseline_cluster_cmd::approve(args),
        BaselineCommand::Crds => crate::baseline_cluster_cmd::crds(),
    }
}

fn read_input(path: &Path) -> Result<String> {
    let bytes = if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading standard input")?;
        bytes
    } else {
        input_file::read_regular(path, "a JSON-lines event file")?
    };
    let text = json_lines_text(&bytes).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.to_string())
}

/// Kernel drops reported by the summary line of `collect --json` (its time is unknown).
fn kernel_loss(text: &str) -> LossCounts {
    let mut loss = LossCounts::default();
    for line in text.lines().filter(|l| l.contains("\"summary\"")) {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if value["kind"] == "summary" {
            let kernel = &value["summary"]["kernel"];
            loss.dropped_events += kernel["dropped"].as_u64().unwrap_or(0);
            loss.gap_bytes += kernel["lost_bytes"].as_u64().unwrap_or(0);
        }
    }
    loss
}

/// The one function every event source goes through: events in, baselines (and deviations
/// against `approved`) out.
fn replay(source: &EventSource, approved: Vec<AgentBaseline>) -> Result<ReplayOutcome> {
    let options = ReplayOptions {
        learner: LearnerOptions::default().with_learning_period_seconds(source.learning_period),
        approved,
        ..Default::default()
    };
    if let Some(path) = &source.input.capture {
        let mut entries = CaptureEvents::open(path)?;
        let session = capture_session(&mut entries, None, None);
        let loss = capture_loss(entries.reader());
        let mut outcome = learn_from_feed(SessionReplay::new(entries, session), options);
        outcome.judge.note_loss(None, loss);
        return Ok(outcome);
    }
    let path = source.input.events.as_deref().unwrap_or(Path::new("-"));
    let text = read_input(path)?;
    let events = events_from_json_lines(&text)
        .with_context(|| format!("reading events from {}", path.display()))?;
    // Identity from the events alone: every process is on the host.
    let session = Session::new(Pipeline::new(
        options.reconstruct.clone(),
        options.model.clone(),
        Box::new(HostOnlyIdentity),
    ));
    let feed = SessionReplay::new(EventList(events.into_iter()), session);
    let mut outcome = learn_from_feed(feed, options);
    outcome.judge.note_loss(None, kernel_loss(&text));
    Ok(outcome)
}

/// What the collector lost while recording, from the capture's trailer or last keyframe.
fn capture_loss(reader: &CaptureReader) -> LossCounts {
    let (dropped, lost) = match reader.totals() {
        Some(t) => (t.kernel_dropped, t.kernel_lost_bytes),
        None => reader.last_keyframe().map_or((0, 0), |(_, k)| {
            (k.collector.kernel_dropped, k.collector.kernel_lost_bytes)
        }),
    };
    LossCounts {
        dropped_events: dropped,
        gap_bytes: lost,
    }
}

impl EventSource {
    fn name(&self) -> String {
        self.input
            .capture
            .as_ref()
            .or(self.input.events.as_ref())
            .map_or("-".into(), |p| p.display().to_string())
    }
}

/// Writes `text` to `path` (`-`: standard output) as every output file is written: 0600,
/// whole or not at all, never over one of `inputs` (collector's output_file).
fn write_output(path: &Path, text: &str, inputs: &Inputs) -> Result<()> {
    if path == Path::new("-") {
        // A reader that left early (`| head`) does not change the verdict (the exit status).
        match std::io::stdout().lock().write_all(text.as_bytes()) {
            Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other.context("writing standard output"),
        }
    } else {
        output_file::write_atomically(path, inputs, text.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

fn export(args: ExportArgs) -> Result<u8> {
    let outcome = replay(&args.source, Vec::new())?;
    let agents: Vec<&str> = outcome.learner().agents().collect();
    let Some(agent) = &args.agent else {
        if agents.is_empty() {
            bail!("no agent found in {}", args.source.name());
        }
        bail!(
            "say which agent with --agent; agents found:\n  {}",
            agents.join("\n  ")
        );
    };
    let Some(baseline) = outcome.learner().baseline(agent) else {
        bail!(
            "no agent \"{agent}\" in {}; agents found:\n  {}",
            args.source.name(),
            if agents.is_empty() {
                "(none)".to_string()
            } else {
                agents.join("\n  ")
            }
        );
    };
    let text = match args.format {
        ExportFormat::Agentscope => baseline.to_yaml(),
        ExportFormat::Kubescape => kubescape::application_profile(&baseline).to_yaml(),
    };
    let inputs = Inputs::new(
        [&args.source.input.capture, &args.source.input.events]
            .into_iter()
            .flatten(),
    );
    write_output(&args.output, &text, &inputs)?;
    eprintln!(
        "agentscope baseline: {} ({}, {} observations, {} entries)",
        agentscope_console::control_chars::escape_controls(agent),
        serde_json::to_value(baseline.metadata.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        baseline.metadata.observations,
        baseline.spec.len()
    );
    Ok(exit_status::OK)
}

fn diff(args: DiffArgs) -> Result<u8> {
    let old = AgentBaseline::read_from(&args.old)?;
    let new = AgentBaseline::read_from(&args.new)?;
    let diff = baseline::diff(&old, &new);
    let text = match args.output {
        OutputFormat::Json => format!("{}\n", diff.to_json()),
        OutputFormat::Yaml => serde_norway::to_string(&diff.to_json())?,
        // Entries name paths, hosts and tools the agents chose.
        OutputFormat::Text => {
            agentscope_console::control_chars::escape_controls_keeping_lines(&diff.to_text())
        }
    };
    write_output(Path::new("-"), &text, &Inputs::none())?;
    Ok(if diff.is_empty() {
        exit_status::OK
    } else {
        exit_status::FOUND
    })
}

fn check(args: CheckArgs) -> Result<u8> {
    let loaded = baseline::load_baseline_dir_revisions(&args.baseline)?;
    for set_aside in &loaded.set_aside {
        eprintln!("agentscope: baseline {set_aside}");
    }
    let approved = loaded.baselines;
    if approved.is_empty() {
        bail!("no baselines in {}", args.baseline.display());
    }
    let outcome = replay(&args.source, approved.into_values().collect())?;
    let mut out = String::new();
    match args.output {
        OutputFormat::Json => {
            for deviation in &outcome.deviations {
                out.push_str(&serde_json::to_string(deviation)?);
                out.push('\n');
            }
        }
        OutputFormat::Yaml => out = serde_norway::to_string(&outcome.deviations)?,
        OutputFormat::Text => {
            for deviation in &outcome.deviations {
                out.push_str(&format!(
                    "{} {}: {} [{}] events {}\n",
                    deviation.agent,
                    serde_json::to_value(deviation.category)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    deviation.item,
                    deviation
                        .labels
                        .iter()
                        .map(|l| l.id)
                        .collect::<Vec<_>>()
                        .join(","),
                    deviation
                        .events
                        .iter()
                        .map(|r| format!("{}-{}", r.first, r.last))
                        .collect::<Vec<_>>()
                        .join(",")
                ));
            }
            // Deviations name paths, hosts and tools the agents chose.
            out = agentscope_console::control_chars::escape_controls_keeping_lines(&out);
        }
    }
    write_output(Path::new("-"), &out, &Inputs::none())?;
    eprintln!(
        "agentscope baseline: {} deviations from {} events",
        outcome.deviations.len(),
        outcome.events
    );
    Ok(if outcome.deviations.is_empty() {
        exit_status::OK
    } else {
        exit_status::FOUND
    })
}

fn promote(args: PromoteArgs) -> Result<u8> {
    let before = AgentBaseline::read_from(&args.file)?;
    let after = baseline::promote(
        &before,
        baseline::PromoteRequest {
            network: args.network.map(Into::into),
            exec: args.exec.map(Into::into),
            files: args.files.map(Into::into),
        },
    )
    .with_context(|| format!("cannot promote {}", args.file.display()))?;
    let text = after.to_yaml();
    match (&args.output.output, args.output.in_place) {
        (_, true) => output_file::write_atomically(&args.file, &Inputs::none(), text.as_bytes())
            .with_context(|| format!("cannot write {}", args.file.display()))?,
        (Some(path), false) => write_output(path, &text, &Inputs::new([&args.file]))?,
        // clap's group requires one of them.
        (None, false) => bail!("say where to write: -w FILE or --in-place"),
    }
    if let Some(policy) = &after.enforcement {
        eprintln!(
            "agentscope baseline: {} rev {}: network {}, exec {}, files {} ({} destinations, {} executables, {} sensitive files allowed)",
            agentscope_console::control_chars::escape_controls(&after.metadata.agent),
            policy.revision,
            policy.network.name(),
            policy.exec.name(),
            policy.files.name(),
            policy.allow.network.len(),
            policy.allow.executables.len(),
            policy.allow.files.len(),
        );
    }
    Ok(exit_status::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("AGENTSCOPE_REPO"))
            .join("tests/fixtures")
            .join(name)
    }

    fn source(events: PathBuf) -> EventSource {
        EventSource {
            input: EventInput {
                capture: None,
                events: Some(events),
            },
            learning_period: 600,
        }
    }

    fn export_to(
        dir: &Path,
        events: &str,
        agent: Option<&str>,
        format: ExportFormat,
    ) -> Result<PathBuf> {
        let output = dir.join(format!("{}.yaml", events.replace('/', "_")));
        export(ExportArgs {
            agent: agent.map(str::to_string),
            source: source(fixture(events)),
            output: output.clone(),
            format,
        })?;
        Ok(output)
    }

    #[test]
    fn export_diff_and_check_work_on_captured_events() {
        let dir = tempfile::tempdir().unwrap();
        let stdio = export_to(
            dir.path(),
            "mcp/stdio-pipe-events.jsonl",
            Some("host:python"),
            ExportFormat::Agentscope,
        )
        .unwrap();
        let http = export_to(
            dir.path(),
            "mcp/http-socket-events.jsonl",
            Some("host:python"),
            ExportFormat::Agentscope,
        )
        .unwrap();
        let baseline = AgentBaseline::read_from(&stdio).unwrap();
        assert!(baseline.spec.mcp_servers.contains_key("python"));

        let same = diff(DiffArgs {
            old: stdio.clone(),
            new: stdio.clone(),
            output: OutputFormat::Text,
        })
        .unwrap();
        assert_eq!(same, exit_status::OK);
        let changed = diff(DiffArgs {
            old: stdio.clone(),
            new: http.clone(),
            output: OutputFormat::Json,
        })
        .unwrap();
        assert_eq!(changed, exit_status::FOUND);

        let approved = dir.path().join("approved");
        std::fs::create_dir(&approved).unwrap();
        std::fs::copy(
            &stdio,
            approved.join(baseline::file_name_for("host:python")),
        )
        .unwrap();
        let quiet = check(CheckArgs {
            baseline: approved.clone(),
            source: source(fixture("mcp/stdio-pipe-events.jsonl")),
            output: OutputFormat::Json,
        })
        .unwrap();
        assert_eq!(quiet, exit_status::OK);
        let noisy = check(CheckArgs {
            baseline: approved,
            source: source(fixture("mcp/http-socket-events.jsonl")),
            output: OutputFormat::Json,
        })
        .unwrap();
        assert_eq!(noisy, exit_status::FOUND);

        let profile = export_to(
            dir.path(),
            "capture/python_chat_stream.jsonl",
            Some("host:python"),
            ExportFormat::Kubescape,
        )
        .unwrap();
        let text = std::fs::read_to_string(profile).unwrap();
        assert!(text.starts_with("apiVersion: spdx.softwarecomposition.kubescape.io/v1beta1\nkind: ApplicationProfile\n"), "{text}");
    }

    /// Records events through the real recorder, as `collect --record` does.
    fn record_capture(events: &str, path: &Path) {
        use agentscope_analysis::model::{HostOnlyIdentity, ModelOptions};
        use agentscope_analysis::pipeline::Pipeline;
        use agentscope_capture::capture::{CaptureMetadata, Recorder, RecorderOptions};
        use agentscope_reconstruct::ReconstructOptions;
        let text = std::fs::read_to_string(fixture(events)).unwrap();
        let mut pipeline = Pipeline::new(
            ReconstructOptions::default(),
            ModelOptions::default(),
            Box::new(HostOnlyIdentity),
        );
        let options = RecorderOptions::new(path.to_path_buf(), CaptureMetadata::default());
        let mut recorder = Recorder::start(options, &mut pipeline).unwrap();
        for event in events_from_json_lines(&text).unwrap() {
            pipeline.push(&event);
            recorder.record(&event, &mut pipeline).unwrap();
        }
        pipeline.finish();
        recorder.finish(&mut pipeline).unwrap();
    }

    #[test]
    fn a_capture_gives_the_same_baseline_as_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let cap = dir.path().join("stdio.cap");
        record_capture("mcp/stdio-pipe-events.jsonl", &cap);
        let from_events = export_to(
            dir.path(),
            "mcp/stdio-pipe-events.jsonl",
            Some("host:python"),
            ExportFormat::Agentscope,
        )
        .unwrap();
        let from_capture = dir.path().join("from-capture.yaml");
        export(ExportArgs {
            agent: Some("host:python".into()),
            source: EventSource {
                input: EventInput {
                    capture: Some(cap),
                    events: None,
                },
                learning_period: 600,
            },
            output: from_capture.clone(),
            format: ExportFormat::Agentscope,
        })
        .unwrap();
        let same = diff(DiffArgs {
            old: from_events,
            new: from_capture,
            output: OutputFormat::Text,
        })
        .unwrap();
        assert_eq!(same, exit_status::OK);
    }

    #[test]
    fn export_names_the_agents_when_the_key_is_missing_or_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let err = export_to(
            dir.path(),
            "mcp/stdio-pipe-events.jsonl",
            None,
            ExportFormat::Agentscope,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("agents found:\n  host:python"),
            "{err}"
        );
        let err = export_to(
            dir.path(),
            "mcp/stdio-pipe-events.jsonl",
            Some("host:nope"),
            ExportFormat::Agentscope,
        )
        .unwrap_err();
        assert!(err.to_string().contains("no agent \"host:nope\""), "{err}");
        let err = export_to(
            dir.path(),
            "no/such.jsonl",
            Some("host:python"),
            ExportFormat::Agentscope,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("cannot read"), "{err:#}");
        let bad = dir.path().join("bad.jsonl");
        std::fs::write(&bad, "{\"kind\":\"exec\"}\n").unwrap();
        let err = export(ExportArgs {
            agent: None,
            source: source(bad),
            output: dir.path().join("x"),
            format: ExportFormat::Agentscope,
        })
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("not an agentscope event"),
            "{err:#}"
        );
    }

    fn promote_args(file: &Path, network: ModeArg, output: Option<PathBuf>) -> PromoteArgs {
        PromoteArgs {
            file: file.to_path_buf(),
            network: Some(network),
            exec: None,
            files: None,
            output: PromoteOutput {
                in_place: output.is_none(),
                output,
            },
        }
    }

    /// Exports the support agent's baseline from a committed recording, learning for one
    /// second (the recordings' sessions are shorter, and the recording goes on).
    fn export_recording(dir: &Path, name: &str) -> PathBuf {
        let output = dir.join(format!("{name}.yaml"));
        export(ExportArgs {
            agent: Some(
                "k8s:support/Deployment/support-agent/agent:python incident_agent.py".into(),
            ),
            source: EventSource {
                input: EventInput {
                    capture: Some(
                        Path::new(env!("AGENTSCOPE_REPO")).join(format!("recordings/{name}.cap")),
                    ),
                    events: None,
                },
                learning_period: 1,
            },
            output: output.clone(),
            format: ExportFormat::Agentscope,
        })
        .unwrap();
        output
    }

    #[test]
    fn promote_derives_a_policy_and_bumps_its_revision() {
        let dir = tempfile::tempdir().unwrap();
        let ordinary = export_recording(dir.path(), "ordinary");
        let learned = AgentBaseline::read_from(&ordinary).unwrap();
        assert_eq!(learned.metadata.status, baseline::BaselineStatus::Complete);
        assert!(learned.metadata.incidents.is_empty());
        assert!(learned.enforcement.is_none());

        let audit = dir.path().join("audit.yaml");
        promote(promote_args(&ordinary, ModeArg::Audit, Some(audit.clone()))).unwrap();
        let policy = AgentBaseline::read_from(&audit).unwrap();
        let enforcement = policy.enforcement.clone().unwrap();
        assert_eq!(enforcement.revision, 1);
        assert_eq!(enforcement.network, baseline::EnforceMode::Audit);
        assert_eq!(enforcement.exec, baseline::EnforceMode::Off);
        // Every learned IP destination is allowed, on its port, for TCP and UDP.
        let destinations: Vec<String> = enforcement
            .allow
            .network
            .iter()
            .map(|rule| format!("{}:{}", rule.address, rule.port))
            .collect();
        let learned_addresses: Vec<String> = learned
            .spec
            .egress
            .addresses
            .iter()
            .filter(|a| !a.starts_with("unix:"))
            .cloned()
            .collect();
        assert!(!learned_addresses.is_empty());
        assert_eq!(destinations, learned_addresses);
        assert_eq!(
            enforcement.allow.executables,
            learned.spec.executables.keys().cloned().collect()
        );
        // The spec is unchanged; the input file too.
        assert_eq!(policy.spec, learned.spec);
        assert_eq!(AgentBaseline::read_from(&ordinary).unwrap(), learned);

        // In place: revision 2, the allow-list kept, the new mode.
        promote(promote_args(&audit, ModeArg::Enforce, None)).unwrap();
        let again = AgentBaseline::read_from(&audit)
            .unwrap()
            .enforcement
            .unwrap();
        assert_eq!(again.revision, 2);
        assert_eq!(again.network, baseline::EnforceMode::Enforce);
        assert_eq!(again.allow, enforcement.allow);

        // Never over its input through -w.
        let err = promote(promote_args(&audit, ModeArg::Audit, Some(audit.clone()))).unwrap_err();
        assert!(
            format!("{err:#}").contains("refusing to overwrite an input"),
            "{err:#}"
        );
    }

    #[test]
    fn promote_refuses_incidents_partial_and_unfinished_baselines() {
        let dir = tempfile::tempdir().unwrap();
        // The injected session's baseline learned the attack: detection's incident is in it.
        let injected = export_recording(dir.path(), "injected");
        let learned = AgentBaseline::read_from(&injected).unwrap();
        assert_eq!(
            learned.metadata.incidents.len(),
            1,
            "{:?}",
            learned.metadata
        );
        assert!(learned.metadata.incidents[0].starts_with("inc-1: prompt injection"));
        let out = dir.path().join("policy.yaml");
        let err =
            promote(promote_args(&injected, ModeArg::Enforce, Some(out.clone()))).unwrap_err();
        assert!(
            format!("{err:#}").contains("evidence of an open incident (inc-1: "),
            "{err:#}"
        );
        assert!(!out.exists());

        let ordinary = AgentBaseline::read_from(&export_recording(dir.path(), "ordinary")).unwrap();
        let mut partial = ordinary.clone();
        partial.metadata.status = baseline::BaselineStatus::Partial;
        partial.metadata.loss.dropped_events = 7;
        let mut learning = ordinary;
        learning.metadata.status = baseline::BaselineStatus::Learning;
        for (doc, reason) in [
            (partial, "is partial: 7 events dropped while learning"),
            (
                learning,
                "is still learning: its learning period has not ended",
            ),
        ] {
            let file = dir.path().join("doc.yaml");
            doc.write_to(&file).unwrap();
            let err = promote(promote_args(&file, ModeArg::Audit, Some(out.clone()))).unwrap_err();
            assert!(format!("{err:#}").contains(reason), "{err:#}");
            assert!(!out.exists());
        }
    }

    #[test]
    fn summary_drops_count_as_loss() {
        let loss = kernel_loss("{\"kind\":\"summary\",\"summary\":{\"kernel\":{\"dropped\":3,\"lost_bytes\":10}}}\n{\"kind\":\"exit\"}");
        assert_eq!((loss.dropped_events, loss.gap_bytes), (3, 10));
        assert!(kernel_loss("").is_empty());
    }
}
