/**
 * The HTTP adapter under Bun, listening on port 0, driven by the real
 * `@neondatabase/serverless` client: `neon()` with `fetchEndpoint` pointed
 * at pgts runs queries and transactions unchanged, errors carry their
 * SQLSTATE, and each request is a backend run the postmaster admits,
 * authenticates, times out and shows in the activity view.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { neon, neonConfig } from "@neondatabase/serverless";
import { type HttpServer, serveHttp } from "../../src/http/mod.ts";
import type { Served } from "../../src/http/mod.ts";

const TOKEN = "test-token";
const HBA = [
  "host all alice 127.0.0.1/32 scram-sha-256",
  "host all all 127.0.0.1/32 trust",
  "host all all ::1/128 trust",
].join("\n");

let server: HttpServer;
let served: Served;
let base: string;
const url = (user = "postgres", db = "postgres", extra = "") =>
  `postgres://${user}@127.0.0.1/${db}${extra}`;

beforeAll(async () => {
  ({ server, served } = await serveHttp({
    hba: HBA,
    adminToken: TOKEN,
    settings: { max_connections: 3, superuser_reserved_connections: 0 },
  }));
  base = `http://127.0.0.1:${served.port}`;
  neonConfig.fetchEndpoint = `${base}/sql`;
  await neon(url())`CREATE ROLE alice LOGIN PASSWORD 'wonderland'`;
}, 120_000);

afterAll(async () => {
  await server?.stop("fast");
});

// deno-lint-ignore no-explicit-any
const codeOf = async (p: Promise<unknown>): Promise<any> => await p.then(() => null, (e) => e);

describe("the Neon serverless driver against pgts", () => {
  test("a query with parameters of common types comes back typed as pg types it", async () => {
    const sql = neon(url());
    const when = new Date("2024-05-06T07:08:09.000Z");
    const [row] = await sql`SELECT ${1}::int AS i, ${2.5}::float8 AS f, ${"it's"}::text AS t,
      ${true}::bool AS b, ${null}::int AS n, ${{ a: [1, "x"] }}::jsonb AS j,
      ${[1, 2, 3]}::int[] AS arr, ${when}::timestamptz AS ts, ${"9007199254740993"}::int8 AS big`;
    expect(row).toEqual({
      i: 1,
      f: 2.5,
      t: "it's",
      b: true,
      n: null,
      j: { a: [1, "x"] },
      arr: [1, 2, 3],
      ts: when,
      big: "9007199254740993",
    });
  });

  test("fullResults and arrayMode give fields, command and rowCount", async () => {
    const sql = neon(url(), { fullResults: true, arrayMode: true });
    await sql`CREATE TABLE kv (k text PRIMARY KEY, v int)`;
    const ins = await sql.query("INSERT INTO kv VALUES ($1, $2), ($3, $4)", ["a", 1, "b", 2]);
    expect(ins.command).toBe("INSERT");
    expect(ins.rowCount).toBe(2);
    const sel = await sql`SELECT k, v FROM kv ORDER BY k`;
    expect(sel.rows).toEqual([["a", 1], ["b", 2]]);
    expect(sel.fields.map((f) => [f.name, f.dataTypeID])).toEqual([["k", 25], ["v", 23]]);
    expect(sel.command).toBe("SELECT");
    expect(sel.rowCount).toBe(2);
  });

  test("a transaction commits all its queries", async () => {
    const sql = neon(url());
    const [, , count] = await sql.transaction([
      sql`INSERT INTO kv VALUES ('c', 3)`,
      sql`UPDATE kv SET v = v * 10 WHERE k = 'a'`,
      sql`SELECT count(*)::int AS n, sum(v)::int AS s FROM kv`,
    ]);
    expect(count).toEqual([{ n: 3, s: 15 }]);
  });

  test("a transaction that fails rolls back, and the error has its SQLSTATE", async () => {
    const sql = neon(url());
    const err = await codeOf(sql.transaction([
      sql`INSERT INTO kv VALUES ('d', 4)`,
      sql`INSERT INTO kv VALUES ('a', 0)`,
    ]));
    expect(err.code).toBe("23505");
    expect(err.message).toContain("duplicate key value violates unique constraint");
    expect(err.constraint).toBe("kv_pkey");
    expect(await sql`SELECT count(*)::int AS n FROM kv WHERE k = 'd'`).toEqual([{ n: 0 }]);
  });

  test("an error carries SQLSTATE, message and position", async () => {
    const err = await codeOf(neon(url())`SELECT * FROM no_such_table`);
    expect(err.name).toBe("NeonDbError");
    expect(err.code).toBe("42P01");
    expect(err.message).toBe('relation "no_such_table" does not exist');
    expect(err.position).toBe("15");
    expect(err.severity).toBe("ERROR");
  });

  test("isolation level, read-only and deferrable reach the transaction", async () => {
    const sql = neon(url());
    const [[level], [ro]] = await sql.transaction([
      sql`SELECT current_setting('transaction_isolation') AS l`,
      sql`SELECT current_setting('transaction_read_only') AS r`,
    ], { isolationLevel: "Serializable", readOnly: true, deferrable: true });
    expect(level).toEqual({ l: "serializable" });
    expect(ro).toEqual({ r: "on" });
    const err = await codeOf(sql.transaction([sql`INSERT INTO kv VALUES ('e', 5)`], {
      readOnly: true,
    }));
    expect(err.code).toBe("25006");
  });

  test("the password in the connection string is checked against the role's secret", async () => {
    const ok = neon("postgres://alice:wonderland@127.0.0.1/postgres");
    expect(await ok`SELECT current_user AS u`).toEqual([{ u: "alice" }]);
    const bad = await codeOf(neon("postgres://alice:looking-glass@127.0.0.1/postgres")`SELECT 1`);
    expect(bad.code).toBe("28P01");
    expect(bad.message).toBe('password authentication failed for user "alice"');
    const none = await codeOf(neon(url("nobody"))`SELECT 1`);
    expect(none.code).toBe("28000");
  });

  test("statement_timeout from the connection's options cancels a long statement", async () => {
    const sql = neon(url("postgres", "postgres", "?options=-c%20statement_timeout%3D200"));
    const started = Date.now();
    const err = await codeOf(sql`SELECT pg_sleep(5)`);
    expect(err.code).toBe("57014");
    expect(err.message).toBe("canceling statement due to statement timeout");
    expect(Date.now() - started).toBeLessThan(4000);
    expect(await neon(url())`SELECT 1 AS one`).toEqual([{ one: 1 }]);
  });
});

describe("each request is a backend run", () => {
  test("runs are visible in the activity view, with their memory context, while they last", async () => {
    const sql = neon(url());
    // A neon() query is lazy: then() sends it.
    const sleeping = sql`SELECT pg_sleep(0.6) AS slept`.then((rows) => rows);
    const auth = { Authorization: `Bearer ${TOKEN}` };
    // deno-lint-ignore no-explicit-any
    let run: any;
    for (let i = 0; i < 100 && run === undefined; i++) {
      await new Promise((r) => setTimeout(r, 20));
      const status = await (await fetch(`${base}/admin/status`, { headers: auth })).json();
      // deno-lint-ignore no-explicit-any
      run = status.children.find((c: any) => c.kind === "backend" && c.query !== null);
    }
    expect(run).toMatchObject({ kind: "backend", state: "active" });
    expect(run.query).toContain("pg_sleep(0.6)");
    const memory = await (await fetch(`${base}/admin/children/${run.pid}/memory`, {
      headers: auth,
    })).json();
    expect(memory.contexts[0]).toMatchObject({ name: "HttpRunContext", level: 1, path: [1] });
    await sleeping;
    const after = await fetch(`${base}/admin/children/${run.pid}/memory`, { headers: auth });
    expect(after.status).toBe(404);
  });

  test("beyond max_connections a request gets 503 with SQLSTATE 53300", async () => {
    const sql = neon(url());
    const busy = [1, 2, 3].map(() => sql`SELECT pg_sleep(0.3)`.then((rows) => rows));
    await new Promise((r) => setTimeout(r, 100));
    const res = await fetch(`${base}/sql`, {
      method: "POST",
      headers: { "Neon-Connection-String": url() },
      body: JSON.stringify({ query: "SELECT 1", params: [] }),
    });
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({
      code: "53300",
      message: "sorry, too many clients already",
    });
    await Promise.all(busy);
    expect(await sql`SELECT 2 AS two`).toEqual([{ two: 2 }]);
  });
});
