#!/usr/bin/env python3
# A local inference server speaking HTTP/2 without TLS (h2c with prior knowledge, as vLLM or
# Ollama behind an h2c proxy can), built on the `h2` protocol library (PyPI, installed in the
# test venv by `make setup`). It answers OpenAI Chat Completions as a stream of Server-Sent
# Events, one DATA frame per event: the first turn calls read_file on the path in the
# request's metadata, a turn that carries tool results answers "Done: <result>".
# Used by tests/http2_capture.rs. Writes its port to --port-file once listening. With
# --cert-dir DIR (cert.pem, key.pem) it serves HTTP/2 over TLS instead (ALPN h2). With
# --accept-upgrade, a plain connection that starts with an HTTP/1.1 request asking
# `Upgrade: h2c` (what `curl --http2 http://…` sends) is answered `101 Switching Protocols` and
# goes on in HTTP/2, the request being stream 1 (RFC 7540 §3.2); the server then reads before
# it speaks. Without it, it sends its SETTINGS first, as it accepts.
import argparse
import json
import os
import socket
import ssl
import threading

import h2.config
import h2.connection
import h2.events


def events_for(request):
    messages = request.get("messages", [])
    model = request.get("model", "mock-model")
    base = {"id": "chatcmpl-h2c-1", "object": "chat.completion.chunk", "created": 1700000000,
            "model": model}
    results = [m.get("content") or "" for m in messages if m.get("role") == "tool"]

    def chunk(delta, finish=None):
        return dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": finish}])

    out = [chunk({"role": "assistant", "content": None if not results else ""})]
    if results:
        out.append(chunk({"content": "Done: " + results[-1][:40]}))
        out.append(chunk({}, "stop"))
    else:
        path = (request.get("metadata") or {}).get("read_path", "/etc/hostname")
        arguments = json.dumps({"path": path})
        out.append(chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                          "function": {"name": "read_file", "arguments": ""}}]}))
        for i in range(0, len(arguments), 5):
            out.append(chunk({"tool_calls": [{"index": 0,
                                              "function": {"arguments": arguments[i:i + 5]}}]}))
        out.append(chunk({}, "tool_calls"))
    return [f"data: {json.dumps(e)}\n\n".encode() for e in out] + [b"data: [DONE]\n\n"]


def answer(conn, sock, stream_id, request):
    conn.send_headers(stream_id, [(":status", "200"), ("content-type", "text/event-stream")])
    for piece in events_for(request):
        conn.send_data(stream_id, piece)
        sock.sendall(conn.data_to_send())
    conn.end_stream(stream_id)


def read_upgrade(sock):
    """An HTTP/1.1 request asking for h2c, read whole: (HTTP2-Settings value, JSON body), or
    None when the connection starts with the HTTP/2 preface (prior knowledge). Bytes read past
    the request are returned too."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        if data.startswith(b"PRI ") or (len(data) >= 4 and not data[:4].isalpha()):
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    if data.startswith(b"PRI ") or b"\r\n\r\n" not in data:
        return None, data
    head, rest = data.split(b"\r\n\r\n", 1)
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get(b"content-length", b"0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    if headers.get(b"upgrade", b"").lower() != b"h2c":
        return None, data
    return (headers.get(b"http2-settings", b"").decode(), rest[:length]), rest[length:]


def serve(sock, accept_upgrade):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    upgrade, early = read_upgrade(sock) if accept_upgrade else (None, b"")
    if upgrade:
        settings, body = upgrade
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                     b"Upgrade: h2c\r\n\r\n")
        conn.initiate_upgrade_connection(settings)
        sock.sendall(conn.data_to_send())
        answer(conn, sock, 1, json.loads(body or b"{}"))
    else:
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
    bodies, heads = {}, {}
    while True:
        data, early = early or sock.recv(65536), b""
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                heads[event.stream_id] = dict(event.headers)
                bodies[event.stream_id] = b""
            elif isinstance(event, h2.events.DataReceived):
                bodies[event.stream_id] += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id in bodies:
                answer(conn, sock, event.stream_id, json.loads(bodies.pop(event.stream_id) or b"{}"))
            elif isinstance(event, h2.events.ConnectionTerminated):
                sock.sendall(conn.data_to_send())
                return
        sock.sendall(conn.data_to_send())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--cert-dir")
    parser.add_argument("--accept-upgrade", action="store_true")
    args = parser.parse_args()
    tls = None
    if args.cert_dir:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(os.path.join(args.cert_dir, "cert.pem"),
                            os.path.join(args.cert_dir, "key.pem"))
        tls.set_alpn_protocols(["h2"])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(listener.getsockname()[1]))
    os.replace(tmp, args.port_file)
    while True:
        sock, _ = listener.accept()
        if tls:
            sock = tls.wrap_socket(sock, server_side=True)
        threading.Thread(target=lambda s=sock: (serve(s, args.accept_upgrade and not tls), s.close()), daemon=True).start()


if __name__ == "__main__":
    main()
