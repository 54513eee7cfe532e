/**
 * pool_mode = transaction in front of a real PostgreSQL 15: many clients on
 * a few upstream connections, with what applications rely on carried from
 * connection to connection: named prepared statements (node-postgres,
 * postgres.js, pgbench -M prepared), settings, cancel, a client that leaves
 * mid-transaction, LISTEN (which keeps its connection), query_wait_timeout.
 */

import { beforeAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import postgres from "postgres";
import {
  PG_BIN,
  PgtsFront,
  run,
  UpstreamPostgres,
  useUpstreamServers,
  waitFor,
} from "../../helpers/upstream.ts";

useUpstreamServers({ timeoutMs: 90_000 });

let upstream: UpstreamPostgres;
/** default_pool_size = 5, --adapter inproc: backends and the pool in one process (fast logins). */
let front: PgtsFront;
/**
 * default_pool_size = 1, the default adapter: every client shares one
 * upstream connection, held by the engine child that backend processes reach.
 */
let single: PgtsFront;

beforeAll(async () => {
  upstream = await UpstreamPostgres.start();
  const init = await run([`${PG_BIN}/pgbench`, "-i", "-q", "-s", "1"], {
    env: { PGHOST: upstream.socketDir, PGPORT: String(upstream.port), PGUSER: "postgres" },
  });
  expect(init.code).toBe(0);
  [front, single] = await Promise.all([
    PgtsFront.start(upstream.url(), {
      adapter: "inproc",
      settings: { pool_mode: "transaction", default_pool_size: "5" },
    }),
    // Over the Unix socket: its upstream connections are told apart by
    // their empty client_addr.
    PgtsFront.start(upstream.url({ via: "unix" }), {
      settings: { pool_mode: "transaction", default_pool_size: "1", query_wait_timeout: "1s" },
    }),
  ]);
}, 90_000);

/** Upstream connections `front` holds for its clients (TCP; role lookups have their own two). */
async function upstreamConnections(): Promise<number> {
  const r = await upstream.psql(
    "select count(*) from pg_stat_activity where backend_type = 'client backend' and client_addr is not null and application_name <> 'pgts role lookup'",
  );
  return Number(r.out.trim());
}

test("node-postgres named statements work for 12 clients on 5 upstream connections", async () => {
  const clients = await Promise.all(Array.from({ length: 12 }, () => front.client()));
  try {
    const pids = new Set<number>();
    await Promise.all(clients.map(async (c, i) => {
      for (let k = 0; k < 10; k++) {
        const r = await c.query({
          name: "add",
          text: "select $1::int + $2::int as n, pg_backend_pid() as pid",
          values: [i, k],
        });
        expect(r.rows[0].n).toBe(i + k);
        pids.add(r.rows[0].pid);
        // A second statement of the client's, and a transaction.
        await c.query("begin");
        const t = await c.query({ name: "get", text: "select $1::text as t", values: [`c${i}`] });
        expect(t.rows[0].t).toBe(`c${i}`);
        await c.query("commit");
      }
    }));
    expect(pids.size).toBeLessThanOrEqual(5);
    expect(await upstreamConnections()).toBeLessThanOrEqual(5);
    // A statement's error names the client's statement, not pgts's.
    const e = await clients[0]!.query({
      name: "add",
      text: "select $1::int + $2::int as n, pg_backend_pid() as pid",
      values: ["x", 1],
    }).catch((x) => x);
    expect(e.code).toBe("22P02");
    expect((await clients[0]!.query("select 1 as one")).rows[0].one).toBe(1);
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
});

test("postgres.js (prepared by default) and its transactions work on the pool", async () => {
  const sql = postgres({
    host: front.host,
    port: front.port,
    user: "postgres",
    database: "postgres",
    max: 12,
    onnotice: () => {},
  });
  try {
    await sql`create table if not exists pj (id int primary key, v text)`;
    await sql`truncate pj`;
    await Promise.all(Array.from({ length: 60 }, async (_, i) => {
      const [r] = await sql`select ${i}::int * 2 as n`;
      expect(r!.n).toBe(i * 2);
      await sql.begin(async (tx) => {
        await tx`insert into pj values (${i}, ${"v" + i})`;
        const [c] = await tx`select v from pj where id = ${i}`;
        expect(c!.v).toBe("v" + i);
      });
    }));
    const [count] = await sql`select count(*)::int as n from pj`;
    expect(count!.n).toBe(60);
  } finally {
    await sql.end();
  }
});

test("pgbench -M prepared -c 50 on a pool of 5 has no failures", async () => {
  const r = await front.pgbench(["-M", "prepared", "-c", "50", "-j", "2", "-t", "10", "-n"]);
  expect(r.out).toMatch(/number of transactions actually processed: 500\/500/);
  expect(await upstreamConnections()).toBeLessThanOrEqual(5);
});

test("SET follows each client: two clients on one upstream connection never see each other's settings", async () => {
  const a = await single.client();
  const b = await single.client();
  try {
    await a.query("set search_path = pg_catalog, public");
    await a.query("set app.tenant = 'acme'");
    await a.query("set statement_timeout = '7s'");
    await b.query("set datestyle = 'German'");
    const ra = await a.query(
      "select current_setting('search_path') as sp, current_setting('app.tenant', true) as t, current_setting('statement_timeout') as st, current_setting('datestyle') as ds, pg_backend_pid() as pid",
    );
    const rb = await b.query(
      "select current_setting('search_path') as sp, current_setting('app.tenant', true) as t, current_setting('statement_timeout') as st, current_setting('datestyle') as ds, pg_backend_pid() as pid",
    );
    expect(ra.rows[0].pid).toBe(rb.rows[0].pid);
    expect(ra.rows[0]).toMatchObject({
      sp: "pg_catalog, public",
      t: "acme",
      st: "7s",
      ds: "ISO, MDY",
    });
    expect(rb.rows[0]).toMatchObject({ sp: '"$user", public', st: "0" });
    expect(rb.rows[0].t ?? "").toBe("");
    expect(rb.rows[0].ds).toBe("German, DMY");
    // RESET goes back to the default for that client only.
    await a.query("reset statement_timeout");
    expect((await a.query("show statement_timeout")).rows[0].statement_timeout).toBe("0");
    expect((await a.query("show search_path")).rows[0].search_path).toBe("pg_catalog, public");
    // SET LOCAL ends with its transaction.
    await b.query("begin; set local work_mem = '8MB'; commit");
    expect((await b.query("show work_mem")).rows[0].work_mem).toBe("4MB");
  } finally {
    await a.end();
    await b.end();
  }
});

test("startup parameters follow the client too, and a bad one fails the login", async () => {
  const c = new pg.Client({
    host: single.host,
    port: single.port,
    user: "postgres",
    database: "postgres",
    application_name: "pooled-app",
    // The packet's own application_name wins over the options', as in PostgreSQL.
    options: "-c search_path=pg_catalog -c application_name=from-options",
  });
  await c.connect();
  const other = await single.client();
  try {
    await other.query("set application_name = 'other'");
    const r = await c.query(
      "select current_setting('application_name') as a, current_setting('search_path') as sp",
    );
    expect(r.rows[0]).toEqual({ a: "pooled-app", sp: "pg_catalog" });
  } finally {
    await c.end();
    await other.end();
  }
  const bad = new pg.Client({
    host: single.host,
    port: single.port,
    user: "postgres",
    database: "postgres",
    options: "-c statement_timeout=banana",
  });
  const e = await bad.connect().catch((x) => x);
  expect(e.code).toBe("22023");
});

test("a cancel stops the client's statement on the upstream backend running it", async () => {
  const sql = postgres({
    host: front.host,
    port: front.port,
    user: "postgres",
    database: "postgres",
    max: 1,
  });
  try {
    const started = Date.now();
    const q = sql`select pg_sleep(30)`;
    const outcome = q.then(() => null, (e) => e);
    await Bun.sleep(300);
    q.cancel();
    const e = await outcome;
    expect(e?.code).toBe("57014");
    expect(Date.now() - started).toBeLessThan(10_000);
    const [r] = await sql`select 1 as one`;
    expect(r!.one).toBe(1);
  } finally {
    await sql.end();
  }
});

test("a client that leaves mid-transaction has it rolled back, and the connection serves the next client", async () => {
  const setup = await single.client();
  await setup.query("create table if not exists dropped (n int); truncate dropped");
  await setup.end();
  const a = await single.client();
  await a.query("begin");
  await a.query("insert into dropped values (1)");
  const pidA = (await a.query("select pg_backend_pid() as pid")).rows[0].pid;
  // Mid-statement as well: the sleep is cancelled, not waited for.
  const sleeping = a.query("select pg_sleep(30)").catch(() => {});
  await Bun.sleep(200);
  (a as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  await sleeping;
  const b = await single.client();
  try {
    const started = Date.now();
    const r = await b.query(
      "select count(*)::int as n, pg_backend_pid() as pid, now() = statement_timestamp() as fresh from dropped",
    );
    expect(r.rows[0].n).toBe(0);
    expect(r.rows[0].pid).toBe(pidA);
    expect(Date.now() - started).toBeLessThan(5_000);
  } finally {
    await b.end();
  }
});

test("a client waiting longer than query_wait_timeout gets 57014 and can go on", async () => {
  const a = await single.client();
  const b = await single.client();
  try {
    await a.query("begin");
    const started = Date.now();
    const e = await b.query("select 1").catch((x) => x);
    expect(e.code).toBe("57014");
    expect(e.message).toBe("canceling statement due to query wait timeout");
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    await a.query("commit");
    expect((await b.query("select 2 as two")).rows[0].two).toBe(2);
  } finally {
    await a.end();
    await b.end();
  }
});

test("LISTEN keeps the client's connection, so its notifications arrive", async () => {
  const a = await front.client();
  const b = await front.client();
  try {
    const got: string[] = [];
    a.on("notification", (n) => got.push(`${n.channel}:${n.payload}`));
    await a.query("listen pool_channel");
    // Other clients' transactions go on around it.
    for (let i = 0; i < 10; i++) await b.query("select 1");
    await b.query("notify pool_channel, 'hello'");
    await waitFor("the notification", () => got.length > 0);
    expect(got).toEqual(["pool_channel:hello"]);
  } finally {
    await a.end();
    await b.end();
  }
});

test("the pgts console shows pools, clients, servers and stats in pgbouncer's columns, to superusers only", async () => {
  const app = await front.client();
  await app.query("begin");
  await app.query("select 1");
  const console = new pg.Client({
    host: front.host,
    port: front.port,
    user: "postgres",
    database: "pgts",
  });
  await console.connect();
  try {
    const pools = await console.query("SHOW POOLS");
    expect(pools.fields.map((f) => f.name)).toEqual([
      "database",
      "user",
      "cl_active",
      "cl_waiting",
      "cl_active_cancel_req",
      "cl_waiting_cancel_req",
      "sv_active",
      "sv_active_cancel",
      "sv_being_canceled",
      "sv_idle",
      "sv_used",
      "sv_tested",
      "sv_login",
      "maxwait",
      "maxwait_us",
      "pool_mode",
    ]);
    // Clients of the tests before may still be giving their connections back.
    const pool = await waitFor("the app's transaction to be the only active one", async () => {
      const r = await console.query("SHOW POOLS");
      const p = r.rows.find((r) => r.database === "postgres" && r.user === "postgres");
      return p?.sv_active === 1 ? p : undefined;
    });
    expect(pool).toMatchObject({ cl_waiting: 0, sv_active: 1, pool_mode: "transaction" });
    expect(pool.cl_active).toBeGreaterThanOrEqual(1);

    const clients = await console.query("SHOW CLIENTS");
    expect(clients.fields).toHaveLength(19);
    const active = clients.rows.filter((r) => r.state === "active");
    expect(active).toHaveLength(1);
    const servers = await console.query("SHOW SERVERS");
    const linked = servers.rows.find((r) => r.ptr === active[0].link);
    expect(linked?.link).toBe(active[0].ptr);
    // remote_pid is the upstream backend's: the one in the app's transaction.
    const pid = (await app.query("select pg_backend_pid() as pid")).rows[0].pid;
    expect(linked?.remote_pid).toBe(pid);

    const stats = await console.query("SHOW STATS");
    const row = stats.rows.find((r) => r.database === "postgres");
    expect(Number(row.total_xact_count)).toBeGreaterThan(0);
    expect(Number(row.total_query_count)).toBeGreaterThan(Number(row.total_xact_count) - 1);
    expect((await console.query("SHOW NONSENSE").catch((e) => e)).code).toBe("42601");
  } finally {
    await console.end();
    await app.query("commit");
    await app.end();
  }
  await upstream.psql("drop role if exists plain; create role plain login");
  const plain = new pg.Client({
    host: front.host,
    port: front.port,
    user: "plain",
    database: "pgts",
  });
  const e = await plain.connect().catch((x) => x);
  expect(e.code).toBe("42501");
});

test("COPY FROM STDIN and COPY TO STDOUT keep their connection until they end", async () => {
  const env = single.env();
  const load = await run([
    `${PG_BIN}/psql`,
    "-X",
    "-q",
    "-v",
    "ON_ERROR_STOP=1",
    "-c",
    "create table if not exists copied (n int, t text); truncate copied",
    "-c",
    "\\copy copied from stdin",
    "-c",
    "select count(*), sum(n) from copied",
  ], { env, stdin: Array.from({ length: 500 }, (_, i) => `${i}\trow ${i}`).join("\n") + "\n" });
  expect(load.code).toBe(0);
  expect(load.out).toMatch(/500 \| 124750/);
  const out = await run([`${PG_BIN}/psql`, "-X", "-q", "-c", "\\copy copied to stdout"], { env });
  expect(out.code).toBe(0);
  expect(out.out.trim().split("\n")).toHaveLength(500);
});

test("console PAUSE waits for the transaction in progress and holds new ones until RESUME; RELOAD applies postgresql.conf", async () => {
  const app = await front.client();
  const other = await front.client();
  const console = new pg.Client({
    host: front.host,
    port: front.port,
    user: "postgres",
    database: "pgts",
  });
  await console.connect();
  try {
    await app.query("begin");
    let paused = false;
    const pausing = console.query("PAUSE").then(() => (paused = true));
    await Bun.sleep(300);
    expect(paused).toBe(false);
    // The transaction in progress keeps its connection and ends.
    await app.query("commit");
    await pausing;
    let ran = false;
    const held = other.query("select 1 as one").then((r) => {
      ran = true;
      return r;
    });
    await Bun.sleep(300);
    expect(ran).toBe(false);
    await console.query("RESUME");
    expect((await held).rows[0].one).toBe(1);
    expect((await console.query("RESUME").catch((e) => e)).code).toBe("55000");

    // RELOAD: a max_client_conn the current clients already fill refuses the next one.
    const conf = join(front.dataDir, "postgresql.conf");
    const before = readFileSync(conf, "utf8");
    writeFileSync(conf, `${before}\nmax_client_conn = 2\n`);
    await console.query("RELOAD");
    try {
      const refused = await waitFor("the new max_client_conn", async () => {
        const c = new pg.Client({ host: front.host, port: front.port, user: "postgres" });
        const e = await c.connect().then(() => c.end().then(() => null), (x) => x);
        return e?.code === "53300" ? e : undefined;
      });
      expect(refused.message).toBe("sorry, too many clients already");
    } finally {
      writeFileSync(conf, before);
      await console.query("RELOAD");
    }
  } finally {
    await console.end();
    await app.end();
    await other.end();
  }
});
