//! `agentscope posture`: per agent, what it may do against what it was seen doing (issue 19,
//! docs/posture.md). The observed side comes from a recording (`--replay FILE.cap`) or from
//! collecting live for `--duration` seconds, through the one session step; the declared side
//! from Kubernetes objects (`--cluster FILE`: `kubectl get -o json|yaml` output, or
//! `--cluster-from-api`), else from the last snapshot of them the collector recorded in the
//! session (its `cluster_objects` events). The gaps,
//! their evidence and risk scores are computed by `agentscope_analysis::posture`;
//! `--write-artifacts DIR` writes the least-privilege RBAC, the NetworkPolicy and the
//! baseline enforcement section each agent would need.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use agentscope_analysis::posture::report::{self, PostureReport};
use agentscope_analysis::posture::{agent_posture, ClusterState, Usage, UsageBook};
use agentscope_capture::capture::CaptureEvents;
use agentscope_files::input_file;
use agentscope_files::output_file::{self, Inputs};
use agentscope_session::recorded::{capture_session, SessionReplay};
use agentscope_session::Session;
use anyhow::{bail, Context as _};
use clap::Args;

use crate::output_format::{write_document, OutputFormat};

#[derive(Args, Debug)]
pub struct PostureArgs {
    #[command(flatten)]
    pub capture: agentscope_session::CaptureArgs,
    /// Compare what the agents did in this recording.
    #[arg(long, value_name = "FILE.cap", required_unless_present = "duration")]
    replay: Option<PathBuf>,
    /// Collect for this many seconds (needs root), then report.
    #[arg(long, value_name = "SECS", conflicts_with = "replay")]
    duration: Option<f64>,
    /// Kubernetes objects that declare what the agents may do: pods, namespaces,
    /// ServiceAccounts, Roles, ClusterRoles, their bindings, NetworkPolicies, as
    /// `kubectl get -o json` or `-o yaml` writes them (a List or YAML documents).
    #[arg(long, value_name = "FILE")]
    cluster: Option<PathBuf>,
    /// Read the cluster objects from the Kubernetes API (in-cluster, --kubeconfig, or
    /// KUBECONFIG), in addition to any --cluster file.
    #[arg(long)]
    cluster_from_api: bool,
    /// Only this agent (its key, as `agentscope tui` and the graph JSON show it).
    #[arg(long, value_name = "KEY")]
    agent: Option<String>,
    /// Write each agent's generated artifacts into this directory: least-privilege RBAC,
    /// NetworkPolicy and the baseline enforcement section (never over an input).
    #[arg(long, value_name = "DIR")]
    write_artifacts: Option<PathBuf>,
    /// Output format: text for people, json or yaml for programs (docs/cli.md).
    #[arg(
        short = 'o',
        long = "output",
        value_name = "FORMAT",
        value_enum,
        default_value_t
    )]
    output: OutputFormat,
    /// Write a line to stderr once the probes are attached (with --duration).
    #[arg(long)]
    ready_message: bool,
    #[command(flatten)]
    pub memory: agentscope_session::memory_args::MemoryArgs,
}

pub fn run(args: PostureArgs) -> anyhow::Result<()> {
    let mut cluster = match &args.cluster {
        Some(path) => {
            let bytes = input_file::read_regular(path, "cluster objects")?;
            let text = String::from_utf8(bytes)
                .with_context(|| format!("{}: not UTF-8 text", path.display()))?;
            Some(
                ClusterState::parse(&text)
                    .with_context(|| format!("reading cluster objects from {}", path.display()))?,
            )
        }
        None => None,
    };
    if args.cluster_from_api {
        let source = args.capture.identity_options().kubernetes;
        let objects = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(async {
                let Some(client) = agentscope_identity::kube_client(&source).await? else {
                    bail!("--cluster-from-api needs the Kubernetes API: drop --no-kubernetes");
                };
                Ok(agentscope_identity::declared_objects::read_declared_objects(&client).await?)
            })?;
        let state = cluster.get_or_insert_with(ClusterState::default);
        for object in objects {
            state
                .add(object)
                .context("reading cluster objects from the API")?;
        }
    }
    let explicit = cluster.as_ref().map(|state| {
        let mut from: Vec<String> = args
            .cluster
            .iter()
            .map(|path| format!("--cluster {}", path.display()))
            .collect();
        if args.cluster_from_api {
            from.push("the Kubernetes API now (--cluster-from-api)".to_string());
        }
        (state, from.join(" and "))
    });
    let mut usage = UsageBook::default();
    let report = match &args.replay {
        Some(path) => {
            let mut entries = CaptureEvents::open(path)?;
            let session = capture_session(&mut entries, None, args.memory.asked());
            let mut replay = SessionReplay::new(entries, session);
            while replay.next_step(&mut usage)?.is_some() {}
            usage.or_pipeline_cluster(replay.session().pipeline());
            build_report(
                replay.session(),
                &usage,
                explicit.clone(),
                args.agent.as_deref(),
            )?
        }
        None => {
            let session = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(crate::live_session::collect(
                    &args.capture,
                    &args.memory,
                    args.duration,
                    args.ready_message,
                    &mut usage,
                    None,
                ))?;
            usage.or_pipeline_cluster(session.pipeline());
            build_report(&session, &usage, explicit.clone(), args.agent.as_deref())?
        }
    };
    if let Some(dir) = &args.write_artifacts {
        let inputs: Vec<&Path> = args
            .replay
            .iter()
            .chain(args.cluster.iter())
            .map(PathBuf::as_path)
            .collect();
        write_artifacts(dir, &report, &Inputs::new(inputs))?;
    }
    let mut out = crate::stdout_pipe::StdoutPipe::new();
    match args.output {
        OutputFormat::Json | OutputFormat::Yaml => write_document(&mut out, args.output, &report)?,
        OutputFormat::Text => out.write_all(report::text(&report).as_bytes())?,
    }
    out.flush()?;
    Ok(())
}

/// The posture of every agent the session knows (or of `only`). The declared side is the
/// `explicit` one (`--cluster`, `--cluster-from-api`) when given, else the last snapshot of
/// the cluster's objects the collector put in the session.
fn build_report(
    session: &Session,
    usage: &UsageBook,
    explicit: Option<(&ClusterState, String)>,
    only: Option<&str>,
) -> anyhow::Result<PostureReport> {
    let (cluster, declared) = match (explicit, &usage.cluster) {
        (Some((state, from)), _) => (Some(state), from),
        (None, Some(recorded)) => (Some(&*recorded.state), recorded.describe()),
        (None, None) => (
            None,
            "none (no --cluster or --cluster-from-api, and the session holds no cluster \
             objects read by the collector): RBAC, network policy and secrets not compared"
                .to_string(),
        ),
    };
    let model = session.pipeline().model();
    if let Some(key) = only {
        if model.agent(key).is_none() {
            let known: Vec<&str> = model.agents().map(|a| a.key.as_str()).collect();
            bail!(
                "no agent {key:?} was seen; agents seen: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
    }
    let empty = Usage::default();
    let agents = model
        .agents()
        .filter(|agent| only.is_none_or(|key| agent.key == key))
        .map(|agent| agent_posture(agent, usage.agent(&agent.key).unwrap_or(&empty), cluster))
        .collect();
    Ok(PostureReport {
        schema: report::SCHEMA,
        declared,
        agents,
    })
}

/// A file name for an agent key: its characters that are not `[A-Za-z0-9._-]` as `_`, and a
/// hash of the whole key so two keys never share a file.
fn file_stem(key: &str) -> String {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    let mut stem: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    stem.push_str(&format!("-{:08x}", hasher.finish() as u32));
    stem
}

/// Writes `DIR/<agent>.rbac.yaml`, `.networkpolicy.yaml` and `.enforcement.yaml` for each
/// agent that has them (YAML documents `kubectl apply -f` reads).
fn write_artifacts(dir: &Path, report: &PostureReport, inputs: &Inputs) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for agent in &report.agents {
        let stem = file_stem(&agent.agent);
        let artifacts = &agent.artifacts;
        let mut files: Vec<(String, String)> = Vec::new();
        if !artifacts.rbac.is_empty() {
            let mut text = String::new();
            for document in &artifacts.rbac {
                text.push_str("---\n");
                text.push_str(&serde_norway::to_string(document)?);
            }
            files.push((format!("{stem}.rbac.yaml"), text));
        }
        if let Some(policy) = &artifacts.network_policy {
            files.push((
                format!("{stem}.networkpolicy.yaml"),
                serde_norway::to_string(policy)?,
            ));
        }
        if let Some(enforcement) = &artifacts.enforcement {
            let section = serde_json::json!({ "enforcement": enforcement });
            files.push((
                format!("{stem}.enforcement.yaml"),
                format!(
                    "# The baseline enforcement section for {} (docs/enforcement.md): paste it\n\
                     # into the agent's approved baseline, or promote the baseline with\n\
                     # `agentscope baseline promote --network audit`.\n{}",
                    agent.agent.replace(['\n', '\r'], "?"),
                    serde_norway::to_string(&section)?
                ),
            ));
        }
        for (name, text) in files {
            let path = dir.join(name);
            output_file::write_atomically(&path, inputs, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}
