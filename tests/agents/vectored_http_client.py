#!/usr/bin/env python3
# The same HTTP/1.1 LLM request (OpenAI Chat Completions, a 40 KiB body) on three plain-socket
# connections, written and read three ways: `sendall`/`recv` (write/recvfrom), `sendmsg` with
# the request in many pieces and `recvmsg_into` into several buffers, and `os.writev`/`os.readv`.
# Prints, per connection, its fd and the exact bytes sent and received (base64), so a test can
# compare them with what the collector captured.
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
    for sock in OPEN:
        sock.close()
    print(json.dumps({"pid": os.getpid(), "connections": connections}), flush=True)


if __name__ == "__main__":
    main()
