/**
 * The admin API through hono's `app.request` (no socket): off without a
 * token, 401 without or with a wrong one, and each endpoint's shape; the
 * same facts from psql's side through the virtual database `pgts`, here
 * with node-postgres on a PostgreSQL-protocol port of the same server.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import pg from "pg";
import { HttpServer } from "../../src/http/mod.ts";
import type { Engine } from "../../src/core/engine/types.ts";
import { BGW_NEVER_RESTART } from "../../src/core/postmaster/mod.ts";
import { NodeSocketNetAdapter } from "../../src/adapters/node/nodenet.ts";

const TOKEN = "s3cret";
const auth = { Authorization: `Bearer ${TOKEN}` };
let server: HttpServer;

/** An engine nobody queries: enough for a server whose admin API is under test. */
const idleEngine: Engine = {
  lookupRole: () => Promise.resolve(null),
  startSession: () => Promise.reject(new Error("no sessions here")),
  close: () => Promise.resolve(),
};
const idle = { open: () => Promise.resolve(idleEngine) };

beforeAll(async () => {
  server = await HttpServer.start({
    adminToken: TOKEN,
    listen: [{ family: "tcp", host: "127.0.0.1", port: 0 }],
    net: new NodeSocketNetAdapter(),
    hba: "host all all 127.0.0.1/32 trust\n",
  });
}, 120_000);

afterAll(async () => {
  await server?.stop("fast");
});

describe("admin API", () => {
  test("without a configured token the admin API does not exist", async () => {
    const tokenless = await HttpServer.start({ engine: idle });
    try {
      const res = await tokenless.app.request("/admin/status", { headers: auth });
      expect(res.status).toBe(404);
      expect((await res.json()).message).toContain("admin API is disabled");
    } finally {
      await tokenless.stop("immediate");
    }
  });

  test("a missing or wrong token is 401 with a Bearer challenge", async () => {
    const none = await server.app.request("/admin/status");
    expect(none.status).toBe(401);
    expect(none.headers.get("WWW-Authenticate")).toContain("Bearer");
    expect(await none.json()).toEqual({ message: "admin token required", code: "28000" });
    const wrong = await server.app.request("/admin/status", {
      headers: { Authorization: "Bearer nope" },
    });
    expect(wrong.status).toBe(401);
    expect((await wrong.json()).message).toBe("invalid admin token");
  });

  test("status shows PMState and the children with kind, pid, state, start time and query", async () => {
    const res = await server.app.request("/admin/status", { headers: auth });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.pmState).toBe("PM_RUN");
    const engine = body.children.find((c: { kind: string }) => c.kind === "engine");
    expect(engine).toEqual({
      pid: expect.any(Number),
      kind: "engine",
      name: "engine",
      state: null,
      backend_start: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      query: null,
    });
  });

  test("memory of an unknown or invalid pid is a clear 404 or 400", async () => {
    const unknown = await server.app.request("/admin/children/12345/memory", { headers: auth });
    expect(unknown.status).toBe(404);
    expect((await unknown.json()).message).toContain("process 12345");
    const bad = await server.app.request("/admin/children/abc/memory", { headers: auth });
    expect(bad.status).toBe(400);
  });

  test("workers lists background workers with their handles", async () => {
    const handle = server.postmaster.registerDynamicBackgroundWorker({
      name: "sleeper",
      entry: {
        module: new URL("./worker_fixture.ts", import.meta.url).href,
        export: "sleeperMain",
      },
      flags: 0,
      startTime: "BgWorkerStart_PostmasterStart",
      restartTime: BGW_NEVER_RESTART,
    })!;
    const { pid } = await handle.waitForStartup();
    const res = await server.app.request("/admin/workers", { headers: auth });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      workers: [{
        handle: handle.id,
        name: "sleeper",
        type: "sleeper",
        dynamic: true,
        status: "BGWH_STARTED",
        pid,
      }],
    });
    await handle.terminate();
    await handle.waitForShutdown();
  });

  test("reload is accepted, and stop refuses an unknown mode", async () => {
    const reload = await server.app.request("/admin/reload", { method: "POST", headers: auth });
    expect(reload.status).toBe(202);
    expect(await reload.json()).toEqual({ reload: "requested" });
    const stop = await server.app.request("/admin/stop?mode=gentle", {
      method: "POST",
      headers: auth,
    });
    expect(stop.status).toBe(400);
    expect((await stop.json()).message).toBe('invalid shutdown mode "gentle"');
    expect(server.postmaster.pmState).toBe("PM_RUN");
  });

  test("stop with a mode shuts the server down", async () => {
    const victim = await HttpServer.start({
      adminToken: TOKEN,
      engine: idle,
    });
    const res = await victim.app.request("/admin/stop", {
      method: "POST",
      headers: { ...auth, "Content-Type": "application/json" },
      body: JSON.stringify({ mode: "smart" }),
    });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ stop: "smart" });
    expect(await victim.exited).toBe(0);
  });
});

describe("admin console (database pgts)", () => {
  const port = () => (server.postmaster.addresses[0] as { port: number }).port;
  const connect = async (user = "postgres") => {
    const client = new pg.Client({ host: "127.0.0.1", port: port(), user, database: "pgts" });
    await client.connect();
    return client;
  };

  test("SHOW ACTIVITY lists the children, including this console's backend", async () => {
    const client = await connect();
    try {
      const r = await client.query("SHOW ACTIVITY");
      expect(r.fields.map((f) => f.name)).toEqual([
        "pid",
        "kind",
        "name",
        "state",
        "backend_start",
        "query",
      ]);
      const kinds = r.rows.map((row) => row.kind);
      expect(kinds).toContain("engine");
      expect(kinds).toContain("backend");
    } finally {
      await client.end();
    }
  });

  test("SHOW WORKERS, RELOAD and SHOW MEMORY answer; anything else is a clear error", async () => {
    const client = await connect();
    try {
      expect((await client.query("SHOW WORKERS")).rows).toEqual([]);
      expect((await client.query("RELOAD;")).command).toBe("RELOAD");
      const err = await client.query("SHOW MEMORY 999").catch((e) => e);
      expect(err.code).toBe("42704");
      const unknown = await client.query("DROP TABLE x").catch((e) => e);
      expect(unknown.code).toBe("42601");
      expect(unknown.message).toBe('unrecognized admin console command "DROP TABLE x"');
      expect((await client.query("SHOW HELP")).rows.length).toBeGreaterThan(3);
    } finally {
      await client.end();
    }
  });

  test("the console is for superusers only", async () => {
    const admin = new pg.Client({
      host: "127.0.0.1",
      port: port(),
      user: "postgres",
      database: "postgres",
    });
    await admin.connect();
    await admin.query("CREATE ROLE mallory LOGIN");
    await admin.end();
    const err = await connect("mallory").catch((e) => e);
    expect(err.code).toBe("42501");
  });
});
