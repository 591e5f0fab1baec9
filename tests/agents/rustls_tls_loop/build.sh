#!/bin/sh
# Builds the rustls + aws-lc-rs TLS loop (release, stripped: the shape of a shipped Rust
# binary) and prints the executable's path. Its own lockfile and target directory, outside the
# workspace: aws-lc-sys's C build (about a minute of CPU) is paid once per machine, by
# `make setup`, and every later call (the locator's unit tests, tests/rustls_capture.rs, the
# tls_probe_overhead bench) is cargo's no-op check (well under a second).
# Target directory: $AGENTSCOPE_RUSTLS_LOOP_TARGET, by default
# $HOME/.cache/agentscope/rustls-tls-loop-target.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
target=${AGENTSCOPE_RUSTLS_LOOP_TARGET:-${HOME:?HOME or AGENTSCOPE_RUSTLS_LOOP_TARGET must be set}/.cache/agentscope/rustls-tls-loop-target}
"${CARGO:-cargo}" build --quiet --release --locked --manifest-path "$here/Cargo.toml" --target-dir "$target" >&2
echo "$target/release/rustls_tls_loop"
