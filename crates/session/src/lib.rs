//! What every command that runs the pipeline shares: the options (capture, detection, memory)
//! flattened into each command, and the sinks a session's steps go to.
//!
//! `collect`, `replay` and `tui` take the same detection and memory options, and `collect` and
//! the live console the same capture options; they are defined once here and flattened into
//! each command (`#[command(flatten)]`), so a flag means the same thing everywhere.
//!
//! Whatever the source, an event read goes through [`Session::feed`] (or
//! [`Session::feed_into`] with a [`Sink`]), losses through [`Session::note_losses`], and the
//! end through [`Session::finish`]: the session itself is the analysis layer's
//! (`agentscope_analysis::session`, next to the pipeline it drives), recorded playback the
//! capture layer's (`agentscope_capture::capture::SessionReplay`); `recorder_sink`,
//! `server_sink` and `baseline_sink` are the sinks that live here, and
//! `kubernetes_baseline_store` shares baselines across nodes through the Kubernetes API.

pub mod baseline_sink;
pub mod capture_args;
pub mod detection_args;
pub mod kubernetes_baseline_store;
pub mod memory_args;
pub mod recorder_sink;
pub mod selector_args;
pub mod server_sink;
#[cfg(test)]
mod session_tests;
pub mod size_arg;

pub use agentscope_analysis::session::{self, sink, step};
pub use agentscope_analysis::session::{Losses, Session, Sink, SourceLosses, Step};
/// Recorded events through a session (moved to the capture layer; kept here for drivers).
pub use agentscope_capture::capture::session_replay as recorded;
pub use capture_args::CaptureArgs;
pub use detection_args::DetectionArgs;
pub use memory_args::MemoryArgs;
