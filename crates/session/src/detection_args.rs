//! The detection options every command that runs the pipeline shares (`collect`, `replay`,
//! `tui`): approved baselines to judge against, and how long baselines learn.

use std::path::PathBuf;

use agentscope_analysis::baseline::{load_baseline_dir_revisions, LearnerOptions};
use agentscope_analysis::detect::DetectorOptions;
use anyhow::Context as _;
use clap::Args;

#[derive(Args, Debug, Clone, Default)]
pub struct DetectionArgs {
    /// Judge agents against the approved baselines in DIR (`*.yaml`, written by `b` in the
    /// console or `agentscope baseline export`) instead of what is learned while running.
    #[arg(long, value_name = "DIR")]
    pub baseline: Option<PathBuf>,
    /// How long each agent's baseline learns, from its first observation, in seconds of event
    /// time; after that, what it never did is reported.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub learning_period: u64,
}

impl DetectionArgs {
    pub fn options(&self) -> anyhow::Result<DetectorOptions> {
        let approved = match &self.baseline {
            Some(dir) => {
                let loaded = load_baseline_dir_revisions(dir).with_context(|| {
                    format!(
                        "loading approved baselines from {} (export them with `b` in the \
                         console or `agentscope baseline export`)",
                        dir.display()
                    )
                })?;
                // Older revisions promotion left beside the newer: named, not judged against.
                for set_aside in &loaded.set_aside {
                    eprintln!("agentscope: baseline {set_aside}");
                }
                loaded.baselines.into_values().collect()
            }
            None => Vec::new(),
        };
        Ok(DetectorOptions {
            learner: LearnerOptions::default().with_learning_period_seconds(self.learning_period),
            approved,
        })
    }
}
