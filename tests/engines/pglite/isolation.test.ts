/**
 * Session isolation on one PGlite backend, driven by real clients (pg and
 * postgres.js) through the test engine server: the behaviours of
 * /work/shared/bench/concurrency that pglite-socket fails.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import pg from "pg";
import postgres from "postgres";
import { openEngine, type PgliteEngine } from "../../../src/engines/pglite/mod.ts";
import type { RawExecutor } from "../../../src/engines/pglite/executor.ts";
import {
  type EngineServer,
  startEngineServer,
  startMemoryExecutor,
} from "../../helpers/engine-server.ts";

const WAIT_MS = 1500;
const FAULT = new TextEncoder().encode("pgts_injected_fault");

/** Throws (as a PGlite failure would) for input containing FAULT. */
function faulty(inner: RawExecutor): RawExecutor {
  const has = (b: Uint8Array) => {
    outer: for (let i = 0; i + FAULT.length <= b.length; i++) {
      for (let j = 0; j < FAULT.length; j++) if (b[i + j] !== FAULT[j]) continue outer;
      return true;
    }
    return false;
  };
  return {
    exec: (b, on) => has(b) ? Promise.reject(new Error("injected fault")) : inner.exec(b, on),
    // Sessions' options (their temporary namespaces among them) are not passed on.
    tempShared: "this test's executor passes no session options",
    interrupt: () => inner.interrupt(),
    close: () => inner.close(),
    wal: inner.wal,
    onWalFailure: null,
    // Options are not passed on: COPY FROM STDIN is buffered, as inline.
    copyFeed: null,
  };
}

let engine: PgliteEngine;
let server: EngineServer;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  engine = await openEngine("memory://", {
    engineWaitTimeoutMs: WAIT_MS,
    executor: faulty(await startMemoryExecutor()),
  });
  server = startEngineServer(engine);
}, 60_000);

afterAll(async () => {
  const t0 = Date.now();
  await Promise.all(cleanups.splice(0).map((c) => c().catch(() => {})));
  const t1 = Date.now();
  await server?.stop();
  await engine?.close();
  if (Date.now() - t0 > 3000) {
    console.log(`slow cleanup: clients ${t1 - t0} ms, engine ${Date.now() - t1} ms`);
  }
}, 30_000);

const cfg = () => ({
  host: "127.0.0.1",
  port: server.port,
  user: "postgres",
  database: "postgres",
});

async function client(): Promise<pg.Client> {
  const c = new pg.Client(cfg());
  c.on("error", () => {});
  await c.connect();
  cleanups.push(() => c.end());
  return c;
}

function pool(max: number): postgres.Sql {
  const sql = postgres({ ...cfg(), max, onnotice: () => {} });
  cleanups.push(() => sql.end({ timeout: 1 }));
  return sql;
}

async function errorOf(
  p: Promise<unknown>,
): Promise<{ code?: string; message: string; severity?: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code?: string; message: string };
  }
  throw new Error("expected an error");
}

describe("session isolation on one PGlite backend", () => {
  test("a SET on one connection is not seen by another, nor by a later one", async () => {
    const a = await client(), b = await client();
    const q = async (c: pg.Client) =>
      (await c.query(
        "SELECT current_setting('TimeZone') AS tz, current_setting('probe.tag', true) AS tag, current_setting('search_path') AS sp",
      )).rows[0];
    const before = await q(b);
    await a.query("SET TimeZone = 'Asia/Tokyo'");
    await a.query("SET probe.tag = 'from-A'");
    await a.query("SET search_path = pg_catalog, public");
    expect((await q(a)).tz).toBe("Asia/Tokyo");
    const afterB = await q(b);
    expect(afterB.tz).toBe(before.tz);
    expect(afterB.tag || null).toBeNull();
    expect(afterB.sp).toBe(before.sp);
    expect((await q(a)).tag).toBe("from-A");
    await a.end();
    const c = await client();
    const afterC = await q(c);
    expect(afterC.tz).toBe(before.tz);
    expect(afterC.tag || null).toBeNull();
  });

  test("application_name comes from each connection's startup packet", async () => {
    const a = new pg.Client({ ...cfg(), application_name: "app-a" });
    const b = new pg.Client({ ...cfg(), application_name: "app-b" });
    await a.connect();
    await b.connect();
    cleanups.push(() => a.end(), () => b.end());
    for (let i = 0; i < 3; i++) {
      expect((await a.query("SHOW application_name")).rows[0].application_name).toBe("app-a");
      expect((await b.query("SHOW application_name")).rows[0].application_name).toBe("app-b");
    }
  });

  test("two connections can prepare the same statement name with different text", async () => {
    const a = await client(), b = await client();
    const run = async (c: pg.Client, text: string) => (await c.query({ name: "s1", text })).rows[0];
    expect(await run(a, "SELECT 1 AS a")).toEqual({ a: 1 });
    expect(await run(b, "SELECT 2 AS b")).toEqual({ b: 2 });
    expect(await run(a, "SELECT 1 AS a")).toEqual({ a: 1 });
    await a.end();
    await b.end();
    const c = await client();
    expect(await run(c, "SELECT 3 AS c")).toEqual({ c: 3 });
  });

  test("SQL PREPARE/EXECUTE names are per connection, and errors name the client's own statement", async () => {
    const a = await client(), b = await client();
    await a.query("PREPARE q AS SELECT 'a' AS v");
    await b.query("PREPARE q AS SELECT 'b' AS v");
    expect((await a.query("EXECUTE q")).rows[0].v).toBe("a");
    expect((await b.query("EXECUTE q")).rows[0].v).toBe("b");
    const e = await errorOf(a.query("EXECUTE nope"));
    expect(e.code).toBe("26000");
    expect(e.message).toBe('prepared statement "nope" does not exist');
    await b.query("DEALLOCATE ALL");
    expect((await errorOf(b.query("EXECUTE q"))).code).toBe("26000");
    expect((await a.query("EXECUTE q")).rows[0].v).toBe("a");
  });

  test(
    "a postgres.js pool of 4 gets the right answer to each of 200 concurrent queries",
    async () => {
      const sql = pool(4);
      let ok = 0;
      const wrong: string[] = [];
      await Promise.all(Array.from({ length: 200 }, async (_, i) => {
        const [r] = await sql`select ${i}::int as v, ${"q" + (i % 7)}::text as tag`;
        if (r?.v === i && r?.tag === "q" + (i % 7)) ok++;
        else wrong.push(`sent ${i} got ${JSON.stringify(r)}`);
      }));
      expect(wrong).toEqual([]);
      expect(ok).toBe(200);
    },
    30_000,
  );

  test(
    "4 node-postgres clients interleaving unnamed extended queries get their own answers",
    async () => {
      const clients = await Promise.all([0, 1, 2, 3].map(() => client()));
      let wrong = 0;
      await Promise.all(clients.map(async (c, i) => {
        for (let k = 0; k < 50; k++) {
          const v = i * 100000 + k;
          const r = await c.query(`SELECT $1::int AS v, ${i} AS who`, [v]);
          if (r.rows[0]?.v !== v || r.rows[0]?.who !== i) wrong++;
        }
      }));
      expect(wrong).toBe(0);
    },
    30_000,
  );

  test(
    "a query waiting behind another connection's open transaction fails with 55P03 naming its pid",
    async () => {
      const a = await client(), b = await client();
      const apid = server.pids.at(-2)!;
      await a.query("BEGIN");
      await a.query("SELECT 1");
      const t0 = Date.now();
      const e = await errorOf(b.query("SELECT count(*) FROM pg_class"));
      const waited = Date.now() - t0;
      expect(e.code).toBe("55P03");
      expect(e.message).toContain(`process ${apid}`);
      expect(waited).toBeGreaterThanOrEqual(WAIT_MS - 50);
      expect(waited).toBeLessThan(WAIT_MS + 1500);
      // B is still usable, and gets the engine once A is done.
      const late = b.query("SELECT 43 AS x FROM pg_class LIMIT 1");
      await a.query("COMMIT");
      expect((await late).rows[0].x).toBe(43);
    },
    15_000,
  );

  test("lock_timeout bounds the wait when it is shorter", async () => {
    const a = await client(), b = await client();
    await b.query("SET lock_timeout = '200ms'");
    await a.query("BEGIN");
    // A's block holds the engine from its first statement (a BEGIN that
    // comes while the engine is busy waits for no one: deferredbegin.ts).
    await a.query("SELECT 1");
    const t0 = Date.now();
    // (Not a bare SELECT 1: a pool's ping is answered after a short wait, turn.ts.)
    expect((await errorOf(b.query("SELECT count(*) FROM pg_class"))).code).toBe("55P03");
    expect(Date.now() - t0).toBeLessThan(WAIT_MS);
    await a.query("ROLLBACK");
  });

  test(
    "idle_in_transaction_session_timeout ends the idle holder with 25P03 and frees the engine",
    async () => {
      const a = await client(), b = await client();
      const errors: Array<{ code?: string; message: string }> = [];
      a.on("error", (e) => errors.push(e as never));
      await a.query("SET idle_in_transaction_session_timeout = '300ms'");
      await a.query("CREATE TABLE IF NOT EXISTS idle_t (x int)");
      await a.query("BEGIN");
      await a.query("INSERT INTO idle_t VALUES (1)");
      const r = await b.query("SELECT count(*)::int AS n FROM idle_t");
      expect(r.rows[0].n).toBe(0);
      await Bun.sleep(100);
      expect(errors[0]?.code).toBe("25P03");
      expect(errors[0]?.message).toBe("terminating connection due to idle-in-transaction timeout");
    },
    10_000,
  );

  test("a client that disconnects mid-transaction has it rolled back at once", async () => {
    const a = await client(), b = await client();
    await a.query("CREATE TABLE IF NOT EXISTS disc_t (x int)");
    await a.query("BEGIN");
    await a.query("INSERT INTO disc_t VALUES (1)");
    (a as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    const t0 = Date.now();
    const r = await b.query("SELECT count(*)::int AS n FROM disc_t");
    expect(r.rows[0].n).toBe(0);
    expect(Date.now() - t0).toBeLessThan(WAIT_MS);
  });

  test("NOTIFY reaches only listening connections, with the sender's pid", async () => {
    const a = await client(), b = await client(), c = await client();
    const [apid, bpid] = server.pids.slice(-3);
    const got: Record<string, Array<{ payload?: string; processId: number }>> = {
      a: [],
      b: [],
      c: [],
    };
    a.on("notification", (n) => got.a!.push(n));
    b.on("notification", (n) => got.b!.push(n));
    c.on("notification", (n) => got.c!.push(n));
    await a.query("LISTEN probe_ch");
    await c.query("LISTEN other_ch");
    await b.query("NOTIFY probe_ch, 'hello'");
    await Bun.sleep(100);
    expect(got.a!.map((n) => n.payload)).toEqual(["hello"]);
    expect(got.a![0]!.processId).toBe(bpid!);
    expect(got.b).toEqual([]);
    expect(got.c).toEqual([]);
    // The sender gets its own notification when it listens too, as in PostgreSQL.
    await a.query("NOTIFY probe_ch, 'self'");
    await Bun.sleep(50);
    expect(got.a!.map((n) => n.payload)).toEqual(["hello", "self"]);
    expect(got.a![1]!.processId).toBe(apid!);
    // One connection's UNLISTEN does not stop another's deliveries.
    await b.query("LISTEN probe_ch");
    await b.query("UNLISTEN probe_ch");
    await c.query("NOTIFY probe_ch, 'again'");
    await Bun.sleep(50);
    expect(got.a!.map((n) => n.payload)).toEqual(["hello", "self", "again"]);
    expect(got.b).toEqual([]);
    // A LISTEN rolled back does not take effect.
    await c.query("BEGIN; LISTEN rolled_back; ROLLBACK");
    await b.query("NOTIFY rolled_back, 'x'");
    await Bun.sleep(50);
    expect(got.c).toEqual([]);
  });

  test(
    "concurrent postgres.js transactions incrementing one counter give the exact total",
    async () => {
      const sql = pool(4);
      await sql`create table if not exists counter (id int primary key, n int)`;
      await sql`insert into counter values (1, 0) on conflict (id) do update set n = 0`;
      await Promise.all(Array.from({ length: 60 }, () =>
        sql.begin(async (tx) => {
          const [r] = await tx`select n from counter where id = 1`;
          await tx`update counter set n = ${r!.n + 1} where id = 1`;
        })));
      const [r] = await sql`select n from counter where id = 1`;
      expect(r!.n).toBe(60);
    },
    30_000,
  );

  test("an SQL error in one session's transaction does not disturb the others", async () => {
    const a = await client(), b = await client();
    await a.query("BEGIN");
    expect((await errorOf(a.query("SELECT 1/0"))).code).toBe("22012");
    expect((await errorOf(a.query("SELECT 1"))).code).toBe("25P02");
    await a.query("ROLLBACK");
    expect((await b.query("SELECT 7 AS x")).rows[0].x).toBe(7);
  });

  test("a PGlite failure ends that request only; the engine keeps serving everyone", async () => {
    const a = await client(), b = await client();
    await a.query("BEGIN");
    const e = await errorOf(a.query("SELECT 'pgts_injected_fault'"));
    expect(e.code).toBe("XX000");
    expect(e.message).toContain("injected fault");
    // The failed request was rolled back and the engine released.
    expect((await b.query("SELECT 8 AS x")).rows[0].x).toBe(8);
    expect((await a.query("SELECT 9 AS x")).rows[0].x).toBe(9);
    // Pipelined queries that were in the failed input all get the error
    // (none of them ran); none is left without an answer.
    const sql = pool(2);
    const results = await Promise.allSettled(
      Array.from(
        { length: 20 },
        (_, i) => i % 5 === 0 ? sql`select 'pgts_injected_fault'` : sql`select ${i}::int as v`,
      ),
    );
    for (const r of results) {
      if (r.status === "rejected") expect((r.reason as { code?: string }).code).toBe("XX000");
    }
    expect(results.filter((r) => r.status === "rejected").length).toBeGreaterThanOrEqual(4);
    // Which queries share an input is the driver's choice (postgres.js 4
    // sends most of them in one write): those that ran answer their own.
    results.forEach((r, i) => {
      if (r.status === "fulfilled") expect(r.value[0]!.v).toBe(i);
    });
    const after = await Promise.all(
      Array.from({ length: 10 }, (_, i) => sql`select ${i}::int as v`),
    );
    expect(after.map((r) => r[0]!.v)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  }, 20_000);

  test(
    "cancelling a long pg_sleep gives 57014 at once, and another session is served meanwhile",
    async () => {
      const sa = pool(1), sb = pool(1);
      await sa`select 1`;
      await sb`select 1`;
      const t0 = Date.now();
      const qa = sa`select pg_sleep(5)`;
      const pa = qa.then(() => "completed", (e: { code?: string }) => e.code);
      await Bun.sleep(200);
      qa.cancel();
      expect(await pa).toBe("57014");
      expect(Date.now() - t0).toBeLessThan(2000);
      expect((await sb`select 2 as x`)[0]!.x).toBe(2);
      expect((await sa`select 3 as x`)[0]!.x).toBe(3);
    },
    15_000,
  );

  test("COPY FROM STDIN holds the engine until CopyDone, then others proceed", async () => {
    const sql = pool(2);
    await sql`create table if not exists copy_t (x int)`;
    const { Readable } = await import("node:stream");
    const { pipeline } = await import("node:stream/promises");
    const w = await sql`copy copy_t from stdin`.writable();
    await pipeline(Readable.from(["1\n2\n"]), w);
    expect((await sql`select count(*)::int as n from copy_t`)[0]!.n).toBe(2);
  });

  test("a temporary table warns that it is shared, unless client_min_messages is above warnings", async () => {
    const a = await client();
    const notices: string[] = [];
    a.on("notice", (n) => notices.push(n.message ?? ""));
    await a.query("CREATE TEMP TABLE tmp_probe (x int)");
    expect(notices).toContain("temporary objects are shared by all sessions of this engine");
    await a.query("DROP TABLE tmp_probe");
    // A client that asked for errors only is not sent it, as PostgreSQL sends it no warning.
    notices.length = 0;
    await a.query("SET client_min_messages = error");
    await a.query("CREATE TEMP TABLE tmp_probe (x int)");
    await a.query("DROP TABLE tmp_probe");
    await a.query("RESET client_min_messages");
    expect(notices).toEqual([]);
  });

  test("startup: unknown role is 28000, unknown database 3D000, another database 0A000", async () => {
    const tryConnect = async (o: Partial<ReturnType<typeof cfg>>) => {
      const c = new pg.Client({ ...cfg(), ...o });
      c.on("error", () => {});
      return await errorOf(c.connect());
    };
    const r = await tryConnect({ user: "nobody" });
    expect(r.code).toBe("28000");
    expect(r.message).toBe('role "nobody" does not exist');
    const d = await tryConnect({ database: "nodb" });
    expect(d.code).toBe("3D000");
    expect(d.message).toBe('database "nodb" does not exist');
    const t = await tryConnect({ database: "template1" });
    expect(t.code).toBe("0A000");
  });

  test("roles: a role created in one session can log in, and runs as itself", async () => {
    const a = await client();
    await a.query("CREATE ROLE alice LOGIN");
    const b = new pg.Client({ ...cfg(), user: "alice" });
    await b.connect();
    cleanups.push(() => b.end());
    expect((await b.query("SELECT current_user AS u")).rows[0].u).toBe("alice");
    expect((await a.query("SELECT current_user AS u")).rows[0].u).toBe("postgres");
    expect((await b.query("SELECT current_user AS u")).rows[0].u).toBe("alice");
  });
});
