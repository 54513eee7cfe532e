/**
 * A cursor declared WITH HOLD outlives its transaction, so in the one
 * backend every session would see it: two sessions could not both have a
 * cursor "c", and one could fetch from another's. Each session's are its
 * own, as in PostgreSQL: the same name in two sessions, each FETCH, MOVE
 * and CLOSE reaching its own, another's name unknown (34000), closed when
 * the session ends or runs DISCARD ALL, listed in pg_cursors to their own
 * session only; CLOSE ALL is refused while other sessions have such cursors
 * (it would close theirs), and a session cannot reach another's under the
 * engine's names, nor close, deallocate or listen for every session from a
 * function. node-postgres and
 * psql; the default server (and --adapter subprocess: ENGINE_TEST_ADAPTERS).
 */

import { describe, expect, test } from "bun:test";
import { pgClient, psql, sharedServer, useSqlServers, waitFor } from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

const values = (rows: Array<Record<string, unknown>>) => rows.map((r) => Object.values(r)[0]);

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("two sessions each declare, fetch from and close their own cursor c", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      await a.query("declare c cursor with hold for select g from generate_series(1, 5) g");
      // The same name in another session: not "cursor "c" already exists".
      await b.query(
        "declare c scroll cursor with hold for select 'b' || g as g from generate_series(1, 3) g",
      );
      expect(values((await a.query("fetch 2 from c")).rows)).toEqual([1, 2]);
      expect(values((await b.query("fetch all from c")).rows)).toEqual(["b1", "b2", "b3"]);
      await b.query("move absolute 1 in c");
      expect(values((await b.query("fetch next from c")).rows)).toEqual(["b2"]);
      expect(values((await a.query("fetch next from c")).rows)).toEqual([3]);
      await b.query("close c");
      // b's is gone, and it cannot reach a's: PostgreSQL's error, with the name it gave.
      const gone = await b.query("fetch 1 from c").catch((e) => e);
      expect(gone).toMatchObject({ code: "34000", message: 'cursor "c" does not exist' });
      expect(values((await a.query("fetch all from c")).rows)).toEqual([4, 5]);
      // Longer forms (Django's iterator() fetches FORWARD 2000), each reaching a's own.
      expect((await a.query("move absolute 1000 in c")).rowCount).toBe(0);
      expect(values((await a.query("fetch absolute 2000 from c")).rows)).toEqual([]);
      expect(values((await a.query("fetch backward 10000 from c")).rows)).toEqual([5, 4, 3, 2, 1]);
      expect(values((await a.query("fetch forward 2000 from c")).rows)).toEqual([1, 2, 3, 4, 5]);
      // A cursor without HOLD lives in its transaction only, under its own name.
      await b.query("begin");
      await b.query("declare t cursor for select 42 as v");
      expect(values((await b.query("fetch t")).rows)).toEqual([42]);
      await b.query("commit");
      await a.query("close c");
      await a.end();
      await b.end();
    });

    test("CLOSE ALL is refused while another session has one; its end and DISCARD ALL close a session's", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      // What the session itself sees of its cursors.
      const mine = async (c: typeof a) =>
        (await c.query("select name, statement, is_holdable from pg_cursors order by name")).rows;
      await a.query("declare ca cursor with hold for select 1");
      await b.query("declare cb cursor with hold for select 2");
      expect(await mine(a)).toEqual([
        { name: "ca", statement: "declare ca cursor with hold for select 1", is_holdable: true },
      ]);
      expect((await mine(b)).map((r) => r.name)).toEqual(["cb"]);
      const refused = await a.query("close all").catch((e) => e);
      expect(refused).toMatchObject({
        code: "0A000",
        message: "CLOSE ALL is not supported while other sessions have WITH HOLD cursors",
      });
      expect(values((await b.query("fetch cb")).rows)).toEqual([2]);
      await b.query("discard all");
      expect(await mine(b)).toEqual([]);
      expect((await mine(a)).map((r) => r.name)).toEqual(["ca"]);
      // b has none now: a's CLOSE ALL closes a's own.
      await a.query("close all");
      expect(await mine(a)).toEqual([]);
      await a.query("declare again cursor with hold for select 3");
      // A cursor without HOLD, in b's transaction, is b's alone, under its name.
      await b.query("begin");
      await b.query("declare t cursor for select 4");
      expect(await mine(b)).toEqual([
        { name: "t", statement: "declare t cursor for select 4", is_holdable: false },
      ]);
      await b.query("commit");
      await a.end();
      // Its end closed a's: a new session declares "again" without 42P03.
      const c = await pgClient(server());
      await waitFor("the ended session's cursor to close", async () => {
        const r = await c.query("declare again cursor with hold for select 5").catch((e) => e);
        if (r instanceof Error) return false;
        await c.query("close again");
        return true;
      });
      await b.end();
      await c.end();
    });

    test("pg_cursors shows a session its own cursors only, under the names it gave", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      await a.query("declare secret cursor with hold for select 'a private statement'");
      const seen = await b.query("select name, statement from pg_cursors");
      expect(seen.rows).toEqual([]);
      const own = await a.query("select name from pg_cursors where statement like '%private%'");
      expect(own.rows).toEqual([{ name: "secret" }]);
      await a.end();
      await b.end();
    });

    test("another session's engine names are unknown; a function cannot close, deallocate or listen for all", async () => {
      const a = await pgClient(server());
      const b = await pgClient(server());
      await a.query("declare secret cursor with hold for select 'a''s rows' as v");
      await a.query("prepare mine as select 'a''s statement' as v");
      // The backend's own list names a's cursor under its engine name.
      const raw = await b.query(
        "select name from pg_catalog.pg_cursor() where name like '%secret' and name <> 'secret'",
      );
      const engineName = raw.rows[0].name as string;
      expect(engineName).toMatch(/^pgts\d+\.[0-9a-z]{8}:secret$/);
      const stolen = await b.query(`fetch all from "${engineName}"`).catch((e) => e);
      expect(stolen).toMatchObject({
        code: "34000",
        message: `cursor "${engineName}" does not exist`,
      });
      const statement = engineName.replace(/secret$/, "mine");
      const viaFunction = await b.query(
        `do $$ begin execute 'execute "${statement}"'; end $$`,
      ).catch((e) => e);
      expect(viaFunction).toMatchObject({
        code: "26000",
        message: `prepared statement "${statement}" does not exist`,
      });
      for (
        const [sql, what] of [
          ["close all", "CLOSE ALL"],
          ["deallocate all", "DEALLOCATE ALL"],
          ["unlisten *", "UNLISTEN"],
          ["listen ch", "LISTEN"],
          ["prepare p2 as select 1", "PREPARE"],
          ["declare c2 cursor with hold for select 1", "DECLARE ... WITH HOLD"],
        ]
      ) {
        const e = await b.query(`do $$ begin execute '${sql}'; end $$`).catch((e) => e);
        expect({ sql, code: e.code, message: e.message }).toEqual({
          sql,
          code: "0A000",
          message:
            `${what} inside a function or a DO block is not supported by the embedded engine`,
        });
      }
      // A cursor without HOLD in a function's transaction is the session's: allowed.
      await b.query(
        "do $$ begin execute 'declare t cursor for select 1'; execute 'close t'; end $$",
      );
      // a's cursor and statement are untouched.
      expect(values((await a.query("fetch all from secret")).rows)).toEqual(["a's rows"]);
      expect(values((await a.query("execute mine")).rows)).toEqual(["a's statement"]);
      await a.end();
      await b.end();
    });

    test("psql: a cursor declared WITH HOLD in one session is unknown to the next", async () => {
      const first = await psql(server(), [
        "-c",
        "declare p cursor with hold for select 'first' as v",
        "-c",
        "fetch p",
      ]);
      expect(first.code).toBe(0);
      expect(first.out).toContain("first");
      const second = await psql(server(), ["-c", "fetch p"]);
      expect(second.code).not.toBe(0);
      expect(second.err).toContain('cursor "p" does not exist');
    });
  });
}
