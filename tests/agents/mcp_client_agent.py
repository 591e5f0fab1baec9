#!/usr/bin/env python3
# Minimal MCP client "agent", built with the official MCP Python SDK. Against a stdio server it
# spawns itself (tests/agents/mcp_files_server.py by default) it runs initialize, tools/list,
# tools/call read_file, resources/read and prompts/get; against a Streamable HTTP server
# (--http-url) initialize, tools/list and tools/call echo (and query_database with --sql). It
# also runs a shell pipeline whose pipes carry no JSON (`seq 1000 | cat`), which the collector
# must not capture.
#
# What it received is written to --dump as JSON (the SDK results, in wire field names): the
# ground truth the end-to-end test compares captured MCP traffic with.
#
# Needs the SDK: run it with the test venv's interpreter (scripts/setup.sh creates it;
# $AGENTSCOPE_TEST_PYTHON, default $HOME/.cache/agentscope/test-venv/bin/python).
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import Implementation

HERE = Path(__file__).resolve().parent
CLIENT_INFO = Implementation(name="agentscope-test-agent", version="0.3.1")


def fail(msg):
    print(f"mcp_client_agent: error: {msg}", file=sys.stderr)
    sys.exit(1)


def wait_for_file(path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            fail(f"timed out waiting for {path}")
        time.sleep(0.05)


async def wait_for_file_async(path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            fail(f"timed out waiting for {path}")
        await anyio.sleep(0.05)


def wire(model):
    """An SDK result as the JSON object it was on the wire."""
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def stdio_session(args, dump):
    params = StdioServerParameters(
        command=args.server_python,
        args=[str(args.files_server)],
        env={"PYTHONUNBUFFERED": "1"},
    )
    async with stdio_client(params, errlog=sys.stderr) as (read, write):
        async with ClientSession(read, write, client_info=CLIENT_INFO) as session:
            dump["initialize"] = wire(await session.initialize())
            if args.initialized_marker:
                # The session is up (pipes made, server running): a collector started now
                # only sees pipes that already exist.
                with open(args.initialized_marker, "w") as f:
                    f.write("initialized")
                await wait_for_file_async(args.resume_file)
            dump["tools_list"] = wire(await session.list_tools())
            dump["read_file"] = wire(await session.call_tool("read_file", {"path": args.read_path}))
            dump["read_missing_file"] = wire(
                await session.call_tool("read_file", {"path": args.read_path + ".missing"}))
            dump["resource"] = wire(await session.read_resource("notes://agentscope/today"))
            dump["prompt"] = wire(await session.get_prompt(
                "summarize_file", {"path": args.read_path, "style": "terse"}))


async def http_session(args, dump):
    async with streamable_http_client(args.http_url) as (read, write):
        async with ClientSession(read, write, client_info=CLIENT_INFO) as session:
            dump["http_initialize"] = wire(await session.initialize())
            dump["http_tools_list"] = wire(await session.list_tools())
            dump["http_echo"] = wire(await session.call_tool("echo", {"text": args.echo_text}))
            if args.sql:
                dump["http_query"] = wire(await session.call_tool("query_database", {"sql": args.sql}))


async def run(args):
    dump = {}
    await stdio_session(args, dump)
    if args.http_url:
        await http_session(args, dump)
    return dump


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--read-path", required=True, help="file the stdio server's read_file reads")
    ap.add_argument("--dump", required=True, help="where to write what the client received")
    ap.add_argument("--http-url", help="Streamable HTTP endpoint of mcp_crm_server.py")
    ap.add_argument("--echo-text", default="hello over streamable http")
    ap.add_argument("--sql", help="also call query_database with this SQL")
    ap.add_argument("--server-python", default=sys.executable,
                    help="interpreter for the stdio server (default: this one)")
    ap.add_argument("--files-server", default=HERE / "mcp_files_server.py")
    ap.add_argument("--no-shell-pipeline", action="store_true",
                    help="skip the non-JSON `seq 1000 | cat` pipeline")
    ap.add_argument("--initialized-marker",
                    help="after initialize, create this file and wait for --resume-file")
    ap.add_argument("--resume-file")
    ap.add_argument("--wait-before-start-file",
                    help="block until this file exists (lets a collector attach first)")
    args = ap.parse_args()
    if args.initialized_marker and not args.resume_file:
        ap.error("--initialized-marker needs --resume-file")

    if args.wait_before_start_file:
        wait_for_file(args.wait_before_start_file)

    dump = anyio.run(run, args)
    if not args.no_shell_pipeline:
        # Pipes from this process to sh and between seq and cat: lines of digits, never JSON.
        out = subprocess.run("seq 1000 | cat", shell=True, check=True, capture_output=True).stdout
        dump["shell_pipeline_bytes"] = len(out)
    with open(args.dump, "w") as f:
        json.dump(dump, f, indent=1, sort_keys=True)
    print(json.dumps({"ok": True, "pid": os.getpid(), "steps": sorted(dump)}))


if __name__ == "__main__":
    main()
