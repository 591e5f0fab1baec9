//! A capture session: the options every command that runs the pipeline shares.
//!
//! `collect`, `replay` and `tui` take the same detection and memory options, and `collect` and
//! the live console the same capture options; they are defined once here and flattened into
//! each command (`#[command(flatten)]`), so a flag means the same thing everywhere.

pub mod capture_args;
pub mod detection_args;
pub mod memory_args;
pub mod size_arg;

pub use capture_args::CaptureArgs;
pub use detection_args::DetectionArgs;
pub use memory_args::MemoryArgs;
