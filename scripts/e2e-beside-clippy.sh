#!/usr/bin/env bash
# The privileged end-to-end tests, with clippy's check pass running beside them.
#
# Why: the end-to-end files run one at a time (each starts its own collector) and keep about
# one of the machine's two cores busy, mostly waiting on agents, databases and the kernel;
# clippy's check pass is CPU work that shares nothing with the test build (check-mode
# artifacts). `cargo test` holds the target directory's lock until its last test ends, so
# the test binaries are built first and then run directly (from crates/cli, the directory
# `cargo test` runs them in), which leaves the lock to clippy. They run without the
# environment `cargo test` adds at run time (LD_LIBRARY_PATH with the toolchain's libraries,
# CARGO_*): the tests read their paths at compile time (`env!`), and a workload they trace
# then makes fewer failed library opens (tests/capture_files.rs sizes its workload for both).
#
# Usage: scripts/e2e-beside-clippy.sh TEST_NAME...   (the Makefile passes $(E2E_TESTS))
# Prints each file's result as `cargo test` would, then clippy's output; fails if any test
# file or clippy failed (every file runs whatever happened to the others).
set -uo pipefail
cd "$(dirname "$0")/.."
CARGO="${CARGO:-cargo}"
TIMEFORMAT="${TIMEFORMAT:-[time] %R s}"
[ $# -gt 0 ] || { echo "usage: $0 TEST_NAME..." >&2; exit 2; }

target_dir=$("$CARGO" metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
work="$target_dir/e2e-beside-clippy"
mkdir -p "$work"

test_args=()
for name in "$@"; do test_args+=(--test "$name"); done

echo "e2e: building the test binaries"
time "$CARGO" test --locked --no-run --workspace --exclude agentscope-collector-ebpf \
  "${test_args[@]}" --message-format=json-render-diagnostics >"$work/build.json" || {
  echo "e2e: building the end-to-end tests failed" >&2
  exit 1
}
# The executable of each requested test target, in the order asked.
mapfile -t binaries < <(python3 - "$work/build.json" "$@" <<'PY'
import json, sys
found = {}
for line in open(sys.argv[1]):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") \
            and "test" in msg["target"]["kind"]:
        found[msg["target"]["name"]] = msg["executable"]
for name in sys.argv[2:]:
    if name not in found:
        sys.exit(f"e2e: no test binary for {name}")
    print(found[name])
PY
) || exit 1
[ ${#binaries[@]} -eq $# ] || { echo "e2e: expected $# test binaries, found ${#binaries[@]}" >&2; exit 1; }

echo "e2e: clippy runs beside the tests (its output follows them)"
# AYA_BUILD_SKIP: clippy's build-script run is its own (clippy's wrapper is part of its
# fingerprint), so without it the kernel programs would be built a second time for a pass that
# only reads Rust source; the kernel programs' crate is not linted by this pass either way.
(
  time AYA_BUILD_SKIP=1 "$CARGO" clippy --locked --workspace --exclude agentscope-collector-ebpf --all-targets -- -D warnings
) >"$work/clippy.log" 2>&1 &
clippy_pid=$!
# Stop clippy if this script is interrupted.
trap 'kill "$clippy_pid" 2>/dev/null' EXIT

failed=()
start=$(date +%s)
for i in "${!binaries[@]}"; do
  name="${@:$((i + 1)):1}"
  echo "     Running tests/$name.rs"
  if ! (cd crates/cli && "${binaries[$i]}" --test-threads=1); then
    failed+=("$name")
  fi
done
echo "e2e: the test files took $(($(date +%s) - start)) s"

clippy_status=0
wait "$clippy_pid" || clippy_status=$?
trap - EXIT
echo "e2e: clippy's output:"
cat "$work/clippy.log"

status=0
if [ ${#failed[@]} -gt 0 ]; then
  echo "e2e: FAILED test files: ${failed[*]}" >&2
  status=1
fi
if [ "$clippy_status" -ne 0 ]; then
  echo "e2e: clippy FAILED (exit $clippy_status)" >&2
  status=1
fi
exit $status
