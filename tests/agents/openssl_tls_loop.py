#!/usr/bin/env python3
# A TLS echo loop in one Python process over the system libssl (SSL_write_ex/SSL_read_ex),
# the OpenSSL counterpart of go_tls_loop/ for crates/cli/benches/tls_probe_overhead.rs:
# a client and a server thread over loopback TCP. For every line N read from stdin the
# client writes --size bytes and reads them back N times (two SSL writes and two SSL reads
# per round trip), then prints the loop's time in nanoseconds on a line of its own. The
# certificate comes from --cert-dir (cert.pem/key.pem, made with openssl if missing). It
# prints "ready" once connected.
import argparse
import os
import socket
import ssl
import subprocess
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--cert-dir", required=True)
    args = ap.parse_args()
    cert, key = (os.path.join(args.cert_dir, n) for n in ("cert.pem", "key.pem"))
    if not os.path.exists(cert):
        os.makedirs(args.cert_dir, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                        "-keyout", key, "-out", cert],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        raw, _ = listener.accept()
        with server_ctx.wrap_socket(raw, server_side=True) as conn:
            while True:
                data = b""
                while len(data) < args.size:
                    piece = conn.recv(args.size - len(data))
                    if not piece:
                        return
                    data += piece
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    client_ctx = ssl.create_default_context(cafile=cert)
    conn = client_ctx.wrap_socket(socket.create_connection(listener.getsockname()),
                                  server_hostname="localhost")
    out = b"x" * args.size
    print("ready", flush=True)
    for line in sys.stdin:
        n = int(line)
        start = time.perf_counter_ns()
        for _ in range(n):
            conn.sendall(out)
            got = 0
            while got < args.size:
                got += len(conn.recv(args.size - got))
        print(time.perf_counter_ns() - start, flush=True)
    conn.close()


if __name__ == "__main__":
    main()
