#!/usr/bin/env python3
"""Reads `agentscope collect --json` (or `agentscope replay --json`) on stdin as a log shipper
would, without storing it, and reports what it saw to --report as JSON:

  bytes, lines          how much came through
  last                  the last line (the collector's summary)
  leaks                 every secret (from --secrets, a JSON list) found in a line's text or in
                        any reassembled payload stream: payloads are joined per stream before
                        searching, so a secret captured one byte per event is still found
  data_events_by_pid    payload events per pid (a consumer of the collector's own output must
                        not show up here)

Used by tests/hostile_node.rs. Memory stays bounded: per stream only a tail as long as the
longest secret is kept.
"""
import argparse
import base64
import json
import os
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secrets", required=True)
    ap.add_argument("--report", required=True)
    args = ap.parse_args()
    with open(args.secrets) as f:
        secrets = [s.encode() for s in json.load(f)]
    keep = max(len(s) for s in secrets)
    tails = {}
    leaks = set()
    data_by_pid = {}
    total = lines = 0
    last = b""
    for raw in sys.stdin.buffer:
        total += len(raw)
        lines += 1
        last = raw
        for s in secrets:
            if s in raw:
                leaks.add(s.decode())
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if event.get("kind") != "data":
            continue
        pid = event.get("pid")
        data_by_pid[pid] = data_by_pid.get(pid, 0) + 1
        key = (pid, event.get("source"), event.get("direction"),
               event.get("conn_id") if event.get("source") == "tls" else event.get("fd"))
        window = tails.get(key, b"") + base64.b64decode(event.get("data_b64", ""))
        for s in secrets:
            if s in window:
                leaks.add(s.decode())
        tails[key] = window[-keep:]
    with open(args.report + ".tmp", "w") as f:
        json.dump({"bytes": total, "lines": lines,
                   "last": last.decode("utf-8", "replace"),
                   "leaks": sorted(leaks),
                   "data_events_by_pid": {str(k): v for k, v in data_by_pid.items()}}, f)
    os.rename(args.report + ".tmp", args.report)


if __name__ == "__main__":
    sys.exit(main())
