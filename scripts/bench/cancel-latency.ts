/**
 * Cancel latency: how long a CancelRequest takes to stop a CPU-bound
 * statement, from the moment the request is sent to the moment the client
 * has the 57014. Run with
 *   ./node_modules/.bin/bun scripts/bench/cancel-latency.ts [--cancels N] [SPEC ...]
 *
 * SPEC is a pgts server as run.sh names it (`[deno+]adapter[:name=value...]`;
 * default: `subprocess` and `inproc`). For each, one server; N cancels
 * (default 50) alternating a PL/pgSQL loop (no host call at all) and a count
 * over generate_series. Each statement runs for 100–150 ms before its
 * cancel. A cancel whose statement was not cancelled within 10 s (it came
 * before the statement reached the engine, or nothing reaches a running
 * statement) counts as lost. Prints p50, p99 and max per server.
 */

import { readFileSync } from "node:fs";
import { connect } from "node:net";
import process from "node:process";
import pg from "pg";
import { startPgts } from "./lib/servers.ts";

const STATEMENTS = [
  "do $$ declare i bigint := 0; begin loop i := i + 1; end loop; end $$",
  "select count(*) from generate_series(1, 1e9)",
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

async function measure(spec: string, cancels: number) {
  const server = await startPgts(spec);
  const config = { host: server.host, port: server.port, user: "postgres", database: "postgres" };
  const client = new pg.Client(config);
  await client.connect();
  const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
  const ms: number[] = [];
  let lost = 0;
  try {
    for (let i = 0; i < cancels; i++) {
      let done = 0;
      const running = client.query(STATEMENTS[i % STATEMENTS.length]!).then(
        () => "finished",
        (e: { code?: string }) => e.code ?? "error",
      ).finally(() => (done = performance.now()));
      await sleep(100 + Math.random() * 50);
      const sent = performance.now();
      // node-postgres's own cancel: a new connection with the CancelRequest.
      await cancelRequest(config, processID, secretKey);
      const outcome = await Promise.race([running, sleep(10_000).then(() => "timeout")]);
      if (outcome === "57014") ms.push(done - sent);
      else {
        lost++;
        // Stop what still runs before the next round (a second request).
        await cancelRequest(config, processID, secretKey);
        await running;
      }
    }
  } finally {
    await client.end().catch(() => {});
    await server.stop();
  }
  const sorted = [...ms].sort((a, b) => a - b);
  return {
    spec,
    n: ms.length,
    lost,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? NaN,
  };
}

/** Sends a CancelRequest on a connection of its own and waits for the server to close it. */
async function cancelRequest(
  config: { host: string; port: number },
  pid: number,
  key: number,
): Promise<void> {
  const packet = new Uint8Array(16);
  const dv = new DataView(packet.buffer);
  dv.setInt32(0, 16);
  dv.setInt32(4, 80877102);
  dv.setInt32(8, pid);
  dv.setInt32(12, key);
  await new Promise<void>((resolve, reject) => {
    const sock = connect(config.port, config.host, () => sock.end(packet));
    sock.on("close", () => resolve());
    sock.on("error", reject);
    sock.resume();
  });
}

const args = process.argv.slice(2);
let cancels = 50;
const specs: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--cancels") cancels = Number(args[++i]);
  else specs.push(args[i]!);
}
if (specs.length === 0) specs.push("subprocess", "inproc");

console.log(`cancel latency, ${cancels} cancels per server; load average ${loadavg()}`);
console.log("| server | cancelled | lost | p50 ms | p99 ms | max ms |");
console.log("| --- | --: | --: | --: | --: | --: |");
for (const spec of specs) {
  const r = await measure(spec, cancels);
  console.log(
    `| ${r.spec} | ${r.n} | ${r.lost} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${
      r.max.toFixed(1)
    } |`,
  );
}
console.log(`load average after: ${loadavg()}`);

function loadavg(): string {
  try {
    return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  } catch {
    return "?";
  }
}
