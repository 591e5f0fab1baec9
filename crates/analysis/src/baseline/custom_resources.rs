//! Baselines with Kubernetes as the store: the two custom resources (`agentscope.dev/v1`) that
//! let the collectors of many nodes share what one workload's agent does.
//!
//! - [`AgentObservationResource`] (`kind: AgentObservation`): what one node's collector
//!   learned of one agent (a workload's container and program). Each node writes its own
//!   object by server-side apply with its own field manager (`agentscope/NODE`), so nodes
//!   never overwrite one another. Bounded: [`MAX_OBSERVATION_ENTRIES`] entries and
//!   [`MAX_OBSERVATION_TEXT_BYTES`] bytes of entry text; what does not fit is counted in
//!   `omittedEntries` and `truncated` is set.
//! - [`AgentBaselineResource`] (`kind: AgentBaseline`): the approved baseline of one agent,
//!   written by `agentscope baseline approve` (field manager [`APPROVE_FIELD_MANAGER`]): the
//!   approved entries, the `mode` collectors use it in, a `locked` flag that keeps a later
//!   approval from replacing it unless asked, and a `revision` counted up by each approval.
//!
//! The file format of `agentscope baseline export` (`crate::baseline::AgentBaseline`) shares
//! the API group but is not a Kubernetes object; [`AgentBaselineResource::to_document`]
//! and [`candidate_from_observations`] convert between the two.
//!
//! Only agents of Kubernetes workloads (agent keys `k8s:NAMESPACE/KIND/NAME/CONTAINER:PROGRAM`)
//! have resources: the namespace is where their objects live.

use std::collections::BTreeSet;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::format::{
    AgentBaseline, BaselineMetadata, BaselineSpec, BaselineStatus, IdentitySummary, LossCounts,
    API_VERSION, KIND,
};

/// The API group of both resources.
pub const GROUP: &str = "agentscope.dev";
/// Field manager of `agentscope baseline approve`.
pub const APPROVE_FIELD_MANAGER: &str = "agentscope/approve";
/// Entries one AgentObservation holds at most.
pub const MAX_OBSERVATION_ENTRIES: usize = 4096;
/// Bytes of entry text (as `describe` writes each entry) one AgentObservation holds at most:
/// far below the API server's object size limit (about 1.5 MiB) whatever the entries are.
pub const MAX_OBSERVATION_TEXT_BYTES: usize = 512 * 1024;
/// Label on both resources: the agent's hash (agent keys do not fit in a label value).
pub const AGENT_LABEL: &str = "agentscope.dev/agent";
/// Label on an AgentObservation: the node that wrote it.
pub const NODE_LABEL: &str = "agentscope.dev/node";

/// The workload container an agent runs in, from its agent key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadContainer {
    pub namespace: String,
    /// `Deployment`, `StatefulSet`, `Job`, ... (`Pod` for a bare pod).
    pub kind: String,
    pub name: String,
    pub container: String,
    /// The program (executable and script) the agent key ends with.
    pub program: String,
}

impl WorkloadContainer {
    /// The workload of a Kubernetes agent key (`k8s:NAMESPACE/KIND/NAME/CONTAINER:PROGRAM`);
    /// `None` for agents outside Kubernetes and keys whose parts are unknown (`?`).
    pub fn from_agent_key(agent: &str) -> Option<Self> {
        let rest = agent.strip_prefix("k8s:")?;
        let (namespace, rest) = rest.split_once('/')?;
        let (kind, rest) = rest.split_once('/')?;
        let (name, rest) = rest.split_once('/')?;
        // Container names cannot hold ':'; the program may.
        let (container, program) = rest.split_once(':')?;
        let known = |s: &str| !s.is_empty() && s != "?";
        (known(namespace) && known(kind) && known(name) && known(container)).then(|| Self {
            namespace: namespace.into(),
            kind: kind.into(),
            name: name.into(),
            container: container.into(),
            program: program.into(),
        })
    }

    /// `NAMESPACE/KIND/NAME` (what `baseline candidate --workload` takes).
    pub fn workload(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.kind, self.name)
    }
}

/// How collectors use an approved baseline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BaselineMode {
    /// Judge the agent against the approved entries: what is outside them is a finding.
    #[default]
    Detect,
    /// Keep the approved entries for reference only: collectors judge the agent against
    /// what they learn, as without an approved baseline.
    Learn,
}

/// The approved baseline of one agent (`kubectl get agentbaselines`).
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "agentscope.dev",
    version = "v1",
    kind = "AgentBaseline",
    root = "AgentBaselineResource",
    plural = "agentbaselines",
    shortname = "agbl",
    namespaced,
    doc = "The approved baseline of one AI agent (a workload's container and program), \
           judged against by every node's agentscope collector."
)]
#[serde(rename_all = "camelCase")]
pub struct AgentBaselineSpec {
    /// The agent key (`k8s:NAMESPACE/KIND/NAME/CONTAINER:PROGRAM`).
    pub agent: String,
    pub workload: WorkloadContainer,
    #[serde(default)]
    pub mode: BaselineMode,
    /// A later `baseline approve` refuses to replace the approved entries unless it is told
    /// to unlock them.
    #[serde(default)]
    pub locked: bool,
    /// Counted up by each approval.
    #[serde(default)]
    pub revision: u64,
    /// Who approved it (`baseline approve --by`, else the local user) and when (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<String>,
    /// The nodes whose observations were merged into it.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// The approved entries.
    pub baseline: BaselineSpec,
}

/// What one node's collector learned of one agent (`kubectl get agentobservations`).
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "agentscope.dev",
    version = "v1",
    kind = "AgentObservation",
    root = "AgentObservationResource",
    plural = "agentobservations",
    shortname = "agobs",
    namespaced,
    doc = "What one node's agentscope collector learned of one AI agent; merged across nodes \
           into a candidate baseline by `agentscope baseline candidate`."
)]
#[serde(rename_all = "camelCase")]
pub struct AgentObservationSpec {
    pub agent: String,
    pub node: String,
    pub workload: WorkloadContainer,
    /// `learning`, `complete` or `partial` (events lost while learning), as on this node.
    pub status: BaselineStatus,
    #[serde(default)]
    pub observations: u64,
    #[serde(default)]
    pub events: u64,
    #[serde(default)]
    pub loss: LossCounts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned_to: Option<String>,
    /// Entries were left out: the learner's own limit, or this object's bounds.
    #[serde(default)]
    pub truncated: bool,
    /// Entries learned on this node but left out of `baseline` (bounds).
    #[serde(default)]
    pub omitted_entries: u64,
    /// Incidents raised while the agent learned on this node (a candidate holding them is
    /// refused by `baseline approve` unless forced).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incidents: Vec<String>,
    /// The approved AgentBaseline revision this node's collector judges the agent against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_revision: Option<u64>,
    pub baseline: BaselineSpec,
}

/// 64-bit FNV-1a of the agent key, as hex: names and labels need a short, stable token (not a
/// secret; the key itself is in `spec.agent`, and readers match on it).
pub fn agent_hash(agent: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in agent.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Lower-case letters, digits and '-' only, at most `max` bytes, no '-' at either end (a DNS
/// label, as object names and label values need).
fn dns_label(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= max {
            break;
        }
    }
    out.trim_matches('-').to_string()
}

/// The AgentBaseline object name of an agent: readable, and unique by the hash.
pub fn baseline_name(workload: &WorkloadContainer, agent: &str) -> String {
    let readable = dns_label(
        &format!("{}-{}-{}", workload.kind, workload.name, workload.container),
        200,
    );
    format!("{readable}-{}", &agent_hash(agent)[..8])
}

/// The AgentObservation object name of an agent on a node.
pub fn observation_name(workload: &WorkloadContainer, agent: &str, node: &str) -> String {
    format!("{}-{}", baseline_name(workload, agent), dns_label(node, 40))
}

/// A node name as a label value.
pub fn node_label_value(node: &str) -> String {
    dns_label(node, 63)
}

impl AgentObservationSpec {
    /// What `node` learned of an agent, from its learned baseline document, within the
    /// bounds; `None` for agents outside Kubernetes.
    pub fn from_learned(
        learned: &AgentBaseline,
        node: &str,
        approved_revision: Option<u64>,
    ) -> Option<Self> {
        let workload = WorkloadContainer::from_agent_key(&learned.metadata.agent)?;
        let (baseline, omitted) = bounded(&learned.spec);
        Some(Self {
            agent: learned.metadata.agent.clone(),
            node: node.to_string(),
            workload,
            status: learned.metadata.status,
            observations: learned.metadata.observations,
            events: learned.metadata.events,
            loss: learned.metadata.loss,
            learned_from: learned.metadata.learned_from.clone(),
            learned_to: learned.metadata.learned_to.clone(),
            truncated: learned.metadata.truncated || omitted > 0,
            omitted_entries: omitted,
            incidents: learned.metadata.incidents.clone(),
            approved_revision,
            baseline,
        })
    }
}

/// `spec` cut to [`MAX_OBSERVATION_ENTRIES`] entries and [`MAX_OBSERVATION_TEXT_BYTES`] of
/// entry text, section by section in document order; and how many entries were left out.
pub fn bounded(spec: &BaselineSpec) -> (BaselineSpec, u64) {
    let mut out = BaselineSpec::default();
    let (mut kept, mut bytes, mut omitted) = (0usize, 0usize, 0u64);
    for item in spec.items() {
        let size = item.describe().len() + item.section().len();
        if kept >= MAX_OBSERVATION_ENTRIES || bytes + size > MAX_OBSERVATION_TEXT_BYTES {
            omitted += 1;
            continue;
        }
        item.insert_into(&mut out);
        kept += 1;
        bytes += size;
    }
    (out, omitted)
}

/// A candidate baseline for one agent: the union of what every node observed (each entry
/// once), as a baseline document for review. Its status is the weakest of the nodes'
/// (`learning` while any still learns, `partial` if any lost events or was truncated); losses
/// and counts add up; incidents are kept so `approve` can refuse an attack learned as normal.
/// `None` when no observation is of `agent`.
pub fn candidate_from_observations<'a>(
    agent: &str,
    observations: impl IntoIterator<Item = &'a AgentObservationSpec>,
) -> Option<(AgentBaseline, Vec<String>)> {
    let mut spec = BaselineSpec::default();
    let mut nodes = BTreeSet::new();
    let mut status = BaselineStatus::Complete;
    let mut truncated = false;
    let (mut observed, mut events) = (0u64, 0u64);
    let mut loss = LossCounts::default();
    let mut incidents = BTreeSet::new();
    let mut learned_from: Option<String> = None;
    let mut learned_to: Option<String> = None;
    for observation in observations.into_iter().filter(|o| o.agent == agent) {
        nodes.insert(observation.node.clone());
        for item in observation.baseline.items() {
            item.insert_into(&mut spec);
        }
        status = match (status, observation.status) {
            (BaselineStatus::Learning, _) | (_, BaselineStatus::Learning) => {
                BaselineStatus::Learning
            }
            (BaselineStatus::Partial, _) | (_, BaselineStatus::Partial) => BaselineStatus::Partial,
            _ => BaselineStatus::Complete,
        };
        truncated |= observation.truncated;
        observed += observation.observations;
        events += observation.events;
        loss.dropped_events += observation.loss.dropped_events;
        loss.gap_bytes += observation.loss.gap_bytes;
        incidents.extend(observation.incidents.iter().cloned());
        // RFC 3339 UTC timestamps of one format sort as text.
        if let Some(from) = &observation.learned_from {
            if learned_from.as_ref().is_none_or(|f| from < f) {
                learned_from = Some(from.clone());
            }
        }
        if let Some(to) = &observation.learned_to {
            if learned_to.as_ref().is_none_or(|t| to > t) {
                learned_to = Some(to.clone());
            }
        }
    }
    if nodes.is_empty() {
        return None;
    }
    if truncated && status == BaselineStatus::Complete {
        status = BaselineStatus::Partial;
    }
    let workload = WorkloadContainer::from_agent_key(agent);
    let document = AgentBaseline {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        metadata: BaselineMetadata {
            agent: agent.to_string(),
            name: workload
                .as_ref()
                .map(|w| {
                    w.program
                        .rsplit(['/', ' '])
                        .next()
                        .unwrap_or("")
                        .to_string()
                })
                .unwrap_or_default(),
            status,
            learning_period_seconds: 0,
            learned_from,
            learned_to,
            observations: observed,
            events,
            loss,
            truncated,
            identity: IdentitySummary {
                workload: workload.map(|w| w.workload()).unwrap_or_default(),
                ..IdentitySummary::default()
            },
            incidents: incidents.into_iter().collect(),
        },
        spec,
        enforcement: None,
    };
    Some((document, nodes.into_iter().collect()))
}

impl AgentBaselineResource {
    /// The approved baseline as the document detection judges against.
    pub fn to_document(&self) -> AgentBaseline {
        AgentBaseline {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            metadata: BaselineMetadata {
                agent: self.spec.agent.clone(),
                name: self
                    .spec
                    .workload
                    .program
                    .rsplit(['/', ' '])
                    .next()
                    .unwrap_or("")
                    .to_string(),
                status: BaselineStatus::Complete,
                learning_period_seconds: 0,
                learned_from: None,
                learned_to: None,
                observations: 0,
                events: 0,
                loss: LossCounts::default(),
                truncated: false,
                identity: IdentitySummary {
                    workload: self.spec.workload.workload(),
                    ..IdentitySummary::default()
                },
                incidents: Vec::new(),
            },
            spec: self.spec.baseline.clone(),
            enforcement: None,
        }
    }
}

/// The two CustomResourceDefinitions as one YAML stream (what deploy/crds/ holds;
/// `make crds` regenerates it).
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt as _;
    let mut out = String::from(
        "# Generated by `make crds` (agentscope baseline crds) from the kube-rs types in\n\
         # crates/analysis/src/baseline/custom_resources.rs: do not edit by hand.\n",
    );
    for crd in [
        AgentBaselineResource::crd(),
        AgentObservationResource::crd(),
    ] {
        out.push_str("---\n");
        // Serialising a CRD (plain maps and strings) cannot fail.
        out.push_str(&serde_norway::to_string(&crd).unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::format::Item;

    const AGENT: &str = "k8s:support/Deployment/support-agent/agent:/usr/bin/python3 agent.py";

    #[test]
    fn the_committed_crds_are_the_generated_ones() {
        let path = std::path::Path::new(env!("AGENTSCOPE_REPO")).join("deploy/crds/crds.yaml");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == crd_yaml(),
            "{} differs from the CRDs the types generate: run `make crds` and commit it",
            path.display()
        );
        // The API server refuses `uniqueItems: true` (sets serialise as arrays).
        assert!(!committed.contains("uniqueItems"));
    }

    /// Where `schema` (at `path`) breaks the API server's rules for a structural schema
    /// (kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions,
    /// "Specifying a structural schema"), which kubernetes-validate does not check: every node
    /// has a type, `properties` and `additionalProperties` are not both set, no `uniqueItems:
    /// true`, no `$ref`, and logical junctors (`anyOf`, `oneOf`, ...) carry no types.
    fn structural_errors(schema: &serde_json::Value, path: &str, errors: &mut Vec<String>) {
        let Some(node) = schema.as_object() else {
            errors.push(format!("{path}: not an object"));
            return;
        };
        if !node.contains_key("type") && !node.contains_key("x-kubernetes-preserve-unknown-fields")
        {
            errors.push(format!("{path}: no type"));
        }
        if node.contains_key("properties") && node.contains_key("additionalProperties") {
            errors.push(format!("{path}: properties and additionalProperties"));
        }
        if node.get("uniqueItems") == Some(&serde_json::Value::Bool(true)) {
            errors.push(format!("{path}: uniqueItems"));
        }
        if node.contains_key("$ref") {
            errors.push(format!("{path}: $ref"));
        }
        for junctor in ["anyOf", "oneOf", "allOf", "not"] {
            if node.contains_key(junctor) {
                errors.push(format!("{path}: {junctor}"));
            }
        }
        for (name, child) in node
            .get("properties")
            .and_then(serde_json::Value::as_object)
            .into_iter()
            .flatten()
        {
            structural_errors(child, &format!("{path}.{name}"), errors);
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = node.get(key).filter(|c| c.is_object()) {
                structural_errors(child, &format!("{path}[{key}]"), errors);
            }
        }
    }

    #[test]
    fn the_schemas_are_structural() {
        use kube::CustomResourceExt as _;
        for crd in [
            AgentBaselineResource::crd(),
            AgentObservationResource::crd(),
        ] {
            let crd = serde_json::to_value(&crd).unwrap();
            let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
            let mut errors = Vec::new();
            structural_errors(schema, "", &mut errors);
            assert_eq!(errors, Vec::<String>::new(), "{}", crd["metadata"]["name"]);
        }
        // The check finds what it looks for.
        let mut errors = Vec::new();
        structural_errors(
            &serde_json::json!({"type": "object", "properties": {"a": {"uniqueItems": true}}}),
            "",
            &mut errors,
        );
        assert_eq!(errors, [".a: no type", ".a: uniqueItems"]);
    }

    #[test]
    fn workload_comes_from_kubernetes_agent_keys_only() {
        let workload = WorkloadContainer::from_agent_key(AGENT).unwrap();
        assert_eq!(workload.workload(), "support/Deployment/support-agent");
        assert_eq!(workload.container, "agent");
        assert_eq!(workload.program, "/usr/bin/python3 agent.py");
        assert!(WorkloadContainer::from_agent_key("host:/usr/bin/python3").is_none());
        assert!(WorkloadContainer::from_agent_key("k8s:?/Pod/x/?:/bin/sh").is_none());
        let name = observation_name(&workload, AGENT, "Node_A.example");
        assert!(
            name.starts_with("deployment-support-agent-agent-"),
            "{name}"
        );
        assert!(name.ends_with("-node-a-example"), "{name}");
        assert!(name.len() <= 253);
    }

    fn learned(items: &[Item], status: BaselineStatus) -> AgentBaseline {
        let mut spec = BaselineSpec::default();
        for item in items {
            item.insert_into(&mut spec);
        }
        AgentBaseline {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            metadata: BaselineMetadata {
                agent: AGENT.into(),
                name: "agent.py".into(),
                status,
                learning_period_seconds: 600,
                learned_from: None,
                learned_to: None,
                observations: 3,
                events: 30,
                loss: LossCounts::default(),
                truncated: false,
                identity: IdentitySummary::default(),
                incidents: Vec::new(),
            },
            spec,
            enforcement: None,
        }
    }

    #[test]
    fn observations_are_bounded_and_say_so() {
        let items: Vec<Item> = (0..MAX_OBSERVATION_ENTRIES + 10)
            .map(|i| Item::EgressName(format!("host-{i}.example")))
            .collect();
        let observation = AgentObservationSpec::from_learned(
            &learned(&items, BaselineStatus::Complete),
            "a",
            None,
        )
        .unwrap();
        assert_eq!(observation.baseline.len(), MAX_OBSERVATION_ENTRIES);
        assert_eq!(observation.omitted_entries, 10);
        assert!(observation.truncated);
        // Long entries are cut by bytes before the entry count is reached.
        let long: Vec<Item> = (0..200)
            .map(|i| Item::Table(format!("{i}{}", "x".repeat(8192))))
            .collect();
        let (kept, omitted) = bounded(&learned(&long, BaselineStatus::Complete).spec);
        assert!(kept.len() < 200 && omitted > 0);
        assert!(
            kept.items()
                .iter()
                .map(|i| i.describe().len())
                .sum::<usize>()
                <= MAX_OBSERVATION_TEXT_BYTES
        );
    }

    #[test]
    fn the_candidate_is_the_union_of_the_nodes_and_their_weakest_status() {
        let a = AgentObservationSpec::from_learned(
            &learned(
                &[Item::ToolOffered("read_file".into())],
                BaselineStatus::Complete,
            ),
            "node-a",
            None,
        )
        .unwrap();
        let b = AgentObservationSpec::from_learned(
            &learned(
                &[
                    Item::ToolOffered("read_file".into()),
                    Item::EgressName("api.example".into()),
                ],
                BaselineStatus::Partial,
            ),
            "node-b",
            None,
        )
        .unwrap();
        let (candidate, nodes) = candidate_from_observations(AGENT, [&a, &b]).unwrap();
        assert_eq!(nodes, ["node-a", "node-b"]);
        assert_eq!(candidate.spec.len(), 2);
        assert_eq!(candidate.metadata.status, BaselineStatus::Partial);
        assert_eq!(candidate.metadata.observations, 6);
        assert!(candidate_from_observations("k8s:other/Pod/p/c:x", [&a, &b]).is_none());
    }
}
