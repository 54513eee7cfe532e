import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { BGWORKER_SHMEM_ACCESS } from "../../../src/core/postmaster/bgworker.ts";
import { firstValue, reports } from "../../helpers/pm_client.ts";
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

describe("reload", () => {
  test("SIGHUP calls the reload hook and forwards SIGHUP to every child", async () => {
    let reloads = 0;
    const { pm, session, launcher } = await startCluster({
      hooks: { reloadConfig: () => void reloads++ },
      beforeStart: (pm) =>
        pm.registerBackgroundWorker({
          name: "listener",
          entry: WORKER("sleepingWorker"),
          flags: BGWORKER_SHMEM_ACCESS,
          startTime: "BgWorkerStart_RecoveryFinished",
          restartTime: 1,
        }),
    });
    const c = await session();
    await waitUntil(() => launcher.launched("bg_worker").length === 1, "worker start");
    pm.signal("SIGHUP");
    await waitUntil(() => reloads === 1, "reload hook");
    await waitUntil(
      () => launcher.signals.filter((s) => s.signal === "SIGHUP").length === 4,
      "SIGHUP forwarded",
    );
    expect(logged("received SIGHUP, reloading configuration files")).toHaveLength(1);
    const kinds = launcher.signals.filter((s) => s.signal === "SIGHUP").map((s) => s.kind).sort();
    // The startup process has already exited; dead-end clients get none.
    expect(kinds).toEqual(["backend", "bg_worker", "checkpointer", "engine"]);
    expect(firstValue(await c.query("still fine"))).toBe("still fine");
  });

  test("settings are re-read after a reload (authentication_timeout for dead-ends)", async () => {
    const { pm, settings, connect } = await startCluster({
      hooks: {
        reloadConfig: () => {
          settings.authentication_timeout = 0.05;
        },
      },
    });
    pm.signal("SIGHUP");
    await waitUntil(
      () => logged("received SIGHUP, reloading configuration files").length === 1,
      "reload",
    );
    pm.signal("SIGTERM"); // smart: new clients are dead-ends
    const silent = connect(); // never sends a startup packet
    await waitUntil(() => silent.closed, "dead-end timeout", 1000);
  });

  test("SIGHUP is ignored once a fast shutdown has begun", async () => {
    let reloads = 0;
    const { pm, launcher } = await startCluster({
      hooks: { reloadConfig: () => void reloads++ },
    });
    pm.signal("SIGINT");
    pm.signal("SIGHUP");
    expect(await withTimeout(pm.exited, 3000, "fast shutdown")).toBe(0);
    expect(reloads).toBe(0);
    expect(logged("received SIGHUP, reloading configuration files")).toHaveLength(0);
    expect(launcher.signals.some((s) => s.signal === "SIGHUP")).toBe(false);
  });

  test("SIGHUP is still honoured during a smart shutdown", async () => {
    let reloads = 0;
    const { pm, session } = await startCluster({ hooks: { reloadConfig: () => void reloads++ } });
    const c = await session();
    pm.signal("SIGTERM");
    pm.signal("SIGHUP");
    await waitUntil(() => reloads === 1, "reload during smart shutdown");
    c.terminate();
    expect(await pm.exited).toBe(0);
  });
});

describe("connections", () => {
  test("max_connections backends are admitted; the next client gets 53300", async () => {
    const { session, connect } = await startCluster({ settings: { max_connections: 2 } });
    const a = await session();
    await session();
    const refused = await connect().startup();
    expect(reports(refused)).toEqual([
      { type: "E", severity: "FATAL", code: "53300", message: "sorry, too many clients already" },
    ]);
    // A slot frees when a session ends.
    a.terminate();
    await new Promise((r) => setTimeout(r, 20));
    const c = await session();
    expect(firstValue(await c.query("in"))).toBe("in");
  });

  test("a client that has not sent its startup packet takes none of max_connections", async () => {
    const { session, connect } = await startCluster({ settings: { max_connections: 2 } });
    const silent = [connect(), connect(), connect()];
    const a = await session();
    await session();
    expect(firstValue(await a.query("claim"))).toBe("ok");
    const refused = await connect().startup();
    expect(reports(refused)).toEqual([
      { type: "E", severity: "FATAL", code: "53300", message: "sorry, too many clients already" },
    ]);
    for (const c of silent) c.terminate();
  });

  test("a client that never sends a startup packet is dropped after authentication_timeout", async () => {
    const { pm, connect } = await startCluster({ settings: { authentication_timeout: 0.05 } });
    pm.signal("SIGTERM");
    const c = connect();
    await waitUntil(() => c.closed, "dead-end timeout", 1000);
    expect(await pm.exited).toBe(0);
  });
});
