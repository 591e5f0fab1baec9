#!/usr/bin/env bash
# Fails if a test file would not run in `make test`: every `[[test]]` of the CLI package
# (crates/cli/Cargo.toml, the privileged end-to-end files) must be named exactly once in the
# Makefile's end-to-end lists (E2E_ALONE and E2E_SHARED), and every integration test of another
# crate must be named in UNPRIVILEGED_TESTS (both passed here as arguments).
#
# Why: a file left out of the lists builds and passes clippy but never runs in CI, which looks
# exactly like a green test.
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
declared=$(sed -n '/^\[\[test\]\]/,/^name/{s/^name = "\(.*\)"/\1/p}' crates/cli/Cargo.toml | sort)
listed=$(printf '%s\n' "${e2e[@]}" | sort)
status=0
duplicates=$(printf '%s\n' "${e2e[@]}" | sort | uniq -d)
if [ -n "$duplicates" ]; then
  echo "check-e2e-lists: listed more than once in the Makefile: $duplicates" >&2
  status=1
fi
missing=$(comm -23 <(echo "$declared") <(echo "$listed" | uniq))
if [ -n "$missing" ]; then
  echo "check-e2e-lists: end-to-end files in crates/cli/Cargo.toml that no Makefile list runs:" $missing >&2
  status=1
fi
unknown=$(comm -13 <(echo "$declared") <(echo "$listed" | uniq))
if [ -n "$unknown" ]; then
  echo "check-e2e-lists: the Makefile lists files crates/cli/Cargo.toml does not declare:" $unknown >&2
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
