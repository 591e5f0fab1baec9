#!/usr/bin/env python3
# A client for the connection-sampling test (tests/connection_sampling.rs): COUNT rounds, each
# one POST over a new TLS connection to the mock LLM (the ssl module: the system libssl) and
# one POST over a new plain connection to the HTTP API, each body naming its round
# (`sample-probe-tls-007`, `sample-probe-plain-007`), strictly one after the other, so the
# capture's connects come in the same order as the rounds. Prints a JSON report.
import argparse
import json
import os
import ssl
import time
from http.client import HTTPConnection, HTTPSConnection


def post(conn, path, body):
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llm-port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--api-port", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--wait-before-start-file",
                    help="load the interpreter and its TLS library, then wait for this file")
    args = ap.parse_args()
    if args.wait_before_start_file:
        deadline = time.monotonic() + 60
        while not os.path.exists(args.wait_before_start_file):
            if time.monotonic() > deadline:
                raise SystemExit("timed out waiting for the start file")
            time.sleep(0.05)
    context = ssl.create_default_context(cafile=args.ca)
    statuses = []
    for i in range(args.count):
        marker = f"{i:03d}"
        tls_body = json.dumps({"model": "gpt-4o-mini", "messages": [
            {"role": "user", "content": f"sample-probe-tls-{marker}"}]})
        statuses.append(post(HTTPSConnection("127.0.0.1", args.llm_port, context=context),
                             "/v1/chat/completions", tls_body))
        plain_body = json.dumps({"note": f"sample-probe-plain-{marker}"})
        statuses.append(post(HTTPConnection("127.0.0.1", args.api_port), "/api/notes",
                             plain_body))
    print(json.dumps({"ok": all(s == 200 for s in statuses), "statuses": statuses}))


if __name__ == "__main__":
    main()
