//! One agent's posture: what it may do (RBAC, tools, network, secrets, data) against what it
//! was seen doing, as gaps, each with its evidence and a risk score, and the artifacts that
//! would close them (a least-privilege Role, a NetworkPolicy, the baseline's enforcement
//! section). The scoring is documented in docs/posture.md; it lives in [`Gap`]'s
//! constructors below so the document and the code are read side by side.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use super::cluster::ClusterState;
use super::network_policy::{
    egress_allowed, egress_posture, generated_policy, Destination, EgressPosture, PodPlacement,
};
use super::rbac::{self, Grant, ServiceAccountRef, UnusedPermission};
use super::secrets::{secret_mounts, SecretMount, SecretSource};
use super::tools::{offered_tools, Capability, OfferedTool};
use super::usage::Usage;
use crate::baseline::enforcement::{Allowed, EnforceMode, Enforcement, NetAllow, NetProtocol};
use crate::detect::kubernetes_request::KubernetesRequest;
use crate::model::Agent;

/// Version of the JSON `agentscope posture -o json` writes.
pub const SCHEMA: &str = "agentscope.posture/v1";
/// An agent's score is the sum of its gaps' risks, capped here.
pub const MAX_AGENT_SCORE: u32 = 100;

/// Which part of the posture a gap is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GapCategory {
    Rbac,
    Tools,
    Network,
    Secrets,
    Data,
}

/// Something the agent may do and was not seen doing (or a sign the view is incomplete).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gap {
    pub category: GapCategory,
    pub title: String,
    /// Why: what grants it and what was (not) seen.
    pub evidence: Vec<String>,
    /// 0 (worth knowing) to 10 (an attacker's first step).
    pub risk: u8,
    /// OWASP LLM Top 10 2025 ids.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<&'static str>,
}

/// The RBAC part.
#[derive(Debug, Clone, Serialize)]
pub struct RbacPosture {
    pub service_account: ServiceAccountRef,
    pub grants: Vec<Grant>,
    /// Requests seen, each with whether the grants allow it.
    pub requests: Vec<RequestSeen>,
    pub unused: Vec<UnusedPermission>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestSeen {
    pub request: String,
    pub status: Option<u16>,
    pub count: u64,
    pub allowed: bool,
}

/// The network part.
#[derive(Debug, Clone, Serialize)]
pub struct NetworkPosture {
    #[serde(flatten)]
    pub egress: EgressPosture,
    pub destinations: Vec<DestinationSeen>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DestinationSeen {
    #[serde(flatten)]
    pub destination: Destination,
    pub connections: u64,
    pub allowed: bool,
}

/// A secret given to the agent and whether it was read.
#[derive(Debug, Clone, Serialize)]
pub struct SecretSeen {
    #[serde(flatten)]
    pub mount: SecretMount,
    /// Files under it the agent opened (`None`: not observable, environment variables).
    pub read: Option<Vec<String>>,
}

/// What would close the gaps.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Artifacts {
    /// Role/RoleBinding (ClusterRole/ClusterRoleBinding) allowing exactly the API requests
    /// seen.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rbac: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<serde_json::Value>,
    /// The baseline `enforcement` section allowing the destinations seen (network in audit
    /// mode: docs/enforcement.md says how to promote it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<Enforcement>,
}

/// One agent's posture.
#[derive(Debug, Clone, Serialize)]
pub struct AgentPosture {
    pub agent: String,
    pub name: String,
    pub pod: Option<String>,
    pub service_account: Option<String>,
    /// Sum of the gaps' risks, at most [`MAX_AGENT_SCORE`].
    pub score: u32,
    pub gaps: Vec<Gap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rbac: Option<RbacPosture>,
    pub tools: Vec<OfferedTool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkPosture>,
    pub secrets: Vec<SecretSeen>,
    /// Database → tables queried.
    pub databases: BTreeMap<String, BTreeSet<String>>,
    /// Database → tables the agent listed from its catalogue (what its role can see), when it
    /// did.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub listed_tables: BTreeMap<String, BTreeSet<String>>,
    pub artifacts: Artifacts,
    /// What limits the comparison (no pod spec, entries dropped).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct PostureReport {
    pub schema: &'static str,
    /// Where the declared side came from: the `--cluster` file, the API, the objects the
    /// collector recorded in the session, or none.
    pub declared: String,
    pub agents: Vec<AgentPosture>,
}

/// Risk of a granted-but-unused permission (docs/posture.md, "Scoring").
pub fn permission_risk(permission: &UnusedPermission) -> u8 {
    let verb = permission.verb.as_str();
    let resource = permission.resource.as_str();
    let mut risk: u8 = match verb {
        "get" | "list" | "watch" => 3,
        "escalate" | "bind" | "impersonate" => 9,
        "*" => 8,
        _ => 6,
    };
    let base = resource.split('/').next().unwrap_or(resource);
    if matches!(
        resource,
        "pods/exec" | "pods/attach" | "pods/portforward" | "nodes/proxy" | "serviceaccounts/token"
    ) {
        risk = 10;
    } else if base == "secrets" {
        risk += 3;
    } else if resource == "*"
        || base == "roles"
        || base == "clusterroles"
        || base.ends_with("bindings")
        || (base == "pods" && verb == "create")
    {
        risk += 2;
    }
    if permission.namespace.is_none() {
        risk += 1;
    }
    risk.min(10)
}

/// Risk of a dangerous tool offered and never called.
pub fn tool_risk(capabilities: &BTreeSet<Capability>) -> u8 {
    capabilities
        .iter()
        .map(|c| match c {
            Capability::Shell => 8,
            Capability::FileWrite | Capability::Sql => 6,
            Capability::Http => 5,
        })
        .max()
        .unwrap_or(1)
}

/// The container name in a Kubernetes workload key (`k8s:ns/Kind/name/container`).
fn container_of(workload: &str) -> Option<&str> {
    workload
        .strip_prefix("k8s:")
        .and_then(|rest| rest.rsplit('/').next())
}

/// Builds one agent's posture from what it is (`agent`), what it did (`usage`) and what the
/// cluster declares (`cluster`, when known).
pub fn agent_posture(agent: &Agent, usage: &Usage, cluster: Option<&ClusterState>) -> AgentPosture {
    let mut posture = AgentPosture {
        agent: agent.key.clone(),
        name: agent.name.clone(),
        pod: agent.identity.pod.clone(),
        service_account: agent.identity.service_account.clone(),
        score: 0,
        gaps: Vec::new(),
        rbac: None,
        tools: Vec::new(),
        network: None,
        secrets: Vec::new(),
        databases: usage.databases.clone(),
        listed_tables: usage.listed_tables.clone(),
        artifacts: Artifacts::default(),
        notes: Vec::new(),
    };
    if usage.dropped > 0 {
        posture.notes.push(format!(
            "{} observations did not fit the per-agent limits: something marked unused may have been used",
            usage.dropped
        ));
    }
    tools_part(&mut posture, agent, usage);
    match cluster {
        None => posture
            .notes
            .push("no cluster objects given: RBAC, network policy and secrets not compared".into()),
        Some(cluster) => {
            rbac_part(&mut posture, usage, cluster);
            let pod = posture.pod.as_deref().and_then(|p| cluster.pod(p));
            match pod {
                None => posture.notes.push(match &posture.pod {
                    Some(p) => format!("pod {p} is not among the cluster objects: network and secrets not compared"),
                    None => "the agent is not known as a pod: network and secrets not compared".into(),
                }),
                Some(pod) => {
                    network_part(&mut posture, usage, cluster, pod);
                    secrets_part(&mut posture, agent, usage, cluster, pod);
                }
            }
        }
    }
    data_part(&mut posture);
    posture
        .gaps
        .sort_by(|a, b| b.risk.cmp(&a.risk).then(a.category.cmp(&b.category)));
    posture.score = posture
        .gaps
        .iter()
        .map(|g| u32::from(g.risk))
        .sum::<u32>()
        .min(MAX_AGENT_SCORE);
    posture
}

fn tools_part(posture: &mut AgentPosture, agent: &Agent, usage: &Usage) {
    let mcp: BTreeMap<String, BTreeMap<String, Option<String>>> = agent
        .aibom
        .mcp_servers
        .iter()
        .map(|(name, server)| (name.clone(), server.tools.clone()))
        .collect();
    let mut calls = usage.tool_calls.clone();
    for (name, n) in &usage.mcp_calls {
        *calls.entry(name.clone()).or_default() += n;
    }
    let tools = offered_tools(&agent.aibom.tools_offered, &mcp, &calls);
    let mut harmless_unused = Vec::new();
    for tool in tools.iter().filter(|t| t.calls == 0) {
        if tool.capabilities.is_empty() {
            harmless_unused.push(tool.name.clone());
            continue;
        }
        let capabilities: Vec<&str> = tool.capabilities.iter().map(|c| c.name()).collect();
        let sources: Vec<String> = tool
            .sources
            .iter()
            .map(|s| match s {
                super::tools::ToolSource::Model => "offered to the model".to_string(),
                super::tools::ToolSource::Mcp { server } => {
                    format!("listed by MCP server {server}")
                }
            })
            .collect();
        posture.gaps.push(Gap {
            category: GapCategory::Tools,
            title: format!(
                "excess agency: tool {} ({}) offered, never called",
                tool.name,
                capabilities.join(", ")
            ),
            evidence: vec![
                format!("{}", sources.join("; ")),
                format!(
                    "{} tool calls seen, none of {}",
                    calls.values().sum::<u64>(),
                    tool.name
                ),
            ],
            risk: tool_risk(&tool.capabilities),
            labels: vec!["LLM06"],
        });
    }
    if !harmless_unused.is_empty() {
        posture.gaps.push(Gap {
            category: GapCategory::Tools,
            title: format!("{} tools offered, never called", harmless_unused.len()),
            evidence: vec![harmless_unused.join(", ")],
            risk: 1,
            labels: vec!["LLM06"],
        });
    }
    posture.tools = tools;
}

fn rbac_part(posture: &mut AgentPosture, usage: &Usage, cluster: &ClusterState) {
    let Some(account) = posture
        .service_account
        .as_deref()
        .and_then(ServiceAccountRef::parse)
    else {
        if !usage.kubernetes.is_empty() {
            posture
                .notes
                .push("Kubernetes API requests seen but the service account is unknown".into());
        }
        return;
    };
    let grants = rbac::effective_grants(&cluster.rbac, &account);
    let mut requests = Vec::new();
    let mut used: Vec<KubernetesRequest> = Vec::new();
    let mut denied = Vec::new();
    let mut allowed_but_unexplained = Vec::new();
    for (observed, count) in &usage.kubernetes {
        let allowed = rbac::can(&grants, &observed.request);
        let refused = matches!(observed.status, Some(401 | 403));
        if refused {
            denied.push(format!(
                "{} → {}",
                observed.request,
                observed.status.unwrap_or_default()
            ));
        } else {
            if !used.contains(&observed.request) {
                used.push(observed.request.clone());
            }
            if !allowed {
                allowed_but_unexplained.push(observed.request.to_string());
            }
        }
        requests.push(RequestSeen {
            request: observed.request.to_string(),
            status: observed.status,
            count: *count,
            allowed,
        });
    }
    let unused = rbac::unused_permissions(&grants, &used);
    // One gap per resource and scope, its unused verbs together.
    let mut grouped: BTreeMap<(Option<String>, String, String), Vec<&UnusedPermission>> =
        BTreeMap::new();
    for permission in &unused {
        grouped
            .entry((
                permission.namespace.clone(),
                permission.api_group.clone(),
                permission.resource.clone(),
            ))
            .or_default()
            .push(permission);
    }
    let seen_summary = if used.is_empty() {
        "no Kubernetes API request seen".to_string()
    } else {
        let list: Vec<String> = used.iter().map(|r| r.to_string()).collect();
        format!("requests seen: {}", list.join("; "))
    };
    for ((namespace, group, resource), permissions) in grouped {
        let verbs: BTreeSet<&str> = permissions.iter().map(|p| p.verb.as_str()).collect();
        let vias: BTreeSet<&str> = permissions.iter().map(|p| p.via.as_str()).collect();
        let scope = namespace
            .as_deref()
            .map_or("cluster-wide".to_string(), |ns| format!("in {ns}"));
        let group = if group.is_empty() {
            String::new()
        } else {
            format!("{group}/")
        };
        posture.gaps.push(Gap {
            category: GapCategory::Rbac,
            title: format!(
                "unused permission: {} {group}{resource} {scope}",
                verbs.into_iter().collect::<Vec<_>>().join(", ")
            ),
            evidence: vec![
                format!(
                    "granted by {}",
                    vias.into_iter().collect::<Vec<_>>().join("; ")
                ),
                seen_summary.clone(),
            ],
            risk: permissions
                .iter()
                .map(|p| permission_risk(p))
                .max()
                .unwrap_or(0),
            labels: vec!["LLM06"],
        });
    }
    if !denied.is_empty() {
        posture.gaps.push(Gap {
            category: GapCategory::Rbac,
            title: format!("{} Kubernetes API requests refused", denied.len()),
            evidence: denied,
            risk: 5,
            labels: Vec::new(),
        });
    }
    if !allowed_but_unexplained.is_empty() {
        posture.notes.push(format!(
            "requests answered though the cluster objects given do not allow them (objects stale or incomplete?): {}",
            allowed_but_unexplained.join("; ")
        ));
    }
    if !used.is_empty() {
        posture.artifacts.rbac = rbac::least_privilege(
            &account,
            &format!("{}-least-privilege", account.name),
            &used,
        );
    }
    posture.rbac = Some(RbacPosture {
        service_account: account,
        grants,
        requests,
        unused,
    });
}

fn network_part(
    posture: &mut AgentPosture,
    usage: &Usage,
    cluster: &ClusterState,
    pod: &k8s_openapi::api::core::v1::Pod,
) {
    let placement = PodPlacement {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
    };
    let view = cluster.network_view();
    let egress = egress_posture(&view, &placement);
    let destinations: Vec<DestinationSeen> = usage
        .destinations
        .iter()
        .filter(|(d, _)| !d.address.is_loopback())
        .map(|(destination, connections)| DestinationSeen {
            destination: *destination,
            connections: *connections,
            allowed: egress_allowed(&view, &placement, destination),
        })
        .collect();
    let used: BTreeSet<Destination> = destinations.iter().map(|d| d.destination).collect();
    let used_list: Vec<String> = used
        .iter()
        .map(|d| format!("{}:{}", d.address, d.port))
        .collect();
    let used_summary = if used_list.is_empty() {
        "no connection seen".to_string()
    } else {
        format!("connections seen to {}", used_list.join(", "))
    };
    if egress.unrestricted || egress.allows_any_destination {
        let why = if egress.unrestricted {
            if egress.selecting.is_empty() {
                "no NetworkPolicy selects the pod".to_string()
            } else {
                format!(
                    "NetworkPolicies {} select the pod but none restricts egress",
                    egress.selecting.join(", ")
                )
            }
        } else {
            format!(
                "an egress rule of {} allows every destination",
                egress.isolating.join(", ")
            )
        };
        posture.gaps.push(Gap {
            category: GapCategory::Network,
            title: if egress.unrestricted {
                "unrestricted egress".into()
            } else {
                "egress open to every destination".into()
            },
            evidence: vec![why, used_summary],
            risk: if egress.unrestricted { 7 } else { 5 },
            labels: vec!["LLM06"],
        });
        let name = format!(
            "{}-egress",
            posture
                .service_account
                .as_deref()
                .and_then(|s| s.split_once('/'))
                .map_or(placement.name.as_str(), |(_, n)| n)
        );
        posture.artifacts.network_policy =
            Some(generated_policy(&placement, &name, &used, usage.dns));
        posture.artifacts.enforcement = Some(Enforcement {
            revision: 0,
            network: EnforceMode::Audit,
            allow: Allowed {
                network: used
                    .iter()
                    .map(|d| NetAllow {
                        protocol: NetProtocol::Any,
                        address: d.address.to_string(),
                        port: d.port,
                    })
                    .collect(),
                ..Default::default()
            },
            ..Default::default()
        });
    }
    let refused: Vec<String> = destinations
        .iter()
        .filter(|d| !d.allowed)
        .map(|d| format!("{}:{}", d.destination.address, d.destination.port))
        .collect();
    if !refused.is_empty() {
        posture.gaps.push(Gap {
            category: GapCategory::Network,
            title: format!("{} destinations the NetworkPolicies do not allow were connected to", refused.len()),
            evidence: vec![
                refused.join(", "),
                "the connection attempts were seen; the policies (or the objects given) may be out of date".into(),
            ],
            risk: 3,
            labels: Vec::new(),
        });
    }
    posture.network = Some(NetworkPosture {
        egress,
        destinations,
    });
}

fn secrets_part(
    posture: &mut AgentPosture,
    agent: &Agent,
    usage: &Usage,
    cluster: &ClusterState,
    pod: &k8s_openapi::api::core::v1::Pod,
) {
    let account = posture
        .service_account
        .as_deref()
        .and_then(|s| cluster.service_account(s));
    let mounts = secret_mounts(pod, container_of(&agent.identity.workload), account);
    let api_used = !usage.kubernetes.is_empty();
    let grants_anything = posture.rbac.as_ref().is_some_and(|r| !r.grants.is_empty());
    for mount in mounts {
        if mount.mount_path.is_none() {
            posture.secrets.push(SecretSeen { mount, read: None });
            continue;
        }
        let read: Vec<String> = usage
            .files_read
            .iter()
            .filter(|path| mount.covers(path))
            .cloned()
            .collect();
        let token = mount.source == SecretSource::ServiceAccountToken;
        if read.is_empty() && !(token && api_used) {
            let (title, risk, advice) = if token {
                (
                    format!(
                        "service-account token mounted, never read ({})",
                        mount.describe()
                    ),
                    if grants_anything { 6 } else { 4 },
                    "set automountServiceAccountToken: false on the pod or its ServiceAccount",
                )
            } else {
                (
                    format!("secret mounted, never read: {}", mount.describe()),
                    5,
                    "remove the volume or its mount from the agent's container",
                )
            };
            posture.gaps.push(Gap {
                category: GapCategory::Secrets,
                title,
                evidence: vec![
                    format!(
                        "{} files opened for reading, none under it",
                        usage.files_read.len()
                    ),
                    advice.to_string(),
                ],
                risk,
                labels: vec!["LLM06"],
            });
        }
        posture.secrets.push(SecretSeen {
            mount,
            read: Some(read),
        });
    }
}

/// Listed tables shown in a gap's evidence.
const LISTED_SHOWN: usize = 8;

fn data_part(posture: &mut AgentPosture) {
    // Tables the catalogue showed the agent against those it queried: a query may name a table
    // bare (`customers`) where the catalogue says `crm.customers`.
    for (database, listed) in &posture.listed_tables {
        let queried = posture.databases.get(database);
        let was_queried = |table: &String| {
            queried.is_some_and(|q| {
                q.contains(table)
                    || table
                        .rsplit_once('.')
                        .is_some_and(|(_, bare)| q.contains(bare))
            })
        };
        let unused: Vec<&String> = listed.iter().filter(|t| !was_queried(t)).collect();
        if unused.is_empty() {
            continue;
        }
        let mut shown: Vec<String> = unused
            .iter()
            .take(LISTED_SHOWN)
            .map(|t| t.to_string())
            .collect();
        if unused.len() > LISTED_SHOWN {
            shown.push(format!("and {} more", unused.len() - LISTED_SHOWN));
        }
        posture.gaps.push(Gap {
            category: GapCategory::Data,
            title: format!(
                "tables reachable, never queried: {} of {} in {database}",
                unused.len(),
                listed.len()
            ),
            evidence: vec![
                format!("the agent's catalogue query listed {}", shown.join(", ")),
                "grant the agent's database role only the tables it queries".into(),
            ],
            risk: if unused.len() >= 5 { 4 } else { 3 },
            labels: vec!["LLM06"],
        });
    }
    for (database, tables) in &posture.databases {
        if tables.is_empty() {
            posture.gaps.push(Gap {
                category: GapCategory::Data,
                title: format!("database reachable, no table queried: {database}"),
                evidence: vec![
                    "connections seen, no SQL statement naming a table".into(),
                    "if the agent needs no data from it, deny the connection (NetworkPolicy) or its credentials".into(),
                ],
                risk: 2,
                labels: Vec::new(),
            });
        }
    }
}

/// The report as text for people (the JSON is the [`Serialize`] form).
pub fn text(report: &PostureReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "declared side: {}\n", report.declared);
    if report.agents.is_empty() {
        out.push_str("no agent seen\n");
    }
    for agent in &report.agents {
        let _ = writeln!(
            out,
            "agent {} ({})  score {}/{}",
            agent.agent, agent.name, agent.score, MAX_AGENT_SCORE
        );
        if let Some(pod) = &agent.pod {
            let _ = writeln!(
                out,
                "  pod {pod}, service account {}",
                agent.service_account.as_deref().unwrap_or("?")
            );
        }
        if agent.gaps.is_empty() {
            let _ = writeln!(out, "  no gap found");
        }
        for gap in &agent.gaps {
            let labels = if gap.labels.is_empty() {
                String::new()
            } else {
                format!(" [{}]", gap.labels.join(", "))
            };
            let _ = writeln!(
                out,
                "  risk {:>2}  {:?}: {}{labels}",
                gap.risk, gap.category, gap.title
            );
            for line in &gap.evidence {
                let _ = writeln!(out, "            {line}");
            }
        }
        if let Some(rbac) = &agent.rbac {
            let _ = writeln!(out, "  Kubernetes API requests ({}):", rbac.requests.len());
            for request in &rbac.requests {
                let status = request.status.map_or("-".to_string(), |s| s.to_string());
                let _ = writeln!(
                    out,
                    "    {} ×{} status {status}{}",
                    request.request,
                    request.count,
                    if request.allowed {
                        ""
                    } else {
                        " (not allowed by the RBAC given)"
                    }
                );
            }
        }
        let artifacts: Vec<&str> = [
            (!agent.artifacts.rbac.is_empty()).then_some("least-privilege Role"),
            agent
                .artifacts
                .network_policy
                .as_ref()
                .map(|_| "NetworkPolicy"),
            agent
                .artifacts
                .enforcement
                .as_ref()
                .map(|_| "baseline enforcement section"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !artifacts.is_empty() {
            let _ = writeln!(
                out,
                "  artifacts: {} (--write-artifacts DIR)",
                artifacts.join(", ")
            );
        }
        for note in &agent.notes {
            let _ = writeln!(out, "  note: {note}");
        }
        out.push('\n');
    }
    // Names, paths and tool names are the observed processes' choice: no raw controls.
    out.chars()
        .map(|c| if c.is_control() && c != '\n' { '?' } else { c })
        .collect()
}
