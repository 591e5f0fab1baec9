//! On-node detection over what agentscope observes, without calling any LLM.
//!
//! [`injection`] scores text an agent ingests (tool and MCP results, retrieved documents, web
//! pages, file contents, MCP tool descriptions) for prompt injection and explains every hit.
//! [`labels`] holds the OWASP LLM Top 10 2025, OWASP Agentic Top 10 2026 and MITRE ATLAS ids
//! that every detector's findings carry. The rules and the scoring are documented in
//! docs/detection.md.

pub mod injection;
pub mod labels;

pub use injection::{scan, IngestSource, InjectionVerdict, RuleHit, Verdict};
pub use labels::Label;
