//! Analysis: what the agents on the node are and do, and what of it is an attack.
//!
//! [`pipeline`] drives reconstructed observations through [`model`] (agents, their graph and
//! AI-BOM), [`baseline`] (what each agent normally does) and [`detect`] (findings and
//! incidents); [`cyclonedx`] writes agents' AI-BOMs as CycloneDX documents; [`posture`] compares what each agent may do with what it does. It sits above reconstruction and identity and below capture, the console and
//! the CLI, which only consume what it produces.

pub mod baseline;
pub mod cyclonedx;
pub mod detect;
pub mod model;
pub mod pipeline;
pub mod posture;
pub mod session;
#[cfg(test)]
mod test_observations;

// The layers below, under the names this crate's modules use for them.
pub(crate) use agentscope_event::{event, process_table, program};
#[cfg(test)]
pub(crate) use agentscope_event::{event_json, procfs};
pub(crate) use agentscope_files::output_file;
pub(crate) use agentscope_identity as identity;
pub(crate) use agentscope_memory_budget as memory_budget;
pub(crate) use agentscope_reconstruct as reconstruct;
