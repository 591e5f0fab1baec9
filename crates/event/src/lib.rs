//! agentscope's events: what the kernel programs observed, decoded.
//!
//! The lowest userspace layer. [`event`] decodes ring-buffer records into [`Event`]s (untrusted
//! bytes: a short or unknown record is a [`DecodeError`], never a panic), [`event_json`] reads
//! their JSON-lines form back, [`procfs`] reads /proc, and [`process_table`] keeps what is known
//! about each process so later layers can enrich events. Everything above (redaction,
//! reconstruction, analysis, capture, the console) consumes these types and never the raw ABI.

pub mod dns;
pub mod event;
pub mod event_json;
pub mod process_table;
pub mod procfs;
pub mod program;
pub mod synthetic;

pub use event::{DecodeError, Event, EventBody};
