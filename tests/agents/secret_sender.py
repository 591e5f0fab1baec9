#!/usr/bin/env python3
"""Sends one secret of every family over real sockets, split as badly as possible, and runs
commands with secrets in their argv: the workload of tests/redaction.rs.

For each carrier (an HTTP request head, a JSON body, a form body, a query string, a connection
string, a SQL statement, a PostgreSQL password message) it connects to a sink in this process
and writes the bytes
  - one byte per write (plain TCP, and TLS through the system libssl: one SSL_write per byte),
  - in one write after enough padding that the secret straddles the kernel's 16 KiB chunk
    boundary (plain TCP and TLS).
Then it execs programs named like the clients that take passwords in argv (symlinks to
/bin/true). It writes the secrets as JSON to --secrets-file so the test knows what must not
appear.

Usage: secret_sender.py --cert CERT --key KEY --bin-dir DIR --secrets-file FILE
                        [--wait-before-start-file FILE]
"""

import argparse
import hashlib
import json
import os
import socket
import ssl
import struct
import subprocess
import threading
import time

CHUNK = 16384


def secret(family):
    # Alphanumeric (no carrier ends it early) and with no 8 bytes in common between families,
    # so a leak names its family. Every third character is a capital letter (a hex digit becomes
    # one of G..P), so no 8 bytes of a secret are all digits: a run of digits could turn up
    # inside the timestamps and ids of the output by chance ("21307567" of sql_alter_user's
    # secret once did, in a CI run) and be taken for a leak.
    digest = hashlib.sha256(family.encode()).hexdigest()[:24]
    letter = lambda c: chr(ord("G") + int(c)) if c.isdigit() else c.upper()
    return "Zq" + "".join(letter(c) if i % 3 == 0 else c for i, c in enumerate(digest))


FAMILIES = [
    "cookie",
    "set_cookie_like",
    "amz_token",
    "vault_token",
    "subscription_key",
    "query_key",
    "query_signature",
    "form_password",
    "form_client_secret",
    "json_passwd",
    "json_private_key",
    "json_aws_secret",
    "tool_api_key",
    "dsn_postgres",
    "dsn_redis",
    "sql_alter_user",
    "pg_password",
]
SECRETS = {f: secret(f) for f in FAMILIES}


def http(head_lines, body=""):
    head = "POST /v1/run HTTP/1.1\r\nHost: sink.local\r\n"
    for line in head_lines:
        head += line + "\r\n"
    head += "Content-Length: %d\r\n\r\n" % len(body)
    return (head + body).encode()


def carriers():
    s = SECRETS
    tool_args = json.dumps({"command": "deploy", "env": {"MY_TOOL_API_KEY": s["tool_api_key"]}})
    yield "cookie", http(["Cookie: theme=dark; sid=%s; lang=en" % s["cookie"]])
    yield "set_cookie_like", http(["Set-Cookie: sid=%s; Path=/" % s["set_cookie_like"]])
    yield "amz_token", http(["X-Amz-Security-Token: %s" % s["amz_token"]])
    yield "vault_token", http(["X-Vault-Token: %s" % s["vault_token"]])
    yield "subscription_key", http(["Ocp-Apim-Subscription-Key: %s" % s["subscription_key"]])
    yield "query_key", (
        "GET /maps?q=x&key=%s&z=1 HTTP/1.1\r\nHost: sink.local\r\n\r\n" % s["query_key"]
    ).encode()
    yield "query_signature", (
        "GET /b/o?X-Amz-Expires=60&X-Amz-Signature=%s HTTP/1.1\r\nHost: sink.local\r\n\r\n"
        % s["query_signature"]
    ).encode()
    yield "form_password", http(
        ["Content-Type: application/x-www-form-urlencoded"],
        "user=ann&password=%s&remember=1" % s["form_password"],
    )
    yield "form_client_secret", http(
        ["Content-Type: application/x-www-form-urlencoded"],
        "grant_type=client_credentials&client_id=app&client_secret=%s" % s["form_client_secret"],
    )
    yield "json_passwd", http([], json.dumps({"user": "ann", "passwd": s["json_passwd"]}))
    yield "json_private_key", http([], json.dumps({"private_key": s["json_private_key"]}))
    yield "json_aws_secret", http(
        [], json.dumps({"aws_secret_access_key": s["json_aws_secret"], "region": "eu"})
    )
    yield "tool_api_key", http(
        [],
        json.dumps(
            {
                "model": "gpt-4o",
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c1", "type": "function",
                             "function": {"name": "shell", "arguments": tool_args}}
                        ],
                    }
                ],
            }
        ),
    )
    yield "dsn_postgres", http(
        [], json.dumps({"url": "postgresql://app:%s@db.internal:5432/shop" % s["dsn_postgres"]})
    )
    yield "dsn_redis", http([], json.dumps({"url": "redis://:%s@cache:6379/0" % s["dsn_redis"]}))
    yield "sql_alter_user", pg_query("ALTER USER app WITH PASSWORD '%s'" % s["sql_alter_user"])
    yield "pg_password", pg_password(s["pg_password"])


def pg_startup():
    body = struct.pack("!I", 196608) + b"user\0app\0database\0shop\0\0"
    return struct.pack("!I", len(body) + 4) + body


def pg_message(kind, body):
    return kind + struct.pack("!I", len(body) + 4) + body


def pg_query(sql):
    return pg_startup() + pg_message(b"p", b"x\0") + pg_message(b"Q", sql.encode() + b"\0")


def pg_password(password):
    return pg_startup() + pg_message(b"p", password.encode() + b"\0") + pg_message(b"X", b"")


def padded(family, payload):
    """The payload after earlier traffic that puts the secret across a 16 KiB chunk boundary
    of one write."""
    secret = SECRETS[family].encode()
    at = payload.index(secret)
    target = CHUNK - len(secret) // 2
    if family.startswith(("sql", "pg")):
        # A harmless query before, so the framing stays PostgreSQL's.
        start = pg_startup()
        k = (target - at - 15) % CHUNK
        filler = pg_message(b"Q", b"SELECT '" + b"y" * k + b"'\0")
        return start + filler + payload[len(start):]
    # An earlier request on the same connection.
    for digits in range(1, 6):
        head_len = len("POST /pad HTTP/1.1\r\nHost: sink.local\r\nContent-Length: \r\n\r\n") + digits
        n = (target - at - head_len) % CHUNK
        if len(str(n)) == digits:
            head = "POST /pad HTTP/1.1\r\nHost: sink.local\r\nContent-Length: %d\r\n\r\n" % n
            return head.encode() + b"p" * n + payload
    raise AssertionError("no padding fits")


class Sink:
    """Accepts connections and reads them to the end (plain or TLS)."""

    def __init__(self, context=None):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.context = context
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            conn, _ = self.listener.accept()
            threading.Thread(target=self.drain, args=(conn,), daemon=True).start()

    def drain(self, conn):
        try:
            if self.context:
                conn = self.context.wrap_socket(conn, server_side=True)
            while conn.recv(65536):
                pass
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()


def send(port, payload, byte_by_byte, tls_context=None):
    raw = socket.create_connection(("127.0.0.1", port))
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = tls_context.wrap_socket(raw, server_hostname="localhost") if tls_context else raw
    if byte_by_byte:
        for i in range(len(payload)):
            conn.sendall(payload[i : i + 1])
    else:
        conn.sendall(payload)
    time.sleep(0.05)
    if tls_context:
        try:
            conn.unwrap()
        except (OSError, ssl.SSLError):
            pass
    conn.close()


def run_argv_commands(bin_dir):
    argv_secrets = {
        name: secret(name)
        for name in [
            "argv_mysql",
            "argv_password_flag",
            "argv_password_next",
            "argv_curl_header",
            "argv_dsn",
            "argv_env",
        ]
    }
    s = argv_secrets
    for name in ["mysql", "curl", "psql", "tool"]:
        link = os.path.join(bin_dir, name)
        if not os.path.exists(link):
            os.symlink("/bin/true", link)
    commands = [
        [os.path.join(bin_dir, "mysql"), "-uroot", "-p" + s["argv_mysql"], "shop"],
        [os.path.join(bin_dir, "tool"), "--password=" + s["argv_password_flag"]],
        [os.path.join(bin_dir, "tool"), "--api-key", s["argv_password_next"], "run"],
        [os.path.join(bin_dir, "curl"), "-H", "Authorization: Bearer " + s["argv_curl_header"],
         "https://api.example.com"],
        [os.path.join(bin_dir, "psql"), "postgresql://app:%s@db:5432/shop" % s["argv_dsn"]],
        ["/usr/bin/env", "OPENAI_API_KEY=" + s["argv_env"], "/bin/true"],
    ]
    for command in commands:
        subprocess.run(command, check=True)
    return argv_secrets


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--bin-dir", required=True)
    parser.add_argument("--secrets-file", required=True)
    parser.add_argument("--wait-before-start-file")
    args = parser.parse_args()
    args.bin_dir = os.path.abspath(args.bin_dir)

    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(args.cert, args.key)
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.load_verify_locations(args.cert)
    plain = Sink()
    tls = Sink(server_context)

    if args.wait_before_start_file:
        while not os.path.exists(args.wait_before_start_file):
            time.sleep(0.02)

    for family, payload in carriers():
        for port, context in ((plain.port, None), (tls.port, client_context)):
            send(port, payload, True, context)
            send(port, padded(family, payload), False, context)
    secrets = dict(SECRETS)
    secrets.update(run_argv_commands(args.bin_dir))
    time.sleep(0.3)
    # To a file, not stdout: file writes are not captured, a pipe would be.
    with open(args.secrets_file, "w") as out:
        json.dump(secrets, out)


if __name__ == "__main__":
    main()
