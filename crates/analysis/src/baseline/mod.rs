//! Per-agent baselines: what each agent normally does, learned from its observations over a
//! learning period, exported as a versioned YAML document (and as a Kubescape
//! `ApplicationProfile`), compared between versions, and used to report what an agent does
//! that it never did before.
//!
//! - [`BaselineLearner`] accumulates a baseline per agent key (keys survive pod churn).
//! - [`BaselineJudge`] learns too, and reports [`Deviation`]s against the approved baseline of
//!   an agent, or its learned one once the learning period is over.
//! - [`AgentBaseline`] is the document (`apiVersion: agentscope.dev/v1`, docs/baseline.md);
//!   [`load_baseline_dir`] reads a directory of approved ones (the latest revision of each
//!   agent's); [`diff`] compares two.
//! - [`enforcement`]: the policy section a baseline gains when [`promote`]d to enforcement.
//! - [`kubescape::application_profile`] writes the Kubescape shape.
//! - [`learn_from_events`] runs recorded events through the pipeline into a judge.
//! - [`custom_resources`]: the `AgentBaseline` and `AgentObservation` custom resources that
//!   share baselines across nodes through the Kubernetes API, and merging observations.

pub mod collapse;
pub mod custom_resources;
pub mod diff;
pub mod enforcement;
pub mod exclusion;
pub mod format;
pub mod interpreters;
pub mod items;
pub mod judge;
pub mod kubescape;
pub mod learner;
pub mod replay;

pub use diff::{diff, BaselineDiff, SectionDiff};
pub use enforcement::{promote, EnforceMode, Enforcement, PromoteRefusal, PromoteRequest};
pub use exclusion::Exclusion;
pub use format::{
    file_name_for, load_baseline_dir, load_baseline_dir_revisions, AgentBaseline, ApiEndpoint,
    BaselineDir, BaselineError, BaselineMetadata, BaselineSpec, BaselineStatus, Category,
    FileAccess, Item, LossCounts, SetAside, API_VERSION, KIND,
};
pub use judge::{BaselineJudge, BaselineSource, Deviation};
pub use learner::{BaselineLearner, LearnerOptions};
pub use replay::{learn_from_events, learn_from_feed, EventFeed, ReplayOptions, ReplayOutcome};

#[cfg(test)]
mod tests;
