//! agentscope's userspace collector.
//!
//! Loads the kernel programs of `collector-ebpf`, attaches them (tracepoints for process, file
//! and network activity; uprobes on OpenSSL wherever it is mapped), reads their ring buffer
//! without blocking, and turns raw records into [`event::Event`]s enriched with the process
//! table. Later layers (reconstruction, recording, the console) consume those events and never
//! touch the kernel themselves.

pub mod baseline;
pub mod capture;
pub mod collector;
pub mod detect;
pub mod dns;
pub mod error;
pub mod event;
pub mod event_json;
pub mod identity;
pub mod input_file;
pub mod kernel;
mod kernel_btf;
pub mod memory_budget;
pub mod model;
pub mod output_file;
pub mod output_tracking;
pub mod pipeline;
pub mod process_table;
pub mod procfs;
pub mod reconstruct;
pub mod redact;
pub mod serve;
pub mod tls_targets;

pub use collector::{Collector, CollectorOptions, Summary};
pub use error::CollectorError;
pub use event::{DecodeError, Event, EventBody};
