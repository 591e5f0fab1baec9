#!/usr/bin/env python3
# Container-escape primitives made as direct syscalls (ctypes), and their benign twins, for
# tests/agent_escape.rs: what a tool an agent runs could do without any escape binary.
#   unshare-uts                 unshare(CLONE_NEWUTS) (a namespace of its own)
#   mount-tmpfs DIR             mount("agentscope-escape", DIR, "tmpfs") (in the caller's
#                               mount namespace: the test's agent has a private one)
#   pivot-root NEW OLD          pivot_root(NEW, OLD) (refused: NEW is not a mount point)
#   ptrace-seize PID            PTRACE_SEIZE of PID (released when this process exits)
#   ptrace-own-child            forks a child, seizes it, kills it (its own tree: benign)
#   connect-unix NAME           connects a Unix stream socket to NAME (@NAME: abstract)
#   finit-module                finit_module(/dev/null) (refused; kernels with modules only)
# Prints what the syscall returned; exits 0 either way (a refused attempt is still one).
import ctypes
import os
import signal
import socket
import sys
import time

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
LIBC.ptrace.restype = ctypes.c_long
LIBC.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
CLONE_NEWUTS = 0x04000000
PTRACE_SEIZE = 0x4206
SYS_PIVOT_ROOT = 155
SYS_FINIT_MODULE = 313


def report(what, ret):
    print(f"{what} = {ret}" + (f" ({os.strerror(ctypes.get_errno())})" if ret < 0 else ""))


def main():
    what = sys.argv[1]
    if what == "unshare-uts":
        report(what, LIBC.unshare(CLONE_NEWUTS))
    elif what == "mount-tmpfs":
        os.makedirs(sys.argv[2], exist_ok=True)
        report(what, LIBC.mount(b"agentscope-escape", sys.argv[2].encode(), b"tmpfs", 0, None))
    elif what == "pivot-root":
        report(what, LIBC.syscall(SYS_PIVOT_ROOT, sys.argv[2].encode(), sys.argv[3].encode()))
    elif what == "ptrace-seize":
        report(what, LIBC.ptrace(PTRACE_SEIZE, int(sys.argv[2]), None, None))
    elif what == "ptrace-own-child":
        child = os.fork()
        if child == 0:
            time.sleep(30)
            os._exit(0)
        report(what, LIBC.ptrace(PTRACE_SEIZE, child, None, None))
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    elif what == "connect-unix":
        name = sys.argv[2]
        address = "\0" + name[1:] if name.startswith("@") else name
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(address)
        print(f"connected to {name}")
    elif what == "finit-module":
        fd = os.open("/dev/null", os.O_RDONLY)
        report(what, LIBC.syscall(SYS_FINIT_MODULE, fd, b"", 0))
    else:
        sys.exit(f"unknown primitive {what}")


if __name__ == "__main__":
    main()
