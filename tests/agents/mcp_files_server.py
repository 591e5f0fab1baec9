#!/usr/bin/env python3
# MCP server over stdio (newline-delimited JSON-RPC on stdin/stdout), built with the official
# MCP Python SDK. It is what an agent spawns as a "filesystem" tool server: its tool really
# opens and reads the file it is asked for, so the collector sees the open(2) in the server
# process, the tools/call request on the server's stdin and the file's text in the response on
# its stdout.
#
# Needs the SDK: run it with the test venv's interpreter (scripts/setup.sh creates it;
# $AGENTSCOPE_TEST_PYTHON, default $HOME/.cache/agentscope/test-venv/bin/python).
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

server = MCPServer(
    name="agentscope-files",
    version="1.0.0",
    instructions="Reads local files for the agent.",
    log_level="WARNING",
)

NOTES = "agentscope test notes: the quick brown fox\nsecond line\n"


@server.tool(
    title="Read a file",
    description="Read a text file from the local disk and return its contents.",
    annotations=ToolAnnotations(read_only_hint=True, open_world_hint=False),
)
def read_file(path: str) -> str:
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as err:
        # Answered as a tool result with isError=true, as the spec asks for tool failures.
        raise ToolError(f"cannot read {path}: {err.strerror}") from err


@server.resource(
    "notes://agentscope/today",
    name="today-notes",
    description="Today's notes.",
    mime_type="text/plain",
)
def today_notes() -> str:
    return NOTES


@server.prompt(name="summarize_file", description="Ask the model to summarize a file.")
def summarize_file(path: str, style: str = "brief") -> str:
    return f"Summarize the file at {path} in a {style} style."


if __name__ == "__main__":
    # Diagnostics go to stderr: stdout is the protocol channel.
    print("mcp_files_server: serving on stdio", file=sys.stderr)
    server.run("stdio")
