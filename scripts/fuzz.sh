#!/usr/bin/env bash
# Runs the capture-reader fuzz targets (cargo fuzz, nightly libFuzzer) for FUZZ_SECONDS each
# (default 300), seeded with the committed recordings. Findings land in
# collector/fuzz/artifacts/<target>/; a crash makes this script fail.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${FUZZ_SECONDS:-300}"
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup component add rust-src --toolchain nightly >/dev/null 2>&1 || true
corpus=collector/fuzz/corpus
mkdir -p "$corpus/capture_reader" "$corpus/capture_entries"
# Whole recordings seed the file-level target (CRCs make random files stop at the first block).
cp -n recordings/*.cap "$corpus/capture_reader/" 2>/dev/null || true
cd collector/fuzz
for target in capture_reader capture_entries; do
    echo "fuzz: $target for ${seconds}s"
    AYA_BUILD_SKIP=1 cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" \
        -max_len=262144 -rss_limit_mb=4096 2>&1 | tail -n 15
done
