#!/usr/bin/env python3
# Mock LLM API server over real TLS (or plain HTTP with --plain), so agentscope's
# SSL uprobes and reconstruction see genuine LLM traffic (SSE and NDJSON streaming,
# gzip, big bodies) without network access. It answers every dialect agentscope
# recognises, each on its standard path:
#   OpenAI Chat Completions  POST .../chat/completions (also Azure deployments)
#   OpenAI Responses         POST /v1/responses
#   Anthropic Messages       POST /v1/messages
#   Gemini                   POST .../models/{model}:generateContent
#                            POST .../models/{model}:streamGenerateContent[?alt=sse]
#   Ollama                   POST /api/chat, POST /api/generate
# The "model" is a deterministic script: offer tools -> get tool calls; send tool
# results -> get a final answer. By default it calls the tools it knows
# (KNOWN_TOOLS, arguments from the request's `metadata`) and answers "Done: ...";
# with --scenario FILE it follows the file, in one of two forms:
#   single turn  {"tool_calls": [{"name", "arguments"}], "final_text": "..."}
#                calls exactly the scenario's tools that were offered, then answers
#                final_text followed by a digest of the results it received.
#   multi-turn   {"turns": [{"tool_calls": [...]}, {"final_text": "..."}, ...]}
#                reply k of a conversation is turns[k], where k is the number of
#                assistant messages (tool-call rounds and answers) the request already
#                holds; so a chat that goes on with a new user question continues with
#                the next turn. A turn with tool_calls may also carry "text". In argument
#                strings and final_text, "{{result:NAME}}" becomes the text of the latest
#                result of tool NAME in the request (the model "copies" what a tool
#                returned, as a model following an injected instruction would);
#                "{{result:NAME[A:B]}}" is the slice of characters A..B of it (a model
#                sending what it read in small pieces).
#                Tool-call ids continue across rounds (call_1, call_2, ...).
#   per model    {"by_model": {"MODEL": <a scenario of either form>, ...}}: the scenario of the
#                model the request names, so one server serves several agents' scripts
#                (tests/enforcement.rs runs an ordinary and an injected session against one
#                port).
# With --dump-dir DIR, the body of the Nth POST is written to DIR/request-N.body and the
# response body it got (after gzip, without chunked framing) to DIR/response-N.body, so a test
# can compare what an agent sent and received with what the collector captured.
import argparse
import gzip
import itertools
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

KNOWN_TOOLS = ("run_command", "read_file", "fetch_url")
FIXED_CLOCK = 1700000000
GEMINI_PATH = re.compile(r"/models/([^/:]+):(generateContent|streamGenerateContent)$")

# Set from the command line in main().
OPTIONS = argparse.Namespace(scenario=None, gzip=False, awkward_chunks=False,
                             reuse_tool_index=False, fixed_clock=False, dump_dir=None)
_ids = itertools.count(1)
_ids_lock = threading.Lock()
_dumps = itertools.count(1)


def ensure_cert(cert_dir, with_ca=False):
    os.makedirs(cert_dir, exist_ok=True)
    cert, key = os.path.join(cert_dir, "cert.pem"), os.path.join(cert_dir, "key.pem")
    if with_ca:
        ensure_ca_and_leaf(cert_dir, cert, key)
    elif not (os.path.exists(cert) and os.path.exists(key)):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", key, "-out", cert],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def ensure_ca_and_leaf(cert_dir, cert, key):
    """A CA (ca.pem, what the client trusts) and a server certificate it issued (cert.pem):
    rustls and webpki refuse a self-signed CA certificate used as the server's own. The
    certificate also names api.openai.com, for clients pointed at the mock under that name
    (a private /etc/hosts in a mount namespace of their own)."""
    ca, ca_key = os.path.join(cert_dir, "ca.pem"), os.path.join(cert_dir, "ca.key")
    if all(os.path.exists(p) for p in (ca, ca_key, cert, key)):
        return
    quiet = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=agentscope mock CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-keyout", ca_key, "-out", ca], **quiet)
    csr = os.path.join(cert_dir, "leaf.csr")
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
                    "-keyout", key, "-out", csr], **quiet)
    ext = os.path.join(cert_dir, "leaf.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,DNS:api.openai.com,IP:127.0.0.1\n"
                "basicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                    "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", cert], **quiet)


def write_atomic(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def now():
    return FIXED_CLOCK if OPTIONS.fixed_clock else int(time.time())


def unique(prefix):
    """An id for a response; a counter under --fixed-clock so fixtures regenerate identically."""
    if OPTIONS.fixed_clock:
        with _ids_lock:
            return f"{prefix}{next(_ids)}"
    return f"{prefix}{time.time_ns()}"


def pieces(s, n):
    """Split s into at least n non-empty pieces (when len(s) >= n)."""
    size = max(1, -(-len(s) // n))
    return [s[i:i + size] for i in range(0, len(s), size)]


def short(text, limit=40):
    return str(text)[:limit].replace("\n", " ").strip()


def text_of(content):
    """Text of a message content in any dialect: a string, or a list of parts with `text`."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if isinstance(content, list):
        return "".join(p.get("text") or "" if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else json.dumps(content)


# ---------------------------------------------------------------------------
# What the request says, per dialect: offered tool names, tool results, metadata.

class Conversation:
    def __init__(self, model, offered, results, metadata, assistant_turns=0):
        self.model = model
        self.offered = offered        # names of the tools offered, in order
        self.results = results        # [(call_id or None, name or None, text)] sent back
        self.metadata = metadata if isinstance(metadata, dict) else {}
        # Assistant messages already in the conversation (tool-call rounds and answers).
        self.assistant_turns = assistant_turns


def count_role(messages, role):
    return sum(1 for m in messages or [] if isinstance(m, dict) and m.get("role") == role)


def read_openai_chat(req):
    tools = [(t.get("function") or t).get("name") for t in req.get("tools") or []]
    names = {}
    results = []
    for m in req.get("messages") or []:
        for call in m.get("tool_calls") or []:
            names[call.get("id")] = (call.get("function") or {}).get("name")
        if m.get("role") == "tool":
            cid = m.get("tool_call_id")
            results.append((cid, names.get(cid), text_of(m.get("content"))))
    return Conversation(req.get("model"), tools, results, req.get("metadata"),
                        count_role(req.get("messages"), "assistant"))


def read_responses(req):
    tools = [t.get("name") or t.get("type") for t in req.get("tools") or []]
    items = req.get("input")
    items = items if isinstance(items, list) else []
    names = {i.get("call_id"): i.get("name") for i in items if i.get("type") == "function_call"}
    results = [(i.get("call_id"), names.get(i.get("call_id")), text_of(i.get("output")))
               for i in items if i.get("type") == "function_call_output"]
    # An assistant turn is a message of the assistant or a run of function calls.
    turns, in_calls = 0, False
    for i in items:
        calls = i.get("type") == "function_call"
        if calls and not in_calls:
            turns += 1
        elif i.get("type") == "message" and i.get("role") == "assistant":
            turns += 1
        in_calls = calls or (in_calls and i.get("type") == "function_call_output")
    return Conversation(req.get("model"), tools, results, req.get("metadata"), turns)


def read_anthropic(req):
    tools = [t.get("name") for t in req.get("tools") or []]
    names = {}
    results = []
    for m in req.get("messages") or []:
        content = m.get("content")
        for block in content if isinstance(content, list) else []:
            if block.get("type") == "tool_use":
                names[block.get("id")] = block.get("name")
            elif block.get("type") == "tool_result":
                cid = block.get("tool_use_id")
                results.append((cid, names.get(cid), text_of(block.get("content"))))
    return Conversation(req.get("model"), tools, results, req.get("metadata"),
                        count_role(req.get("messages"), "assistant"))


def read_gemini(req, model):
    tools = []
    for t in req.get("tools") or []:
        for decl in t.get("functionDeclarations") or t.get("function_declarations") or []:
            tools.append(decl.get("name"))
    results = []
    for c in req.get("contents") or []:
        for part in c.get("parts") or []:
            fr = part.get("functionResponse") or part.get("function_response")
            if fr:
                results.append((fr.get("id"), fr.get("name"), json.dumps(fr.get("response"))))
    return Conversation(model, tools, results, req.get("metadata") or req.get("labels"),
                        count_role(req.get("contents"), "model"))


def read_ollama(req):
    tools = [(t.get("function") or t).get("name") for t in req.get("tools") or []]
    results = [(None, m.get("tool_name") or m.get("name"), text_of(m.get("content")))
               for m in req.get("messages") or [] if m.get("role") == "tool"]
    return Conversation(req.get("model"), tools, results, req.get("metadata"),
                        count_role(req.get("messages"), "assistant"))


# ---------------------------------------------------------------------------
# The script: what the "model" answers.

class Reply:
    def __init__(self, text=None, calls=(), done_reason="stop", first_call=1):
        self.text = text
        self.calls = list(calls)      # [(name, arguments dict)]
        self.done_reason = done_reason  # "stop" or "tool_calls"
        self.first_call = first_call  # number of the first call's id (call_N)


RESULT_TEMPLATE = re.compile(r"\{\{result:([A-Za-z0-9_.-]+)(?:\[(\d+):(\d+)\])?\}\}")


def fill_templates(value, conv):
    """`{{result:NAME}}` in every string of value -> the latest result of tool NAME (unchanged
    when the conversation holds no such result, so a test sees the miss)."""
    if isinstance(value, str):
        def latest(match):
            found = [text for _, name, text in conv.results if name == match.group(1)]
            if not found:
                return match.group(0)
            if match.group(2) is None:
                return found[-1]
            return found[-1][int(match.group(2)):int(match.group(3))]
        return RESULT_TEMPLATE.sub(latest, value)
    if isinstance(value, list):
        return [fill_templates(v, conv) for v in value]
    if isinstance(value, dict):
        return {k: fill_templates(v, conv) for k, v in value.items()}
    return value


def plan_turn(conv, turns):
    k = conv.assistant_turns
    if k >= len(turns):
        return Reply(f"(the scenario has {len(turns)} turns; this would be turn {k + 1})")
    turn = turns[k]
    calls = [(c["name"], fill_templates(c.get("arguments") or {}, conv))
             for c in turn.get("tool_calls") or [] if c.get("name") in conv.offered]
    if calls:
        return Reply(fill_templates(turn.get("text"), conv), calls, "tool_calls",
                     first_call=len(conv.results) + 1)
    return Reply(fill_templates(turn.get("final_text", ""), conv))


def plan(conv):
    scenario = OPTIONS.scenario
    if scenario and "by_model" in scenario:
        scenario = scenario["by_model"].get(conv.model) or {}
    if scenario and "turns" in scenario:
        return plan_turn(conv, scenario["turns"])
    if conv.results:
        if scenario:
            digest = "; ".join(f"{name or cid or 'tool'}={short(text)}" for cid, name, text in conv.results)
            return Reply(f"{scenario.get('final_text', '')} [results: {digest}]")
        return Reply("Done: " + "; ".join(short(text) for _, _, text in conv.results))
    if scenario:
        calls = [(c["name"], c.get("arguments") or {}) for c in scenario.get("tool_calls") or []
                 if c.get("name") in conv.offered]
    else:
        meta = conv.metadata
        args_for = {
            "run_command": {"argv": ["/bin/echo", "agentscope-tool-ran"]},
            "read_file": {"path": meta.get("read_path") or "/etc/hostname"},
            "fetch_url": {"host": "127.0.0.1", "port": int(meta.get("service_port") or 9)},
        }
        calls = [(name, args_for[name]) for name in conv.offered if name in KNOWN_TOOLS]
    if calls:
        return Reply(None, calls, "tool_calls")
    return Reply("Hello from the agentscope mock LLM. No tools were needed.")


def token_counts(raw, produced):
    return len(raw) // 4, max(1, len(json.dumps(produced)) // 4)


# ---------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "agentscope-mock-llm/1.0"

    def log_message(self, fmt, *args):
        # Include the client port so keep-alive (connection reuse) is visible in logs.
        host, port = self.client_address[:2]
        sys.stderr.write(f"[mock-llm] {host}:{port} {fmt % args}\n")

    def send_body(self, code, ctype, body):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        if (OPTIONS.gzip and code == 200
                and "gzip" in (self.headers.get("Accept-Encoding") or "").lower()):
            body = gzip.compress(body, mtime=0)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.dump("response", body)

    def dump(self, what, data):
        n = getattr(self, "_dump_n", None)
        if OPTIONS.dump_dir and n is not None:
            with open(os.path.join(OPTIONS.dump_dir, f"{what}-{n}.body"), "ab") as f:
                f.write(data)

    def send_json(self, obj, code=200):
        self.send_body(code, "application/json", json.dumps(obj).encode())

    def do_GET(self):
        self._dump_n = None
        if self.path == "/healthz":
            self.send_body(200, "text/plain", b"ok")
        else:
            self.send_body(404, "text/plain", b"not found")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if OPTIONS.dump_dir:
            with _ids_lock:
                self._dump_n = next(_dumps)
            self.dump("request", raw)
        url = urlsplit(self.path)
        path = url.path
        gemini = GEMINI_PATH.search(path)
        if path.endswith("/chat/completions"):
            route = self.openai_chat
        elif path == "/v1/responses":
            route = self.openai_responses
        elif path == "/v1/messages":
            route = self.anthropic
        elif gemini:
            route = self.gemini
        elif path in ("/api/chat", "/api/generate"):
            route = self.ollama
        else:
            self.send_body(404, "text/plain", b"not found")
            return
        try:
            req = json.loads(raw)
            if not isinstance(req, dict):
                raise ValueError("request body is not a JSON object")
        except ValueError as e:
            self.send_json({"error": {"type": "invalid_request_error", "message": str(e)}}, 400)
            return
        route(req, raw, url, gemini)

    # --- streaming -----------------------------------------------------------

    def start_stream(self, ctype):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._pending = b""
        self._sizes = itertools.cycle((7, 1, 13, 2, 31, 64))
        self._next_size = next(self._sizes)

    def emit(self, data):
        if OPTIONS.awkward_chunks:
            # Cut across event boundaries at odd sizes, so readers must reassemble; the rest
            # of an event waits for the next one (or the end of the stream).
            self._pending += data
            while len(self._pending) > self._next_size:
                self.write_chunk(self._pending[:self._next_size])
                self._pending = self._pending[self._next_size:]
                self._next_size = next(self._sizes)
        else:
            self.write_chunk(data)

    def end_stream(self):
        if self._pending:
            self.write_chunk(self._pending)
            self._pending = b""
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def sse(self, obj, event=None):
        head = f"event: {event}\n" if event else ""
        self.emit(f"{head}data: {json.dumps(obj)}\n\n".encode())

    def write_chunk(self, data):
        # Hand-rolled chunked framing + a short sleep, so each piece lands in its own TLS record.
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()
        self.dump("response", data)
        time.sleep(0.005)

    # --- OpenAI Chat Completions ----------------------------------------------

    def openai_chat(self, req, raw, url, _):
        reply = plan(read_openai_chat(req))
        deployment = re.search(r"/openai/deployments/([^/]+)/", url.path)
        model = req.get("model") or (deployment.group(1) if deployment else "mock-model")
        calls = [{"id": f"call_{reply.first_call + i}", "type": "function",
                  "function": {"name": name, "arguments": json.dumps(args)}}
                 for i, (name, args) in enumerate(reply.calls)]
        base = {"id": unique("chatcmpl-mock-"), "created": now(), "model": model}
        message = {"role": "assistant", "content": reply.text}
        if calls:
            message["tool_calls"] = calls
        prompt_tokens, completion_tokens = token_counts(raw, message)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        if not req.get("stream"):
            self.send_json(dict(base, object="chat.completion",
                                choices=[{"index": 0, "message": message,
                                          "finish_reason": reply.done_reason}],
                                usage=usage, x_request_bytes=len(raw)))
            return
        self.start_stream("text/event-stream")

        def chunk(delta, finish_reason=None):
            self.sse(dict(base, object="chat.completion.chunk",
                          choices=[{"index": 0, "delta": delta, "finish_reason": finish_reason}]))

        chunk({"role": "assistant", "content": "" if reply.text is not None else None})
        if reply.text:
            for piece in pieces(reply.text, 4):
                chunk({"content": piece})
        for index, call in enumerate(calls):
            # Some OpenAI-compatible servers number every parallel call 0; only ids differ.
            index = 0 if OPTIONS.reuse_tool_index else index
            fn = call["function"]
            chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                   "function": {"name": fn["name"], "arguments": ""}}]})
            for piece in pieces(fn["arguments"], 3):
                chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        chunk({}, reply.done_reason)
        if (req.get("stream_options") or {}).get("include_usage"):
            self.sse(dict(base, object="chat.completion.chunk", choices=[], usage=usage))
        self.emit(b"data: [DONE]\n\n")
        self.end_stream()

    # --- OpenAI Responses -----------------------------------------------------

    def openai_responses(self, req, raw, url, _):
        reply = plan(read_responses(req))
        rid = unique("resp_mock_")
        output = []
        if reply.text is not None:
            output.append({"type": "message", "id": f"msg_{rid}", "status": "completed",
                           "role": "assistant",
                           "content": [{"type": "output_text", "text": reply.text,
                                        "annotations": []}]})
        for i, (name, args) in enumerate(reply.calls):
            n = reply.first_call + i
            output.append({"type": "function_call", "id": f"fc_{n}", "call_id": f"call_{n}",
                           "name": name, "arguments": json.dumps(args), "status": "completed"})
        input_tokens, output_tokens = token_counts(raw, output)
        response = {"id": rid, "object": "response", "created_at": now(), "status": "completed",
                    "model": req.get("model") or "mock-model",
                    "instructions": req.get("instructions"), "output": output,
                    "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                              "total_tokens": input_tokens + output_tokens}}
        if not req.get("stream"):
            self.send_json(response)
            return
        self.start_stream("text/event-stream")
        seq = itertools.count()

        def event(kind, **fields):
            self.sse(dict({"type": kind, "sequence_number": next(seq)}, **fields), event=kind)

        started = dict(response, status="in_progress", output=[], usage=None)
        event("response.created", response=started)
        event("response.in_progress", response=started)
        for index, item in enumerate(output):
            if item["type"] == "message":
                text = item["content"][0]["text"]
                event("response.output_item.added", output_index=index,
                      item=dict(item, status="in_progress", content=[]))
                part = {"type": "output_text", "text": "", "annotations": []}
                event("response.content_part.added", item_id=item["id"], output_index=index,
                      content_index=0, part=part)
                for piece in pieces(text, 4):
                    event("response.output_text.delta", item_id=item["id"], output_index=index,
                          content_index=0, delta=piece)
                event("response.output_text.done", item_id=item["id"], output_index=index,
                      content_index=0, text=text)
                event("response.content_part.done", item_id=item["id"], output_index=index,
                      content_index=0, part=dict(part, text=text))
            else:
                event("response.output_item.added", output_index=index,
                      item=dict(item, arguments="", status="in_progress"))
                for piece in pieces(item["arguments"], 3):
                    event("response.function_call_arguments.delta", item_id=item["id"],
                          output_index=index, delta=piece)
                event("response.function_call_arguments.done", item_id=item["id"],
                      output_index=index, arguments=item["arguments"])
            event("response.output_item.done", output_index=index, item=item)
        event("response.completed", response=response)
        self.end_stream()

    # --- Anthropic Messages ---------------------------------------------------

    def anthropic(self, req, raw, url, _):
        reply = plan(read_anthropic(req))
        content = []
        if reply.calls:
            content.append({"type": "text", "text": f"I will use {len(reply.calls)} tool(s)."})
        elif reply.text is not None:
            content.append({"type": "text", "text": reply.text})
        for i, (name, args) in enumerate(reply.calls):
            content.append({"type": "tool_use", "id": f"toolu_mock_{reply.first_call + i}",
                            "name": name,
                            "input": args})
        stop_reason = "tool_use" if reply.calls else "end_turn"
        input_tokens, output_tokens = token_counts(raw, content)
        message = {"id": unique("msg_mock_"), "type": "message", "role": "assistant",
                   "model": req.get("model") or "mock-model", "content": content,
                   "stop_reason": stop_reason, "stop_sequence": None,
                   "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}
        if not req.get("stream"):
            self.send_json(message)
            return
        self.start_stream("text/event-stream")

        def event(kind, **fields):
            self.sse(dict({"type": kind}, **fields), event=kind)

        event("message_start", message=dict(message, content=[], stop_reason=None,
                                            usage={"input_tokens": input_tokens,
                                                   "output_tokens": 1}))
        for index, block in enumerate(content):
            if block["type"] == "text":
                event("content_block_start", index=index, content_block={"type": "text", "text": ""})
                if index == 0:
                    event("ping")
                for piece in pieces(block["text"], 3):
                    event("content_block_delta", index=index,
                          delta={"type": "text_delta", "text": piece})
            else:
                event("content_block_start", index=index,
                      content_block=dict(block, input={}))
                for piece in pieces(json.dumps(block["input"]), 4):
                    event("content_block_delta", index=index,
                          delta={"type": "input_json_delta", "partial_json": piece})
            event("content_block_stop", index=index)
        event("message_delta", delta={"stop_reason": stop_reason, "stop_sequence": None},
              usage={"output_tokens": output_tokens})
        event("message_stop")
        self.end_stream()

    # --- Gemini ---------------------------------------------------------------

    def gemini(self, req, raw, url, match):
        model, method = match.group(1), match.group(2)
        reply = plan(read_gemini(req, model))
        parts = []
        if reply.text is not None:
            parts.append({"text": reply.text})
        for name, args in reply.calls:
            parts.append({"functionCall": {"name": name, "args": args}})
        prompt_tokens, candidate_tokens = token_counts(raw, parts)
        usage = {"promptTokenCount": prompt_tokens, "candidatesTokenCount": candidate_tokens,
                 "totalTokenCount": prompt_tokens + candidate_tokens}
        rid = unique("gemini-mock-")

        def response(chunk_parts, finish=True):
            candidate = {"content": {"role": "model", "parts": chunk_parts}, "index": 0}
            if finish:
                candidate["finishReason"] = "STOP"
            return {"candidates": [candidate], "usageMetadata": usage,
                    "modelVersion": model, "responseId": rid}

        if method == "generateContent":
            self.send_json(response(parts))
            return
        # Streamed: text in pieces, each function call whole, finishReason on the last chunk.
        chunks = []
        if reply.text:
            chunks.extend([{"text": p}] for p in pieces(reply.text, 3))
        chunks.extend([p] for p in parts if "functionCall" in p)
        chunks = chunks or [[]]
        bodies = [response(c, finish=(i == len(chunks) - 1)) for i, c in enumerate(chunks)]
        if parse_qs(url.query).get("alt") == ["sse"]:
            self.start_stream("text/event-stream")
            for body in bodies:
                self.emit(f"data: {json.dumps(body)}\r\n\r\n".encode())
            self.end_stream()
        else:
            # Without alt=sse the stream is one JSON array, sent as it grows.
            self.start_stream("application/json; charset=UTF-8")
            for i, body in enumerate(bodies):
                self.emit((("[" if i == 0 else ",\r\n") + json.dumps(body)).encode())
            self.emit(b"]")
            self.end_stream()

    # --- Ollama ---------------------------------------------------------------

    def ollama(self, req, raw, url, _):
        generate = url.path == "/api/generate"
        model = req.get("model") or "mock-model"
        if generate:
            reply = Reply(f"Generated from: {short(req.get('prompt') or '')}")
        else:
            reply = plan(read_ollama(req))
        tool_calls = [{"function": {"name": name, "arguments": args}} for name, args in reply.calls]
        prompt_tokens, eval_tokens = token_counts(raw, [reply.text, tool_calls])
        created = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(now()))
        final = {"model": model, "created_at": created, "done": True, "done_reason": "stop",
                 "total_duration": 1000000, "load_duration": 1000, "prompt_eval_count": prompt_tokens,
                 "prompt_eval_duration": 2000, "eval_count": eval_tokens, "eval_duration": 3000}

        def message(content, calls=None):
            msg = {"role": "assistant", "content": content}
            if calls:
                msg["tool_calls"] = calls
            return msg

        if req.get("stream") is False:
            if generate:
                self.send_json(dict(final, response=reply.text, context=[1, 2, 3]))
            else:
                self.send_json(dict(final, message=message(reply.text or "", tool_calls)))
            return
        self.start_stream("application/x-ndjson")

        def line(obj):
            self.emit(json.dumps(obj).encode() + b"\n")

        for piece in pieces(reply.text or "", 3):
            body = {"response": piece} if generate else {"message": message(piece)}
            line(dict({"model": model, "created_at": created, "done": False}, **body))
        if tool_calls:
            line({"model": model, "created_at": created, "message": message("", tool_calls),
                  "done": False})
        line(dict(final, response="", context=[1, 2, 3]) if generate
             else dict(final, message=message("")))
        self.end_stream()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert-dir", help="where to find or create cert.pem/key.pem (TLS)")
    ap.add_argument("--plain", action="store_true", help="serve plain HTTP instead of TLS")
    ap.add_argument("--scenario", help="JSON file: tool calls to request and the final text")
    ap.add_argument("--gzip", action="store_true",
                    help="gzip non-streamed responses when the client accepts gzip")
    ap.add_argument("--awkward-chunks", action="store_true",
                    help="cut streamed bodies into small chunks across event boundaries")
    ap.add_argument("--reuse-tool-index", action="store_true",
                    help="number every streamed parallel tool call 0 (like some compatible servers)")
    ap.add_argument("--fixed-clock", action="store_true",
                    help="fixed timestamps and counter ids, so recorded fixtures are reproducible")
    ap.add_argument("--dump-dir", help="write each request and response body to this directory")
    ap.add_argument("--with-ca", action="store_true",
                    help="serve a certificate issued by a CA (CERT_DIR/ca.pem, for clients to "
                         "trust) instead of a self-signed one")
    ap.add_argument("--alpn", action="append",
                    help="offer this ALPN protocol (repeatable); by default none is negotiated")
    args = ap.parse_args()
    if not args.plain and not args.cert_dir:
        ap.error("--cert-dir is required unless --plain")

    OPTIONS.gzip = args.gzip
    OPTIONS.awkward_chunks = args.awkward_chunks
    OPTIONS.reuse_tool_index = args.reuse_tool_index
    OPTIONS.fixed_clock = args.fixed_clock
    OPTIONS.dump_dir = args.dump_dir
    if args.scenario:
        with open(args.scenario) as f:
            OPTIONS.scenario = json.load(f)

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    scheme, cert = "http", None
    if not args.plain:
        cert, key = ensure_cert(args.cert_dir, with_ca=args.with_ca)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if args.alpn:
            ctx.set_alpn_protocols(args.alpn)
        # Lazy handshake: done in the per-connection thread, so a stuck client can't block accept().
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
        scheme = "https"
    port = server.server_address[1]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    write_atomic(args.port_file, f"{port}\n")
    print(f"[mock-llm] listening on {scheme}://{args.host}:{port} (cert {cert})",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
