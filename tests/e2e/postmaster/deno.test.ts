/**
 * The crash cycle with `pgts start` running under Deno (`deno run -A mod.ts
 * start`) after a backend is SIGKILLed under `--adapter subprocess` (forked
 * Deno processes), where a backend is a process that can be killed from
 * outside. Start, serve and the three shutdown modes with sessions open,
 * `pgts stop` under Deno included, are tests/e2e/postmaster/shutdown.test.ts's
 * in the Deno pass (scripts/test.sh's deno_default), under both adapters.
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

async function denoServer(options: { adapter?: Adapter } = {}): Promise<PgtsServer> {
  const server = await preparePgts({ runtime: "deno", ...options });
  return await server.start({ readyTimeoutMs: 60_000 });
}

describe("pgts start under Deno", () => {
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
