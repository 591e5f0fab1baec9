#!/usr/bin/env python3
"""Tries connections, datagrams and execs and reports what each returned, for
tests/enforcement.rs.

Each argument is one attempt, `KIND:ADDRESS:PORT`:
  tcp4, tcp6   connect() a TCP socket of that family (an IPv4-mapped address such as
               ::ffff:127.0.0.2 goes through an IPv6 socket)
  udp4, udp6   sendto() one datagram on an unconnected UDP socket
  child        `child:KIND:ADDRESS:PORT` runs the attempt in a child process (this script
               again), to show that a process tree is followed
  exec         `exec:PATH ARG...` runs PATH with the arguments (split like a shell's words)
               in a child process, its standard input empty
  open         `open:PATH` opens PATH for reading and reads a byte
Prints one JSON object: {"results": [{"attempt", "result"}...]}. For a connection or datagram
the result is the errno, 0 when the call succeeded (a TCP connect to a port nobody listens on
gives ECONNREFUSED, 111, when it is let through; a policy's denial gives EPERM, 1); for an exec
it is the child's exit status, or minus the signal that ended it (-9: killed); for an open, the
errno, 0 when it succeeded (an open killed by a file policy ends the probe: run it as a child).
"""
import json
import shlex
import socket
import subprocess
import sys


def attempt(spec):
    kind, rest = spec.split(":", 1)
    if kind == "child":
        done = subprocess.run([sys.executable, __file__, rest], capture_output=True, text=True)
        if done.returncode < 0:
            return done.returncode
        return json.loads(done.stdout)["results"][0]["result"]
    if kind == "exec":
        return subprocess.run(shlex.split(rest), capture_output=True, input=b"").returncode
    if kind == "open":
        try:
            with open(rest, "rb") as f:
                f.read(1)
            return 0
        except OSError as err:
            return err.errno
    address, port = rest.rsplit(":", 1)
    family = socket.AF_INET6 if kind.endswith("6") else socket.AF_INET
    kind_of = socket.SOCK_STREAM if kind.startswith("tcp") else socket.SOCK_DGRAM
    sock = socket.socket(family, kind_of)
    try:
        if kind.startswith("tcp"):
            sock.connect((address, int(port)))
        else:
            sock.sendto(b"probe", (address, int(port)))
        return 0
    except OSError as err:
        return err.errno
    finally:
        sock.close()


def main():
    results = [{"attempt": spec, "result": attempt(spec)} for spec in sys.argv[1:]]
    print(json.dumps({"results": results}), flush=True)


if __name__ == "__main__":
    main()
