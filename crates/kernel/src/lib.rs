//! agentscope's kernel side, from userspace.
//!
//! Loads the kernel programs of `collector-ebpf`, attaches them (tracepoints for process, file
//! and network activity; uprobes on OpenSSL wherever it is mapped and on Go's `crypto/tls` in
//! Go executables), reads their ring buffer without blocking, and turns raw records into
//! [`agentscope_event::Event`]s enriched with the process table, and adds what only it can see:
//! the packages processes load, read from their own file systems ([`package_inventory`]). Later layers (reconstruction,
//! recording, the console) consume those events and never touch the kernel themselves.

pub mod collector;
pub mod enforcement;
pub mod enforcement_disarm;
pub mod enforcement_dns;
pub mod enforcement_file_refresh;
pub mod enforcement_files;
pub mod enforcement_pins;
pub mod enforcement_reports;
pub mod error;
mod escape_syscalls;
mod go_buildinfo;
mod go_pclntab;
pub mod go_tls_targets;
mod host_mounts;
pub mod kernel;
mod kernel_btf;
pub mod kernel_features;
mod left_out_reports;
pub mod output_tracking;
pub mod package_inventory;
pub mod package_location;
pub mod package_metadata;
pub mod ring_sizing;
pub mod tls_coverage;
pub mod tls_targets;

pub use collector::{Collector, CollectorOptions, ProbedFile, Summary};
pub use error::CollectorError;

// The layers below, under the names this crate's modules use for them.
pub(crate) use agentscope_event::{event, process_table, procfs};
pub(crate) use agentscope_memory_budget as memory_budget;
pub(crate) use agentscope_redact as redact;
