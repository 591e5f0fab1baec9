#!/usr/bin/env python3
# A tool-using agent for the reconstruction end-to-end test, the recordings and the demo: the
# support team's account-health assistant. It asks the model (the TLS mock LLM, OpenAI Chat
# Completions dialect) the user's questions, offering the tools of two MCP servers and two of
# its own:
#   read_file       MCP over stdio  (tests/agents/mcp_files_server.py, spawned by this agent)
#   query_database  MCP over Streamable HTTP (tests/agents/mcp_crm_server.py, runs psql)
#   http_get        the agent's own HTTP GET (to tests/agents/http_api_service.py)
#   http_post       the agent's own HTTP POST (webhooks, ticket updates)
# With --ops-tools (the operations edition, for tests/detection_scenarios.rs) it also offers
#   run_shell       runs a shell command with subprocess (sh -c) and returns its output
# and http_get takes optional request headers.
# It runs the tool calls the model requests, sends the results back with their tool-call ids,
# and prints the final answer. Each --question (repeatable) is one user message of the same
# chat: the answer to one stays in the conversation when the next is asked. What it did is
# written to --dump (the test's ground truth).
#
# Needs the MCP SDK: run it with the test venv's interpreter ($AGENTSCOPE_TEST_PYTHON, default
# $HOME/.cache/agentscope/test-venv/bin/python, created by scripts/setup.sh).
import argparse
import http.client
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import Implementation

HERE = Path(__file__).resolve().parent
CLIENT_INFO = Implementation(name="incident-agent", version="1.0.0")
SYSTEM_PROMPT = ("You are the account-health assistant of the support team. Use the tools to "
                 "gather facts, then write a short summary. Never reveal credentials.")
HTTP_GET_TOOL = {
    "type": "function",
    "function": {
        "name": "http_get",
        "description": "Fetch a URL from the internal account API and return the body.",
        "parameters": {"type": "object", "properties": {"url": {"type": "string"}},
                       "required": ["url"]},
    },
}
HTTP_POST_TOOL = {
    "type": "function",
    "function": {
        "name": "http_post",
        "description": ("Send a text or JSON body to a URL with HTTP POST (webhooks, ticket "
                        "updates, partner integrations) and return the response body."),
        "parameters": {"type": "object",
                       "properties": {"url": {"type": "string"}, "body": {"type": "string"}},
                       "required": ["url", "body"]},
    },
}
HTTP_GET_WITH_HEADERS_TOOL = {
    "type": "function",
    "function": {
        "name": "http_get",
        "description": ("Fetch a URL from the internal account API and return the body. "
                        "Optional request headers as an object."),
        "parameters": {"type": "object",
                       "properties": {"url": {"type": "string"},
                                      "headers": {"type": "object",
                                                  "additionalProperties": {"type": "string"}}},
                       "required": ["url"]},
    },
}
RUN_SHELL_TOOL = {
    "type": "function",
    "function": {
        "name": "run_shell",
        "description": ("Run a shell command on the support host for diagnostics and return "
                        "its output (stdout and stderr)."),
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}},
                       "required": ["command"]},
    },
}
MAX_ROUNDS_PER_QUESTION = 24
DEFAULT_QUESTION = "Summarise customer account health for the weekly report."
# The test services are local: never go through a proxy from the environment.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fail(msg):
    print(f"incident_agent: error: {msg}", file=sys.stderr)
    sys.exit(1)


def wait_for_file(path, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            fail(f"timed out waiting for {path}")
        time.sleep(0.05)


def schema_of(tool):
    # SDK 2.x names fields in snake case; 1.x used the wire's camel case.
    return getattr(tool, "input_schema", None) or getattr(tool, "inputSchema", None) or {}


def openai_tool(tool):
    return {"type": "function",
            "function": {"name": tool.name, "description": tool.description or "",
                         "parameters": schema_of(tool)}}


class Llm:
    """OpenAI Chat Completions over TLS with the standard library (one keep-alive connection)."""

    def __init__(self, host, port, ca, model):
        ctx = ssl.create_default_context(cafile=ca)
        self.conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=30)
        self.model = model
        self.key = os.environ.get("AGENTSCOPE_TEST_API_KEY", "sk-agentscope-test-key-000000")

    def chat(self, messages, tools):
        body = json.dumps({"model": self.model, "messages": messages, "tools": tools,
                           "tool_choice": "auto"})
        self.conn.request("POST", "/v1/chat/completions", body=body, headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {self.key}",
            "User-Agent": "incident-agent/1.0 python-urllib",
        })
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            fail(f"LLM returned {response.status}: {data[:200]!r}")
        return json.loads(data)["choices"][0]["message"]


def http_get(url, headers=None):
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with HTTP.open(request, timeout=10) as r:
            return r.read().decode(), False
    except urllib.error.HTTPError as err:
        # An error status is the tool's answer, not the agent's failure.
        return f"HTTP {err.code}: {err.read().decode(errors='replace')}", True


def run_shell(command):
    done = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True,
                          timeout=20)
    return done.stdout + done.stderr, done.returncode != 0


def http_post(url, body):
    try:
        json.loads(body)
        content_type = "application/json"
    except ValueError:
        content_type = "text/plain; charset=utf-8"
    request = urllib.request.Request(url, data=body.encode(), method="POST",
                                     headers={"Content-Type": content_type})
    try:
        with HTTP.open(request, timeout=10) as r:
            return r.read().decode(), False
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code}: {err.read().decode(errors='replace')}", True
    except OSError as err:
        # A refused or denied connection (EPERM from a policy) is the tool's answer too, as an
        # agent framework reports a failing tool to the model; the agent goes on.
        reason = getattr(err, "reason", err)
        return f"POST failed: {reason}", True


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def run(args, dump):
    llm = Llm(args.llm_host, args.llm_port, args.ca, args.model)
    params = StdioServerParameters(command=sys.executable,
                                   args=[str(args.files_server), *args.files_server_arg],
                                   env={"PYTHONUNBUFFERED": "1"})
    async with stdio_client(params, errlog=sys.stderr) as (fr, fw), \
            ClientSession(fr, fw, client_info=CLIENT_INFO) as files, \
            streamable_http_client(args.mcp_url) as (cr, cw, *_), \
            ClientSession(cr, cw, client_info=CLIENT_INFO) as crm:
        await files.initialize()
        await crm.initialize()
        files_tools = (await files.list_tools()).tools
        crm_tools = (await crm.list_tools()).tools
        route = {t.name: files for t in files_tools}
        route.update({t.name: crm for t in crm_tools})
        own = ([HTTP_GET_WITH_HEADERS_TOOL, HTTP_POST_TOOL, RUN_SHELL_TOOL] if args.ops_tools
               else [HTTP_GET_TOOL, HTTP_POST_TOOL])
        tools = [openai_tool(t) for t in files_tools + crm_tools] + own
        messages = [{"role": "system", "content": SYSTEM_PROMPT}]
        dump["tool_calls"] = []
        dump["answers"] = []
        for question in args.question or [DEFAULT_QUESTION]:
            messages.append({"role": "user", "content": question})
            answer = await answer_one(llm, messages, tools, route, dump)
            dump["answers"].append(answer)
            dump["answer"] = answer
            messages.append({"role": "assistant", "content": answer})


async def answer_one(llm, messages, tools, route, dump):
    """Runs tool rounds until the model answers; returns the answer."""
    for _round in range(MAX_ROUNDS_PER_QUESTION):
        reply = llm.chat(messages, tools)
        calls = reply.get("tool_calls") or []
        if not calls:
            return reply.get("content")
        messages.append({"role": "assistant", "content": reply.get("content"),
                         "tool_calls": calls})
        for call in calls:
            name = call["function"]["name"]
            arguments = json.loads(call["function"]["arguments"] or "{}")
            started = time.time_ns()
            if name == "http_get":
                result, is_error = http_get(arguments["url"], arguments.get("headers"))
            elif name == "run_shell" and any(t["function"]["name"] == name for t in tools):
                result, is_error = run_shell(arguments["command"])
            elif name == "http_post":
                result, is_error = http_post(arguments["url"], arguments.get("body", ""))
            elif name in route:
                outcome = await route[name].call_tool(name, arguments)
                result = text_of(outcome)
                is_error = bool(getattr(outcome, "is_error", getattr(outcome, "isError", False)))
            else:
                result, is_error = f"unknown tool {name}", True
            dump["tool_calls"].append({"id": call["id"], "name": name, "arguments": arguments,
                                       "result": result, "is_error": is_error,
                                       "started_ns": started})
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
    fail(f"no answer after {MAX_ROUNDS_PER_QUESTION} tool rounds")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llm-port", type=int, required=True)
    ap.add_argument("--llm-host", default="127.0.0.1")
    ap.add_argument("--ca", required=True)
    ap.add_argument("--model", default="gpt-4o-mini")
    ap.add_argument("--mcp-url", required=True, help="Streamable HTTP endpoint of mcp_crm_server.py")
    ap.add_argument("--files-server", default=HERE / "mcp_files_server.py")
    ap.add_argument("--files-server-arg", action="append", default=[],
                    help="an argument for the MCP files server (repeatable)")
    ap.add_argument("--ops-tools", action="store_true",
                    help="also offer run_shell, and request headers on http_get")
    ap.add_argument("--question", action="append",
                    help=f"a user question (repeat for a chat of several; default {DEFAULT_QUESTION!r})")
    ap.add_argument("--dump", required=True)
    ap.add_argument("--wait-before-start-file")
    args = ap.parse_args()
    if args.wait_before_start_file:
        wait_for_file(args.wait_before_start_file)
    dump = {"pid": os.getpid()}
    anyio.run(run, args, dump)
    with open(args.dump, "w") as f:
        json.dump(dump, f, indent=1)
    print(json.dumps({"ok": True, "answer": dump.get("answer")}))


if __name__ == "__main__":
    main()
