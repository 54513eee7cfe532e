/**
 * The pool's admin console (database "pgts", superusers) in front of a
 * real PostgreSQL 15, beyond SHOW POOLS: pgbouncer's SHOW DATABASES, SHOW
 * USERS and SHOW CONFIG in its 1.21 column shapes, KILL db (the database's
 * clients ended, its new ones held until RESUME db) and SUSPEND/RESUME
 * (every client's input held, mid-transaction too).
 */

import { beforeAll, expect, test } from "bun:test";
import pg from "pg";
import {
  PgtsFront,
  UpstreamPostgres,
  useUpstreamServers,
  waitFor,
} from "../../helpers/upstream.ts";

useUpstreamServers({ timeoutMs: 90_000 });

let upstream: UpstreamPostgres;
let front: PgtsFront;

beforeAll(async () => {
  upstream = await UpstreamPostgres.start();
  for (const sql of ["create database other", "create role app login"]) {
    const r = await upstream.psql(sql);
    if (r.code !== 0) throw new Error(`${sql}: ${r.err}`);
  }
  front = await PgtsFront.start(upstream.url(), {
    settings: {
      pool_mode: "transaction",
      default_pool_size: "3",
      pool_mode_by_database: "other=session",
      pool_mode_by_user: "app=transaction",
    },
  });
}, 90_000);

async function client(database = "postgres", user = "postgres"): Promise<pg.Client> {
  const c = new pg.Client({ host: front.host, port: front.port, user, database });
  c.on("error", () => {});
  await c.connect();
  return c;
}

/** Whether `p` is still pending after `ms`. */
async function pendingAfter(p: Promise<unknown>, ms: number): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true), () => (done = true));
  await Bun.sleep(ms);
  return !done;
}

test("SHOW DATABASES, SHOW USERS and SHOW CONFIG in pgbouncer's columns", async () => {
  const a = await client();
  const b = await client("other", "app");
  const console = await client("pgts");
  try {
    await a.query("select 1");
    await b.query("select 1");
    const dbs = await console.query("SHOW DATABASES");
    expect(dbs.fields.map((f) => f.name)).toEqual([
      "name",
      "host",
      "port",
      "database",
      "force_user",
      "pool_size",
      "min_pool_size",
      "reserve_pool",
      "pool_mode",
      "max_connections",
      "current_connections",
      "paused",
      "disabled",
    ]);
    const byName = Object.fromEntries(dbs.rows.map((r) => [r.name, r]));
    expect(byName["postgres"]).toMatchObject({
      host: "127.0.0.1",
      port: upstream.port,
      database: "postgres",
      pool_size: 3,
      pool_mode: null,
      paused: 0,
    });
    expect(byName["postgres"].current_connections).toBeGreaterThanOrEqual(1);
    expect(byName["other"]).toMatchObject({ pool_mode: "session", pool_size: 3 });

    const users = await console.query("SHOW USERS");
    expect(users.fields.map((f) => f.name)).toEqual(["name", "pool_mode"]);
    expect(users.rows).toContainEqual({ name: "postgres", pool_mode: null });
    expect(users.rows).toContainEqual({ name: "app", pool_mode: "transaction" });

    const config = await console.query("SHOW CONFIG");
    expect(config.fields.map((f) => f.name)).toEqual(["key", "value", "default", "changeable"]);
    const byKey = Object.fromEntries(config.rows.map((r) => [r.key, r]));
    expect(byKey["default_pool_size"]).toEqual({
      key: "default_pool_size",
      value: "3",
      default: "20",
      changeable: "yes",
    });
    expect(byKey["pool_mode"]).toMatchObject({ value: "transaction", changeable: "no" });
    expect(byKey["pool_mode_by_database"]).toMatchObject({ value: "other=session" });
  } finally {
    await Promise.all([a.end(), b.end(), console.end()]);
  }
});

test("KILL db ends the database's clients; its new clients wait until RESUME db; others go on", async () => {
  const victim = await client();
  const errors: Array<{ code?: string; message: string }> = [];
  victim.on("error", (e) => errors.push(e));
  const bystander = await client("other");
  const console = await client("pgts");
  try {
    await victim.query("begin");
    await victim.query("select 1");
    await console.query("KILL postgres");
    // The FATAL reaches the idle client as it comes, then the connection ends.
    const fatal = await waitFor("the victim's FATAL", () => errors.find((e) => e.code));
    expect(fatal).toMatchObject({
      code: "57P01",
      message: "terminating connection due to administrator command",
    });
    expect(await victim.query("select 1").then(() => "served", () => "refused")).toBe("refused");
    // Another database is untouched.
    expect((await bystander.query("select 1 as one")).rows[0].one).toBe(1);
    const paused = (await console.query("SHOW DATABASES")).rows.find((r) => r.name === "postgres");
    expect(paused.paused).toBe(1);
    // A new client of the killed database logs in, and its statement waits.
    const late = await client();
    try {
      const held = late.query("select 2 as two");
      expect(await pendingAfter(held, 300)).toBe(true);
      await console.query("RESUME postgres");
      expect((await held).rows[0].two).toBe(2);
    } finally {
      await late.end();
    }
    expect((await console.query("RESUME postgres").catch((x) => x)).code).toBe("55000");
    expect((await console.query("KILL pgts").catch((x) => x)).code).toBe("55000");
  } finally {
    await Promise.all([victim.end().catch(() => {}), bystander.end(), console.end()]);
  }
});

test("SUSPEND holds every client's next input, mid-transaction too, until RESUME", async () => {
  const inTx = await client();
  const idle = await client();
  const console = await client("pgts");
  try {
    await inTx.query("begin");
    await inTx.query("create temp table if not exists s (n int)");
    await console.query("SUSPEND");
    expect((await console.query("SUSPEND").catch((x) => x)).code).toBe("55000");
    const a = inTx.query("insert into s values (1)");
    const b = idle.query("select 3 as three");
    expect(await pendingAfter(Promise.race([a, b]), 300)).toBe(true);
    await console.query("RESUME");
    await a;
    expect((await b).rows[0].three).toBe(3);
    await inTx.query("commit");
    expect((await console.query("RESUME").catch((x) => x)).code).toBe("55000");
  } finally {
    await Promise.all([inTx.end(), idle.end(), console.end()]);
  }
});

test("PAUSE db waits for the database's transaction in progress, then holds its new ones until RESUME db", async () => {
  const inTx = await client();
  const next = await client();
  const elsewhere = await client("other");
  const console = await client("pgts");
  try {
    await inTx.query("begin");
    await inTx.query("select 1");
    const pausing = console.query("PAUSE postgres");
    expect(await pendingAfter(pausing, 300)).toBe(true);
    await inTx.query("commit");
    await pausing;
    const held = next.query("select 4 as four");
    expect(await pendingAfter(held, 300)).toBe(true);
    // Another database goes on.
    expect((await elsewhere.query("select 5 as five")).rows[0].five).toBe(5);
    expect((await console.query("PAUSE postgres").catch((x) => x)).code).toBe("55000");
    expect((await console.query("SUSPEND").catch((x) => x)).code).toBe("55000");
    await console.query("RESUME postgres");
    expect((await held).rows[0].four).toBe(4);
  } finally {
    await Promise.all([inTx.end(), next.end(), elsewhere.end(), console.end()]);
  }
});
