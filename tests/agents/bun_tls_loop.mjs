// A TLS echo loop in one Bun process over Bun's own BoringSSL (linked in, its SSL_* symbols
// not exported: agentscope locates SSL_write/SSL_read in the binary), the Bun counterpart of
// openssl_tls_loop.py and go_tls_loop/ for crates/cli/benches/tls_probe_overhead.rs: a
// node:tls client and server over loopback TCP. For every line N read from stdin the client
// writes --size bytes and reads them back N times (two SSL writes and two SSL reads per round
// trip), then prints the loop's time in nanoseconds on a line of its own. The certificate
// comes from --cert-dir (cert.pem/key.pem, made with openssl if missing). It prints "ready"
// once connected.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import tls from "node:tls";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const size = Number(option("--size", "64"));
const certDir = option("--cert-dir");
if (!certDir) throw new Error("--cert-dir is required");
const cert = join(certDir, "cert.pem");
const key = join(certDir, "key.pem");
if (!existsSync(cert)) {
  mkdirSync(certDir, { recursive: true });
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt",
    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
    "-addext", "subjectAltName=DNS:localhost", "-keyout", key, "-out", cert],
    { stdio: "ignore" });
}

const server = tls.createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (socket) => {
  socket.on("data", (data) => socket.write(data));
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const client = tls.connect({
  host: "127.0.0.1",
  port: server.address().port,
  servername: "localhost",
  ca: readFileSync(cert),
});
await new Promise((resolve, reject) => {
  client.once("secureConnect", resolve);
  client.once("error", reject);
});

// Bytes echoed back arrive in pieces; a round trip ends when all `size` came back.
let waiting = null;
let received = 0;
client.on("data", (data) => {
  received += data.length;
  if (waiting && received >= size) {
    received -= size;
    const done = waiting;
    waiting = null;
    done();
  }
});
const out = Buffer.alloc(size, "x");
const roundTrip = () =>
  new Promise((resolve) => {
    waiting = resolve;
    client.write(out);
  });

console.log("ready");
for await (const line of createInterface({ input: process.stdin })) {
  const n = Number(line);
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await roundTrip();
  console.log(String(process.hrtime.bigint() - start));
}
client.destroy();
server.close();
