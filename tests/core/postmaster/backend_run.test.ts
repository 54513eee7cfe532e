/**
 * In-process backend runs (one per HTTP request): admitted into the backend
 * slot pool like a client, listed in children() with their activity,
 * refused with 53300 beyond max_connections, stopped by a fast shutdown and
 * waited for by a smart one.
 */

import { afterEach, describe, expect, test } from "bun:test";
import type { ChildExit, ChildProcess, Signal } from "../../../src/core/adapter.ts";
import { startCluster, stopAll, waitForState } from "../../helpers/pm_harness.ts";

let nextPid = 5_000_000;

class FakeRun implements ChildProcess {
  readonly pid = nextPid++;
  readonly signals: Signal[] = [];
  onMessage: ((m: unknown) => void) | null = null;
  end: (exit: ChildExit) => void = () => {};
  readonly exited = new Promise<ChildExit>((resolve) => (this.end = resolve));
  signal(sig: Signal): void {
    this.signals.push(sig);
    if (sig === "SIGTERM" || sig === "SIGQUIT" || sig === "SIGKILL") {
      this.end({ code: 1, signal: null });
    }
  }
  post(): void {}
}

afterEach(stopAll);

describe("backend runs", () => {
  test("a run takes a backend slot, shows its activity, and frees it when it ends", async () => {
    const { pm } = await startCluster({ settings: { max_connections: 2 } });
    const run = new FakeRun();
    await pm.admitBackendRun(run, {
      activity: () => ({ state: "active", query: "SELECT 1" }),
    });
    const listed = pm.children().find((c) => c.pid === run.pid);
    expect(listed?.kind).toBe("backend");
    expect(listed?.activity).toEqual({ state: "active", query: "SELECT 1" });
    expect(listed?.startedAt).toBeGreaterThan(Date.now() - 10_000);
    run.end({ code: 0, signal: null });
    for (let i = 0; i < 100 && pm.children().some((c) => c.pid === run.pid); i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(pm.children().some((c) => c.pid === run.pid)).toBe(false);
  });

  test("beyond max_connections a run is refused with 53300", async () => {
    const { pm } = await startCluster({ settings: { max_connections: 1 } });
    const first = new FakeRun();
    await pm.admitBackendRun(first);
    const refused = await pm.admitBackendRun(new FakeRun()).catch((e) => e);
    expect(refused.code).toBe("53300");
    expect(refused.message).toBe("sorry, too many clients already");
    first.end({ code: 0, signal: null });
  });

  test("a fast shutdown sends SIGTERM to a run and waits for it to end", async () => {
    const { pm } = await startCluster();
    const run = new FakeRun();
    await pm.admitBackendRun(run);
    pm.signal("SIGINT");
    expect(await pm.exited).toBe(0);
    expect(run.signals).toContain("SIGTERM");
  });

  test("a smart shutdown waits for a running run, and refuses new ones", async () => {
    const { pm } = await startCluster();
    const run = new FakeRun();
    await pm.admitBackendRun(run);
    pm.signal("SIGTERM");
    await new Promise((r) => setTimeout(r, 50));
    expect(pm.pmState).toBe("PM_RUN");
    const refused = await pm.admitBackendRun(new FakeRun()).catch((e) => e);
    expect(refused.code).toBe("57P03");
    run.end({ code: 0, signal: null });
    await waitForState(pm, "PM_NO_CHILDREN").catch(() => {});
    expect(await pm.exited).toBe(0);
  });
});
