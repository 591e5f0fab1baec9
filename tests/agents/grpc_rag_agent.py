#!/usr/bin/env python3
# A retrieval-augmented "agent": asks the mock LLM (OpenAI Chat Completions over TLS, the
# system libssl) what to look up, searches a Qdrant-shaped gRPC server with a real grpcio
# client over h2c (an insecure channel: grpcio links its own BoringSSL, whose plaintext the
# collector does not see, so a TLS channel would show only ciphertext), then asks the model
# again with what it found. It also searches a collection that does not exist (NOT_FOUND).
# Prints a JSON report.
#
# Usage: grpc_rag_agent.py --grpc-port PORT --llm-port PORT --ca FILE [--wait-before-start-file F]
import argparse
import json
import os
import ssl
import struct
import sys
import time
from http.client import HTTPSConnection

import grpc

API_KEY = os.environ.get("AGENTSCOPE_TEST_API_KEY", "sk-agentscope-test-0123456789abcdef")


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def search_points(collection, vector, limit):
    # SearchPoints { string collection_name = 1; repeated float vector = 2 [packed];
    # uint64 limit = 4; WithPayloadSelector with_payload = 6 { bool enable = 1 }; }
    name = collection.encode()
    packed = struct.pack(f"<{len(vector)}f", *vector)
    return (b"\x0a" + varint(len(name)) + name
            + b"\x12" + varint(len(packed)) + packed
            + b"\x20" + varint(limit)
            + b"\x32\x02\x08\x01")


def chat(llm_port, ca, content):
    context = ssl.create_default_context(cafile=ca)
    conn = HTTPSConnection("localhost", llm_port, context=context, timeout=30)
    body = json.dumps({"model": "gpt-4o-mini",
                       "messages": [{"role": "user", "content": content}]})
    conn.request("POST", "/v1/chat/completions", body=body,
                 headers={"Content-Type": "application/json",
                          "Authorization": f"Bearer {API_KEY}"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"LLM answered {response.status}: {data[:200]!r}")
    return json.loads(data)["choices"][0]["message"].get("content") or ""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--grpc-port", required=True)
    parser.add_argument("--llm-port", type=int, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--wait-before-start-file")
    args = parser.parse_args()
    if args.wait_before_start_file:
        deadline = time.monotonic() + 60
        while not os.path.exists(args.wait_before_start_file):
            if time.monotonic() > deadline:
                sys.exit("grpc_rag_agent: timed out waiting for the start file")
            time.sleep(0.02)

    chat(args.llm_port, args.ca, "Which support tickets mention exports?")
    channel = grpc.insecure_channel(f"127.0.0.1:{args.grpc_port}")
    search = channel.unary_unary("/qdrant.Points/Search")
    found = search(search_points("support-tickets", [0.1, 0.2, 0.3, 0.4], 2), timeout=30)
    try:
        search(search_points("missing-collection", [0.1, 0.2, 0.3, 0.4], 2), timeout=30)
        missing = "OK"
    except grpc.RpcError as err:
        missing = err.code().name
    channel.close()
    answer = chat(args.llm_port, args.ca, "Summarise these tickets: " + found.decode("latin-1"))
    print(json.dumps({"ok": True, "found_bytes": len(found), "missing": missing,
                      "answer": answer[:80]}))


if __name__ == "__main__":
    main()
