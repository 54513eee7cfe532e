/**
 * Runs the HTTP adapter under Deno (Deno.serve on port 0) and drives it with
 * the real `@neondatabase/serverless` client; prints one JSON line of
 * results for tests/http/deno.test.ts to check.
 */

import { neon, neonConfig } from "@neondatabase/serverless";
import { serveHttp } from "../../src/http/mod.ts";

const started = performance.now();
const { server, served } = await serveHttp({ adminToken: "t" });
neonConfig.fetchEndpoint = `http://127.0.0.1:${served.port}/sql`;
const sql = neon("postgres://postgres@127.0.0.1/postgres");
const out: Record<string, unknown> = { runtime: "Deno" in globalThis ? "deno" : "other" };
try {
  out.firstQuery = await sql`SELECT 1 AS one`;
  out.startMs = Math.round(performance.now() - started);
  out.params = await sql`SELECT ${42}::int AS i, ${"deno"}::text AS t, ${false}::bool AS b,
    ${null}::text AS n, ${{ k: "v" }}::json AS j, ${[1.5, 2]}::float8[] AS f`;
  await sql`CREATE TABLE d (id int PRIMARY KEY)`;
  out.committed = await sql.transaction([
    sql`INSERT INTO d VALUES (1), (2)`,
    sql`SELECT count(*)::int AS n FROM d`,
  ]);
  const failed = await sql.transaction([
    sql`INSERT INTO d VALUES (3)`,
    sql`INSERT INTO d VALUES (1)`,
  ]).then(() => null, (e) => ({ code: e.code, name: e.name }));
  out.failed = failed;
  out.afterRollback = await sql`SELECT count(*)::int AS n FROM d`;
  out.error = await sql`SELEC 1`.then(() => null, (e) => ({
    code: e.code,
    position: e.position,
  }));
  const status = await fetch(`http://127.0.0.1:${served.port}/admin/status`, {
    headers: { Authorization: "Bearer t" },
  });
  out.adminStatus = status.status;
} finally {
  out.exitCode = await server.stop("fast");
}
console.log(JSON.stringify(out));
