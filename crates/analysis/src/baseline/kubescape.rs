//! Export of a baseline as a Kubescape `ApplicationProfile`
//! (`spdx.softwarecomposition.kubescape.io/v1beta1`), so tools that already read Kubescape's
//! runtime profiles can use what agentscope learned.
//!
//! The types mirror the upstream Go types of kubescape/storage
//! (`pkg/apis/softwarecomposition/v1beta1`, `ApplicationProfileContainer` fields 1-10 of its
//! `generated.proto`: name, capabilities, execs, opens, syscalls, seccompProfile, endpoints,
//! imageID, imageTag, rulePolicies), field by field with the upstream JSON names, for the parts
//! agentscope fills. `kubescape-applicationprofile.schema.json` next to this file is the JSON
//! Schema of that shape; the tests validate every export against it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::collapse;
use super::format::{AgentBaseline, BaselineStatus, FileAccess};

pub const API_VERSION: &str = "spdx.softwarecomposition.kubescape.io/v1beta1";
pub const KIND: &str = "ApplicationProfile";

/// The JSON Schema the export follows (draft 2020-12).
pub const SCHEMA: &str = include_str!("kubescape-applicationprofile.schema.json");

/// Kubescape's wildcard for one path segment (its dynamic path detector writes the same).
const ONE_SEGMENT: &str = "\u{22ef}";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationProfile {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: ApplicationProfileSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationProfileSpec {
    pub architectures: Vec<String>,
    pub containers: Vec<ApplicationProfileContainer>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationProfileContainer {
    pub name: String,
    pub capabilities: Vec<String>,
    pub execs: Vec<ExecCalls>,
    pub opens: Vec<OpenCalls>,
    pub syscalls: Vec<String>,
    pub endpoints: Vec<HttpEndpoint>,
    #[serde(rename = "imageID")]
    pub image_id: String,
    pub image_tag: String,
    pub rule_policies: BTreeMap<String, RulePolicy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecCalls {
    pub path: String,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenCalls {
    pub path: String,
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpEndpoint {
    /// `:port/path`, identifier segments as `⋯`.
    pub endpoint: String,
    pub methods: Vec<String>,
    /// The peer is inside the cluster or host (private, loopback or cluster-local name).
    pub internal: bool,
    /// `outbound`: agentscope learns the requests an agent makes.
    pub direction: String,
    /// Upstream keeps raw JSON here (`{"Host": ["..."]}`).
    pub headers: serde_json::Value,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RulePolicy {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        rename = "processAllowed"
    )]
    pub process_allowed: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "std::ops::Not::not",
        rename = "containerAllowed"
    )]
    pub container_allowed: bool,
}

/// The workload parts of a Kubernetes agent key (`k8s:ns/Kind/name/container:program`).
struct Workload<'a> {
    namespace: &'a str,
    kind: &'a str,
    name: &'a str,
    container: &'a str,
}

fn kubernetes_workload(agent: &str) -> Option<Workload<'_>> {
    let rest = agent.strip_prefix("k8s:")?;
    let (workload, _program) = rest.split_once(':')?;
    let mut parts = workload.splitn(4, '/');
    Some(Workload {
        namespace: parts.next()?,
        kind: parts.next()?,
        name: parts.next()?,
        container: parts.next()?,
    })
}

/// Lower-case letters, digits and `-`, starting and ending alphanumeric, at most `max` long:
/// what Kubernetes names and label values accept.
fn dns_label(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out: String = out.trim_matches('-').chars().take(max).collect();
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "agent".into()
    } else {
        out
    }
}

/// FNV-1a: a short, stable suffix that keeps names of different agents apart.
fn short_hash(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:08x}", hash as u32)
}

/// Collapsed placeholders (`{id}`, `{n}`, `*`) as Kubescape's one-segment wildcard.
fn kubescape_pattern(text: &str) -> String {
    let mut out = text.to_string();
    for placeholder in [
        collapse::ID,
        collapse::NUMBER,
        collapse::PATH,
        collapse::TEXT,
    ] {
        out = out.replace(placeholder, ONE_SEGMENT);
    }
    out.split('/')
        .map(|segment| {
            if segment == collapse::ANY_NAME {
                ONE_SEGMENT
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn is_internal(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.split_once(']'))
        .map(|(h, _)| h)
        .unwrap_or_else(|| {
            if host.matches(':').count() == 1 {
                host.split(':').next().unwrap_or(host)
            } else {
                host
            }
        });
    match bare.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        Ok(std::net::IpAddr::V6(ip)) => ip.is_loopback() || (ip.segments()[0] & 0xfe00) == 0xfc00,
        Err(_) => {
            !bare.contains('.')
                || bare.ends_with(".svc")
                || bare.ends_with(".cluster.local")
                || bare.ends_with(".local")
                || bare == "localhost"
        }
    }
}

fn port_of(scheme: &str, host: &str) -> u16 {
    let explicit = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once("]:").and_then(|(_, p)| p.parse().ok())
    } else if host.matches(':').count() == 1 {
        host.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
    } else {
        None
    };
    explicit.unwrap_or(if scheme == "https" { 443 } else { 80 })
}

/// The Kubescape `ApplicationProfile` of a baseline: executables as `execs`, files as
/// `opens`, HTTP APIs as outbound `endpoints`; learning status in Kubescape's annotations.
pub fn application_profile(baseline: &AgentBaseline) -> ApplicationProfile {
    let agent = &baseline.metadata.agent;
    let workload = kubernetes_workload(agent);
    let mut labels = BTreeMap::new();
    let (name, namespace, container) = match &workload {
        Some(w) => {
            labels.insert("kubescape.io/workload-kind".into(), dns_label_value(w.kind));
            labels.insert("kubescape.io/workload-name".into(), dns_label_value(w.name));
            labels.insert(
                "kubescape.io/workload-namespace".into(),
                dns_label_value(w.namespace),
            );
            labels.insert(
                "kubescape.io/workload-container-name".into(),
                dns_label_value(w.container),
            );
            (
                dns_label(&format!("{}-{}", w.kind, w.name), 253),
                Some(w.namespace.to_string()),
                dns_label(w.container, 63),
            )
        }
        None => (
            format!(
                "agentscope-{}-{}",
                dns_label(&baseline.metadata.name, 40),
                short_hash(agent)
            ),
            None,
            dns_label(&baseline.metadata.name, 63),
        ),
    };
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "kubescape.io/status".into(),
        match baseline.metadata.status {
            BaselineStatus::Learning => "learning",
            BaselineStatus::Complete | BaselineStatus::Partial => "completed",
        }
        .into(),
    );
    let lossy = !baseline.metadata.loss.is_empty() || baseline.metadata.truncated;
    annotations.insert(
        "kubescape.io/completion".into(),
        if lossy || baseline.metadata.status == BaselineStatus::Partial {
            "partial"
        } else {
            "complete"
        }
        .into(),
    );
    annotations.insert("agentscope.dev/agent-key".into(), agent.clone());
    if let Some(from) = &baseline.metadata.learned_from {
        annotations.insert("agentscope.dev/learned-from".into(), from.clone());
    }
    if let Some(to) = &baseline.metadata.learned_to {
        annotations.insert("agentscope.dev/learned-to".into(), to.clone());
    }

    let spec = &baseline.spec;
    let execs = spec
        .executables
        .iter()
        .flat_map(|(path, patterns)| {
            patterns.iter().map(move |args| ExecCalls {
                path: path.clone(),
                args: args.iter().map(|a| kubescape_pattern(a)).collect(),
            })
        })
        .collect();
    let opens = spec
        .data
        .files
        .iter()
        .map(|(path, file)| OpenCalls {
            path: kubescape_pattern(path),
            flags: file
                .access
                .iter()
                .map(|access| match access {
                    FileAccess::Read => "O_RDONLY".to_string(),
                    FileAccess::Write => "O_WRONLY".to_string(),
                })
                .collect(),
        })
        .collect();
    // One entry per endpoint (port and path), with every method seen on it.
    let mut endpoints: BTreeMap<(String, String), (Vec<String>, bool)> = BTreeMap::new();
    for api in &spec.endpoints {
        let endpoint = format!(
            ":{}{}",
            port_of(&api.scheme, &api.host),
            kubescape_pattern(&api.route)
        );
        let entry = endpoints
            .entry((endpoint, api.host.clone()))
            .or_insert_with(|| (Vec::new(), is_internal(&api.host)));
        if !entry.0.contains(&api.method) {
            entry.0.push(api.method.clone());
        }
    }
    let endpoints = endpoints
        .into_iter()
        .map(|((endpoint, host), (methods, internal))| HttpEndpoint {
            endpoint,
            methods,
            internal,
            direction: "outbound".into(),
            headers: serde_json::json!({ "Host": [host] }),
        })
        .collect();

    ApplicationProfile {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        metadata: ObjectMeta {
            name,
            namespace,
            labels,
            annotations,
        },
        spec: ApplicationProfileSpec {
            architectures: Vec::new(),
            containers: vec![ApplicationProfileContainer {
                name: container,
                capabilities: Vec::new(),
                execs,
                opens,
                syscalls: Vec::new(),
                endpoints,
                image_id: String::new(),
                image_tag: String::new(),
                rule_policies: BTreeMap::new(),
            }],
        },
    }
}

/// A label value: at most 63 characters of letters, digits, `-`, `_` and `.`, alphanumeric
/// at both ends (Kubernetes' rule; workload kinds keep their case).
fn dns_label_value(text: &str) -> String {
    let out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    out.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

impl ApplicationProfile {
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_keys_name_the_workload() {
        let w =
            kubernetes_workload("k8s:agents/Deployment/research/agent:/usr/bin/python3 /app/a.py")
                .unwrap();
        assert_eq!(
            (w.namespace, w.kind, w.name, w.container),
            ("agents", "Deployment", "research", "agent")
        );
        assert!(kubernetes_workload("host:/usr/bin/python3 /app/a.py").is_none());
        assert_eq!(
            dns_label("Deployment-Research_1", 253),
            "deployment-research-1"
        );
        assert_eq!(dns_label("///", 63), "agent");
        assert_eq!(dns_label_value("Deployment"), "Deployment");
    }

    #[test]
    fn patterns_use_kubescape_wildcards() {
        assert_eq!(kubescape_pattern("/srv/reports/*"), "/srv/reports/\u{22ef}");
        assert_eq!(
            kubescape_pattern("/api/accounts/{id}/status"),
            "/api/accounts/\u{22ef}/status"
        );
        assert_eq!(kubescape_pattern("{n}"), "\u{22ef}");
        assert_eq!(port_of("https", "api.example.com"), 443);
        assert_eq!(port_of("http", "127.0.0.1:8080"), 8080);
        assert_eq!(port_of("http", "[::1]:9000"), 9000);
        assert!(is_internal("127.0.0.1:8080"));
        assert!(is_internal("10.1.2.3"));
        assert!(is_internal("crm.agents.svc"));
        assert!(!is_internal("api.openai.com"));
        assert!(!is_internal("203.0.113.9:443"));
    }
}
