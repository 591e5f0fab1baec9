//! The one output convention of commands whose output is data (`cap info`, `coverage`,
//! `baseline diff`, `baseline check`, `scan`): `-o text` for people (a header line, aligned
//! columns), `-o json` and `-o yaml` for programs, with the same field names in both. Event
//! streams (`collect --json`, `replay --json`) are JSON lines instead, one event per line.

use std::io::Write;

use clap::ValueEnum;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// For people: a header and aligned columns.
    #[default]
    Text,
    /// One JSON document (JSON lines where the output is a stream of records).
    Json,
    /// The same document as YAML.
    Yaml,
}

/// Writes `document` as JSON (pretty, one document) or YAML; text is each command's own.
pub fn write_document(
    out: &mut impl Write,
    format: OutputFormat,
    document: &impl Serialize,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json | OutputFormat::Text => {
            serde_json::to_writer_pretty(&mut *out, document)?;
            writeln!(out)?;
        }
        OutputFormat::Yaml => {
            let text = serde_norway::to_string(document)?;
            out.write_all(text.as_bytes())?;
        }
    }
    Ok(())
}
