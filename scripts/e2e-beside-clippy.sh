#!/usr/bin/env bash
# The privileged end-to-end tests, with clippy's check pass running beside them.
#
# The end-to-end files are the modules of one test binary (tests/e2e.rs says why); each runs in a
# process of its own, selected by its module filter (`e2e --test-threads=1 NAME::`). Before any
# runs, the binary's test list is checked: each filter must select at least one test and only
# tests of its own module (a filter `x::` also matches `y::x::z`), so no file runs nothing or
# another file's tests.
#
# Why: the end-to-end files keep about one of the machine's two cores busy, mostly waiting on
# agents, databases and the kernel; clippy's check pass is CPU work that shares nothing with the
# test build (check-mode artifacts). `cargo test` holds the target directory's lock until its
# last test ends, so the test binaries are built first and then run directly (from crates/cli,
# the directory `cargo test` runs them in), which leaves the lock to clippy. They run without
# the environment `cargo test` adds at run time (LD_LIBRARY_PATH with the toolchain's
# libraries, CARGO_*): the tests read their paths at compile time (`env!`), and a workload they
# trace then makes fewer failed library opens (tests/capture_files.rs sizes its workload for
# both).
#
# Two phases (the Makefile says which file is in which list, and why):
# 1. the --alone files, one at a time, with clippy beside them;
# 2. the --shared files, E2E_SHARED_LANES at a time (default 3: lanes taking the next file from
#    one queue, in the order given: longest first). Each file's output is printed whole when it
#    ends, so the log reads as `cargo test`'s would. Three lanes, not two, on a two-core machine:
#    these files spend much of their time waiting on agents, mock servers and the kernel (in the
#    fresh-clone CI run of 05ee4b3 the whole end-to-end step, clippy included, kept 1.45 of the
#    two cores busy on average), their collectors follow their own processes only, and they
#    assert no timing.
#
# 3. Beside both phases, after clippy: with --unit, the unit tests of every crate (`--lib
#    --bins`), then the --beside files (other crates' integration tests: recordings replayed
#    through the pipeline, no privilege). They are built in the same `cargo test --no-run` as
#    the end-to-end files (one build keeps both cores busy to its end, where two builds in a
#    row each idled one core at their tail) and run where clippy leaves a core free: clippy
#    ends before the alone files do. Each runs from its package's directory with
#    INSTA_WORKSPACE_ROOT set (insta otherwise asks `cargo metadata` at run time), so they see
#    what `cargo test` would show them.
#
# Usage: scripts/e2e-beside-clippy.sh [--unit] [--beside TEST_NAME...] --alone TEST_NAME...
#        --shared TEST_NAME...
# Prints each file's result, then what ran beside (clippy's output, the unit tests'); fails if
# any test file, unit test or clippy failed (everything runs whatever happened to the others).
set -uo pipefail
cd "$(dirname "$0")/.."
CARGO="${CARGO:-cargo}"
TIMEFORMAT="${TIMEFORMAT:-[time] %R s}"
lanes="${E2E_SHARED_LANES:-3}"
case "$lanes" in
  '' | *[!0-9]* | 0) echo "E2E_SHARED_LANES must be a positive number, not '$lanes'" >&2; exit 2 ;;
esac
usage="usage: $0 [--unit] [--beside TEST_NAME...] --alone TEST_NAME... --shared TEST_NAME..."
alone=()
shared=()
beside=()
unit=0
list=
for arg in "$@"; do
  case "$arg" in
    --alone) list=alone ;;
    --shared) list=shared ;;
    --beside) list=beside ;;
    --unit) unit=1; list= ;;
    *)
      case "$list" in
        alone) alone+=("$arg") ;;
        shared) shared+=("$arg") ;;
        beside) beside+=("$arg") ;;
        *) echo "$usage" >&2; exit 2 ;;
      esac
      ;;
  esac
done
all=("${alone[@]}" "${shared[@]}")
[ ${#all[@]} -gt 0 ] || { echo "$usage" >&2; exit 2; }
repo=$(pwd)

target_dir=$("$CARGO" metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
work="$target_dir/e2e-beside-clippy"
mkdir -p "$work"

test_args=(--test e2e)
for name in "${beside[@]}"; do test_args+=(--test "$name"); done
[ "$unit" -eq 0 ] || test_args+=(--lib --bins)

echo "e2e: building the test binaries"
time "$CARGO" test --locked --no-run --workspace --exclude agentscope-collector-ebpf \
  "${test_args[@]}" --message-format=json-render-diagnostics >"$work/build.json" || {
  echo "e2e: building the tests failed" >&2
  exit 1
}
# One pass over the build's messages: the executable of the end-to-end tests (printed), and
# what runs beside, after clippy (written to beside.list as
# "DIRECTORY<TAB>EXECUTABLE", the directory of its package, where `cargo test` runs it): each
# unit-test binary (a crate's lib or bin built as a test), then each --beside file.
e2e_binary=$(python3 - "$work/build.json" "$work/beside.list" "$unit" "${beside[@]}" <<'PY'
import json, os, sys
path, beside_list, unit, beside = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4:]
units, files = [], {}
for line in open(path):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") != "compiler-artifact" or not msg.get("executable") \
            or not msg["profile"]["test"]:
        continue
    entry = (os.path.dirname(msg["manifest_path"]), msg["executable"])
    if "test" in msg["target"]["kind"]:
        files[msg["target"]["name"]] = entry
    elif unit:
        units.append(entry)
if unit and not units:
    sys.exit("e2e: --unit, but the build made no unit-test binary")
missing = [name for name in beside + ["e2e"] if name not in files]
if missing:
    sys.exit(f"e2e: no test binary for {' '.join(missing)}")
with open(beside_list, "w") as out:
    for directory, executable in sorted(units, key=lambda entry: entry[1]) + [files[n] for n in beside]:
        out.write(f"{directory}\t{executable}\n")
print(files["e2e"][1])
PY
) || exit 1
# Each file's filter selects its own module's tests, and at least one.
"$e2e_binary" --list >"$work/e2e.list" 2>/dev/null || { echo "e2e: listing the end-to-end tests failed" >&2; exit 1; }
python3 - "$work/e2e.list" "${all[@]}" <<'PY' || exit 1
import sys
tests = [line[:-len(": test")] for line in open(sys.argv[1]).read().splitlines() if line.endswith(": test")]
wrong = []
for name in sys.argv[2:]:
    selected = [t for t in tests if f"{name}::" in t]
    if not selected:
        wrong.append(f"{name}:: selects no test")
    wrong += [f"{name}:: also selects {t}" for t in selected if not t.startswith(f"{name}::")]
if wrong:
    sys.exit("e2e: " + "; ".join(wrong))
PY

# Runs COMMAND... in DIRECTORY, its output to LOG and its exit status to STATUS_FILE, and prints
# its wall time and the CPU time of its processes (the command and what it started and waited
# for).
timed_run() {
  local log=$1 status_file=$2 directory=$3
  shift 3
  echo 0 >"$status_file"
  { TIMEFORMAT='%R s wall, cpu %U s user + %S s sys'
    time { (cd "$directory" && "$@") >"$log" 2>&1 || echo $? >"$status_file"; }; } 2>&1
}

echo "e2e: clippy runs beside the tests, then the unit tests (their output follows the tests')"
# One lane beside the test files: clippy, then the unit tests and the --beside files, each
# printed whole into one log; clippy's exit status goes to $work/clippy.status, the names of
# the unit-test binaries and files that failed to $work/beside.failed.
: >"$work/beside.failed"
(
  # AYA_BUILD_SKIP: clippy's build-script run is its own (clippy's wrapper is part of its
  # fingerprint), so without it the kernel programs would be built a second time for a pass
  # that only reads Rust source; the kernel programs' crate is not linted by this pass either
  # way.
  status=0
  (
    time AYA_BUILD_SKIP=1 "$CARGO" clippy --locked --workspace --exclude agentscope-collector-ebpf --all-targets -- -D warnings
  ) >"$work/clippy.log" 2>&1 || status=$?
  echo "$status" >"$work/clippy.status"
  began=$(date +%s)
  while IFS=$'\t' read -r directory executable; do
    [ -n "$executable" ] || continue
    cost=$(timed_run "$work/beside.one.log" "$work/beside.one.status" "$directory" \
             env INSTA_WORKSPACE_ROOT="$repo" "$executable")
    status=$(cat "$work/beside.one.status")
    echo "     Running ${executable#"$target_dir"/} in ${directory#"$repo"/} ($cost)"
    cat "$work/beside.one.log"
    if [ "$status" -ne 0 ]; then echo "${executable##*/}" >>"$work/beside.failed"; fi
  done <"$work/beside.list"
  echo "e2e: the unit tests and the --beside files took $(($(date +%s) - began)) s after clippy"
) >"$work/beside.log" 2>&1 &
beside_pid=$!
# Stop clippy and what follows it if this script is interrupted.
trap 'kill "$beside_pid" 2>/dev/null' EXIT

# One file: its output to its own log, printed whole (under a lock, so two lanes never
# interleave) when it ends; a failure is recorded in $work/failed.
# With its wall time, the CPU time of the file's processes (the test process and what it
# started and waited for: collectors, agents, mock servers; not podman's containers, which are
# the children of its monitor): CI's test phase keeps both cores busy, so what a file costs is
# its CPU time more than its wall time.
run_file() {
  local name=$1 log="$work/$1.log" status cost
  cost=$(timed_run "$log" "$work/$name.status" crates/cli "$e2e_binary" --test-threads=1 "$name::")
  status=$(cat "$work/$name.status")
  {
    flock 9
    echo "     Running tests/$name.rs ($cost)"
    cat "$log"
    if [ "$status" -ne 0 ]; then echo "$name" >>"$work/failed"; fi
  } 9>"$work/print.lock"
}

# A lane: takes the next file of the shared queue until it is empty.
run_lane() {
  local next
  while true; do
    next=$({
      flock 8
      read -r index <"$work/queue.next"
      echo $((index + 1)) >"$work/queue.next"
      echo "$index"
    } 8>"$work/queue.lock")
    [ "$next" -lt ${#shared[@]} ] || return 0
    run_file "${shared[$next]}"
  done
}

: >"$work/failed"
start=$(date +%s)
for name in "${alone[@]}"; do run_file "$name"; done
alone_end=$(date +%s)
echo "e2e: the files run alone took $((alone_end - start)) s"
echo 0 >"$work/queue.next"
lane_pids=()
for _ in $(seq 2 "$lanes"); do
  run_lane &
  lane_pids+=($!)
done
run_lane
for pid in "${lane_pids[@]}"; do wait "$pid"; done
echo "e2e: the shared files took $(($(date +%s) - alone_end)) s in $lanes lanes"
echo "e2e: the test files took $(($(date +%s) - start)) s"
mapfile -t failed <"$work/failed"

wait "$beside_pid"
trap - EXIT
clippy_status=$(cat "$work/clippy.status" 2>/dev/null || echo "no status")
echo "e2e: clippy's output:"
cat "$work/clippy.log"
if [ -s "$work/beside.list" ]; then
  echo "e2e: the unit tests' and the --beside files' output:"
  cat "$work/beside.log"
fi
mapfile -t beside_failed <"$work/beside.failed"

status=0
if [ ${#failed[@]} -gt 0 ]; then
  echo "e2e: FAILED test files: ${failed[*]}" >&2
  status=1
fi
if [ ${#beside_failed[@]} -gt 0 ]; then
  echo "e2e: FAILED beside the end-to-end files: ${beside_failed[*]}" >&2
  status=1
fi
if [ "$clippy_status" != 0 ]; then
  echo "e2e: clippy FAILED (exit $clippy_status)" >&2
  status=1
fi
exit $status
