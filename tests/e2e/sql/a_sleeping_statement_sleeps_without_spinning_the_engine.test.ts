/**
 * A statement in a timed wait (`pg_sleep`) sleeps, as a PostgreSQL backend
 * does in epoll_wait: the server takes almost no CPU and no memory while
 * it lasts, and a cancel or statement_timeout still ends it at once.
 * Before, the engine polled the clock for the whole wait: a 2 s pg_sleep
 * took over a second of the server's CPU and grew it by ~300 MB a second.
 */

import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { pgClient, sharedServer, sleep, useSqlServers } from "../../helpers/pgts-sql.ts";

useSqlServers({ timeoutMs: 60_000 });

const server = sharedServer();

/** The server process's CPU (user + system, seconds) and resident memory (MiB), from /proc. */
function usage(pid: number): { cpu: number; rss: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  return { cpu: ticks / 100, rss: Number(rss) / 1024 };
}

test("pg_sleep costs the server almost no CPU or memory while it sleeps, and still ends on a cancel", async () => {
  const s = server();
  const c = await pgClient(s);
  await c.query("SELECT 1");
  // What the server takes with nothing to do (timers, a runtime's own
  // threads), over as long as the sleep.
  const idle0 = usage(s.pid);
  await sleep(2000);
  const idle = usage(s.pid).cpu - idle0.cpu;
  const before = usage(s.pid);
  const t0 = performance.now();
  await c.query("SELECT pg_sleep(2)");
  const slept = (performance.now() - t0) / 1000;
  const after = usage(s.pid);
  expect(slept).toBeGreaterThanOrEqual(2);
  // A spinning wait took 0.6–1.2 s of CPU a second of sleep here.
  expect(after.cpu - before.cpu - idle).toBeLessThan(0.5);
  expect(after.rss - before.rss).toBeLessThan(100);

  // A cancel from another connection, and statement_timeout, end the sleep at once.
  const other = await pgClient(s);
  const pid = (c as unknown as { processID: number }).processID;
  const sleeping = c.query("SELECT pg_sleep(30)").then(() => null, (e: { code?: string }) => e);
  await sleep(300);
  const t1 = performance.now();
  await other.query("SELECT pg_cancel_backend($1)", [pid]);
  expect((await sleeping)?.code).toBe("57014");
  expect(performance.now() - t1).toBeLessThan(2000);
  await c.query("SET statement_timeout = 200");
  const t2 = performance.now();
  const timedOut = await c.query("SELECT pg_sleep(30)").then(
    () => null,
    (e: { code?: string }) => e,
  );
  expect(timedOut?.code).toBe("57014");
  expect(performance.now() - t2).toBeLessThan(2000);
  await c.query("RESET statement_timeout");
  expect((await c.query("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);
  await other.end();
  await c.end();
});
