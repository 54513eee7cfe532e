/**
 * statement_timeout and idle_session_timeout on the embedded engine, where
 * PostgreSQL's own timers are off: a statement running longer than the
 * session's statement_timeout ends with PostgreSQL's 57014 "canceling
 * statement due to statement timeout" (set by SET, SET LOCAL inside a
 * block, or the startup packet's options), a client's cancel still says
 * "user request", other sessions are served meanwhile, a wait for the
 * engine another session holds ends the same way, and a session idle
 * longer than idle_session_timeout is closed with 57P05. Under the default
 * server (the in-process adapter, the engine on its Worker) and the inline
 * engine placement.
 */

import { describe, expect, test } from "bun:test";
import postgres from "postgres";
import {
  pgClient,
  psql,
  sendCancelRequest,
  sharedServer,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";
import { type Adapter, sleep, waitFor } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

const TIMEOUT_TEXT = "canceling statement due to statement timeout";

async function errorOf(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code?: string; message: string };
  }
  throw new Error("the statement succeeded");
}

const SERVERS: Array<[string, { adapter?: Adapter; settings?: Record<string, string> }]> = [
  ["default server", {}],
  ["inline engine", { adapter: "inproc", settings: { engine_placement: "inline" } }],
];

for (const [name, options] of SERVERS) {
  describe(name, () => {
    const server = sharedServer(options);

    test("a statement longer than statement_timeout ends with 57014 and the session goes on", async () => {
      const s = server();
      const a = await pgClient(s);
      const b = await pgClient(s);
      await a.query("SET statement_timeout = 200");
      const started = performance.now();
      const err = await errorOf(a.query("select pg_sleep(10)"));
      const took = performance.now() - started;
      expect({ code: err.code, message: err.message }).toEqual({
        code: "57014",
        message: TIMEOUT_TEXT,
      });
      expect(took).toBeLessThan(5_000);
      // The session and the others go on.
      expect((await a.query("select 1 as one")).rows).toEqual([{ one: 1 }]);
      expect((await b.query("select 2 as two")).rows).toEqual([{ two: 2 }]);
      // Another session never had the timeout.
      expect((await b.query("select pg_sleep(0.4), 'slept' as s")).rows[0].s).toBe("slept");
      await a.query("RESET statement_timeout");
      expect((await a.query("select pg_sleep(0.4), 'slept' as s")).rows[0].s).toBe("slept");
      await a.end();
      await b.end();
    });

    if (name === "default server") {
      test("statement_timeout and lock_timeout end a wait for the engine another session's transaction holds, as they end a wait for a lock", async () => {
        const s = server();
        const a = await pgClient(s);
        const b = await pgClient(s);
        const c = await pgClient(s);
        await b.query("SET statement_timeout = 300");
        await c.query("SET lock_timeout = 300");
        await a.query("begin");
        await a.query("select 1");
        // Before, B waited for pgts.engine_wait_timeout (5 s) or until A's
        // transaction was ended for holding the engine idle (2 s), then ran.
        const err = await errorOf(b.query("select count(*) from pg_class"));
        expect({ code: err.code, message: err.message }).toEqual({
          code: "57014",
          message: TIMEOUT_TEXT,
        });
        // lock_timeout, when it is the shorter bound, as PostgreSQL words it.
        const locked = await errorOf(c.query("select count(*) from pg_class"));
        expect({ code: locked.code, message: locked.message }).toEqual({
          code: "55P03",
          message: "canceling statement due to lock timeout",
        });
        await a.query("commit");
        expect((await b.query("select 3 as n")).rows[0].n).toBe(3);
        await Promise.all([a.end(), b.end(), c.end()]);
      });
    }

    test("statement_timeout times each statement of a driver's pipeline, not the pipeline", async () => {
      const s = server();
      // postgres.js sends the queries of one connection together, each batch ended by its Sync.
      const sql = postgres({
        host: s.host,
        port: s.port,
        user: "postgres",
        database: "postgres",
        max: 1,
        connection: { statement_timeout: 800 },
      });
      await sql`select 1`;
      const each = await Promise.allSettled(
        [1, 2, 3, 4, 5].map(() => sql`select pg_sleep(0.2)`),
      );
      expect(each.map((r) => r.status)).toEqual(Array(5).fill("fulfilled"));
      const long = await errorOf(sql`select pg_sleep(10)`);
      expect({ code: long.code, message: long.message }).toEqual({
        code: "57014",
        message: TIMEOUT_TEXT,
      });
      await sql.end();
    });

    test("SET LOCAL statement_timeout inside a block applies to the block's next statements only", async () => {
      const s = server();
      const a = await pgClient(s);
      await a.query("BEGIN");
      await a.query("SET LOCAL statement_timeout = '150ms'");
      const err = await errorOf(a.query("select pg_sleep(10)"));
      expect(err.code).toBe("57014");
      expect(err.message).toBe(TIMEOUT_TEXT);
      await a.query("ROLLBACK");
      expect((await a.query("select pg_sleep(0.4), 'slept' as s")).rows[0].s).toBe("slept");
      await a.end();
    });

    test("statement_timeout from the startup packet's options, through psql", async () => {
      const s = server();
      const r = await psql(s, ["-c", "select pg_sleep(10)"], {
        env: { PGOPTIONS: "-c statement_timeout=300" },
      });
      expect(r.code).not.toBe(0);
      expect(r.err).toContain(`ERROR:  ${TIMEOUT_TEXT}`);
    });

    test("statement_timeout times each statement of a Query of several, as PostgreSQL does", async () => {
      const s = server();
      const env = { PGOPTIONS: "-c statement_timeout=1000" };
      // 0.8 s and 0.4 s: each under the timeout, together over it. (A count
      // over a numeric series took 0.6–0.9 s on a loaded host: too near.)
      const each = await psql(s, [
        "-At",
        "-c",
        "select pg_sleep(0.8); select pg_sleep(0.4); select 'each' as s",
      ], { env });
      expect({ code: each.code, err: each.err, out: each.out.trim().split("\n").at(-1) })
        .toEqual({ code: 0, err: "", out: "each" });
      // A long second statement is stopped a whole timeout after it began,
      // not after the Query began: a CPU-bound one too, but for the inline
      // placement, which stops a statement only at its calls to the host.
      const second = options.settings?.engine_placement === "inline"
        ? "select pg_sleep(30)"
        : "select count(*) from generate_series(1, 1e9)";
      const started = performance.now();
      const long = await psql(s, ["-c", `select pg_sleep(0.8); ${second}`], { env });
      const took = performance.now() - started;
      expect(long.err).toContain(`ERROR:  ${TIMEOUT_TEXT}`);
      expect(took).toBeGreaterThan(1_700);
      expect(took).toBeLessThan(10_000);
    });

    // The inline placement runs the statement on the thread that would read
    // the CancelRequest: a cancel acts only once it ends (issue 19).
    const cancelTest = options.settings?.engine_placement === "inline" ? test.skip : test;
    cancelTest("a client's cancel under a statement_timeout still says user request", async () => {
      const s = server();
      const a = await pgClient(s);
      await a.query("SET statement_timeout = '60s'");
      const pid = (await a.query("select pg_backend_pid() as pid")).rows[0].pid;
      const running = errorOf(a.query("select pg_sleep(10)"));
      await sleep(300);
      // A CancelRequest with the key from a's BackendKeyData, as a driver sends it.
      const key = (a as unknown as { secretKey: number }).secretKey;
      await sendCancelRequest(s, (a as unknown as { processID: number }).processID, key);
      const err = await running;
      expect(err.code).toBe("57014");
      expect(err.message).toBe("canceling statement due to user request");
      expect(pid).toBeDefined();
      await a.end();
    });

    test("transaction_timeout ends a session whose transaction runs longer, idle time included, with 25P04", async () => {
      const s = server();
      const a = await pgClient(s);
      const b = await pgClient(s);
      await a.query("create table if not exists tt_rows (n int)");
      await a.query("SET transaction_timeout = 500");
      // Shorter transactions, one after another, are each timed on their own.
      for (let i = 0; i < 3; i++) await a.query("select pg_sleep(0.3)");
      await a.query("BEGIN");
      await a.query("insert into tt_rows values (1)");
      await waitFor("the transaction-timeout FATAL", () => a.asyncErrors.length > 0, {
        timeoutMs: 5_000,
      });
      const e = a.asyncErrors[0] as Error & { code?: string };
      expect({ code: e.code, message: e.message }).toEqual({
        code: "25P04",
        message: "terminating connection due to transaction timeout",
      });
      // Its transaction was rolled back; the others go on.
      expect((await b.query("select count(*)::int as n from tt_rows")).rows).toEqual([{ n: 0 }]);
      // SET LOCAL inside a block starts the timer from there, as its assign hook does.
      const c = await pgClient(s);
      await c.query("BEGIN");
      await c.query("SET LOCAL transaction_timeout = '300ms'");
      await waitFor("the FATAL after SET LOCAL", () => c.asyncErrors.length > 0, {
        timeoutMs: 5_000,
      });
      expect((c.asyncErrors[0] as Error & { code?: string }).code).toBe("25P04");
      // Mid-statement, a statement_timeout no shorter than it standing
      // aside: the FATAL, not 57014 (the inline placement acts only once a
      // statement ends).
      if (options.settings?.engine_placement !== "inline") {
        const d = await pgClient(s);
        await d.query("SET transaction_timeout = 400");
        await d.query("SET statement_timeout = 400");
        const started = performance.now();
        const err = await errorOf(d.query("select pg_sleep(30)"));
        expect({ code: err.code, message: err.message }).toEqual({
          code: "25P04",
          message: "terminating connection due to transaction timeout",
        });
        expect(performance.now() - started).toBeLessThan(5_000);
      }
      await b.end();
    });

    test("a session idle longer than idle_session_timeout is closed with 57P05", async () => {
      const s = server();
      const a = await pgClient(s);
      await a.query("SET idle_session_timeout = 300");
      await waitFor("the idle-session FATAL", () => a.asyncErrors.length > 0, { timeoutMs: 5_000 });
      const e = a.asyncErrors[0] as Error & { code?: string };
      expect(e.code).toBe("57P05");
      expect(e.message).toBe("terminating connection due to idle-session timeout");
      // A busy session with the same setting is not closed while it works.
      const b = await pgClient(s);
      await b.query("SET idle_session_timeout = 300");
      for (let i = 0; i < 6; i++) {
        await b.query("select pg_sleep(0.1)");
      }
      expect(b.asyncErrors).toEqual([]);
      await b.end();
    });
  });
}

describe("transaction_timeout as the server's default", () => {
  const server = sharedServer({ settings: { transaction_timeout: "400ms" } });

  test("acts on every session that does not set its own", async () => {
    const s = server();
    const a = await pgClient(s);
    expect((await a.query("show transaction_timeout")).rows).toEqual([
      { transaction_timeout: "400ms" },
    ]);
    const err = await errorOf(a.query("select pg_sleep(30)"));
    expect({ code: err.code, message: err.message }).toEqual({
      code: "25P04",
      message: "terminating connection due to transaction timeout",
    });
    const b = await pgClient(s);
    await b.query("SET transaction_timeout = 0");
    expect((await b.query("select pg_sleep(0.6), 'slept' as s")).rows[0].s).toBe("slept");
    await b.end();
  });
});
