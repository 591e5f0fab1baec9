#!/usr/bin/env python3
"""Regenerates tests/fixtures/websocket/*.jsonl: WebSocket conversations written by the real
`websockets` library (its sans-I/O client and server protocols, so the bytes are exactly what
the library puts on the wire: handshake, masking, fragmentation, permessage-deflate), in the
`data`-event JSON-lines shape the wire-parser tests load (client's view: egress is what the
client sent).

    make setup   # the test venv with websockets
    ~/.cache/agentscope/test-venv/bin/python scripts/regenerate-fixtures-websocket.py

Masking keys and Sec-WebSocket-Key are random, so the bytes differ per run; the messages they
carry do not, and the tests assert on the messages.
"""

import base64
import json
import pathlib

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "websocket"
KEY = "sk-agentscope-ws-fixture-0c1d2e3f4a5b"


class Conversation:
    """A client and a server protocol wired together; every write is recorded in order."""

    def __init__(self, url, client_deflate, server_deflate):
        self.chunks = []
        self.ts = 1_000_000
        self.client = ClientProtocol(
            parse_uri(url), extensions=[client_deflate] if client_deflate else None
        )
        self.server = ServerProtocol(
            extensions=[server_deflate] if server_deflate else None
        )
        request = self.client.connect()
        request.headers["Authorization"] = f"Bearer {KEY}"
        request.headers["User-Agent"] = "agentscope-fixture/1 websockets"
        self.client.send_request(request)
        (request,) = self.client_flush()
        response = self.server.accept(request)
        self.server.send_response(response)
        self.server_flush()

    def record(self, direction, data):
        if data:
            self.ts += 1000
            self.chunks.append((direction, data, self.ts))

    def client_flush(self):
        data = b"".join(self.client.data_to_send())
        self.record("egress", data)
        self.server.receive_data(data)
        return self.server.events_received()

    def server_flush(self):
        data = b"".join(self.server.data_to_send())
        self.record("ingress", data)
        self.client.receive_data(data)
        events = self.client.events_received()
        # The client answers pings (a pong) by itself.
        self.client_flush()
        return events

    def client_json(self, value):
        self.client.send_text(json.dumps(value).encode())
        self.client_flush()

    def server_json(self, value):
        self.server.send_text(json.dumps(value).encode())
        self.server_flush()

    def write(self, name):
        OUT.mkdir(parents=True, exist_ok=True)
        with open(OUT / f"{name}.jsonl", "w") as f:
            for direction, data, ts in self.chunks:
                f.write(
                    json.dumps(
                        {
                            "kind": "data",
                            "direction": direction,
                            "lost_bytes": 0,
                            "ts_ns": ts,
                            "data_b64": base64.b64encode(data).decode(),
                        }
                    )
                    + "\n"
                )


TOOLS = [
    {
        "type": "function",
        "name": "shell",
        "description": "Run a shell command and return its output.",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "array", "items": {"type": "string"}}},
        },
    }
]
ARGUMENTS = json.dumps({"command": ["cat", "/etc/hostname"]})


def responses_conversation(c):
    """The Responses API over WebSocket: a tool call, its output in a follow-up, an answer.
    The first request is sent in two fragments with a ping from the client between them; the
    server pings the client mid-stream."""
    first = json.dumps(
        {
            "type": "response.create",
            "model": "gpt-5-codex",
            "instructions": "You are a careful coding agent.",
            "input": [
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "Show me /etc/hostname."}],
                }
            ],
            "tools": TOOLS,
            "store": False,
        }
    ).encode()
    half = len(first) // 2
    c.client.send_text(first[:half], fin=False)
    c.client.send_ping(b"client-ping")
    c.client.send_continuation(first[half:], fin=True)
    c.client_flush()
    call = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_shell_1",
        "name": "shell",
        "arguments": "",
        "status": "in_progress",
    }
    response = {"id": "resp_ws_1", "object": "response", "model": "gpt-5-codex", "status": "in_progress", "output": []}
    c.server_json({"type": "response.created", "sequence_number": 0, "response": response})
    c.server_json({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": call})
    c.server_json({"type": "response.function_call_arguments.delta", "sequence_number": 2, "output_index": 0, "item_id": "fc_1", "delta": ARGUMENTS[:15]})
    c.server.send_ping(b"server-ping")
    c.server_flush()
    c.server_json({"type": "response.function_call_arguments.delta", "sequence_number": 3, "output_index": 0, "item_id": "fc_1", "delta": ARGUMENTS[15:]})
    c.server_json({"type": "response.function_call_arguments.done", "sequence_number": 4, "output_index": 0, "item_id": "fc_1", "arguments": ARGUMENTS})
    done_call = dict(call, arguments=ARGUMENTS, status="completed")
    c.server_json({"type": "response.output_item.done", "sequence_number": 5, "output_index": 0, "item": done_call})
    c.server_json(
        {
            "type": "response.completed",
            "sequence_number": 6,
            "response": dict(response, status="completed", output=[done_call], usage={"input_tokens": 120, "output_tokens": 18, "total_tokens": 138}),
        }
    )
    c.client_json(
        {
            "type": "response.create",
            "model": "gpt-5-codex",
            "previous_response_id": "resp_ws_1",
            "input": [{"type": "function_call_output", "call_id": "call_shell_1", "output": "build-host-7\n"}],
            "tools": TOOLS,
        }
    )
    response = {"id": "resp_ws_2", "object": "response", "model": "gpt-5-codex", "status": "in_progress", "output": []}
    message = {"type": "message", "id": "msg_1", "role": "assistant", "status": "in_progress", "content": []}
    text = "The host is called build-host-7. " * 20
    c.server_json({"type": "response.created", "sequence_number": 0, "response": response})
    c.server_json({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": message})
    for i, piece in enumerate([text[:200], text[200:]]):
        c.server_json({"type": "response.output_text.delta", "sequence_number": 2 + i, "output_index": 0, "content_index": 0, "item_id": "msg_1", "delta": piece})
    done_message = dict(message, status="completed", content=[{"type": "output_text", "text": text}])
    c.server_json({"type": "response.output_item.done", "sequence_number": 4, "output_index": 0, "item": done_message})
    c.server_json(
        {
            "type": "response.completed",
            "sequence_number": 5,
            "response": dict(response, status="completed", output=[done_message], usage={"input_tokens": 160, "output_tokens": 140, "total_tokens": 300}),
        }
    )
    c.client.send_close(1000, "done")
    c.client_flush()
    c.server_flush()


def realtime_conversation(c):
    """The Realtime API: session.update, a user message, response.create, a function call
    ending in response.done, the function_call_output item and a second response."""
    c.client_json(
        {
            "type": "session.update",
            "session": {"type": "realtime", "instructions": "You are a voice agent.", "tools": TOOLS},
        }
    )
    c.server_json({"type": "session.updated", "session": {"model": "gpt-realtime"}})
    c.client_json(
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "What host is this?"}]},
        }
    )
    c.client_json({"type": "response.create"})
    call = {"id": "item_1", "type": "function_call", "status": "in_progress", "name": "shell", "call_id": "call_rt_1", "arguments": ""}
    c.server_json({"type": "response.created", "response": {"id": "resp_rt_1", "object": "realtime.response", "status": "in_progress", "output": []}})
    c.server_json({"type": "conversation.item.added", "item": call})
    c.server_json({"type": "response.output_item.added", "response_id": "resp_rt_1", "output_index": 0, "item": call})
    c.server_json({"type": "response.function_call_arguments.delta", "response_id": "resp_rt_1", "item_id": "item_1", "output_index": 0, "call_id": "call_rt_1", "delta": ARGUMENTS})
    c.server_json({"type": "response.function_call_arguments.done", "response_id": "resp_rt_1", "item_id": "item_1", "output_index": 0, "call_id": "call_rt_1", "name": "shell", "arguments": ARGUMENTS})
    done_call = dict(call, status="completed", arguments=ARGUMENTS)
    c.server_json({"type": "response.output_item.done", "response_id": "resp_rt_1", "output_index": 0, "item": done_call})
    c.server_json(
        {
            "type": "response.done",
            "response": {"id": "resp_rt_1", "object": "realtime.response", "status": "completed", "output": [done_call], "usage": {"input_tokens": 90, "output_tokens": 12}},
        }
    )
    c.client_json({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "call_rt_1", "output": "build-host-7"}})
    c.client_json({"type": "response.create"})
    c.server_json({"type": "response.created", "response": {"id": "resp_rt_2", "object": "realtime.response", "status": "in_progress", "output": []}})
    c.server_json({"type": "response.output_text.delta", "response_id": "resp_rt_2", "item_id": "item_2", "output_index": 0, "content_index": 0, "delta": "This is build-host-7."})
    c.server_json(
        {
            "type": "response.done",
            "response": {"id": "resp_rt_2", "object": "realtime.response", "status": "completed", "output": [{"id": "item_2", "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "This is build-host-7."}]}], "usage": {"input_tokens": 110, "output_tokens": 7}},
        }
    )


def main():
    c = Conversation(
        "wss://api.openai.com/v1/responses",
        ClientPerMessageDeflateFactory(),
        ServerPerMessageDeflateFactory(),
    )
    responses_conversation(c)
    c.write("responses_deflate_context_takeover")

    c = Conversation(
        "wss://api.openai.com/v1/responses",
        ClientPerMessageDeflateFactory(client_no_context_takeover=True, server_no_context_takeover=True, client_max_window_bits=10),
        ServerPerMessageDeflateFactory(server_no_context_takeover=True, server_max_window_bits=11),
    )
    responses_conversation(c)
    c.write("responses_deflate_no_context_takeover")

    c = Conversation("wss://api.openai.com/v1/realtime?model=gpt-realtime", None, None)
    realtime_conversation(c)
    c.write("realtime_uncompressed")


if __name__ == "__main__":
    main()
