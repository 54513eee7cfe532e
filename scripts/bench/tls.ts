/**
 * What SSL costs: pgbench against one pgts server made by `pgts init --ssl`,
 * with PGSSLMODE=disable and PGSSLMODE=require side by side in one run (the
 * order alternates each round), for new connections (`-C -S`, a handshake
 * per transaction) and for statements on open connections (`-S`). Prints
 * the median TPS of each and the ratio require / disable.
 *
 * Usage: bun scripts/bench/tls.ts [--adapter SPEC] [--duration S] [--rounds N] [--clients N]
 * (SPEC as scripts/bench/run.sh's: bun, inproc, inproc:engine_placement=inline, deno+inproc...)
 */

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { PG_BIN, ROOT, type Server, startPgts } from "./lib/servers.ts";

const { values } = parseArgs({
  options: {
    adapter: { type: "string", default: "bun" },
    duration: { type: "string", default: "5" },
    rounds: { type: "string", default: "2" },
    clients: { type: "string", default: "4" },
  },
});
const duration = Number(values.duration);
const rounds = Number(values.rounds);
const clients = values.clients!;

function pgbench(server: Server, sslmode: string, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const proc = spawn(
      join(PG_BIN, "pgbench"),
      ["-h", server.host, "-p", String(server.port), "-U", "postgres", ...args, "postgres"],
      { env: { ...process.env, PGSSLMODE: sslmode } },
    );
    let out = "";
    proc.stdout.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
    proc.stderr.on("data", (d: Uint8Array) => (out += new TextDecoder().decode(d)));
    proc.on("exit", () => {
      const tps = Number(/^tps = ([0-9.]+)/m.exec(out)?.[1] ?? NaN);
      if (Number.isNaN(tps) && !args.includes("-i")) console.error(out);
      resolve(tps);
    });
  });
}

const scratch = mkdtempSync(join(tmpdir(), "pgts-bench-tls-"));
const dataDir = join(scratch, "data");
const init = spawnSync(process.execPath, [join(ROOT, "mod.ts"), "init", "-D", dataDir, "--ssl"], {
  cwd: ROOT,
  encoding: "utf8",
});
if (init.status !== 0) throw new Error(`pgts init --ssl failed:\n${init.stderr}`);
const server = await startPgts(values.adapter!, { dataDir });
try {
  await pgbench(server, "disable", ["-i", "-s", "1", "-q"]);
  const tests = [
    { name: `connections/s: pgbench -n -C -S -c ${clients}`, args: ["-C", "-S"] },
    { name: `select-only: pgbench -n -S -c ${clients}`, args: ["-S"] },
  ];
  const modes = ["disable", "require"];
  const tps = new Map<string, number[]>();
  for (let round = 0; round < rounds; round++) {
    for (const test of tests) {
      const order = round % 2 === 0 ? modes : [...modes].reverse();
      for (const mode of order) {
        const args = ["-n", ...test.args, "-c", clients, "-j", "2", "-T", String(duration)];
        const t = await pgbench(server, mode, args);
        const key = `${test.name}|${mode}`;
        tps.set(key, [...(tps.get(key) ?? []), t]);
      }
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  console.log(
    `pgts --adapter ${values.adapter}, ${rounds} rounds × ${duration} s, median TPS`,
  );
  for (const test of tests) {
    const plain = median(tps.get(`${test.name}|disable`)!);
    const ssl = median(tps.get(`${test.name}|require`)!);
    console.log(
      `${test.name.padEnd(40)} plain ${plain.toFixed(0).padStart(7)}  ssl ${
        ssl.toFixed(0).padStart(7)
      }  ssl/plain ${(ssl / plain).toFixed(2)}`,
    );
  }
} finally {
  await server.stop();
  rmSync(scratch, { recursive: true, force: true });
}
