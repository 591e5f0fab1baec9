//! A capture session: the options every command that runs the pipeline shares, and the one
//! step that drives the pipeline from a source to its sinks.
//!
//! `collect`, `replay` and `tui` take the same detection and memory options, and `collect` and
//! the live console the same capture options; they are defined once here and flattened into
//! each command (`#[command(flatten)]`), so a flag means the same thing everywhere.
//!
//! Whatever the source, an event read goes through [`Session::feed`] (or
//! [`Session::feed_into`] with a [`Sink`]), losses through [`Session::note_losses`], and the
//! end through [`Session::finish`]: see the `session` module for what one step does, and
//! `recorder_sink`, `server_sink` and `baseline_sink` for the sinks that live here.

pub mod baseline_sink;
pub mod capture_args;
pub mod detection_args;
pub mod memory_args;
pub mod recorded;
pub mod recorder_sink;
pub mod server_sink;
pub mod session;
#[cfg(test)]
mod session_tests;
pub mod sink;
pub mod size_arg;
pub mod step;

pub use capture_args::CaptureArgs;
pub use detection_args::DetectionArgs;
pub use memory_args::MemoryArgs;
pub use session::Session;
pub use sink::Sink;
pub use step::{Losses, SourceLosses, Step};
