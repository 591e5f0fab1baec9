#!/usr/bin/env node
// Minimal MCP client in Node, without an SDK: it spawns a stdio MCP server with
// child_process.spawn (libuv gives the child socketpairs, not pipes, as stdin
// and stdout) and speaks newline-delimited JSON-RPC to it: initialize,
// notifications/initialized, tools/call read_file. It prints the responses it
// received, one JSON array on stdout, for the test to compare with the capture.
//
// Usage: node_mcp_stdio_client.mjs --server-python PY --server SCRIPT
//          --read-path FILE [--wait-before-start-file FILE]
import { spawn } from "node:child_process";
import fs from "node:fs";
import { parseArgs } from "node:util";

const { values: opt } = parseArgs({
  options: {
    "server-python": { type: "string" },
    server: { type: "string" },
    "read-path": { type: "string" },
    "wait-before-start-file": { type: "string" },
  },
});

function fail(msg) {
  process.stderr.write(`node_mcp_stdio_client: error: ${msg}\n`);
  process.exit(1);
}

if (!opt["server-python"] || !opt.server || !opt["read-path"]) {
  fail("--server-python, --server and --read-path are required");
}
if (opt["wait-before-start-file"]) {
  const deadline = Date.now() + 60_000;
  while (!fs.existsSync(opt["wait-before-start-file"])) {
    if (Date.now() > deadline) fail("timed out waiting for the start file");
    await new Promise((r) => setTimeout(r, 20));
  }
}

const server = spawn(opt["server-python"], [opt.server], {
  stdio: ["pipe", "pipe", "inherit"],
});
const waiting = new Map();
let buffered = "";
server.stdout.setEncoding("utf8");
server.stdout.on("data", (text) => {
  buffered += text;
  let newline;
  while ((newline = buffered.indexOf("\n")) >= 0) {
    const line = buffered.slice(0, newline);
    buffered = buffered.slice(newline + 1);
    if (!line.trim()) continue;
    const message = JSON.parse(line);
    const resolve = waiting.get(message.id);
    if (resolve) {
      waiting.delete(message.id);
      resolve(message);
    }
  }
});

let nextId = 1;
function request(method, params) {
  const id = nextId++;
  const answer = new Promise((resolve) => waiting.set(id, resolve));
  server.stdin.write(JSON.stringify({ jsonrpc: "2.0", id, method, params }) + "\n");
  return answer;
}

const timer = setTimeout(() => fail("no answer from the server"), 60_000);
const responses = [];
responses.push(
  await request("initialize", {
    protocolVersion: "2025-06-18",
    capabilities: {},
    clientInfo: { name: "agentscope-node-client", version: "0.0.1" },
  }),
);
server.stdin.write(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }) + "\n");
responses.push(
  await request("tools/call", { name: "read_file", arguments: { path: opt["read-path"] } }),
);
clearTimeout(timer);
server.stdin.end();
await new Promise((resolve) => server.on("close", resolve));
process.stdout.write(JSON.stringify(responses) + "\n");
