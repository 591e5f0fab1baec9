#!/usr/bin/env bash
# Fails if a test file would not run in `make test`: every module of the end-to-end test binary
# (tests/e2e.rs, one per privileged end-to-end file) must be named exactly once in the
# Makefile's end-to-end lists (E2E_ALONE and E2E_SHARED), every file of tests/ must be such a
# module, the CLI package (crates/cli) must have no other integration test, and every
# integration test of another crate must be named in UNPRIVILEGED_TESTS (both lists passed here
# as arguments).
#
# Why: a file left out of the lists builds and passes clippy but never runs in CI, which looks
# exactly like a green test; a file of tests/ that tests/e2e.rs does not name is not even
# compiled.
#
# Usage: scripts/check-e2e-lists.sh E2E_TEST_NAME... --unprivileged TEST_NAME...
set -euo pipefail
cd "$(dirname "$0")/.."
e2e=()
unprivileged=()
list=e2e
for arg in "$@"; do
  case "$arg" in
    --unprivileged) list=unprivileged ;;
    *) if [ "$list" = e2e ]; then e2e+=("$arg"); else unprivileged+=("$arg"); fi ;;
  esac
done
declared=$(sed -n 's/^mod \([a-z0-9_]*\);$/\1/p' tests/e2e.rs | grep -vx support | sort)
listed=$(printf '%s\n' "${e2e[@]}" | sort)
status=0
duplicates=$(printf '%s\n' "${e2e[@]}" | sort | uniq -d)
if [ -n "$duplicates" ]; then
  echo "check-e2e-lists: listed more than once in the Makefile: $duplicates" >&2
  status=1
fi
missing=$(comm -23 <(echo "$declared") <(echo "$listed" | uniq))
if [ -n "$missing" ]; then
  echo "check-e2e-lists: end-to-end modules of tests/e2e.rs that no Makefile list runs:" $missing >&2
  status=1
fi
unknown=$(comm -13 <(echo "$declared") <(echo "$listed" | uniq))
if [ -n "$unknown" ]; then
  echo "check-e2e-lists: the Makefile lists files tests/e2e.rs does not declare as modules:" $unknown >&2
  status=1
fi
files=$(for file in tests/*.rs; do basename "$file" .rs; done | grep -vx e2e | sort)
not_modules=$(comm -23 <(echo "$files") <(echo "$declared"))
if [ -n "$not_modules" ]; then
  echo "check-e2e-lists: files of tests/ that tests/e2e.rs does not declare (never compiled):" $not_modules >&2
  status=1
fi
other_tests=$( (sed -n '/^\[\[test\]\]/,/^name/{s/^name = "\(.*\)"/\1/p}' crates/cli/Cargo.toml
                for file in crates/cli/tests/*.rs; do [ -e "$file" ] && basename "$file" .rs; done) |
              grep -vx e2e || true)
if [ -n "$other_tests" ]; then
  echo "check-e2e-lists: crates/cli has integration tests besides e2e, which make test does not run:" $other_tests >&2
  status=1
fi
# The other crates' integration tests (recordings replayed through the pipeline: no privilege)
# run in `make test` and `make test-unit` from the Makefile's UNPRIVILEGED_TESTS.
# Declared with `[[test]]`, or found by Cargo in the crate's tests/ directory.
for manifest in crates/*/Cargo.toml; do
  [ "$manifest" = crates/cli/Cargo.toml ] && continue
  crate_dir=$(dirname "$manifest")
  for name in $( (sed -n '/^\[\[test\]\]/,/^name/{s/^name = "\(.*\)"/\1/p}' "$manifest"
                  for file in "$crate_dir"/tests/*.rs; do
                    [ -e "$file" ] && basename "$file" .rs
                  done) | sort -u); do
    if ! printf '%s\n' "${unprivileged[@]}" | grep -qx -- "$name"; then
      echo "check-e2e-lists: $manifest has test $name, which UNPRIVILEGED_TESTS in the Makefile does not name" >&2
      status=1
    fi
  done
done
exit $status
