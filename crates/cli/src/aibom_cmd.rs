//! `agentscope aibom`: each agent's AI bill of materials (models and providers, MCP servers and
//! their tools, tools offered to models, APIs and data stores it reached, frameworks, and the
//! packages its processes loaded with the versions the collector read from their metadata),
//! from a live run (`--duration`, or until SIGINT/SIGTERM) or a recording (`--replay`): text,
//! JSON or YAML (the model's `aibom`, docs/graph.md), or a CycloneDX 1.6 document
//! (`-o cyclonedx`, docs/aibom.md). A replay of a recording gives the document the live run
//! gave: the versions travel in the recording as `package` events.

use std::io::Write as _;
use std::path::PathBuf;

use agentscope_analysis::cyclonedx::{aibom_document, Producer};
use agentscope_analysis::model::{ActorIdentity, Agent, AiBom};
use agentscope_capture::capture::CaptureEvents;
use agentscope_console::control_chars::escape_controls;
use agentscope_session::recorded::{capture_session, SessionReplay};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::output_format::{write_document, OutputFormat};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum AibomFormat {
    /// For people.
    #[default]
    Text,
    /// The agents' AI-BOMs as agentscope models them (`agentscope.aibom/v1`).
    Json,
    /// The same document as YAML.
    Yaml,
    /// A CycloneDX 1.6 JSON document.
    Cyclonedx,
}

#[derive(Args, Debug)]
pub struct AibomArgs {
    #[command(flatten)]
    pub capture: agentscope_session::CaptureArgs,
    #[command(flatten)]
    pub selector: agentscope_session::selector_args::SelectorArgs,
    /// Collect for this many seconds (or until SIGINT/SIGTERM), then report.
    #[arg(long, value_name = "SECS", required_unless_present = "replay")]
    duration: Option<f64>,
    /// Report on a recording instead of collecting.
    #[arg(long, value_name = "FILE.cap", conflicts_with = "duration")]
    replay: Option<PathBuf>,
    /// Also record what was collected to FILE.cap: `aibom --replay` of it gives the same
    /// report, and it holds the evidence (the package events, the identities) it was made
    /// from.
    #[arg(long, value_name = "FILE.cap", conflicts_with = "replay")]
    record: Option<PathBuf>,
    /// Output format: text for people, json or yaml for programs (docs/cli.md), cyclonedx for
    /// a CycloneDX 1.6 JSON document (docs/aibom.md).
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FORMAT",
        value_enum,
        default_value_t
    )]
    output: AibomFormat,
    /// Write a line to stderr once the probes are attached (tests and scripts wait for it).
    #[arg(long)]
    ready_message: bool,
    #[command(flatten)]
    pub memory: agentscope_session::memory_args::MemoryArgs,
}

/// The JSON document `aibom -o json` prints.
#[derive(Serialize)]
struct AibomReport<'a> {
    schema: &'static str,
    agents: Vec<AgentBom<'a>>,
}

#[derive(Serialize)]
struct AgentBom<'a> {
    key: &'a str,
    name: &'a str,
    program: &'a str,
    identity: &'a ActorIdentity,
    aibom: &'a AiBom,
}

pub fn run(args: AibomArgs) -> anyhow::Result<()> {
    let snapshot = match &args.replay {
        Some(path) => {
            let mut entries = CaptureEvents::open(path)?;
            let session = capture_session(&mut entries, None, args.memory.asked());
            let mut replay = SessionReplay::new(entries, session);
            while replay.next_step(&mut ())?.is_some() {}
            replay.session().pipeline().model().snapshot(None)
        }
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(crate::live_session::collect(
                &args.capture,
                &args.memory,
                args.duration,
                args.ready_message,
                &mut (),
                args.record.as_deref(),
            ))?
            .pipeline()
            .model()
            .snapshot(None),
    };
    let selector = args.selector.selector();
    let agents: Vec<&Agent> = snapshot
        .agents
        .iter()
        .filter(|agent| selector.matches(agent))
        .collect();
    if agents.is_empty() && selector.agent.is_some() {
        anyhow::bail!(
            "no agent matches --agent {} (agents seen: {})",
            escape_controls(selector.agent.as_deref().unwrap_or_default()),
            escape_controls(
                &snapshot
                    .agents
                    .iter()
                    .map(|a| a.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        );
    }
    let mut out = crate::stdout_pipe::StdoutPipe::new();
    match args.output {
        AibomFormat::Cyclonedx => {
            let document = aibom_document(
                &agents,
                &snapshot.graph,
                &Producer {
                    name: "agentscope",
                    version: env!("CARGO_PKG_VERSION"),
                },
            );
            write_document(&mut out, OutputFormat::Json, &document)?;
        }
        AibomFormat::Json | AibomFormat::Yaml => {
            let report = AibomReport {
                schema: "agentscope.aibom/v1",
                agents: agents
                    .iter()
                    .map(|agent| AgentBom {
                        key: &agent.key,
                        name: &agent.name,
                        program: &agent.program,
                        identity: &agent.identity,
                        aibom: &agent.aibom,
                    })
                    .collect(),
            };
            let format = if args.output == AibomFormat::Json {
                OutputFormat::Json
            } else {
                OutputFormat::Yaml
            };
            write_document(&mut out, format, &report)?;
        }
        AibomFormat::Text => print_text(&mut out, &agents)?,
    }
    out.flush()?;
    Ok(())
}

fn print_text(out: &mut impl std::io::Write, agents: &[&Agent]) -> std::io::Result<()> {
    if agents.is_empty() {
        return writeln!(out, "no agent seen");
    }
    // Everything below comes from the traced processes: no raw controls reach the terminal.
    let line = |out: &mut dyn std::io::Write, text: String| -> std::io::Result<()> {
        writeln!(out, "{}", escape_controls(&text))
    };
    for (index, agent) in agents.iter().enumerate() {
        if index > 0 {
            writeln!(out)?;
        }
        let bom = &agent.aibom;
        line(out, format!("AGENT {}", agent.key))?;
        line(out, format!("  program   {}", agent.program))?;
        if let Some(why) = &agent.plaintext_not_visible {
            line(out, format!("  {why}"))?;
        }
        for (provider, models) in &bom.providers {
            if models.is_empty() {
                line(out, format!("  model     ({provider}, model not seen)"))?;
            }
            for model in models {
                line(out, format!("  model     {model} ({provider})"))?;
            }
        }
        for package in bom.packages.values() {
            line(out, format!("  package   {}", package.describe()))?;
        }
        for framework in &bom.frameworks {
            line(out, format!("  framework {framework}"))?;
        }
        for server in bom.mcp_servers.values() {
            let version = server.version.as_deref().unwrap_or("");
            line(
                out,
                format!(
                    "  mcp       {} {version} ({} {})",
                    server.name,
                    server.transport,
                    server.endpoint.as_deref().unwrap_or_default()
                ),
            )?;
            for tool in server.tools.keys() {
                line(out, format!("    tool    {tool}"))?;
            }
        }
        for tool in bom.tools_offered.keys() {
            line(out, format!("  tool      {tool} (offered to the model)"))?;
        }
        for source in &bom.retrieval_sources {
            line(out, format!("  retrieval {source}"))?;
        }
    }
    Ok(())
}
