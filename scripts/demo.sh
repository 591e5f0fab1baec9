#!/usr/bin/env bash
# `make demo`: the investigation console, live, over the demo agents: the account-health
# assistant's ordinary and injected sessions side by side, on a loop
# (tests/agents/run_incident_demo.py: a mock LLM over TLS, MCP servers, PostgreSQL, an internal
# API and a drop box, all on loopback). Quit the console with q; DEMO_SECONDS bounds the run.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: the console runs the collector, which loads eBPF programs; run as root (sudo make demo)" >&2
  exit 1
fi
if [ ! -t 0 ] || [ ! -t 1 ]; then
  echo "demo: the console needs a terminal (run make demo in an interactive shell, not through a pipe)" >&2
  exit 1
fi
driver_args=()
console_args=()
if [ -n "${DEMO_SECONDS:-}" ]; then
  driver_args+=(--seconds "$DEMO_SECONDS")
  console_args+=(--duration "$DEMO_SECONDS")
fi
log="$(mktemp -t agentscope-demo-driver.XXXXXX.log)"
python3 tests/agents/run_incident_demo.py "${driver_args[@]}" 2>"$log" &
driver=$!
trap 'kill -TERM "$driver" 2>/dev/null || true; wait "$driver" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM HUP
# The services must be up (and the driver still alive) before the console follows its tree.
for _ in $(seq 600); do
  grep -q "services up" "$log" 2>/dev/null && break
  if ! kill -0 "$driver" 2>/dev/null; then
    echo "demo: the demo agents failed to start:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done
grep -q "services up" "$log" || { echo "demo: the demo services did not start; see $log" >&2; exit 1; }
# Follow the driver and everything it starts; the first round begins a few seconds after this.
"${AGENTSCOPE_BIN:-./target/release/agentscope}" tui --pid "$driver" --no-kubernetes "${console_args[@]}"
echo "demo: driver log in $log"
