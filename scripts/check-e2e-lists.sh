#!/usr/bin/env bash
# Fails if an end-to-end test file would not run in `make test`: every `[[test]]` of the CLI
# package (crates/cli/Cargo.toml, the privileged end-to-end files) must be named exactly once
# in the Makefile's end-to-end lists (E2E_ALONE and E2E_SHARED, passed here as arguments), and
# every `[[test]]` of another crate must be named with `--test` in the Makefile (test-unit).
#
# Why: a file left out of the lists builds and passes clippy but never runs in CI, which looks
# exactly like a green test.
#
# Usage: scripts/check-e2e-lists.sh TEST_NAME...
set -euo pipefail
cd "$(dirname "$0")/.."
declared=$(sed -n '/^\[\[test\]\]/,/^name/{s/^name = "\(.*\)"/\1/p}' crates/cli/Cargo.toml | sort)
listed=$(printf '%s\n' "$@" | sort)
status=0
duplicates=$(printf '%s\n' "$@" | sort | uniq -d)
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
# run in `make test-unit`, each named there with `--test`.
# Declared with `[[test]]`, or found by Cargo in the crate's tests/ directory.
for manifest in crates/*/Cargo.toml; do
  [ "$manifest" = crates/cli/Cargo.toml ] && continue
  crate_dir=$(dirname "$manifest")
  for name in $( (sed -n '/^\[\[test\]\]/,/^name/{s/^name = "\(.*\)"/\1/p}' "$manifest"
                  for file in "$crate_dir"/tests/*.rs; do
                    [ -e "$file" ] && basename "$file" .rs
                  done) | sort -u); do
    if ! grep -Eq -- "--test $name( |$)" Makefile; then
      echo "check-e2e-lists: $manifest has test $name, which no Makefile target runs" >&2
      status=1
    fi
  done
done
exit $status
