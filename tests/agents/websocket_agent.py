#!/usr/bin/env python3
# A coding agent on the OpenAI Responses API over WebSocket (wss, system OpenSSL through
# Python's ssl module), on the `websockets` library's sync client with its defaults
# (permessage-deflate offered). It sends `response.create` with a `shell` tool, runs the tool
# call the answer asks for as a subprocess, and sends its output back as a
# function_call_output in a follow-up `response.create` naming the previous response. The API
# key goes in the upgrade request's Authorization header. Prints a JSON report.
# Used by tests/websocket_capture.rs.
# Usage: websocket_agent.py --port PORT --ca CA.pem --read-path PATH [--wait-before-start-file F]
import argparse
import json
import os
import ssl
import subprocess
import time

from websockets.sync.client import connect

MODEL = "gpt-5-codex"
TOOLS = [{"type": "function", "name": "shell",
          "description": "Run a command and return its output.",
          "parameters": {"type": "object",
                         "properties": {"command": {"type": "array",
                                                    "items": {"type": "string"}}}}}]


def run_response(ws, request):
    """Sends one response.create; returns (response id, function calls, text)."""
    ws.send(json.dumps(dict(request, type="response.create")))
    calls, text = [], ""
    while True:
        event = json.loads(ws.recv())
        kind = event.get("type")
        if kind == "response.output_item.done" and event["item"]["type"] == "function_call":
            calls.append(event["item"])
        elif kind == "response.output_text.delta":
            text += event["delta"]
        elif kind in ("response.completed", "response.failed", "error"):
            return event.get("response", {}).get("id"), calls, text


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--read-path", required=True)
    parser.add_argument("--wait-before-start-file")
    args = parser.parse_args()
    context = ssl.create_default_context(cafile=args.ca)
    key = os.environ.get("AGENTSCOPE_TEST_API_KEY", "sk-missing")
    if args.wait_before_start_file:
        while not os.path.exists(args.wait_before_start_file):
            time.sleep(0.02)
    url = f"wss://localhost:{args.port}/v1/responses"
    with connect(url, ssl=context, additional_headers={"Authorization": f"Bearer {key}"},
                 user_agent_header="agentscope-websocket-agent/1") as ws:
        extensions = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        first = {"model": MODEL, "instructions": "You are a careful coding agent.",
                 "input": [{"type": "message", "role": "user",
                            "content": [{"type": "input_text",
                                         "text": "What does the notes file say?"}]}],
                 "tools": TOOLS, "store": False, "metadata": {"read_path": args.read_path}}
        response_id, calls, _ = run_response(ws, first)
        outputs = []
        for call in calls:
            command = json.loads(call["arguments"])["command"]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            outputs.append({"type": "function_call_output", "call_id": call["call_id"],
                            "output": result.stdout})
        follow_up = {"model": MODEL, "previous_response_id": response_id, "input": outputs,
                     "tools": TOOLS, "store": False}
        _, _, text = run_response(ws, follow_up)
    print(json.dumps({"ok": bool(calls) and text.startswith("The file says:"),
                      "calls": len(calls), "text": text, "extensions": extensions}))


if __name__ == "__main__":
    main()
