//! On-node detection over what agentscope observes, without calling any LLM.
//!
//! Rules raise findings; an incident book correlates them; stories tell the incidents.
//! [`injection`] scores text an agent ingests (tool and MCP results, retrieved documents, web
//! pages, file contents, MCP tool descriptions) for prompt injection and explains every hit.
//! [`engine::Detector`] runs in the pipeline after the model and dispatches each observation
//! to the rules: [`taint`] (prompt injection in ingested content, tool misuse),
//! [`sensitive_access`] (with the classification in [`sensitive`]), [`exfiltration_rule`] (by
//! content match, in [`exfiltration`]), [`escape`] (an agent reaching past its container), and
//! baseline deviations. [`incident_book`] keeps the
//! findings ([`finding`]) and one incident per causal chain, counting repeats; [`story`] tells
//! an incident in one line; [`changes`] is the feed consumers follow; [`watch`] is the
//! per-agent state and its memory charge.
//! [`labels`] holds the OWASP LLM Top 10 2025, OWASP Agentic Top 10 2026 and MITRE ATLAS ids
//! that every detector's findings carry. [`kubernetes_request`] reads what a Kubernetes API
//! request asks for (verb, group, resource, namespace, name). The rules and the scoring are documented in
//! docs/detection.md.

mod benign_descriptions;
pub mod changes;
mod enforcement_rule;
pub mod engine;
pub mod escape;
pub mod exfiltration;
mod exfiltration_rule;
pub mod finding;
mod incident_book;
pub mod injection;
pub mod kubernetes_request;
pub mod labels;
pub mod sensitive;
mod sensitive_access;
pub mod story;
mod taint;
mod watch;
mod wording;

pub use changes::{DetectionChanges, DetectionCursor};
pub use engine::{Detector, DetectorOptions};
pub use finding::{
    ChainToolCall, Finding, FindingDetail, FindingKind, Incident, IncidentChain, IncidentIdentity,
    SensitiveKind, Severity,
};
pub use injection::{
    scan, scan_with, IngestSource, InjectionVerdict, RuleHit, Thresholds, Verdict,
};
pub use labels::Label;

#[cfg(test)]
mod tests;
