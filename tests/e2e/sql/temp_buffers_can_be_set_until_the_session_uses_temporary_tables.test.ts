/**
 * temp_buffers per session, as PostgreSQL's check_temp_buffers has it: a
 * session may set it until it has used temporary tables (read or written
 * their pages), then only to the value it has, with 22023 "invalid value
 * for parameter" and PostgreSQL's detail. Every session runs on one PGlite
 * backend, whose local buffers the first session that used a temporary
 * table set up: before, every later session was refused a SET temp_buffers
 * from its first statement (PostgreSQL 18's regression test temp,
 * after its `\c`).
 */

import { describe, expect, test } from "bun:test";
import { pgClient, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";

useSqlServers();

type Pg = Awaited<ReturnType<typeof pgClient>>;

/** "ok", or the error's code, message and detail. */
const outcome = (c: Pg, sql: string) =>
  c.query(sql).then(
    () => "ok",
    (e: { code?: string; message?: string; detail?: string }) =>
      `${e.code}: ${e.message} (${e.detail})`,
  );

const refused = (value: number) =>
  `22023: invalid value for parameter "temp_buffers": ${value} (` +
  `"temp_buffers" cannot be changed after any temporary tables have been accessed in the session.)`;

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("a session sets temp_buffers until it has used temporary tables, whatever the others did", async () => {
      const a = await pgClient(server());
      await a.query("create temp table used (n int)");
      await a.query("insert into used select generate_series(1, 100)");
      // a has used a temporary table: only its own value (the default, 8MB) stands.
      expect(await outcome(a, "set temp_buffers = 200")).toBe(refused(200));
      expect(await outcome(a, "set temp_buffers = '8MB'")).toBe("ok");
      expect(await outcome(a, "select set_config('temp_buffers', '300', false)")).toBe(
        refused(300),
      );

      // b has not, though the engine's backend has local buffers: it may.
      const b = await pgClient(server());
      expect(await outcome(b, "set temp_buffers = 100")).toBe("ok");
      expect((await b.query("show temp_buffers")).rows[0]).toEqual({ temp_buffers: "800kB" });
      // Making a table is no use of one (PostgreSQL sets its local buffers up at the first page).
      await b.query("create temp table mine (n int)");
      expect(await outcome(b, "set temp_buffers = 150")).toBe("ok");
      await b.query("insert into mine values (1)");
      expect(await outcome(b, "set temp_buffers = 100")).toBe(refused(100));
      expect(await outcome(b, "set temp_buffers = 150")).toBe("ok");
      // In one Query, after the table's first page: refused too.
      const c = await pgClient(server());
      expect(
        await outcome(
          c,
          "create temp table t (n int); insert into t values (1); set temp_buffers = 120",
        ),
      ).toBe(refused(120));
      // ALTER ROLE … SET only checks the value (PGC_S_TEST), as in PostgreSQL.
      expect(await outcome(a, "alter role current_user set temp_buffers = 200")).toBe("ok");
      await a.query("alter role current_user reset temp_buffers");
      for (const s of [a, b, c]) await s.end();
    });
  });
}
