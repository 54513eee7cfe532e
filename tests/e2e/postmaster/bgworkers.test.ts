/**
 * Background workers of a real pgts server, registered through
 * shared_preload_libraries (tests/fixtures/bgworkers.ts): the restart
 * policy a user configures with bgworker_restart_interval and
 * bgworker_restart_intensity, and dynamic workers followed through their
 * handles. What the workers saw comes from the events they record; what the
 * postmaster did, from its log.
 */

import { describe, expect, test } from "bun:test";
import { preloadOf, workerEvents } from "../../helpers/bgworkers.ts";
import {
  type Adapter,
  pgtsCli,
  preparePgts,
  sleep,
  startPgts,
  usePgtsServers,
  waitFor,
} from "../../helpers/pgts.ts";

usePgtsServers();

const starts = (server: Parameters<typeof workerEvents>[0], name: string) =>
  workerEvents(server, name).filter((e) => e.event === "start");

describe("pgts start", () => {
  test("a shared_preload_libraries entry that does not load stops the start with FATAL", async () => {
    // A fresh data directory is all it needs: these starts never get as far as a listener.
    const server = await preparePgts();
    const dir = server.dataDir;
    const startWith = (preload: string) =>
      pgtsCli(["start", "-D", dir, "-p", "0", "-c", `shared_preload_libraries=${preload}`]);
    // A postgresql.conf written for PostgreSQL names its C libraries: no crash cycle, no listener.
    const cLibrary = await startWith("pg_stat_statements");
    expect(cLibrary.code).toBe(1);
    expect(cLibrary.err).toMatch(/FATAL: {2}could not load library "pg_stat_statements": /);
    expect(cLibrary.err).toContain("HINT:  pgts's shared_preload_libraries names JavaScript");
    expect(cLibrary.err).not.toContain("listening on");
    expect(cLibrary.err).not.toContain("reinitializing");
    // A module that loads but lacks the export named.
    const noExport = await startWith(preloadOf("noSuchWorker"));
    expect(noExport.code).toBe(1);
    expect(noExport.err).toMatch(/FATAL: {2}could not find function "noSuchWorker" in file "file:/);
  });
});

for (const adapter of ["subprocess", "inproc"] as Adapter[]) {
  describe(`pgts start --adapter ${adapter}`, () => {
    test("a background worker that exits 1 is restarted after its restart interval", async () => {
      const server = await startPgts({
        adapter,
        settings: {
          shared_preload_libraries: preloadOf("exitOneWorker"),
          bgworker_restart_interval: 1,
          bgworker_restart_intensity: 100,
        },
      });
      const runs = await waitFor("three runs of the worker", () => {
        const s = starts(server, "exitOneWorker");
        return s.length >= 3 ? s : undefined;
      });
      for (let i = 1; i < runs.length; i++) {
        expect(runs[i]!.t - runs[i - 1]!.t).toBeGreaterThanOrEqual(900);
      }
      expect(server.log).toMatch(
        /LOG: {2}background worker "exitOneWorker" \(PID \d+\) exited with exit code 1/,
      );
      // A normal exit for a worker: no crash cycle.
      expect(server.log).not.toContain("terminating any other active server processes");
      expect(await server.psql("select 1")).toMatchObject({ code: 0, out: "1\n" });
    });

    test("a background worker that exits 0 is not restarted", async () => {
      const server = await startPgts({
        adapter,
        settings: {
          shared_preload_libraries: preloadOf("exitZeroWorker", "idleWorker"),
          bgworker_restart_interval: 1,
        },
      });
      await waitFor("the worker to run", () => starts(server, "exitZeroWorker").length === 1);
      await sleep(2_500);
      expect(starts(server, "exitZeroWorker")).toHaveLength(1);
      // The other worker is unaffected.
      expect(starts(server, "idleWorker")).toHaveLength(1);
      expect(server.log).not.toContain("terminating any other active server processes");
    });

    test("a crash-looping background worker is given up after bgworker_restart_intensity", async () => {
      const server = await startPgts({
        adapter,
        settings: {
          shared_preload_libraries: preloadOf("exitOneWorker"),
          bgworker_restart_interval: 0,
          bgworker_restart_intensity: 2,
          bgworker_restart_period: "1min",
        },
      });
      await server.waitForLog(
        /LOG: {2}background worker "exitOneWorker" exceeded its restart intensity and will not be restarted/,
      );
      expect(server.log).toContain(
        'DETAIL:  It exited abnormally 3 times within 60 s; "bgworker_restart_intensity" is 2.',
      );
      await sleep(1_000);
      expect(starts(server, "exitOneWorker")).toHaveLength(3);
      // The server itself carries on.
      expect(await server.psql("select 1")).toMatchObject({ code: 0, out: "1\n" });
    });

    test("a dynamic background worker's handle follows it from start to stop", async () => {
      const server = await startPgts({
        adapter,
        settings: { shared_preload_libraries: preloadOf("dynamicParentWorker") },
      });
      // The parent records "child-stopped" and then the handle's status: wait
      // for the last of them (reading between the two failed once in CI).
      const events = await waitFor("the parent to see its worker stop", () => {
        const e = workerEvents(server);
        return e.some((x) => x.event === "child-status" && x.status === "BGWH_STOPPED")
          ? e
          : undefined;
      });
      const parent = events.filter((e) => e.name === "dynamicParentWorker");
      const child = events.filter((e) => e.name === "dynamic idle");
      expect(parent.map((e) => [e.event, e.status])).toEqual([
        ["start", undefined],
        ["child-started", "BGWH_STARTED"],
        ["child-status", "BGWH_STARTED"],
        ["child-stopped", "BGWH_STOPPED"],
        ["child-status", "BGWH_STOPPED"],
      ]);
      expect(child).toHaveLength(1);
      expect(parent[1]!.childPid).toBe(child[0]!.pid);
      expect(parent[4]!.childPid).toBe(0);
      // terminate() is a SIGTERM: the worker's default handler ends it with exit 1.
      // The postmaster logs it before the handle says STOPPED, but its stderr
      // may reach the test after the parent's event (seen once at load 36).
      const exitLine = new RegExp(
        `background worker "dynamic idle" \\(PID ${child[0]!.pid}\\) exited with exit code 1`,
      );
      await waitFor(
        "the worker's exit in the server log",
        () => exitLine.test(server.log) || undefined,
      );
      // Neither is restarted: one exited 0, the other was terminated.
      await sleep(1_500);
      expect(workerEvents(server).filter((e) => e.event === "start")).toHaveLength(2);
    });
  });
}
