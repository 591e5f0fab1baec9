//! Capture: agentscope's recordings (`.cap`) and its served live stream.
//!
//! [`capture`] holds the file format, the recorder, the reader and replay; [`serve`] streams the
//! same entries to remote consoles. A recording is just another source of events: replaying it
//! drives the same [`agentscope_analysis::pipeline::Pipeline`] as live capture.

pub mod capture;
pub mod serve;

// The layers below, under the names this crate's modules use for them.
pub(crate) use agentscope_analysis::{baseline, detect, model, pipeline, session};
pub(crate) use agentscope_event::{event, event_json};
pub(crate) use agentscope_files::{input_file, output_file};
pub(crate) use agentscope_memory_budget as memory_budget;
pub(crate) use agentscope_reconstruct as reconstruct;
