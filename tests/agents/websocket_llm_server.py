#!/usr/bin/env python3
# An LLM server speaking the OpenAI Responses API over WebSocket (wss, TLS), on the
# `websockets` library (PyPI, installed in the test venv by `make setup`) with its defaults, so
# permessage-deflate is negotiated. Each client `response.create` is answered with the events
# of the Responses SSE stream, one WebSocket message each: a turn without tool output calls the
# `shell` tool to `cat` the path in the request's metadata (arguments streamed in deltas); a
# turn that carries a function_call_output answers with text quoting it.
# Used by tests/websocket_capture.rs. Writes its port to --port-file once listening.
import argparse
import asyncio
import json
import os
import ssl

from websockets.asyncio.server import serve

MODEL = "gpt-5-codex"


def events_for(request, turn):
    response_id = f"resp_ws_{turn}"
    response = {"id": response_id, "object": "response", "model": request.get("model", MODEL),
                "status": "in_progress", "output": []}
    outputs = [i for i in request.get("input", [])
               if isinstance(i, dict) and i.get("type") == "function_call_output"]
    out = [{"type": "response.created", "response": response}]
    if outputs:
        text = "The file says: " + str(outputs[-1].get("output", ""))[:60]
        item = {"type": "message", "id": f"msg_{turn}", "role": "assistant",
                "status": "completed", "content": [{"type": "output_text", "text": text}]}
        out.append({"type": "response.output_item.added", "output_index": 0,
                    "item": dict(item, status="in_progress", content=[])})
        out.append({"type": "response.output_text.delta", "output_index": 0,
                    "content_index": 0, "item_id": item["id"], "delta": text})
        out.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    else:
        path = (request.get("metadata") or {}).get("read_path", "/etc/hostname")
        arguments = json.dumps({"command": ["cat", path]})
        item = {"type": "function_call", "id": f"fc_{turn}", "call_id": "call_ws_1",
                "name": "shell", "arguments": arguments, "status": "completed"}
        out.append({"type": "response.output_item.added", "output_index": 0,
                    "item": dict(item, arguments="", status="in_progress")})
        for i in range(0, len(arguments), 8):
            out.append({"type": "response.function_call_arguments.delta", "output_index": 0,
                        "item_id": item["id"], "delta": arguments[i:i + 8]})
        out.append({"type": "response.function_call_arguments.done", "output_index": 0,
                    "item_id": item["id"], "arguments": arguments})
        out.append({"type": "response.output_item.done", "output_index": 0, "item": item})
    usage = {"input_tokens": 100 + turn, "output_tokens": 20, "total_tokens": 120 + turn}
    done = dict(response, status="completed", output=[out[-1]["item"]], usage=usage)
    out.append({"type": "response.completed", "response": done})
    for number, event in enumerate(out):
        event["sequence_number"] = number
    return out


async def handler(connection):
    turn = 0
    async for message in connection:
        request = json.loads(message)
        if request.get("type") != "response.create":
            continue
        turn += 1
        for event in events_for(request, turn):
            await connection.send(json.dumps(event))


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert-dir", required=True)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(args.cert_dir, "cert.pem"),
                            os.path.join(args.cert_dir, "key.pem"))
    async with serve(handler, "127.0.0.1", 0, ssl=context) as server:
        port = server.sockets[0].getsockname()[1]
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.rename(args.port_file + ".tmp", args.port_file)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
