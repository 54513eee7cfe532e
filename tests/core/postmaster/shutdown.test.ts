import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { parseErrorResponse } from "../../../src/core/protocol/backend-reader.ts";
import { firstValue, reports, sslRequest, startupPacket } from "../../helpers/pm_client.ts";
import {
  captureServerLog,
  entry,
  logged,
  releaseServerLog,
  startCluster,
  stopAll,
  waitForState,
  waitUntil,
  withTimeout,
} from "../../helpers/pm_harness.ts";

beforeAll(captureServerLog);
afterAll(releaseServerLog);
afterEach(stopAll);

const STUBBORN = entry("test_children.ts", "stubbornMain");

describe("start and stop", () => {
  test("a postmaster starts, says it is ready and serves a session", async () => {
    const { pm, session, launcher } = await startCluster();
    expect(logged("database system is ready to accept connections")).toHaveLength(1);
    expect(logged(/^listening on IPv4 address "127\.0\.0\.1", port \d+$/)).toHaveLength(1);
    expect(logged("updating PMState from PM_INIT to PM_STARTUP")).toHaveLength(1);
    expect(logged("updating PMState from PM_RECOVERY to PM_RUN")).toHaveLength(1);
    expect(launcher.launched("startup")).toHaveLength(1);
    expect(launcher.launched("engine")).toHaveLength(1);
    expect(launcher.launched("checkpointer")).toHaveLength(1);
    const c = await session();
    expect(firstValue(await c.query("hello"))).toBe("hello");
    expect(pm.children().filter((k) => k.kind === "backend")).toHaveLength(1);
  });

  test("a client that connects while the system starts up is told so (57P03)", async () => {
    const { pm, connect } = await startCluster({
      childParams: { startupDelayMs: 300 },
      waitFor: "PM_RECOVERY",
    });
    const early = await connect().startup();
    expect(reports(early)).toEqual([
      {
        type: "E",
        severity: "FATAL",
        code: "57P03",
        message: "the database system is not yet accepting connections",
        detail: "Consistent recovery state has not been yet reached.",
      },
    ]);
    await waitForState(pm, "PM_RUN");
  });

  test("a client before recovery starts is told the system is starting up", async () => {
    const { pm, connect } = await startCluster({
      entries: { startup: STUBBORN },
      waitFor: "PM_STARTUP",
    });
    const early = await connect().startup();
    expect(reports(early)[0]?.message).toBe("the database system is starting up");
    expect(reports(early)[0]?.code).toBe("57P03");
    pm.signal("SIGQUIT");
    expect(await pm.exited).toBe(0);
  });

  test("an SSLRequest is refused with 'N' before the dead-end FATAL", async () => {
    const { pm, net, address } = await startCluster({
      entries: { startup: STUBBORN },
      waitFor: "PM_STARTUP",
    });
    const conn = net.connect(address);
    const bytes: number[] = [];
    let closed = false;
    conn.onData = (chunk) => bytes.push(...chunk);
    conn.onClose = () => (closed = true);
    conn.resume();
    conn.write(sslRequest());
    await waitUntil(() => bytes.length === 1, "the SSL answer");
    expect(bytes[0]).toBe(0x4e); // 'N': no SSL, go on in plain text
    conn.write(startupPacket({ user: "postgres" }));
    await waitUntil(() => closed, "the dead-end to close");
    expect(bytes[1]).toBe(0x45); // then the ErrorResponse
    const fields = parseErrorResponse(Uint8Array.from(bytes.slice(6)));
    expect(fields.message).toBe("the database system is starting up");
    pm.signal("SIGQUIT");
    await pm.exited;
  });

  test("smart shutdown refuses new clients (57P03), lets sessions finish, then exits 0", async () => {
    const { pm, session, connect } = await startCluster();
    const a = await session();
    pm.signal("SIGTERM");
    await new Promise((r) => setTimeout(r, 20));
    expect(logged("received smart shutdown request")).toHaveLength(1);
    expect(pm.connsAllowed).toBe(false);
    expect(pm.pmState).toBe("PM_RUN");

    const refused = await connect().startup();
    expect(reports(refused)).toEqual([
      {
        type: "E",
        severity: "FATAL",
        code: "57P03",
        message: "the database system is shutting down",
      },
    ]);

    // The open session still works.
    expect(firstValue(await a.query("still here"))).toBe("still here");
    a.terminate();
    expect(await withTimeout(pm.exited, 3000, "smart shutdown")).toBe(0);
    expect(logged("database system is shut down")).toHaveLength(1);
    expect(logged("updating PMState from PM_WAIT_CHECKPOINTER to PM_WAIT_DEAD_END")).toHaveLength(
      1,
    );
  });

  test("fast shutdown terminates sessions with FATAL 57P01 and exits 0", async () => {
    const { pm, session, launcher } = await startCluster();
    const a = await session();
    const b = await session();
    pm.signal("SIGINT");
    const [ra, rb] = await Promise.all([a.readUntilClose(), b.readUntilClose()]);
    for (const r of [ra, rb]) {
      expect(reports(r)).toEqual([
        {
          type: "E",
          severity: "FATAL",
          code: "57P01",
          message: "terminating connection due to administrator command",
        },
      ]);
    }
    expect(await withTimeout(pm.exited, 3000, "fast shutdown")).toBe(0);
    expect(logged("received fast shutdown request")).toHaveLength(1);
    expect(logged("aborting any active transactions")).toHaveLength(1);
    // The checkpointer and the engine were asked to finish only after the backends.
    const usr2 = launcher.signals.filter((s) => s.signal === "SIGUSR2").map((s) => s.kind);
    expect(usr2.sort()).toEqual(["checkpointer", "engine"]);
    expect(launcher.signals.some((s) => s.kind === "engine" && s.signal === "SIGTERM")).toBe(false);
  });

  test("immediate shutdown quits every child at once and exits without a checkpoint", async () => {
    const { pm, session, launcher } = await startCluster();
    const a = await session();
    pm.signal("SIGQUIT");
    const r = await a.readUntilClose();
    expect(reports(r)).toEqual([
      {
        type: "N",
        severity: "WARNING",
        code: "57P01",
        message: "terminating connection due to immediate shutdown command",
      },
    ]);
    expect(await withTimeout(pm.exited, 3000, "immediate shutdown")).toBe(0);
    expect(logged("received immediate shutdown request")).toHaveLength(1);
    expect(launcher.signals.some((s) => s.signal === "SIGUSR2")).toBe(false);
    expect(logged("database system is shut down")).toHaveLength(1);
  });

  test("a fast shutdown request overrides a smart shutdown in progress", async () => {
    const { pm, session } = await startCluster();
    const a = await session();
    pm.signal("SIGTERM");
    await new Promise((r) => setTimeout(r, 20));
    expect(pm.pmState).toBe("PM_RUN");
    pm.signal("SIGINT");
    const r = await a.readUntilClose();
    expect(reports(r)[0]?.code).toBe("57P01");
    expect(await withTimeout(pm.exited, 3000, "fast after smart")).toBe(0);
    expect(logged("received smart shutdown request")).toHaveLength(1);
    expect(logged("received fast shutdown request")).toHaveLength(1);
  });

  test("a gentler shutdown request after a more urgent one is ignored", async () => {
    const { pm } = await startCluster();
    pm.signal("SIGINT");
    pm.signal("SIGTERM");
    expect(await pm.exited).toBe(0);
    expect(logged("received smart shutdown request")).toHaveLength(0);
  });

  test("a child that ignores SIGQUIT is SIGKILLed after sigkill_children_after", async () => {
    const { pm, launcher } = await startCluster({ entries: { checkpointer: STUBBORN } });
    const started = Date.now();
    pm.signal("SIGQUIT");
    expect(await withTimeout(pm.exited, 3000, "immediate")).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(logged("issuing SIGKILL to recalcitrant children")).toHaveLength(1);
    const cp = launcher.launched("checkpointer")[0]!;
    const toCp = launcher.signals.filter((s) => s.pid === cp.pid).map((s) => s.signal);
    expect(toCp).toEqual(["SIGQUIT", "SIGKILL"]);
  });
});
