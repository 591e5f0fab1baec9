#!/usr/bin/env bash
# Records real TLS ClientHellos into tests/fixtures/client_hello/CLIENT.bin, for the
# ClientHello parser's unit tests (crates/event/src/tls_hello.rs).
#
#   scripts/record-client-hellos.sh
#
# A local listener keeps the first TLS record each client sends and closes the connection
# (so every client fails its handshake, which is expected). Every client asks for the server
# name api.openai.com; openssl, python and node offer ALPN h2,http/1.1, curl what it offers by
# default. Clients: openssl s_client, Python's ssl module (system libssl), Node's tls module
# (embedded OpenSSL), curl; and rustls (agentscope's own OTLP exporter, rustls 0.23 with
# ring, replaying a recording to an https:// endpoint: it asks for localhost, as the exporter
# resolves the name itself; the script builds it first).
set -euo pipefail
cd "$(dirname "$0")/.."
out=tests/fixtures/client_hello
mkdir -p "$out"

record() { # NAME COMMAND...: runs COMMAND against the listener, which writes $out/NAME.bin
    local name=$1; shift
    local port_file
    port_file=$(mktemp)
    python3 - "$out/$name.bin" "$port_file" <<'PY' &
import socket, struct, sys
path, port_file = sys.argv[1], sys.argv[2]
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
open(port_file, "w").write(str(server.getsockname()[1]))
server.settimeout(20)
conn, _ = server.accept()
data = b""
while len(data) < 5 or len(data) < 5 + struct.unpack(">H", data[3:5])[0]:
    chunk = conn.recv(65536)
    if not chunk:
        break
    data += chunk
record_len = 5 + struct.unpack(">H", data[3:5])[0]
open(path, "wb").write(data[:record_len])
conn.close()
PY
    local listener=$!
    while [ ! -s "$port_file" ]; do sleep 0.05; done
    PORT=$(cat "$port_file") "$@" >/dev/null 2>&1 || true
    wait "$listener"
    rm -f "$port_file"
    echo "$name: $(stat -c %s "$out/$name.bin") bytes"
}

record openssl sh -c 'openssl s_client -connect 127.0.0.1:$PORT -servername api.openai.com -alpn h2,http/1.1 </dev/null'
record python sh -c 'python3 -c "
import os, socket, ssl
ctx = ssl.create_default_context()
ctx.set_alpn_protocols([\"h2\", \"http/1.1\"])
sock = socket.create_connection((\"127.0.0.1\", int(os.environ[\"PORT\"])))
ctx.wrap_socket(sock, server_hostname=\"api.openai.com\")
"'
record node sh -c 'node -e "
const tls = require(\"tls\");
const s = tls.connect({host: \"127.0.0.1\", port: +process.env.PORT, servername: \"api.openai.com\", ALPNProtocols: [\"h2\", \"http/1.1\"]});
s.on(\"error\", () => {});
"'
record curl sh -c 'curl -sS --max-time 5 --resolve api.openai.com:$PORT:127.0.0.1 https://api.openai.com:$PORT/'
cargo build --offline --quiet --bin agentscope
record rustls sh -c 'target/debug/agentscope replay tests/fixtures/capture/demo_overlapping_queries.cap \
    --otlp-endpoint https://localhost:$PORT --otlp-protocol http/protobuf'
