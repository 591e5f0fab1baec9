//! `P` in the console: promote the selected agent's baseline from audit to enforce (issue 17),
//! with the code `agentscope baseline promote` runs ([`agentscope_analysis::baseline::promote`]).
//!
//! The baseline is the file in the console's baseline directories (`--baseline DIR`, then
//! the config's `baseline_dir`) whose `metadata.agent` is the baseline the agent's
//! enforcement decisions named (else the agent's own key); the highest revision when several
//! are. Every category the file has in `audit` goes to `enforce`. [`plan`] does the promotion
//! in memory, so a refusal (partial learning, evidence of an incident) is shown before
//! anything is asked; [`write`] writes the result beside the input as
//! `<input name>.rev<N>.yaml` (an input already named `.rev<M>` loses that suffix), never
//! over an existing file. The input stays: a `--baseline DIR` holding both loads the higher
//! revision and names the other as set aside
//! ([`agentscope_analysis::baseline::load_baseline_dir_revisions`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use agentscope_analysis::baseline::{self, AgentBaseline, EnforceMode, PromoteRequest};
use anyhow::Context as _;

/// A promotion ready to be confirmed.
#[derive(Debug, Clone, PartialEq)]
pub struct PromotionPlan {
    pub input: PathBuf,
    pub output: PathBuf,
    /// Categories going from audit to enforce.
    pub categories: Vec<&'static str>,
    pub revision_before: u32,
    pub revision_after: u32,
    promoted: AgentBaseline,
}

impl PromotionPlan {
    /// The question, choice first (it must fit the status line at 80 columns).
    pub fn question(&self) -> String {
        format!(
            "y: promote {} audit→enforce · n: cancel ({} rev {}→{})",
            self.categories.join("+"),
            self.input.file_name().map_or_else(
                || self.input.display().to_string(),
                |n| n.to_string_lossy().into()
            ),
            self.revision_before,
            self.revision_after
        )
    }
}

/// The newest baseline file of `baseline_key` in `dirs` (unreadable files are skipped: a
/// directory of baselines may hold other YAML).
fn find_baseline(dirs: &[PathBuf], baseline_key: &str) -> Option<(PathBuf, AgentBaseline)> {
    let mut best: Option<(PathBuf, AgentBaseline)> = None;
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        paths.sort();
        for path in paths {
            let Ok(doc) = AgentBaseline::read_from(&path) else {
                continue;
            };
            if doc.metadata.agent != baseline_key {
                continue;
            }
            let revision = |d: &AgentBaseline| d.enforcement.as_ref().map_or(0, |e| e.revision);
            if best
                .as_ref()
                .is_none_or(|(_, b)| revision(&doc) > revision(b))
            {
                best = Some((path, doc));
            }
        }
    }
    best
}

/// Promotes `baseline_key`'s baseline in memory: its audited categories to enforce.
pub fn plan(dirs: &[PathBuf], baseline_key: &str) -> anyhow::Result<PromotionPlan> {
    let (input, before) = find_baseline(dirs, baseline_key).with_context(|| {
        let shown: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        format!(
            "no baseline of {baseline_key} in {} (--baseline DIR)",
            shown.join(", ")
        )
    })?;
    let policy = before.enforcement.clone().unwrap_or_default();
    let audit = |mode: EnforceMode| (mode == EnforceMode::Audit).then_some(EnforceMode::Enforce);
    let request = PromoteRequest {
        network: audit(policy.network),
        exec: audit(policy.exec),
        files: audit(policy.files),
    };
    let categories: Vec<&'static str> = [
        ("network", request.network),
        ("exec", request.exec),
        ("files", request.files),
    ]
    .into_iter()
    .filter_map(|(name, mode)| mode.map(|_| name))
    .collect();
    if categories.is_empty() {
        anyhow::bail!(
            "{}: no category in audit (promote it to audit first: agentscope baseline promote)",
            input.display()
        );
    }
    let promoted = baseline::promote(&before, request)
        .with_context(|| format!("cannot promote {}", input.display()))?;
    let revision_after = promoted.enforcement.as_ref().map_or(0, |e| e.revision);
    let stem = input
        .file_stem()
        .map_or_else(|| "baseline".into(), |s| s.to_string_lossy().into_owned());
    let output = input.with_file_name(format!(
        "{}.rev{revision_after}.yaml",
        without_revision(&stem)
    ));
    Ok(PromotionPlan {
        input,
        output,
        categories,
        revision_before: policy.revision,
        revision_after,
        promoted,
    })
}

/// `support.rev2` → `support`: a promoted file's name without its revision, so the next
/// revision is `support.rev3.yaml`, not `support.rev2.rev3.yaml`.
fn without_revision(stem: &str) -> &str {
    match stem.rsplit_once(".rev") {
        Some((base, number))
            if !base.is_empty()
                && !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit()) =>
        {
            base
        }
        _ => stem,
    }
}

/// Writes the promoted baseline (mode 0600, never over an existing file); returns its path.
pub fn write(plan: &PromotionPlan) -> anyhow::Result<&Path> {
    let mut file = agentscope_files::output_file::create_new(&plan.output)
        .with_context(|| format!("cannot create {}", plan.output.display()))?;
    file.write_all(plan.promoted.to_yaml().as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", plan.output.display()))?;
    Ok(&plan.output)
}

#[cfg(test)]
mod tests {
    use super::without_revision;

    #[test]
    fn a_revision_suffix_is_replaced_not_stacked() {
        assert_eq!(without_revision("support.rev2"), "support");
        assert_eq!(without_revision("support.rev12"), "support");
        assert_eq!(without_revision("support"), "support");
        assert_eq!(without_revision("support.review"), "support.review");
        assert_eq!(without_revision(".rev3"), ".rev3");
        assert_eq!(without_revision("a.rev"), "a.rev");
    }
}
