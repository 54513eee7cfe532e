/**
 * The HTTP adapter on the transaction pool (`engine: { upstream, pool }`,
 * `pool_mode = transaction` under `pgts serve-http`): Neon-protocol
 * requests borrow the pool's few upstream connections instead of opening
 * two each, and what a request leaves on a connection (a temp table) is
 * gone before the next one gets it. Its PostgreSQL-protocol port's console
 * has the pool's commands as under `pgts start`, and the server's own.
 */

import { afterAll, beforeAll, expect, test } from "bun:test";
import { neon, neonConfig } from "@neondatabase/serverless";
import pg from "pg";
import { type HttpServer, serveHttp } from "../../../src/http/mod.ts";
import { NodeSocketNetAdapter } from "../../../src/adapters/node/nodenet.ts";
import { freePort, UpstreamPostgres, useUpstreamServers } from "../../helpers/upstream.ts";

let upstream: UpstreamPostgres;
let server: HttpServer | null = null;
let pgPort = 0;

afterAll(async () => {
  await server?.stop("fast");
});
useUpstreamServers({ timeoutMs: 90_000 });

beforeAll(async () => {
  upstream = await UpstreamPostgres.start();
  pgPort = await freePort();
  const started = await serveHttp({
    engine: { upstream: upstream.url(), pool: { defaultPoolSize: 2 } },
    hba: "host all all 127.0.0.1/32 trust",
    port: 0,
    listen: [{ family: "tcp", host: "127.0.0.1", port: pgPort }],
    net: new NodeSocketNetAdapter(),
  });
  server = started.server;
  neonConfig.fetchEndpoint = `http://127.0.0.1:${started.served.port}/sql`;
}, 90_000);

const sql = () => neon("postgres://postgres@127.0.0.1/postgres");

/** The pids of the upstream's client backends other than this query's own. */
async function upstreamBackends(): Promise<number[]> {
  const r = await upstream.psql(
    "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
  );
  return r.out.trim().split("\n").filter((l) => l !== "").map(Number);
}

test("40 concurrent requests run on the pool's 2 connections, which stay open between requests", async () => {
  const q = sql();
  const rows = await Promise.all(
    Array.from({ length: 40 }, (_, i) => q`SELECT ${i}::int AS i, pg_backend_pid() AS pid`),
  );
  expect(rows.map((r) => r[0]!.i)).toEqual(Array.from({ length: 40 }, (_, i) => i));
  expect(new Set(rows.map((r) => r[0]!.pid)).size).toBeLessThanOrEqual(2);
  // The pool's 2 and the role lookups' (at most 2), not one per request.
  const open = await upstreamBackends();
  expect(open.length).toBeGreaterThanOrEqual(1);
  expect(open.length).toBeLessThanOrEqual(4);
  // The next request runs on a connection that was open already (when the
  // 40 came one after another, all ran on the first, and the pool's second
  // may serve this one).
  const [again] = await q`SELECT pg_backend_pid() AS pid`;
  expect(open).toContain(again!.pid);
});

test("a request's transaction commits as one, and its temp table does not outlive it", async () => {
  const q = sql();
  await q`CREATE TABLE IF NOT EXISTS shared_kv (k text PRIMARY KEY, v int)`;
  const [, , [count]] = await q.transaction([
    q`INSERT INTO shared_kv VALUES ('a', 1), ('b', 2)`,
    q`CREATE TEMP TABLE scratch AS SELECT 1 AS x`,
    q`SELECT count(*)::int AS n FROM shared_kv`,
  ]);
  expect(count).toEqual({ n: 2 });
  for (let i = 0; i < 4; i++) {
    const e = await q`SELECT x FROM scratch`.then(() => null, (x) => x);
    expect(e?.code).toBe("42P01");
  }
});

test("the console on the PostgreSQL port has the pool's commands and the server's own", async () => {
  await sql()`SELECT 1`;
  const console = new pg.Client({
    host: "127.0.0.1",
    port: pgPort,
    user: "postgres",
    database: "pgts",
  });
  await console.connect();
  try {
    const pools = await console.query("SHOW POOLS");
    expect(pools.rows.map((r) => `${r.database}/${r.user} ${r.pool_mode}`)).toContain(
      "postgres/postgres transaction",
    );
    const dbs = await console.query("SHOW DATABASES");
    expect(dbs.rows.find((r) => r.name === "postgres")?.pool_size).toBe(2);
    // The HTTP server's own command, past the pool's.
    const activity = await console.query("SHOW ACTIVITY");
    expect(activity.fields.map((f) => f.name)).toContain("kind");
  } finally {
    await console.end();
  }
});
