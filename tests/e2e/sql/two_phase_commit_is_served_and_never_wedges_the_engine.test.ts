/**
 * Two-phase commit with `max_prepared_transactions` > 0 (postgres.js's
 * "Prepared transaction" and what a transaction manager does): PREPARE
 * TRANSACTION, pg_prepared_xacts, COMMIT PREPARED and ROLLBACK PREPARED
 * from any session, a prepared transaction kept across an immediate stop
 * and a restart, and PostgreSQL's default 0 refusing PREPARE TRANSACTION.
 * A statement that waits for a lock a prepared transaction holds would
 * hold the one engine with nobody able to release the lock: it ends with
 * 55P03 after lock_timeout (or pgts.engine_wait_timeout), the engine goes
 * to the others meanwhile and after, and the prepared transaction can be
 * committed. node-postgres and postgres.js; the default server (and --adapter subprocess: ENGINE_TEST_ADAPTERS).
 */

import { describe, expect, test } from "bun:test";
import postgres from "postgres";
import { pgClient, sharedServer, sleep, useSqlServers } from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 120_000 });

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer({
      ...(adapter === undefined ? {} : { adapter }),
      settings: { max_prepared_transactions: 4 },
    });

    test("prepare, list, commit and roll back prepared transactions from other sessions", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      await a.query("create table tpc_accounts (id int primary key, v int)");
      await a.query("begin");
      await a.query("insert into tpc_accounts values (1, 10)");
      await a.query("prepare transaction 'tpc-commit'");
      await a.query("begin");
      await a.query("insert into tpc_accounts values (2, 20)");
      await a.query("prepare transaction 'tpc-rollback'");
      // Prepared, so invisible until committed, and listed for everyone.
      expect((await b.query("select count(*)::int as n from tpc_accounts")).rows).toEqual([
        { n: 0 },
      ]);
      expect(
        (await b.query("select gid, owner, database from pg_prepared_xacts order by gid")).rows,
      ).toEqual([
        { gid: "tpc-commit", owner: "postgres", database: "postgres" },
        { gid: "tpc-rollback", owner: "postgres", database: "postgres" },
      ]);
      await b.query("commit prepared 'tpc-commit'");
      await b.query("rollback prepared 'tpc-rollback'");
      expect((await a.query("select id, v from tpc_accounts")).rows).toEqual([{ id: 1, v: 10 }]);
      expect((await a.query("select count(*)::int as n from pg_prepared_xacts")).rows).toEqual([
        { n: 0 },
      ]);
      const gone = await b.query("commit prepared 'tpc-commit'").catch((e) => e);
      expect(gone).toMatchObject({
        code: "42704",
        message: 'prepared transaction with identifier "tpc-commit" does not exist',
      });
      await a.query("drop table tpc_accounts");
      await a.end();
      await b.end();
    });

    test("postgres.js: sql.begin with sql.prepare, then COMMIT PREPARED", async () => {
      const sql = postgres({ host: "127.0.0.1", port: server().port, user: "postgres", max: 2 });
      try {
        await sql`create table tpc_pjs (x int)`;
        await sql.begin(async (tx) => {
          await tx`insert into tpc_pjs values (1)`;
          await tx.prepare("tpc-pjs");
        });
        expect((await sql`select gid from pg_prepared_xacts`).map((r) => r.gid)).toEqual([
          "tpc-pjs",
        ]);
        await sql.unsafe("commit prepared 'tpc-pjs'");
        expect((await sql`select x from tpc_pjs`).map((r) => r.x)).toEqual([1]);
        await sql`drop table tpc_pjs`;
      } finally {
        await sql.end();
      }
    });

    test("a statement waiting for a prepared transaction's lock gets 55P03 and never wedges the others", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      const c = await pgClient(server());
      await a.query("create table tpc_locked (x int)");
      await a.query("insert into tpc_locked values (1)");
      await a.query("begin");
      await a.query("lock table tpc_locked in access exclusive mode");
      await a.query("prepare transaction 'tpc-lock'");

      // lock_timeout bounds the wait.
      await b.query("set lock_timeout = '700ms'");
      const started = Date.now();
      const waited = await b.query("select * from tpc_locked").catch((e) => e);
      expect(waited).toMatchObject({
        code: "55P03",
        message: "canceling statement due to lock timeout",
      });
      expect(waited.detail).toContain("held by a prepared transaction");
      expect(Date.now() - started).toBeGreaterThanOrEqual(600);
      expect(Date.now() - started).toBeLessThan(10_000);

      // Without lock_timeout, pgts.engine_wait_timeout does; others run
      // before and after, and the waiter's session goes on.
      await b.query("reset lock_timeout");
      await b.query("set pgts.engine_wait_timeout = '1500ms'");
      const waiting = b.query("select * from tpc_locked").catch((e) => e);
      await sleep(100);
      const other = await c.query("select 'ran' as v").catch((e) => e);
      expect((await waiting).code).toBe("55P03");
      // It waited for the engine, and got it once the waiter was ended.
      expect(other.rows).toEqual([{ v: "ran" }]);
      expect((await c.query("select 'after' as v")).rows).toEqual([{ v: "after" }]);
      expect((await b.query("select 1 as v")).rows).toEqual([{ v: 1 }]);

      // Inside a transaction block the block is aborted, as after any error.
      await b.query("begin");
      await b.query("set local lock_timeout = '300ms'");
      expect((await b.query("select * from tpc_locked").catch((e) => e)).code).toBe("55P03");
      expect((await b.query("select 1").catch((e) => e)).code).toBe("25P02");
      await b.query("rollback");

      // The prepared transaction is still there to commit; then the table is free.
      await c.query("commit prepared 'tpc-lock'");
      expect((await b.query("select x from tpc_locked")).rows).toEqual([{ x: 1 }]);
      await a.query("drop table tpc_locked");
      for (const x of [a, b, c]) await x.end();
    });

    test("a prepared transaction keeps its transaction-level advisory locks until COMMIT or ROLLBACK PREPARED", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      const tryLock = async (c: typeof a, key: number) =>
        (await c.query("select pg_try_advisory_lock($1) as ok", [key])).rows[0].ok;
      await a.query("begin");
      await a.query("select pg_advisory_xact_lock(7001)");
      await a.query("select pg_advisory_xact_lock_shared(7002)");
      await a.query("prepare transaction 'tpc-adv'");
      // PostgreSQL's lock manager hands them to the prepared transaction:
      // no session has them, its own included (they were let go at PREPARE).
      expect(await tryLock(b, 7001)).toBe(false);
      expect(await tryLock(a, 7001)).toBe(false);
      expect((await b.query("select pg_try_advisory_lock_shared(7002) as ok")).rows[0].ok)
        .toBe(true);
      expect(await tryLock(b, 7002)).toBe(false);
      await b.query("select pg_advisory_unlock_all()");
      const held = await b.query("begin; select pg_advisory_lock(7001)").catch((e) => e);
      expect(held.code).toBe("55P03");
      expect(held.detail).toBe('The lock is held by prepared transaction "tpc-adv".');
      await b.query("rollback");
      // A lone pg_advisory_lock waits for it, and gets it once another
      // session finishes the prepared transaction.
      const waiting = b.query("select pg_advisory_lock(7001)");
      await sleep(200);
      await a.query("rollback prepared 'tpc-adv'");
      await waiting;
      expect(await tryLock(a, 7001)).toBe(false);
      await b.query("select pg_advisory_unlock_all()");
      expect(await tryLock(a, 7001)).toBe(true);
      expect(await tryLock(a, 7002)).toBe(true);
      await a.query("select pg_advisory_unlock_all()");

      // Both levels on one key: PREPARE fails and the transaction is gone (lock.c).
      await a.query("begin");
      await a.query("select pg_advisory_lock(7003)");
      await a.query("select pg_advisory_xact_lock(7003)");
      const both = await a.query("prepare transaction 'tpc-both'").catch((e) => e);
      expect([both.code, both.message]).toEqual([
        "0A000",
        "cannot PREPARE while holding both session-level and transaction-level locks on the same object",
      ]);
      expect((await a.query("select count(*)::int as n from pg_prepared_xacts")).rows).toEqual([
        { n: 0 },
      ]);
      // The session-level hold stays; the transaction's went with it.
      expect(await tryLock(b, 7003)).toBe(false);
      await a.query("select pg_advisory_unlock(7003)");
      expect(await tryLock(b, 7003)).toBe(true);
      await b.query("select pg_advisory_unlock_all()");
      // In different modes too (prepared_xacts.sql's case).
      await a.query("begin");
      await a.query("select pg_advisory_lock(7006)");
      await a.query("select pg_advisory_xact_lock_shared(7006)");
      expect((await a.query("prepare transaction 'tpc-modes'").catch((e) => e)).code).toBe(
        "0A000",
      );
      await a.query("select pg_advisory_unlock_all()");

      // A COMMIT PREPARED that fails lets nothing go.
      await a.query("begin");
      await a.query("select pg_advisory_xact_lock(7004)");
      await a.query("prepare transaction 'tpc-adv2'");
      expect((await b.query("commit prepared 'tpc-nope'").catch((e) => e)).code).toBe("42704");
      expect(await tryLock(b, 7004)).toBe(false);
      await b.query("commit prepared 'tpc-adv2'");
      expect(await tryLock(b, 7004)).toBe(true);
      await b.query("select pg_advisory_unlock_all()");
      await a.end();
      await b.end();
    });

    test("a prepared transaction outlives an immediate stop; its waiter is still bounded after the restart", async () => {
      const a = await pgClient(server());
      await a.query("create table tpc_restart (x int)");
      await a.query("begin");
      await a.query("insert into tpc_restart values (42)");
      await a.query("lock table tpc_restart in access exclusive mode");
      await a.query("prepare transaction 'tpc-restart'");
      await a.end();
      await server().stop("immediate");
      await server().start({ settings: { max_prepared_transactions: 4 } });
      const b = await pgClient(server());
      expect((await b.query("select gid from pg_prepared_xacts")).rows).toEqual([
        { gid: "tpc-restart" },
      ]);
      await b.query("set lock_timeout = '500ms'");
      expect((await b.query("select * from tpc_restart").catch((e) => e)).code).toBe("55P03");
      await b.query("commit prepared 'tpc-restart'");
      expect((await b.query("select x from tpc_restart")).rows).toEqual([{ x: 42 }]);
      await b.query("drop table tpc_restart");
      await b.end();
    });
  });
}

describe("max_prepared_transactions = 0 (the default)", () => {
  const server = sharedServer();

  test("PREPARE TRANSACTION is refused as PostgreSQL refuses it and the session goes on", async () => {
    const a = await pgClient(server());
    expect((await a.query("show max_prepared_transactions")).rows).toEqual([
      { max_prepared_transactions: "0" },
    ]);
    await a.query("begin");
    const e = await a.query("prepare transaction 'nope'").catch((x) => x);
    expect(e).toMatchObject({ code: "55000", message: "prepared transactions are disabled" });
    expect((await a.query("select 1 as v")).rows).toEqual([{ v: 1 }]);
    // With both levels of one advisory lock too: the same refusal first.
    await a.query("begin");
    await a.query("select pg_advisory_lock(7005), pg_advisory_xact_lock(7005)");
    const both = await a.query("prepare transaction 'nope'").catch((x) => x);
    expect(both).toMatchObject({ code: "55000", message: "prepared transactions are disabled" });
    await a.query("select pg_advisory_unlock_all()");
    await a.end();
  });
});
