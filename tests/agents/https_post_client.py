#!/usr/bin/env python3
# An agent for crates/cli/benches/agent_overhead.rs: keep-alive HTTPS POSTs of a chat-completion
# request over the system libssl (http.client, one connection). Usage:
#   https_post_client.py URL CA SIZE
# It sends one request, prints "ready", then for every line N on stdin sends N requests of
# about SIZE bytes and prints the time they took in nanoseconds; for a line "reconnect" it
# closes its connection, sends one request over a new one and prints "ready" (so a collector
# started since sees the connection from its connect). The server is tests/agents/https_post
# (serve mode).
import http.client
import ssl
import sys
import time
import urllib.parse


def body(size):
    head = ('{"model":"gpt-4o-mini","messages":[{"role":"system","content":'
            '"You are a careful coding agent."},{"role":"user","content":"')
    tail = '"}]}'
    filler = "Summarise the build log and list the failing tests. " * (size // 52 + 1)
    return (head + filler[:max(0, size - len(head) - len(tail))] + tail).encode()


def main():
    url, ca, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    parts = urllib.parse.urlsplit(url)
    context = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=context)
    payload = body(size)
    headers = {"Content-Type": "application/json"}

    def post():
        conn.request("POST", parts.path, body=payload, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            sys.exit(f"https_post_client: status {response.status}")

    post()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "reconnect":
            conn.close()
            conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=context)
            post()
            print("ready", flush=True)
            continue
        n = int(line)
        start = time.perf_counter_ns()
        for _ in range(n):
            post()
        print(time.perf_counter_ns() - start, flush=True)


if __name__ == "__main__":
    main()
