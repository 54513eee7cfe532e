/**
 * Advisory locks are the session's own, as in PostgreSQL, though every
 * session runs on one PGlite backend: a key one session holds is not free
 * for another (pg_try_advisory_lock answers false), holds are re-entrant,
 * shared holds share, transaction-level holds end with the transaction,
 * and a session's holds end with the session. What one backend cannot do
 * is wait: a blocking pg_advisory_lock on a key another session holds
 * fails at once with 55P03. Under the default server and --adapter inproc.
 */

import { describe, expect, test } from "bun:test";
import { pgClient, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";
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
      const blocked = await b.query("select pg_advisory_lock(42)").catch((e) => e);
      expect(blocked.code).toBe("55P03");
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
      await a.end();
      await b.end();
    });
  });
}
