/**
 * The HTTP adapter in front of a real PostgreSQL 15 (`engine:
 * "postgres://..."`), listening on port 0 and driven by the real
 * `@neondatabase/serverless` client: parameters come back typed, a batch
 * commits or rolls back as one upstream transaction, errors keep the
 * upstream's SQLSTATE, passwords are checked against the upstream's
 * pg_authid, and each request is an upstream session of its own, closed
 * when it ends (a temp table lives for one request). `pgts serve-http
 * --engine URL` does the same with no data directory.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { neon, neonConfig } from "@neondatabase/serverless";
import { type HttpServer, type Served, serveHttp } from "../../../src/http/mod.ts";
import { pgtsCommand, TEST_RUNTIME } from "../../helpers/pgts.ts";
import { UpstreamPostgres, useUpstreamServers, waitFor } from "../../helpers/upstream.ts";

const HBA = [
  "host all alice 127.0.0.1/32 scram-sha-256",
  "host all all 127.0.0.1/32 trust",
].join("\n");

let upstream: UpstreamPostgres;
let server: HttpServer | null = null;
let served: Served;
const url = (user = "postgres", db = "postgres") => `postgres://${user}@127.0.0.1/${db}`;

// Registered before the upstream's cleanup: pgts lets go of its sessions first.
afterAll(async () => {
  await server?.stop("fast");
});
useUpstreamServers({ timeoutMs: 90_000 });

beforeAll(async () => {
  upstream = await UpstreamPostgres.start({ auth: "scram-sha-256" });
  ({ server, served } = await serveHttp({ engine: upstream.url(), hba: HBA, port: 0 }));
  neonConfig.fetchEndpoint = `http://127.0.0.1:${served.port}/sql`;
  const role = await upstream.psql("CREATE ROLE alice LOGIN PASSWORD 'wonderland'");
  if (role.code !== 0) throw new Error(`CREATE ROLE failed: ${role.err}`);
}, 90_000);

// deno-lint-ignore no-explicit-any
const errorOf = async (p: Promise<unknown>): Promise<any> => await p.then(() => null, (e) => e);

/** Upstream backends that pgts opened (the role lookups say "pgts"; sessions run as a client). */
async function pgtsBackends(): Promise<number> {
  const r = await upstream.psql(
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' " +
      "AND pid <> pg_backend_pid()",
  );
  return Number(r.out.trim());
}

describe("the Neon driver through pgts in front of PostgreSQL", () => {
  test("a query runs on the upstream, with parameters of common types typed back", async () => {
    const sql = neon(url());
    const when = new Date("2024-05-06T07:08:09.000Z");
    const [row] = await sql`SELECT ${1}::int AS i, ${2.5}::float8 AS f, ${"it's"}::text AS t,
      ${true}::bool AS b, ${null}::int AS n, ${{ a: [1, "x"] }}::jsonb AS j,
      ${[1, 2, 3]}::int[] AS arr, ${when}::timestamptz AS ts, ${"9007199254740993"}::int8 AS big,
      ${"7.50"}::numeric AS num, ${new Uint8Array([0, 255])}::bytea AS bytes,
      split_part(version(), ' ', 2) AS version`;
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
      num: "7.50",
      bytes: Buffer.from([0, 255]),
      version: expect.stringMatching(/^15\./),
    });
  });

  test("a transaction commits all its queries", async () => {
    const sql = neon(url());
    await sql`CREATE TABLE kv (k text PRIMARY KEY, v int)`;
    const [, , count] = await sql.transaction([
      sql`INSERT INTO kv VALUES ('a', 1), ('b', 2)`,
      sql`UPDATE kv SET v = v * 10 WHERE k = 'a'`,
      sql`SELECT count(*)::int AS n, sum(v)::int AS s FROM kv`,
    ]);
    expect(count).toEqual([{ n: 2, s: 12 }]);
    const direct = await upstream.psql("SELECT string_agg(k || '=' || v, ',' ORDER BY k) FROM kv");
    expect(direct.out.trim()).toBe("a=10,b=2");
  });

  test("a transaction that fails rolls back, and the error keeps its SQLSTATE", async () => {
    const sql = neon(url());
    const err = await errorOf(sql.transaction([
      sql`INSERT INTO kv VALUES ('c', 3)`,
      sql`INSERT INTO kv VALUES ('a', 0)`,
    ]));
    expect(err.code).toBe("23505");
    expect(err.message).toContain("duplicate key value violates unique constraint");
    expect(err.constraint).toBe("kv_pkey");
    expect(await sql`SELECT count(*)::int AS n FROM kv WHERE k = 'c'`).toEqual([{ n: 0 }]);
    // The session closed clean: nothing is left holding a lock on kv.
    expect(await sql`INSERT INTO kv VALUES ('c', 3) RETURNING k`).toEqual([{ k: "c" }]);
  });

  test("an error carries the upstream's SQLSTATE, message and position", async () => {
    const err = await errorOf(neon(url())`SELECT * FROM no_such_table`);
    expect(err.name).toBe("NeonDbError");
    expect(err.code).toBe("42P01");
    expect(err.message).toBe('relation "no_such_table" does not exist');
    expect(err.position).toBe("15");
    expect(err.severity).toBe("ERROR");
    const zero = await errorOf(neon(url())`SELECT 1 / ${0}::int`);
    expect(zero.code).toBe("22012");
  });

  test("a temp table lives within one request's transaction only", async () => {
    const sql = neon(url());
    const [, rows, [pid]] = await sql.transaction([
      sql`CREATE TEMP TABLE scratch AS SELECT 42 AS x`,
      sql`SELECT x FROM scratch`,
      sql`SELECT pg_backend_pid() AS pid`,
    ]);
    expect(rows).toEqual([{ x: 42 }]);
    const err = await errorOf(sql`SELECT x FROM scratch`);
    expect(err.code).toBe("42P01");
    // Each request is an upstream session of its own, closed when it ends.
    const [other] = await sql`SELECT pg_backend_pid() AS pid`;
    expect(other!.pid).not.toBe((pid as { pid: number }).pid);
    await waitFor("pgts's upstream sessions to close", async () => (await pgtsBackends()) === 0);
  });

  test("a password is checked against the upstream's pg_authid", async () => {
    const ok = neon("postgres://alice:wonderland@127.0.0.1/postgres");
    expect(await ok`SELECT current_user AS u, session_user AS s`).toEqual([
      { u: "alice", s: "postgres" },
    ]);
    const bad = await errorOf(neon("postgres://alice:looking-glass@127.0.0.1/postgres")`SELECT 1`);
    expect(bad.code).toBe("28P01");
    expect(bad.message).toBe('password authentication failed for user "alice"');
    const none = await errorOf(neon(url("nobody"))`SELECT 1`);
    expect(none.code).toBe("28000");
    const db = await errorOf(neon(url("postgres", "no_such_db"))`SELECT 1`);
    expect(db.code).toBe("3D000");
  });
});

/** `pgts serve-http --engine URL --port 0 ARGS` in `cwd`, once it serves; its port and log. */
async function serveHttpCli(cwd: string, args: string[] = []) {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1" };
  delete env["PGDATA"];
  const child = Bun.spawn(
    pgtsCommand(TEST_RUNTIME, ["serve-http", "--engine", upstream.url(), "--port", "0", ...args]),
    { cwd, env, stdin: "ignore", stdout: "ignore", stderr: "pipe" },
  );
  const out = { child, port: 0, log: "" };
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) out.log += decoder.decode(chunk, { stream: true });
  })().catch(() => {});
  try {
    out.port = await waitFor("serve-http to listen", () => {
      if (child.exitCode !== null) throw new Error(`serve-http exited:\n${out.log}`);
      const m = /serving SQL over HTTP on http:\/\/127\.0\.0\.1:(\d+)\/sql/.exec(out.log);
      // The upstream line is logged right after this one; stderr may bring
      // it in a later chunk, so both are waited for.
      if (m === null || !out.log.includes("in front of the upstream server")) return undefined;
      return Number(m[1]);
    }, { timeoutMs: 30_000, detail: () => out.log });
  } catch (e) {
    child.kill("SIGKILL");
    throw e;
  }
  return out;
}

describe("pgts serve-http --engine URL", () => {
  test("serves an upstream with no data directory, and stops on SIGINT", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "pgts-http-upstream-"));
    let child: ReturnType<typeof Bun.spawn> | null = null;
    try {
      const started = await serveHttpCli(cwd);
      child = started.child;
      const { port, log } = started;
      expect(log).toContain("in front of the upstream server");
      expect(log).not.toContain("upstream secret");
      neonConfig.fetchEndpoint = `http://127.0.0.1:${port}/sql`;
      const sql = neon(url());
      expect(await sql`SELECT count(*)::int AS n FROM kv`).toEqual([{ n: 3 }]);
      child.kill("SIGINT");
      expect(await child.exited).toBe(0);
      expect(Array.from(new Bun.Glob("**").scanSync({ cwd, dot: true }))).toEqual([]);
    } finally {
      neonConfig.fetchEndpoint = `http://127.0.0.1:${served.port}/sql`;
      child?.kill("SIGKILL");
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  test("-c auth_file: a role whose line has its password logs in upstream as itself", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "pgts-http-upstream-"));
    writeFileSync(join(cwd, "userlist.txt"), '"alice" "wonderland"\n');
    let child: ReturnType<typeof Bun.spawn> | null = null;
    try {
      const started = await serveHttpCli(cwd, ["-c", "auth_file=userlist.txt"]);
      child = started.child;
      neonConfig.fetchEndpoint = `http://127.0.0.1:${started.port}/sql`;
      const sql = neon("postgres://alice:wonderland@127.0.0.1/postgres");
      // Without auth_file: the URL's user with role alice (session_user postgres).
      expect(await sql`SELECT current_user AS u, session_user AS s`).toEqual([
        { u: "alice", s: "alice" },
      ]);
      expect(started.log).not.toContain("wonderland");
    } finally {
      neonConfig.fetchEndpoint = `http://127.0.0.1:${served.port}/sql`;
      child?.kill("SIGKILL");
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});

describe("an upstream that goes away", () => {
  test("requests fail with 08001 while it is down and succeed once it is back", async () => {
    await upstream.stop("fast");
    const err = await errorOf(neon(url())`SELECT 1`);
    expect(err.code).toBe("08001");
    expect(err.message).toStartWith("could not connect to the upstream server: ");
    await upstream.startServer();
    expect(await neon(url())`SELECT count(*)::int AS n FROM kv`).toEqual([{ n: 3 }]);
  });
});
