//! The userspace pipeline after decoding: events → reconstruction → model.
//!
//! Live capture and replay both feed events here, in order, so they produce the same model.
//! Identity lookups are the one input from outside the event stream; they go through
//! [`IdentityLookup`] so a replay can answer them from its recording.

use crate::event::Event;
use crate::model::{IdentityLookup, Model, ModelOptions, ModelSnapshot};
use crate::process_table::ProcessTable;
use crate::reconstruct::{Observation, ReconstructOptions, Reconstructor};

pub struct Pipeline {
    reconstructor: Reconstructor,
    model: Model,
    identity: Box<dyn IdentityLookup + Send>,
    last_ts_ns: u64,
}

impl Pipeline {
    pub fn new(
        reconstruct: ReconstructOptions,
        model: ModelOptions,
        identity: Box<dyn IdentityLookup + Send>,
    ) -> Self {
        Self {
            reconstructor: Reconstructor::new(reconstruct),
            model: Model::new(model),
            identity,
            last_ts_ns: 0,
        }
    }

    /// Starts from a known process table (live capture: the collector's, seeded from /proc).
    pub fn with_processes(mut self, processes: ProcessTable) -> Self {
        self.reconstructor.set_processes(processes);
        self
    }

    /// Feeds one event; returns the observations it completed (already applied to the model).
    pub fn push(&mut self, event: &Event) -> Vec<Observation> {
        self.last_ts_ns = self.last_ts_ns.max(event.header.ts_ns);
        let observations = self.reconstructor.push(event);
        self.apply(&observations);
        observations
    }

    /// Capture ended: flushes connections still open (their exchanges come out flagged).
    pub fn finish(&mut self) -> Vec<Observation> {
        let observations = self.reconstructor.finish(self.last_ts_ns);
        self.apply(&observations);
        observations
    }

    fn apply(&mut self, observations: &[Observation]) {
        for observation in observations {
            self.model.apply(
                observation,
                self.reconstructor.processes(),
                self.identity.as_mut(),
            );
        }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn snapshot(&self) -> ModelSnapshot {
        self.model.snapshot(Some(self.reconstructor.stats()))
    }
}
