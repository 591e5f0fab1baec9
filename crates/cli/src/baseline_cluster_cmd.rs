//! `agentscope baseline candidate | approve | crds`: baselines across nodes with Kubernetes as
//! the store. `candidate` merges the AgentObservations every node's collector wrote for a
//! workload into one candidate baseline per agent; `approve` writes it (or a reviewed copy) as
//! the agent's AgentBaseline, locked, for every collector to judge against; `crds` prints the
//! CustomResourceDefinitions (deploy/crds/crds.yaml). docs/baseline.md, "Across nodes".

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use agentscope_analysis::baseline::custom_resources::{
    agent_hash, baseline_name, candidate_from_observations, crd_yaml, AgentBaselineResource,
    AgentBaselineSpec, AgentObservationResource, BaselineMode, WorkloadContainer, AGENT_LABEL,
    APPROVE_FIELD_MANAGER,
};
use agentscope_analysis::baseline::{AgentBaseline, BaselineStatus};
use agentscope_files::output_file::{self, Inputs};
use agentscope_identity::KubernetesSource;

use crate::exit_status;

#[derive(Args)]
pub struct ClusterArgs {
    /// Kubeconfig of the cluster (default: in-cluster configuration, else $KUBECONFIG or
    /// ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// The workload: NAMESPACE/KIND/NAME (`support/Deployment/support-agent`).
    #[arg(long, value_name = "NAMESPACE/KIND/NAME")]
    workload: String,
    /// Only the agents of this container of the workload.
    #[arg(long, value_name = "NAME")]
    container: Option<String>,
}

#[derive(Args)]
pub struct CandidateArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Write the candidates (a YAML stream, one AgentBaseline document per agent) to FILE
    /// instead of standard output.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    /// Judge the agent against the approved entries.
    Detect,
    /// Keep the entries for reference; collectors judge the agent as without them.
    Learn,
}

#[derive(Args)]
pub struct ApproveArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Approve these reviewed candidates (written by `baseline candidate`, entries removed
    /// as needed) instead of merging the observations afresh.
    #[arg(long = "from", value_name = "FILE")]
    from: Option<PathBuf>,
    /// How collectors use the approved baseline.
    #[arg(long, value_enum, default_value = "detect")]
    mode: ModeArg,
    /// Replace an approved baseline that is locked.
    #[arg(long)]
    unlock: bool,
    /// Leave the approved baseline unlocked (a later approval may replace it).
    #[arg(long)]
    no_lock: bool,
    /// Approve a candidate that is still learning or partial (events lost while learning).
    #[arg(long)]
    allow_incomplete: bool,
    /// Approve a candidate learned while incidents were raised (an attack learned as normal).
    #[arg(long)]
    allow_incidents: bool,
    /// Take over fields another field manager owns (server-side apply's force).
    #[arg(long)]
    force_conflicts: bool,
    /// Who approves (default: $USER).
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
}

async fn client(args: &ClusterArgs) -> Result<Client> {
    let source = match &args.kubeconfig {
        Some(path) => KubernetesSource::Kubeconfig(path.clone()),
        None => KubernetesSource::Infer,
    };
    agentscope_identity::kube_client(&source)
        .await?
        .context("no Kubernetes API configured")
}

/// `NAMESPACE/KIND/NAME` split, every part present.
fn workload_parts(workload: &str) -> Result<(&str, &str, &str)> {
    let mut parts = workload.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(ns), Some(kind), Some(name), None)
            if !ns.is_empty() && !kind.is_empty() && !name.is_empty() =>
        {
            Ok((ns, kind, name))
        }
        _ => bail!("--workload {workload:?}: expected NAMESPACE/KIND/NAME (support/Deployment/support-agent)"),
    }
}

fn matches(args: &ClusterArgs, workload: &WorkloadContainer) -> bool {
    workload.workload() == args.workload
        && args
            .container
            .as_deref()
            .is_none_or(|c| c == workload.container)
}

/// The merged candidate of every agent of the workload, with the nodes it came from.
async fn candidates(
    client: &Client,
    args: &ClusterArgs,
) -> Result<BTreeMap<String, (AgentBaseline, Vec<String>)>> {
    let (namespace, _, _) = workload_parts(&args.workload)?;
    let api: Api<AgentObservationResource> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&Default::default())
        .await
        .with_context(|| format!("listing AgentObservations in namespace {namespace}"))?;
    let observations: Vec<_> = list
        .items
        .into_iter()
        .map(|o| o.spec)
        .filter(|o| matches(args, &o.workload))
        .collect();
    let mut out = BTreeMap::new();
    for agent in observations.iter().map(|o| o.agent.clone()) {
        if out.contains_key(&agent) {
            continue;
        }
        if let Some(candidate) = candidate_from_observations(&agent, &observations) {
            out.insert(agent, candidate);
        }
    }
    if out.is_empty() {
        bail!(
            "no AgentObservation of {} in namespace {namespace}: are the collectors running \
             with --baseline-store kubernetes, and has the workload's agent done anything yet?",
            args.workload
        );
    }
    Ok(out)
}

fn yaml_stream(documents: impl IntoIterator<Item = AgentBaseline>) -> String {
    documents
        .into_iter()
        .map(|d| format!("---\n{}", d.to_yaml()))
        .collect()
}

pub fn candidate(args: CandidateArgs) -> Result<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let candidates = runtime.block_on(async {
        let client = client(&args.cluster).await?;
        candidates(&client, &args.cluster).await
    })?;
    for (agent, (candidate, nodes)) in &candidates {
        eprintln!(
            "agentscope: {agent}: {} entries from {} ({})",
            candidate.spec.len(),
            nodes.join(", "),
            status_name(candidate.metadata.status)
        );
    }
    let text = yaml_stream(candidates.into_values().map(|(c, _)| c));
    match &args.output {
        Some(path) => output_file::write_atomically(path, &Inputs::none(), text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(exit_status::OK)
}

fn status_name(status: BaselineStatus) -> &'static str {
    match status {
        BaselineStatus::Learning => "learning",
        BaselineStatus::Complete => "complete",
        BaselineStatus::Partial => "partial",
    }
}

/// Reads reviewed candidates: a YAML stream of AgentBaseline documents.
fn read_candidates(path: &PathBuf) -> Result<Vec<AgentBaseline>> {
    use serde::Deserialize as _;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (index, document) in serde_norway::Deserializer::from_str(&text).enumerate() {
        let context = format!("{} (document {})", path.display(), index + 1);
        let value = serde_norway::Value::deserialize(document)
            .with_context(|| format!("{context}: not YAML"))?;
        if value.is_null() {
            continue;
        }
        // Through the document reader, which checks apiVersion and kind first.
        let document = serde_norway::to_string(&value).unwrap_or_default();
        out.push(AgentBaseline::from_yaml(&document, &context)?);
    }
    if out.is_empty() {
        bail!("{}: no baseline document", path.display());
    }
    Ok(out)
}

pub fn approve(args: ApproveArgs) -> Result<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(approve_async(args))
}

async fn approve_async(args: ApproveArgs) -> Result<u8> {
    let client = client(&args.cluster).await?;
    let (namespace, _, _) = workload_parts(&args.cluster.workload)?;
    let merged = match (&args.from, candidates(&client, &args.cluster).await) {
        (_, Ok(merged)) => merged,
        // A reviewed file stands on its own; it just names no nodes.
        (Some(_), Err(error)) => {
            eprintln!("agentscope: {error:#}; the approved baselines name no nodes");
            BTreeMap::new()
        }
        (None, Err(error)) => return Err(error),
    };
    let chosen: Vec<(AgentBaseline, Vec<String>)> = match &args.from {
        Some(path) => read_candidates(path)?
            .into_iter()
            .map(|document| {
                let nodes = merged
                    .get(&document.metadata.agent)
                    .map(|(_, nodes)| nodes.clone())
                    .unwrap_or_default();
                (document, nodes)
            })
            .collect(),
        None => merged.into_values().collect(),
    };
    let api: Api<AgentBaselineResource> = Api::namespaced(client, namespace);
    let by = args
        .by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    for (candidate, nodes) in chosen {
        let agent = candidate.metadata.agent.clone();
        let Some(workload) = WorkloadContainer::from_agent_key(&agent) else {
            bail!("{agent}: not an agent of a Kubernetes workload");
        };
        if !matches(&args.cluster, &workload) {
            bail!("{agent} is not an agent of {}", args.cluster.workload);
        }
        if !args.allow_incidents && !candidate.metadata.incidents.is_empty() {
            bail!(
                "{agent}: the candidate was learned while incidents were raised ({}): what it \
                 holds may include an attack; review it, or pass --allow-incidents",
                candidate.metadata.incidents.join("; ")
            );
        }
        if !args.allow_incomplete && candidate.metadata.status != BaselineStatus::Complete {
            bail!(
                "{agent}: the candidate is {} (some node is still learning, or lost events \
                 while learning); wait, or pass --allow-incomplete",
                status_name(candidate.metadata.status)
            );
        }
        let name = baseline_name(&workload, &agent);
        let existing = api
            .get_opt(&name)
            .await
            .with_context(|| format!("reading AgentBaseline {namespace}/{name}"))?;
        if let Some(existing) = &existing {
            if existing.spec.locked && !args.unlock {
                bail!(
                    "{agent}: AgentBaseline {namespace}/{name} is locked at revision {} \
                     (approved by {}): pass --unlock to replace it",
                    existing.spec.revision,
                    existing.spec.approved_by.as_deref().unwrap_or("?")
                );
            }
        }
        let revision = existing.as_ref().map_or(0, |e| e.spec.revision) + 1;
        let mut resource = AgentBaselineResource::new(
            &name,
            AgentBaselineSpec {
                agent: agent.clone(),
                workload,
                mode: match args.mode {
                    ModeArg::Detect => BaselineMode::Detect,
                    ModeArg::Learn => BaselineMode::Learn,
                },
                locked: !args.no_lock,
                revision,
                approved_by: Some(by.clone()),
                approved_at: Some(jiff::Timestamp::now().to_string()),
                nodes: nodes.clone(),
                baseline: candidate.spec.clone(),
            },
        );
        resource.metadata.namespace = Some(namespace.to_string());
        resource.metadata.labels = Some(BTreeMap::from([(
            AGENT_LABEL.to_string(),
            agent_hash(&agent),
        )]));
        // The revision read above must still be the stored one: two approvals at once do not
        // both count up from it (the API answers 409).
        resource.metadata.resource_version = existing.and_then(|e| e.metadata.resource_version);
        let mut params = PatchParams::apply(APPROVE_FIELD_MANAGER);
        params.force = args.force_conflicts;
        api.patch(&name, &params, &Patch::Apply(&resource))
            .await
            .map_err(|e| match e {
                kube::Error::Api(status) if status.code == 409 => anyhow::anyhow!(
                    "{agent}: conflict writing AgentBaseline {namespace}/{name}: {} (it changed \
                     since it was read, or another field manager owns these fields: pass \
                     --force-conflicts to take them over)",
                    status.message
                ),
                other => anyhow::Error::new(other)
                    .context(format!("writing AgentBaseline {namespace}/{name}")),
            })?;
        println!(
            "approved {agent}: AgentBaseline {namespace}/{name} revision {revision}, {} entries \
             from {}{}",
            candidate.spec.len(),
            if nodes.is_empty() {
                "a reviewed file".to_string()
            } else {
                nodes.join(", ")
            },
            if args.no_lock { "" } else { ", locked" }
        );
    }
    Ok(exit_status::OK)
}

/// `baseline crds`: the CustomResourceDefinitions, as deploy/crds/crds.yaml holds them.
pub fn crds() -> Result<u8> {
    print!("{}", crd_yaml());
    Ok(exit_status::OK)
}
