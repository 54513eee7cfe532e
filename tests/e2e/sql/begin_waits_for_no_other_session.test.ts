/**
 * BEGIN takes no lock in PostgreSQL and waits for no other session. psycopg
 * and psycopg2 begin a transaction before a connection's first statement
 * (psycopg with Parse/Bind/Execute, psycopg2 with a Query), so an
 * administrator's `SELECT pg_terminate_backend(pid)` from such a
 * connection ended a runaway statement at once there; here its BEGIN
 * waited for the engine the runaway statement held, and nothing could stop
 * it (deferredbegin.ts). A lone BEGIN is answered at once, the block's statements answered without the
 * engine are answered in it, an error aborts it (25P02 after), and a COMMIT
 * or ROLLBACK with nothing run ends it; the first statement that needs the
 * engine runs the BEGIN first, so the block is the engine's from then on,
 * as before. The same when the engine is free at the BEGIN: a block that
 * only signals others never holds it. node-postgres, both protocols.
 */

import { describe, expect, test } from "bun:test";
import type pg from "pg";
import { pgClient, sharedServer, sleep, useSqlServers } from "../../helpers/pgts-sql.ts";

useSqlServers();

const pidOf = (c: pg.Client) => (c as unknown as { processID: number }).processID;

/** `c` runs pg_sleep(`s`) (holding the engine); its outcome, once it ends. */
function sleeping(c: pg.Client, s: number): Promise<string> {
  return c.query(`select pg_sleep(${s})`).then(() => "slept", (e) => e.code as string);
}

describe("default server", () => {
  const server = sharedServer();

  for (const mode of ["simple", "extended"] as const) {
    test(`a BEGIN (${mode} protocol) while another session runs, then pg_terminate_backend of it, at once`, async () => {
      const runaway = await pgClient(server());
      const admin = await pgClient(server());
      const outcome = sleeping(runaway, 30);
      await sleep(200);
      const started = performance.now();
      await admin.query({
        text: "BEGIN",
        ...(mode === "extended" ? { queryMode: "extended" } : {}),
      });
      const r = await admin.query("select pg_terminate_backend($1) as ended", [pidOf(runaway)]);
      expect(r.rows).toEqual([{ ended: true }]);
      await admin.query({
        text: "COMMIT",
        ...(mode === "extended" ? { queryMode: "extended" } : {}),
      });
      expect(performance.now() - started).toBeLessThan(5_000);
      expect(await outcome).toBe("57P01");
      // The engine's from the first statement that needs it, as before.
      expect((await admin.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
      await admin.end();
    });
  }

  test("a block that only signals others holds no engine, though the engine was free at its BEGIN", async () => {
    // psycopg2's test_external_close: its control connection, in its
    // transaction, ends one session after another, and each new victim's
    // first statement waited for the control's block, which the engine hold
    // timeout then ended (25P03).
    const admin = await pgClient(server());
    const other = await pgClient(server());
    await admin.query("begin");
    for (let i = 0; i < 2; i++) {
      const victim = await pgClient(server());
      victim.on("error", () => {});
      const started = performance.now();
      expect((await victim.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
      expect(performance.now() - started).toBeLessThan(1_000);
      const r = await admin.query("select pg_terminate_backend($1) as ended", [pidOf(victim)]);
      expect(r.rows).toEqual([{ ended: true }]);
    }
    const started = performance.now();
    expect((await other.query("select 2 as two")).rows).toEqual([{ two: 2 }]);
    expect(performance.now() - started).toBeLessThan(1_000);
    // The block is still the admin's, and takes the engine when it needs it.
    expect((await admin.query("select 3 as three")).rows).toEqual([{ three: 3 }]);
    expect((await admin.query("commit")).command).toBe("COMMIT");
    await other.end();
    await admin.end();
  });

  test("a block begun while the engine was held is a block: rolled back, aborted by an error, committed", async () => {
    const holder = await pgClient(server());
    const c = await pgClient(server());
    await c.query("create table deferred_begin (x int)");
    // Rolled back: the insert ran in the block (its BEGIN ran first).
    let held = sleeping(holder, 0.3);
    await sleep(50);
    await c.query("begin");
    await c.query("insert into deferred_begin values (1)");
    await c.query("rollback");
    await held;
    expect((await c.query("select count(*)::int as n from deferred_begin")).rows).toEqual([{
      n: 0,
    }]);
    // An error answered without the engine aborts the block (42501: a role
    // may not end a superuser's session), and then everything is 25P02.
    await c.query("create role deferred_begin_r login");
    const r = await pgClient(server(), { user: "deferred_begin_r" });
    held = sleeping(holder, 0.5);
    await sleep(50);
    await r.query("begin");
    const refused = await r.query("select pg_terminate_backend($1)", [pidOf(holder)]).catch((e) =>
      e
    );
    expect(refused.code).toBe("42501");
    const aborted = await r.query("select 1").catch((e) => e);
    expect(aborted.code).toBe("25P02");
    // COMMIT of an aborted block says ROLLBACK, as PostgreSQL's does.
    expect((await r.query("commit")).command).toBe("ROLLBACK");
    expect(await held).toBe("slept");
    // Its transaction starts at the BEGIN, as now() says in PostgreSQL,
    // though it reached the engine only after the holder's 300 ms.
    held = sleeping(holder, 0.3);
    await sleep(50);
    await c.query("begin");
    await held;
    const started = await c.query(
      "select statement_timestamp() - now() >= interval '200 milliseconds' as at_begin",
    );
    expect(started.rows).toEqual([{ at_begin: true }]);
    await c.query("commit");
    // Committed, and a COMMIT with nothing run says COMMIT.
    held = sleeping(holder, 0.3);
    await sleep(50);
    await c.query("begin");
    expect((await c.query("commit")).command).toBe("COMMIT");
    await c.query("begin");
    await c.query("insert into deferred_begin values (2)");
    await c.query("commit");
    await held;
    expect((await c.query("select x from deferred_begin")).rows).toEqual([{ x: 2 }]);
    await r.end();
    await c.query("drop table deferred_begin");
    await c.query("drop role deferred_begin_r");
    await c.end();
    await holder.end();
  });
});
