/**
 * A session the engine ends by itself — idle_in_transaction_session_timeout
 * — gets FATAL 25P03 and then its connection is closed by its backend, which
 * exits; the transaction is rolled back and everyone else goes on.
 */

import { expect, test } from "bun:test";
import { backendPid } from "../../helpers/pgts.ts";
import {
  pgClient,
  psql,
  sharedServer,
  sleep,
  startSqlServer,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";

useSqlServers();
const server = sharedServer({ settings: { idle_in_transaction_session_timeout: "1500ms" } });

const IDLE_FATAL = "terminating connection due to idle-in-transaction timeout";

test("SET idle_in_transaction_session_timeout: FATAL 25P03, the connection closes, the work is rolled back", async () => {
  const c = await pgClient(server());
  const other = await pgClient(server());
  await c.query("create table idle_work (v int)");
  const ended = new Promise<void>((resolve) => c.once("end", () => resolve()));
  const pid = backendPid(c);
  await c.query("set idle_in_transaction_session_timeout = '300ms'");
  await c.query("begin");
  await c.query("insert into idle_work values (1)");
  const t0 = Date.now();
  await ended;
  expect(Date.now() - t0).toBeLessThan(5_000);
  const fatal = c.asyncErrors.find((e) => (e as { code?: string }).code === "25P03") as
    | (Error & { severity?: string })
    | undefined;
  expect(fatal?.message).toBe(IDLE_FATAL);
  expect(fatal?.severity).toBe("FATAL");
  // The backend logs it as it exits, with its own pid.
  await server().waitForLog(new RegExp(`\\[${pid}\\] FATAL: {2}${IDLE_FATAL}`));
  // Rolled back; the engine is free for the others.
  expect((await other.query("select count(*)::int as n from idle_work")).rows[0].n).toBe(0);
});

test("the server's setting (-c) ends psql idle in a transaction; sessions idle outside one stay", async () => {
  const idle = await pgClient(server());
  const r = await psql(server(), [
    "-c",
    "begin",
    "-c",
    "\\! sleep 3",
    "-c",
    "select 'still in' as v",
  ]);
  // psql sleeps in a shell, its session idle in the transaction.
  expect(r.code).not.toBe(0);
  expect(r.err).toContain(`FATAL:  ${IDLE_FATAL}`);
  expect(r.err).toContain("server closed the connection unexpectedly");
  expect((await idle.query("select 'idle but alive' as v")).rows).toEqual([{
    v: "idle but alive",
  }]);
});

test("a session idle in a transaction while others wait for the engine is ended after pgts.engine_hold_timeout; the waiter runs", async () => {
  // The default server: engine_hold_timeout 2 s, below engine_wait_timeout's 5 s.
  const s = await startSqlServer({ perTest: true });
  const holder = await pgClient(s);
  const waiter = await pgClient(s);
  await holder.query("create table held_work (v int)");
  const pid = backendPid(holder);
  const ended = new Promise<void>((resolve) => holder.once("end", () => resolve()));
  await holder.query("begin");
  await holder.query("insert into held_work values (1)");
  // Idle in the transaction with nobody waiting: not ended.
  await sleep(2_500);
  expect((await holder.query("select count(*)::int as n from held_work")).rows[0].n).toBe(1);
  // Now another session waits: the holder goes after ~2 s, and the waiter's
  // statement runs instead of failing with 55P03 at 5 s.
  const t0 = Date.now();
  const seen = await waiter.query("select count(*)::int as n from held_work");
  expect(seen.rows[0].n).toBe(0);
  expect(Date.now() - t0).toBeGreaterThanOrEqual(1_500);
  await ended;
  const fatal = holder.asyncErrors.find((e) => (e as { code?: string }).code === "25P03") as
    | (Error & { severity?: string; detail?: string })
    | undefined;
  expect(fatal?.message).toBe(IDLE_FATAL);
  expect(fatal?.severity).toBe("FATAL");
  expect(fatal?.detail).toBe(
    "The session held the engine idle for 2000 ms while 1 other session waited for it.",
  );
  await s.waitForLog(new RegExp(`\\[${pid}\\] FATAL: {2}${IDLE_FATAL}`));
  expect(s.log).toContain("DETAIL:  The session held the engine idle for 2000 ms");
  await waiter.end();
});

test("pgts.engine_hold_timeout = 0 keeps the holder; the waiter gets 55P03 naming it", async () => {
  const s = await startSqlServer({
    perTest: true,
    // Spelled as the server's hints spell them (-c pgts.… was an extension's
    // placeholder that nothing read).
    settings: { "pgts.engine_hold_timeout": 0, "pgts.engine_wait_timeout": "1s" },
  });
  const holder = await pgClient(s);
  const waiter = await pgClient(s);
  await holder.query("begin");
  await holder.query("select 1");
  const err = await waiter.query("select count(*) from pg_class").catch((e) => e);
  expect(err).toMatchObject({ code: "55P03" });
  expect(err.message).toContain(`process ${backendPid(holder)}`);
  expect((await holder.query("select 'still mine' as v")).rows).toEqual([{ v: "still mine" }]);
  await holder.query("commit");
  await holder.end();
  await waiter.end();
});
