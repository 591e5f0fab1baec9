//! `b` in the console: the selected agent's baseline, as detection in the pipeline learned
//! it, written to a YAML file in the format of `agentscope baseline export` (docs/baseline.md),
//! so a reviewer can keep it, diff it, or approve it for `--baseline DIR`.
//!
//! Behind [`BaselineExporter`] so tests (and other front ends) can write elsewhere.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use agentscope_analysis::pipeline::Pipeline;
use anyhow::Context as _;

/// Writes the baseline of the agent with the given key; returns the file written.
pub type BaselineExporter = Box<dyn FnMut(&Pipeline, &str) -> anyhow::Result<PathBuf>>;

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

/// Writes `agentscope-baseline-<key>-<unix time>.yaml` in `dir` (never over an existing
/// file): the baseline the pipeline's detection learned for the agent, in the versioned format
/// of `agentscope baseline export` (`apiVersion: agentscope.dev/v1`, docs/baseline.md), so
/// it can be reviewed, diffed and loaded with `--baseline DIR`. Returns its path.
pub fn write_baseline(
    pipeline: &Pipeline,
    agent_key: &str,
    dir: &Path,
    unix_secs: u64,
) -> anyhow::Result<PathBuf> {
    let baseline = pipeline
        .detector()
        .learner()
        .baseline(agent_key)
        .with_context(|| format!("nothing learned yet for agent {agent_key:?}"))?;
    let yaml = baseline.to_yaml();
    let stem = format!(
        "agentscope-baseline-{}-{unix_secs}",
        sanitise_key(agent_key)
    );
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
    let header = "# Baseline of one agent, exported from the agentscope console (b).\n\
                  # Format: docs/baseline.md. Load a directory of these with --baseline DIR.\n";
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
    Box::new(move |pipeline, key| write_baseline(pipeline, key, &dir, now_unix()))
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
        let first = write_baseline(pipeline, &key, dir.path(), 7).unwrap();
        let mode = std::fs::metadata(&first).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A link planted at the next name is skipped, not followed.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let stem = first.file_stem().unwrap().to_str().unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(format!("{stem}-1.yaml"))).unwrap();
        let second = write_baseline(pipeline, &key, dir.path(), 7).unwrap();
        assert_eq!(second, dir.path().join(format!("{stem}-2.yaml")));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }
}
