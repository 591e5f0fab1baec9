#!/usr/bin/env python3
"""Reads `agentscope collect --json` (or `agentscope replay --json`) on stdin as a log shipper
would, without storing it, and reports what it saw to --report as JSON:

  bytes, lines          how much came through
  last                  the last line (the collector's summary)
  leaks                 every secret (from --secrets, a JSON list) found in a line's text or in
                        any reassembled payload stream: payloads are joined per stream before
                        searching, so a secret captured one byte per event is still found
  leak_evidence         per secret found, where first: the line number, whether it was in the
                        line's text or a joined stream, and that line (cut to 2 KiB), so a
                        failing run says what leaked and how
  data_events_by_pid    payload events per pid (a consumer of the collector's own output must
                        not show up here)

Used by tests/hostile_node.rs. Memory stays bounded: per stream only a tail as long as the
longest secret is kept.

Speed: a text is searched for each secret only if it holds the longest substring that every
secret shares (the test's secrets all contain "S3cr3t"): a text holding a secret holds that
substring, so nothing is missed, and a flood's lines are searched once instead of once per
secret (the replayed hostile-node recording is about 900 MB of JSON).
"""
import argparse
import base64
import json
import os
import sys


def shared_substring(secrets):
    """The longest byte string contained in every secret (empty if they share nothing)."""
    shortest = min(secrets, key=len)
    for length in range(len(shortest), 0, -1):
        for start in range(len(shortest) - length + 1):
            candidate = shortest[start:start + length]
            if all(candidate in s for s in secrets):
                return candidate
    return b""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secrets", required=True)
    ap.add_argument("--report", required=True)
    args = ap.parse_args()
    with open(args.secrets) as f:
        secrets = [s.encode() for s in json.load(f)]
    keep = max(len(s) for s in secrets)
    shared = shared_substring(secrets)
    leaks = set()
    evidence = {}
    where = {"line": 0, "raw": b""}

    def find_leaks(text, how):
        if shared in text:
            for s in secrets:
                if s in text:
                    leaks.add(s.decode())
                    evidence.setdefault(s.decode(), {
                        "line": where["line"], "found_in": how,
                        "text": where["raw"][:2048].decode("utf-8", "replace")})

    tails = {}
    data_by_pid = {}
    total = lines = 0
    last = b""
    for raw in sys.stdin.buffer:
        total += len(raw)
        lines += 1
        last = raw
        where["line"], where["raw"] = lines, raw
        find_leaks(raw, "line text")
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
        find_leaks(window, "stream joined across events")
        tails[key] = window[-keep:]
    with open(args.report + ".tmp", "w") as f:
        json.dump({"bytes": total, "lines": lines,
                   "last": last.decode("utf-8", "replace"),
                   "leaks": sorted(leaks),
                   "leak_evidence": evidence,
                   "data_events_by_pid": {str(k): v for k, v in data_by_pid.items()}}, f)
    os.rename(args.report + ".tmp", args.report)


if __name__ == "__main__":
    sys.exit(main())
