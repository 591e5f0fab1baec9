#!/usr/bin/env python3
# Hand-built DNS query over a plain UDP sendto(), so tests control exactly
# which syscall carries the lookup (no libc resolver, no nsswitch, no cache).
import argparse
import os
import socket
import struct
import sys


def build_query(qid, name):
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".") if p)
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + struct.pack("!HH", 1, 1)


def skip_name(packet, off):
    while True:
        n = packet[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        off += 1 + n


def first_a_record(packet, qid):
    rid, flags, qdcount, ancount = struct.unpack_from("!HHHH", packet)
    if rid != qid or not flags & 0x8000 or flags & 0x000F:
        return None
    off = 12
    for _ in range(qdcount):
        off = skip_name(packet, off) + 4
    for _ in range(ancount):
        off = skip_name(packet, off)
        rtype, _rclass, _ttl, rdlen = struct.unpack_from("!HHIH", packet, off)
        off += 10
        if rtype == 1 and rdlen == 4:
            return socket.inet_ntoa(packet[off:off + 4])
        off += rdlen
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="127.0.0.53")
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--name", required=True)
    args = ap.parse_args()

    qid = int.from_bytes(os.urandom(2), "big")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2.0)
        sock.sendto(build_query(qid, args.name), (args.server, args.port))
        try:
            while True:
                packet, _ = sock.recvfrom(4096)
                ip = first_a_record(packet, qid)
                if ip:
                    print(ip)
                    return 0
        except socket.timeout:
            pass
        except (IndexError, struct.error):
            pass
    print(f"dns_query: no A record for {args.name} from {args.server}:{args.port}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
