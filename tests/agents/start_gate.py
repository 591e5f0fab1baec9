"""Workloads start paused: a test starts them, points the collector at their pid, then creates
the start file. One wait for every workload script that takes --wait-before-start-file."""
import os
import time


def wait_for_start_file(path, who):
    if not path:
        return
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise SystemExit(f"{who}: start file never appeared")
        time.sleep(0.02)
