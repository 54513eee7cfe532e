/**
 * The fast configuration the README recommends for one machine,
 * `pgts start --adapter inproc -c engine_placement=inline`: backends are
 * tasks in the postmaster's process and PGlite runs on that same thread.
 * Real clients get the same SQL and the same isolation as under the other
 * adapters; what differs is that a running statement holds the whole
 * server, so a CancelRequest sent during it acts only once it has ended
 * (and then, as in PostgreSQL after a statement ended, cancels nothing).
 */

import { beforeAll, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import {
  cancelRequest,
  pgClient,
  type PgtsServer,
  psql,
  RawConnection,
  runPg,
  sleep,
  startSqlServer,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";

useSqlServers({ timeoutMs: 90_000 });

let s: PgtsServer;
beforeAll(async () => {
  s = await startSqlServer({ adapter: "inproc", conf: "engine_placement = 'inline'\n" });
}, 90_000);

test("one process serves every client: the postmaster has no child processes", async () => {
  const clients = await Promise.all([pgClient(s), pgClient(s), pgClient(s)]);
  for (const c of clients) expect((await c.query("select 1 as v")).rows).toEqual([{ v: 1 }]);
  const children = readdirSync("/proc").filter((e) => {
    if (!/^\d+$/.test(e)) return false;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, "utf8");
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === s.pid;
    } catch {
      return false;
    }
  });
  expect(children).toEqual([]);
});

test("psql COPY in and out, node-postgres parameters, errors and a savepoint", async () => {
  const copy = await psql(s, [
    "-c",
    "create table inline_smoke (n int, t text)",
    "-c",
    "copy inline_smoke from stdin",
  ], { stdin: "1\tone\n2\ttwo\n\\.\n" });
  expect(copy.err).toBe("");
  expect(copy.out.trim()).toBe("CREATE TABLE\nCOPY 2");
  const c = await pgClient(s);
  expect((await c.query("select $1::int + 1 as n", [41])).rows).toEqual([{ n: 42 }]);
  expect((await c.query("select 1/0").catch((e) => e)).code).toBe("22012");
  await c.query("begin");
  await c.query("insert into inline_smoke values (3, 'three')");
  await c.query("savepoint s");
  await c.query("insert into inline_smoke values (4, 'four')");
  await c.query("rollback to savepoint s");
  await c.query("commit");
  const out = await psql(s, ["-c", "copy (select n from inline_smoke order by n) to stdout"]);
  expect(out.out).toBe("1\n2\n3\n");
});

test("sessions stay isolated: another client waits for a transaction block, never sees it", async () => {
  const a = await pgClient(s);
  const b = await pgClient(s);
  await a.query("create table inline_iso (n int)");
  await a.query("begin");
  await a.query("insert into inline_iso values (1)");
  await a.query("set local work_mem = '1MB'");
  // b's statement waits for a's transaction to end; it then sees the commit.
  const seen = b.query(
    "select count(*)::int as n, current_setting('work_mem') as w from inline_iso",
  );
  await sleep(200);
  await a.query("commit");
  expect((await seen).rows).toEqual([{ n: 1, w: "4MB" }]);
});

test("pgbench -i and -T 3 -c 4: 0 failures, every transaction's history row there", async () => {
  const init = await runPg(s, "pgbench", ["-i", "-s", "1"], { timeoutMs: 90_000 });
  expect(init.code).toBe(0);
  const run = await runPg(s, "pgbench", ["-T", "3", "-c", "4", "-n"], { timeoutMs: 60_000 });
  expect(run.code).toBe(0);
  expect(run.out).toMatch(/number of failed transactions: 0 \(0\.000%\)/);
  const processed = Number(/actually processed: (\d+)/.exec(run.out)?.[1] ?? 0);
  expect(processed).toBeGreaterThan(0);
  const history = await psql(s, ["-Atc", "select count(*) from pgbench_history"]);
  expect(Number(history.out.trim())).toBe(processed);
}, 180_000);

// The inline placement's signature: with PGlite in a Worker thread the same
// cancel ends the statement with 57014 (other_runtimes_serve_the_same_sql).
test("a cancel sent during a statement acts once it ended: the statement completes, the server serves on", async () => {
  const c = await pgClient(s);
  const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
  const started = Date.now();
  const running = c.query("select pg_sleep(1) is null as slept");
  await sleep(200);
  const raw = await RawConnection.open(s);
  raw.send(cancelRequest(processID, secretKey));
  await raw.drain();
  expect((await running).rows).toEqual([{ slept: false }]);
  expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
  expect((await c.query("select 1 as v")).rows).toEqual([{ v: 1 }]);
});
