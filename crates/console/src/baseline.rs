//! `b` in the console: the selected agent's baseline, as detection in the pipeline learned
//! it, written to a YAML file in the format of `agentscope baseline export` (docs/baseline.md),
//! so a reviewer can keep it, diff it, or approve it for `--baseline DIR`.
//!
//! An agent with a high or critical finding is exported only when asked twice: `x` leaves out
//! what only its incidents' evidence stands for ([`incident_exclusion`], and the document
//! says what), `b` exports everything.
//!
//! Files are named `baseline-<agent name>-<UTC time>.yaml`: short enough for the status line
//! to show the whole path.
//!
//! Behind [`BaselineExporter`] so tests (and other front ends) can write elsewhere.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use agentscope_analysis::baseline::Exclusion;
use agentscope_analysis::detect::Severity;
use agentscope_analysis::pipeline::Pipeline;
use anyhow::Context as _;

use super::findings::FindingsPane;
use super::log::AgentLog;
use super::timeline_pane::overlaps;

/// Writes the baseline of the agent with the given key, without the excluded entries if
/// any; returns the file written.
pub type BaselineExporter =
    Box<dyn FnMut(&Pipeline, &str, Option<&Exclusion>) -> anyhow::Result<PathBuf>>;

/// What `x` leaves out of `agent_key`'s baseline: the entries only the evidence of its high
/// and critical findings stands for, among the observations the console's log holds.
pub fn incident_exclusion(
    findings: &FindingsPane,
    log: Option<&AgentLog>,
    agent_key: &str,
) -> Exclusion {
    let attacks: Vec<_> = findings
        .of_agent(agent_key)
        .filter(|f| f.severity >= Severity::High)
        .collect();
    let evidence: Vec<_> = attacks
        .iter()
        .flat_map(|f| f.evidence.iter().copied())
        .collect();
    let mut reason: Vec<String> = attacks
        .iter()
        .map(|f| {
            let title: String = f.title.chars().take(120).collect();
            format!("the evidence of {} ({title})", f.severity.name())
        })
        .collect();
    let Some(log) = log else {
        return Exclusion {
            reason: reason.join("; "),
            items: Vec::new(),
        };
    };
    if log.start() > 0 {
        reason.push(format!(
            "the console had dropped the agent's {} oldest observations, so an entry only              they shared with the evidence is excluded too",
            log.start()
        ));
    }
    let (ours, others): (Vec<_>, Vec<_>) = log
        .iter_from(log.start())
        .map(|(_, entry)| &entry.observation)
        .partition(|o| overlaps(&evidence, &o.events));
    Exclusion::of_evidence(
        reason.join("; "),
        ours.into_iter().map(|o| o.as_ref()),
        others.into_iter().map(|o| o.as_ref()),
    )
}

/// An agent key as a file-name part: letters, digits, `.`, `_` and `-` only, at most 80.
pub fn sanitise_key(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            c
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
        if out.len() >= 80 {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "agent".into()
    } else {
        out
    }
}

/// `2026-12-05T02:37:12Z` as a file-name part: `20261205T023712Z`.
fn file_time(unix_secs: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_secs);
    humantime::format_rfc3339_seconds(time)
        .to_string()
        .replace(['-', ':'], "")
}

/// Writes `baseline-<agent name>-<UTC time>.yaml` in `dir` (never over an existing file): the
/// baseline the pipeline's detection learned for the agent, without `exclusion`'s entries,
/// in the versioned format of `agentscope baseline export` (`apiVersion: agentscope.dev/v1`,
/// docs/baseline.md), so it can be reviewed, diffed and loaded with `--baseline DIR`. Its
/// header says what was excluded and why. Returns its path.
pub fn write_baseline(
    pipeline: &Pipeline,
    agent_key: &str,
    dir: &Path,
    unix_secs: u64,
    exclusion: Option<&Exclusion>,
) -> anyhow::Result<PathBuf> {
    let learned = pipeline
        .detector()
        .learner()
        .baseline(agent_key)
        .with_context(|| format!("nothing learned yet for agent {agent_key:?}"))?;
    let exclusion = exclusion.map(|e| e.within(&learned));
    let baseline = match &exclusion {
        Some(exclusion) => exclusion.apply(&learned),
        None => learned,
    };
    let yaml = baseline.to_yaml();
    // The agent's name (its program), not its key: the key holds the workload too, and a
    // 130-character name did not fit the status line.
    let name = pipeline
        .model()
        .agents()
        .find(|a| a.key == agent_key)
        .map_or_else(|| agent_key.to_string(), |a| a.name.clone());
    let name: String = sanitise_key(&name).chars().take(40).collect();
    let stem = format!("baseline-{name}-{}", file_time(unix_secs));
    let mut path = dir.join(format!("{stem}.yaml"));
    let mut n = 1;
    let mut file = loop {
        match agentscope_files::output_file::create_new(&path) {
            Ok(file) => break file,
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => {
                path = dir.join(format!("{stem}-{n}.yaml"));
                n += 1;
            }
            Err(err) => return Err(err).with_context(|| format!("creating {}", path.display())),
        }
    };
    let mut header = format!(
        "# Baseline of one agent, exported from the agentscope console (b).\n\
         # Agent: {}\n\
         # Format: docs/baseline.md. Load a directory of these with --baseline DIR.\n",
        agent_key.replace('\n', " ")
    );
    if let Some(exclusion) = &exclusion {
        header.push_str(&exclusion.comment());
    }
    file.write_all(header.as_bytes())
        .and_then(|()| file.write_all(yaml.as_bytes()))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The default exporter: YAML files in `dir`, named with the current Unix time.
pub fn yaml_exporter(dir: PathBuf) -> BaselineExporter {
    yaml_exporter_at(dir, || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    })
}

/// The default exporter with a given clock (tests).
pub fn yaml_exporter_at(dir: PathBuf, now_unix: impl Fn() -> u64 + 'static) -> BaselineExporter {
    Box::new(move |pipeline, key, exclusion| {
        write_baseline(pipeline, key, &dir, now_unix(), exclusion)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_safe_file_names() {
        assert_eq!(
            sanitise_key("host:/usr/bin/python3 /app/agent.py"),
            "host-usr-bin-python3-app-agent.py"
        );
        assert_eq!(
            sanitise_key("k8s:crm/Deployment/support/agent:/usr/bin/node"),
            "k8s-crm-Deployment-support-agent-usr-bin-node"
        );
        assert_eq!(sanitise_key("../../"), "..-..");
        assert_eq!(sanitise_key("///"), "agent");
        assert!(sanitise_key(&"x".repeat(500)).len() <= 80);
    }

    #[test]
    fn the_exported_baseline_is_private_and_never_replaces_a_file() {
        use agentscope_capture::capture::Replay;
        use std::os::unix::fs::PermissionsExt as _;
        let recording = Path::new(env!("AGENTSCOPE_REPO")).join("recordings/ordinary.cap");
        let mut replay = Replay::open(&recording).unwrap();
        replay.run_to_end();
        let pipeline = replay.pipeline();
        let key = pipeline.snapshot().agents[0].key.clone();
        let dir = tempfile::tempdir().unwrap();
        let first = write_baseline(pipeline, &key, dir.path(), 7, None).unwrap();
        assert_eq!(
            first.file_name().unwrap(),
            "baseline-incident_agent.py-19700101T000007Z.yaml"
        );
        let mode = std::fs::metadata(&first).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A link planted at the next name is skipped, not followed.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let stem = first.file_stem().unwrap().to_str().unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(format!("{stem}-1.yaml"))).unwrap();
        let second = write_baseline(pipeline, &key, dir.path(), 7, None).unwrap();
        assert_eq!(second, dir.path().join(format!("{stem}-2.yaml")));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }
}
