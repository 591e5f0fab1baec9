#!/usr/bin/env python3
"""A DNS server for tests/enforcement_ops.rs whose answers the test chooses: UDP on
--bind ADDRESS (port 53, where resolvers are), A records from `--answer NAME=ADDRESS`
(repeatable) with --ttl, NXDOMAIN for anything else. Prints "ready" once bound. Built on
dnslib (pinned in scripts/setup.sh) so the answers are real DNS messages, compression included.
"""
import argparse
import socket
import sys

from dnslib import DNSRecord, QTYPE, RCODE, RR, A


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", required=True)
    parser.add_argument("--answer", action="append", default=[])
    parser.add_argument("--ttl", type=int, default=300)
    args = parser.parse_args()
    answers = {}
    for spec in args.answer:
        name, address = spec.split("=", 1)
        answers[name.rstrip(".").lower()] = address
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.bind, 53))
    print("ready", flush=True)
    while True:
        data, peer = sock.recvfrom(512)
        try:
            query = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - a test server ignores what it cannot parse
            continue
        reply = query.reply()
        name = str(query.q.qname).rstrip(".").lower()
        if name in answers and query.q.qtype == QTYPE.A:
            reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A(answers[name]), ttl=args.ttl))
        elif name not in answers:
            reply.header.rcode = RCODE.NXDOMAIN
        sock.sendto(reply.pack(), peer)


if __name__ == "__main__":
    sys.exit(main())
