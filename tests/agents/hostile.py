#!/usr/bin/env python3
"""Adversaries for the hostile-node test (tests/hostile_node.rs): local processes that try to make
the node collector run away, grow without bound, or leak a secret.

Each mode runs until --seconds have passed (or it is killed), writes its pid and a ready line to
--ready-file once it is running, and bounds its own traffic so that a run can never fill a disk:

  pipe-flood        JSON lines into a pipe at full speed (pipe_flood.py; a child reads them)
  incomplete-bodies N connections each send most of a declared 31 MiB HTTP body, then hold
  huge-tool-call    an OpenAI-style streamed response with 1M tool calls, over plain HTTP
  split-secrets     HTTP requests whose credentials go out one byte per write()
"""
import argparse
import json
import os
import socket
import sys
import threading
import time

from pipe_flood import flood


def ready(args, **extra):
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"pid": os.getpid(), **extra}, f)
        os.rename(tmp, args.ready_file)


def until(args):
    return time.monotonic() + args.seconds


def pipe_flood(args):
    written = flood(args.seconds, on_start=lambda reader: ready(args, reader=reader))
    print(json.dumps({"mode": "pipe-flood", "bytes": written}), flush=True)


def sink_server():
    """Accepts connections and reads whatever they send, never answering."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(256)

    def drain(conn):
        with conn:
            while conn.recv(1 << 16):
                pass

    def accept():
        while True:
            conn, _ = server.accept()
            threading.Thread(target=drain, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return server.getsockname()[1]


def incomplete_bodies(args):
    port = sink_server()
    declared = 32 << 20
    sent_each = 31 << 20
    deadline = until(args)
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n").encode()
    chunk = b'{"messages":[{"role":"user","content":"' + b"a" * ((64 << 10) - 40)
    held = []
    lock = threading.Lock()

    def client():
        conn = socket.create_connection(("127.0.0.1", port))
        conn.sendall(head)
        left = sent_each
        while left > 0 and time.monotonic() < deadline:
            piece = chunk[:min(left, len(chunk))]
            conn.sendall(piece)
            left -= len(piece)
        with lock:
            held.append(conn)

    threads = [threading.Thread(target=client) for _ in range(args.connections)]
    ready(args, port=port)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    while time.monotonic() < deadline:
        time.sleep(0.1)
    print(json.dumps({"mode": "incomplete-bodies", "connections": len(held)}), flush=True)


def huge_tool_call(args):
    """A server streaming one chat completion with --calls tool calls, and a client asking it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]

    def serve():
        conn, _ = server.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                         b"Connection: close\r\n\r\n")
            batch = []
            for i in range(args.calls):
                delta = {"id": "chatcmpl-huge", "object": "chat.completion.chunk",
                         "model": "gpt-4o", "choices": [{"index": 0, "delta": {"tool_calls": [
                             {"index": i, "id": f"call_{i}", "type": "function",
                              "function": {"name": f"tool_{i % 97}", "arguments": "{}"}}]}}]}
                batch.append(b"data: " + json.dumps(delta).encode() + b"\n\n")
                if len(batch) == 512:
                    conn.sendall(b"".join(batch))
                    batch.clear()
            batch.append(b"data: [DONE]\n\n")
            conn.sendall(b"".join(batch))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready(args, port=port)
    body = json.dumps({"model": "gpt-4o", "stream": True,
                       "messages": [{"role": "user", "content": "call every tool"}],
                       "tools": [{"type": "function", "function": {"name": "tool_0",
                                                                    "parameters": {}}}]}).encode()
    conn = socket.create_connection(("127.0.0.1", port))
    conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    received = 0
    while True:
        data = conn.recv(1 << 16)
        if not data:
            break
        received += len(data)
    thread.join()
    deadline = until(args)
    while time.monotonic() < deadline:
        time.sleep(0.1)
    print(json.dumps({"mode": "huge-tool-call", "bytes": received}), flush=True)


def split_secrets(args):
    """Sends each carrier in --carriers (a JSON file: a list of byte strings as latin-1 text) to a
    sink one byte per write, with TCP_NODELAY so writes stay apart on the wire too."""
    port = sink_server()
    with open(args.carriers) as f:
        carriers = [c.encode("latin-1") for c in json.load(f)]
    ready(args, port=port)
    deadline = until(args)
    rounds = 0
    while time.monotonic() < deadline and rounds < args.rounds:
        for carrier in carriers:
            conn = socket.create_connection(("127.0.0.1", port))
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for b in carrier:
                conn.send(bytes([b]))
            conn.close()
        rounds += 1
    while time.monotonic() < deadline:
        time.sleep(0.1)
    print(json.dumps({"mode": "split-secrets", "rounds": rounds}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["pipe-flood", "incomplete-bodies", "huge-tool-call",
                                     "split-secrets"])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--ready-file")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--carriers")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    {"pipe-flood": pipe_flood, "incomplete-bodies": incomplete_bodies,
     "huge-tool-call": huge_tool_call, "split-secrets": split_secrets}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
