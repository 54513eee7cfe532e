/**
 * The Drizzle ORM application of tests/helpers/drizzle.ts, on node-postgres
 * and on postgres.js 4, against PostgreSQL 15 directly (the reference its
 * expected lines come from) and through pgts as a transaction pooler of two
 * upstream connections in front of it, with five client connections each:
 * migrations in a transaction, a named prepared statement run 20 times at
 * once, ten concurrent transactions, savepoints and isolation levels.
 */

import { beforeAll, expect, test } from "bun:test";
import { DRIZZLE_LINES, type DrizzleDriver, drizzleLines } from "../../helpers/drizzle.ts";
import {
  PgtsFront,
  UPSTREAM_PASSWORD,
  UpstreamPostgres,
  useUpstreamServers,
} from "../../helpers/upstream.ts";

useUpstreamServers({ timeoutMs: 90_000 });

let upstream: UpstreamPostgres;
let front: PgtsFront;

beforeAll(async () => {
  upstream = await UpstreamPostgres.start();
  front = await PgtsFront.start(upstream.url(), {
    adapter: "inproc",
    settings: { pool_mode: "transaction", default_pool_size: "2" },
  });
}, 90_000);

const password = encodeURIComponent(UPSTREAM_PASSWORD);

async function freshDatabase(name: string): Promise<void> {
  const r = await upstream.psql(`create database ${name}`);
  if (r.code !== 0) throw new Error(`create database ${name}: ${r.err}`);
}

for (const driver of ["pg", "postgres.js"] as DrizzleDriver[]) {
  const tag = driver === "pg" ? "pg" : "pjs";
  test(`PostgreSQL 15 directly, ${driver}: the application's lines (the reference)`, async () => {
    await freshDatabase(`direct_${tag}`);
    const url = `postgres://postgres:${password}@127.0.0.1:${upstream.port}/direct_${tag}`;
    expect(await drizzleLines(url, driver)).toEqual([...DRIZZLE_LINES]);
  }, 60_000);

  test(
    `through pgts's transaction pool of two connections, ${driver}: the same lines`,
    async () => {
      await freshDatabase(`pooled_${tag}`);
      const url = `postgres://postgres:${password}@${front.host}:${front.port}/pooled_${tag}`;
      expect(await drizzleLines(url, driver)).toEqual([...DRIZZLE_LINES]);
    },
    60_000,
  );
}
