/**
 * pool_mode per database and per user (pgbouncer's [databases] and [users]
 * `pool_mode=`) in front of a real PostgreSQL 15: `pool_mode_by_user` over
 * `pool_mode_by_database` over `pool_mode`. With one upstream connection
 * per pool, a session-mode client keeps it while it is connected (the
 * next client waits), a transaction-mode client only for its transaction.
 */

import { beforeAll, expect, test } from "bun:test";
import pg from "pg";
import { PgtsFront, UpstreamPostgres, useUpstreamServers } from "../../helpers/upstream.ts";

useUpstreamServers({ timeoutMs: 90_000 });

let upstream: UpstreamPostgres;
let front: PgtsFront;

beforeAll(async () => {
  upstream = await UpstreamPostgres.start();
  for (const sql of ["create database txdb", "create role batch login"]) {
    const r = await upstream.psql(sql);
    if (r.code !== 0) throw new Error(`${sql}: ${r.err}`);
  }
  // Session mode by default: pgts starts its pool (not the per-backend
  // relay) because txdb is pooled per transaction.
  front = await PgtsFront.start(upstream.url(), {
    settings: {
      pool_mode_by_database: "txdb=transaction",
      pool_mode_by_user: "batch=session",
      default_pool_size: "1",
      query_wait_timeout: "1s",
    },
  });
}, 90_000);

async function client(database: string, user = "postgres"): Promise<pg.Client> {
  const c = new pg.Client({ host: front.host, port: front.port, user, database });
  c.on("error", () => {});
  await c.connect();
  return c;
}

const PID = "select pg_backend_pid() as pid";

test("a transaction-mode database shares its one connection between connected clients", async () => {
  const a = await client("txdb");
  const b = await client("txdb");
  try {
    const pa = (await a.query(PID)).rows[0].pid;
    const pb = (await b.query(PID)).rows[0].pid;
    expect(pb).toBe(pa);
    expect((await a.query("select current_database() as db")).rows[0].db).toBe("txdb");
  } finally {
    await a.end();
    await b.end();
  }
});

for (
  const [what, database, user] of [
    ["the default (session) database", "postgres", "postgres"],
    ["a session-mode user on a transaction-mode database", "txdb", "batch"],
  ] as const
) {
  test(`${what}: a client keeps its connection while connected; the next waits, then gets it reset`, async () => {
    const holder = await client(database, user);
    const next = await client(database, user);
    try {
      // An idle client between transactions still holds its connection
      // (in transaction mode it would be free here).
      const pid = (await holder.query(PID)).rows[0].pid;
      const waited = await next.query("select 1").catch((e) => e);
      expect(waited.code).toBe("57014");
      expect(waited.message).toBe("canceling statement due to query wait timeout");
      await holder.query("create temp table mine (n int)");
      expect((await holder.query(PID)).rows[0].pid).toBe(pid);
      await holder.end();
      // The same upstream connection, after server_reset_query (DISCARD ALL).
      const r = await next.query(
        `${PID}, current_user as who, to_regclass('pg_temp.mine') is null as reset`,
      );
      expect(r.rows[0]).toEqual({ pid, who: user, reset: true });
    } finally {
      await holder.end().catch(() => {});
      await next.end();
    }
  });
}

test("SHOW POOLS gives each pool's mode", async () => {
  const clients = await Promise.all([client("txdb"), client("txdb", "batch"), client("postgres")]);
  const console = await client("pgts");
  try {
    await Promise.all(clients.map((c) => c.query("select 1")));
    const pools = (await console.query("SHOW POOLS")).rows.map((r) =>
      `${r.database}/${r.user}: ${r.pool_mode}`
    ).sort();
    expect(pools).toEqual([
      "postgres/postgres: session",
      "txdb/batch: session",
      "txdb/postgres: transaction",
    ]);
  } finally {
    await console.end();
    await Promise.all(clients.map((c) => c.end()));
  }
});

test("a pool mode that is neither session nor transaction stops the start", async () => {
  const e = await PgtsFront.start(upstream.url(), {
    settings: { pool_mode_by_database: "txdb=statement" },
  }).catch((x) => x);
  expect(String(e)).toContain(
    'invalid value for parameter "pool_mode_by_database": "txdb=statement"',
  );
  expect(String(e)).toContain("is not of the form name=session or name=transaction");
});
