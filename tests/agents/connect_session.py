#!/usr/bin/env python3
"""A long-lived process for tests/enforcement_ops.rs: reads attempts from stdin, one a line,
in connect_probe.py's form (tcp4:ADDRESS:PORT, udp4:..., child:..., exec:PATH), makes each and
answers with one line of JSON, {"attempt", "result"} (the errno, 0 on success; for a child or
an exec, what connect_probe.py reports). `dns:NAME@SERVER` asks SERVER (port 53, UDP,
sendto/recvfrom as a stub resolver does) for NAME's A records: 0 when the answer has one,
-1 otherwise. It stays one process across the test's steps (the
enforcement it is under outlives one collector and is adopted by the next), and its `child:`
attempts fork new processes at each step (a process tree followed while no collector runs).
Its first line, {"ready": PID}, says it runs. Ends at end of input.
"""
import json
import os
import random
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from connect_probe import attempt  # noqa: E402


def resolve(spec):
    name, server = spec.split("@", 1)
    query_id = random.randrange(65536)
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
    query = struct.pack(">HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + question + b"\0" + \
        struct.pack(">HH", 1, 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    try:
        sock.sendto(query, (server, 53))
        answer, _ = sock.recvfrom(512)
    except OSError as err:
        return err.errno or -1
    finally:
        sock.close()
    (answer_id, _flags, _questions, answers) = struct.unpack(">HHHH", answer[:8])
    return 0 if answer_id == query_id and answers > 0 else -1


def main():
    # Running: whatever set the process up before its exec (a mount namespace, a bind mount)
    # is in place, so what the test starts next sees the process as it will stay.
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        spec = line.strip()
        if not spec:
            continue
        if spec.startswith("dns:"):
            result = resolve(spec[len("dns:"):])
        else:
            result = attempt(spec)
        print(json.dumps({"attempt": spec, "result": result}), flush=True)


if __name__ == "__main__":
    main()
