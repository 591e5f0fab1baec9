//! The files agentscope reads and writes, handled safely.
//!
//! [`input_file`] opens inputs (captures, baselines) with clear errors for FIFOs, directories
//! and missing files; [`output_file`] writes outputs (recordings, graph JSON, baselines) with
//! mode 0600, never over one of the run's inputs, never through a symlink, atomically. Every
//! layer that writes a file uses these two, so the rules are decided once. [`disk_sync`]
//! syncs a file to disk in a helper process, so that neither an event loop nor a process's
//! exit waits for the disk.

pub mod disk_sync;
pub mod input_file;
pub mod output_file;
