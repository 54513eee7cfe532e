/**
 * Shutdown modes of a real pgts server, as a client sees them (psql and
 * node-postgres), under the subprocess adapter and the in-process one (the default).
 * `pgts stop` runs under the server's runtime: in the Deno pass (scripts/test.sh)
 * the server and the command that stops it are both Deno's.
 */

import { describe, expect, test } from "bun:test";
import type pg from "pg";
import {
  type Adapter,
  sleep,
  startPgts,
  TEST_RUNTIME,
  usePgtsServers,
  waitFor,
} from "../../helpers/pgts.ts";

usePgtsServers();

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error("expected a rejection");
}

/** Sends a query without awaiting it (its rejection is observed later). */
function runLong(client: pg.Client, sql: string) {
  const result = client.query(sql);
  result.catch(() => {});
  return result;
}

for (const adapter of ["subprocess", "inproc"] as Adapter[]) {
  // In the Deno pass the forked Deno backends' part of a shutdown (the
  // signals they get: fast, immediate) runs under both adapters; a clean
  // start and stop and a smart shutdown, which only the postmaster's code
  // decides, under the default one (CI's 15 minutes).
  const postmasterOnly = adapter === "subprocess" && TEST_RUNTIME === "deno" ? test.skip : test;
  describe(`pgts start --adapter ${adapter}`, () => {
    postmasterOnly("starts, serves psql and node-postgres, and stops cleanly", async () => {
      const server = await startPgts({ adapter });
      const r = await server.psql(
        "create table t (a int); insert into t values (1), (2); select sum(a) from t",
      );
      expect(r).toMatchObject({ code: 0, out: "3\n" });
      const client = await server.client();
      expect((await client.query("select count(*)::int as n from t")).rows).toEqual([{ n: 2 }]);
      await client.end();
      const stop = await server.stop("smart", server.runtime);
      expect(stop.code).toBe(0);
      expect(stop.out).toContain("server stopped");
      expect(await server.exited).toBe(0);
      expect(server.log).toContain("LOG:  database system is ready to accept connections");
      expect(server.log).toContain("LOG:  received smart shutdown request");
      expect(server.log).toContain("LOG:  database system is shut down");
      expect(server.pidFile()).toBeNull();
    });

    postmasterOnly(
      "smart shutdown refuses new connections with 57P03 and waits for the open session",
      async () => {
        const server = await startPgts({ adapter });
        const session = await server.client();
        await session.query("create table kept (a int)");
        const stopping = server.stop("smart", server.runtime);
        await server.waitForLog(/LOG: {2}received smart shutdown request/);

        const refused = await server.psql("select 1");
        expect(refused.code).not.toBe(0);
        expect(refused.err).toContain("FATAL:  the database system is shutting down");
        const viaPg = await rejection(server.client());
        expect(viaPg.code).toBe("57P03");

        // The open session keeps working, and the server waits for it.
        await session.query("insert into kept values (1)");
        expect((await session.query("select count(*)::int as n from kept")).rows).toEqual([{
          n: 1,
        }]);
        await sleep(300);
        expect(server.exitCode).toBeNull();

        await session.end();
        expect(await server.exited).toBe(0);
        expect((await stopping).code).toBe(0);
        expect(server.log).toContain("LOG:  database system is shut down");
      },
    );

    test("fast shutdown ends open sessions with 57P01, even one inside pg_sleep(30); the idle one hears the FATAL, not a connection reset", async () => {
      const server = await startPgts({ adapter });
      const idle = await server.client();
      const idleErrors = new Promise<Error & { code?: string }>((resolve) => {
        idle.removeAllListeners("error");
        idle.on("error", (e) => resolve(e as Error & { code?: string }));
      });
      const busy = await server.client();
      const sleeping = runLong(busy, "select pg_sleep(30)");
      await sleep(300);

      const t0 = Date.now();
      const stop = await server.stop("fast", server.runtime);
      expect(stop.code).toBe(0);
      expect(await server.exited).toBe(0);
      // Well before the sleep would have ended.
      expect(Date.now() - t0).toBeLessThan(20_000);

      const busyError = await rejection(sleeping);
      expect(busyError.code).toBe("57P01");
      expect(busyError.message).toBe("terminating connection due to administrator command");
      // The idle session is told why before its connection ends.
      const heard = await Promise.race([idleErrors, sleep(5_000).then(() => null)]);
      expect(heard).not.toBeNull();
      expect(heard!.code).toBe("57P01");
      expect(heard!.message).toBe("terminating connection due to administrator command");
      const idleError = await rejection(idle.query("select 1"));
      expect(idleError).toBeInstanceOf(Error);
      expect(server.log).toContain("LOG:  received fast shutdown request");
      expect(server.log).toContain("LOG:  aborting any active transactions");
      expect(server.log).toContain("LOG:  database system is shut down");
    });

    test("immediate shutdown stops at once and the next start still has committed data", async () => {
      const server = await startPgts({ adapter });
      const session = await server.client();
      await session.query("create table durable (a int); insert into durable values (42)");
      const stop = await server.stop("immediate", server.runtime);
      expect(stop.code).toBe(0);
      const code = await server.exited;
      expect(code).toBe(0);
      expect(server.log).toContain("LOG:  received immediate shutdown request");
      await waitFor("the session to see its connection end", async () => {
        try {
          await session.query("select 1");
          return false;
        } catch {
          return true;
        }
      });

      await server.start();
      const r = await server.psql("select a from durable");
      expect(r).toMatchObject({ code: 0, out: "42\n" });
    });
  });
}
