#!/usr/bin/env python3
# Many concurrent plain TCP connections on loopback, each sending a known number of bytes to a
# sink in this same process, so a test can compare what was sent with what the collector
# delivered plus what it reports lost (`lost_bytes`).
import argparse
import json
import os
import socket
import threading
import time

from start_gate import wait_for_start_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--bytes-per-connection", type=int, default=1 << 20)
    ap.add_argument("--write-size", type=int, default=8192)
    ap.add_argument("--wait-before-start-file")
    args = ap.parse_args()

    wait_for_start_file(args.wait_before_start_file, "many_senders")

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(args.connections)
    port = listener.getsockname()[1]
    received = []
    lock = threading.Lock()

    def sink(conn):
        total = 0
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            total += len(chunk)
        conn.close()
        with lock:
            received.append(total)

    def accept_all():
        threads = []
        for _ in range(args.connections):
            conn, _ = listener.accept()
            t = threading.Thread(target=sink, args=(conn,))
            t.start()
            threads.append(t)
        for t in threads:
            t.join()

    def send():
        s = socket.create_connection(("127.0.0.1", port))
        block = b"x" * args.write_size
        left = args.bytes_per_connection
        while left > 0:
            n = s.send(block[: min(left, len(block))])
            left -= n
        s.close()

    acceptor = threading.Thread(target=accept_all)
    acceptor.start()
    senders = [threading.Thread(target=send) for _ in range(args.connections)]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    acceptor.join()
    print(json.dumps({"pid": os.getpid(), "port": port,
                      "sent": args.connections * args.bytes_per_connection,
                      "received": sum(received)}), flush=True)


if __name__ == "__main__":
    main()
