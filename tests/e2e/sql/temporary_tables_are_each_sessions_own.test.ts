/**
 * Temporary tables, views and sequences are the session's own, as in
 * PostgreSQL, though every session runs on one PGlite backend: two sessions
 * each have their own `t`, a third has none, a session's temporary objects
 * go when it ends (and their names are free again), ON COMMIT DROP and
 * DELETE ROWS act per transaction, DISCARD TEMP and DISCARD ALL empty only
 * the caller's schema, and a restart drops what a killed server left.
 * node-postgres and psql, under the default server (and --adapter subprocess: ENGINE_TEST_ADAPTERS).
 */

import { describe, expect, test } from "bun:test";
import { pgClient, psql, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS, waitFor } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

type Pg = Awaited<ReturnType<typeof pgClient>>;

const one = async (c: Pg, sql: string) => Object.values((await c.query(sql)).rows[0] ?? {})[0];
const codeOf = (c: Pg, sql: string) =>
  c.query(sql).then(() => "ok", (e: { code?: string }) => e.code ?? String(e));

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("two sessions each have their own temporary table of one name; a third has none", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      const notices: string[] = [];
      a.on("notice", (n) => notices.push(n.message ?? ""));
      await a.query("create temp table t (x int primary key, s text)");
      await a.query("insert into t values (1, repeat('a', 5000))");
      await b.query("create temp table t (x int primary key, s text)");
      await b.query("insert into t values (2, 'b'), (3, 'b')");
      expect((await a.query("select x from t")).rows).toEqual([{ x: 1 }]);
      expect((await b.query("select x from t order by x")).rows).toEqual([{ x: 2 }, { x: 3 }]);
      expect((await a.query("select x, length(s) as n from pg_temp.t")).rows).toEqual([
        { x: 1, n: 5000 },
      ]);
      expect(await one(a, "select count(*)::int from t")).toBe(1);
      const c = await pgClient(server());
      expect(await codeOf(c, "select * from t")).toBe("42P01");
      expect(await codeOf(c, "select * from pg_temp.t")).toBe("42P01");
      // Each has its own schema; the other's is another session's.
      const nspA = await one(a, "select pg_my_temp_schema()::regnamespace::text");
      const nspB = await one(b, "select pg_my_temp_schema()::regnamespace::text");
      expect(nspA).not.toBe(nspB);
      expect(String(nspA)).toMatch(/^pg_temp_/);
      expect(await one(a, `select pg_is_other_temp_schema('${nspB}'::regnamespace)`)).toBe(true);
      expect(await codeOf(a, `select * from ${nspB}.t`)).toBe("0A000");
      expect(notices).toEqual([]);
      // A temporary table made where no statement text shows it (a DO block).
      await c.query("do $$ begin create temp table t (y int); insert into t values (7); end $$");
      expect(await one(c, "select y from t")).toBe(7);
      expect(await one(a, "select x from t")).toBe(1);
      for (const s of [a, b, c]) await s.end();
    });

    test("a function's cached plan reads the calling session's own temporary table", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      await a.query("create table if not exists shadowed (who text)");
      await a.query("truncate shadowed; insert into shadowed values ('public')");
      await a.query(
        "create or replace function who_is_there() returns text language plpgsql" +
          " as $$ begin return (select who from shadowed); end $$",
      );
      await a.query("create temp table other (x int)");
      expect(await one(a, "select who_is_there()")).toBe("public");
      await b.query("create temp table shadowed (who text)");
      await b.query("insert into shadowed values ('b')");
      expect(await one(b, "select who_is_there()")).toBe("b");
      await a.query("create temp table shadowed (who text)");
      await a.query("insert into shadowed values ('a')");
      expect(await one(a, "select who_is_there()")).toBe("a");
      expect(await one(b, "select who_is_there()")).toBe("b");
      expect(await one(a, "select who_is_there()")).toBe("a");
      // With a session that has none running in between.
      const c = await pgClient(server());
      expect(await one(a, "select who_is_there()")).toBe("a");
      expect(await one(c, "select 1")).toBe(1);
      expect(await one(b, "select who_is_there()")).toBe("b");
      expect(await one(c, "select who_is_there()")).toBe("public");
      for (const s of [a, b, c]) await s.end();
    });

    test("a session's temporary objects go when it ends, and the name is free for others", async () => {
      const a = await pgClient(server());
      await a.query("create temp table gone (x int)");
      await a.query("create temp sequence gone_seq");
      const nsp = await one(a, "select pg_my_temp_schema()::regnamespace::text");
      // A session with its own, which ran last when a's are dropped, keeps them.
      const stays = await pgClient(server());
      await stays.query("create temp table stays (x int)");
      await stays.query("insert into stays values (1)");
      await a.end();
      const b = await pgClient(server());
      await waitFor(
        "the ended session's temporary schema to be dropped",
        async () =>
          (await one(b, `select count(*)::int from pg_namespace where nspname = '${nsp}'`)) === 0,
      );
      expect(await one(b, "select count(*)::int from pg_class where relname like 'gone%'")).toBe(0);
      await b.query("create temp table gone (x int)");
      await b.query("insert into gone values (1)");
      expect(await one(b, "select count(*)::int from gone")).toBe(1);
      expect(await one(stays, "select count(*)::int from stays")).toBe(1);
      await b.end();
      await stays.end();
    });

    test("ON COMMIT DROP and ON COMMIT DELETE ROWS act on the session's own transactions", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      await a.query("begin");
      await a.query("create temp table d (x int) on commit drop");
      await a.query("insert into d values (1)");
      expect(await one(a, "select count(*)::int from d")).toBe(1);
      await a.query("commit");
      expect(await codeOf(a, "select * from d")).toBe("42P01");

      await a.query("create temp table r (x int) on commit delete rows");
      await b.query("create temp table r (x int) on commit delete rows");
      await a.query("begin");
      await a.query("insert into r values (1), (2)");
      expect(await one(a, "select count(*)::int from r")).toBe(2);
      await a.query("commit");
      expect(await one(a, "select count(*)::int from r")).toBe(0);
      // b's own table still works after a's commit emptied every such table.
      await b.query("begin");
      await b.query("insert into r values (5)");
      expect(await one(b, "select count(*)::int from r")).toBe(1);
      await b.query("commit");
      expect(await one(b, "select count(*)::int from r")).toBe(0);
      await a.end();
      await b.end();
    });

    test("temporary views and sequences are the session's own", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      await a.query("create temp sequence s");
      await a.query("create temp view v as select 'a' as who");
      expect(await one(a, "select nextval('s')::int")).toBe(1);
      expect(await codeOf(b, "select nextval('s')")).toBe("42P01");
      expect(await codeOf(b, "select * from v")).toBe("42P01");
      await b.query("create temp sequence s start 100");
      await b.query("create temp view v as select 'b' as who");
      expect(await one(b, "select nextval('s')::int")).toBe(100);
      expect(await one(a, "select nextval('s')::int")).toBe(2);
      expect(await one(a, "select who from v")).toBe("a");
      expect(await one(b, "select who from v")).toBe("b");
      await a.end();
      await b.end();
    });

    test("DISCARD TEMP and DISCARD ALL empty only the caller's temporary schema", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      await a.query("create temp table k (x int)");
      await b.query("create temp table k (x int)");
      await b.query("insert into k values (1)");
      await a.query("discard temp");
      expect(await codeOf(a, "select * from k")).toBe("42P01");
      expect(await one(b, "select count(*)::int from k")).toBe(1);
      await a.query("create temp table k (x int)");
      await a.query("discard all");
      expect(await codeOf(a, "select * from k")).toBe("42P01");
      expect(await one(b, "select count(*)::int from k")).toBe(1);
      // The schema stays the session's, and takes new objects.
      await a.query("create temp table k (x int)");
      expect(await one(a, "select count(*)::int from k")).toBe(0);
      await a.end();
      await b.end();
    });

    test("an ordinary role's temporary table is its own", async () => {
      const admin = await pgClient(server());
      await admin.query(
        "do $$ begin if not exists (select from pg_roles where rolname = 'temp_user')" +
          " then create role temp_user login; end if; end $$",
      );
      const u = await pgClient(server(), { user: "temp_user" });
      await u.query("create temp table mine (x int)");
      await u.query("insert into mine values (1)");
      await admin.query("create temp table mine (x int)");
      expect(await one(u, "select count(*)::int from mine")).toBe(1);
      expect(await one(admin, "select count(*)::int from mine")).toBe(0);
      expect(await one(u, "select current_user")).toBe("temp_user");
      await u.query("discard all");
      expect(await codeOf(u, "select * from mine")).toBe("42P01");
      await u.end();
      await admin.end();
    });

    if (adapter === undefined) {
      test("more than twenty sessions in turn each make temporary tables", async () => {
        // PostgreSQL registers an exit callback per temporary schema it
        // makes, and a backend has twenty slots.
        for (let i = 0; i < 24; i++) {
          const c = await pgClient(server());
          await c.query("create temp table turn (x int)");
          await c.query(`insert into turn values (${i})`);
          expect(await one(c, "select x from turn")).toBe(i);
          await c.end();
        }
      });
    }

    test("psql: a temporary table lasts for its session only", async () => {
      const first = await psql(server(), [
        "-c",
        "create temp table p (x int)",
        "-c",
        "insert into p values (41)",
        "-c",
        "select x + 1 from pg_temp.p",
      ]);
      expect(first.err).toBe("");
      expect(first.out.trim().split("\n").pop()).toBe("42");
      await waitFor("psql's temporary table to go", async () => {
        const r = await psql(server(), ["-c", "select count(*) from pg_class where relname = 'p'"]);
        return r.out.trim() === "0";
      });
      const second = await psql(server(), ["-c", "select * from p"]);
      expect(second.code).not.toBe(0);
      expect(second.err).toContain('relation "p" does not exist');
    });

    if (adapter === undefined) {
      test("a restart drops the temporary schemas a killed server left", async () => {
        const a = await pgClient(server());
        await a.query("create temp table left_behind (x int)");
        await a.query("insert into left_behind values (1)");
        const b = await pgClient(server());
        const count = "select count(*)::int from pg_namespace where nspname ~ '^pg_(toast_)?temp_'";
        expect(await one(b, count)).toBeGreaterThanOrEqual(2);
        await server().stop("immediate");
        await server().start();
        const c = await pgClient(server());
        expect(await one(c, count)).toBe(0);
        await c.query("create temp table left_behind (x int)");
        expect(await one(c, "select count(*)::int from left_behind")).toBe(0);
      });
    }
  });
}
