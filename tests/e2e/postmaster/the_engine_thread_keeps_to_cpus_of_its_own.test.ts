/**
 * pgts.engine_cpu_affinity (src/engines/pglite/cpuaffinity.ts): on (the
 * default), on Linux with 2 to 4 allowed CPUs, the engine's Worker keeps
 * to all CPUs but the first while it is the only engine open, and every
 * other thread (the one that runs the sessions included) to the process's
 * whole set (threads the Worker starts once pinned, such as Bun's collector
 * thread, inherit its set); a second database's engine opening sends the
 * first Worker back to the whole set, and its close pins the one left
 * again. Off, or on a machine with another number of CPUs, every thread
 * keeps the whole set. Read from /proc/PID/task/TID/status, as `taskset -p`
 * would show it, under the runtime the tests run (Bun, or Deno with
 * PGTS_TEST_RUNTIME=deno).
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

/**
 * Each thread of the server's postmaster: its name and allowed CPUs; the
 * main thread first. A thread that ended between the listing and its read
 * (the runtime's helpers come and go) is left out.
 */
function threads(s: PgtsServer): { tid: number; name: string; cpus: number[] }[] {
  const pid = Number(s.pidFile()![0]);
  return readdirSync(`/proc/${pid}/task`).map(Number).sort((
    x,
    y,
  ) => (x === pid ? -1 : y === pid ? 1 : x - y)).flatMap((tid) => {
    let status: string;
    try {
      status = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") return [];
      throw e;
    }
    return [{ tid, name: /Name:\s*(.*)/.exec(status)![1]!, cpus: allowed(status) }];
  });
}

const ours = existsSync("/proc/self/status")
  ? allowed(readFileSync("/proc/self/status", "utf8"))
  : [];
const pins = ours.length >= 2 && ours.length <= 4;

/** The server's threads kept to `cpus`. */
function keptTo(s: PgtsServer, cpus: number[]): { name: string; cpus: number[] }[] {
  return threads(s).filter((t) => t.cpus.join() === cpus.join());
}

/** Waits until `check` holds (the Workers take a message to change their CPUs). */
async function eventually(check: () => boolean, what: string): Promise<void> {
  const until = Date.now() + 20_000;
  while (!check()) {
    if (Date.now() > until) throw new Error(`never: ${what}`);
    await Bun.sleep(50);
  }
}

describe.if(process.platform === "linux" && ours.length > 0)("engine_cpu_affinity", () => {
  test(
    pins
      ? "by default the engine's Worker keeps off the first CPU while it is the only engine; a second database's engine unpins it until it closes"
      : "by default nothing is pinned on a machine of this size",
    async () => {
      const s = await startSqlServer({
        perTest: true,
        settings: { engine_idle_timeout: "1s" },
      });
      const c = await pgClient(s);
      expect((await c.query("select 1 as x")).rows).toEqual([{ x: 1 }]);
      const ts = threads(s);
      // The thread that runs the sessions is never pinned.
      expect(ts[0]!.cpus).toEqual(ours);
      if (!pins) {
        for (const t of ts) expect(t.cpus).toEqual(ours);
        await c.end();
        return;
      }
      const rest = ours.slice(1);
      // The Worker, and any thread it started once pinned (under Bun its collector's).
      const pinned = keptTo(s, rest).length;
      expect(pinned).toBeGreaterThanOrEqual(1);
      await c.query("create database other_cpus");
      const o = await pgClient(s, { database: "other_cpus" });
      expect((await o.query("select 2 as x")).rows).toEqual([{ x: 2 }]);
      // Two engines: the first Worker is back on every CPU, and the new one is there too.
      await eventually(() => keptTo(s, rest).length < pinned, "the first Worker on every CPU");
      await o.end();
      // other_cpus's engine closes after engine_idle_timeout: postgres's is pinned again.
      await eventually(() => keptTo(s, rest).length === pinned, "the lone Worker pinned again");
      expect((await c.query("select 3 as x")).rows).toEqual([{ x: 3 }]);
      await c.end();
    },
  );

  test("set off, every thread keeps the process's CPUs", async () => {
    const s = await startSqlServer({ perTest: true, settings: { engine_cpu_affinity: "off" } });
    const c = await pgClient(s);
    expect((await c.query("select 2 as x")).rows).toEqual([{ x: 2 }]);
    for (const t of threads(s)) expect([t.name, t.cpus]).toEqual([t.name, ours]);
    await c.end();
  });
});
