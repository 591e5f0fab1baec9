#!/usr/bin/env python3
"""A long-lived process for tests/enforcement_ops.rs: reads attempts from stdin, one a line,
in connect_probe.py's form (tcp4:ADDRESS:PORT, udp4:..., child:..., exec:PATH), makes each and
answers with one line of JSON, {"attempt", "result"} (the errno, 0 on success; for a child or
an exec, what connect_probe.py reports). It stays one process across the test's steps (the
enforcement it is under outlives one collector and is adopted by the next), and its `child:`
attempts fork new processes at each step (a process tree followed while no collector runs).
Ends at end of input.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from connect_probe import attempt  # noqa: E402


def main():
    for line in sys.stdin:
        spec = line.strip()
        if not spec:
            continue
        print(json.dumps({"attempt": spec, "result": attempt(spec)}), flush=True)


if __name__ == "__main__":
    main()
