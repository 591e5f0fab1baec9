#!/usr/bin/env python3
# A local process writing JSON into a pipe at full speed, read by its child: keeps the
# collector's ring buffer full (the captured JSON pipe data never stops), to test that the
# collector still stops within a second and writes its summary, graph and recording.
import argparse
import os
import time

from start_gate import wait_for_start_file


def flood(seconds, on_start=None):
    """Writes JSON lines into a pipe read by a child for `seconds`; returns the bytes written.
    `on_start(reader_pid)` runs once the reader exists."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(write_end)
        while os.read(read_end, 1 << 16):
            pass
        os._exit(0)
    os.close(read_end)
    if on_start:
        on_start(child)
    line = b'{"jsonrpc":"2.0","method":"notifications/progress","params":{"data":"' + b"x" * 400 + b'"}}\n'
    block = line * (65536 // len(line))
    written = 0
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        for _ in range(64):
            written += os.write(write_end, block)
    os.close(write_end)
    os.waitpid(child, 0)
    return written


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--wait-before-start-file")
    args = ap.parse_args()

    wait_for_start_file(args.wait_before_start_file, "pipe_flood")

    flood(args.seconds)


if __name__ == "__main__":
    main()
