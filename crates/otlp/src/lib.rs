//! OTLP export of what agentscope observes, into any OpenTelemetry Collector: LLM calls, tool
//! calls, MCP requests and agent runs as spans named and attributed by the OpenTelemetry GenAI
//! and MCP semantic conventions, findings and incidents as log records, each with the
//! resource (node, pod, namespace, workload, container, service account, process) of the agent
//! run it belongs to. Built on the `opentelemetry` crates' data types and OTLP exporters, with
//! a bounded queue and a thread of its own, so capture never waits on the network.
//!
//! Layering: a sink of the session (`agentscope_analysis::session::Sink`), beside the sinks of
//! `agentscope-session`; it reads steps and the model, and calls nothing above.

pub mod export_queue;
pub mod genai_spans;
pub mod http_failure_reason;
pub mod options;
pub mod resource;
pub mod sink;
pub mod tls;
pub mod trace_ids;

pub use export_queue::ExportCounts;
pub use options::{Endpoint, OtlpOptions, Protocol};
pub use sink::OtlpSink;
pub use tls::TlsFiles;
