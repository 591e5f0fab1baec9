//! The detection options every command that runs the pipeline shares (`collect`, `replay`,
//! `tui`): approved baselines to judge against, how long baselines learn, and the thresholds
//! on the prompt-injection detector's calibrated score.

use std::path::PathBuf;

use agentscope_analysis::baseline::{load_baseline_dir_revisions, LearnerOptions};
use agentscope_analysis::detect::{DetectorOptions, Thresholds};
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
    #[command(flatten)]
    pub injection: InjectionThresholdArgs,
}

/// The thresholds on the prompt-injection detector's calibrated score (`collect`, `replay`,
/// `tui`, and `scan`), each defaulting to the shipped one.
#[derive(Args, Debug, Clone, Default)]
pub struct InjectionThresholdArgs {
    /// Calibrated prompt-injection score (probability, 0 to 1) from which ingested content is
    /// `suspicious` (default: the shipped threshold, chosen for 2.5 % false positives on the
    /// validation split; docs/detection.md).
    #[arg(long, value_name = "P", value_parser = parse_probability)]
    pub suspicious_threshold: Option<f32>,
    /// Calibrated prompt-injection score (probability, 0 to 1) from which ingested content is
    /// an `injection` (default: the shipped threshold, chosen for 2 % false positives on the
    /// validation split).
    #[arg(long, value_name = "P", value_parser = parse_probability)]
    pub injection_threshold: Option<f32>,
}

impl InjectionThresholdArgs {
    /// The configured thresholds, each defaulting to the shipped one; an error when
    /// `suspicious` is above `injection`.
    pub fn thresholds(&self) -> anyhow::Result<Thresholds> {
        let shipped = Thresholds::shipped();
        Thresholds::new(
            self.suspicious_threshold.unwrap_or(shipped.suspicious),
            self.injection_threshold.unwrap_or(shipped.injection),
        )
        .map_err(anyhow::Error::msg)
    }
}

/// A probability from 0 to 1.
fn parse_probability(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{text:?} is not a probability from 0 to 1")),
    }
}

impl DetectionArgs {
    pub fn options(&self) -> anyhow::Result<DetectorOptions> {
        let injection_thresholds = self.injection.thresholds()?;
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
            injection_thresholds,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        detection: DetectionArgs,
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("agentscope").chain(args.iter().copied()))
    }

    #[test]
    fn injection_thresholds_default_to_the_shipped_ones_and_reach_the_detector() {
        let cli = parse(&[]).unwrap();
        let options = cli.detection.options().unwrap();
        assert_eq!(options.injection_thresholds, Thresholds::shipped());

        let cli = parse(&["--injection-threshold", "0.9"]).unwrap();
        let options = cli.detection.options().unwrap();
        assert_eq!(options.injection_thresholds.injection, 0.9);
        assert_eq!(
            options.injection_thresholds.suspicious,
            Thresholds::shipped().suspicious
        );
    }

    #[test]
    fn bad_injection_thresholds_are_refused() {
        assert!(parse(&["--injection-threshold", "1.5"]).is_err());
        assert!(parse(&["--suspicious-threshold", "nan"]).is_err());
        let cli = parse(&[
            "--suspicious-threshold",
            "0.8",
            "--injection-threshold",
            "0.5",
        ])
        .unwrap();
        let err = cli.detection.options().unwrap_err().to_string();
        assert!(err.contains("above the injection threshold"), "{err}");
    }
}
