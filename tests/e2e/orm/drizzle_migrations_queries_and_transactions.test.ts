/**
 * A Drizzle ORM application (tests/helpers/drizzle.ts) against the
 * embedded engine, on node-postgres and on postgres.js 4, each in a new
 * database: drizzle-kit's migrations run by Drizzle's migrator, inserts
 * with RETURNING, upserts, joins, the relational query API, a view,
 * transactions with rollback, savepoints and isolation levels, a named
 * prepared statement run concurrently on a pool of five, concurrent
 * transactions. It prints what PostgreSQL 15 prints. On postgres.js 4 its
 * first insert used to end in FATAL 25P03: the driver describes a new
 * statement up to a Flush, then looks the types up on another connection
 * while the first waits.
 */

import { describe, expect, test } from "bun:test";
import { DRIZZLE_LINES, type DrizzleDriver, drizzleLines } from "../../helpers/drizzle.ts";
import { pgClient, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import { ENGINE_TEST_ADAPTERS } from "../../helpers/pgts.ts";

useSqlServers();

for (const adapter of ENGINE_TEST_ADAPTERS) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });
    const drivers: [DrizzleDriver, string][] = [["pg", "drizzle_pg"], [
      "postgres.js",
      "drizzle_pjs",
    ]];
    for (const [driver, database] of drivers) {
      test(`a Drizzle application on ${driver} runs as against PostgreSQL`, async () => {
        const admin = await pgClient(server());
        await admin.query(`create database ${database}`);
        await admin.end();
        const s = server();
        const lines = await drizzleLines(
          `postgres://postgres@${s.host}:${s.port}/${database}`,
          driver,
        );
        expect(lines).toEqual([...DRIZZLE_LINES]);
      }, 60_000);
    }
  });
}
