// An agent for crates/cli/benches/agent_overhead.rs: keep-alive HTTPS POSTs of a
// chat-completion request from Node (its OpenSSL linked in; one kept-alive socket). Usage:
//   node https_post_client.mjs URL CA SIZE
// It sends one request, prints "ready", then for every line N on stdin sends N requests of
// about SIZE bytes, one after another, and prints the time they took in nanoseconds. The
// server is tests/agents/https_post (serve mode).
import https from "node:https";
import fs from "node:fs";
import readline from "node:readline";

const [url, ca, sizeText] = process.argv.slice(2);
const size = Number(sizeText);
const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: fs.readFileSync(ca) });

function body() {
  const head =
    '{"model":"gpt-4o-mini","messages":[{"role":"system","content":' +
    '"You are a careful coding agent."},{"role":"user","content":"';
  const tail = '"}]}';
  const filler = "Summarise the build log and list the failing tests. ".repeat(
    Math.floor(size / 52) + 1,
  );
  return Buffer.from(head + filler.slice(0, Math.max(0, size - head.length - tail.length)) + tail);
}
const payload = body();

function post() {
  return new Promise((resolve, reject) => {
    const request = https.request(
      url,
      {
        method: "POST",
        agent,
        headers: { "Content-Type": "application/json", "Content-Length": payload.length },
      },
      (response) => {
        response.on("data", () => {});
        response.on("end", () =>
          response.statusCode === 200 ? resolve() : reject(new Error(`status ${response.statusCode}`)),
        );
      },
    );
    request.on("error", reject);
    request.end(payload);
  });
}

await post();
console.log("ready");
for await (const line of readline.createInterface({ input: process.stdin })) {
  const n = Number(line);
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await post();
  console.log(String(process.hrtime.bigint() - start));
}
