/**
 * pg_prepared_statements shows a session its own prepared statements only,
 * under the names it gave them, as in PostgreSQL — though all sessions'
 * statements live in one PGlite backend (there under per-session names).
 * Another session's statement text never shows. Under the default server
 * and --adapter inproc.
 */

import { describe, expect, test } from "bun:test";
import { pgClient, sharedServer, useSqlServers } from "../helpers/pgts-sql.ts";
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
        { name: "mine", statement: 'PREPARE "mine" AS select 1' },
        { name: "same", statement: "select 'secret of a' as v" },
      ]);
      expect(await list(b)).toEqual([{ name: "same", statement: "select 'secret of b' as v" }]);
      const c = await pgClient(server());
      expect(await list(c)).toEqual([]);
      for (const s of [a, b, c]) await s.end();
    });
  });
}
