#!/usr/bin/env bash
# Regenerates the recorded LLM fixtures under tests/fixtures/llm/<dialect>/<case>/
# from the real mock LLM server (tests/agents/mock_llm_server.py) over real HTTP: TLS for the
# cloud dialects, plain HTTP for Ollama. Each case directory holds
#   request.json   method, target, headers, host, port as sent
#   request.body   the request body bytes
#   response.json  status, reason, headers as received
#   response.body  the response body as received, de-chunked but not decoded (gzip stays gzip)
# Hand-written cases that mirror the providers' documentation (directories named docs_*) are
# left alone. The mock runs with --fixed-clock, so a rerun changes only ports and Date headers.
#
# Usage: scripts/regenerate-fixtures-llm.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d -t agentscope-llm-fixtures.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

python3 - "$root" "$tmp" <<'PY'
import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import time

root, tmp = sys.argv[1], sys.argv[2]
mock = os.path.join(root, "tests/agents/mock_llm_server.py")
out_root = os.path.join(root, "tests/fixtures/llm")
certs = os.path.join(tmp, "certs")

SCENARIO = {
    "tool_calls": [
        {"name": "read_file", "arguments": {"path": "/etc/hostname"}},
        {"name": "run_command", "arguments": {"argv": ["ls", "-la", "/tmp"], "cwd": "/"}},
        {"name": "delete_everything", "arguments": {}},  # never offered: must not be called
    ],
    "final_text": "All done.",
}
scenario_file = os.path.join(tmp, "scenario.json")
with open(scenario_file, "w") as f:
    json.dump(SCENARIO, f)

servers = {}
processes = []


def start(name, *flags, plain=False):
    port_file = os.path.join(tmp, f"{name}.port")
    args = ["python3", mock, "--port-file", port_file, "--fixed-clock", *flags]
    args += ["--plain"] if plain else ["--cert-dir", certs]
    processes.append(subprocess.Popen(args, stderr=open(os.path.join(tmp, f"{name}.log"), "w")))
    for _ in range(100):
        if os.path.exists(port_file) and open(port_file).read().strip():
            servers[name] = (int(open(port_file).read()), plain)
            return
        time.sleep(0.1)
    sys.exit(f"mock server {name} did not start; see {tmp}/{name}.log")


OFFERED = [
    {"name": "read_file", "description": "Read a file from the local disk and return its text."},
    {"name": "run_command", "description": "Run a command (argv list) and return its output."},
    {"name": "fetch_url", "description": "Open a TCP connection to host:port and return the reply."},
]
SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}}
SYSTEM = "You are a careful test agent. Use the tools you are given."
USER = "Read /etc/hostname and list /tmp, please."


def openai_tools():
    return [{"type": "function", "function": dict(t, parameters=SCHEMA)} for t in OFFERED]


class Recording:
    """Keeps the bytes a connection sends, so request.json holds the headers as sent."""

    def send(self, data):
        self.sent = getattr(self, "sent", b"") + bytes(data)
        super().send(data)


class RecordingHTTP(Recording, http.client.HTTPConnection):
    pass


class RecordingHTTPS(Recording, http.client.HTTPSConnection):
    pass


def record(dialect, case, server, path, body, headers=None):
    port, plain = servers[server]
    if plain:
        conn = RecordingHTTP("localhost", port, timeout=30)
    else:
        ctx = ssl.create_default_context(cafile=os.path.join(certs, "cert.pem"))
        conn = RecordingHTTPS("localhost", port, context=ctx, timeout=30)
    raw = json.dumps(body).encode()
    conn.request("POST", path, raw, {"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    received = resp.read()  # de-chunked by http.client, not decompressed
    conn.close()
    if resp.status != 200:
        sys.exit(f"{dialect}/{case}: HTTP {resp.status} {received[:200]!r}")
    head = conn.sent.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    method, target, _ = head[0].split(" ", 2)
    request_headers = [line.split(": ", 1) for line in head[1:]]
    host = next(v for k, v in request_headers if k.lower() == "host")
    d = os.path.join(out_root, dialect, case)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(d, "request.json"), "w") as f:
        json.dump({"method": method, "target": target, "headers": request_headers,
                   "host": host, "port": port, "tls": not plain}, f, indent=1)
        f.write("\n")
    with open(os.path.join(d, "request.body"), "wb") as f:
        f.write(raw)
    with open(os.path.join(d, "response.json"), "w") as f:
        json.dump({"status": resp.status, "reason": resp.reason,
                   "headers": [[k, v] for k, v in resp.getheaders()]}, f, indent=1)
        f.write("\n")
    with open(os.path.join(d, "response.body"), "wb") as f:
        f.write(received)
    print(f"recorded {dialect}/{case} ({len(raw)} B request, {len(received)} B response)")


try:
    start("default")
    start("scenario", "--scenario", scenario_file, "--gzip")
    start("reuse", "--scenario", scenario_file, "--reuse-tool-index", "--awkward-chunks")
    start("ollama", "--scenario", scenario_file, plain=True)

    # --- OpenAI Chat Completions ---
    first_turn = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
    record("openai_chat", "tools_stream", "scenario", "/v1/chat/completions",
           {"model": "gpt-4o-mini", "messages": first_turn, "tools": openai_tools(),
            "stream": True, "stream_options": {"include_usage": True}})
    record("openai_chat", "tools_stream_reused_index", "reuse", "/v1/chat/completions",
           {"model": "qwen2.5-coder", "messages": first_turn, "tools": openai_tools(),
            "stream": True})
    assistant = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "read_file", "arguments": "{\"path\": \"/etc/hostname\"}"}},
        {"id": "call_2", "type": "function",
         "function": {"name": "run_command", "arguments": "{\"argv\": [\"ls\", \"-la\", \"/tmp\"]}"}}]}
    record("openai_chat", "results_json_gzip", "scenario", "/v1/chat/completions",
           {"model": "gpt-4o-mini", "tools": openai_tools(), "messages": first_turn + [
               assistant,
               {"role": "tool", "tool_call_id": "call_1", "content": "build-host-7\n"},
               {"role": "tool", "tool_call_id": "call_2",
                "content": [{"type": "text", "text": "total 0\ndrwxrwxrwt 2 root root 40 ."}]}]},
           {"Accept-Encoding": "gzip"})
    record("openai_chat", "hello_json", "default", "/v1/chat/completions",
           {"model": "gpt-4o-mini", "messages": [
               {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
               {"role": "user", "content": [{"type": "text", "text": "Say hello."},
                                            {"type": "image_url", "image_url": {"url": "data:,"}}]}]})
    record("openai_chat", "azure_deployment_stream", "default",
           "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21",
           {"messages": first_turn, "tools": openai_tools(), "stream": True,
            "metadata": {"read_path": "/srv/data/report.csv"}})

    # --- OpenAI Responses ---
    responses_tools = [dict(t, type="function", parameters=SCHEMA) for t in OFFERED]
    record("openai_responses", "tools_stream", "scenario", "/v1/responses",
           {"model": "gpt-4.1", "instructions": SYSTEM, "tools": responses_tools, "stream": True,
            "input": [{"role": "user", "content": [{"type": "input_text", "text": USER}]}]})
    record("openai_responses", "results_json", "scenario", "/v1/responses",
           {"model": "gpt-4.1", "instructions": SYSTEM, "tools": responses_tools, "input": [
               {"role": "user", "content": USER},
               {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "read_file",
                "arguments": "{\"path\": \"/etc/hostname\"}"},
               {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "run_command",
                "arguments": "{\"argv\": [\"ls\"]}"},
               {"type": "function_call_output", "call_id": "call_1", "output": "build-host-7"},
               {"type": "function_call_output", "call_id": "call_2", "output": "total 0"}]})
    record("openai_responses", "text_stream", "default", "/v1/responses",
           {"model": "gpt-4.1-mini", "input": "Say hello.", "stream": True})

    # --- Anthropic Messages ---
    anthropic_tools = [dict(t, input_schema=SCHEMA) for t in OFFERED]
    anthropic_headers = {"anthropic-version": "2023-06-01", "x-api-key": "sk-ant-test-not-a-key"}
    record("anthropic", "tools_stream", "scenario", "/v1/messages",
           {"model": "claude-sonnet-4-5", "max_tokens": 1024, "system": SYSTEM,
            "tools": anthropic_tools, "stream": True,
            "messages": [{"role": "user", "content": USER}]}, anthropic_headers)
    record("anthropic", "results_stream", "scenario", "/v1/messages",
           {"model": "claude-sonnet-4-5", "max_tokens": 1024, "tools": anthropic_tools,
            "stream": True,
            "system": [{"type": "text", "text": SYSTEM},
                       {"type": "text", "text": "Answer in one line.",
                        "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": USER},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "I will use 2 tool(s)."},
                    {"type": "tool_use", "id": "toolu_mock_1", "name": "read_file",
                     "input": {"path": "/etc/hostname"}},
                    {"type": "tool_use", "id": "toolu_mock_2", "name": "run_command",
                     "input": {"argv": ["ls", "-la", "/tmp"]}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_mock_1",
                     "content": "build-host-7"},
                    {"type": "tool_result", "tool_use_id": "toolu_mock_2", "is_error": True,
                     "content": [{"type": "text", "text": "ls: permission denied"}]}]}]},
           anthropic_headers)
    record("anthropic", "tools_json", "default", "/v1/messages",
           {"model": "claude-haiku-4-5", "max_tokens": 256, "system": SYSTEM,
            "tools": anthropic_tools, "metadata": {"read_path": "/home/agent/.ssh/id_rsa"},
            "messages": [{"role": "user", "content": [{"type": "text", "text": USER}]}]},
           anthropic_headers)

    # --- Gemini ---
    gemini_tools = [{"functionDeclarations": [dict(t, parameters=SCHEMA) for t in OFFERED]}]
    gemini_first = [{"role": "user", "parts": [{"text": USER}]}]
    gemini_headers = {"x-goog-api-key": "test-not-a-key"}
    record("gemini", "tools_json", "scenario", "/v1beta/models/gemini-2.5-flash:generateContent",
           {"systemInstruction": {"parts": [{"text": SYSTEM}]}, "contents": gemini_first,
            "tools": gemini_tools}, gemini_headers)
    record("gemini", "tools_stream_sse", "scenario",
           "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
           {"systemInstruction": {"parts": [{"text": SYSTEM}]}, "contents": gemini_first,
            "tools": gemini_tools}, gemini_headers)
    record("gemini", "results_stream_array", "scenario",
           "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
           {"systemInstruction": {"parts": [{"text": SYSTEM}]}, "tools": gemini_tools,
            "contents": gemini_first + [
                {"role": "model", "parts": [
                    {"functionCall": {"name": "read_file", "args": {"path": "/etc/hostname"}}},
                    {"functionCall": {"name": "run_command", "args": {"argv": ["ls"]}}}]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "read_file",
                                          "response": {"content": "build-host-7"}}},
                    {"functionResponse": {"name": "run_command",
                                          "response": {"error": "permission denied"}}}]}]},
           gemini_headers)
    record("gemini", "vertex_snake_case_json", "default",
           "/v1/projects/demo-project/locations/us-central1/publishers/google/models/"
           "gemini-2.0-flash:generateContent",
           {"system_instruction": {"parts": {"text": SYSTEM}},
            "contents": [{"role": "user", "parts": [{"text": "Say hello."}]}]},
           {"Authorization": "Bearer test-not-a-token"})

    # --- Ollama (plain HTTP, NDJSON unless stream is false) ---
    record("ollama", "tools_stream", "ollama", "/api/chat",
           {"model": "llama3.2", "messages": first_turn, "tools": openai_tools()})
    record("ollama", "results_json", "ollama", "/api/chat",
           {"model": "llama3.2", "stream": False, "tools": openai_tools(), "messages": first_turn + [
               {"role": "assistant", "content": "", "tool_calls": [
                   {"function": {"name": "read_file", "arguments": {"path": "/etc/hostname"}}}]},
               {"role": "tool", "tool_name": "read_file", "content": "build-host-7"}]})
    record("ollama", "generate_stream", "ollama", "/api/generate",
           {"model": "llama3.2", "system": SYSTEM, "prompt": "Why is the sky blue?"})
finally:
    for p in processes:
        p.terminate()
        p.wait()
PY
