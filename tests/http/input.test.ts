/**
 * Bad input to `POST /sql` through hono's `app.request`: each is a clear
 * JSON error with a fitting status and SQLSTATE, and the server goes on
 * serving the next request. Also the Neon header semantics a driver never
 * shows directly: raw text output, array mode, per-query arrayMode and the
 * batch headers echoed back.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { HttpServer } from "../../src/http/mod.ts";

let server: HttpServer;
const CONN = "postgres://postgres@localhost/postgres";

beforeAll(async () => {
  // app.request has no client address: a line for 0.0.0.0 admits it.
  server = await HttpServer.start({ maxBodyBytes: 1024, hba: "host all all 0.0.0.0/32 trust\n" });
}, 120_000);

afterAll(async () => {
  await server?.stop("fast");
});

function post(body: string, headers: Record<string, string> = {}) {
  return server.app.request("/sql", {
    method: "POST",
    headers: { "Neon-Connection-String": CONN, ...headers },
    body,
  });
}

async function stillServes(): Promise<void> {
  const res = await post(JSON.stringify({ query: "SELECT 1 AS one" }));
  expect(res.status).toBe(200);
  expect((await res.json()).rows).toEqual([{ one: 1 }]);
}

describe("bad input to POST /sql", () => {
  test("a body that is not JSON is 400 08P01", async () => {
    const res = await post("SELECT 1");
    expect(res.status).toBe(400);
    const body = await res.json();
    expect(body.code).toBe("08P01");
    expect(body.message).toStartWith("request body is not valid JSON");
    await stillServes();
  });

  test("missing fields and wrong shapes are 400 with what is wrong", async () => {
    const cases: [unknown, string][] = [
      [{}, 'the request body needs a "query" string'],
      [[1], 'request body must be a JSON object with "query" or "queries"'],
      [{ query: 1 }, 'the request body needs a "query" string'],
      [{ query: "SELECT 1", params: "x" }, '"params" of the request body must be an array'],
      [{ queries: "SELECT 1" }, '"queries" must be an array'],
      [{ queries: [{ sql: "SELECT 1" }] }, 'queries[0] needs a "query" string'],
    ];
    for (const [body, message] of cases) {
      const res = await post(JSON.stringify(body));
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ message, code: "08P01" });
    }
    await stillServes();
  });

  test("a missing or malformed connection string is 400", async () => {
    const none = await server.app.request("/sql", { method: "POST", body: "{}" });
    expect(none.status).toBe(400);
    expect((await none.json()).message).toBe('missing "Neon-Connection-String" header');
    const bad = await post("{}", { "Neon-Connection-String": "mysql://x@y/z" });
    expect(bad.status).toBe(400);
    expect((await bad.json()).message).toContain("not a postgres:// URL");
  });

  test("params of the wrong arity are the engine's 08P01", async () => {
    const res = await post(JSON.stringify({ query: "SELECT $1::int + $2::int", params: [1] }));
    expect(res.status).toBe(400);
    const body = await res.json();
    expect(body.code).toBe("08P01");
    expect(body.message).toContain("bind message supplies 1 parameters");
    await stillServes();
  });

  test("a body over the configured limit is 413", async () => {
    const res = await post(JSON.stringify({ query: `SELECT '${"x".repeat(2000)}'` }));
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({
      message: "request body is too large (max is 1024 bytes)",
      code: "54000",
    });
    await stillServes();
  });

  test("an invalid isolation level is 400 22023", async () => {
    const res = await post(JSON.stringify({ queries: [{ query: "SELECT 1" }] }), {
      "Neon-Batch-Isolation-Level": "Chaos",
    });
    expect(res.status).toBe(400);
    expect((await res.json()).code).toBe("22023");
  });

  test("an unknown route is 404 and a wrong method on /sql is 405", async () => {
    const res = await server.app.request("/nowhere");
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ message: "no route for GET /nowhere" });
    const get = await server.app.request("/sql");
    expect(get.status).toBe(405);
    expect(get.headers.get("Allow")).toBe("POST, OPTIONS");
    await stillServes();
  });

  test("several statements in one query are refused, as for any prepared statement", async () => {
    const res = await post(JSON.stringify({ query: "SELECT 1; SELECT 2" }));
    expect(res.status).toBe(400);
    expect((await res.json()).code).toBe("42601");
  });
});

describe("Neon headers", () => {
  test("raw text output keeps every value a string; array mode gives arrays", async () => {
    const res = await post(
      JSON.stringify({ query: "SELECT 1 AS a, true AS b, NULL::int AS c", params: [] }),
      { "Neon-Raw-Text-Output": "true", "Neon-Array-Mode": "true" },
    );
    const body = await res.json();
    expect(body.rows).toEqual([["1", "t", null]]);
    expect(body.rowAsArray).toBe(true);
    expect(body.fields[0]).toEqual({
      name: "a",
      dataTypeID: 23,
      tableID: 0,
      columnID: 0,
      dataTypeSize: 4,
      dataTypeModifier: -1,
      format: "text",
    });
  });

  test("a batch answers {results}, honours per-query arrayMode and echoes its headers", async () => {
    const res = await post(
      JSON.stringify({
        queries: [{ query: "SELECT 1 AS x", arrayMode: true }, { query: "SELECT 2 AS y" }],
      }),
      { "Neon-Batch-Isolation-Level": "RepeatableRead", "Neon-Batch-Read-Only": "true" },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("Neon-Batch-Isolation-Level")).toBe("RepeatableRead");
    expect(res.headers.get("Neon-Batch-Read-Only")).toBe("true");
    const { results } = await res.json();
    expect(results.map((r: { rows: unknown }) => r.rows)).toEqual([[[1]], [{ y: 2 }]]);
  });

  test("float specials stay strings and arrays of text are JSON arrays", async () => {
    const res = await post(
      JSON.stringify({
        query: "SELECT 'NaN'::float8 AS n, ARRAY['a', NULL, 'b c', '\"q\"'] AS t, $1::int[] AS p",
        params: [[1, null, 3]],
      }),
    );
    expect((await res.json()).rows).toEqual([
      { n: "NaN", t: ["a", null, "b c", '"q"'], p: [1, null, 3] },
    ]);
  });
});
