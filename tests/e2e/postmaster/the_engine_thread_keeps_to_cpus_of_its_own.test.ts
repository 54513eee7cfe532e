/**
 * pgts.engine_cpu_affinity (src/engines/pglite/cpuaffinity.ts): set on, on
 * Linux with 2 to 4 allowed CPUs, the server's thread that runs the
 * sessions keeps to the first allowed CPU and the engine's Worker to the
 * others; off (the default), or on a machine with another number of CPUs,
 * every thread keeps the process's whole set. Read from
 * /proc/PID/task/TID/status, as `taskset -p` would show it, under the
 * runtime the tests run (Bun, or Deno with PGTS_TEST_RUNTIME=deno).
 */

import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import {
  pgClient,
  type PgtsServer,
  startSqlServer,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";

useSqlServers();

/** A Cpus_allowed_list ("0-1", "0,2-3") as CPU numbers. */
function cpuList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.trim().split(",")) {
    const [a, b] = part.split("-").map(Number);
    for (let c = a!; c <= (b ?? a!); c++) out.push(c);
  }
  return out;
}

function allowed(status: string): number[] {
  return cpuList(/Cpus_allowed_list:\s*(\S+)/.exec(status)![1]!);
}

/** Each thread of the server's postmaster: its name and allowed CPUs; the main thread first. */
function threads(s: PgtsServer): { tid: number; name: string; cpus: number[] }[] {
  const pid = Number(s.pidFile()![0]);
  return readdirSync(`/proc/${pid}/task`).map(Number).sort((
    x,
    y,
  ) => (x === pid ? -1 : y === pid ? 1 : x - y)).map((tid) => {
    const status = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
    return { tid, name: /Name:\s*(.*)/.exec(status)![1]!, cpus: allowed(status) };
  });
}

const ours = existsSync("/proc/self/status")
  ? allowed(readFileSync("/proc/self/status", "utf8"))
  : [];
const pins = ours.length >= 2 && ours.length <= 4;

describe.if(process.platform === "linux" && ours.length > 0)("engine_cpu_affinity", () => {
  test(
    pins
      ? "set on, the sessions' thread keeps to the first CPU and the engine's Worker to the rest"
      : "set on, nothing is pinned on a machine of this size",
    async () => {
      const s = await startSqlServer({ perTest: true, settings: { engine_cpu_affinity: "on" } });
      const c = await pgClient(s);
      expect((await c.query("select 1 as x")).rows).toEqual([{ x: 1 }]);
      const ts = threads(s);
      const main = ts[0]!;
      if (pins) {
        expect(main.cpus).toEqual([ours[0]!]);
        // The engine's Worker, and no other thread of the runtime's own, on the rest.
        const engine = ts.filter((t) => t.cpus.join() === ours.slice(1).join());
        expect(engine.length).toBeGreaterThanOrEqual(1);
        expect(ts.some((t) => t.cpus.join() === ours.join())).toBe(true);
      } else {
        for (const t of ts) expect(t.cpus).toEqual(ours);
      }
      await c.end();
    },
  );

  test("by default (off) every thread keeps the process's CPUs", async () => {
    const s = await startSqlServer({ perTest: true });
    const c = await pgClient(s);
    expect((await c.query("select 2 as x")).rows).toEqual([{ x: 2 }]);
    for (const t of threads(s)) expect([t.name, t.cpus]).toEqual([t.name, ours]);
    await c.end();
  });
});
