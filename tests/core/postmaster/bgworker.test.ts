import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import {
  type BackgroundWorkerSpec,
  BGW_NEVER_RESTART,
  BGWORKER_BACKEND_DATABASE_CONNECTION,
  BGWORKER_SHMEM_ACCESS,
} from "../../../src/core/postmaster/bgworker.ts";
import { firstValue } from "../../helpers/pm_client.ts";
import {
  captureServerLog,
  logged,
  releaseServerLog,
  startCluster,
  stopAll,
  waitUntil,
  withTimeout,
  WORKER,
} from "../../helpers/pm_harness.ts";

beforeAll(captureServerLog);
afterAll(releaseServerLog);
afterEach(stopAll);

function worker(
  name: string,
  main: string,
  more: Partial<BackgroundWorkerSpec> = {},
): BackgroundWorkerSpec {
  return {
    name,
    entry: WORKER(main),
    flags: BGWORKER_SHMEM_ACCESS,
    startTime: "BgWorkerStart_RecoveryFinished",
    restartTime: 0.05,
    ...more,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("background workers", () => {
  test("a worker that exits 1 is restarted after its restart interval", async () => {
    const { launcher } = await startCluster({
      beforeStart: (pm) =>
        pm.registerBackgroundWorker(
          worker("flaky", "exitingWorker", { mainArg: { code: 1 }, restartTime: 0.1 }),
        ),
    });
    await waitUntil(() => launcher.launched("bg_worker").length === 1, "first start");
    const first = Date.now();
    await waitUntil(() => launcher.launched("bg_worker").length === 2, "restart");
    expect(Date.now() - first).toBeGreaterThanOrEqual(80);
    const pid = launcher.launched("bg_worker")[0]!.pid;
    expect(logged(`background worker "flaky" (PID ${pid}) exited with exit code 1`))
      .toHaveLength(1);
    expect(logged("terminating any other active server processes")).toHaveLength(0);
  });

  test("a worker that exits 0 is unregistered and not restarted", async () => {
    const { launcher } = await startCluster({
      beforeStart: (pm) =>
        pm.registerBackgroundWorker(worker("one-shot", "exitingWorker", { mainArg: { code: 0 } })),
    });
    await waitUntil(
      () => logged('unregistering background worker "one-shot"').length === 1,
      "exit",
    );
    await sleep(150);
    expect(launcher.launched("bg_worker")).toHaveLength(1);
  });

  test("a crash-looping worker is given up after the restart intensity", async () => {
    const { launcher } = await startCluster({
      settings: { bgworker_restart_intensity: 3, bgworker_restart_period: 10 },
      beforeStart: (pm) =>
        pm.registerBackgroundWorker(
          worker("looper", "exitingWorker", { mainArg: { code: 1 }, restartTime: 0 }),
        ),
    });
    await waitUntil(
      () =>
        logged(
          'background worker "looper" exceeded its restart intensity and will not be restarted',
        )
          .length === 1,
      "give-up",
    );
    await sleep(100);
    // One start plus three restarts; the fourth abnormal exit exceeded the limit.
    expect(launcher.launched("bg_worker")).toHaveLength(4);
  });

  test("a worker that must never restart is forgotten after its first exit", async () => {
    const { launcher } = await startCluster({
      beforeStart: (pm) =>
        pm.registerBackgroundWorker(
          worker("once", "exitingWorker", { mainArg: { code: 1 }, restartTime: BGW_NEVER_RESTART }),
        ),
    });
    await waitUntil(() => logged('unregistering background worker "once"').length === 1, "forget");
    await sleep(100);
    expect(launcher.launched("bg_worker")).toHaveLength(1);
  });

  test("PostmasterStart workers run before recovery is finished, RecoveryFinished ones after", async () => {
    const { launcher } = await startCluster({
      childParams: { startupDelayMs: 100 },
      waitFor: "PM_RECOVERY",
      beforeStart: (pm) => {
        pm.registerBackgroundWorker(
          worker("early", "sleepingWorker", {
            flags: 0,
            startTime: "BgWorkerStart_PostmasterStart",
          }),
        );
        pm.registerBackgroundWorker(worker("late", "sleepingWorker"));
      },
    });
    await waitUntil(() => launcher.launched("bg_worker").length === 1, "early worker");
    expect(launcher.launched("bg_worker")[0]!.name).toBe("early");
    await waitUntil(() => launcher.launched("bg_worker").length === 2, "late worker");
    expect(launcher.launched("bg_worker")[1]!.name).toBe("late");
  });

  test("dynamic worker handles report NOT_YET_STARTED, STARTED and STOPPED", async () => {
    const { pm } = await startCluster({
      childParams: { startupDelayMs: 50 },
      waitFor: "PM_RECOVERY",
    });
    const handle = pm.registerDynamicBackgroundWorker(worker("dyn", "sleepingWorker"))!;
    expect(handle).not.toBeNull();
    expect(await handle.getPid()).toEqual({ status: "BGWH_NOT_YET_STARTED", pid: 0 });
    const started = await withTimeout(handle.waitForStartup(), 3000, "startup");
    expect(started.status).toBe("BGWH_STARTED");
    expect(started.pid).toBeGreaterThan(0);
    expect(await handle.getPid()).toEqual(started);
    const shutdown = handle.waitForShutdown();
    await handle.terminate();
    expect(await withTimeout(shutdown, 3000, "shutdown")).toBe("BGWH_STOPPED");
    expect(await handle.getPid()).toEqual({ status: "BGWH_STOPPED", pid: 0 });
    // Terminated workers are never restarted, even with a restart interval.
    await sleep(120);
    expect(pm.children().filter((c) => c.kind === "bg_worker")).toHaveLength(0);
  });

  test("a backend can register a dynamic worker and wait for it to start", async () => {
    const { session, launcher } = await startCluster();
    const c = await session();
    const answer = firstValue(await c.query("start_worker"))!;
    const [status, pid] = answer.split(" ");
    expect(status).toBe("BGWH_STARTED");
    expect(launcher.launched("bg_worker").map((l) => l.pid)).toEqual([Number(pid)]);
  });

  test("dynamic registration is refused once max_worker_processes registrations are taken", async () => {
    const { pm } = await startCluster({ settings: { max_worker_processes: 1 } });
    expect(pm.registerDynamicBackgroundWorker(worker("a", "sleepingWorker"))).not.toBeNull();
    expect(pm.registerDynamicBackgroundWorker(worker("b", "sleepingWorker"))).toBeNull();
  });

  test("waitForShutdown resolves POSTMASTER_DIED if the postmaster goes first", async () => {
    const { pm } = await startCluster();
    const handle = pm.registerDynamicBackgroundWorker(
      worker("survivor", "sleepingWorker", { startTime: "BgWorkerStart_RecoveryFinished" }),
    )!;
    await handle.waitForStartup();
    const waiting = handle.waitForShutdown();
    pm.signal("SIGQUIT");
    expect(["BGWH_STOPPED", "BGWH_POSTMASTER_DIED"]).toContain(await waiting);
  });

  test("static registration checks the worker like SanityCheckBackgroundWorker", async () => {
    const { pm } = await startCluster({ waitFor: null });
    expect(() => pm.registerBackgroundWorker(worker("late", "sleepingWorker"))).toThrow(TypeError);
    expect(() =>
      pm.registerDynamicBackgroundWorker(
        worker("db at start", "sleepingWorker", {
          flags: BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION,
          startTime: "BgWorkerStart_PostmasterStart",
        }),
      )
    ).toThrow(
      'background worker "db at start": cannot request database access if starting at postmaster start',
    );
  });

  test("fast shutdown stops workers with SIGTERM and they exit 1 without counting as crashes", async () => {
    const { pm, launcher } = await startCluster({
      beforeStart: (pm) => pm.registerBackgroundWorker(worker("steady", "sleepingWorker")),
    });
    await waitUntil(() => launcher.launched("bg_worker").length === 1, "worker start");
    pm.signal("SIGINT");
    expect(await withTimeout(pm.exited, 3000, "fast shutdown")).toBe(0);
    expect(logged('terminating background worker "steady" due to administrator command'))
      .toHaveLength(1);
    expect(logged("terminating any other active server processes")).toHaveLength(0);
  });
});
