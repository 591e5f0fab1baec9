#!/usr/bin/env bash
# Endless agent workload for `make demo`: a mock LLM, a local TCP service, and
# the Python and Node agents taking turns (plain vs. streamed + 64 KiB body),
# so agentscope always has live LLM/tool traffic to show. Ctrl-C cleans up.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d -t agentscope-demo.XXXXXX)"
pids=()

cleanup() {
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for_file() {
    for _ in $(seq 100); do [[ -s "$1" ]] && return 0; sleep 0.1; done
    echo "run_demo_agents: timed out waiting for $1" >&2
    exit 1
}

python3 "$here/mock_llm_server.py" --port-file "$tmp/llm.port" --cert-dir "$tmp/certs" 2>"$tmp/mock_llm.log" &
pids+=($!)
python3 "$here/tcp_echo_service.py" --port-file "$tmp/echo.port" 2>"$tmp/tcp_echo.log" &
pids+=($!)
wait_for_file "$tmp/llm.port"
wait_for_file "$tmp/echo.port"

ca="$tmp/certs/cert.pem"
common=(--port "$(<"$tmp/llm.port")" --ca "$ca" --service-port "$(<"$tmp/echo.port")")
heavy=(--stream --big-kib 64)
echo "run_demo_agents: mock LLM on port $(<"$tmp/llm.port"), logs in $tmp (Ctrl-C to stop)" >&2

round=0
while true; do
    # Swap which agent gets the heavy variant each round so both cover both paths.
    if (( round % 2 == 0 )); then py_extra=(); node_extra=("${heavy[@]}"); else py_extra=("${heavy[@]}"); node_extra=(); fi
    python3 "$here/python_agent.py" "${common[@]}" "${py_extra[@]}" || echo "run_demo_agents: python agent failed" >&2
    sleep 2
    NODE_EXTRA_CA_CERTS="$ca" node "$here/node_agent.mjs" "${common[@]}" "${node_extra[@]}" \
        || echo "run_demo_agents: node agent failed" >&2
    sleep 2
    round=$((round + 1))
done
