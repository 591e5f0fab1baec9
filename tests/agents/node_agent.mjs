#!/usr/bin/env node
// Minimal tool-using "AI agent" in Node 20, the same as python_agent.py but
// over the built-in fetch (undici) and Node's statically linked OpenSSL, so
// agentscope is exercised against a TLS stack that is not the system libssl.
//
// Trust: fetch has no per-request CA option without extra packages, so the
// self-signed cert must be trusted via NODE_EXTRA_CA_CERTS, which Node reads
// only at process start-up. Tests should set NODE_EXTRA_CA_CERTS=<cert>. If
// --ca is given and that cert is not in NODE_EXTRA_CA_CERTS (which may be
// unset, or preset to the system bundle), this script re-runs itself once with
// NODE_EXTRA_CA_CERTS=<ca>; the printed "pid" is then the child's, which is
// the process that does TLS.
//
// The URL host defaults to "localhost" (cert SANs: DNS:localhost, IP:127.0.0.1).
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { parseArgs } from "node:util";

const { values: opt } = parseArgs({
  options: {
    port: { type: "string" },
    ca: { type: "string" },
    host: { type: "string", default: "localhost" },
    "big-kib": { type: "string", default: "0" },
    stream: { type: "boolean", default: false },
    "read-path": { type: "string" },
    "service-port": { type: "string" },
    "wait-before-start-file": { type: "string" },
    marker: { type: "string", default: "agentscope-marker" },
    // Write request-N.body / response-N.body (exact bytes sent / received after de-chunking).
    "dump-dir": { type: "string" },
  },
});

// Real agents send API keys; the collector under test must redact them.
const API_KEY = process.env.AGENTSCOPE_TEST_API_KEY ?? "sk-agentscope-test-0123456789abcdef";

function fail(msg) {
  process.stderr.write(`node_agent: error: ${msg}\n`);
  process.exit(1);
}

if (!opt.port) fail("--port is required");
if (opt.ca && !extraCaHas(opt.ca)) {
  const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, NODE_EXTRA_CA_CERTS: opt.ca },
  });
  process.exit(r.status ?? 1);
}

// "Is the cert already trusted?" is decided by content, not by the variable
// being set: environments often preset NODE_EXTRA_CA_CERTS to the system bundle.
function extraCaHas(ca) {
  try {
    return fs.readFileSync(process.env.NODE_EXTRA_CA_CERTS ?? "", "utf8").includes(fs.readFileSync(ca, "utf8").trim());
  } catch {
    return false;
  }
}

const TOOLS = [
  { type: "function", function: {
    name: "run_command", description: "Run a program and return its stdout.",
    parameters: { type: "object", properties: { argv: { type: "array", items: { type: "string" } } }, required: ["argv"] } } },
  { type: "function", function: {
    name: "read_file", description: "Read the first 4 KiB of a file.",
    parameters: { type: "object", properties: { path: { type: "string" } }, required: ["path"] } } },
  { type: "function", function: {
    name: "fetch_url", description: "Ping a local TCP service and return its reply line.",
    parameters: { type: "object", properties: { host: { type: "string" }, port: { type: "integer" } }, required: ["host", "port"] } } },
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitForFile(path, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  while (!fs.existsSync(path)) {
    if (Date.now() > deadline) fail(`timed out waiting for ${path}`);
    await sleep(50);
  }
}

// Rebuild an assistant message from an OpenAI-style SSE stream. The body is
// read to the very end (not abandoned at [DONE]) so undici keeps the socket.
async function readSse(body) {
  const content = [];
  const calls = new Map();
  const decoder = new TextDecoder();
  let buf = "";
  let done = false;
  const onEvent = (event) => {
    for (const line of event.split("\n")) {
      if (done || !line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") { done = true; continue; }
      const delta = JSON.parse(data).choices[0].delta ?? {};
      if (delta.content) content.push(delta.content);
      for (const frag of delta.tool_calls ?? []) {
        if (!calls.has(frag.index)) calls.set(frag.index, { id: null, name: null, arguments: "" });
        const call = calls.get(frag.index);
        call.id = frag.id ?? call.id;
        call.name = frag.function?.name || call.name;
        call.arguments += frag.function?.arguments ?? "";
      }
    }
  };
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      onEvent(buf.slice(0, i));
      buf = buf.slice(i + 2);
    }
  }
  const message = { role: "assistant", content: content.join("") || null };
  if (calls.size) {
    message.tool_calls = [...calls.entries()].sort((a, b) => a[0] - b[0]).map(([, c]) => (
      { id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } }));
  }
  return message;
}

// Pass a body stream through unchanged, keeping a copy of each chunk.
async function* tee(body, chunks) {
  for await (const chunk of body) {
    chunks.push(chunk);
    yield chunk;
  }
}

async function chat(url, payload, sizes) {
  // Encode once, so the dumped bytes are exactly the bytes fetch sends.
  const body = Buffer.from(JSON.stringify(payload));
  sizes.push(body.length);
  const n = sizes.length;
  const dump = (name, data) => opt["dump-dir"] && fs.writeFileSync(path.join(opt["dump-dir"], name), data);
  dump(`request-${n}.body`, body);
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${API_KEY}` },
    body,
  });
  if (res.status !== 200) fail(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
  let message;
  const received = [];
  if (payload.stream) {
    message = await readSse(tee(res.body, received));
  } else {
    received.push(Buffer.from(await res.arrayBuffer()));
    message = JSON.parse(received[0].toString()).choices[0].message;
  }
  dump(`response-${n}.body`, Buffer.concat(received));
  return message;
}

function ping(host, port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    let buf = "";
    const finish = (result) => { sock.destroy(); resolve(result); };
    sock.setTimeout(5000, () => finish("error: timeout"));
    sock.on("connect", () => sock.write("PING agentscope\n"));
    sock.on("data", (d) => {
      buf += d.toString();
      const i = buf.indexOf("\n");
      if (i >= 0) finish(buf.slice(0, i).trim());
    });
    sock.on("error", (e) => finish(`error: ${e.message}`));
    sock.on("end", () => finish(buf.trim()));
  });
}

// Tool failures become tool results (like a real agent), not agent crashes.
async function runTool(name, args) {
  try {
    if (name === "run_command") {
      const r = spawnSync(args.argv[0], args.argv.slice(1), { encoding: "utf8", timeout: 10000 });
      if (r.error) return `error: ${r.error.message}`;
      return r.stdout.trim() || `exit ${r.status}`;
    }
    if (name === "read_file") {
      const fd = fs.openSync(args.path, "r");
      try {
        const buf = Buffer.alloc(4096);
        return buf.subarray(0, fs.readSync(fd, buf, 0, 4096, 0)).toString();
      } finally {
        fs.closeSync(fd);
      }
    }
    if (name === "fetch_url") return await ping(args.host, Number(args.port));
    return `error: unknown tool ${name}`;
  } catch (e) {
    return `error: ${e.message}`;
  }
}

async function main() {
  if (opt["dump-dir"]) fs.mkdirSync(opt["dump-dir"], { recursive: true });
  if (opt["wait-before-start-file"]) await waitForFile(opt["wait-before-start-file"]);

  const messages = [
    { role: "system", content: "You are a test agent. Use the tools you are given." },
    { role: "user", content: `Please use your tools. ${opt.marker}` },
  ];
  const bigKib = Number(opt["big-kib"]);
  if (bigKib > 0) messages.push({ role: "user", content: "0123456789abcdef".repeat(bigKib * 64) });
  const metadata = {};
  if (opt["read-path"]) metadata.read_path = opt["read-path"];
  if (opt["service-port"]) metadata.service_port = Number(opt["service-port"]);
  const payload = { model: "gpt-4o-mini", messages, tools: TOOLS, metadata, stream: opt.stream };

  const url = `https://${opt.host}:${opt.port}/v1/chat/completions`;
  const sizes = [];
  const reply = await chat(url, payload, sizes);
  const calls = reply.tool_calls ?? [];
  messages.push(reply);
  for (const call of calls) {
    const result = await runTool(call.function.name, JSON.parse(call.function.arguments || "{}"));
    messages.push({ role: "tool", tool_call_id: call.id, content: result });
  }
  const final = (await chat(url, { ...payload, messages }, sizes)).content;

  process.stdout.write(JSON.stringify({
    agent: "node", pid: process.pid, tool_calls: calls.map((c) => c.function.name), final, request_bytes: sizes,
  }) + "\n");
}

main().catch((e) => fail(`${e.name}: ${e.message}${e.cause ? ` (${e.cause.message ?? e.cause})` : ""}`));
