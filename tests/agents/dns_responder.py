#!/usr/bin/env python3
# Stand-in local resolver (like systemd-resolved on 127.0.0.53) so DNS
# lookups can be observed offline: every A/ANY query resolves to 127.0.0.1.
import argparse
import os
import signal
import socket
import struct
import sys


def parse_question(packet):
    """Return (qname_end_offset, qtype) of the first question."""
    off = 12
    while True:
        n = packet[off]
        if n == 0:
            off += 1
            break
        if n & 0xC0 == 0xC0:  # compression pointer (unusual in queries)
            off += 2
            break
        off += 1 + n
    qtype, _qclass = struct.unpack_from("!HH", packet, off)
    return off, qtype


def answer(packet):
    qid, flags, qdcount = struct.unpack_from("!HHH", packet)
    if qdcount < 1 or flags & 0x8000:
        return None
    name_end, qtype = parse_question(packet)
    question = packet[12:name_end + 4]
    # QR=1, copy opcode and RD, set RA, RCODE=0 (NOERROR).
    rflags = 0x8000 | (flags & 0x7900) | 0x0080
    answers = b""
    if qtype in (1, 255):  # A or ANY; other types get NOERROR/NODATA
        answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton("127.0.0.1")
    return struct.pack("!HHHHHH", qid, rflags, 1, 1 if answers else 0, 0, 0) + question + answers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", default="127.0.0.53")
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--ready-file", required=True)
    args = ap.parse_args()

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.addr, args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    tmp = f"{args.ready_file}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{args.addr}:{sock.getsockname()[1]}\n")
    os.replace(tmp, args.ready_file)
    print(f"[dns] listening on {args.addr}:{sock.getsockname()[1]}/udp", file=sys.stderr, flush=True)
    try:
        while True:
            packet, peer = sock.recvfrom(4096)
            try:
                reply = answer(packet)
            except (IndexError, struct.error):
                continue  # malformed query: drop it, like a real resolver would
            if reply:
                sock.sendto(reply, peer)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
