#!/usr/bin/env python3
# Minimal tool-using "AI agent" in Python. It talks to the mock LLM through
# http.client + the ssl module, i.e. the system libssl (SSL_write_ex /
# SSL_read_ex), then performs real side effects (exec, file read, TCP connect)
# that agentscope should attribute to this process.
import argparse
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from http.client import HTTPException, HTTPResponse, HTTPSConnection
from pathlib import Path

# Real agents send API keys; the collector under test must redact them.
API_KEY = os.environ.get("AGENTSCOPE_TEST_API_KEY", "sk-agentscope-test-0123456789abcdef")

TOOLS = [
    {"type": "function", "function": {
        "name": "run_command", "description": "Run a program and return its stdout.",
        "parameters": {"type": "object", "properties": {
            "argv": {"type": "array", "items": {"type": "string"}}}, "required": ["argv"]}}},
    {"type": "function", "function": {
        "name": "read_file", "description": "Read the first 4 KiB of a file.",
        "parameters": {"type": "object", "properties": {
            "path": {"type": "string"}}, "required": ["path"]}}},
    {"type": "function", "function": {
        "name": "fetch_url", "description": "Ping a local TCP service and return its reply line.",
        "parameters": {"type": "object", "properties": {
            "host": {"type": "string"}, "port": {"type": "integer"}}, "required": ["host", "port"]}}},
]


def fail(msg):
    print(f"python_agent: error: {msg}", file=sys.stderr)
    sys.exit(1)


def wait_for_file(path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            fail(f"timed out waiting for {path}")
        time.sleep(0.05)


def appender(path):
    """Truncate path and return a function that appends bytes to it. Opening per
    write keeps recording independent of connection/response lifetimes."""
    open(path, "wb").close()

    def append(data):
        with open(path, "ab") as f:
            f.write(data)
    return append


class RecordingReader:
    """Wraps the response's socket file; records every byte the HTTP parser consumes."""

    def __init__(self, fp, record):
        self._fp, self._record = fp, record

    def __getattr__(self, name):
        # close, fileno, peek, ... are delegated unrecorded: peeked bytes are read again later.
        return getattr(self._fp, name)

    def _tee(self, data):
        self._record(data)
        return data

    def read(self, *args):
        return self._tee(self._fp.read(*args))

    def read1(self, *args):
        return self._tee(self._fp.read1(*args))

    def readline(self, *args):
        return self._tee(self._fp.readline(*args))

    def readinto(self, buf):
        n = self._fp.readinto(buf)
        self._record(bytes(memoryview(buf)[:n]))
        return n


class RecordingResponse(HTTPResponse):
    record = None  # set per connection by RecordingConnection

    def __init__(self, sock, *args, **kwargs):
        super().__init__(sock, *args, **kwargs)
        self.fp = RecordingReader(self.fp, self.record)  # self.fp is sock.makefile("rb")


class RecordingConnection(HTTPSConnection):
    """HTTPSConnection that dumps the plaintext it writes to / parses from the
    TLS socket into dump_dir/egress.raw and dump_dir/ingress.raw."""

    def __init__(self, *args, dump_dir, **kwargs):
        super().__init__(*args, **kwargs)
        self._record_egress = appender(os.path.join(dump_dir, "egress.raw"))

        class Response(RecordingResponse):
            record = staticmethod(appender(os.path.join(dump_dir, "ingress.raw")))
        self.response_class = Response

    def send(self, data):
        # http.client streams file-like/iterable bodies in pieces this override
        # would not see; this agent only sends bytes, so refuse anything else.
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"cannot record send() of {type(data).__name__}")
        super().send(data)
        self._record_egress(bytes(data))


def read_sse(resp, received):
    """Rebuild an assistant message from an OpenAI-style SSE stream; the raw
    (de-chunked) body is appended to received."""
    content, calls = [], {}
    for line in iter(resp.readline, b""):
        received.append(line)
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            break
        delta = json.loads(data)["choices"][0].get("delta") or {}
        if delta.get("content"):
            content.append(delta["content"])
        for frag in delta.get("tool_calls") or []:
            call = calls.setdefault(frag["index"], {"id": None, "name": None, "arguments": ""})
            call["id"] = frag.get("id") or call["id"]
            fn = frag.get("function") or {}
            call["name"] = fn.get("name") or call["name"]
            call["arguments"] += fn.get("arguments") or ""
    received.append(resp.read())  # consume the terminating chunk so the connection can be reused
    message = {"role": "assistant", "content": "".join(content) or None}
    if calls:
        message["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for _, c in sorted(calls.items())]
    return message


def chat(conn, payload, sent_sizes, dump_dir=None):
    body = json.dumps(payload).encode()
    sent_sizes.append(len(body))
    n = len(sent_sizes)
    if dump_dir:
        Path(dump_dir, f"request-{n}.body").write_bytes(body)
    conn.request("POST", "/v1/chat/completions", body,
                 {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"})
    resp = conn.getresponse()
    if resp.status != 200:
        fail(f"HTTP {resp.status}: {resp.read()[:200]!r}")
    received = []
    if payload.get("stream"):
        message = read_sse(resp, received)
    else:
        received.append(resp.read())
        message = json.loads(received[0])["choices"][0]["message"]
    if dump_dir:
        Path(dump_dir, f"response-{n}.body").write_bytes(b"".join(received))
    return message


def run_tool(name, args):
    # Tool failures become tool results (like a real agent), not agent crashes.
    try:
        if name == "run_command":
            out = subprocess.run(args["argv"], capture_output=True, text=True, timeout=10)
            return out.stdout.strip() or f"exit {out.returncode}"
        if name == "read_file":
            with open(args["path"], "rb") as f:
                return f.read(4096).decode(errors="replace")
        if name == "fetch_url":
            with socket.create_connection((args["host"], int(args["port"])), timeout=5) as s:
                s.sendall(b"PING agentscope\n")
                return s.makefile("rb").readline().decode(errors="replace").strip()
        return f"error: unknown tool {name}"
    except (OSError, subprocess.SubprocessError, KeyError, ValueError) as e:
        return f"error: {e}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--big-kib", type=int, default=0)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--read-path")
    ap.add_argument("--service-port", type=int)
    ap.add_argument("--wait-before-start-file")
    ap.add_argument("--marker", default="agentscope-marker")
    ap.add_argument("--dump-dir", help="write request/response bodies and raw HTTP bytes here")
    ap.add_argument("--conversations", type=int, default=1,
                    help="hold this many conversations one after the other in this process "
                         "(each with fresh messages and its own marker, -2, -3, ...)")
    args = ap.parse_args()

    if args.dump_dir:
        os.makedirs(args.dump_dir, exist_ok=True)
    if args.wait_before_start_file:
        wait_for_file(args.wait_before_start_file)

    metadata = {k: v for k, v in (("read_path", args.read_path), ("service_port", args.service_port)) if v}

    sizes = []
    conn = None
    try:
        ctx = ssl.create_default_context(cafile=args.ca)
        conn_args = dict(host=args.host, port=args.port, context=ctx, timeout=30)
        conn = (RecordingConnection(**conn_args, dump_dir=args.dump_dir) if args.dump_dir
                else HTTPSConnection(**conn_args))
        conn.connect()
        conn.auto_open = 0  # a silent reconnect would hide a broken keep-alive
        for number in range(1, args.conversations + 1):
            marker = args.marker if number == 1 else f"{args.marker}-{number}"
            messages = [
                {"role": "system", "content": "You are a test agent. Use the tools you are given."},
                {"role": "user", "content": f"Please use your tools. {marker}"},
            ]
            if args.big_kib > 0:
                messages.append({"role": "user", "content": "0123456789abcdef" * (args.big_kib * 64)})
            payload = {"model": "gpt-4o-mini", "messages": messages, "tools": TOOLS,
                       "metadata": metadata, "stream": args.stream}
            reply = chat(conn, payload, sizes, args.dump_dir)
            calls = reply.get("tool_calls") or []
            messages.append(reply)
            for call in calls:
                fn = call["function"]
                result = run_tool(fn["name"], json.loads(fn["arguments"] or "{}"))
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
            final = chat(conn, dict(payload, messages=messages), sizes, args.dump_dir).get("content")
    except (OSError, HTTPException, ValueError, KeyError, IndexError) as e:
        fail(f"{type(e).__name__}: {e}")
    finally:
        if conn:
            conn.close()

    print(json.dumps({"agent": "python", "pid": os.getpid(),
                      "tool_calls": [c["function"]["name"] for c in calls],
                      "final": final, "request_bytes": sizes}), flush=True)


if __name__ == "__main__":
    main()
