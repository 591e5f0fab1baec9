//! The OTLP sink: a session's steps, translated into GenAI spans and finding records
//! ([`crate::genai_spans`]), handed to the export queue ([`crate::export_queue`]) without ever
//! waiting on the network. `collect` and `replay` both drive it, so a recording exports what
//! its live run exported.

use std::time::Instant;

use agentscope_analysis::session::{Session, Sink, Step};
use agentscope_event::Event;

use crate::export_queue::{ExportCounts, ExportQueue};
use crate::genai_spans::{ContentPolicy, GenAiTranslator};
use crate::options::OtlpOptions;

pub struct OtlpSink {
    translator: GenAiTranslator,
    queue: ExportQueue,
    /// Messages for the user (an export error), said once each until the next different one.
    said: Option<String>,
}

impl OtlpSink {
    /// Starts the exporter thread; fails when the endpoint cannot be used at all (never
    /// because the collector is unreachable: that costs spans, counted, not the run).
    pub fn start(options: &OtlpOptions) -> std::io::Result<Self> {
        Ok(Self {
            translator: GenAiTranslator::new(
                options.node_name.clone(),
                ContentPolicy {
                    export: options.content,
                    keep_secrets: options.keep_secrets,
                },
            ),
            queue: ExportQueue::start(options)?,
            said: None,
        })
    }

    /// The counts so far.
    pub fn counts(&self) -> ExportCounts {
        self.queue.counts()
    }

    /// A new export error since the last call, worded for the user.
    pub fn take_message(&mut self) -> Option<String> {
        let error = self.queue.take_error()?;
        if self.said.as_deref() == Some(error.as_str()) {
            return None;
        }
        self.said = Some(error.clone());
        Some(format!(
            "OTLP export failed (spans and records are dropped and counted): {error}"
        ))
    }

    /// Starts sending what is queued at once (a stop), while the caller finishes its other
    /// outputs; [`OtlpSink::settle`] then waits for the rest.
    pub fn begin_settle(&self) {
        self.queue.begin_finish();
    }

    /// Sends what is queued until `deadline`, then counts the rest as dropped.
    pub fn settle(&self, deadline: Instant) -> ExportCounts {
        self.queue.finish(deadline)
    }

    fn translate(&mut self, step: &Step, session: &Session) {
        let pipeline = session.pipeline();
        let mut out = Vec::new();
        self.translator.step(
            &step.observations,
            &step.findings,
            &step.incidents,
            pipeline.model(),
            pipeline.processes(),
            &mut out,
        );
        self.queue.push(out);
    }
}

impl Sink for OtlpSink {
    fn step(&mut self, _: Option<&Event>, step: &Step, session: &Session) -> std::io::Result<()> {
        self.translate(step, session);
        Ok(())
    }

    fn finish(&mut self, step: &Step, session: &Session) -> std::io::Result<()> {
        self.translate(step, session);
        let mut out = Vec::new();
        self.translator.finish(&mut out);
        self.queue.push(out);
        Ok(())
    }
}
