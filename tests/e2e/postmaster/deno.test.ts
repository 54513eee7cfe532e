/**
 * The key postmaster behaviours with `pgts start` running under Deno
 * (`deno run -A mod.ts start`): start, serve and the three shutdown modes
 * with a session open, under the default adapter (backends in the
 * postmaster's process), and the crash cycle after a backend is SIGKILLed
 * under `--adapter subprocess` (forked Deno processes), where a backend is a
 * process that can be killed from outside.
 */

import { describe, expect, test } from "bun:test";
import {
  type Adapter,
  backendPid,
  type PgtsServer,
  preparePgts,
  usePgtsServers,
  waitFor,
} from "../../helpers/pgts.ts";

usePgtsServers({ timeoutMs: 90_000 });

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error("expected a rejection");
}

async function denoServer(options: { adapter?: Adapter } = {}): Promise<PgtsServer> {
  const server = await preparePgts({ runtime: "deno", ...options });
  return await server.start({ readyTimeoutMs: 60_000 });
}

describe("pgts start under Deno", () => {
  test("serves clients and stops in smart, fast and immediate mode with a session open", async () => {
    const server = await denoServer();
    expect(await server.psql("create table t (a int); insert into t values (1); select a from t"))
      .toMatchObject({ code: 0, out: "1\n" });

    // smart: new connections refused, the open session keeps working, exit when it leaves.
    let session = await server.client();
    const smart = server.stop("smart", "deno");
    await server.waitForLog(/LOG: {2}received smart shutdown request/);
    expect((await rejection(server.client())).code).toBe("57P03");
    expect((await session.query("select count(*)::int as n from t")).rows).toEqual([{ n: 1 }]);
    await session.end();
    expect(await server.exited).toBe(0);
    expect((await smart).code).toBe(0);

    // fast: the open session is ended with FATAL 57P01.
    await server.start({ readyTimeoutMs: 60_000 });
    session = await server.client();
    const ended = session.query("select pg_sleep(30)");
    ended.catch(() => {});
    expect((await server.stop("fast", "deno")).code).toBe(0);
    expect(await server.exited).toBe(0);
    expect((await rejection(ended)).code).toBe("57P01");

    // immediate: stops at once; the next start recovers the committed data.
    await server.start({ readyTimeoutMs: 60_000 });
    session = await server.client();
    await session.query("insert into t values (2)");
    expect((await server.stop("immediate", "deno")).code).toBe(0);
    expect(await server.exited).toBe(0);
    expect(server.log).toContain("LOG:  received immediate shutdown request");
    await server.start({ readyTimeoutMs: 60_000 });
    expect(await server.psql("select sum(a) from t")).toMatchObject({ code: 0, out: "3\n" });
  });

  test("a SIGKILLed backend is a crash cycle, and service resumes with committed data", async () => {
    const server = await denoServer({ adapter: "subprocess" });
    const writer = await server.client();
    await writer.query("create table kept (a int); insert into kept values (9)");
    const victim = await server.client();
    const pid = backendPid(victim);
    expect(server.childPids()).toContain(pid);

    process.kill(pid, "SIGKILL");
    await server.waitForLog(/LOG: {2}all server processes terminated; reinitializing/);
    expect(server.log).toMatch(
      new RegExp(`LOG: {2}client backend \\(PID ${pid}\\) was terminated by signal 9: Killed`),
    );
    expect(server.log).toContain("LOG:  terminating any other active server processes");
    await waitFor("the server to serve again", async () => {
      return (await server.psql("select 1")).code === 0;
    }, { timeoutMs: 60_000, detail: () => server.log });
    expect(await server.psql("select a from kept")).toMatchObject({ code: 0, out: "9\n" });
    await expect(writer.query("select 1")).rejects.toThrow();
    expect((await server.stop("fast", "deno")).code).toBe(0);
  });
});
