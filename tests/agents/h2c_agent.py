#!/usr/bin/env python3
# A tool-using agent speaking HTTP/2 without TLS (h2c with prior knowledge) to a local
# inference server (tests/agents/h2c_llm_server.py), on the `h2` protocol library from PyPI
# (in the test venv, `make setup`): one connection, a streamed Chat Completions request on
# stream 1 whose answer calls read_file, the file read, and the result sent back on stream 3.
# Prints one JSON report. Used by tests/http2_capture.rs.
#
# With AGENTSCOPE_TEST_API_KEY set, each request carries `authorization: Bearer KEY` (the
# `hpack` library Huffman-codes it, never indexed) for the redaction checks.
#
# With --pause-after-first-file FILE, the agent writes FILE.reached once the first answer and
# the tool call are done, and waits for FILE before sending the second request on the same
# connection (a collector started then attaches mid-connection).
#
# Usage: h2c_agent.py --port PORT --read-path PATH [--wait-before-start-file FILE]
#                     [--pause-after-first-file FILE] [--ca FILE]
# With --ca, HTTP/2 over TLS (ALPN h2) to a server whose certificate that CA signed.
import argparse
import json
import os
import socket
import ssl
import sys
import time

from start_gate import wait_for_start_file

import h2.config
import h2.connection
import h2.events

MODEL = "qwen2.5-coder"
AUTH = ([("authorization", "Bearer " + os.environ["AGENTSCOPE_TEST_API_KEY"])]
        if os.environ.get("AGENTSCOPE_TEST_API_KEY") else [])
TOOLS = [{"type": "function", "function": {
    "name": "read_file", "description": "Read the first 4 KiB of a file.",
    "parameters": {"type": "object", "properties": {"path": {"type": "string"}},
                   "required": ["path"]}}}]


def post(sock, conn, authority, body):
    """Sends one request on a new stream and returns its response body."""
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(stream_id, [(":method", "POST"), (":scheme", "http"), (":authority", authority),
                                  (":path", "/v1/chat/completions"),
                                  ("content-type", "application/json"),
                                  ("user-agent", "agentscope-h2c-agent/1")] + AUTH)
    conn.send_data(stream_id, body, end_stream=True)
    sock.sendall(conn.data_to_send())
    received = b""
    while True:
        data = sock.recv(65536)
        if not data:
            sys.exit("h2c_agent: connection closed")
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id:
                received += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                sock.sendall(conn.data_to_send())
                return received
        sock.sendall(conn.data_to_send())


def reply_of(stream):
    """Content and tool calls reassembled from a streamed answer."""
    content, calls = "", {}
    for line in stream.decode().splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        for choice in json.loads(line[6:])["choices"]:
            delta = choice["delta"]
            content += delta.get("content") or ""
            for part in delta.get("tool_calls") or []:
                call = calls.setdefault(part["index"], {"id": None, "type": "function",
                                                        "function": {"name": "", "arguments": ""}})
                call["id"] = part.get("id") or call["id"]
                call["function"]["name"] += part.get("function", {}).get("name", "")
                call["function"]["arguments"] += part.get("function", {}).get("arguments", "")
    return content, [calls[i] for i in sorted(calls)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--read-path", required=True)
    parser.add_argument("--wait-before-start-file")
    parser.add_argument("--pause-after-first-file")
    parser.add_argument("--ca")
    args = parser.parse_args()
    if args.wait_before_start_file:
        while not os.path.exists(args.wait_before_start_file):
            time.sleep(0.02)
    sock = socket.create_connection(("127.0.0.1", args.port))
    if args.ca:
        tls = ssl.create_default_context(cafile=args.ca)
        tls.set_alpn_protocols(["h2"])
        sock = tls.wrap_socket(sock, server_hostname="localhost")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    authority = f"127.0.0.1:{args.port}"
    messages = [{"role": "user", "content": "Read the file I care about."}]
    request = {"model": MODEL, "stream": True, "messages": messages, "tools": TOOLS,
               "metadata": {"read_path": args.read_path}}
    _, calls = reply_of(post(sock, conn, authority, json.dumps(request).encode()))
    messages.append({"role": "assistant", "content": None, "tool_calls": calls})
    results = []
    for call in calls:
        path = json.loads(call["function"]["arguments"])["path"]
        with open(path, errors="replace") as f:
            results.append(f.read(4096))
        messages.append({"role": "tool", "tool_call_id": call["id"], "content": results[-1]})
    if args.pause_after_first_file:
        with open(args.pause_after_first_file + ".reached", "w") as f:
            f.write("1")
        wait_for_start_file(args.pause_after_first_file, "h2c_agent")
    final, _ = reply_of(post(sock, conn, authority, json.dumps(request).encode()))
    conn.close_connection()
    sock.sendall(conn.data_to_send())
    sock.close()
    print(json.dumps({"ok": bool(calls) and final.startswith("Done"), "tool_calls": calls,
                      "final": final}))


if __name__ == "__main__":
    main()
