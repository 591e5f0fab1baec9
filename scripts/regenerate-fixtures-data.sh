#!/usr/bin/env bash
# Regenerates the PostgreSQL and Redis wire-protocol fixtures under
# tests/fixtures/{postgres,redis}/ from real captures: real clients (psql, pgbench,
# redis-cli) talk to throwaway local servers while `agentscope collect --json --pid CLIENT`
# records them. Each fixture is the `data` event lines (as printed by the collector) of one
# client connection, in capture order; docs/events.md says how to reassemble them.
#
# Needs root (eBPF), the release build (built here if missing), and the packages from
# `make setup` (postgresql, redis-server, redis-tools).
#
# It also regenerates tests/fixtures/object_store/boto3_s3.jsonl: the HTTP requests
# the real boto3 S3 client sends (path-style, SigV4, multipart, copy, presigned URL) to a local
# stand-in server, with that server's answers. Those are recorded by the server, not the
# collector: object-store recognition takes parsed HTTP exchanges. Needs `pip install boto3`.
#
# Likewise tests/fixtures/vector_db/qdrant_client.jsonl from the real qdrant-client
# (REST mode). Set QDRANT_PYTHON to an interpreter that has it (`pip install qdrant-client`,
# e.g. in a virtualenv); default: $PYTHON.
#
# Usage: scripts/regenerate-fixtures-data.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/target/release/agentscope"
PG_FIXTURES="$ROOT/tests/fixtures/postgres"
REDIS_FIXTURES="$ROOT/tests/fixtures/redis"
PYTHON=${PYTHON:-python3}

if [ "$(id -u)" -ne 0 ]; then
  echo "regenerate-fixtures-data: must run as root (the collector loads eBPF programs)" >&2
  exit 1
fi
for tool in psql redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "regenerate-fixtures-data: $tool missing; run make setup" >&2; exit 1; }
done
PGBENCH=$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -n1)
[ -n "$PGBENCH" ] || { echo "regenerate-fixtures-data: pgbench missing; run make setup" >&2; exit 1; }
if [ ! -x "$BIN" ]; then
  (cd "$ROOT" && cargo build --release -p agentscope)
fi
if [ ! -e /sys/kernel/tracing/events ]; then
  mount -t tracefs tracefs /sys/kernel/tracing
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
  echo "regenerate-fixtures-data: timed out waiting for $2" >&2
  exit 1
}

# Servers.
"$PYTHON" "$ROOT/tests/agents/postgres_server.py" --port-file "$WORK/pg.port" >"$WORK/pg.out" 2>"$WORK/pg.err" &
PIDS+=($!)
"$PYTHON" "$ROOT/tests/agents/postgres_server.py" --ssl --port-file "$WORK/pgssl.port" >"$WORK/pgssl.out" 2>"$WORK/pgssl.err" &
PIDS+=($!)
REDIS_PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REDIS_PASSWORD="fixture-password-not-a-secret"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
  --user default off --user agent on ">$REDIS_PASSWORD" '~*' '&*' '+@all' >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
wait_for_file "$WORK/pg.port" "PostgreSQL"
wait_for_file "$WORK/pgssl.port" "PostgreSQL with TLS"
PG_PORT=$(cat "$WORK/pg.port")
PGSSL_PORT=$(cat "$WORK/pgssl.port")
for _ in $(seq 1 100); do
  redis-cli -p "$REDIS_PORT" --user agent --pass "$REDIS_PASSWORD" --no-auth-warning PING >/dev/null 2>&1 && break
  sleep 0.1
done

# capture NAME PORT FIXTURE_DIR COMMAND... : runs COMMAND (held until the collector is attached
# to its pid) and writes the data events of its connection to PORT into FIXTURE_DIR/NAME.jsonl.
capture() {
  local name=$1 port=$2 dir=$3
  shift 3
  local start="$WORK/$name.start"
  local quoted
  quoted=$(printf " %q" "$@")
  sh -c "while [ ! -e '$start' ]; do sleep 0.02; done; exec$quoted" \
    <"${STDIN_FILE:-/dev/null}" >"$WORK/$name.client.out" 2>&1 &
  local client=$!
  "$BIN" collect --json --ready-message --pid "$client" >"$WORK/$name.raw" 2>"$WORK/$name.collect.err" &
  local collector=$!
  for _ in $(seq 1 300); do grep -q collecting "$WORK/$name.collect.err" 2>/dev/null && break; sleep 0.1; done
  grep -q collecting "$WORK/$name.collect.err" || { cat "$WORK/$name.collect.err" >&2; exit 1; }
  touch "$start"
  local status=0
  wait "$client" || status=$?
  sleep 0.5
  kill -TERM "$collector"
  wait "$collector"
  mkdir -p "$dir"
  "$PYTHON" - "$WORK/$name.raw" "$client" "$port" "$dir/$name.jsonl" <<'PY'
import json, sys
raw, pid, port, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
events = [json.loads(line) for line in open(raw)]
assert events and events[-1]["kind"] == "summary", "collector output has no summary"
summary = events.pop()["summary"]
assert summary["kernel"]["dropped"] == 0, f"collector dropped records: {summary}"
# The client's connections to the server port, each from its connect to its close.
connections, open_fds = [], {}
for e in events:
    if e.get("pid") != pid:
        continue
    if e["kind"] == "connect" and e["port"] == port and e["ret"] in (0, -115):
        open_fds[e["fd"]] = []
        connections.append(open_fds[e["fd"]])
    elif e["kind"] == "data" and e["source"] == "socket" and e["fd"] in open_fds:
        open_fds[e["fd"]].append(e)
    elif e["kind"] == "close" and e["fd"] in open_fds:
        del open_fds[e["fd"]]
connections = [c for c in connections if c]
assert connections, f"no captured connection of pid {pid} to port {port}"
# The client's main connection: the one that carried the most bytes.
chosen = max(connections, key=lambda c: sum(e["total_len"] for e in c if e["last"]))
with open(out, "w") as f:
    for e in chosen:
        f.write(json.dumps(e, separators=(",", ":")) + "\n")
print(f"{out}: {len(chosen)} data events ({len(connections)} connection(s) seen)")
PY
  if [ "$status" -ne 0 ] && [ "${EXPECT_FAILURE:-0}" != 1 ]; then
    echo "regenerate-fixtures-data: client for $name exited $status:" >&2
    cat "$WORK/$name.client.out" >&2
    exit 1
  fi
}

PSQL=(psql -X -h 127.0.0.1 -U postgres -d crm -v ON_ERROR_STOP=1)

# Simple query protocol: psql -c sends each -c as one Query message. psql's default
# sslmode=prefer sends an SSLRequest first, which this server refuses with 'N'.
capture simple_query "$PG_PORT" "$PG_FIXTURES" "${PSQL[@]}" -p "$PG_PORT" \
  -c "SELECT id, name, email FROM customers WHERE plan = 'pro'" \
  -c "INSERT INTO customers (id, name, email, plan) VALUES (4, 'Katherine Johnson', 'kj@example.com', 'free') RETURNING id" \
  -c "UPDATE public.customers SET balance = balance + 10 WHERE plan = 'free'" \
  -c "WITH top AS (SELECT id FROM customers ORDER BY balance DESC LIMIT 2) SELECT c.name FROM customers c JOIN top ON top.id = c.id" \
  -c "SELECT id, name FROM customers ORDER BY point(id, 0) <-> point '(2,0)' LIMIT 2" \
  -c "BEGIN; DELETE FROM customers WHERE id = 4; COMMIT"

# An error: the server answers ErrorResponse (42P01) then ReadyForQuery.
EXPECT_FAILURE=1 capture query_error "$PG_PORT" "$PG_FIXTURES" "${PSQL[@]}" -p "$PG_PORT" \
  -c "SELECT count(*) FROM customers" \
  -c "SELECT * FROM invoices WHERE customer_id = 1"

# Extended query protocol through libpq: pgbench -M extended (unnamed statement) and
# -M prepared (named statements P_0, P_1), with a fixed script.
cat >"$WORK/bench.sql" <<'SQL'
\set id 2
SELECT name, email, plan FROM customers WHERE id = :id;
UPDATE customers SET balance = balance + 1 WHERE id = :id;
SQL
capture extended_query "$PG_PORT" "$PG_FIXTURES" "$PGBENCH" -n -M extended -c 1 -t 2 \
  -f "$WORK/bench.sql" -h 127.0.0.1 -p "$PG_PORT" -U postgres crm
capture prepared_statements "$PG_PORT" "$PG_FIXTURES" "$PGBENCH" -n -M prepared -c 1 -t 2 \
  -f "$WORK/bench.sql" -h 127.0.0.1 -p "$PG_PORT" -U postgres crm

# TLS: the server accepts the SSLRequest with 'S'; the rest of the socket is ciphertext.
capture tls_session "$PGSSL_PORT" "$PG_FIXTURES" env PGSSLMODE=require "${PSQL[@]}" -p "$PGSSL_PORT" \
  -c "SELECT count(*) FROM customers"

# Redis, RESP2: commands piped to redis-cli are sent as RESP arrays on one connection.
cat >"$WORK/redis-commands.txt" <<'REDIS'
PING
CLIENT SETNAME agent-cache
SET customer:1 "{\"name\":\"Ada Lovelace\",\"plan\":\"enterprise\"}" EX 300
GET customer:1
MGET customer:1 customer:2
HSET session:42 user ada plan pro
HGETALL session:42
GET session:42
INCR counter:requests
LPUSH queue:jobs job-1 job-2
LRANGE queue:jobs 0 -1
DEL customer:2 queue:jobs
CONFIG GET maxmemory
SELECT 1
GET customer:1
REDIS
STDIN_FILE="$WORK/redis-commands.txt" capture resp2_session "$REDIS_PORT" "$REDIS_FIXTURES" \
  redis-cli -p "$REDIS_PORT" --user agent --pass "$REDIS_PASSWORD" --no-auth-warning

# Redis, RESP3: redis-cli -3 starts with HELLO 3; maps and sets come back as % and ~.
cat >"$WORK/redis3-commands.txt" <<'REDIS'
HSET profile:7 name Grace team compilers
HGETALL profile:7
SADD tags:7 cobol navy
SMEMBERS tags:7
HGET profile:7 missing
REDIS
STDIN_FILE="$WORK/redis3-commands.txt" capture resp3_session "$REDIS_PORT" "$REDIS_FIXTURES" \
  redis-cli -3 -p "$REDIS_PORT" --user agent --pass "$REDIS_PASSWORD" --no-auth-warning

# Object store: requests of the real boto3 client, recorded by a stand-in S3 server.
"$PYTHON" -c 'import boto3' 2>/dev/null || { echo "regenerate-fixtures-data: boto3 missing; pip install boto3" >&2; exit 1; }
mkdir -p "$ROOT/tests/fixtures/object_store"
"$PYTHON" - "$ROOT/tests/fixtures/object_store/boto3_s3.jsonl" <<'PY'
import base64, json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit, parse_qs

out_path = sys.argv[1]
records = []

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def body(self):
        if self.headers.get("Content-Length"):
            return self.rfile.read(int(self.headers["Content-Length"]))
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size); self.rfile.readline()
        return b""
    def handle_any(self):
        body = self.body()
        url = urlsplit(self.path); q = parse_qs(url.query, keep_blank_values=True)
        parts = url.path.lstrip("/").split("/", 1)
        bucket = parts[0]; key = parts[1] if len(parts) > 1 else ""
        status, rbody, extra = 200, b"", {"ETag": '"9b2cf535f27731c974343645a3985328"'}
        m = self.command
        if m == "POST" and "uploads" in q:
            rbody = f"<InitiateMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key><UploadId>upload-1</UploadId></InitiateMultipartUploadResult>".encode()
        elif m == "POST" and "uploadId" in q:
            rbody = f"<CompleteMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key><ETag>\"x-2\"</ETag></CompleteMultipartUploadResult>".encode()
        elif m == "POST" and "delete" in q:
            rbody = b"<DeleteResult><Deleted><Key>a</Key></Deleted></DeleteResult>"
        elif m == "PUT" and "x-amz-copy-source" in self.headers:
            rbody = b"<CopyObjectResult><ETag>\"x\"</ETag><LastModified>2024-01-15T00:00:00.000Z</LastModified></CopyObjectResult>"
        elif m == "GET" and not key:
            rbody = f"<ListBucketResult><Name>{bucket}</Name><KeyCount>1</KeyCount><IsTruncated>false</IsTruncated><Contents><Key>reports/q1.csv</Key><Size>5</Size></Contents></ListBucketResult>".encode()
        elif m == "GET" and key.endswith("missing.txt"):
            status = 404
            rbody = b"<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>"
        elif m == "GET":
            rbody = b"hello"
        elif m == "DELETE":
            status = 204
        self.send_response(status)
        for k, v in extra.items(): self.send_header(k, v)
        if m == "HEAD":
            self.send_header("Content-Length", "5")
        else:
            self.send_header("Content-Length", str(len(rbody)))
        self.end_headers()
        if m != "HEAD": self.wfile.write(rbody)
        records.append({
            "request": {"method": m, "target": self.path, "headers": [[k, v] for k, v in self.headers.items()],
                        "body_b64": base64.b64encode(body).decode()},
            "response": {"status": status, "body_b64": base64.b64encode(rbody).decode()},
        })
    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
port = server.server_address[1]

import boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                  aws_access_key_id="AKIAFIXTURE0EXAMPLE", aws_secret_access_key="fixture-secret-not-real",
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1, "mode": "standard"}))
s3.put_object(Bucket="agent-data", Key="reports/q1.csv", Body=b"hello")
s3.head_object(Bucket="agent-data", Key="reports/q1.csv")
s3.get_object(Bucket="agent-data", Key="reports/q1.csv")["Body"].read()
s3.list_objects_v2(Bucket="agent-data", Prefix="reports/")
s3.copy_object(Bucket="agent-data", Key="archive/q1 copy.csv", CopySource={"Bucket": "agent-data", "Key": "reports/q1.csv"})
up = s3.create_multipart_upload(Bucket="agent-data", Key="big/model.bin")
part = s3.upload_part(Bucket="agent-data", Key="big/model.bin", UploadId=up["UploadId"], PartNumber=1, Body=b"x" * 1024)
s3.complete_multipart_upload(Bucket="agent-data", Key="big/model.bin", UploadId=up["UploadId"],
                             MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
s3.delete_object(Bucket="agent-data", Key="reports/q1.csv")
s3.delete_objects(Bucket="agent-data", Delete={"Objects": [{"Key": "a"}]})
try:
    s3.get_object(Bucket="agent-data", Key="missing.txt")
except s3.exceptions.NoSuchKey:
    pass
url = s3.generate_presigned_url("get_object", Params={"Bucket": "agent-data", "Key": "shared/link.pdf"}, ExpiresIn=600)
import urllib.request
urllib.request.urlopen(url).read()
server.shutdown()
with open(out_path, "w") as f:
    for r in records:
        f.write(json.dumps(r, separators=(",", ":")) + "\n")
print(f"{out_path}: {len(records)} requests from boto3 {boto3.__version__}")
PY

# Vector database: requests of the real qdrant-client, recorded by a stand-in Qdrant server.
QDRANT_PYTHON=${QDRANT_PYTHON:-$PYTHON}
"$QDRANT_PYTHON" -c 'import qdrant_client' 2>/dev/null || { echo "regenerate-fixtures-data: qdrant-client missing for $QDRANT_PYTHON; pip install qdrant-client" >&2; exit 1; }
mkdir -p "$ROOT/tests/fixtures/vector_db"
"$QDRANT_PYTHON" - "$ROOT/tests/fixtures/vector_db/qdrant_client.jsonl" <<'PY'
import base64, json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

out_path = sys.argv[1]
records = []
POINT = {"id": 1, "version": 3, "score": 0.91, "payload": {"title": "Refunds"}, "vector": None}
UPDATE = {"operation_id": 7, "status": "completed"}

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        if path == "/":
            result = None; reply = {"title": "qdrant - vector search engine", "version": "1.12.4"}
        else:
            if path.endswith("/points/query"):
                result = {"points": [POINT, dict(POINT, id=2, score=0.87)]}
            elif path.endswith("/points/scroll"):
                result = {"points": [dict(POINT, score=None)], "next_page_offset": None}
            elif path.endswith("/points/count"):
                result = {"count": 3}
            elif path.endswith("/points") and self.command == "POST":
                result = [dict(POINT, score=None)]
            else:
                result = UPDATE
            reply = {"result": result, "status": "ok", "time": 0.0004}
        rbody = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(rbody)))
        self.end_headers()
        self.wfile.write(rbody)
        records.append({
            "request": {"method": self.command, "target": self.path,
                        "headers": [[k, v] for k, v in self.headers.items()],
                        "body_b64": base64.b64encode(body).decode()},
            "response": {"status": 200, "body_b64": base64.b64encode(rbody).decode()},
        })
    do_GET = do_PUT = do_POST = do_DELETE = handle_any

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
port = server.server_address[1]

from importlib.metadata import version
from qdrant_client import QdrantClient, models
client = QdrantClient(url=f"http://127.0.0.1:{port}", prefer_grpc=False, timeout=5)
client.upsert("support_docs", points=[models.PointStruct(id=1, vector=[0.1, 0.2, 0.3], payload={"title": "Refunds"})])
client.query_points("support_docs", query=[0.1, 0.2, 0.3], limit=5, with_payload=True)
client.scroll("support_docs", limit=10)
client.retrieve("support_docs", ids=[1])
client.count("support_docs")
client.delete("support_docs", points_selector=models.PointIdsList(points=[1]))
server.shutdown()
with open(out_path, "w") as f:
    for r in records:
        f.write(json.dumps(r, separators=(",", ":")) + "\n")
print(f"{out_path}: {len(records)} requests from qdrant-client {version('qdrant-client')}")
PY

echo "regenerate-fixtures-data: done"
