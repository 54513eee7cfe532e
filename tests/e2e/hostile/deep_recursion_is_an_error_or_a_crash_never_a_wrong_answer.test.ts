/**
 * Deep recursion in a statement (src/engines/pglite/stackguard.ts).
 * PL/pgSQL recursion deeper than max_stack_depth (256kB for the engine)
 * gets PostgreSQL's 54001 "stack depth limit exceeded" and the session and
 * the others go on. Recursion that exhausts the JavaScript engine's native
 * stack before PostgreSQL's check sees it (a recursive SQL function, some
 * 2,000 levels) used to give no rows, then break every session; now it ends
 * the engine's backend as a segfault ends a PostgreSQL backend: the crash
 * cycle runs and the server serves again by itself with committed data.
 */

import { describe, expect, test } from "bun:test";
import { pgClient, startSqlServer, useSqlServers, waitFor } from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

const FUNCTIONS = `
CREATE FUNCTION recn(n int) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN IF n <= 0 THEN RETURN 0; END IF; RETURN recn(n - 1) + 1; END $$;
CREATE FUNCTION recs(n int) RETURNS int LANGUAGE sql AS
  $$ SELECT CASE WHEN n <= 0 THEN 0 ELSE recs(n - 1) + 1 END $$;
CREATE TABLE kept (n int); INSERT INTO kept VALUES (1), (2);
`;

async function failure(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return { code: (e as { code?: string }).code, message: (e as Error).message };
  }
  throw new Error("the statement succeeded");
}

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    test("PL/pgSQL recursion past max_stack_depth is 54001; a native stack overflow is a crash the server recovers from", async () => {
      const server = await startSqlServer({
        ...(adapter === undefined ? {} : { adapter }),
        settings: { fsync: "off" },
      });
      const a = await pgClient(server);
      const b = await pgClient(server);
      await a.query(FUNCTIONS);
      expect((await a.query("SHOW max_stack_depth")).rows).toEqual([{ max_stack_depth: "256kB" }]);
      // Depths that fit give the right answer, never an empty one.
      expect((await a.query("SELECT recn(100) AS r")).rows).toEqual([{ r: 100 }]);
      expect((await a.query("SELECT recs(1000) AS r")).rows).toEqual([{ r: 1000 }]);

      const deep = await failure(a.query("SELECT recn(5000)"));
      expect(deep).toMatchObject({ code: "54001", message: "stack depth limit exceeded" });
      expect((await a.query("SELECT recn(100) AS r")).rows).toEqual([{ r: 100 }]);
      expect((await b.query("SELECT count(*)::int AS n FROM kept")).rows).toEqual([{ n: 2 }]);

      // Beyond the native stack: the statement fails, the cluster is reset.
      const overflow = await failure(a.query("SELECT recs(20000)"));
      expect(overflow.message).toMatch(/native stack overflow/);
      const rows = await waitFor("the server to serve again by itself", async () => {
        try {
          const c = await pgClient(server);
          try {
            return (await c.query("SELECT count(*)::int AS n, recn(50) AS r FROM kept")).rows;
          } finally {
            await c.end();
          }
        } catch {
          return undefined;
        }
      }, { timeoutMs: 60_000, detail: () => server.log });
      expect(rows).toEqual([{ n: 2, r: 50 }]);
      expect(server.log).toMatch(/native stack overflow/);
      await a.end().catch(() => {});
      await b.end().catch(() => {});
    });
  });
}
