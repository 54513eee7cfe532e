/**
 * The Bun subprocess launcher: every child is a `Bun.spawn` process with an
 * IPC channel, running src/adapters/bun/child.ts (or, in a compiled binary,
 * the binary itself with CHILD_FLAG). Signals are real OS signals and a
 * child's exit status is the kernel's.
 *
 * A client connection is handed over without relaying a byte. Two routes:
 * - "stdio" (default): the accepted socket's fd becomes the child's fd 3 at
 *   spawn time and the child adopts it with `Bun.connect({ fd: 3 })`;
 * - "ipc": the socket travels with the start envelope, `subprocess.send(msg,
 *   socket)` (SCM_RIGHTS); only node:net sockets can be sent this way.
 * Either way the parent then drops its copy, so the client sees the close
 * when the child exits. scripts/bench/children.ts compares the two.
 *
 * With `pool`, backends do not pay for a process start: `pool.size` children
 * are started ahead, already loading the backend's module, and a client is
 * sent to an idle one over IPC (the "ipc" route, the only one open to a
 * running process). A pooled child whose main ends cleanly (exit 0, the
 * client said Terminate or went away) reports that exit, which is what the
 * postmaster sees of it, and comes back to the pool; anything else (FATAL,
 * crash, signal) ends the process as before. The pool keeps at most
 * `pool.max` idle processes; it is refilled in the background. Idle
 * processes beyond `pool.size` end after POOL_TRIM_MS without a client, so
 * that after a flood of connections the process count and memory come back
 * to where they were.
 */

import process from "node:process";
import { fileURLToPath } from "node:url";
import type {
  ChildExit,
  ChildLauncher,
  ChildProcess,
  ChildStartInfo,
  Signal,
} from "../../core/adapter.ts";
import { ChildHandle } from "../child/childhandle.ts";
import { nodeSocketOf } from "../node/nodeconn.ts";
import { isToParent, type StartPayload, type ToChild, toChildExit } from "../child/envelope.ts";
import type { BunSubprocess } from "./bun.d.ts";
import { CHILD_FLAG, POOL_FLAG, PRELOAD_FLAG } from "./child.ts";
import { bunApi, isBunSocketHandle } from "./net.ts";

/**
 * Ends a pooled process that serves no run. SIGKILL, not SIGTERM: a process
 * whose run has just reported its exit may still have that run's SIGTERM
 * handler installed (it is removed once the exit envelope is on the wire),
 * and a SIGTERM caught there was lost, leaving a process nobody would use
 * again (after a flood of connections, one per surplus return). An idle
 * pooled process holds no client and no state; the postmaster has already
 * seen its run end.
 */
function endIdle(p: Pooled): void {
  try {
    p.sub.kill("SIGKILL");
  } catch {
    // already gone
  }
}

/** How long idle pooled processes beyond the pool's size are kept after a burst. */
const POOL_TRIM_MS = 2000;

export interface BunSubprocessLauncherOptions {
  /**
   * The argv that starts a child entry. Default: this runtime running
   * child.ts, or, inside a compiled binary, the binary itself with
   * CHILD_FLAG (its CLI must then call `runChildFromArgv()`).
   */
  readonly command?: readonly string[];
  /** How a client socket reaches the child; see the module header. */
  readonly handoff?: "stdio" | "ipc";
  /** Environment for children; default: the postmaster's. */
  readonly env?: Record<string, string | undefined>;
  /**
   * Backend processes started ahead and reused (see the module header):
   * `size` idle ones kept ready, at most `max` (default 2 × size) kept idle
   * after their client left. Default: no pool.
   */
  readonly pool?: {
    readonly size: number;
    readonly max?: number;
    /**
     * The backends' module, when known ahead: the pool is then filled at
     * the launcher's first launch (the postmaster's start), not at the first
     * client's, which would otherwise wait behind `size` process starts.
     */
    readonly module?: string;
  };
}

/** A pooled process and the run it serves now, if any. */
interface Pooled {
  readonly sub: BunSubprocess;
  /** The module its backends run, loaded ahead. */
  readonly module: string;
  run: { handle: ChildHandle; exit: (e: ChildExit) => void } | null;
}

/** The fd a handed-off client has in the child (after stdin, stdout, stderr). */
const CLIENT_FD = 3;

/** True inside a `bun build --compile` binary, whose modules live in /$bunfs. */
export function isCompiledBinary(): boolean {
  const main = (globalThis as { Bun?: { main?: string } }).Bun?.main ?? "";
  return main.startsWith("/$bunfs/") || main.startsWith("B:/~BUN/");
}

export function defaultChildCommand(): string[] {
  if (isCompiledBinary()) return [process.execPath, CHILD_FLAG];
  return [process.execPath, fileURLToPath(new URL("./child.ts", import.meta.url)), CHILD_FLAG];
}

export class BunSubprocessLauncher implements ChildLauncher {
  readonly name = "bun-subprocess";
  #command: readonly string[];
  #handoff: "stdio" | "ipc";
  #env: Record<string, string | undefined> | undefined;
  #poolSize: number;
  #poolMax: number;
  #idle: Pooled[] = [];
  #primeModule: string | undefined;
  #closed = false;
  #trimTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(options: BunSubprocessLauncherOptions = {}) {
    this.#command = options.command ?? defaultChildCommand();
    this.#handoff = options.handoff ?? "stdio";
    this.#env = options.env;
    this.#poolSize = Math.max(0, options.pool?.size ?? 0);
    this.#poolMax = Math.max(this.#poolSize, options.pool?.max ?? 2 * this.#poolSize);
    this.#primeModule = options.pool?.module;
  }

  launch(info: ChildStartInfo): Promise<ChildProcess> {
    if (this.#primeModule !== undefined && this.#poolSize > 0) {
      this.#fillPool(this.#primeModule);
      this.#primeModule = undefined;
    }
    if (this.#poolSize > 0 && info.client !== undefined) {
      const node = nodeSocketOf(info.client.handle);
      if (node !== null) {
        const pooled = this.#takeIdle(info.entry.module);
        this.#fillPool(info.entry.module);
        if (pooled !== null) return Promise.resolve(this.#startPooled(pooled, info, node));
      }
    }
    return this.#spawnFor(info);
  }

  /**
   * The idle process that served last: a process whose code the JIT has
   * already compiled starts a session several times faster than a cold one,
   * so the pool is used as a stack. New processes go to the bottom.
   */
  #takeIdle(module: string): Pooled | null {
    const i = this.#idle.findLastIndex((p) => p.module === module && p.sub.exitCode === null);
    if (i < 0) return null;
    return this.#idle.splice(i, 1)[0]!;
  }

  /**
   * Ends idle processes beyond `size` once the pool has had that many idle
   * for POOL_TRIM_MS: the coldest first (the bottom of the stack), keeping
   * the ones whose code is compiled.
   */
  #scheduleTrim(): void {
    if (this.#trimTimer !== null || this.#closed) return;
    this.#trimTimer = setTimeout(() => {
      this.#trimTimer = null;
      if (this.#closed) return;
      const extra = this.#idle.length - this.#poolSize;
      if (extra <= 0) return;
      for (const p of this.#idle.splice(0, extra)) endIdle(p);
    }, POOL_TRIM_MS);
    (this.#trimTimer as { unref?: () => void }).unref?.();
  }

  /** Starts pooled processes until `size` are idle. */
  #fillPool(module: string): void {
    while (!this.#closed && this.#idle.length < this.#poolSize) {
      this.#spawnPooled(module);
    }
  }

  #spawnPooled(module: string): void {
    const bun = bunApi();
    let pooled: Pooled | null = null;
    const sub: BunSubprocess = bun.spawn([...this.#command, POOL_FLAG, PRELOAD_FLAG + module], {
      stdio: ["ignore", "inherit", "inherit"],
      serialization: "advanced",
      ...(this.#env ? { env: this.#env } : {}),
      ipc: (message) => {
        if (!isToParent(message) || pooled === null) return;
        const run = pooled.run;
        if (message.t === "msg") run?.handle.receive(message.m);
        else if (message.t === "up") run?.handle.up();
        else if (message.t === "exit" && run !== null && message.code === 0) {
          // The run is over; the process stays, and goes back to the pool.
          pooled.run = null;
          run.exit({ code: 0, signal: null });
          if (!this.#closed && this.#idle.length < this.#poolMax) {
            this.#idle.push(pooled);
            if (this.#idle.length > this.#poolSize) this.#scheduleTrim();
          } else endIdle(pooled);
        }
      },
    });
    pooled = { sub, module, run: null };
    // Counted as idle at once: it loads its module while it waits, and a
    // client sent before it is ready waits in the IPC channel.
    this.#idle.unshift(pooled);
    void sub.exited.then(() => {
      const i = this.#idle.indexOf(pooled!);
      if (i >= 0) this.#idle.splice(i, 1);
      const run = pooled!.run;
      pooled!.run = null;
      run?.exit(toChildExit(sub.exitCode, sub.signalCode));
    });
  }

  #startPooled(
    pooled: Pooled,
    info: ChildStartInfo,
    node: { socket: unknown; release: () => void },
  ): ChildProcess {
    const sub = pooled.sub;
    let exit: (e: ChildExit) => void = () => {};
    const exited = new Promise<ChildExit>((resolve) => (exit = resolve));
    let over = false;
    void exited.then(() => (over = true));
    const handle = new ChildHandle(sub.pid, exited, {
      signal(sig: Signal) {
        // A run that is over no longer owns the process.
        if (over || sub.exitCode !== null || sub.signalCode !== null) return;
        try {
          sub.kill(sig);
        } catch {
          // Exited between the check and the kill (ESRCH): the exit is reported anyway.
        }
      },
      post(message) {
        if (!over && sub.exitCode === null) sendQuietly(sub, { t: "msg", m: message });
      },
    });
    pooled.run = { handle, exit };
    const start: StartPayload = {
      pid: sub.pid,
      kind: info.kind,
      name: info.name,
      entry: info.entry,
      params: info.params,
      client: { via: "handle", remote: info.client!.remote },
    };
    sub.send({ t: "start", start } satisfies ToChild, node.socket);
    node.release();
    return handle;
  }

  #spawnFor(info: ChildStartInfo): Promise<ChildProcess> {
    const bun = bunApi();
    const handle = info.client?.handle;
    let route: "fd" | "handle" | null = null;
    let fd = -1;
    // What is given to the child over IPC (ipc route), and how our copy goes.
    let socket: unknown = null;
    let release = () => {};
    if (info.client !== undefined) {
      const node = nodeSocketOf(handle);
      if (isBunSocketHandle(handle)) {
        route = "fd";
        fd = handle.fd;
        release = () => handle.release();
      } else if (node !== null) {
        release = node.release;
        if (this.#handoff === "ipc") {
          route = "handle";
          socket = node.socket;
        } else {
          // node:net under Bun exposes the accepted fd on its handle.
          const nodeFd = (node.socket as { _handle?: { fd?: unknown } })._handle?.fd;
          if (typeof nodeFd !== "number" || nodeFd < 0) {
            return Promise.reject(
              new TypeError("Client socket has no file descriptor to hand off"),
            );
          }
          route = "fd";
          fd = nodeFd;
        }
      } else {
        return Promise.reject(
          new TypeError("Client connection was not accepted by a Bun or node:net NetAdapter"),
        );
      }
    }

    let child: ChildHandle | null = null;
    const sub: BunSubprocess = bun.spawn([...this.#command], {
      stdio: fd >= 0 ? ["ignore", "inherit", "inherit", fd] : ["ignore", "inherit", "inherit"],
      serialization: "advanced",
      ...(this.#env ? { env: this.#env } : {}),
      ipc(message) {
        if (!isToParent(message)) return;
        if (message.t === "msg") child?.receive(message.m);
        else if (message.t === "up") child?.up();
      },
    });

    const remote = info.client?.remote;
    const start: StartPayload = {
      pid: sub.pid,
      kind: info.kind,
      name: info.name,
      entry: info.entry,
      params: info.params,
      client: route === null || remote === undefined
        ? null
        : route === "fd"
        ? { via: "fd", fd: CLIENT_FD, remote }
        : { via: "handle", remote },
    };
    const send = (message: ToChild) => {
      if (sub.exitCode === null && sub.signalCode === null) sendQuietly(sub, message);
    };
    if (route === "handle") sub.send({ t: "start", start } satisfies ToChild, socket);
    else sub.send({ t: "start", start } satisfies ToChild);
    // The child holds its own copy now (dup'd at spawn, or in flight in the
    // IPC message); ours must go, or the client would not see the close.
    release();

    const exited = sub.exited.then(() => toChildExit(sub.exitCode, sub.signalCode));
    child = new ChildHandle(sub.pid, exited, {
      signal(sig: Signal) {
        if (sub.exitCode !== null || sub.signalCode !== null) return;
        try {
          sub.kill(sig);
        } catch {
          // Exited between the check and the kill (ESRCH): the exit is reported anyway.
        }
      },
      post(message) {
        send({ t: "msg", m: message });
      },
    });
    return Promise.resolve(child);
  }

  /** Ends the idle pooled processes; running children stay the postmaster's. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#trimTimer !== null) clearTimeout(this.#trimTimer);
    const idle = this.#idle.splice(0);
    for (const p of idle) endIdle(p);
    await Promise.all(idle.map((p) => p.sub.exited));
  }
}

/**
 * Sends a message to a child that may be exiting: its IPC channel can close
 * before its exit is reported, and then the message has no one to read it.
 * The exit is reported anyway; a throw here would take the postmaster down.
 */
function sendQuietly(sub: { send(message: ToChild): void }, message: ToChild): void {
  try {
    sub.send(message);
  } catch {
    // The channel closed: the child is on its way out.
  }
}
