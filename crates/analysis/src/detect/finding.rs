//! What detection reports: [`Finding`]s (one detector's judgement of one thing an agent did)
//! and [`Incident`]s (the findings of one agent that one causal chain links, told as a story).
//! Both serialise into `--graph-json` and captures' replays; docs/detection.md describes every
//! field.

use serde::Serialize;

use crate::baseline::{BaselineSource, BaselineStatus, Category};
use crate::reconstruct::EventRange;

use super::injection::{IngestSource, RuleHit, Thresholds, Verdict};
use super::labels::Label;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Content the agent ingested carries instructions for the model.
    PromptInjection,
    /// A tool call requested by a model turn that had ingested injected content, and what it
    /// did.
    ToolMisuse,
    /// Something the agent's baseline never had.
    BaselineDeviation,
    /// Secrets, service-account tokens, personal data, the Kubernetes API.
    SensitiveAccess,
    /// Data the agent read leaving in requests to a destination outside its baseline.
    Exfiltration,
    /// The kernel denied (or, in audit mode, would have denied) something the agent's
    /// promoted baseline does not allow.
    Enforcement,
    /// The agent, or something it started, reached past its container: namespaces, mounts,
    /// root changes, kernel modules, ptrace outside its tree, a container runtime's socket,
    /// another pod's token, pods created or entered through the Kubernetes API.
    AgentEscape,
}

impl FindingKind {
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::PromptInjection => "prompt injection",
            FindingKind::ToolMisuse => "tool misuse",
            FindingKind::BaselineDeviation => "baseline deviation",
            FindingKind::SensitiveAccess => "sensitive access",
            FindingKind::Exfiltration => "exfiltration",
            FindingKind::Enforcement => "enforcement",
            FindingKind::AgentEscape => "agent escape",
        }
    }
}

/// One detector's judgement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// `f-N`, numbered in the order findings are raised (the same live and in a replay).
    pub id: String,
    pub kind: FindingKind,
    pub agent: String,
    pub severity: Severity,
    /// One line for people.
    pub summary: String,
    /// When it happened: monotonic event time and wall-clock time.
    pub ts_ns: u64,
    pub time_unix_ns: u64,
    pub pid: u32,
    /// The raw events it rests on.
    pub events: Vec<EventRange>,
    /// The raw events of what it is about, a subset of `events` (which adds causes, sightings
    /// and repeats): the ingest that carried injected content, the actions a misused tool
    /// call caused (empty until one is linked), the read, the request that carried the data.
    /// A console's walk through an incident stops once at each finding's subject.
    pub subject_events: Vec<EventRange>,
    pub labels: Vec<Label>,
    /// The incident it belongs to, if any.
    pub incident: Option<String>,
    pub detail: FindingDetail,
}

/// What each kind of finding found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FindingDetail {
    PromptInjection {
        source: IngestSource,
        /// Where the content came from, for people (`result of tool read_file`,
        /// `description of MCP tool lookup from http://…`).
        channel: String,
        tool: Option<String>,
        call_id: Option<String>,
        /// The calibrated probability of injection (docs/detection.md).
        score: f32,
        verdict: Verdict,
        /// The thresholds the verdict was judged against (shipped or configured).
        thresholds: Thresholds,
        /// Each rule that fired, with the phrase it matched.
        hits: Vec<RuleHit>,
        /// The start of the content (at most 240 bytes), for recognising it.
        excerpt: String,
        /// How many times the same content reached the agent (tool result, then the model
        /// request that carried it, ...).
        sightings: u32,
    },
    ToolMisuse {
        tool: String,
        call_id: Option<String>,
        arguments: serde_json::Value,
        /// The prompt-injection finding whose content the requesting model turn had read.
        caused_by: String,
        /// The tool had never been called by this agent before.
        first_use: bool,
        /// Why the call counts as misuse (its arguments come from the injected content,
        /// carry data the agent read, or it touched sensitive data).
        reason: String,
        /// What the call did, as the model's attribution linked it (graph node ids).
        actions: Vec<String>,
    },
    BaselineDeviation {
        category: Category,
        item: String,
        section: &'static str,
        baseline: BaselineSource,
        baseline_status: BaselineStatus,
        kubescape_rule: Option<&'static str>,
    },
    SensitiveAccess {
        what: SensitiveKind,
        /// The file, table, or API route.
        target: String,
    },
    Enforcement {
        /// `would_block` (audit mode) or `blocked`.
        action: agentscope_event::enforcement::EnforceAction,
        /// `host:port` (`[v6]:port`) the agent tried to reach.
        destination: String,
        protocol: String,
        /// The baseline whose policy decided, and its revision.
        baseline: Option<String>,
        revision: u32,
        /// The tool call the attempt was linked to (its name), when one was.
        tool: Option<String>,
        call_id: Option<String>,
    },
    AgentEscape {
        primitive: super::escape::EscapePrimitive,
        /// The command, syscall (`setns(fd 3, mnt) = 0`), socket, file or API request
        /// (`create pods/exec web-0 in shop`).
        target: String,
        /// The syscall's result (negative: the kernel refused it) or the API's HTTP status.
        result: Option<i64>,
        /// The process that did it (its `comm`).
        command: String,
    },
    Exfiltration {
        /// `host:port` the data went to.
        destination: String,
        /// The requests that carried read data, and the bytes of read data they carried.
        requests: u32,
        matched_bytes: usize,
        /// Where the matched data was read (`result of tool query_database`).
        origins: Vec<String>,
        /// Up to three matched pieces, cut to 40 bytes each, for recognising the data.
        samples: Vec<String>,
        /// Why the destination counts as outside the baseline.
        why_new: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SensitiveKind {
    ServiceAccountToken,
    SecretFile,
    PersonalData,
    KubernetesApi,
}

/// Who the agent was acting as: the identity end of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct IncidentIdentity {
    pub workload: String,
    pub pod: Option<String>,
    pub service_account: Option<String>,
    pub cloud_roles: Vec<String>,
    pub uid: u32,
    pub user: Option<String>,
}

/// Findings of one agent linked through the model turn that caused them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    /// `inc-N`, numbered in the order incidents open.
    pub id: String,
    pub agent: String,
    /// The agent's display name.
    pub agent_name: String,
    pub severity: Severity,
    /// The chain in one line: trigger → tool calls → data → egress → identity.
    pub story: String,
    pub opened_ns: u64,
    pub time_unix_ns: u64,
    /// Event time of the latest change: a finding added, a repeat.
    pub updated_ns: u64,
    /// How many times the chain happened: a later conversation that reads the same injected
    /// content and repeats the same steps counts here instead of adding to the chain.
    pub occurrences: u32,
    /// Event time of the latest occurrence's latest finding.
    pub last_seen_ns: u64,
    pub identity: IncidentIdentity,
    /// Finding ids, in the order they joined.
    pub findings: Vec<String>,
    /// The raw events of every finding.
    pub events: Vec<EventRange>,
    pub labels: Vec<Label>,
    pub chain: IncidentChain,
}

/// The parts of the story, for consoles that show them one per line.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct IncidentChain {
    /// What started it (`prompt injection in the result of tool read_file (…)`).
    pub trigger: String,
    /// Tool calls the model made after it, with what they touched.
    pub tool_calls: Vec<ChainToolCall>,
    /// Sensitive data and APIs touched.
    pub data: Vec<String>,
    /// Where read data went.
    pub egress: Vec<String>,
    /// What the kernel's enforcement stopped (or would have, in audit mode) along the chain.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub enforcement: Vec<String>,
    /// How the agent reached past its container along the chain (agent-escape findings).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub escape: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ChainToolCall {
    pub name: String,
    pub call_id: Option<String>,
    /// Its arguments, in one line (`(command=curl … | sh)`).
    pub arguments: String,
    /// Graph nodes it touched (`data:table:crm.customers`, `command:/bin/sh`).
    pub touched: Vec<String>,
    pub first_use: bool,
    /// How many calls with this name and these arguments the model made in the incident's
    /// occurrences (the id is that of the first).
    pub calls: u32,
}
