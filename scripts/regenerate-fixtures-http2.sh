#!/usr/bin/env bash
# Regenerates the HTTP/2 fixtures under tests/fixtures/http2/ from real captures: real HTTP/2
# clients talk over TLS to a real Go net/http HTTP/2 server (tests/agents/go_h2_front, in front
# of the mock LLM) while `agentscope collect --json --pid CLIENT` records them. Each fixture is
# the `data` event lines (as printed by the collector) of the client's TLS connection to the
# front, in capture order:
#   go_streaming_tool_calls.jsonl  the Go test agent (net/http, crypto/tls, ALPN h2) running
#                                  three conversations at once on one connection (interleaved
#                                  streams), each a streamed read_file tool call (SSE) and a
#                                  streamed follow-up
#   curl_two_requests.jsonl        curl --http2 (nghttp2's HPACK over system OpenSSL): two
#                                  requests on one connection, the second's headers referring
#                                  to the first's dynamic-table entries; a streamed answer and
#                                  a JSON one
#
# Needs root (eBPF), golang-go and curl (make setup), and the agentscope binary
# (BIN, default target/release/agentscope, built here if missing).
#
# Usage: scripts/regenerate-fixtures-http2.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/agentscope}
FIXTURES="$ROOT/tests/fixtures/http2"
PYTHON=${PYTHON:-python3}
# Not a secret: what the fixture clients send as their API key.
API_KEY="sk-fixture-not-a-secret-000"

if [ "$(id -u)" -ne 0 ]; then
  echo "regenerate-fixtures-http2: must run as root (the collector loads eBPF programs)" >&2
  exit 1
fi
for tool in go curl openssl; do
  command -v "$tool" >/dev/null || { echo "regenerate-fixtures-http2: $tool missing; run make setup" >&2; exit 1; }
done
if [ ! -x "$BIN" ]; then
  (cd "$ROOT" && cargo build --release -p agentscope)
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_for_file() { # path, what
  for _ in $(seq 1 600); do [ -s "$1" ] && return 0; sleep 0.1; done
  echo "regenerate-fixtures-http2: timed out waiting for $2" >&2
  exit 1
}

# A CA and a leaf for localhost signed by it (the mock LLM and the front both serve the leaf).
CERT="$WORK/cert"
mkdir -p "$CERT"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >"$CERT/leaf.ext"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=agentscope test CA" \
  -keyout "$CERT/ca.key" -out "$CERT/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$CERT/key.pem" -out "$CERT/leaf.csr" 2>/dev/null
openssl x509 -req -days 1 -CAcreateserial -in "$CERT/leaf.csr" -CA "$CERT/ca.pem" -CAkey "$CERT/ca.key" \
  -extfile "$CERT/leaf.ext" -out "$CERT/cert.pem" 2>/dev/null

# Programs and servers.
"$ROOT/tests/agents/go_agent/build.sh" "$WORK/bin"
(cd "$ROOT/tests/agents/go_h2_front" && GOFLAGS=-mod=mod GOPROXY=off go build -trimpath -o "$WORK/bin/go_h2_front" .)
"$PYTHON" "$ROOT/tests/agents/mock_llm_server.py" --fixed-clock --port-file "$WORK/llm.port" \
  --cert-dir "$CERT" 2>"$WORK/llm.log" &
PIDS+=($!)
wait_for_file "$WORK/llm.port" "the mock LLM"
"$WORK/bin/go_h2_front" --upstream "https://127.0.0.1:$(cat "$WORK/llm.port")" --upstream-ca "$CERT/ca.pem" \
  --cert "$CERT/cert.pem" --key "$CERT/key.pem" --port-file "$WORK/front.port" 2>"$WORK/front.log" &
PIDS+=($!)
wait_for_file "$WORK/front.port" "the HTTP/2 front"
PORT=$(cat "$WORK/front.port")

# capture NAME COMMAND... : runs COMMAND (held until the collector is attached to its pid) and
# writes the data events of its TLS connection to the front into $FIXTURES/NAME.jsonl.
# With WAIT_FLAG set, COMMAND itself waits (given WAIT_FLAG FILE), so its executable is mapped
# before the collector starts: a Go binary exec'd later would be probed only once the
# collector analysed it, after its first TLS writes.
capture() {
  local name=$1
  shift
  local start="$WORK/$name.start"
  local quoted
  if [ -n "${WAIT_FLAG:-}" ]; then
    "$@" "$WAIT_FLAG" "$start" </dev/null >"$WORK/$name.client.out" 2>&1 &
    sleep 0.8
  else
    quoted=$(printf " %q" "$@")
    sh -c "while [ ! -e '$start' ]; do sleep 0.02; done; exec$quoted" \
      </dev/null >"$WORK/$name.client.out" 2>&1 &
  fi
  local client=$!
  "$BIN" collect --json --ready-message --no-kubernetes --pid "$client" >"$WORK/$name.raw" 2>"$WORK/$name.collect.err" &
  local collector=$!
  for _ in $(seq 1 300); do grep -q collecting "$WORK/$name.collect.err" 2>/dev/null && break; sleep 0.1; done
  grep -q collecting "$WORK/$name.collect.err" || { cat "$WORK/$name.collect.err" >&2; exit 1; }
  touch "$start"
  local status=0
  wait "$client" || status=$?
  sleep 0.5
  kill -TERM "$collector"
  wait "$collector"
  if [ "$status" -ne 0 ]; then
    echo "regenerate-fixtures-http2: client for $name exited $status:" >&2
    cat "$WORK/$name.client.out" >&2
    exit 1
  fi
  mkdir -p "$FIXTURES"
  "$PYTHON" - "$WORK/$name.raw" "$client" "$PORT" "$FIXTURES/$name.jsonl" <<'PY'
import json, sys
raw, pid, port, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
events = [json.loads(line) for line in open(raw)]
assert events and events[-1]["kind"] == "summary", "collector output has no summary"
summary = events.pop()["summary"]
assert summary["kernel"]["dropped"] == 0, f"collector dropped records: {summary}"
fds = {e["fd"] for e in events if e.get("pid") == pid and e["kind"] == "connect" and e["port"] == port}
by_conn = {}
for e in events:
    if e.get("pid") == pid and e["kind"] == "data" and e["source"] == "tls" and e["fd"] in fds:
        by_conn.setdefault(e["conn_id"], []).append(e)
assert by_conn, f"no TLS data of pid {pid} to port {port}"
chosen = max(by_conn.values(), key=lambda c: sum(len(e["data_b64"]) for e in c))
first = next(e for e in chosen if e["direction"] == "egress")
assert first["data_b64"].startswith("UFJJICogSFRUUC8yLj"), "the capture missed the connection's start"
assert all(e["lost_bytes"] == 0 for e in chosen), "the capture lost bytes"
with open(out, "w") as f:
    for e in chosen:
        f.write(json.dumps(e, separators=(",", ":")) + "\n")
print(f"{out}: {len(chosen)} data events ({len(by_conn)} connection(s) seen)")
PY
}

WAIT_FLAG=--wait-before-start-file capture go_streaming_tool_calls \
  env AGENTSCOPE_TEST_API_KEY="$API_KEY" "$WORK/bin/go_agent" --port "$PORT" --ca "$CERT/ca.pem" --read-path /etc/hostname \
  --http2 --stream --parallel 2

cat >"$WORK/first.json" <<'JSON'
{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Read the file."}],"tools":[{"type":"function","function":{"name":"read_file","parameters":{"type":"object","properties":{"path":{"type":"string"}}}}}],"metadata":{"read_path":"/etc/hostname"}}
JSON
cat >"$WORK/second.json" <<'JSON'
{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}]}
JSON
capture curl_two_requests curl -sS --http2 --cacert "$CERT/ca.pem" \
  -H "Authorization: Bearer $API_KEY" -H "Content-Type: application/json" \
  --data-binary "@$WORK/first.json" "https://localhost:$PORT/v1/chat/completions" \
  --next --http2 --cacert "$CERT/ca.pem" \
  -H "Authorization: Bearer $API_KEY" -H "Content-Type: application/json" \
  --data-binary "@$WORK/second.json" "https://localhost:$PORT/v1/chat/completions"
