#!/usr/bin/env python3
# An agent for crates/cli/benches/agent_overhead.rs (`python_imports`): what an interpreter
# starting up does to the file hooks. Each "request" forgets a set of standard-library modules
# and imports them again, which opens their compiled files anew (a few hundred opens a request on
# Python 3.11), as an agent importing its framework does. Usage:
#   python_import_loop.py [ignored arguments]
# It imports once, prints "ready", then for every line N on stdin does N requests and prints
# the time they took in nanoseconds.
import importlib
import sys
import time

MODULES = [
    "json", "email.mime.multipart", "http.client", "decimal", "xml.dom.minidom", "csv",
    "argparse", "statistics",
]


def request(baseline):
    for name in list(sys.modules):
        if name not in baseline:
            del sys.modules[name]
    importlib.invalidate_caches()
    for name in MODULES:
        importlib.import_module(name)


def main():
    baseline = set(sys.modules)
    request(baseline)
    print("ready", flush=True)
    for line in sys.stdin:
        n = int(line)
        start = time.perf_counter_ns()
        for _ in range(n):
            request(baseline)
        print(time.perf_counter_ns() - start, flush=True)


if __name__ == "__main__":
    main()
