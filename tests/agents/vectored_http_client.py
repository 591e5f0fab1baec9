#!/usr/bin/env python3
# The same HTTP/1.1 LLM request (OpenAI Chat Completions, a 40 KiB body) on three plain-socket
# connections, written and read three ways: `sendall`/`recv` (write/recvfrom), `sendmsg` with
# the request in many pieces and `recvmsg_into` into several buffers, and `os.writev`/`os.readv`.
# Prints, per connection, its fd and the exact bytes sent and received (base64), so a test can
# compare them with what the collector captured. Then two requests past the collector's
# per-call caps, both with `os.writev`: 300 segments of 4 KiB (past 128 segments) and two
# segments of 1 MiB (past 1.5 MiB); for these only the fd and the length sent are printed.
# Last, a JSON-RPC message through a pipe, written with `os.writev` in pieces and read back
# with `os.readv` (MCP over stdio is captured on pipe ends like on sockets).
#
# Usage: vectored_http_client.py --port PORT [--wait-before-start-file FILE]
import argparse
import base64
import json
import os
import socket
import sys
import time

API_KEY = os.environ.get("AGENTSCOPE_TEST_API_KEY", "sk-agentscope-test-0123456789abcdef")


OPEN = []
OPEN_FDS = []


def request_pieces(port):
    body = json.dumps({"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": "Summarise this log: " + "vectored-io " * 3500}]}).encode()
    head = [
        b"POST /v1/chat/completions HTTP/1.1\r\n",
        f"Host: 127.0.0.1:{port}\r\n".encode(),
        b"Content-Type: application/json\r\n",
        f"Authorization: Bearer {API_KEY}\r\n".encode(),
        f"Content-Length: {len(body)}\r\n".encode(),
        b"Connection: close\r\n",
        b"\r\n",
    ]
    # Uneven body pieces, one empty, so segments cross the collector's 16 KiB records.
    cuts = [0, 1, 1, 5000, 21000, 30001, len(body)]
    return head + [body[a:b] for a, b in zip(cuts, cuts[1:])]


def exchange(port, how):
    pieces = request_pieces(port)
    sock = socket.create_connection(("127.0.0.1", port))
    sent = b"".join(pieces)
    if how == "write":
        sock.sendall(sent)
    elif how == "sendmsg":
        done = sock.sendmsg(pieces)
        if done != len(sent):
            sys.exit(f"vectored_http_client: short sendmsg ({done} of {len(sent)})")
    else:
        done = os.writev(sock.fileno(), pieces)
        if done != len(sent):
            sys.exit(f"vectored_http_client: short writev ({done} of {len(sent)})")
    received = bytearray()
    while True:
        if how == "write":
            data = sock.recv(65536)
        else:
            buffers = [bytearray(5), bytearray(11), bytearray(4096)]
            if how == "sendmsg":
                n = sock.recvmsg_into(buffers)[0]
            else:
                n = os.readv(sock.fileno(), buffers)
            data = b"".join(buffers)[:n]
        if not data:
            break
        received += data
    fd = sock.fileno()
    if not received.startswith(b"HTTP/1.") or b" 200 " not in received.split(b"\r\n")[0]:
        sys.exit(f"vectored_http_client: {how}: unexpected answer {bytes(received[:200])!r}")
    # Left open until all three are done, so each connection keeps its own fd.
    OPEN.append(sock)
    return {"how": how, "fd": fd, "sent_b64": base64.b64encode(sent).decode(),
            "received_b64": base64.b64encode(bytes(received)).decode()}


def oversized(port, segments):
    """POSTs a body made of `segments` with one writev; returns the fd and the bytes sent."""
    body_len = sum(len(s) for s in segments)
    head = (f"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {body_len}\r\n"
            "Connection: close\r\n\r\n").encode()
    sock = socket.create_connection(("127.0.0.1", port))
    sent = os.writev(sock.fileno(), [head] + segments)
    if sent != len(head) + body_len:
        sys.exit(f"vectored_http_client: short writev ({sent} of {len(head) + body_len})")
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass  # the mock answers 404 and may close before reading the whole body
    OPEN.append(sock)
    return {"fd": sock.fileno(), "sent_len": sent, "head_len": len(head)}


def pipe_message():
    """Writes a JSON-RPC request into a pipe with writev and reads it back with readv."""
    message = (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file",'
               b'"arguments":{"path":"/etc/hostname"}}}\n')
    read_end, write_end = os.pipe()
    pieces = [message[:1], message[1:40], message[40:]]
    if os.writev(write_end, pieces) != len(message):
        sys.exit("vectored_http_client: short writev on the pipe")
    buffers = [bytearray(7), bytearray(len(message))]
    n = os.readv(read_end, buffers)
    if b"".join(buffers)[:n] != message:
        sys.exit("vectored_http_client: the pipe gave back other bytes")
    OPEN_FDS.extend([read_end, write_end])
    return {"read_fd": read_end, "write_fd": write_end,
            "message_b64": base64.b64encode(message).decode()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--wait-before-start-file")
    args = parser.parse_args()
    if args.wait_before_start_file:
        deadline = time.monotonic() + 60
        while not os.path.exists(args.wait_before_start_file):
            if time.monotonic() > deadline:
                sys.exit("vectored_http_client: timed out waiting for the start file")
            time.sleep(0.02)
    connections = [exchange(args.port, how) for how in ("write", "sendmsg", "writev")]
    many = oversized(args.port, [bytes([65 + i % 26]) * 4096 for i in range(300)])
    large = oversized(args.port, [b"x" * (1 << 20), b"y" * (1 << 20)])
    pipe = pipe_message()
    for sock in OPEN:
        sock.close()
    for fd in OPEN_FDS:
        os.close(fd)
    print(json.dumps({"pid": os.getpid(), "connections": connections,
                      "many_segments": many, "large_segments": large, "pipe": pipe}),
          flush=True)


if __name__ == "__main__":
    main()
