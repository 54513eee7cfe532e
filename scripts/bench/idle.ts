/**
 * Idle memory per connection of one pgts server: RSS of the server's whole
 * process tree with one idle connection and with N more, N's connections
 * made with raw startup packets (no client library's memory on either side
 * beyond the socket). Run with
 *   ./node_modules/.bin/bun scripts/bench/idle.ts [--connections N] [SPEC ...]
 * SPEC as run.sh names it (default: the default server).
 */

import { connect, type Socket } from "node:net";
import process from "node:process";
import { startPgts, treeMemory } from "./lib/servers.ts";

const args = process.argv.slice(2);
let n = 1000;
const specs: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--connections") n = Number(args[++i]);
  else specs.push(args[i]!);
}
if (specs.length === 0) specs.push("default");

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function startup(port: number, host: string): Promise<Socket> {
  const params = "user\0postgres\0database\0postgres\0\0";
  const body = new TextEncoder().encode(params);
  const packet = new Uint8Array(8 + body.length);
  const dv = new DataView(packet.buffer);
  dv.setInt32(0, packet.length);
  dv.setInt32(4, 196608);
  packet.set(body, 8);
  return new Promise((resolve, reject) => {
    const sock = connect(port, host, () => sock.write(packet));
    let seen = "";
    sock.on("data", (d: Buffer) => {
      seen += d.toString("latin1");
      // ReadyForQuery 'Z' with length 5 and status I.
      if (seen.includes("Z\0\0\0\x05I")) {
        sock.removeAllListeners("data");
        sock.pause();
        resolve(sock);
      }
    });
    sock.on("error", reject);
  });
}

for (const spec of specs) {
  const server = await startPgts(`${spec}:max_connections=${n + 20}`);
  try {
    const first = await startup(server.port, server.host);
    await sleep(2000);
    const one = treeMemory(server.pid);
    const socks: Socket[] = [first];
    for (let i = 0; i < n; i += 20) {
      socks.push(
        ...await Promise.all(
          Array.from({ length: Math.min(20, n - i) }, () => startup(server.port, server.host)),
        ),
      );
    }
    await sleep(3000);
    const many = treeMemory(server.pid);
    const t0 = performance.now();
    const extra = await startup(server.port, server.host);
    const next = performance.now() - t0;
    console.log(
      `${spec}: RSS ${(one.rssKiB / 1024).toFixed(0)} MiB with 1 idle connection, ${
        (many.rssKiB / 1024).toFixed(0)
      } MiB with ${n + 1} (${
        ((many.rssKiB - one.rssKiB) / n).toFixed(1)
      } KiB each); one more served in ${next.toFixed(1)} ms`,
    );
    extra.destroy();
    for (const s of socks) s.destroy();
  } finally {
    await server.stop();
  }
}
