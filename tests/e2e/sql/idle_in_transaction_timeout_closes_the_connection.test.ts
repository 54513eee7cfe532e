/**
 * A session the engine ends by itself — idle_in_transaction_session_timeout
 * — gets FATAL 25P03 and then its connection is closed by its backend, which
 * exits; the transaction is rolled back and everyone else goes on.
 */

import { expect, test } from "bun:test";
import { backendPid, isAlive } from "../../helpers/pgts.ts";
import { pgClient, psql, sharedServer, useSqlServers, waitFor } from "../../helpers/pgts-sql.ts";

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
  await waitFor("the backend to exit", () => !isAlive(pid));
  expect(server().log).toContain(`[${pid}] FATAL:  ${IDLE_FATAL}`);
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
