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
import process from "node:process";
import { measureCancelLatency } from "./lib/cancel.ts";

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
  const r = await measureCancelLatency(spec, cancels);
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
