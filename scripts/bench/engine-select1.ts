/**
 * `SELECT 1` per call: PGlite's execProtocolRaw directly, and through the
 * pgts engine session layer (inline and worker placement), measured side by
 * side in one run. Usage: bun scripts/bench/engine-select1.ts [calls]
 *
 * With `--ceiling SECONDS [CLIENTS]` it prints, as one JSON line, the
 * in-process ceiling that scripts/bench/compare.ts sets pgts against: the
 * engine opened on a data directory in this process, CLIENTS sessions (4)
 * each sending `SELECT 1`, then pgbench's select-only statement, back to
 * back for SECONDS, for both placements; no backend, no socket.
 */

import { PGlite } from "@electric-sql/pglite";
import { openEngine } from "../../src/engines/pglite/mod.ts";
import type { EngineSession } from "../../src/core/engine/types.ts";
import { FE } from "../../src/core/protocol/constants.ts";

if (process.argv[2] === "--ceiling") {
  const { engineCeiling } = await import("./lib/ceiling.ts");
  const seconds = Number(process.argv[3] ?? 5);
  const clients = Number(process.argv[4] ?? 4);
  console.log(JSON.stringify(await engineCeiling({ seconds, clients })));
  process.exit(0);
}

const N = Number(process.argv[2] ?? 3000);
const WARM = 300;
const enc = new TextEncoder();
function query(sql: string): Uint8Array {
  const b = enc.encode(sql);
  const m = new Uint8Array(b.length + 6);
  m[0] = FE.Query;
  new DataView(m.buffer).setInt32(1, b.length + 5);
  m.set(b, 5);
  return m;
}
const q = query("SELECT 1");

async function time(label: string, f: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < WARM; i++) await f();
  const samples: number[] = [];
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    await f();
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  const median = samples[N >> 1]! * 1000;
  const mean = samples.reduce((a, b) => a + b, 0) / N * 1000;
  console.log(
    `${label.padEnd(44)} median ${median.toFixed(1).padStart(6)} µs  mean ${
      mean.toFixed(1).padStart(6)
    } µs`,
  );
  return median;
}

const db = await PGlite.create();
const raw = await time("execProtocolRaw (syncToFs default)", () => db.execProtocolRaw(q));
const rawNoSync = await time(
  "execProtocolRaw (syncToFs: false)",
  () => db.execProtocolRaw(q, { syncToFs: false }),
);
await db.close();

async function viaEngine(placement: "inline" | "worker", sessions: number) {
  const engine = await openEngine("memory://", { placement });
  const ss: EngineSession[] = [];
  for (let i = 0; i < sessions; i++) {
    ss.push(
      (await engine.startSession({
        pid: i + 1,
        user: "postgres",
        database: "postgres",
        params: { application_name: `s${i}` },
      })).session,
    );
  }
  let k = 0;
  const out = () => {};
  const m = await time(
    `engine session, ${placement}, ${sessions} session(s) round-robin`,
    () => ss[k++ % sessions]!.exec(q, out),
  );
  await engine.close();
  return m;
}
const inline1 = await viaEngine("inline", 1);
const inline2 = await viaEngine("inline", 2);
const worker1 = await viaEngine("worker", 1);
const worker2 = await viaEngine("worker", 2);
console.log(
  `ratios to execProtocolRaw(syncToFs: false): inline ${
    (inline1 / rawNoSync).toFixed(2)
  }x, inline 2 sessions ${(inline2 / rawNoSync).toFixed(2)}x, worker ${
    (worker1 / rawNoSync).toFixed(2)
  }x, worker 2 sessions ${(worker2 / rawNoSync).toFixed(2)}x; raw default/false ${
    (raw / rawNoSync).toFixed(2)
  }x`,
);
process.exit(0);
