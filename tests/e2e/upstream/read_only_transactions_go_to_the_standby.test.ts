/**
 * read_only_routing against a PostgreSQL 15 primary and a streaming standby
 * made by `pg_basebackup -R`: with both hosts in the URL and
 * target_session_attrs=read-write, a transaction pool sends read-only
 * transactions (BEGIN READ ONLY, or a client whose
 * default_transaction_read_only is on) to the standby and the rest to the
 * primary; without the setting everything goes to the primary.
 */

import { beforeAll, expect, test } from "bun:test";
import pg from "pg";
import {
  PG_BIN,
  PgtsFront,
  run,
  UPSTREAM_PASSWORD,
  UPSTREAM_USER,
  UpstreamPostgres,
  useUpstreamServers,
  waitFor,
} from "../../helpers/upstream.ts";

useUpstreamServers({ timeoutMs: 90_000 });

let primary: UpstreamPostgres;
let standby: UpstreamPostgres;
let routing: PgtsFront;
let plain: PgtsFront;

beforeAll(async () => {
  primary = await UpstreamPostgres.start();
  standby = await UpstreamPostgres.standbyOf(primary);
  const password = encodeURIComponent(UPSTREAM_PASSWORD);
  const url =
    `postgres://${UPSTREAM_USER}:${password}@127.0.0.1:${primary.port},127.0.0.1:${standby.port}/postgres?target_session_attrs=read-write`;
  const settings = { pool_mode: "transaction", default_pool_size: "2" };
  [routing, plain] = await Promise.all([
    PgtsFront.start(url, { settings: { ...settings, read_only_routing: "on" } }),
    PgtsFront.start(url, { settings }),
  ]);
}, 90_000);

async function client(front: PgtsFront, options = ""): Promise<pg.Client> {
  const c = new pg.Client({ host: front.host, port: front.port, user: "postgres", options });
  c.on("error", () => {});
  await c.connect();
  return c;
}

const WHERE = "select pg_is_in_recovery() as standby, inet_server_port() as port";

async function where(c: pg.Client, begin: string): Promise<{ standby: boolean; port: number }> {
  await c.query(begin);
  try {
    return (await c.query(WHERE)).rows[0];
  } finally {
    await c.query("commit");
  }
}

test("BEGIN READ ONLY goes to the standby, other transactions to the primary", async () => {
  const c = await client(routing);
  try {
    expect((await c.query(WHERE)).rows[0]).toEqual({ standby: false, port: primary.port });
    expect(await where(c, "begin read only")).toEqual({ standby: true, port: standby.port });
    expect(await where(c, "start transaction isolation level repeatable read, read only"))
      .toEqual({ standby: true, port: standby.port });
    expect(await where(c, "begin")).toEqual({ standby: false, port: primary.port });
    // What the primary commits, the standby's readers see once replayed.
    await c.query("create table if not exists routed (n int); insert into routed values (1)");
    await waitFor("the row on the standby", async () => {
      await c.query("begin read only");
      try {
        const r = await c.query("select count(*)::int as n from routed").catch(() => null);
        return r?.rows[0].n === 1;
      } finally {
        await c.query("rollback");
      }
    });
    // A write in a read-only transaction is refused as on the primary.
    await c.query("begin read only");
    const e = await c.query("insert into routed values (2)").catch((x) => x);
    expect(e.code).toBe("25006");
    await c.query("rollback");
  } finally {
    await c.end();
  }
});

test("a client with default_transaction_read_only reads on the standby; BEGIN READ WRITE on the primary", async () => {
  const c = await client(routing, "-c default_transaction_read_only=on");
  const s = await client(routing);
  try {
    expect((await c.query(WHERE)).rows[0]).toEqual({ standby: true, port: standby.port });
    expect(await where(c, "begin read write")).toEqual({ standby: false, port: primary.port });
    // SET follows the client: after turning it off, its statements go to the primary.
    await s.query("set default_transaction_read_only = on");
    expect((await s.query(WHERE)).rows[0]).toEqual({ standby: true, port: standby.port });
    await s.query("set default_transaction_read_only = off");
    expect((await s.query(WHERE)).rows[0]).toEqual({ standby: false, port: primary.port });
  } finally {
    await c.end();
    await s.end();
  }
});

test("libpq's target_session_attrs=read-only takes pgts for a read-only client, whose statements go to the standby", async () => {
  const conninfo = (options: string) =>
    `host=127.0.0.1 port=${routing.port} user=postgres dbname=postgres ` +
    `target_session_attrs=read-only${options}`;
  const psql = (options: string) =>
    run([
      `${PG_BIN}/psql`,
      "-X",
      "-A",
      "-t",
      "-d",
      conninfo(options),
      "-c",
      "select pg_is_in_recovery()",
    ]);
  const ro = await psql(" options='-c default_transaction_read_only=on'");
  expect(ro.err).toBe("");
  expect(ro.out.trim()).toBe("t");
  const rw = await psql("");
  expect(rw.code).not.toBe(0);
  expect(rw.err).toContain("session is not read-only");
});

test("without read_only_routing, read-only transactions stay on the primary", async () => {
  const c = await client(plain, "-c default_transaction_read_only=on");
  try {
    expect((await c.query(WHERE)).rows[0]).toEqual({ standby: false, port: primary.port });
    expect(await where(c, "begin read only")).toEqual({ standby: false, port: primary.port });
  } finally {
    await c.end();
  }
});

test("the console shows the read-only pool beside its pool", async () => {
  const c = await client(routing);
  const console = new pg.Client({
    host: routing.host,
    port: routing.port,
    user: "postgres",
    database: "pgts",
  });
  await console.connect();
  try {
    await where(c, "begin read only");
    const pools = (await console.query("SHOW POOLS")).rows.map((r) => `${r.database}/${r.user}`);
    expect(pools).toContain("postgres/postgres");
    expect(pools).toContain("postgres (read-only)/postgres");
  } finally {
    await console.end();
    await c.end();
  }
});
