#!/usr/bin/env bash
# Runs the fuzz targets (cargo fuzz, nightly libFuzzer) for FUZZ_SECONDS each (default 300):
# the capture reader, seeded with the committed recordings, and the event pipeline
# (reconstruction, model, detection), seeded with the committed event fixtures and recordings
# converted to its input language, and the HTTP/2 parser on its own (http2_connection). Findings land in fuzz/artifacts/<target>/; a crash
# makes this script fail. FUZZ_TARGETS picks targets (default: all).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${FUZZ_SECONDS:-300}"
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
rustup component add rust-src --toolchain nightly >/dev/null 2>&1 || true
corpus=fuzz/corpus
mkdir -p "$corpus/capture_reader" "$corpus/capture_entries"
# Whole recordings seed the file-level target (CRCs make random files stop at the first block).
cp -n recordings/*.cap "$corpus/capture_reader/" 2>/dev/null || true
# Event sequences from real captures (an ordinary program, built without libFuzzer).
AYA_BUILD_SKIP=1 cargo run --quiet --manifest-path fuzz/Cargo.toml \
    --bin seed_event_pipeline -- "$corpus/event_pipeline" \
    tests/fixtures/{capture,postgres,redis,http2}/*.jsonl \
    tests/fixtures/mcp/*-events.jsonl recordings/*.cap
cd fuzz
for target in ${FUZZ_TARGETS:-capture_reader capture_entries event_pipeline http2_connection}; do
    echo "fuzz: $target for ${seconds}s"
    # -timeout: one input taking seconds is a hang worth reporting.
    AYA_BUILD_SKIP=1 cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" \
        -max_len=262144 -rss_limit_mb=4096 -timeout=10 2>&1 | tail -n 15
done
