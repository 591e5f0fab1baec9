#!/usr/bin/env python3
# Synthetic event flood: generates open()/exec() events faster than a
# collector may drain them, to exercise agentscope's drop accounting.
import argparse
import json
import os
import subprocess
import time

from start_gate import wait_for_start_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--opens", type=int, default=0)
    ap.add_argument("--path", default="/etc/hostname")
    ap.add_argument("--execs", type=int, default=0)
    # Lets a test start the flood first and point the collector at its pid before releasing it.
    ap.add_argument("--wait-before-start-file")
    args = ap.parse_args()

    wait_for_start_file(args.wait_before_start_file, "flood")

    start = time.monotonic()
    for _ in range(args.opens):
        os.close(os.open(args.path, os.O_RDONLY | os.O_CREAT, 0o644))
    for _ in range(args.execs):
        subprocess.run(["/bin/true"], check=True)
    print(json.dumps({"pid": os.getpid(), "opens": args.opens, "execs": args.execs,
                      "seconds": round(time.monotonic() - start, 3)}), flush=True)


if __name__ == "__main__":
    main()
