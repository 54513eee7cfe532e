/**
 * Deep recursion in a statement (src/engines/pglite/stackguard.ts).
 * PL/pgSQL recursion deeper than max_stack_depth (256kB for the engine
 * under Bun, 128kB under Deno) gets PostgreSQL's 54001 "stack depth limit
 * exceeded" and the session and the others go on; max_stack_depth cannot
 * be set higher (22023 "must not exceed", as PostgreSQL refuses more than
 * its platform's stack holds), since PL/pgSQL recursion then ran the
 * JavaScript engine's native stack out where no 54001 could be raised, and
 * the crash cycle reset every session (under Deno, at its former default of
 * 256kB, for any role). Recursion that exhausts the native stack before
 * PostgreSQL's check sees it (a 100,000-term expression, a regular
 * expression nested 2,000 deep, IS JSON on a text nested 100,000 deep,
 * for any role) used to end the engine's backend too; it is now 54001,
 * raised where PostgreSQL can catch it. A recursive SQL function past 600
 * nested queries (src/engines/pglite/querydepth.ts) is 54001 before its
 * recursion gets that far. A JSON value nested past 1,000 levels
 * (src/engines/pglite/jsondepth.ts) is 54001 in whichever way it comes in.
 */

import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  connectError,
  pgClient,
  pgEnv,
  startSqlServer,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS, PG_BIN, TEST_RUNTIME } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

const FUNCTIONS = `
CREATE FUNCTION recn(n int) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN IF n <= 0 THEN RETURN 0; END IF; RETURN recn(n - 1) + 1; END $$;
CREATE FUNCTION recs(n int) RETURNS int LANGUAGE sql AS
  $$ SELECT CASE WHEN n <= 0 THEN 0 ELSE recs(n - 1) + 1 END $$;
CREATE FUNCTION loop_rec(n int) RETURNS int LANGUAGE plpgsql AS
  $$ DECLARE r record; BEGIN
       FOR r IN SELECT loop_rec(n + 1) AS x LOOP RETURN r.x; END LOOP; RETURN 0;
     END $$;
CREATE FUNCTION sorted_rec(n int) RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN
       RETURN (SELECT sum(x) FROM (SELECT sorted_rec(n + 1) AS x FROM generate_series(1, 1) ORDER BY 1) s);
     END $$;
`;

/** The engine's max_stack_depth, and the most it may be set to (src/core/guc/tables_postgres.ts). */
const LIMIT = TEST_RUNTIME === "deno" ? "128kB" : "256kB";

async function failure(
  p: Promise<unknown>,
): Promise<
  {
    code: string | undefined;
    message: string;
    detail: string | undefined;
    hint: string | undefined;
  }
> {
  try {
    await p;
  } catch (e) {
    const { code, detail, hint } = e as { code?: string; detail?: string; hint?: string };
    return { code, message: (e as Error).message, detail, hint };
  }
  throw new Error("the statement succeeded");
}

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const start = () =>
      startSqlServer({ ...(adapter === undefined ? {} : { adapter }), settings: { fsync: "off" } });

    test("PL/pgSQL recursion past max_stack_depth is 54001 for any role, and max_stack_depth cannot be set past what the native stack holds", async () => {
      const server = await start();
      const admin = await pgClient(server);
      await admin.query("CREATE ROLE nobody LOGIN");
      await admin.query("CREATE TABLE kept (n int); INSERT INTO kept VALUES (1), (2)");
      await admin.query(FUNCTIONS);
      const a = await pgClient(server, { user: "nobody" });
      const b = await pgClient(server);
      expect((await a.query("SHOW max_stack_depth")).rows).toEqual([{ max_stack_depth: LIMIT }]);
      // Depths that fit give the right answer, never an empty one.
      expect((await a.query("SELECT recn(50) AS r")).rows).toEqual([{ r: 50 }]);
      expect((await a.query("SELECT recs(500) AS r")).rows).toEqual([{ r: 500 }]);

      // PostgreSQL's own check, for recursion whose levels take more of
      // the native stack than recn's: a loop over a query that calls the
      // next level ran Deno's out at 224kB, a subquery's sort Bun's at 384kB.
      const checked = {
        code: "54001",
        message: "stack depth limit exceeded",
        hint: expect.stringContaining('Increase the configuration parameter "max_stack_depth"'),
      };
      expect(await failure(a.query("SELECT recn(5000)"))).toMatchObject(checked);
      expect(await failure(a.query("SELECT loop_rec(0)"))).toMatchObject(checked);
      expect(await failure(a.query("SELECT sorted_rec(0)"))).toMatchObject(checked);
      expect((await a.query("SELECT recn(50) AS r")).rows).toEqual([{ r: 50 }]);
      expect((await b.query("SELECT count(*)::int AS n FROM kept")).rows).toEqual([{ n: 2 }]);

      // A SQL function that recurses past 600 nested queries: 54001 too
      // (querydepth.ts), where it ran the native stack out and reset the
      // cluster (PostgreSQL 18's regression test infinite_recurse).
      const sqlDeep = await failure(a.query("SELECT recs(20000)"));
      expect(sqlDeep).toMatchObject({ code: "54001", message: "stack depth limit exceeded" });
      expect((await a.query("SELECT recs(500) AS r")).rows).toEqual([{ r: 500 }]);

      // Not even a superuser may raise it past the limit, however it is
      // set (7MB ran PL/pgSQL recursion out of native stack, past where
      // 54001 can be raised, and reset the cluster); within it, it may.
      const tooDeep = (kb: number) => ({
        code: "22023",
        message: `invalid value for parameter "max_stack_depth": ${kb}`,
        detail: `"max_stack_depth" must not exceed ${LIMIT}.`,
      });
      expect(await failure(admin.query("SET max_stack_depth = '7MB'"))).toMatchObject(
        tooDeep(7168),
      );
      expect(await failure(admin.query("SELECT set_config('max_stack_depth', '1MB', false)")))
        .toMatchObject(tooDeep(1024));
      expect(await failure(admin.query("ALTER ROLE nobody SET max_stack_depth = '1MB'")))
        .toMatchObject(tooDeep(1024));
      expect(
        await failure(admin.query(
          "CREATE FUNCTION deeper() RETURNS int LANGUAGE sql SET max_stack_depth = '2MB' AS 'SELECT 1'",
        )),
      ).toMatchObject(tooDeep(2048));
      expect(await connectError(server, { options: "-c max_stack_depth=1MB" }))
        .toMatchObject({
          code: "0A000",
          message: 'unsupported value for parameter "max_stack_depth": "1MB"',
        });
      await admin.query("SET max_stack_depth = '100kB'");
      expect((await admin.query("SHOW max_stack_depth")).rows).toEqual([{
        max_stack_depth: "100kB",
      }]);
      expect(await failure(admin.query("SELECT loop_rec(0)"))).toMatchObject(checked);

      // No overflow ever reached the native stack's end: nothing was reset.
      expect((await b.query("SELECT count(*)::int AS n FROM kept")).rows).toEqual([{ n: 2 }]);
      expect(server.log).not.toMatch(/native stack overflow|reinitializing/);
      await a.end();
      await b.end();
      await admin.end();
    });

    test("an expression, a regular expression or IS JSON nested past the native stack is 54001 for any role, and no session notices", async () => {
      const server = await start();
      const admin = await pgClient(server);
      await admin.query("CREATE ROLE nobody LOGIN");
      const a = await pgClient(server, { user: "nobody" });
      const b = await pgClient(server);
      const refused = { code: "54001", message: "stack depth limit exceeded" };
      // Parse analysis of a 100,000-term sum; PostgreSQL's check caught
      // 20,000 terms on a fresh engine, not on a warm one.
      expect(await failure(a.query(`SELECT ${"1+".repeat(100_000)}1`))).toMatchObject(refused);
      expect(await failure(a.query(`SELECT ${"'a'||".repeat(50_000)}'a'`))).toMatchObject(refused);
      // The regular expression compiler's recursion: 2,000 levels ended the
      // backend under Bun (PostgreSQL answers them, as Deno now does; 20,000
      // are PostgreSQL's 2201B "too complex", the native stack's 54001 here).
      const parens = (n: number) => "(".repeat(n) + "a" + ")".repeat(n);
      const matched = await a.query("SELECT 'a' ~ $1 AS m", [parens(2_000)])
        .then((r) => r.rows[0].m, (e) => (e as { code: string }).code);
      expect([true, "54001"]).toContain(matched);
      expect(await failure(a.query("SELECT 'a' ~ $1", [parens(20_000)]))).toMatchObject(refused);
      expect((await a.query("SELECT 'a' ~ $1 AS m", [parens(100)])).rows).toEqual([{ m: true }]);
      // IS JSON parses its text without json_in (jsondepth.ts does not see it).
      const nested = "[".repeat(100_000) + "]".repeat(100_000);
      expect(await failure(a.query("SELECT $1::text IS JSON", [nested]))).toMatchObject(refused);
      expect(await failure(a.query(`SELECT '${nested}' IS JSON`))).toMatchObject(refused);
      expect((await a.query("SELECT '[[1]]' IS JSON AS j")).rows).toEqual([{ j: true }]);
      // An exception block catches it, and what its block did is undone.
      await admin.query("CREATE TABLE marks (m text); GRANT INSERT, SELECT ON marks TO nobody");
      await admin.query(`CREATE FUNCTION deep_sum() RETURNS text LANGUAGE plpgsql AS $$
        BEGIN
          INSERT INTO marks VALUES ('kept');
          BEGIN
            INSERT INTO marks VALUES ('undone');
            EXECUTE 'SELECT ' || repeat('1+', 100000) || '1';
          EXCEPTION WHEN statement_too_complex THEN
            RETURN SQLSTATE || ' ' || SQLERRM;
          END;
          RETURN 'no error';
        END $$`);
      expect((await a.query("SELECT deep_sum() AS r")).rows)
        .toEqual([{ r: "54001 stack depth limit exceeded" }]);
      expect((await a.query("SELECT array_agg(m) AS m FROM marks")).rows).toEqual([{
        m: ["kept"],
      }]);
      // In a transaction block it aborts the block, as any error does.
      await a.query("BEGIN");
      expect(await failure(a.query(`SELECT ${"1+".repeat(100_000)}1`))).toMatchObject(refused);
      expect(await failure(a.query("SELECT 1"))).toMatchObject({ code: "25P02" });
      await a.query("ROLLBACK");
      // The session, and every other, go on; the engine's backend never ended.
      expect((await a.query("SELECT current_user AS u")).rows).toEqual([{ u: "nobody" }]);
      expect((await b.query("SELECT 'still here' AS s")).rows).toEqual([{ s: "still here" }]);
      expect(server.log).not.toMatch(/native stack overflow|reinitializing/);
      await a.end();
      await b.end();
      await admin.end();
    });

    test("a JSON value nested past 1,000 levels is 54001 however it comes in, and no session notices", async () => {
      const server = await start();
      const a = await pgClient(server);
      const b = await pgClient(server);
      const nested = (n: number, open = "[", close = "]") => open.repeat(n) + close.repeat(n);
      const refused = { code: "54001", message: "stack depth limit exceeded" };
      // As a parameter and as a literal, json and jsonb, arrays and objects.
      expect(await failure(a.query("SELECT $1::jsonb", [nested(100_000)]))).toMatchObject(refused);
      expect(await failure(a.query("SELECT $1::json", [nested(100_000)]))).toMatchObject(refused);
      const objects = '{"a":'.repeat(10_000) + "1" + "}".repeat(10_000);
      expect(await failure(a.query(`SELECT '${objects}'::jsonb`))).toMatchObject(refused);
      // Brackets inside strings are no nesting; what fits parses as before.
      const inString = JSON.stringify(["[".repeat(50_000)]);
      expect((await a.query("SELECT jsonb_array_length($1::jsonb) AS n", [inString])).rows)
        .toEqual([{ n: 1 }]);
      expect((await a.query("SELECT jsonb_typeof($1::jsonb) AS t", [nested(1_000)])).rows)
        .toEqual([{ t: "array" }]);
      // Binary COPY reads jsonb with jsonb_recv: a version byte, then the text.
      await a.query("CREATE TABLE deep_json (j jsonb)");
      const dir = mkdtempSync(join(tmpdir(), "pgts-deep-json-"));
      try {
        const text = new TextEncoder().encode(nested(100_000));
        const field = new Uint8Array(1 + text.length);
        field[0] = 1;
        field.set(text, 1);
        const head = new Uint8Array(
          [..."PGCOPY\n"].map((c) => c.charCodeAt(0)).concat([0xff, 13, 10, 0]),
        );
        const file = new Uint8Array(head.length + 8 + 2 + 4 + field.length + 2);
        const v = new DataView(file.buffer);
        file.set(head, 0);
        let at = head.length + 8; // flags and the header extension's length: 0
        v.setInt16(at, 1);
        v.setInt32(at + 2, field.length);
        file.set(field, at + 6);
        at += 6 + field.length;
        v.setInt16(at, -1);
        writeFileSync(join(dir, "deep.bin"), file);
        const psql = Bun.spawn([
          `${PG_BIN}/psql`,
          "-X",
          "-c",
          `\\copy deep_json from '${join(dir, "deep.bin")}' with (format binary)`,
        ], { env: pgEnv(server), stdout: "pipe", stderr: "pipe" });
        const [err] = await Promise.all([new Response(psql.stderr).text(), psql.exited]);
        expect(err).toContain("ERROR:  stack depth limit exceeded");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      // The session and every other go on; the engine's backend never ended.
      expect((await a.query("SELECT count(*)::int AS n FROM deep_json")).rows).toEqual([{ n: 0 }]);
      expect((await b.query("SELECT 'still here' AS s")).rows).toEqual([{ s: "still here" }]);
      expect(server.log).not.toMatch(/native stack overflow/);
      await a.end();
      await b.end();
    });
  });
}
