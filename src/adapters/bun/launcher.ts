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
 * With `pool`, backends do not pay for a process start: a client goes to an
 * idle process started ahead (child/pool.ts) over IPC, the "ipc" route, the
 * only one open to a running process.
 */

import process from "node:process";
import { fileURLToPath } from "node:url";
import type { ChildLauncher, ChildProcess, ChildStartInfo, Signal } from "../../core/adapter.ts";
import { ChildHandle } from "../child/childhandle.ts";
import { nodeSocketOf } from "../node/nodeconn.ts";
import { isToParent, type StartPayload, type ToChild, toChildExit } from "../child/envelope.ts";
import { BackendPool, type BackendPoolOptions, type PoolProcess } from "../child/pool.ts";
import type { BunSubprocess } from "./bun.d.ts";
import { CHILD_FLAG, POOL_FLAG, PRELOAD_FLAG } from "./child.ts";
import { bunApi, isBunSocketHandle } from "./net.ts";

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
  readonly pool?: BackendPoolOptions;
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
  #pool: BackendPool;

  constructor(options: BunSubprocessLauncherOptions = {}) {
    this.#command = options.command ?? defaultChildCommand();
    this.#handoff = options.handoff ?? "stdio";
    this.#env = options.env;
    this.#pool = new BackendPool(options.pool ?? { size: 0 }, (module, onMessage) => {
      const sub: BunSubprocess = bunApi().spawn(
        [...this.#command, POOL_FLAG, PRELOAD_FLAG + module],
        {
          stdio: ["ignore", "inherit", "inherit"],
          serialization: "advanced",
          ...(this.#env ? { env: this.#env } : {}),
          ipc: (message) => {
            if (isToParent(message)) onMessage(message);
          },
        },
      );
      return pooledProcess(sub);
    });
  }

  launch(info: ChildStartInfo): Promise<ChildProcess> {
    this.#pool.prime();
    if (info.client !== undefined) {
      const node = nodeSocketOf(info.client.handle);
      const pooled = node === null ? null : this.#pool.take(info, node);
      if (pooled !== null) return Promise.resolve(pooled);
    }
    return this.#spawnFor(info);
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
  close(): Promise<void> {
    return this.#pool.close();
  }
}

/** A pooled Bun process as the pool drives it: real OS signals, the kernel's exit status. */
function pooledProcess(sub: BunSubprocess): PoolProcess {
  const running = () => sub.exitCode === null && sub.signalCode === null;
  return {
    pid: sub.pid,
    exited: sub.exited.then(() => toChildExit(sub.exitCode, sub.signalCode)),
    running,
    kill(sig) {
      try {
        sub.kill(sig);
      } catch {
        // Exited meanwhile (ESRCH): the exit is reported anyway.
      }
    },
    send(message) {
      if (running()) sendQuietly(sub, message);
    },
    sendWithSocket(message, socket, release) {
      sub.send(message, socket);
      release();
    },
  };
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
