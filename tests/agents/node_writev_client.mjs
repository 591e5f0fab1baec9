// The same HTTP/1.1 LLM request (OpenAI Chat Completions) sent twice with Node's `http` module
// on two connections: once with `req.end(body)` (headers and body in one write) and once corked
// with the body in several `req.write` calls (libuv gathers them into one `writev`). Prints the
// local ports of the two connections and both answers as JSON.
//
// Usage: node node_writev_client.mjs PORT [START_FILE]
import fs from 'node:fs';
import http from 'node:http';

const [port, startFile] = process.argv.slice(2);
const apiKey = process.env.AGENTSCOPE_TEST_API_KEY || 'sk-agentscope-test-0123456789abcdef';
const body = JSON.stringify({
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'Summarise this log: ' + 'node-writev '.repeat(1500) }],
});
const pieces = [body.slice(0, 1), body.slice(1, 7000), body.slice(7000)];

function send(corked) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port: Number(port), method: 'POST', path: '/v1/chat/completions',
      agent: false,
      headers: {
        'Content-Type': 'application/json',
        'Authorization': `Bearer ${apiKey}`,
        'Content-Length': Buffer.byteLength(body),
        'Connection': 'close',
      },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ corked, status: res.statusCode, port: req.socket.localPort,
        answer: Buffer.concat(chunks).toString().slice(0, 80) }));
    });
    req.on('error', reject);
    if (corked) {
      req.on('socket', (socket) => socket.on('connect', () => {
        req.cork();
        for (const piece of pieces) req.write(piece);
        req.uncork();
        req.end();
      }));
    } else {
      req.end(body);
    }
  });
}

async function main() {
  if (startFile) {
    const deadline = Date.now() + 60000;
    while (!fs.existsSync(startFile)) {
      if (Date.now() > deadline) throw new Error('timed out waiting for the start file');
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const plain = await send(false);
  const corked = await send(true);
  console.log(JSON.stringify({
    ok: plain.status === 200 && corked.status === 200, pid: process.pid, plain, corked,
  }));
}

main().catch((err) => { console.error(err); process.exit(1); });
