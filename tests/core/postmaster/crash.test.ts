import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { TRIVIAL_STARTUP_ENTRY } from "../../../src/core/postmaster/auxmains.ts";
import { BGWORKER_SHMEM_ACCESS } from "../../../src/core/postmaster/bgworker.ts";
import { firstValue, reports } from "../../helpers/pm_client.ts";
import {
  captureServerLog,
  logged,
  releaseServerLog,
  startCluster,
  stopAll,
  waitForState,
  waitUntil,
  withTimeout,
  WORKER,
} from "../../helpers/pm_harness.ts";

beforeAll(captureServerLog);
afterAll(releaseServerLog);
afterEach(stopAll);

const CRASH_WARNING = {
  type: "N",
  severity: "WARNING",
  code: "57P02",
  message: "terminating connection because of crash of another server process",
  detail:
    "The postmaster has commanded this server process to roll back the current transaction and exit, because another server process exited abnormally and possibly corrupted shared memory.",
};

describe("crash recovery", () => {
  test("a SIGKILLed backend stops every child, re-runs startup and resumes service", async () => {
    let resets = 0;
    const { pm, session, launcher } = await startCluster({
      hooks: { resetSharedState: () => void resets++ },
    });
    const victim = await session();
    const bystander = await session();
    const victimPid = Number(firstValue(await victim.query("pid")));
    const otherPid = Number(firstValue(await bystander.query("pid")));
    const engineBefore = launcher.launched("engine")[0]!.pid;

    launcher.kill(victimPid);
    // The bystander's client hears why it is being dropped.
    expect(reports(await bystander.readUntilClose())).toEqual([CRASH_WARNING]);
    expect(victim.closed || (await victim.readUntilClose()).length === 0).toBe(true);

    await waitForState(pm, "PM_RUN");
    expect(logged(`client backend (PID ${victimPid}) was terminated by signal 9: Killed`))
      .toHaveLength(1);
    expect(logged("terminating any other active server processes")).toHaveLength(1);
    expect(logged("all server processes terminated; reinitializing")).toHaveLength(1);
    expect(resets).toBe(1);
    // Every other child got SIGQUIT: the bystander, the engine, the checkpointer.
    const quit = new Set(launcher.signals.filter((s) => s.signal === "SIGQUIT").map((s) => s.pid));
    expect(quit.has(otherPid)).toBe(true);
    expect(quit.has(engineBefore)).toBe(true);
    expect(quit.has(launcher.launched("checkpointer")[0]!.pid)).toBe(true);
    expect(launcher.launched("startup")).toHaveLength(2);
    expect(launcher.launched("engine")).toHaveLength(2);
    expect(logged("database system is ready to accept connections")).toHaveLength(2);

    const again = await session();
    expect(firstValue(await again.query("after the crash"))).toBe("after the crash");
  });

  test("a backend that throws is a crash too (in-process: SIGABRT)", async () => {
    const { pm, session } = await startCluster();
    const c = await session();
    const pid = Number(firstValue(await c.query("pid")));
    void c.query("crash");
    await waitUntil(
      () => logged("all server processes terminated; reinitializing").length === 1,
      "reinitialization",
    );
    expect(logged(`client backend (PID ${pid}) was terminated by signal 6: Aborted`))
      .toHaveLength(1);
    await waitForState(pm, "PM_RUN");
  });

  test("clients arriving during crash recovery are told the system is in recovery mode", async () => {
    // The default startup process does not report recovery, so FatalError
    // stays set until the engine is ready.
    const { pm, session, connect, launcher } = await startCluster({
      entries: { startup: TRIVIAL_STARTUP_ENTRY },
      childParams: { engineDelayMs: 150 },
    });
    const c = await session();
    launcher.kill(Number(firstValue(await c.query("pid"))));
    await waitForState(pm, "PM_STARTUP");
    const r = await connect().startup();
    expect(reports(r)[0]).toMatchObject({
      code: "57P03",
      message: "the database system is in recovery mode",
    });
    await waitForState(pm, "PM_RUN");
  });

  test("a SIGKILLed background worker with shared-state access causes the full crash cycle", async () => {
    const { pm, launcher, session } = await startCluster({
      beforeStart: (pm) =>
        pm.registerBackgroundWorker({
          name: "shared toucher",
          entry: WORKER("sleepingWorker"),
          flags: BGWORKER_SHMEM_ACCESS,
          startTime: "BgWorkerStart_RecoveryFinished",
          restartTime: 0.01,
        }),
    });
    const bystander = await session();
    await waitUntil(() => launcher.launched("bg_worker").length === 1, "worker start");
    const worker = launcher.launched("bg_worker")[0]!;
    launcher.kill(worker.pid);
    expect(reports(await bystander.readUntilClose())).toEqual([CRASH_WARNING]);
    await waitForState(pm, "PM_RUN");
    expect(
      logged(
        `background worker "shared toucher" (PID ${worker.pid}) was terminated by signal 9: Killed`,
      ),
    ).toHaveLength(1);
    expect(logged("all server processes terminated; reinitializing")).toHaveLength(1);
    // The worker is started again after recovery.
    await waitUntil(() => launcher.launched("bg_worker").length === 2, "worker restart");
  });

  test("a SIGKILLed background worker without shared-state access is only restarted", async () => {
    const { pm, launcher, session } = await startCluster({
      beforeStart: (pm) =>
        pm.registerBackgroundWorker({
          name: "loner",
          entry: WORKER("sleepingWorker"),
          flags: 0,
          startTime: "BgWorkerStart_RecoveryFinished",
          restartTime: 0.01,
        }),
    });
    const c = await session();
    await waitUntil(() => launcher.launched("bg_worker").length === 1, "worker start");
    launcher.kill(launcher.launched("bg_worker")[0]!.pid);
    await waitUntil(() => launcher.launched("bg_worker").length === 2, "worker restart");
    expect(logged("terminating any other active server processes")).toHaveLength(0);
    expect(pm.pmState).toBe("PM_RUN");
    expect(firstValue(await c.query("undisturbed"))).toBe("undisturbed");
  });

  test("with restart_after_crash off the postmaster exits instead of reinitializing", async () => {
    const { pm, session, launcher } = await startCluster({
      settings: { restart_after_crash: "off" },
    });
    const c = await session();
    launcher.kill(Number(firstValue(await c.query("pid"))));
    expect(await withTimeout(pm.exited, 3000, "exit after crash")).toBe(1);
    expect(logged('shutting down because "restart_after_crash" is off')).toHaveLength(1);
    expect(logged("all server processes terminated; reinitializing")).toHaveLength(0);
    expect(launcher.launched("startup")).toHaveLength(1);
  });

  test("restart_after_crash is read when needed, so a reload can change it", async () => {
    const { pm, session, launcher, settings } = await startCluster();
    settings.restart_after_crash = false;
    const c = await session();
    launcher.kill(Number(firstValue(await c.query("pid"))));
    expect(await withTimeout(pm.exited, 3000, "exit after crash")).toBe(1);
  });

  test("a failing startup process stops the postmaster instead of looping", async () => {
    const { pm } = await startCluster({
      entries: { startup: WORKER("exitingWorker") }, // not a worker here: throws, no params
      waitFor: null,
    });
    expect(await withTimeout(pm.exited, 3000, "startup failure")).toBe(1);
    expect(logged("aborting startup due to startup process failure")).toHaveLength(1);
  });

  test("an engine crash is a crash for everyone; an engine exit 0 outside shutdown too", async () => {
    const { pm, launcher, session } = await startCluster();
    const c = await session();
    const engine = launcher.launched("engine")[0]!;
    launcher.procs.get(engine.pid)!.signal("SIGUSR2"); // clean exit, but not asked for by us
    expect(reports(await c.readUntilClose())[0]?.code).toBe("57P02");
    await waitForState(pm, "PM_RUN");
    expect(logged(`engine process (PID ${engine.pid}) exited with exit code 0`)).toHaveLength(1);
  });
});
