/**
 * pg_database_size() answers for every database from every database, as in
 * PostgreSQL, where all of them are directories of one cluster: here each
 * is a cluster of its own, and another database's size was NULL. The size
 * seen from elsewhere is the one the database reports for itself, it grows
 * with the database's data, by oid and by name alike, and PostgreSQL's
 * privilege check stays (42501 without CONNECT). pg_stat_database's
 * numbackends counts each database's sessions (it counted PGlite's one
 * backend: 1 for the database asked from, 0 for the others).
 */

import { expect, test } from "bun:test";
import { pgClient, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";

useSqlServers({ timeoutMs: 90_000 });

const server = sharedServer();

type PgErr = Error & { code?: string };

/** The database's size as `from` sees it, by name and by oid. */
async function sizeSeen(from: Awaited<ReturnType<typeof pgClient>>, name: string) {
  const r = await from.query(
    "select pg_database_size($1::name)::float8 as by_name, pg_database_size(oid)::float8 as by_oid " +
      "from pg_database where datname = $1",
    [name],
  );
  return r.rows[0] as { by_name: number | null; by_oid: number | null };
}

test("another database's size is the one it reports itself, grows with its data, and needs CONNECT", async () => {
  const admin = await pgClient(server());
  await admin.query("create database sized");
  const sized = await pgClient(server(), { database: "sized" });
  const own = async (c: typeof sized) =>
    Number((await c.query("select pg_database_size(current_database())::float8 as n")).rows[0].n);

  const before = await sizeSeen(admin, "sized");
  expect(before.by_name).not.toBeNull();
  expect(before.by_oid).toBe(before.by_name);
  expect(Math.abs(before.by_name! - await own(sized))).toBeLessThan(1_000_000);

  await sized.query(
    "create table filler as select g, repeat('x', 500) as pad from generate_series(1, 8000) g",
  );
  await sized.query("checkpoint");
  const after = await sizeSeen(admin, "sized");
  expect(after.by_name! - before.by_name!).toBeGreaterThan(3_000_000);
  expect(Math.abs(after.by_name! - await own(sized))).toBeLessThan(100_000);

  // And the other way round: "postgres" seen from "sized".
  const main = await sizeSeen(sized, "postgres");
  expect(main.by_oid).toBe(main.by_name);
  expect(Math.abs(main.by_name! - await own(admin))).toBeLessThan(1_000_000);

  // PostgreSQL's check comes first: CONNECT, or pg_read_all_stats.
  await admin.query("create role watcher login");
  await admin.query("revoke connect on database sized from public");
  const watcher = await pgClient(server(), { user: "watcher" });
  const refused = await watcher.query("select pg_database_size('sized')").then(
    () => null,
    (e) => e as PgErr,
  );
  expect(refused?.code).toBe("42501");
  expect(refused?.message).toBe("permission denied for database sized");
  await admin.query("grant pg_read_all_stats to watcher");
  expect((await sizeSeen(watcher, "sized")).by_name).toBe(after.by_name);
});

test("pg_stat_database's numbackends counts the sessions of each database, from any database", async () => {
  const admin = await pgClient(server());
  await admin.query("create database crowded");
  const a = await pgClient(server(), { database: "crowded" });
  const b = await pgClient(server(), { database: "crowded" });
  await b.query("select 1");
  const counts = async (c: typeof a) =>
    Object.fromEntries(
      (await c.query(
        "select datname, numbackends from pg_stat_database where datname in ('crowded', 'postgres')",
      )).rows.map((r) => [r.datname, r.numbackends]),
    );
  // This file's clients: the ones in "postgres" are admin and the first test's.
  const inPostgres = Number(
    (await admin.query(
      "select count(*) as n from pg_stat_activity where datname = 'postgres' and backend_type = 'client backend'",
    )).rows[0].n,
  );
  expect(inPostgres).toBeGreaterThanOrEqual(1);
  expect(await counts(admin)).toEqual({ crowded: 2, postgres: inPostgres });
  expect(await counts(a)).toEqual({ crowded: 2, postgres: inPostgres });
  await b.end();
  for (let i = 0; i < 50 && (await counts(a)).crowded !== 1; i++) await Bun.sleep(50);
  expect(await counts(a)).toEqual({ crowded: 1, postgres: inPostgres });
});
