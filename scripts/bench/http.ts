/**
 * The HTTP adapter: requests per second of `SELECT 1` over Neon's SQL over
 * HTTP at concurrency 1 and 8, for the server under Bun and under Deno,
 * and the cold start of the Deno entries (process spawn until the first
 * query is answered). Run with
 *   ./node_modules/.bin/bun scripts/bench/http.ts [seconds-per-point]
 *
 * Each server is a separate process started from examples/ (in-memory
 * PGlite, inline placement), so the load generator here does not share the
 * server's event loop. The client is `fetch` with keep-alive, the body and
 * headers `neon()` sends for sql`SELECT 1`.
 */

import { spawn } from "node:child_process";
import { createServer } from "node:net";
import process from "node:process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const SECONDS = Number(process.argv[2] ?? 5);
const BODY = JSON.stringify({ query: "SELECT 1", params: [] });
const HEADERS = {
  "Neon-Connection-String": "postgres://postgres@127.0.0.1/postgres",
  "Neon-Raw-Text-Output": "true",
  "Neon-Array-Mode": "true",
};

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen({ host: "127.0.0.1", port: 0 }, () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a !== null ? a.port : 0));
    });
  });
}

async function selectOne(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { method: "POST", headers: HEADERS, body: BODY });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** Spawns a server and measures spawn → first answered SELECT 1. */
async function start(cmd: string[], port: number) {
  const t0 = performance.now();
  const child = spawn(cmd[0]!, cmd.slice(1), {
    cwd: root,
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const url = `http://127.0.0.1:${port}/sql`;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${cmd.join(" ")} exited ${child.exitCode}`);
    if (await selectOne(url)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  return { child, url, coldStartMs: performance.now() - t0 };
}

async function rps(url: string, concurrency: number): Promise<number> {
  const until = performance.now() + SECONDS * 1000;
  let done = 0;
  const worker = async () => {
    while (performance.now() < until) {
      if (!(await selectOne(url))) throw new Error("a SELECT 1 failed");
      done++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return done / ((performance.now() - t0) / 1000);
}

const deno = `${root}node_modules/.bin/deno`;
const bun = `${root}node_modules/.bin/bun`;
const servers: [string, string[]][] = [
  ["bun  examples/fetch-handler via Bun.serve", [bun, "scripts/bench/http_bun_entry.ts"]],
  ["deno examples/deno-deploy/main.ts", [deno, "run", "-A", "examples/deno-deploy/main.ts"]],
];

console.log(`SELECT 1 over HTTP, ${SECONDS} s per point`);
for (const [name, cmd] of servers) {
  const { child, url, coldStartMs } = await start(cmd, await freePort());
  try {
    await rps(url, 1); // warm-up
    const c1 = await rps(url, 1);
    const c8 = await rps(url, 8);
    console.log(
      `${name}: cold start ${coldStartMs.toFixed(0)} ms, ` +
        `c=1 ${c1.toFixed(0)} req/s, c=8 ${c8.toFixed(0)} req/s (x${(c8 / c1).toFixed(2)})`,
    );
  } finally {
    child.kill("SIGTERM");
  }
}

const port = await freePort();
const served = await start(
  [deno, "serve", "-A", "--port", String(port), "examples/fetch-handler/worker.ts"],
  port,
);
console.log(
  `deno serve examples/fetch-handler/worker.ts: cold start ${served.coldStartMs.toFixed(0)} ms`,
);
served.child.kill("SIGTERM");
