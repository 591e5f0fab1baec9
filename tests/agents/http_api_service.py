#!/usr/bin/env python3
# A plain-HTTP service for the test agents, in two roles:
#   the internal account API   GET /api/accounts/<id>/status returns JSON (default bind 127.0.0.1)
#   a drop box                 POST to any path stores the body and answers {"received": N}
#                              (the "unfamiliar endpoint" an injected instruction sends data to;
#                              run a second instance with --bind 127.0.0.2 so it is a different
#                              destination than the API)
#   a document host            with --serve-dir DIR, GET /files/<name> returns DIR/<name> as text
#                              (runbooks the agent fetches, a script it is told to pipe to sh)
# Every POST body is appended to --received-log (one JSON line per request) when given, so a
# test knows what really left the agent. The port goes to --port-file once the server listens.
import argparse
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECEIVED_LOG = None
SERVE_DIR = None
_log_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        match = re.fullmatch(r"/api/accounts/(\d+)/status", self.path)
        if match:
            self.send_json(200, {"account": int(match.group(1)), "status": "active",
                                 "open_tickets": 3, "sla": "gold"})
        elif SERVE_DIR and self.path.startswith("/files/"):
            self.send_file(self.path[len("/files/"):])
        else:
            self.send_json(404, {"error": "not found"})

    def send_file(self, name):
        path = os.path.join(SERVE_DIR, name)
        if "/" in name or name.startswith(".") or not os.path.isfile(path):
            self.send_json(404, {"error": "not found"})
            return
        with open(path, "rb") as f:
            data = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_json(400, {"error": "bad Content-Length"})
            return
        body = self.rfile.read(length) if length > 0 else b""
        if RECEIVED_LOG:
            record = {"path": self.path,
                      "content_type": self.headers.get("Content-Type"),
                      "body": body.decode("utf-8", errors="replace")}
            with _log_lock, open(RECEIVED_LOG, "a") as f:
                f.write(json.dumps(record) + "\n")
        self.send_json(200, {"received": len(body)})


def main():
    global RECEIVED_LOG, SERVE_DIR
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--bind", default="127.0.0.1",
                    help="address to listen on (any of 127.0.0.0/8 works on Linux loopback)")
    ap.add_argument("--received-log", help="append each POST body here as a JSON line")
    ap.add_argument("--serve-dir", help="serve the files of this directory on GET /files/<name>")
    args = ap.parse_args()
    RECEIVED_LOG = args.received_log
    SERVE_DIR = args.serve_dir
    server = ThreadingHTTPServer((args.bind, 0), Handler)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
