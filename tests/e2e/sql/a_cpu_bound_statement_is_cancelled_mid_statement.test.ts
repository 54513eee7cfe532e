/**
 * A statement that only computes (a PL/pgSQL loop) never calls out to the
 * host, yet a CancelRequest, statement_timeout and a fast or immediate
 * shutdown stop it mid-statement with PostgreSQL's errors, while other
 * connections are accepted: PGlite's heap is shared with the engine's
 * thread, which sets Postgres's interrupt flags itself
 * (src/engines/pglite/interrupt.ts). Under the default adapter (an engine
 * child per server) and `--adapter inproc`; with them, that requests and
 * answers of every size cross the exec channel whole.
 */

import { describe, expect, test } from "bun:test";
import type pg from "pg";
import {
  pgClient,
  type PgtsServer,
  sendCancelRequest,
  sleep,
  startSqlServer,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";
import type { Adapter } from "../../helpers/pgts.ts";

useSqlServers();

/** Computes for minutes without a host call (a plain loop in PL/pgSQL). */
const LOOP = "do $$ declare i bigint := 0; begin loop i := i + 1; end loop; end $$";
const COUNT = "select count(*) from generate_series(1, 1e9)";

function keyOf(client: pg.Client): { pid: number; key: number } {
  const c = client as unknown as { processID: number; secretKey: number };
  return { pid: c.processID, key: c.secretKey };
}

/**
 * Cancels `running` with CancelRequests until it settles (one that comes
 * before the statement reached the engine cancels nothing, as in
 * PostgreSQL). Returns the error and the ms from the first cancel.
 */
async function cancel(
  server: PgtsServer,
  client: pg.Client,
  running: Promise<unknown>,
): Promise<{ error: { code?: string; message: string }; ms: number }> {
  let settled = false;
  void running.then(() => (settled = true), () => (settled = true));
  await sleep(300);
  const { pid, key } = keyOf(client);
  const started = performance.now();
  for (let i = 0; i < 20 && !settled; i++) {
    await sendCancelRequest(server, pid, key);
    await Promise.race([running.catch(() => {}), sleep(500)]);
  }
  const error = await running.then(() => ({ message: "not cancelled" }), (e) => e);
  return { error, ms: performance.now() - started };
}

for (const adapter of [undefined, "subprocess"] as (Adapter | undefined)[]) {
  describe(`adapter ${adapter ?? "default"}`, () => {
    let server: PgtsServer;

    test("a CancelRequest stops a PL/pgSQL loop and a count with 57014 while others connect", async () => {
      server = await startSqlServer(adapter !== undefined ? { adapter } : {});
      const a = await pgClient(server);
      for (const sql of [LOOP, COUNT]) {
        const running = a.query(sql);
        // The listener is free while the statement computes: a new session
        // gets through startup and authentication.
        await sleep(200);
        const b = await pgClient(server);
        await b.end();
        const { error, ms } = await cancel(server, a, running);
        expect(error.code).toBe("57014");
        expect(error.message).toBe("canceling statement due to user request");
        expect(ms).toBeLessThan(5_000);
      }
      // The session goes on, and the next statement is not cancelled.
      expect((await a.query("select 'after' as v")).rows).toEqual([{ v: "after" }]);
    });

    test("requests and answers of every size pass between the engine's thread and PGlite's", async () => {
      // The exec channel (channel.ts) holds 64 KiB of request and 256 KiB of
      // answer; larger ones, and pipelined answers, travel as messages.
      const a = await pgClient(server);
      const big = "x".repeat(100_000);
      expect((await a.query(`select length('${big}') as n`)).rows).toEqual([{ n: 100_000 }]);
      for (const n of [200_000, 300_000, 3_000_000]) {
        const r = await a.query("select repeat('y', $1) as s", [n]);
        expect(r.rows[0].s.length).toBe(n);
      }
      const rows = await a.query(
        "select g, repeat('z', 100) as f from generate_series(1, 20000) g",
      );
      expect(rows.rows.length).toBe(20_000);
      expect(rows.rows[19_999].g).toBe(20_000);
    });

    test("statement_timeout ends a PL/pgSQL loop; the next statement runs", async () => {
      const a = await pgClient(server);
      await a.query("set statement_timeout = 300");
      const started = performance.now();
      const e = await a.query(LOOP).then(() => null, (e) => e);
      expect(e?.code).toBe("57014");
      expect(e?.message).toBe("canceling statement due to statement timeout");
      expect(performance.now() - started).toBeLessThan(5_000);
      expect((await a.query("select 1 as v")).rows).toEqual([{ v: 1 }]);
    });

    // One shutdown mode per adapter: each ends the shared server.
    const mode = adapter === undefined ? "fast" : "immediate";
    test(`${mode} shutdown during a PL/pgSQL loop: the session ends and the server stops`, async () => {
      const a = await pgClient(server);
      const running = a.query(LOOP).then(() => null, (e) => e);
      await sleep(500);
      const started = performance.now();
      const stopped = await server.stop(mode);
      expect(stopped.code).toBe(0);
      expect(performance.now() - started).toBeLessThan(10_000);
      const e = await running;
      // Fast: the backend's FATAL; immediate: the connection is just gone.
      if (mode === "fast") expect(e?.code).toBe("57P01");
      else expect(e).not.toBeNull();
    });
  });
}
