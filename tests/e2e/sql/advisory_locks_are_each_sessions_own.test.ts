/**
 * Advisory locks are the session's own, as in PostgreSQL, though every
 * session runs on one PGlite backend: a key one session holds is not free
 * for another (pg_try_advisory_lock answers false), holds are re-entrant,
 * shared holds share, transaction-level holds end with the transaction,
 * a session's holds end with the session and its DISCARD ALL. A
 * statement that calls pg_advisory_lock, sent alone outside a transaction
 * block, waits for the key, as migration tools expect (Prisma Migrate,
 * node-pg-migrate, Kysely), until it gets it or a cancel, lock_timeout,
 * statement_timeout or deadlock ends the wait; inside a block, where one
 * backend cannot wait, it fails at once with 55P03.
 * Under the default server and --adapter inproc.
 */

import { describe, expect, test } from "bun:test";
import {
  cstr,
  message,
  pgClient,
  RawConnection,
  sharedServer,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS, waitFor } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

type Pg = Awaited<ReturnType<typeof pgClient>>;

const one = async (c: Pg, sql: string, values?: unknown[]) =>
  Object.values((await c.query(sql, values)).rows[0] ?? {})[0];

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("a key one session holds is not free for another until it is unlocked", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      expect(await one(a, "select pg_try_advisory_lock(42)")).toBe(true);
      expect(await one(b, "select pg_try_advisory_lock(42)")).toBe(false);
      // pg_locks lists it as PostgreSQL does: the bigint key's halves in classid and objid.
      const listed = await b.query(
        "select classid::int8, objid::int8, objsubid, pid, mode, granted from pg_locks" +
          " where locktype = 'advisory' and database = (select oid from pg_database" +
          " where datname = current_database())",
      );
      expect(listed.rows).toEqual([
        {
          classid: "0",
          objid: "42",
          objsubid: 1,
          pid: a.processID,
          mode: "ExclusiveLock",
          granted: true,
        },
      ]);
      // Inside a transaction block the wait cannot be: 55P03 at once.
      await b.query("begin");
      const blocked = await b.query("select pg_advisory_lock(42)").catch((e) => e);
      expect(blocked.code).toBe("55P03");
      expect(blocked.detail).toBe(`The lock is held by process ${a.processID}.`);
      await b.query("rollback");
      // Re-entrant for the holder: two more holds, three unlocks.
      expect(await one(a, "select pg_try_advisory_lock($1)", [42])).toBe(true);
      await a.query("select pg_advisory_lock(42)");
      for (let i = 0; i < 3; i++) expect(await one(a, "select pg_advisory_unlock(42)")).toBe(true);
      const notices: string[] = [];
      a.on("notice", (n) => notices.push(n.message ?? ""));
      expect(await one(a, "select pg_advisory_unlock(42)")).toBe(false);
      await waitFor("the WARNING", () => notices.length > 0);
      expect(notices).toEqual(["you don't own a lock of type ExclusiveLock"]);
      expect(await one(b, "select pg_try_advisory_lock(42)")).toBe(true);
      // The two-int4 keys are keys of their own.
      expect(await one(a, "select pg_try_advisory_lock(0, 42)")).toBe(true);
      expect(await one(b, "select pg_try_advisory_lock(0, 42)")).toBe(false);
      await a.query("select pg_advisory_unlock_all()");
      expect(await one(b, "select pg_try_advisory_lock(0, 42)")).toBe(true);
      await a.end();
      await b.end();
    });

    test("the lock table is bounded as PostgreSQL's: 53200 past max_locks_per_transaction × max_connections keys", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      // 64 × 100 keys by default: a million took a gigabyte of the server's memory.
      const full = await a.query(
        "select count(pg_advisory_lock(g)) from generate_series(1, 100000) g",
      ).catch((e) => e);
      expect([full.code, full.message, full.hint]).toEqual([
        "53200",
        "out of shared memory",
        'You might need to increase "max_locks_per_transaction".',
      ]);
      // As in PostgreSQL, the session-level holds taken before the error stay.
      expect(await one(b, "select pg_try_advisory_lock(1)")).toBe(false);
      expect((await b.query("select pg_try_advisory_lock(100001)").catch((e) => e)).code)
        .toBe("53200");
      await a.query("select pg_advisory_unlock_all()");
      expect(await one(b, "select pg_try_advisory_lock(100001)")).toBe(true);
      await a.end();
      await b.end();
    });

    test("a lone pg_advisory_lock waits for the key, as in PostgreSQL, while the holder goes on", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      const c = await pgClient(server());
      await a.query("select pg_advisory_lock(42)");
      const got: Pg[] = [];
      const waiting = [
        b.query("select pg_advisory_lock(42)").then(() => got.push(b)),
        // With a parameter, as postgres.js and Prisma's drivers send it.
        c.query("select pg_advisory_lock($1)", [42]).then(() => got.push(c)),
      ];
      await Bun.sleep(300);
      expect(got).toEqual([]);
      // The holder is not held up by the waiters.
      expect(await one(a, "select 40 + 2")).toBe(42);
      expect(await one(a, "select pg_advisory_unlock(42)")).toBe(true);
      // One waiter gets the key; the other waits on until it lets it go.
      await Promise.race(waiting);
      await Bun.sleep(100);
      expect(got.length).toBe(1);
      expect(await one(got[0]!, "select pg_advisory_unlock(42)")).toBe(true);
      await Promise.all(waiting);
      expect(await one(a, "select pg_try_advisory_lock_shared(42)")).toBe(false);
      for (const x of [a, b, c]) await x.end();
    });

    test("any one statement that calls pg_advisory_lock waits, and takes each of its keys once", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      const c = await pgClient(server());
      await a.query("select pg_advisory_lock(42)");
      const got: Pg[] = [];
      const waiting = [
        // Kysely's migrator: lock_timeout set for the statement in a CTE.
        b.query(
          "with set_timeout as (select set_config('lock_timeout', '3600000', true) as config_val)" +
            " select pg_advisory_lock(42) from set_timeout",
        ).then(() => got.push(b)),
        // Two keys, the first free: it is not taken twice by the tries.
        c.query("select pg_advisory_lock(7), pg_advisory_lock(42)").then(() => got.push(c)),
      ];
      await Bun.sleep(300);
      expect(got).toEqual([]);
      // With another statement before it, the conflict is the answer at once.
      const d = await pgClient(server());
      const beside = await d.query("select 1; select pg_advisory_lock(42)").catch((e) => e);
      expect(beside.code).toBe("55P03");
      await d.end();
      expect(await one(a, "select pg_advisory_unlock(42)")).toBe(true);
      await Promise.race(waiting);
      expect(got).toEqual([b]);
      expect(await one(b, "select pg_advisory_unlock(42)")).toBe(true);
      await Promise.all(waiting);
      expect(got).toEqual([b, c]);
      expect(await one(c, "select pg_advisory_unlock(42)")).toBe(true);
      const notices: string[] = [];
      c.on("notice", (n) => notices.push(n.message ?? ""));
      expect(await one(c, "select pg_advisory_unlock(7)")).toBe(true);
      expect(await one(c, "select pg_advisory_unlock(7)")).toBe(false);
      await waitFor("the WARNING", () => notices.length > 0);
      for (const x of [a, b, c]) await x.end();
    });

    test("waiters get the key in the order they came; a shared one does not overtake an exclusive one", async () => {
      const [a, b, c, d] = [
        await pgClient(server()),
        await pgClient(server()),
        await pgClient(server()),
        await pgClient(server()),
      ];
      await a.query("select pg_advisory_lock(43)");
      const got: string[] = [];
      const bWaits = b.query("select pg_advisory_lock(43)").then(() => got.push("b"));
      await Bun.sleep(100);
      const cWaits = c.query("select pg_advisory_lock_shared(43)").then(() => got.push("c"));
      await Bun.sleep(100);
      const dWaits = d.query("select pg_advisory_lock(43)").then(() => got.push("d"));
      await Bun.sleep(100);
      await a.query("select pg_advisory_unlock(43)");
      await bWaits;
      await Bun.sleep(150);
      expect(got).toEqual(["b"]);
      await b.query("select pg_advisory_unlock(43)");
      await cWaits;
      await Bun.sleep(150);
      expect(got).toEqual(["b", "c"]);
      await c.query("select pg_advisory_unlock_shared(43)");
      await dWaits;
      expect(got).toEqual(["b", "c", "d"]);
      for (const x of [a, b, c, d]) await x.end();
    });

    test("pg_try_advisory_lock fails behind a waiter whose mode conflicts with it, unless it holds that mode", async () => {
      // PostgreSQL 15's answers for the same steps.
      const [a, b, c] = [
        await pgClient(server()),
        await pgClient(server()),
        await pgClient(server()),
      ];
      await a.query("select pg_advisory_lock_shared(44)");
      const bWaits = b.query("select pg_advisory_lock(44)");
      await Bun.sleep(200);
      expect(await one(c, "select pg_try_advisory_lock_shared(44)")).toBe(false);
      expect(await one(a, "select pg_try_advisory_lock_shared(44)")).toBe(true);
      expect(await one(a, "select pg_try_advisory_lock(44)")).toBe(false);
      await a.query("select pg_advisory_unlock_all()");
      await bWaits;
      expect(await one(c, "select pg_try_advisory_lock_shared(44)")).toBe(false);
      for (const x of [a, b, c]) await x.end();
    });

    test("a cancel, lock_timeout, statement_timeout or a deadlock ends the wait with PostgreSQL's error", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      const c = await pgClient(server());
      await a.query("select pg_advisory_lock(1)");
      await b.query("set lock_timeout = '150ms'");
      let e = await b.query("select pg_advisory_lock(1)").catch((x) => x);
      expect([e.code, e.message]).toEqual(["55P03", "canceling statement due to lock timeout"]);
      await b.query("set lock_timeout = 0; set statement_timeout = '150ms'");
      e = await b.query("select pg_advisory_lock(1)").catch((x) => x);
      expect([e.code, e.message]).toEqual([
        "57014",
        "canceling statement due to statement timeout",
      ]);
      await b.query("set statement_timeout = 0");
      const cancelled = b.query("select pg_advisory_lock(1)").catch((x) => x);
      await Bun.sleep(200);
      expect(await one(c, "select pg_cancel_backend($1)", [b.processID])).toBe(true);
      e = await cancelled;
      expect([e.code, e.message]).toEqual(["57014", "canceling statement due to user request"]);
      // Deadlock: a holds 1 and waits for 2, b holds 2 and waits for 1.
      await b.query("select pg_advisory_lock(2)");
      const ended = new Map<Pg, unknown>();
      const aWaits = a.query("select pg_advisory_lock(2)").then(() => "a", (x) => x);
      const bWaits = b.query("select pg_advisory_lock(1)").then(() => "b", (x) => x);
      void aWaits.then((r) => ended.set(a, r));
      void bWaits.then((r) => ended.set(b, r));
      const first = await Promise.race([aWaits, bWaits]);
      expect(first.code).toBe("40P01");
      expect(first.message).toBe("deadlock detected");
      // The other gets its key once the victim lets its own go.
      await Bun.sleep(10);
      const victim = ended.get(a) === first ? a : b;
      expect(ended.size).toBe(1);
      await victim.query("select pg_advisory_unlock_all()");
      expect(await (victim === a ? bWaits : aWaits)).toBe(victim === a ? "b" : "a");
      for (const x of [a, b, c]) await x.end();
    });

    test("a waiter that leaves holds nothing", async () => {
      const a = await pgClient(server());
      await a.query("select pg_advisory_lock(5)");
      const b = await RawConnection.open(server());
      await b.startup();
      b.send(message("Q", cstr("select pg_advisory_lock(5)")));
      await Bun.sleep(150);
      b.close();
      await Bun.sleep(150);
      expect(await one(a, "select pg_advisory_unlock(5)")).toBe(true);
      const c = await pgClient(server());
      expect(await one(c, "select pg_try_advisory_lock(5)")).toBe(true);
      await a.end();
      await c.end();
    });

    test("shared holds share; an exclusive one waits for none of them", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      const c = await pgClient(server());
      expect(await one(a, "select pg_try_advisory_lock_shared(7)")).toBe(true);
      expect(await one(b, "select pg_try_advisory_lock_shared(7)")).toBe(true);
      expect(await one(c, "select pg_try_advisory_lock(7)")).toBe(false);
      expect(await one(a, "select pg_advisory_unlock_shared(7)")).toBe(true);
      expect(await one(b, "select pg_advisory_unlock_shared(7)")).toBe(true);
      expect(await one(c, "select pg_try_advisory_lock(7)")).toBe(true);
      expect(await one(a, "select pg_try_advisory_lock_shared(7)")).toBe(false);
      for (const s of [a, b, c]) await s.end();
    });

    test("transaction-level holds end with the transaction, session holds with the session", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      expect(await one(a, "select pg_try_advisory_xact_lock(9)")).toBe(true);
      expect(await one(b, "select pg_try_advisory_lock(9)")).toBe(true); // a's ended
      await b.query("select pg_advisory_unlock(9)");
      await a.query("BEGIN");
      await a.query("select pg_advisory_xact_lock(9)");
      await a.query("COMMIT");
      expect(await one(b, "select pg_try_advisory_lock(9)")).toBe(true);
      await b.query("select pg_advisory_unlock_all()");

      const gone = await pgClient(server());
      expect(await one(gone, "select pg_try_advisory_lock(11)")).toBe(true);
      expect(await one(b, "select pg_try_advisory_lock(11)")).toBe(false);
      await gone.end();
      await waitFor(
        "the ended session's lock to go",
        () => one(b, "select pg_try_advisory_lock(11)").then((v) => v === true),
      );

      // DISCARD ALL lets the caller's session holds go (PostgreSQL runs
      // pg_advisory_unlock_all()), and only the caller's.
      expect(await one(a, "select pg_try_advisory_lock(12)")).toBe(true);
      expect(await one(a, "select pg_try_advisory_lock_shared(13)")).toBe(true);
      await a.query("DISCARD ALL");
      expect(await one(b, "select pg_try_advisory_lock(12)")).toBe(true);
      expect(await one(b, "select pg_try_advisory_lock(13)")).toBe(true);
      await b.query("select pg_advisory_lock(14)");
      await a.query("DISCARD ALL");
      expect(await one(a, "select pg_try_advisory_lock(14)")).toBe(false);
      await b.query("select pg_advisory_unlock_all()");
      await a.end();
      await b.end();
    });
  });
}
