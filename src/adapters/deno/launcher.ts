/**
 * The Deno subprocess launcher: every child is a `node:child_process` fork
 * running src/adapters/deno/child.ts, with an IPC channel. It is the only
 * Deno route that hands a client over without relaying bytes: the socket is
 * sent with the start envelope (`child.send(msg, socket)`, SCM_RIGHTS), and
 * the parent's copy is dropped once it is on the wire.
 *
 * Two Deno 2.9 quirks shape it: `ChildProcess.kill()` delivers only the
 * first signal of a child's life, so signals go through `Deno.kill(pid)`;
 * and SIGUSR1 opens Deno's inspector in the child, so SIGUSR1 travels as an
 * IPC message (a child with no SIGUSR1 handler ignores it, as Deno does).
 *
 * With `pool` (`backend_pool_size`), backends are forked ahead and reused
 * (child/pool.ts): a forked Deno backend spends some 100 ms loading pgts's
 * modules before it can answer, which a pooled one has done before its
 * client arrives.
 */

import { type ChildProcess as NodeChildProcess, fork } from "node:child_process";
import type net from "node:net";
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
import { BackendPool, type BackendPoolOptions, type PoolProcess } from "../child/pool.ts";
import { CHILD_FLAG, POOL_FLAG, PRELOAD_FLAG } from "./child.ts";

export interface DenoSubprocessLauncherOptions {
  /** The child entry module to fork; default: child.ts next to this file. */
  readonly module?: string;
  /** Environment for children; default: the postmaster's. */
  readonly env?: Record<string, string | undefined>;
  /** Backend processes forked ahead and reused (child/pool.ts). Default: no pool. */
  readonly pool?: BackendPoolOptions;
}

/**
 * A child's environment: `env` with V8's `--expose-gc` added to
 * DENO_V8_FLAGS, so that a child can run the collections that keep a huge
 * COPY's buffers from piling up (nodeconn.ts's reads, the engine's
 * CollectorHint in src/engines/pglite/gchint.ts); Deno has no other way to
 * ask for one.
 */
function childEnv(env: Record<string, string | undefined>): Record<string, string | undefined> {
  const flags = env["DENO_V8_FLAGS"] ?? "";
  if (flags.split(",").includes("--expose-gc")) return env;
  return { ...env, DENO_V8_FLAGS: flags === "" ? "--expose-gc" : `${flags},--expose-gc` };
}

export class DenoSubprocessLauncher implements ChildLauncher {
  readonly name = "deno-subprocess";
  #module: string;
  #env: Record<string, string | undefined> | undefined;
  #pool: BackendPool;

  constructor(options: DenoSubprocessLauncherOptions = {}) {
    this.#module = options.module ?? fileURLToPath(new URL("./child.ts", import.meta.url));
    this.#env = options.env;
    this.#pool = new BackendPool(options.pool ?? { size: 0 }, (module, onMessage) => {
      const cp = this.#fork([CHILD_FLAG, POOL_FLAG, PRELOAD_FLAG + module]);
      cp.on("message", (message: unknown) => {
        if (isToParent(message)) onMessage(message);
      });
      return forkedProcess(cp);
    });
  }

  #fork(args: string[]): NodeChildProcess {
    return fork(this.#module, args, {
      serialization: "advanced",
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      env: childEnv(this.#env ?? process.env),
    });
  }

  launch(info: ChildStartInfo): Promise<ChildProcess> {
    const node = info.client === undefined ? null : nodeSocketOf(info.client.handle);
    if (info.client !== undefined && node === null) {
      return Promise.reject(
        new TypeError("Client connection was not accepted by a node:net NetAdapter"),
      );
    }
    this.#pool.prime();
    if (node !== null) {
      const pooled = this.#pool.take(info, node);
      if (pooled !== null) return Promise.resolve(pooled);
    }
    const cp = this.#fork([CHILD_FLAG]);
    if (cp.pid === undefined) {
      return Promise.reject(new Error(`could not fork new process for "${info.name}"`));
    }
    const proc = forkedProcess(cp);
    const child = new ChildHandle(proc.pid, proc.exited, {
      signal: (sig: Signal) => proc.kill(sig),
      post: (message) => proc.send({ t: "msg", m: message }),
    });
    cp.on("message", (message: unknown) => {
      if (!isToParent(message)) return;
      if (message.t === "msg") child.receive(message.m);
      else if (message.t === "up") child.up();
    });

    const start: StartPayload = {
      pid: proc.pid,
      kind: info.kind,
      name: info.name,
      entry: info.entry,
      params: info.params,
      client: info.client ? { via: "handle", remote: info.client.remote } : null,
    };
    if (node !== null) proc.sendWithSocket({ t: "start", start }, node.socket, node.release);
    else proc.send({ t: "start", start });
    return Promise.resolve(child);
  }

  /** Ends the idle pooled processes; running children stay the postmaster's. */
  close(): Promise<void> {
    return this.#pool.close();
  }
}

/**
 * A fork as a process, pooled (as the pool drives it) or not. Its exit is
 * the `exit` event's; signals go by `Deno.kill` and SIGUSR1 as a message.
 */
function forkedProcess(cp: NodeChildProcess): PoolProcess {
  // A fork that failed has no pid: it counts as exited (a crash) at once.
  const pid = cp.pid ?? 0;
  let ended = cp.pid === undefined;
  const exited = ended
    ? Promise.resolve(toChildExit(null, null))
    : new Promise<ChildExit>((resolve) => {
      cp.once("exit", (code, signal) => {
        ended = true;
        resolve(toChildExit(code, signal));
      });
    });
  // A send racing the child's exit fails with "Channel closed"; the exit is reported anyway.
  cp.on("error", () => {});
  const send = (message: ToChild) => {
    if (!ended && cp.connected) cp.send(message, undefined, {}, () => {});
  };
  return {
    pid,
    exited,
    running: () => !ended,
    kill(sig) {
      if (ended) return;
      if (sig === "SIGUSR1") return send({ t: "sig", sig });
      try {
        Deno.kill(pid, sig);
      } catch {
        // Already gone (ESRCH): its exit is reported anyway.
      }
    },
    send,
    sendWithSocket(message, socket, release) {
      // Our copy goes only once the fd is on the wire: closing it earlier
      // would hand the child a dead socket.
      if (ended || !cp.connected) return release();
      cp.send(message, socket as net.Socket, {}, () => release());
    },
  };
}
