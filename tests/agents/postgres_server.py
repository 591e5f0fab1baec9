#!/usr/bin/env python3
"""A throwaway PostgreSQL server for tests: the "database" an agent queries.

Creates a fresh cluster from the Debian PostgreSQL binaries in a temporary directory,
listens on 127.0.0.1 on a free port (written to --port-file) and on a Unix socket in that
directory, trusts every local connection, and loads a small `crm` database:

    customers(id, name, email, plan, balance)   -- 3 rows

When ready it writes --ready-file (if given) and prints `ready port=PORT socket_dir=DIR` on
stdout. On SIGTERM or SIGINT it stops the server and deletes the directory.

initdb refuses to run as root, so when started as root the server runs as the `postgres`
user that the Debian package creates. With --ssl it also serves TLS with a throwaway
self-signed certificate (clients choose with sslmode=disable/require).

Python 3.11 standard library only.
"""
import argparse
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SEED_SQL = """
CREATE DATABASE crm;
\\connect crm
CREATE TABLE customers (
    id      integer PRIMARY KEY,
    name    text NOT NULL,
    email   text NOT NULL,
    plan    text NOT NULL,
    balance numeric(12, 2) NOT NULL DEFAULT 0
);
INSERT INTO customers (id, name, email, plan, balance) VALUES
    (1, 'Ada Lovelace',  'ada@example.com',   'enterprise', 1200.00),
    (2, 'Alan Turing',   'alan@example.com',  'pro',          99.50),
    (3, 'Grace Hopper',  'grace@example.com', 'free',          0.00);
-- Tables the agents' role can see and the scenarios never query (posture's catalogue gap).
CREATE TABLE invoices (
    id          integer PRIMARY KEY,
    customer_id integer NOT NULL,
    amount      numeric(12, 2) NOT NULL
);
CREATE TABLE staff_credentials (
    login         text PRIMARY KEY,
    password_hash text NOT NULL
);
"""

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def log(msg):
    print(f"[postgres-server] {msg}", file=sys.stderr, flush=True)


def fail(msg):
    log(f"error: {msg}")
    sys.exit(1)


def find_bin_dir():
    """Newest /usr/lib/postgresql/N/bin that has initdb and postgres."""
    candidates = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        bin_dir = os.path.dirname(initdb)
        version = os.path.basename(os.path.dirname(bin_dir))
        if os.path.exists(os.path.join(bin_dir, "postgres")) and re.fullmatch(r"\d+", version):
            candidates.append((int(version), bin_dir))
    if not candidates:
        fail(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
            "(Debian package `postgresql`); run make setup"
        )
    return max(candidates)[1]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, bin_dir, ssl):
        self.bin_dir = bin_dir
        self.ssl = ssl
        self.server = None
        self.port = None
        # As root, everything runs as `postgres`; otherwise as the current user.
        self.user = None
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam("postgres")
            except KeyError:
                fail("running as root but there is no `postgres` user; run make setup")
        self.root = tempfile.mkdtemp(prefix="agentscope-pg-")
        self.data_dir = os.path.join(self.root, "data")
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        os.chmod(self.root, 0o755)

    def _as_owner(self):
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def _env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["HOME"] = self.root
        env["LC_ALL"] = "C"
        return env

    def run(self, args, timeout, input_text=None):
        result = subprocess.run(
            args,
            cwd=self.root,
            env=self._env(),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            **self._as_owner(),
        )
        if result.returncode != 0:
            fail(f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
        return result.stdout

    def init(self):
        self.run(
            [
                os.path.join(self.bin_dir, "initdb"),
                "-D", self.data_dir,
                "-U", "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            timeout=120,
        )
        if self.ssl:
            self.run(
                [
                    "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-keyout", os.path.join(self.data_dir, "server.key"),
                    "-out", os.path.join(self.data_dir, "server.crt"),
                    "-days", "2", "-subj", "/CN=localhost",
                ],
                timeout=60,
            )
            os.chmod(os.path.join(self.data_dir, "server.key"), 0o600)

    def start(self):
        # A free port can be taken between probing and binding: retry a few times.
        for attempt in range(3):
            self.port = free_port()
            args = [
                os.path.join(self.bin_dir, "postgres"),
                "-D", self.data_dir,
                "-c", "listen_addresses=127.0.0.1",
                "-c", f"port={self.port}",
                "-c", f"unix_socket_directories={self.root}",
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
                "-c", f"ssl={'on' if self.ssl else 'off'}",
                "-c", "logging_collector=off",
            ]
            log_path = os.path.join(self.root, "server.log")
            log_file = open(log_path, "ab")
            self.server = subprocess.Popen(
                args,
                cwd=self.root,
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,  # a Ctrl-C in the test's terminal goes to us only
                **self._as_owner(),
            )
            log_file.close()
            if self._wait_ready():
                return
            self._stop_server()
            log(f"server did not start on port {self.port} (attempt {attempt + 1})")
        with open(os.path.join(self.root, "server.log"), errors="replace") as f:
            fail(f"PostgreSQL did not start; server log:\n{f.read()[-4000:]}")

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        pg_isready = os.path.join(self.bin_dir, "pg_isready")
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                return False
            probe = subprocess.run(
                [pg_isready, "-h", self.root, "-p", str(self.port), "-U", "postgres", "-t", "2"],
                env=self._env(),
                capture_output=True,
                timeout=10,
            )
            if probe.returncode == 0:
                return True
            time.sleep(0.1)
        return False

    def seed(self):
        self.run(
            [
                os.path.join(self.bin_dir, "psql"),
                "-X", "-q", "-v", "ON_ERROR_STOP=1",
                "-h", self.root, "-p", str(self.port), "-U", "postgres", "-d", "postgres",
            ],
            timeout=60,
            input_text=SEED_SQL,
        )

    def _stop_server(self):
        if self.server is None or self.server.poll() is not None:
            return
        # SIGINT is PostgreSQL's "fast shutdown": roll back sessions, exit cleanly.
        self.server.send_signal(signal.SIGINT)
        try:
            self.server.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log("server ignored fast shutdown; killing it")
            self.server.kill()
            self.server.wait(timeout=STOP_TIMEOUT_S)

    def destroy(self):
        try:
            self._stop_server()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def write_atomically(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)  # readers never see a partial file


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port-file", required=True, help="where to write the TCP port")
    ap.add_argument("--ready-file", help="created once the crm database is loaded")
    ap.add_argument("--ssl", action="store_true", help="also serve TLS (self-signed)")
    args = ap.parse_args()

    stop_requested = []

    def request_stop(signum, _frame):
        stop_requested.append(signum)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    if args.ssl and shutil.which("openssl") is None:
        fail("--ssl needs the openssl command; run make setup")
    cluster = Cluster(find_bin_dir(), args.ssl)
    try:
        cluster.init()
        cluster.start()
        cluster.seed()
        write_atomically(args.port_file, f"{cluster.port}\n")
        if args.ready_file:
            write_atomically(args.ready_file, f"{cluster.port}\n")
        print(f"ready port={cluster.port} socket_dir={cluster.root}", flush=True)
        log(f"listening on 127.0.0.1:{cluster.port}")
        while not stop_requested:
            if cluster.server.poll() is not None:
                fail(f"server exited unexpectedly with {cluster.server.returncode}")
            time.sleep(0.1)
    finally:
        cluster.destroy()
        log("stopped and removed")


if __name__ == "__main__":
    main()
