//! Time to locate BoringSSL's `SSL_write`/`SSL_read` in Claude Code's native binaries (Bun,
//! 236 MB and 402 MB), from a warm page cache: what the collector spends once per binary
//! (results are cached per device and inode). Both releases are installed by `make setup`.
//! Run: `cargo bench -p agentscope-kernel --bench locate_boringssl`.

use agentscope_kernel::tls_targets::boringssl::locate;
use criterion::{criterion_group, criterion_main, Criterion};

fn claude_binary(version: &str) -> std::path::PathBuf {
    let agents = std::env::var_os("AGENTSCOPE_AGENTS_DIR").map_or_else(
        || {
            std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/agentscope/agents")
        },
        std::path::PathBuf::from,
    );
    let path = agents.join(format!(
        "claude-code@{version}/node_modules/@anthropic-ai/claude-code-linux-x64/claude"
    ));
    assert!(
        path.is_file(),
        "{} is missing: run `make setup`",
        path.display()
    );
    path
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("locate_boringssl");
    group.sample_size(10);
    for version in ["2.1.113", "2.1.332"] {
        let path = claude_binary(version);
        group.bench_function(format!("claude-code@{version}"), |b| {
            b.iter(|| {
                let file = std::fs::File::open(&path).unwrap();
                // SAFETY: read-only mapping of a file nothing writes during the benchmark.
                let map = unsafe { memmap2::Mmap::map(&file).unwrap() };
                let found = locate(&map).unwrap().unwrap();
                std::hint::black_box(found)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
