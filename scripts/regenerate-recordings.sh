#!/usr/bin/env bash
# Regenerates recordings/ordinary.cap and recordings/injected.cap (with the graphs the live
# collector wrote beside them, *.graph.json): real `agentscope collect --record` captures of the
# account-health assistant (tests/agents/incident_agent.py) running as a Kubernetes pod (a
# kubelet-shaped cgroup and an API-server double), one ordinary session and one where a
# retrieved support ticket carries an injected instruction. See recordings/README.md.
#
# Runs as root (eBPF, cgroups) on a machine set up by `make setup`: the recordings test
# (tests/recordings.rs) records both sessions, checks them live and against their replays and,
# with AGENTSCOPE_REGENERATE_RECORDINGS=1, copies them into recordings/. Then the whole test
# file runs, including the checks of the committed files. Review `git diff --stat recordings/`
# before committing: ports, temporary paths, pids and times change on every run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ "$(id -u)" != 0 ]]; then
    echo "regenerate-recordings.sh: run as root (the collector loads eBPF programs)" >&2
    exit 1
fi
export PATH="$HOME/.cargo/bin:$PATH"
AGENTSCOPE_REGENERATE_RECORDINGS=1 cargo test --locked -p agentscope --test e2e -- \
    --test-threads=1 --exact recordings::ordinary_session_replays_to_the_live_graph \
    recordings::injected_session_replays_to_the_live_graph
cargo test --locked -p agentscope --test e2e -- --test-threads=1 recordings::
ls -l recordings/*.cap recordings/*.graph.json
