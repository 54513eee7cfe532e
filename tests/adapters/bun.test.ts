/**
 * The Bun adapter: subprocess children with real signals and exit statuses,
 * and client connections handed to them without the postmaster relaying a
 * byte (or keeping an fd), over TCP and Unix sockets.
 */

import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { BunSubprocessLauncher } from "../../src/adapters/bun/launcher.ts";
import type { AcceptedConnection } from "../../src/core/adapter.ts";
import { BunNetAdapter } from "../../src/adapters/bun/net.ts";
import { DenoNetAdapter } from "../../src/adapters/deno/net.ts";
import { WorkerLauncher } from "../../src/adapters/worker/launcher.ts";
import {
  checkEarlySignal,
  checkEcho,
  checkExits,
  checkHandoff,
  checkPooledReuse,
  checkSignals,
  checkStaleUnixSocket,
  MAINS,
  POOLED_REUSE,
} from "../helpers/launcher_checks.ts";

/**
 * An in-process connection (`handOff: false`) whose backend has not
 * started: open, then paused as the postmaster pauses it; `seen` records
 * its data and its close, as a backend would see them once resumed.
 */
async function pausedInProcessConnection() {
  const seen: string[] = [];
  let opened: (c: AcceptedConnection) => void = () => {};
  const open = new Promise<AcceptedConnection>((resolve) => (opened = resolve));
  const listener = await new BunNetAdapter({ handOff: false }).listen(
    { family: "tcp", host: "127.0.0.1", port: 0 },
    (c) => {
      c.onData = (chunk) => seen.push(new TextDecoder().decode(chunk));
      c.onClose = () => seen.push("<close>");
      c.resume();
      opened(c);
    },
  );
  try {
    const client = await Bun.connect({
      hostname: "127.0.0.1",
      port: (listener.address as { port: number }).port,
      socket: { data() {} },
    });
    const conn = await open;
    conn.pause();
    return { seen, conn, client, listener };
  } catch (e) {
    await listener.close();
    throw e;
  }
}

function leaveStaleSocket(path: string): void {
  // A server that exits without closing leaves its socket file behind.
  spawnSync(process.execPath, [
    "-e",
    `require("net").createServer().listen(${JSON.stringify(path)}, () => process.exit(0))`,
  ]);
}

describe("Bun subprocess launcher", () => {
  const launcher = new BunSubprocessLauncher();

  test("a child echoes messages with its pid and start parameters", async () => {
    const r = await checkEcho(launcher);
    expect(r.echoed).toEqual([1, 2, 3]);
    expect(r.pidMatches).toBe(true);
    expect(r.params).toEqual({ n: 1 });
  });

  test("signals reach the child's handlers, and its return value is the exit code", async () => {
    const r = await checkSignals(launcher);
    expect(r.got).toEqual(["SIGHUP", "SIGUSR1", "SIGUSR2", "SIGINT", "SIGQUIT", "SIGTERM"]);
    expect(r.exit).toEqual({ code: 7, signal: null });
  });

  test("a SIGTERM sent while the child is still starting reaches its handler", async () => {
    const r = await checkEarlySignal(launcher);
    expect(r).toEqual({ got: "SIGTERM", exit: { code: 0, signal: null } });
  });

  test("SIGKILL, an uncaught throw and an unhandled SIGTERM end children as the kernel reports", async () => {
    const r = await checkExits(launcher);
    expect(r.sigkill).toEqual({ code: null, signal: "SIGKILL" });
    expect(r.throwInMain).toEqual({ code: 2, signal: null });
    expect(r.throwLater).toEqual({ code: 2, signal: null });
    expect(r.unhandledSigterm).toEqual({ code: null, signal: "SIGTERM" });
  });

  for (const family of ["tcp", "unix"] as const) {
    test(`a ${family} client is served by the child directly and sees the close when it exits`, async () => {
      const r = await checkHandoff(launcher, new BunNetAdapter(), family);
      expect(r.greetedByChildPid).toBe(true);
      expect(r.parentFds).toBe(0);
      expect(r.echoed).toBe(true);
      expect(r.exit).toEqual({ code: 0, signal: null });
    });
  }

  test("a node:net client can travel over the IPC channel instead of stdio", async () => {
    const ipc = new BunSubprocessLauncher({ handoff: "ipc" });
    const r = await checkHandoff(ipc, new DenoNetAdapter(), "tcp");
    expect(r.greetedByChildPid).toBe(true);
    expect(r.parentFds).toBe(0);
    expect(r.exit).toEqual({ code: 0, signal: null });
  });
});

describe("Bun NetAdapter", () => {
  test("port 0 reports the port the kernel picked", async () => {
    const l = await new BunNetAdapter().listen(
      { family: "tcp", host: "127.0.0.1", port: 0 },
      (c) => c.destroy(),
    );
    try {
      expect(l.address.family).toBe("tcp");
      expect((l.address as { port: number }).port).toBeGreaterThan(0);
    } finally {
      await l.close();
    }
  });

  test("an in-process connection's pause holds what the client sends until resume, in order", async () => {
    const got: string[] = [];
    let conn: AcceptedConnection | null = null;
    let opened: () => void = () => {};
    const open = new Promise<void>((resolve) => (opened = resolve));
    const l = await new BunNetAdapter({ handOff: false }).listen(
      { family: "tcp", host: "127.0.0.1", port: 0 },
      (c) => {
        conn = c;
        c.onData = (chunk) => got.push(new TextDecoder().decode(chunk));
        c.resume();
        opened();
      },
    );
    const sent = async (text: string) => {
      client.write(text);
      await Bun.sleep(50);
    };
    const client = await Bun.connect({
      hostname: "127.0.0.1",
      port: (l.address as { port: number }).port,
      socket: { data() {} },
    });
    try {
      await open;
      await sent("one;");
      conn!.pause();
      await sent("two;");
      await sent("three;");
      const whilePaused = got.join("");
      conn!.resume();
      await sent("four;");
      expect(whilePaused).toBe("one;");
      expect(got.join("")).toBe("one;two;three;four;");
    } finally {
      client.end();
      await l.close();
    }
  });

  test("an in-process connection paused when its client closes sees the close at resume, after the bytes", async () => {
    const { seen, conn, client, listener } = await pausedInProcessConnection();
    try {
      client.write("last words");
      client.end();
      await Bun.sleep(100);
      const whilePaused = seen.join("");
      conn.resume();
      await Bun.sleep(100);
      expect(whilePaused).toBe("");
      expect(seen.join("")).toBe("last words<close>");
    } finally {
      await listener.close();
    }
  });

  test("an in-process connection paused when its client closes without a byte sees the close at resume", async () => {
    const { seen, conn, client, listener } = await pausedInProcessConnection();
    try {
      client.end();
      await Bun.sleep(100);
      const whilePaused = seen.join("");
      conn.resume();
      await Bun.sleep(50);
      expect(whilePaused).toBe("");
      expect(seen.join("")).toBe("<close>");
    } finally {
      await listener.close();
    }
  });

  test("a stale unix socket file is replaced, a live one is refused", async () => {
    const r = await checkStaleUnixSocket(new BunNetAdapter(), leaveStaleSocket);
    expect(r.staleLeft).toBe(true);
    expect(r.bound).toBe(true);
    expect(r.second).toContain("already in use");
    expect(r.removedOnClose).toBe(true);
  });
});

describe("Worker launcher under Bun", () => {
  const launcher = new WorkerLauncher();

  test("a worker child echoes, handles signals as messages, and crashes are reported", async () => {
    expect((await checkEcho(launcher)).echoed).toEqual([1, 2, 3]);
    expect((await checkSignals(launcher)).exit).toEqual({ code: 7, signal: null });
    expect(await checkEarlySignal(launcher)).toEqual({
      got: "SIGTERM",
      exit: { code: 0, signal: null },
    });
    const r = await checkExits(launcher);
    expect(r.sigkill).toEqual({ code: null, signal: "SIGKILL" });
    expect(r.throwInMain).toEqual({ code: 2, signal: null });
    expect(r.throwLater).toEqual({ code: 2, signal: null });
    expect(r.unhandledSigterm).toEqual({ code: null, signal: "SIGTERM" });
  });

  test("a worker child serves a client through the postmaster's relay", async () => {
    const r = await checkHandoff(launcher, new BunNetAdapter(), "tcp");
    expect(r.greetedByChildPid).toBe(true);
    expect(r.echoed).toBe(true);
    expect(r.exit).toEqual({ code: 0, signal: null });
  });

  test("a pooled worker serves the next client under its pid, with nothing of the last run", async () => {
    const pooled = new WorkerLauncher({ pool: { size: 1, module: MAINS } });
    expect(await checkPooledReuse(pooled, new BunNetAdapter())).toEqual(POOLED_REUSE);
  });
});
