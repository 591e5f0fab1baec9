#!/usr/bin/env bash
# `make demo`: the live collector over the demo agents. The agents (a mock LLM over TLS, a
# Python and a Node agent that act on its tool calls) run in a loop; the collector prints
# what it sees of them until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: the collector loads eBPF programs; run as root (sudo make demo)" >&2
  exit 1
fi
bash tests/agents/run_demo_agents.sh &
agents=$!
trap 'kill -TERM "$agents" 2>/dev/null; wait "$agents" 2>/dev/null || true' EXIT INT TERM
# Follow the demo agents and everything they start.
sleep 1
exec_args=(--pid "$agents")
if [ -n "${DEMO_SECONDS:-}" ]; then exec_args+=(--duration "$DEMO_SECONDS"); fi
./target/release/agentscope collect "${exec_args[@]}"
