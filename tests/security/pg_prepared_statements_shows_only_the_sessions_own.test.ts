/**
 * pg_prepared_statements shows a session its own prepared statements only,
 * under the names it gave them, as in PostgreSQL — though all sessions'
 * statements live in one PGlite backend (there under per-session names).
 * Another session's statement text never shows, nor does the builtin that
 * lists every session's answer a role that is not a superuser. A name past
 * 63 bytes is its first 63, as PostgreSQL's scanner keeps it, in PREPARE,
 * EXECUTE, a WITH HOLD cursor's statements, LISTEN and the error texts,
 * with PostgreSQL's NOTICE 42622 (unless client_min_messages is above it).
 * Under the default server and --adapter inproc.
 */

import { describe, expect, test } from "bun:test";
import { pgClient, sharedServer, useSqlServers, waitFor } from "../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("each session sees its own statements, by its own names, and no other's", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      // A protocol-level named statement (Parse) and an SQL PREPARE each.
      await a.query({ name: "same", text: "select 'secret of a' as v" });
      await b.query({ name: "same", text: "select 'secret of b' as v" });
      await a.query("PREPARE mine AS select 1");
      const list = async (c: typeof a) =>
        (await c.query(
          "select name, statement from pg_prepared_statements order by name",
        )).rows;
      expect(await list(a)).toEqual([
        { name: "mine", statement: "PREPARE mine AS select 1" },
        { name: "same", statement: "select 'secret of a' as v" },
      ]);
      expect(await list(b)).toEqual([{ name: "same", statement: "select 'secret of b' as v" }]);
      const c = await pgClient(server());
      expect(await list(c)).toEqual([]);
      // The query string as the client sent it, every statement of it, as PostgreSQL shows it;
      // a PREPARE of the same name that failed does not replace it.
      const sent = 'PREPARE S AS select 2; prepare "Q" as select 3';
      await c.query(sent);
      expect((await c.query("prepare s as select 4").catch((e) => e)).code).toBe("42P05");
      expect(await list(c)).toEqual([
        { name: "Q", statement: sent },
        { name: "s", statement: sent },
      ]);
      for (const s of [a, b, c]) await s.end();
    });

    test("names of 57 to 63 bytes stay apart, as PostgreSQL keeps them, though the engine's carry a prefix", async () => {
      const a = await pgClient(server());
      const base = "n".repeat(58);
      // Protocol-level named statements and SQL PREPARE, and a WITH HOLD cursor.
      await a.query({ name: `${base}p1`, text: "select 'one' as v" });
      await a.query({ name: `${base}p2`, text: "select 'two' as v" });
      await a.query(`prepare ${base}s1 as select 'three' as v`);
      await a.query(`prepare ${base}s2 as select 'four' as v`);
      await a.query(`declare ${base}c1 cursor with hold for select 'five' as v`);
      await a.query(`declare ${base}c2 cursor with hold for select 'six' as v`);
      const v = async (q: string | { name: string; text: string }) => (await a.query(q)).rows[0].v;
      expect(await v({ name: `${base}p1`, text: "select 'one' as v" })).toBe("one");
      expect(await v({ name: `${base}p2`, text: "select 'two' as v" })).toBe("two");
      expect(await v(`execute ${base}s1`)).toBe("three");
      expect(await v(`execute ${base}s2`)).toBe("four");
      expect(await v(`fetch ${base}c1`)).toBe("five");
      expect(await v(`fetch ${base}c2`)).toBe("six");
      await a.query(`close ${base}c1`);
      await a.query(`deallocate ${base}s1`);
      expect(await v(`execute ${base}s2`)).toBe("four");
      // Past 63 bytes PostgreSQL keeps the first 63: two such names are one, here too.
      const over = "o".repeat(63);
      await a.query(`prepare ${over}x as select 1`);
      const same = await a.query(`prepare ${over}y as select 2`).catch((e) => e);
      expect(same.code).toBe("42P05");
      await a.query("discard all");
      await a.end();
    });

    test("a name past 63 bytes is its first 63, as PostgreSQL's scanner keeps it, in every statement and message", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      const notices: string[] = [];
      a.on("notice", (n) => notices.push(`${n.code} ${n.message}`));
      b.on("notice", () => {});
      const over = "o".repeat(63);
      await a.query(`prepare ${over}x as select 'x' as v`);
      expect((await a.query(`execute ${over}y`)).rows).toEqual([{ v: "x" }]);
      // PostgreSQL's scanner says so of each, though the engine sees the names short.
      expect(notices).toEqual([
        `42622 identifier "${over}x" will be truncated to "${over}"`,
        `42622 identifier "${over}y" will be truncated to "${over}"`,
      ]);
      // Not to a client that asked for warnings and errors only.
      await a.query("set client_min_messages = warning");
      await a.query(`execute ${over}w`);
      await a.query("reset client_min_messages");
      expect(notices.length).toBe(2);
      // The message names it as PostgreSQL kept it, not as the engine has it.
      const dup = await a.query(`prepare ${over}z as select 2`).catch((e) => e);
      expect({ code: dup.code, message: dup.message }).toEqual({
        code: "42P05",
        message: `prepared statement "${over}" already exists`,
      });
      // 62 bytes: a longer name keeps them, cut before a character the 63rd byte would split.
      const wide = "é".repeat(31);
      await a.query(`prepare "${wide}éé" as select 'w' as v`);
      expect((await a.query(`execute "${wide}é"`)).rows).toEqual([{ v: "w" }]);
      const missing = await a.query(`execute "${wide}xé"`).catch((e) => e);
      expect({ code: missing.code, message: missing.message }).toEqual({
        code: "26000",
        message: `prepared statement "${wide}x" does not exist`,
      });
      // pg_prepared_statements names them as PostgreSQL keeps them, an extended Parse's too.
      const parsed = "p".repeat(70);
      await a.query({ name: parsed, text: "select 3 as v" });
      const listed = await a.query(
        "select name, statement from pg_prepared_statements order by length(name), name",
      );
      expect(listed.rows.map((r) => r.name)).toEqual([wide, over, parsed.slice(0, 63)]);
      // Their statements as the client sent them, as PostgreSQL shows its query string.
      expect(listed.rows.map((r) => r.statement)).toEqual([
        `prepare "${wide}éé" as select 'w' as v`,
        `prepare ${over}x as select 'x' as v`,
        "select 3 as v",
      ]);
      // A WITH HOLD cursor: declared under one long name, fetched, moved and closed under others.
      await a.query(`declare ${over}c1 cursor with hold for select g from generate_series(1, 3) g`);
      expect((await a.query(`fetch ${over}c2`)).rows).toEqual([{ g: 1 }]);
      await a.query(`move next in ${over}c3`);
      expect((await a.query("select name, statement from pg_cursors")).rows).toEqual([{
        name: over,
        statement: `declare ${over}c1 cursor with hold for select g from generate_series(1, 3) g`,
      }]);
      expect((await a.query(`fetch ${over}c4`)).rows).toEqual([{ g: 3 }]);
      await a.query(`close ${over}c5`);
      const closed = await a.query(`fetch ${over}c6`).catch((e) => e);
      expect({ code: closed.code, message: closed.message }).toEqual({
        code: "34000",
        message: `cursor "${over}" does not exist`,
      });
      // LISTEN: the channel is the first 63 bytes, its notifications delivered, UNLISTEN by another spelling.
      const got: string[] = [];
      a.on("notification", (n) => got.push(`${n.channel}:${n.payload}`));
      await a.query(`listen ${over}l1`);
      expect((await a.query("select pg_listening_channels() as c")).rows).toEqual([{ c: over }]);
      await b.query(`notify ${over}l2, 'one'`);
      await waitFor("the notification", async () => {
        await a.query("select 1");
        return got.length > 0;
      });
      expect(got).toEqual([`${over}:one`]);
      await a.query(`unlisten ${over}l3`);
      expect((await a.query("select pg_listening_channels() as c")).rows).toEqual([]);
      await a.query("discard all");
      expect((await a.query("select count(*)::int as n from pg_prepared_statements")).rows[0].n)
        .toBe(0);
      await a.end();
    });

    test("a role that is not a superuser cannot list every session's through the builtins", async () => {
      const admin = await pgClient(server());
      await admin.query("create role list_reader login");
      await admin.query("prepare admins as select 'the admin''s statement'");
      await admin.query("declare admins_cursor cursor with hold for select 1");
      const r = await pgClient(server(), { user: "list_reader" });
      for (const fn of ["pg_prepared_statement", "pg_cursor"]) {
        const e = await r.query(`select name, statement from pg_catalog.${fn}()`).catch((e) => e);
        expect({ fn, code: e.code, message: e.message }).toEqual({
          fn,
          code: "42501",
          message: `permission denied for function ${fn}`,
        });
      }
      // The views still list the role's own.
      await r.query("prepare readers as select 1");
      expect((await r.query("select name from pg_prepared_statements")).rows).toEqual([
        { name: "readers" },
      ]);
      expect((await r.query("select name from pg_cursors")).rows).toEqual([]);
      await r.end();
      await admin.query("close admins_cursor");
      await admin.end();
    });
  });
}
