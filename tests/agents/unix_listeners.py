#!/usr/bin/env python3
# Listens on Unix stream sockets (paths, or @NAME for abstract names) until killed, so a test's
# connects succeed; writes "ready" to --ready-file once all listen. Connections are accepted
# and closed: the tests look at the connect, not at what is said.
import argparse
import os
import selectors
import socket


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("names", nargs="+")
    args = ap.parse_args()
    selector = selectors.DefaultSelector()
    for name in args.names:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if name.startswith("@"):
            s.bind("\0" + name[1:])
        else:
            os.makedirs(os.path.dirname(name), exist_ok=True)
            if os.path.exists(name):
                os.unlink(name)
            s.bind(name)
        s.listen(16)
        selector.register(s, selectors.EVENT_READ)
    with open(args.ready_file, "w") as f:
        f.write("ready")
    while True:
        for key, _ in selector.select():
            conn, _ = key.fileobj.accept()
            conn.close()


if __name__ == "__main__":
    main()
