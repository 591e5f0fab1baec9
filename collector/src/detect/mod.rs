//! On-node detection over what agentscope observes, without calling any LLM.
//!
//! [`injection`] scores text an agent ingests (tool and MCP results, retrieved documents, web
//! pages, file contents, MCP tool descriptions) for prompt injection and explains every hit.
//! [`engine::Detector`] runs in the pipeline after the model: it raises findings (prompt
//! injection in ingested content, tool misuse, baseline deviations, sensitive access,
//! exfiltration by content match, in [`sensitive`] and [`exfiltration`]) and correlates them
//! through the model turn into incidents ([`finding`]).
//! [`labels`] holds the OWASP LLM Top 10 2025, OWASP Agentic Top 10 2026 and MITRE ATLAS ids
//! that every detector's findings carry. The rules and the scoring are documented in
//! docs/detection.md.

pub mod engine;
pub mod exfiltration;
pub mod finding;
pub mod injection;
pub mod labels;
pub mod sensitive;

pub use engine::{Detector, DetectorOptions};
pub use finding::{
    ChainToolCall, DetectionUpdate, Finding, FindingDetail, FindingKind, Incident, IncidentChain,
    IncidentIdentity, SensitiveKind, Severity,
};
pub use injection::{scan, IngestSource, InjectionVerdict, RuleHit, Verdict};
pub use labels::Label;

#[cfg(test)]
mod tests;
