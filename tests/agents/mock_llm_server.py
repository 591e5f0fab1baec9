#!/usr/bin/env python3
# Mock OpenAI-style chat-completions endpoint over real TLS, so agentscope's
# SSL uprobes see genuine LLM traffic (incl. SSE streaming and big bodies)
# without network access. The "model" is a deterministic script: offer tools
# -> get tool calls; send tool results -> get a final "Done: ..." answer.
import argparse
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KNOWN_TOOLS = ("run_command", "read_file", "fetch_url")


def ensure_cert(cert_dir):
    os.makedirs(cert_dir, exist_ok=True)
    cert, key = os.path.join(cert_dir, "cert.pem"), os.path.join(cert_dir, "key.pem")
    if not (os.path.exists(cert) and os.path.exists(key)):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", key, "-out", cert],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def write_atomic(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def tool_names(tools):
    # Accept both the OpenAI shape {"type":"function","function":{...}} and a bare {"name":...}.
    return [(t.get("function") or t).get("name") for t in tools or []]


def plan_reply(req):
    """Return (content, tool_calls, finish_reason) for a parsed request."""
    messages = req.get("messages") or []
    if messages and messages[-1].get("role") == "tool":
        results = [str(m.get("content", ""))[:40].replace("\n", " ").strip()
                   for m in messages if m.get("role") == "tool"]
        return "Done: " + "; ".join(results), None, "stop"
    meta = req.get("metadata") or {}
    args_for = {
        "run_command": {"argv": ["/bin/echo", "agentscope-tool-ran"]},
        "read_file": {"path": meta.get("read_path") or "/etc/hostname"},
        "fetch_url": {"host": "127.0.0.1", "port": int(meta.get("service_port") or 9)},
    }
    calls = []
    for name in tool_names(req.get("tools")):
        if name in KNOWN_TOOLS:
            calls.append({"id": f"call_{len(calls) + 1}", "type": "function",
                          "function": {"name": name, "arguments": json.dumps(args_for[name])}})
    if calls:
        return None, calls, "tool_calls"
    return "Hello from the agentscope mock LLM. No tools were needed.", None, "stop"


def pieces(s, n):
    """Split s into at least n non-empty pieces (when len(s) >= n)."""
    size = max(1, -(-len(s) // n))
    return [s[i:i + size] for i in range(0, len(s), size)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "agentscope-mock-llm/1.0"

    def log_message(self, fmt, *args):
        # Include the client port so keep-alive (connection reuse) is visible in logs.
        host, port = self.client_address[:2]
        sys.stderr.write(f"[mock-llm] {host}:{port} {fmt % args}\n")

    def send_body(self, code, ctype, body):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/healthz":
            self.send_body(200, "text/plain", b"ok")
        else:
            self.send_body(404, "text/plain", b"not found")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path != "/v1/chat/completions":
            self.send_body(404, "text/plain", b"not found")
            return
        try:
            req = json.loads(raw)
        except ValueError as e:
            self.send_body(400, "application/json", json.dumps({"error": str(e)}).encode())
            return
        content, calls, finish = plan_reply(req)
        model = req.get("model") or "mock-model"
        base = {"id": f"chatcmpl-mock-{time.time_ns()}", "created": int(time.time()), "model": model}
        if req.get("stream"):
            self.stream(base, content, calls, finish)
            return
        message = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        completion_tokens = len(json.dumps(message)) // 4
        resp = dict(base, object="chat.completion",
                    choices=[{"index": 0, "message": message, "finish_reason": finish}],
                    usage={"prompt_tokens": len(raw) // 4, "completion_tokens": completion_tokens,
                           "total_tokens": len(raw) // 4 + completion_tokens},
                    x_request_bytes=len(raw))
        self.send_body(200, "application/json", json.dumps(resp).encode())

    def stream(self, base, content, calls, finish):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(delta, finish_reason=None):
            obj = dict(base, object="chat.completion.chunk",
                       choices=[{"index": 0, "delta": delta, "finish_reason": finish_reason}])
            self.write_chunk(f"data: {json.dumps(obj)}\n\n".encode())

        chunk({"role": "assistant", "content": "" if content is not None else None})
        if content:
            for piece in pieces(content, 4):
                chunk({"content": piece})
        for index, call in enumerate(calls or []):
            fn = call["function"]
            chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                   "function": {"name": fn["name"], "arguments": ""}}]})
            for piece in pieces(fn["arguments"], 3):
                chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        chunk({}, finish)
        self.write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def write_chunk(self, data):
        # Hand-rolled chunked framing + a short sleep, so each SSE event lands in its own TLS record.
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()
        time.sleep(0.005)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert-dir", required=True)
    args = ap.parse_args()

    cert, key = ensure_cert(args.cert_dir)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    # Lazy handshake: done in the per-connection thread, so a stuck client can't block accept().
    server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    port = server.server_address[1]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    write_atomic(args.port_file, f"{port}\n")
    print(f"[mock-llm] listening on https://{args.host}:{port} (cert {cert})", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
