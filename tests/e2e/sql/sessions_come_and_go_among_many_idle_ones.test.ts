/**
 * The engine learns of each session that starts or ends by itself, not by
 * the whole list of sessions again (procarray.ts, backends.ts
 * BackendsUpdate): with many idle connections open, clients that come and
 * go are still seen as PostgreSQL sees its backends. A session that
 * connected after the others can be signalled by pid, one that ended
 * cannot (PostgreSQL's WARNING), and what an ended session held (an
 * advisory lock, its currval) is not the next session's. node-postgres,
 * under the default server.
 */

import { expect, test } from "bun:test";
import type pg from "pg";
import { pgClient, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";

useSqlServers({ timeoutMs: 90_000 });

const server = sharedServer({});
const pidOf = (c: pg.Client) => (c as unknown as { processID: number }).processID;

test("sessions that come and go among 40 idle ones are each seen, signalled and forgotten", async () => {
  const idle: pg.Client[] = [];
  for (let i = 0; i < 40; i++) {
    const c = await pgClient(server());
    await c.query("select 1");
    idle.push(c);
  }
  const watcher = await pgClient(server());
  const warnings: string[] = [];
  watcher.on("notice", (n) => warnings.push(String((n as { message: string }).message)));
  await watcher.query("create sequence if not exists churn_seq");

  // A client that arrives after the idle ones takes a lock and a sequence
  // value, and leaves: its pid is then no backend, and what it held goes.
  for (let round = 0; round < 5; round++) {
    const c = await pgClient(server());
    const pid = pidOf(c);
    await c.query("select pg_advisory_lock(4242)");
    await c.query("select nextval('churn_seq')");
    const listed = await watcher.query(
      "select count(*)::int as n from pg_stat_activity where pid = $1",
      [pid],
    );
    expect(listed.rows[0].n).toBe(1);
    const held = await watcher.query("select pg_try_advisory_lock(4242) as got");
    expect(held.rows[0].got).toBe(false);
    await c.end();
    // The lock is the watcher's once the engine has seen the session end.
    let got = false;
    for (let i = 0; i < 100 && !got; i++) {
      got = (await watcher.query("select pg_try_advisory_lock(4242) as got")).rows[0].got;
      if (!got) await Bun.sleep(20);
    }
    expect(got).toBe(true);
    await watcher.query("select pg_advisory_unlock(4242)");
    warnings.length = 0;
    const cancelled = await watcher.query("select pg_cancel_backend($1) as ok", [pid]);
    expect(cancelled.rows[0].ok).toBe(false);
    expect(warnings).toContain(`PID ${pid} is not a PostgreSQL backend process`);
  }

  // The next client has no currval of its own, whatever the last one had.
  const fresh = await pgClient(server());
  await expect(fresh.query("select currval('churn_seq')")).rejects.toMatchObject({
    code: "55000",
  });

  // A session that connected last is terminated by pid; the idle ones stay.
  const late = await pgClient(server());
  const ended = new Promise<void>((resolve) => late.on("error", () => resolve()));
  const t = await watcher.query("select pg_terminate_backend($1) as ok", [pidOf(late)]);
  expect(t.rows[0].ok).toBe(true);
  await ended;
  const count = await watcher.query(
    "select count(*)::int as n from pg_stat_activity where backend_type = 'client backend'",
  );
  // The 40 idle ones, the watcher and `fresh`.
  expect(count.rows[0].n).toBe(42);
  for (const c of idle) expect((await c.query("select 1 as one")).rows[0].one).toBe(1);

  await fresh.end();
  await watcher.query("drop sequence churn_seq");
  await watcher.end();
  for (const c of idle) await c.end();
});
