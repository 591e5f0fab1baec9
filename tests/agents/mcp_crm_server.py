#!/usr/bin/env python3
# MCP server over Streamable HTTP on 127.0.0.1, built with the official MCP Python SDK: a "CRM"
# tool server whose query_database tool runs SQL by executing psql as a subprocess, against the
# PostgreSQL that tests/agents/postgres_server.py starts (database "crm", user "postgres").
# Without a PostgreSQL port (--pg-port or $AGENTSCOPE_PG_PORT) query_database answers with
# isError=true instead of failing the session. Tool echo(text) needs nothing.
#
# With --rendezvous N, query_database waits (at most 10 s) until N calls are running at once
# before it starts psql: concurrent sessions' calls then overlap in every run, as they do now
# and then by chance (tests/fixtures/capture/demo_overlapping_queries.jsonl is captured so).
#
# The listening port is chosen by the kernel and written to --port-file once the server accepts
# connections. The endpoint is http://127.0.0.1:PORT/mcp.
#
# Needs the SDK: run it with the test venv's interpreter (scripts/setup.sh creates it;
# $AGENTSCOPE_TEST_PYTHON, default $HOME/.cache/agentscope/test-venv/bin/python).
import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer(name="agentscope-crm", version="1.0.0", log_level="WARNING")
PG_PORT = None
# Set by --rendezvous: the calls that must be running at once before any starts psql.
RENDEZVOUS = None


@server.tool(
    title="Query the CRM database",
    description="Run one SQL statement against the CRM database and return the rows, one per line.",
)
def query_database(sql: str) -> str:
    if PG_PORT is None:
        raise ToolError("PostgreSQL is not configured (no --pg-port / AGENTSCOPE_PG_PORT)")
    if RENDEZVOUS is not None:
        try:
            # Sync tools run in the SDK's worker threads: the calls wait for each other there.
            RENDEZVOUS.wait(timeout=10)
        except threading.BrokenBarrierError:
            # The other call did not come: the barrier opens for every later call too.
            pass
    psql = shutil.which("psql") or "/usr/bin/psql"
    result = subprocess.run(
        [psql, "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres", "-d", "crm",
         "-At", "-c", sql],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if result.returncode != 0:
        raise ToolError(f"psql failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


@server.tool(title="Echo", description="Return the text unchanged.")
def echo(text: str) -> str:
    return text


async def serve(port_file):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    app = server.streamable_http_app(host="127.0.0.1")
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)

    async def announce():
        while not uv.started:
            await asyncio.sleep(0.02)
        tmp = port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.rename(tmp, port_file)
        print(f"mcp_crm_server: listening on http://127.0.0.1:{port}/mcp", file=sys.stderr)

    await asyncio.gather(uv.serve(sockets=[sock]), announce())


def main():
    global PG_PORT, RENDEZVOUS
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--pg-port", type=int, default=None)
    ap.add_argument("--rendezvous", type=int, default=None,
                    help="query_database waits until this many calls run at once")
    args = ap.parse_args()
    if args.rendezvous:
        RENDEZVOUS = threading.Barrier(args.rendezvous)
    PG_PORT = args.pg_port or (int(os.environ["AGENTSCOPE_PG_PORT"])
                               if os.environ.get("AGENTSCOPE_PG_PORT") else None)
    asyncio.run(serve(args.port_file))


if __name__ == "__main__":
    main()
