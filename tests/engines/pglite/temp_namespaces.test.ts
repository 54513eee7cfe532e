/**
 * Temporary schemas per session when PGlite itself fails (an exec that
 * throws, as an engine failure does): the failing session ends up with no
 * schema, as its rolled-back transaction left it, and no other session's
 * is taken or lost, whether the failure came before the backend was given
 * the session's schema or after PostgreSQL made one for it. Driven by
 * node-postgres through the test engine server, with faults injected in
 * the executor (the end-to-end tests are in tests/e2e/sql).
 */

import { afterAll, beforeAll, expect, test } from "bun:test";
import pg from "pg";
import { openEngine, type PgliteEngine } from "../../../src/engines/pglite/mod.ts";
import type { RawExecutor } from "../../../src/engines/pglite/executor.ts";
import {
  type EngineServer,
  startEngineServer,
  startMemoryExecutor,
} from "../../helpers/engine-server.ts";

const BEFORE = new TextEncoder().encode("pgts_fault_before");
const AFTER = new TextEncoder().encode("pgts_fault_after");

function has(b: Uint8Array, what: Uint8Array): boolean {
  outer: for (let i = 0; i + what.length <= b.length; i++) {
    for (let j = 0; j < what.length; j++) if (b[i + j] !== what[j]) continue outer;
    return true;
  }
  return false;
}

/** Fails an exec naming BEFORE without running it, one naming AFTER once it ran. */
function faulty(inner: RawExecutor): RawExecutor {
  return {
    get onSignals() {
      return inner.onSignals;
    },
    set onSignals(f) {
      inner.onSignals = f;
    },
    tempShared: inner.tempShared,
    wal: inner.wal,
    exec: async (b, on, o) => {
      if (has(b, BEFORE)) throw new Error("injected fault before the exec");
      // Its answer is lost with the failure, as a PGlite exception loses it.
      const r = await inner.exec(b, has(b, AFTER) ? () => {} : on, o);
      if (has(b, AFTER)) throw new Error("injected fault after the exec");
      return r;
    },
    interrupt: () => inner.interrupt(),
    close: () => inner.close(),
  } as RawExecutor;
}

let engine: PgliteEngine;
let server: EngineServer;
const clients: pg.Client[] = [];

beforeAll(async () => {
  engine = await openEngine("memory://", { executor: faulty(await startMemoryExecutor()) });
  server = startEngineServer(engine);
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => {})));
  await server?.stop();
  await engine?.close();
}, 30_000);

async function client(): Promise<pg.Client> {
  const c = new pg.Client({
    host: "127.0.0.1",
    port: server.port,
    user: "postgres",
    database: "postgres",
  });
  c.on("error", () => {});
  await c.connect();
  clients.push(c);
  return c;
}

const one = async (c: pg.Client, sql: string) =>
  Object.values((await c.query(sql)).rows[0] ?? {})[0];
const codeOf = (c: pg.Client, sql: string) =>
  c.query(sql).then(() => "ok", (e: { code?: string }) => e.code ?? String(e));

test("the per-session temporary schemas are on for this executor", () => {
  expect(engine.tempShared).toBeNull();
});

test("an engine failure after PostgreSQL made a session's schema leaves it none, and others theirs", async () => {
  const x = await client();
  await x.query("create temp table kept (x int)");
  await x.query("insert into kept values (1)");
  // The failing exec is s's first: the backend last ran for x.
  const s = await client();
  expect(await codeOf(s, "create temp table lost (x int); select 'pgts_fault_after'"))
    .toBe("XX000");
  expect(await codeOf(s, "select * from lost")).toBe("42P01");
  expect(await one(s, "select pg_my_temp_schema()::int")).toBe(0);
  expect(await one(x, "select count(*)::int from kept")).toBe(1);
  await s.query("create temp table lost (x int)");
  expect(await one(s, "select count(*)::int from lost")).toBe(0);
  expect(await codeOf(s, "select * from kept")).toBe("42P01");
  expect(await one(x, "select count(*)::int from kept")).toBe(1);
});

test("an engine failure before the backend had a session's schema takes no other session's", async () => {
  const x = await client();
  await x.query("create temp table theirs (x int)");
  const s = await client();
  expect(await codeOf(s, "select 'pgts_fault_before'")).toBe("XX000");
  expect(await one(s, "select pg_my_temp_schema()::int")).toBe(0);
  expect(await codeOf(s, "select * from theirs")).toBe("42P01");
  await s.query("create temp table mine (x int)");
  expect(await codeOf(x, "select * from mine")).toBe("42P01");
  expect(await one(x, "select count(*)::int from theirs")).toBe(0);
});
