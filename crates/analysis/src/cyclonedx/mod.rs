//! The AI-BOM in a standard format: CycloneDX 1.6 JSON (`agentscope aibom -o cyclonedx`).
//! [`types`] is the part of the format written, [`aibom`] builds the document from the
//! model's agents and graph.

pub mod aibom;
pub mod types;

pub use aibom::{aibom_document, purl, Producer};
pub use types::Bom;
