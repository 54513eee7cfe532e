/**
 * COPY … PROGRAM on the embedded engine. PGlite cannot start a program, and
 * a COPY FROM PROGRAM used to spin inside the engine for ever, so that no
 * session was served again until a restart. It is refused before it runs
 * (0A000), whatever spells it — a Query, a DO block's EXECUTE, a function —
 * and every session goes on. So is COPY to or from a server file, which the
 * engine would have written to its in-memory file system (lost at the next
 * start) or not found. Under the default server and --adapter inproc.
 */

import { describe, expect, test } from "bun:test";
import { pgClient, sharedServer, useSqlServers } from "../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

type PgError = { code?: string; message: string; hint?: string };

const REFUSED = "COPY to or from an external program is not supported by the embedded engine";
const FILE_REFUSED = "COPY to or from a file is not supported by the embedded engine";

const FILE_SPELLINGS = [
  "copy (select 1) to '/tmp/pgts_copy_refused.csv'",
  "copy pg_catalog.pg_class from '/etc/hostname'",
  "DO $$ begin execute 'copy (select 2) to ' || quote_literal('/tmp/x'); end $$",
];

const SPELLINGS = [
  "copy (select 1) to program 'cat > /dev/null'",
  "copy pg_catalog.pg_class from program 'echo'",
  "DO $$ begin execute 'copy pg_catalog.pg_class from ' || 'program ''echo'''; end $$",
  "create function pg_temp.leak() returns void language plpgsql as" +
  " $$ begin copy (select 1) to program 'true'; end $$; select pg_temp.leak()",
];

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("COPY … PROGRAM and COPY with a server file fail with 0A000 by every spelling; the engine keeps serving", async () => {
      const s = server();
      const a = await pgClient(s);
      const b = await pgClient(s);
      for (const sql of SPELLINGS) {
        const err = await a.query(sql).then(() => null, (e) => e as PgError);
        expect({ sql, code: err?.code, message: err?.message }).toEqual({
          sql,
          code: "0A000",
          message: REFUSED,
        });
        expect((await b.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
      }
      for (const sql of FILE_SPELLINGS) {
        const err = await a.query(sql).then(() => null, (e) => e as PgError);
        expect({ sql, code: err?.code, message: err?.message, hint: err?.hint }).toEqual({
          sql,
          code: "0A000",
          message: FILE_REFUSED,
          hint: "Use COPY ... TO STDOUT or FROM STDIN (psql's \\copy) to copy through the client.",
        });
      }
      // Server-side lo_export wrote into the engine's memory too, and
      // lo_import could not see the host's file.
      for (
        const sql of [
          "select lo_export(lo_creat(-1), '/tmp/pgts_lo_refused.bin')",
          "select lo_import('/etc/hostname')",
          "select lo_import('/etc/hostname', 987654)",
        ]
      ) {
        const err = await a.query(sql).then(() => null, (e) => e as PgError);
        expect({ sql, code: err?.code, message: err?.message }).toEqual({
          sql,
          code: "0A000",
          message: "server-side lo_import and lo_export are not supported by the embedded engine",
        });
      }
      // COPY to and from the client is untouched.
      expect((await a.query("copy (select 1) to stdout")).rowCount).toBe(1);
      expect((await a.query("select 'still here' as v")).rows).toEqual([{ v: "still here" }]);
      await a.end();
      await b.end();
    });
  });
}
