//! What the TLS probes cost per call: a 64-byte TLS echo round trip (two writes and two reads
//! at the TLS API, client and server in one process) timed without the collector and while
//! `agentscope collect --json --pid PID` follows the process, for Go `crypto/tls`
//! (tests/agents/go_tls_loop, uprobes on `Write`'s and `Read`'s stack checks and `Read`'s copy
//! into the caller's buffer, see crates/kernel/src/go_tls_targets.rs) and for OpenSSL
//! (tests/agents/openssl_tls_loop.py with the system libssl: uprobes and a uretprobe on
//! `SSL_write_ex`/`SSL_read_ex`), for OpenSSL 3 located in a stripped static binary
//! (tests/agents/openssl_static_loop.c over Debian's libssl.a, built here: uprobes and a
//! uretprobe on the located `ssl_write_internal`/`ssl_read_internal`, each call's `SSL*`
//! checked in the kernel), and for BoringSSL linked into Bun (tests/agents/bun_tls_loop.mjs
//! run by the plain Bun `make setup` installs: `SSL_write`/`SSL_read` located in the stripped
//! binary, probes at offsets with the kernel-side argument checks), and for rustls with aws-lc
//! (tests/agents/rustls_tls_loop, the stack of Codex CLI 0.171, built and cached by its
//! build.sh: aws-lc's `EVP_AEAD_CTX_seal`/`open` located, the plaintext copied at seal entry
//! and bound at the `writev` that sends the record, and at open's return bound to the
//! thread's last socket read). The probe cost per TLS call is (probed − unprobed) / 4.
//! The rustls programs bind records to sockets the collector saw connect, so its probed time
//! is taken on a second rustls loop that connects after the collector started
//! (`wait-to-connect`); its unprobed time on one connected before, like the others.
//! Each workload is one long-lived process that runs N round trips per line on its stdin, so
//! the collector follows it by pid and sees nothing else. Both workloads run throughout: the
//! unprobed times are taken before any collector starts (uprobes are attached to a file for
//! every process that maps it, and `collect` detaches them in the background after it
//! exits, so an unprobed time taken after a collector ran can still pay for its probes); then
//! one collector follows both pids for both probed times. Needs root and `make setup`.
//! Run: `cargo bench -p agentscope --bench tls_probe_overhead` (or `make bench`).

use std::path::Path;
use std::process::{Command, Stdio};

use criterion::{criterion_group, criterion_main, Criterion};

#[path = "support/workload.rs"]
mod workload;
use workload::{Collector, Loop};

fn measure(c: &mut Criterion, name: &str, variant: &str, workload: &mut Loop) {
    workload.measure(c, &format!("tls_round_trip/{name}"), variant, 20, 8);
}

/// The plain Bun `make setup` installs from npm.
fn bun_binary() -> std::path::PathBuf {
    let agents = std::env::var_os("AGENTSCOPE_AGENTS_DIR").map_or_else(
        || {
            std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/agentscope/agents")
        },
        std::path::PathBuf::from,
    );
    let path = agents.join("bun-linux-x64@1.3.5/node_modules/@oven/bun-linux-x64/bin/bun");
    assert!(
        path.is_file(),
        "{} is missing: run `make setup`",
        path.display()
    );
    path
}

fn bench(c: &mut Criterion) {
    workload::require_root("tls_probe_overhead");
    let repo = Path::new(env!("AGENTSCOPE_REPO"));
    let dir = tempfile::tempdir().unwrap();
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(dir.path().join("go_tls_loop"))
        .arg(".")
        .current_dir(repo.join("tests/agents/go_tls_loop"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .status()
        .expect("go build (make setup installs golang-go)");
    assert!(built.success(), "building go_tls_loop failed");

    let static_loop = dir.path().join("openssl_static_loop");
    let built = Command::new("gcc")
        .args(["-O2", "-s", "-static", "-pthread", "-o"])
        .arg(&static_loop)
        .arg(repo.join("tests/agents/openssl_static_loop.c"))
        .args(["-lssl", "-lcrypto"])
        .stderr(Stdio::null())
        .status()
        .expect("gcc (make setup installs it and libssl-dev)");
    assert!(built.success(), "building openssl_static_loop failed");

    // Built once per machine (make setup; aws-lc's C build), a no-op check here.
    let built = Command::new(repo.join("tests/agents/rustls_tls_loop/build.sh"))
        .env("CARGO", env!("CARGO"))
        .stderr(Stdio::inherit())
        .output()
        .expect("tests/agents/rustls_tls_loop/build.sh");
    assert!(built.status.success(), "building rustls_tls_loop failed");
    let rustls_loop = String::from_utf8(built.stdout).unwrap().trim().to_string();

    let mut go = Loop::start(&mut Command::new(dir.path().join("go_tls_loop")));
    let mut openssl = Loop::start(
        Command::new("python3")
            .arg(repo.join("tests/agents/openssl_tls_loop.py"))
            .arg("--cert-dir")
            .arg(dir.path().join("cert")),
    );
    // The loop makes its certificate with the Python loop's: start it once that exists.
    let cert_dir = dir.path().join("cert");
    let mut located = Loop::start(
        Command::new(&static_loop)
            .arg(cert_dir.join("cert.pem"))
            .arg(cert_dir.join("key.pem")),
    );
    let mut bun = Loop::start(
        Command::new(bun_binary())
            .arg(repo.join("tests/agents/bun_tls_loop.mjs"))
            .arg("--cert-dir")
            .arg(&cert_dir),
    );
    let rustls_command = || {
        let mut command = Command::new(&rustls_loop);
        command
            .arg(cert_dir.join("cert.pem"))
            .arg(cert_dir.join("key.pem"));
        command
    };
    let mut rustls = Loop::start(&mut rustls_command());
    let mut rustls_followed = Loop::start_waiting(rustls_command().arg("wait-to-connect"));
    measure(c, "go_crypto_tls", "unprobed", &mut go);
    measure(c, "openssl", "unprobed", &mut openssl);
    measure(c, "openssl_located", "unprobed", &mut located);
    measure(c, "boringssl_located_bun", "unprobed", &mut bun);
    measure(c, "rustls_located", "unprobed", &mut rustls);
    let collector = Collector::follow(&[
        go.child.id(),
        openssl.child.id(),
        located.child.id(),
        bun.child.id(),
        rustls_followed.child.id(),
    ]);
    rustls_followed.connect();
    measure(c, "go_crypto_tls", "probed", &mut go);
    measure(c, "openssl", "probed", &mut openssl);
    measure(c, "openssl_located", "probed", &mut located);
    measure(c, "boringssl_located_bun", "probed", &mut bun);
    measure(c, "rustls_located", "probed", &mut rustls_followed);
    drop(collector);
}

criterion_group!(benches, bench);
criterion_main!(benches);
