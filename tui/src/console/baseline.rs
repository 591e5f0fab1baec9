//! `b` in the console: the selected agent's observed behaviour written to a YAML file (its
//! identity, its AI-BOM, and every graph edge reachable from it, grouped by kind), so a
//! reviewer can keep or diff what the agent did.
//!
//! This is the console's own small exporter, behind [`BaselineExporter`] so the real baseline
//! format can replace it without touching the console.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use agentscope_collector::model::{AiBom, EdgeKind, NodeKind};
use agentscope_collector::pipeline::Pipeline;
use anyhow::Context as _;
use serde::Serialize;

use super::graph_pane::reachable_edges;

/// Writes the baseline of the agent with the given key; returns the file written.
pub type BaselineExporter = Box<dyn FnMut(&Pipeline, &str) -> anyhow::Result<PathBuf>>;

/// Version of the document written by [`yaml_exporter`].
pub const SCHEMA: &str = "agentscope.console-baseline/v0";

#[derive(Debug, Serialize)]
pub struct BaselineDocument<'a> {
    pub schema: &'static str,
    pub agent: AgentSection<'a>,
    pub identity: IdentitySection<'a>,
    pub aibom: &'a AiBom,
    /// Edge kind (`calls_tool`, `accesses`, ...) → edges, sorted by source and target.
    pub edges: BTreeMap<EdgeKind, Vec<EdgeEntry<'a>>>,
}

#[derive(Debug, Serialize)]
pub struct AgentSection<'a> {
    pub key: &'a str,
    pub name: &'a str,
    pub program: &'a str,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    pub llm_calls: u64,
    pub tool_calls: u64,
}

#[derive(Debug, Serialize)]
pub struct IdentitySection<'a> {
    pub workload: &'a str,
    pub uid: u32,
    pub user: Option<&'a str>,
    pub container_id: Option<&'a str>,
    pub pod: Option<&'a str>,
    pub service_account: Option<&'a str>,
    pub cloud_roles: &'a [String],
}

#[derive(Debug, Serialize)]
pub struct EdgeEntry<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub to_kind: NodeKind,
    pub label: &'a str,
    pub count: u64,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: &'a BTreeMap<String, serde_json::Value>,
}

/// The agent's observed behaviour, ready to serialise.
pub fn baseline_document<'p>(
    pipeline: &'p Pipeline,
    agent_key: &str,
) -> anyhow::Result<BaselineDocument<'p>> {
    let model = pipeline.model();
    let agent = model
        .agents()
        .find(|a| a.key == agent_key)
        .with_context(|| format!("no agent {agent_key:?} in the model"))?;
    let graph = model.graph();
    let mut edges: BTreeMap<EdgeKind, Vec<EdgeEntry>> = BTreeMap::new();
    for edge in reachable_edges(graph, &format!("agent:{}", agent.key)) {
        let Some(target) = graph.get_node(&edge.to) else {
            continue;
        };
        edges.entry(edge.kind).or_default().push(EdgeEntry {
            from: &edge.from,
            to: &edge.to,
            to_kind: target.kind,
            label: &target.label,
            count: edge.count,
            first_seen_ns: edge.first_seen_ns,
            last_seen_ns: edge.last_seen_ns,
            attributes: &edge.attributes,
        });
    }
    for list in edges.values_mut() {
        list.sort_by(|a, b| (a.from, a.to).cmp(&(b.from, b.to)));
    }
    let who = &agent.identity;
    Ok(BaselineDocument {
        schema: SCHEMA,
        agent: AgentSection {
            key: &agent.key,
            name: &agent.name,
            program: &agent.program,
            first_seen_ns: agent.first_seen_ns,
            last_seen_ns: agent.last_seen_ns,
            llm_calls: agent.llm_calls,
            tool_calls: agent.tool_calls,
        },
        identity: IdentitySection {
            workload: &who.workload,
            uid: who.uid,
            user: who.user.as_deref(),
            container_id: who.container_id.as_deref(),
            pod: who.pod.as_deref(),
            service_account: who.service_account.as_deref(),
            cloud_roles: &who.cloud_roles,
        },
        aibom: &agent.aibom,
        edges,
    })
}

/// An agent key as a file-name part: letters, digits, `.`, `_` and `-` only, at most 80.
pub fn sanitise_key(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            c
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
        if out.len() >= 80 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "agent".into()
    } else {
        out
    }
}

/// Writes `agentscope-baseline-<key>-<unix time>.yaml` in `dir` (never over an existing
/// file); returns its path.
pub fn write_baseline(
    pipeline: &Pipeline,
    agent_key: &str,
    dir: &Path,
    unix_secs: u64,
) -> anyhow::Result<PathBuf> {
    let document = baseline_document(pipeline, agent_key)?;
    let yaml = serde_norway::to_string(&document).context("serialising the baseline")?;
    let stem = format!(
        "agentscope-baseline-{}-{unix_secs}",
        sanitise_key(agent_key)
    );
    let mut path = dir.join(format!("{stem}.yaml"));
    let mut n = 1;
    let mut file = loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => break file,
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => {
                path = dir.join(format!("{stem}-{n}.yaml"));
                n += 1;
            }
            Err(err) => return Err(err).with_context(|| format!("creating {}", path.display())),
        }
    };
    let header = "# Observed behaviour of one agent, exported from the agentscope console (b).\n\
                  # Fields: docs/console.md#baseline-export. Times ending in _ns are nanoseconds since boot.\n";
    file.write_all(header.as_bytes())
        .and_then(|()| file.write_all(yaml.as_bytes()))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The default exporter: YAML files in `dir`, named with the current Unix time.
pub fn yaml_exporter(dir: PathBuf) -> BaselineExporter {
    yaml_exporter_at(dir, || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

/// The default exporter with a given clock (tests).
pub fn yaml_exporter_at(dir: PathBuf, now_unix: impl Fn() -> u64 + 'static) -> BaselineExporter {
    Box::new(move |pipeline, key| write_baseline(pipeline, key, &dir, now_unix()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_safe_file_names() {
        assert_eq!(
            sanitise_key("host:/usr/bin/python3 /app/agent.py"),
            "host-usr-bin-python3-app-agent.py"
        );
        assert_eq!(
            sanitise_key("k8s:crm/Deployment/support/agent:/usr/bin/node"),
            "k8s-crm-Deployment-support-agent-usr-bin-node"
        );
        assert_eq!(sanitise_key("../../"), "..-..");
        assert_eq!(sanitise_key("///"), "agent");
        assert!(sanitise_key(&"x".repeat(500)).len() <= 80);
    }
}
