import { describe, expect, test } from "bun:test";
import { connectionPair, InprocLauncher } from "../../../src/adapters/inproc/mod.ts";
import {
  BACKEND_TYPES,
  childExitMessage,
  classifyChildExit,
  relaunchedWhenMissing,
} from "../../../src/core/postmaster/backendtype.ts";
import type { ChildExit, ChildMain } from "../../../src/core/adapter.ts";
import { btmask, ChildRegistry } from "../../../src/core/postmaster/pmchild.ts";
import { canAcceptConnections } from "../../../src/core/postmaster/deadend.ts";
import { Shutdown } from "../../../src/core/postmaster/pmstate.ts";
import { PostmasterSettings, settingsFrom } from "../../../src/core/postmaster/settings.ts";
import { PgError } from "../../../src/core/elog.ts";

const code = (n: number): ChildExit => ({ code: n, signal: null });
const killed: ChildExit = { code: null, signal: "SIGKILL" };

describe("child slot pools", () => {
  test("each kind has its own pool, so backends cannot starve workers", () => {
    const r = new ChildRegistry({ backend: 2, bg_worker: 1 });
    expect(r.assignSlot("backend", "a")).not.toBeNull();
    expect(r.assignSlot("backend", "b")).not.toBeNull();
    expect(r.assignSlot("backend", "c")).toBeNull();
    expect(r.assignSlot("bg_worker", "w")).not.toBeNull();
    expect(r.freeSlots("backend")).toBe(0);
    expect(r.count(btmask("backend"))).toBe(2);
  });

  test("singleton kinds have one slot; dead-end entries take none", () => {
    const r = new ChildRegistry({ backend: 0 });
    expect(r.assignSlot("checkpointer", "c")).not.toBeNull();
    expect(r.assignSlot("checkpointer", "c2")).toBeNull();
    const [, server] = connectionPair();
    for (let i = 0; i < 5; i++) r.allocDeadEnd(server);
    expect(r.count(btmask("dead_end_backend"))).toBe(5);
  });

  test("a released slot is reused, found by pid until then, and released only once", () => {
    const r = new ChildRegistry({ backend: 1 });
    const a = r.assignSlot("backend", "a")!;
    a.pid = 4242;
    expect(r.findByPid(4242)).toBe(a);
    expect(r.release(a)).toBe(true);
    expect(r.release(a)).toBe(false);
    expect(r.findByPid(4242)).toBeUndefined();
    const b = r.assignSlot("backend", "b")!;
    expect(b.slot).toBe(a.slot);
  });

  test("pool sizes must be non-negative integers", () => {
    expect(() => new ChildRegistry({ backend: -1 })).toThrow(RangeError);
  });
});

describe("exit rules", () => {
  const run = { pmState: "PM_RUN" } as const;
  const shuttingDown = { pmState: "PM_WAIT_CHECKPOINTER" } as const;

  test("backends: exit 0 or 1 is normal, anything else (and any signal) is a crash", () => {
    expect(classifyChildExit("backend", code(0), run)).toBe("normal");
    expect(classifyChildExit("backend", code(1), run)).toBe("normal");
    expect(classifyChildExit("backend", code(2), run)).toBe("crash");
    expect(classifyChildExit("backend", killed, run)).toBe("crash");
  });

  test("workers crash only with shared-state access", () => {
    expect(classifyChildExit("bg_worker", killed, { ...run, sharedState: true })).toBe("crash");
    expect(classifyChildExit("bg_worker", code(1), { ...run, sharedState: true })).toBe("normal");
    expect(classifyChildExit("bg_worker", killed, { ...run, sharedState: false })).toBe("normal");
  });

  test("the checkpointer and the engine may only exit 0, and only at the end of a shutdown", () => {
    for (const kind of ["checkpointer", "engine"] as const) {
      expect(classifyChildExit(kind, code(0), run)).toBe("crash");
      expect(classifyChildExit(kind, code(0), shuttingDown)).toBe("normal");
      expect(classifyChildExit(kind, code(1), shuttingDown)).toBe("crash");
    }
  });

  test("the logger and stats process never crash the cluster; the autovacuum launcher can", () => {
    expect(classifyChildExit("logger", killed, run)).toBe("normal");
    expect(classifyChildExit("stats", code(3), run)).toBe("normal");
    expect(classifyChildExit("autovac_launcher", code(0), run)).toBe("normal");
    expect(classifyChildExit("autovac_launcher", code(1), run)).toBe("crash");
  });

  test("the archiver is restarted whatever its exit, never a crash cycle", () => {
    expect(classifyChildExit("archiver", killed, run)).toBe("normal");
    expect(classifyChildExit("archiver", code(1), run)).toBe("normal");
    expect(relaunchedWhenMissing("archiver")).toBe(true);
  });

  test("every kind has a rule and a relaunch policy", () => {
    for (const kind of BACKEND_TYPES) {
      expect(["normal", "crash"]).toContain(classifyChildExit(kind, code(0), run));
      expect(typeof relaunchedWhenMissing(kind)).toBe("boolean");
    }
    expect(relaunchedWhenMissing("logger")).toBe(true);
    expect(relaunchedWhenMissing("backend")).toBe(false);
  });

  test("exit messages read as PostgreSQL's LogChildExit", () => {
    expect(childExitMessage("client backend", 12, killed)).toBe(
      "client backend (PID 12) was terminated by signal 9: Killed",
    );
    expect(childExitMessage("startup process", 3, code(1))).toBe(
      "startup process (PID 3) exited with exit code 1",
    );
  });
});

describe("admission", () => {
  const base = { shutdown: Shutdown.NoShutdown, fatalError: false, connsAllowed: true };
  test("canAcceptConnections follows the state", () => {
    expect(canAcceptConnections({ ...base, pmState: "PM_RUN" })).toBe("CAC_OK");
    expect(canAcceptConnections({ ...base, pmState: "PM_STARTUP" })).toBe("CAC_STARTUP");
    expect(canAcceptConnections({ ...base, pmState: "PM_RECOVERY" })).toBe("CAC_NOTCONSISTENT");
    expect(canAcceptConnections({ ...base, pmState: "PM_STARTUP", fatalError: true })).toBe(
      "CAC_RECOVERY",
    );
    expect(canAcceptConnections({ ...base, pmState: "PM_RUN", connsAllowed: false })).toBe(
      "CAC_SHUTDOWN",
    );
    expect(
      canAcceptConnections({
        ...base,
        pmState: "PM_WAIT_BACKENDS",
        shutdown: Shutdown.FastShutdown,
      }),
    ).toBe("CAC_SHUTDOWN");
  });
});

describe("settings", () => {
  test("values come from get(name), with PostgreSQL's defaults and units", () => {
    const values: Record<string, unknown> = {
      restart_after_crash: "off",
      authentication_timeout: "500ms",
    };
    const s = new PostmasterSettings(settingsFrom(values));
    expect(s.bool("restart_after_crash")).toBe(false);
    expect(s.seconds("authentication_timeout")).toBe(0.5);
    expect(s.int("max_connections")).toBe(100);
    values.max_connections = "7";
    expect(s.int("max_connections")).toBe(7);
    values.max_connections = "many";
    expect(() => s.int("max_connections")).toThrow(RangeError);
  });
});

describe("in-process launcher", () => {
  const mains: Record<string, ChildMain> = {
    returns3: () => 3,
    throws: () => {
      throw new Error("boom");
    },
    fatal: () => {
      throw new PgError("57P01", "bye", { severity: "FATAL" });
    },
    waits: (env) => new Promise((r) => env.abort.addEventListener("abort", () => r(0))),
    talks: (env) => {
      env.onMessage = (m) => env.post({ echo: m });
      env.onSignal("SIGUSR1", () => env.post("usr1"));
      return new Promise((r) => env.abort.addEventListener("abort", () => r(0)));
    },
  };
  const launcher = new InprocLauncher({ resolve: (e) => mains[e.export]! });
  const start = (name: string) =>
    launcher.launch({ kind: "backend", name, entry: { module: "x", export: name }, params: null });

  test("a main's return value is its exit code; pids are unique", async () => {
    const a = await start("returns3");
    const b = await start("returns3");
    expect(a.pid).not.toBe(b.pid);
    expect(await a.exited).toEqual({ code: 3, signal: null });
  });

  test("an uncaught throw is a crash (SIGABRT); a FATAL PgError exits 1", async () => {
    expect(await (await start("throws")).exited).toEqual({ code: null, signal: "SIGABRT" });
    expect(await (await start("fatal")).exited).toEqual({ code: 1, signal: null });
  });

  test("SIGKILL ends a child at once, destroys its client and silences it", async () => {
    const [client, server] = connectionPair();
    let clientClosed = false;
    client.onClose = () => (clientClosed = true);
    const proc = await launcher.launch({
      kind: "backend",
      name: "waits",
      entry: { module: "x", export: "waits" },
      params: null,
      client: server,
    });
    proc.signal("SIGKILL");
    expect(await proc.exited).toEqual({ code: null, signal: "SIGKILL" });
    await new Promise((r) => setTimeout(r, 5));
    expect(clientClosed).toBe(true);
  });

  test("signals and messages arrive in order; an unhandled signal terminates", async () => {
    const proc = await start("talks");
    const heard: unknown[] = [];
    proc.onMessage = (m) => heard.push(m);
    await new Promise((r) => setTimeout(r, 1));
    proc.post("one");
    proc.signal("SIGUSR1");
    proc.post("two");
    await new Promise((r) => setTimeout(r, 5));
    expect(heard).toEqual([{ echo: "one" }, "usr1", { echo: "two" }]);
    proc.signal("SIGTERM");
    expect(await proc.exited).toEqual({ code: null, signal: "SIGTERM" });
  });

  test("messages are copies, as through a pipe; what cannot be cloned is refused", async () => {
    const proc = await start("talks");
    const heard: unknown[] = [];
    proc.onMessage = (m) => heard.push(m);
    await new Promise((r) => setTimeout(r, 1));
    const flat = { pgts: "backend-key", key: 7, user: "alice", skip: undefined };
    const nested = { list: [1, { two: 2 }], when: new Date(0) };
    proc.post(flat);
    proc.post(nested);
    flat.key = 8;
    nested.list.push(3);
    await new Promise((r) => setTimeout(r, 5));
    expect(heard).toEqual([{
      echo: { pgts: "backend-key", key: 7, user: "alice", skip: undefined },
    }, {
      echo: { list: [1, { two: 2 }], when: new Date(0) },
    }]);
    const odd = JSON.parse('{"__proto__": null, "a": 1}') as Record<string, unknown>;
    proc.post(odd);
    await new Promise((r) => setTimeout(r, 5));
    const echoed = (heard[2] as { echo: Record<string, unknown> }).echo;
    expect(Object.getPrototypeOf(echoed)).toBe(Object.prototype);
    expect(Object.hasOwn(echoed, "__proto__") && echoed.a === 1).toBe(true);
    expect(() => proc.post({ f: () => 1 })).toThrow();
    expect(() => proc.post(Symbol("s"))).toThrow();
    proc.signal("SIGTERM");
    await proc.exited;
  });
});
