/**
 * now(), clock_timestamp() and the other timestamps a statement reads carry
 * microseconds, as PostgreSQL's do: rows stamped by clock_timestamp() one
 * after another get distinct times in the order they were written, and the
 * clock is the wall clock. (PGlite's glue read the time from Date.now():
 * every timestamp was whole milliseconds.) node-postgres against the
 * default server.
 */

import { describe, expect, test } from "bun:test";
import { pgClient, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";

useSqlServers({ timeoutMs: 60_000 });

describe("default server", () => {
  const server = sharedServer({});

  test("clock_timestamp() and now() read microseconds of the wall clock", async () => {
    const c = await pgClient(server());
    try {
      const before = Date.now();
      const { rows } = await c.query<{ us: number; at: string }>(
        `select (extract(microseconds from clock_timestamp())::bigint % 1000)::int as us,
                (extract(epoch from clock_timestamp()) * 1000)::float8::text as at
           from generate_series(1, 20)`,
      );
      const after = Date.now();
      // Whole milliseconds would give 0 every time; microseconds, 0 one time in a thousand.
      expect(rows.filter((r) => r.us !== 0).length).toBeGreaterThan(10);
      for (const r of rows) {
        expect(Number(r.at)).toBeGreaterThanOrEqual(before - 1);
        expect(Number(r.at)).toBeLessThanOrEqual(after + 1);
      }
      const now = await c.query<{ us: string; same: boolean }>(
        `select to_char(now(), 'US') as us, now() = statement_timestamp() as same`,
      );
      expect(now.rows[0]!.us).toMatch(/^\d{6}$/);
      expect(now.rows[0]!.same).toBe(true);
    } finally {
      await c.end();
    }
  });

  test("rows stamped with clock_timestamp() in one statement get distinct, increasing times", async () => {
    const c = await pgClient(server());
    try {
      await c.query(
        `create table stamped (n int, at timestamptz default clock_timestamp())`,
      );
      await c.query(`insert into stamped (n) select g from generate_series(1, 50) g`);
      const { rows } = await c.query<{ n: number }>(`select n from stamped order by at, n`);
      const distinct = await c.query<{ count: string }>(
        `select count(distinct at) from stamped`,
      );
      expect(Number(distinct.rows[0]!.count)).toBeGreaterThan(25);
      expect(rows.map((r) => r.n)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    } finally {
      await c.end();
    }
  });
});
