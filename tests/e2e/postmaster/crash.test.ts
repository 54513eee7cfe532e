/**
 * Crash recovery of a real pgts server: a child that may have corrupted
 * shared state dies, the postmaster takes every other child down, rebuilds
 * (the engine child replays its WAL) and serves again, with committed data.
 *
 * Under the subprocess adapter a backend is an OS process and is SIGKILLed from
 * outside. Under the in-process adapter there is no process to kill (a
 * backend is a task in the postmaster's realm; only the postmaster can
 * SIGKILL it), so there the cycle is driven by a shared-state background
 * worker that exits with code 3, which is a crash by the same rule.
 */

import { describe, expect, test } from "bun:test";
import {
  type Adapter,
  backendPid,
  engineChild,
  passAdapters,
  type PgtsServer,
  startPgts,
  usePgtsServers,
  waitFor,
} from "../../helpers/pgts.ts";
import { preloadOf, workerEvents } from "../../helpers/bgworkers.ts";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

usePgtsServers();

/** Waits until a new session can run a query (the end of the crash cycle). */
async function untilServing(server: PgtsServer): Promise<void> {
  await waitFor("the server to accept connections again", async () => {
    const r = await server.psql("select 1");
    return r.code === 0;
  }, { timeoutMs: 30_000, detail: () => server.log });
}

/** Whether a session's connection is gone (its next query fails). */
async function isCut(client: { query(sql: string): Promise<unknown> }): Promise<boolean> {
  try {
    await client.query("select 1");
    return false;
  } catch {
    return true;
  }
}

function expectCrashCycle(server: PgtsServer, culprit: RegExp): void {
  const log = server.log;
  expect(log).toMatch(culprit);
  expect(log).toContain("LOG:  terminating any other active server processes");
  expect(log).toContain("LOG:  all server processes terminated; reinitializing");
  const ready = log.split("LOG:  database system is ready to accept connections").length - 1;
  expect(ready).toBe(2);
}

describe("pgts start --adapter subprocess", () => {
  test("a SIGKILLed backend takes every session down and the server comes back with committed data", async () => {
    const server = await startPgts({ adapter: "subprocess" });
    const writer = await server.client();
    await writer.query("create table survivors (a int); insert into survivors values (1), (2)");
    const victim = await server.client();
    const bystander = await server.client();
    const warnings: { code?: string; message: string }[] = [];
    bystander.on("notice", (n) => warnings.push({ code: n.code, message: n.message ?? "" }));
    const pid = backendPid(victim);
    expect(server.childPids()).toContain(pid);

    process.kill(pid, "SIGKILL");
    await server.waitForLog(/LOG: {2}all server processes terminated; reinitializing/);
    await untilServing(server);

    expectCrashCycle(
      server,
      new RegExp(`LOG: {2}client backend \\(PID ${pid}\\) was terminated by signal 9: Killed`),
    );
    expect(await isCut(bystander)).toBe(true);
    expect(await isCut(writer)).toBe(true);
    expect(warnings).toContainEqual({
      code: "57P02",
      message: "terminating connection because of crash of another server process",
    });
    const r = await server.psql("select string_agg(a::text, ',' order by a) from survivors");
    expect(r).toMatchObject({ code: 0, out: "1,2\n" });
    const again = await server.client();
    expect((await again.query("select count(*)::int as n from survivors")).rows).toEqual([{
      n: 2,
    }]);
    expect(server.pidFile()?.[7]?.trim()).toBe("ready");

    await again.end();
    expect((await server.stop("fast")).code).toBe(0);
    expect(await server.exited).toBe(0);
  });

  test("clients logging in while the engine child is SIGKILLed get an error or a closed connection, never a protocol violation", async () => {
    const server = await startPgts({ adapter: "subprocess" });
    expect((await server.psql("select 1")).code).toBe(0);
    const engine = engineChild(server.childPids());
    // Never 0: process.kill(0) would kill this test runner's process group.
    expect(engine).toBeGreaterThan(0);
    process.kill(engine, "SIGKILL");
    // Waves of logins across the crash: pooled backends that were waiting,
    // backends started before the postmaster heard of it, dead ends after.
    const results = [];
    for (let wave = 0; wave < 4; wave++) {
      results.push(...await Promise.all(Array.from({ length: 6 }, () => server.psql("select 1"))));
    }
    for (const r of results) {
      if (r.code === 0) continue;
      // libpq's words for a NoticeResponse before authentication, and an
      // engine socket's error passed on raw, are what must never appear.
      expect(r.err).not.toContain("expected authentication request");
      const fatal = /FATAL: {2}(.*)/.exec(r.err)?.[1] ?? "";
      expect(fatal).not.toMatch(/ENOENT|ECONNREFUSED/);
      expect(r.err).toMatch(
        /the database system is in recovery mode|server closed the connection unexpectedly|lost connection to the engine process|crash of another server process|the database system is (starting up|not yet accepting connections)/,
      );
    }
    await untilServing(server);
    expect((await server.stop("fast")).code).toBe(0);
  });

  test("a SIGKILLed background worker with shared-state access restarts the cluster and is restarted", async () => {
    const server = await startPgts({
      adapter: "subprocess",
      settings: {
        shared_preload_libraries: preloadOf("idleWorker"),
        bgworker_restart_interval: 1,
      },
    });
    const first = await waitFor("the worker to start", () => workerEvents(server)[0]);
    const session = await server.client();
    await session.query("create table kept (a int); insert into kept values (7)");
    expect(server.childPids()).toContain(first.pid);

    process.kill(first.pid, "SIGKILL");
    await server.waitForLog(/LOG: {2}all server processes terminated; reinitializing/);
    await untilServing(server);
    expectCrashCycle(
      server,
      new RegExp(
        `LOG: {2}background worker "idleWorker" \\(PID ${first.pid}\\) was terminated by signal 9: Killed`,
      ),
    );
    expect(await isCut(session)).toBe(true);
    expect(await server.psql("select a from kept")).toMatchObject({ code: 0, out: "7\n" });
    const second = await waitFor("the worker to be restarted", () => workerEvents(server)[1]);
    expect(second.pid).not.toBe(first.pid);
  });
});

for (const adapter of passAdapters(["subprocess", "inproc"] as Adapter[])) {
  describe(`pgts start --adapter ${adapter}`, () => {
    test("a shared-state background worker that crashes (exit 3) restarts the cluster", async () => {
      const server = await startPgts({
        adapter,
        settings: {
          shared_preload_libraries: preloadOf("crashOnDemandWorker"),
          bgworker_restart_interval: 1,
        },
      });
      await waitFor("the worker to start", () => workerEvents(server)[0]);
      const session = await server.client();
      await session.query("create table kept (a int); insert into kept values (8)");

      writeFileSync(join(server.dataDir, "crash-now"), "");
      await server.waitForLog(/LOG: {2}all server processes terminated; reinitializing/);
      await untilServing(server);
      expectCrashCycle(
        server,
        /LOG: {2}background worker "crashOnDemandWorker" \(PID \d+\) exited with exit code 3/,
      );
      expect(await isCut(session)).toBe(true);
      expect(await server.psql("select a from kept")).toMatchObject({ code: 0, out: "8\n" });
      // Restarted after its interval, like any abnormal exit.
      await waitFor(
        "the worker to be restarted",
        () => workerEvents(server).filter((e) => e.event === "start").length >= 2,
      );
      expect((await server.stop("fast")).code).toBe(0);
    });
  });
}
