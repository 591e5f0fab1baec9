#!/usr/bin/env python3
"""A process with an opaque plain socket beside HTTP ones, for tests/opaque_sockets.rs.

`--serve PORT_FILE`: a sink that reads and drops whatever a connection sends (a binary
protocol agentscope does not read), and an HTTP/1.1 server answering every request with 200;
their ports are written to PORT_FILE as `SINK HTTP`.

Client mode (`--sink PORT --http PORT --chunks N`): opens a keep-alive HTTP connection and
sends one request; opens a connection to the sink and sends N chunks of 8 KiB of binary data
(none of them the start of HTTP, PostgreSQL or Redis), a millisecond apart; sends a second
request on the first HTTP connection; closes the sink's connection and at once opens a new
HTTP connection, which takes the same fd number, and sends a request with a 20 KiB body
ending in a marker. Prints a JSON report: the fds, the bytes sent to the sink.
"""
import argparse
import http.server
import json
import os
import socket
import socketserver
import sys
import threading
import time

from start_gate import wait_for_start_file

CHUNK = 8192
MARKER = b"agentscope-opaque-marker-after-reuse"


class Sink(socketserver.BaseRequestHandler):
    def handle(self):
        while self.request.recv(65536):
            pass


class Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(port_file):
    socketserver.ThreadingTCPServer.daemon_threads = True
    http.server.ThreadingHTTPServer.daemon_threads = True
    sink = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Sink)
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    tmp = f"{port_file}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{sink.server_address[1]} {web.server_address[1]}\n")
    os.replace(tmp, port_file)
    web.serve_forever()


def post(conn, path, body):
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    conn.sendall(head + body)
    reply = b""
    while b"\r\n\r\n" not in reply or not reply.endswith(b"}"):
        part = conn.recv(4096)
        if not part:
            raise SystemExit("the HTTP server closed the connection")
        reply += part
    return reply


def client(args):
    wait_for_start_file(args.wait_before_start_file, "opaque_socket_client")
    kept = socket.create_connection(("127.0.0.1", args.http))
    post(kept, "/before", b"first request on the kept connection")
    sink = socket.create_connection(("127.0.0.1", args.sink))
    sink_fd = sink.fileno()
    # No chunk starts like HTTP, PostgreSQL or Redis: 0x00 0x01, then bytes that vary.
    sent = 0
    for i in range(args.chunks):
        chunk = bytes([0, 1]) + i.to_bytes(4, "big") + os.urandom(CHUNK - 6)
        sink.sendall(chunk)
        sent += len(chunk)
        time.sleep(0.001)
    post(kept, "/during", b"second request on the kept connection")
    sink.close()
    reused = socket.create_connection(("127.0.0.1", args.http))
    post(reused, "/after", b"x" * 20000 + MARKER)
    print(
        json.dumps(
            {
                "ok": True,
                "sink_fd": sink_fd,
                "reused_fd": reused.fileno(),
                "kept_fd": kept.fileno(),
                "sink_bytes": sent,
            }
        ),
        flush=True,
    )
    reused.close()
    kept.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--serve", metavar="PORT_FILE")
    ap.add_argument("--sink", type=int)
    ap.add_argument("--http", type=int)
    ap.add_argument("--chunks", type=int, default=600)
    ap.add_argument("--wait-before-start-file")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
    else:
        client(args)


if __name__ == "__main__":
    sys.exit(main())
