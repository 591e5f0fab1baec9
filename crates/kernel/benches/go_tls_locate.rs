//! How long the Go `crypto/tls` locator takes per executable, which the collector pays once
//! per new binary (cached by device and inode) before it can attach: the test agent built
//! with and without symbols (tests/agents/go_agent/build.sh; needs golang-go), the Go
//! toolchain's own `go` command (a larger Go binary), and a large non-Go executable, where
//! the answer must come fast: Claude Code's 370 MB native binary when `make setup` installed
//! it, else `/bin/ls`.
//! Run: `cargo bench -p agentscope-kernel --bench go_tls_locate` (or `make bench`).

use std::path::{Path, PathBuf};
use std::process::Command;

use agentscope_kernel::go_tls_targets::{analyse, GoTlsAnalysis};
use criterion::{criterion_group, criterion_main, Criterion};

fn claude_binary() -> Option<PathBuf> {
    let home = std::env::var("HOME").ok()?;
    let root = Path::new(&home).join(".cache/agentscope/agents");
    // The newest installed release first.
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(&root)
        .ok()?
        .flatten()
        .map(|e| {
            e.path()
                .join("node_modules/@anthropic-ai/claude-code-linux-x64/claude")
        })
        .filter(|p| p.is_file())
        .collect();
    candidates.sort();
    candidates.pop()
}

fn go_command() -> Option<PathBuf> {
    let out = Command::new("go").args(["env", "GOROOT"]).output().ok()?;
    let root = String::from_utf8(out.stdout).ok()?;
    let go = Path::new(root.trim()).join("bin/go");
    go.is_file().then_some(go)
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("AGENTSCOPE_REPO")).join("tests/agents/go_agent/build.sh");
    let built = Command::new(&script).arg(dir.path()).status().unwrap();
    assert!(built.success(), "building the Go agent failed");
    let mut binaries = vec![
        ("go_agent", dir.path().join("go_agent")),
        ("go_agent_stripped", dir.path().join("go_agent_stripped")),
    ];
    binaries.extend(go_command().map(|p| ("go_command", p)));
    let large = claude_binary().unwrap_or_else(|| PathBuf::from("/bin/ls"));
    binaries.push(("large_non_go", large));

    let mut group = c.benchmark_group("go_tls_locate");
    group.sample_size(20);
    for (name, path) in &binaries {
        let size = std::fs::metadata(path).unwrap().len();
        let outcome = analyse(path).unwrap();
        let kind = match &outcome {
            GoTlsAnalysis::Probeable(t) => format!(
                "probeable: Write {:?}, Read {:?}, Read's result {:?}",
                t.write_probe, t.read_probe, t.read_result
            ),
            other => format!("{other:?}"),
        };
        println!("{name}: {} ({size} bytes): {kind}", path.display());
        group.bench_function(*name, |b| b.iter(|| analyse(path).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
