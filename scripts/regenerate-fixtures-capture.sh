#!/usr/bin/env bash
# Regenerates tests/fixtures/capture/*.jsonl: real `agentscope collect --json`
# output of the test agents talking to the TLS mock LLM (run as root after `make build`).
# Payloads are redacted by the collector, as in any capture.
# And tests/fixtures/capture/demo_overlapping_queries.cap: a real `agentscope collect --record`
# of one round of the demo (tests/agents/run_incident_demo.py), whose two sessions' query_database
# calls to the one CRM server are held open at once (--crm-rendezvous 2).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="${AGENTSCOPE_BIN:-$root/target/release/agentscope}"
out="$root/tests/fixtures/capture"
agents="$root/tests/agents"
py="$(python3 -c 'import sys; print(sys.executable)')"
tmp="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing

"$py" "$agents/mock_llm_server.py" --port-file "$tmp/llm.port" --cert-dir "$tmp/certs" 2>"$tmp/mock.log" &
for _ in $(seq 100); do [[ -s "$tmp/llm.port" ]] && break; sleep 0.1; done

capture() { # name, agent command...
    local name="$1"; shift
    local gate="$tmp/$name.go"
    "$@" --wait-before-start-file "$gate" >"$tmp/$name.out" 2>&1 &
    local agent=$!
    "$bin" collect --json --pid "$agent" --ready-message --duration 20 >"$tmp/$name.jsonl" 2>"$tmp/$name.err" &
    local collector=$!
    for _ in $(seq 200); do grep -q collecting "$tmp/$name.err" 2>/dev/null && break; sleep 0.05; done
    touch "$gate"
    wait "$agent"
    sleep 0.5
    kill -INT "$collector"
    wait "$collector" || true
    # Keep the agent's own events; drop the summary line (it has machine-specific counts).
    grep -v '"kind":"summary"' "$tmp/$name.jsonl" >"$out/$name.jsonl"
    echo "$name: $(wc -l <"$out/$name.jsonl") events"
}

port="$(<"$tmp/llm.port")"
capture python_chat_stream "$py" "$agents/python_agent.py" --port "$port" --ca "$tmp/certs/cert.pem" --stream --read-path /etc/hostname
capture python_chat "$py" "$agents/python_agent.py" --port "$port" --ca "$tmp/certs/cert.pem" --big-kib 40 --read-path /etc/hostname
# One process, two conversations one after the other (the console's s1 and s1.2).
capture python_two_conversations "$py" "$agents/python_agent.py" --port "$port" --ca "$tmp/certs/cert.pem" --conversations 2 --read-path /etc/hostname
capture node_chat_stream env NODE_EXTRA_CA_CERTS="$tmp/certs/cert.pem" node "$agents/node_agent.mjs" --port "$port" --ca "$tmp/certs/cert.pem" --stream

# One round of the demo, the two sessions' CRM queries overlapping at the shared MCP server.
demo_log="$tmp/demo.log"
"$py" "$agents/run_incident_demo.py" --first-round-delay 60 --rounds 1 --crm-rendezvous 2 \
    2>"$demo_log" &
demo=$!
for _ in $(seq 600); do grep -q "services up" "$demo_log" 2>/dev/null && break; sleep 0.1; done
"$bin" collect --pid "$demo" --no-kubernetes --ready-message --quiet \
    --record "$tmp/demo_overlapping_queries.cap" >/dev/null 2>"$tmp/demo.err" &
collector=$!
for _ in $(seq 400); do grep -q collecting "$tmp/demo.err" 2>/dev/null && break; sleep 0.05; done
kill -USR1 "$demo"
wait "$demo"
sleep 0.5
kill -INT "$collector"
wait "$collector" || true
cp "$tmp/demo_overlapping_queries.cap" "$out/demo_overlapping_queries.cap"
echo "demo_overlapping_queries: $(stat -c %s "$out/demo_overlapping_queries.cap") bytes"
