//! agentscope's events: what the kernel programs observed, decoded.
//!
//! The lowest userspace layer. [`event`] decodes ring-buffer records into [`Event`]s (untrusted
//! bytes: a short or unknown record is a [`DecodeError`], never a panic), [`event_json`] reads
//! their JSON-lines form back, [`procfs`] reads /proc, [`process_root`] reads files inside a process's own root, [`package`] holds the packages the collector read from there, [`tls_hello`] reads a ClientHello's server name, [`enforcement`] holds the kernel's enforcement decisions, [`escape_syscall`] the container-escape syscalls, [`cluster_objects`] the Kubernetes objects the collector read from the API, [`socket_ref`] names a plain socket across layers, [`tls_coverage`] says
//! whether a process's TLS plaintext is seen, and [`process_table`] keeps what is known
//! about each process so later layers can enrich events. Everything above (redaction,
//! reconstruction, analysis, capture, the console) consumes these types and never the raw ABI.

pub mod cluster_objects;
pub mod collector_counters;
pub mod dns;
pub mod enforcement;
pub mod escape_syscall;
pub mod event;
pub mod event_json;
pub mod package;
pub mod pid_keyed;
pub mod process_root;
pub mod process_table;
pub mod procfs;
pub mod program;
pub mod socket_ref;
pub mod synthetic;
pub mod tls_coverage;
pub mod tls_hello;

pub use event::{DecodeError, Event, EventBody, COLLECTOR_MADE_KINDS};
pub use socket_ref::SocketRef;
pub use tls_coverage::{NotVisibleReason, PlaintextMethod, TlsCoverage};
