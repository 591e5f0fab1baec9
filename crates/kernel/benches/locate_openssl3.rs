//! Time to locate OpenSSL 3's `ssl_read_internal`/`ssl_write_internal` in Codex CLI's static
//! executables (Rust, musl: 86 MB for 0.101.0, 315 MB for 0.171.0), from a warm page cache,
//! aws-lc's AEAD seal and open under rustls in 0.171.0 (`aws_lc`), and the whole inspection
//! the collector makes of a new executable (exported symbols, BoringSSL, OpenSSL 3, then
//! rustls's aws-lc): what it spends once per binary (results are cached per device and
//! inode). Both releases are installed by `make setup`. Also the whole inspection of the
//! rustls + aws-lc-rs echo loop (tests/agents/rustls_tls_loop, a 4 MB glibc PIE, built by its
//! build.sh): what a small Rust program's first exec waits for before its probes are attached.
//! Run: `cargo bench -p agentscope-kernel --bench locate_openssl3`.

use agentscope_kernel::tls_targets::{aws_lc, inspect_detailed, openssl3::locate, TlsInspection};
use criterion::{criterion_group, criterion_main, Criterion};

fn codex_binary(version: &str) -> std::path::PathBuf {
    let agents = std::env::var_os("AGENTSCOPE_AGENTS_DIR").map_or_else(
        || {
            std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/agentscope/agents")
        },
        std::path::PathBuf::from,
    );
    let vendor = agents.join(format!(
        "codex@{version}/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl"
    ));
    ["codex/codex", "bin/codex"]
        .iter()
        .map(|p| vendor.join(p))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("Codex CLI {version} is missing: run `make setup`"))
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("locate_openssl3");
    group.sample_size(10);
    for version in ["0.101.0", "0.171.0"] {
        let path = codex_binary(version);
        group.bench_function(format!("codex@{version}"), |b| {
            b.iter(|| {
                let file = std::fs::File::open(&path).unwrap();
                // SAFETY: read-only mapping of a file nothing writes during the benchmark.
                let map = unsafe { memmap2::Mmap::map(&file).unwrap() };
                let found = locate(&map).unwrap().unwrap();
                std::hint::black_box(found)
            })
        });
        if version == "0.171.0" {
            group.bench_function(format!("aws-lc codex@{version}"), |b| {
                b.iter(|| {
                    let file = std::fs::File::open(&path).unwrap();
                    // SAFETY: as above.
                    let map = unsafe { memmap2::Mmap::map(&file).unwrap() };
                    let found = aws_lc::locate(&map).unwrap().unwrap();
                    std::hint::black_box(found)
                })
            });
        }
        group.bench_function(format!("inspect codex@{version}"), |b| {
            b.iter(|| {
                let inspection = inspect_detailed(&path).unwrap();
                assert!(matches!(inspection, TlsInspection::Target(_)));
                std::hint::black_box(inspection)
            })
        });
    }
    let built = std::process::Command::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/agents/rustls_tls_loop/build.sh"),
    )
    .env("CARGO", env!("CARGO"))
    .output()
    .expect("tests/agents/rustls_tls_loop/build.sh");
    assert!(built.status.success(), "building the rustls loop failed");
    let rustls_loop = String::from_utf8(built.stdout).unwrap().trim().to_string();
    group.bench_function("inspect rustls_tls_loop", |b| {
        b.iter(|| {
            let inspection = inspect_detailed(std::path::Path::new(&rustls_loop)).unwrap();
            assert!(matches!(inspection, TlsInspection::Target(_)));
            std::hint::black_box(inspection)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
