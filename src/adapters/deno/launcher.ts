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
 */

import { fork } from "node:child_process";
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
import { CHILD_FLAG } from "./child.ts";

export interface DenoSubprocessLauncherOptions {
  /** The child entry module to fork; default: child.ts next to this file. */
  readonly module?: string;
  /** Environment for children; default: the postmaster's. */
  readonly env?: Record<string, string | undefined>;
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

  constructor(options: DenoSubprocessLauncherOptions = {}) {
    this.#module = options.module ?? fileURLToPath(new URL("./child.ts", import.meta.url));
    this.#env = options.env;
  }

  launch(info: ChildStartInfo): Promise<ChildProcess> {
    const node = info.client === undefined ? null : nodeSocketOf(info.client.handle);
    if (info.client !== undefined && node === null) {
      return Promise.reject(
        new TypeError("Client connection was not accepted by a node:net NetAdapter"),
      );
    }
    const cp = fork(this.#module, [CHILD_FLAG], {
      serialization: "advanced",
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      env: childEnv(this.#env ?? process.env),
    });
    const pid = cp.pid;
    if (pid === undefined) {
      return Promise.reject(new Error(`could not fork new process for "${info.name}"`));
    }
    let ended = false;
    const exited = new Promise<ChildExit>((resolve) => {
      cp.once("exit", (code, signal) => {
        ended = true;
        resolve(toChildExit(code, signal));
      });
    });
    // A send racing the child's exit fails with "Channel closed"; the exit
    // itself is what the postmaster must see, so such errors are dropped.
    cp.on("error", () => {});
    const send = (message: ToChild) => {
      if (!ended && cp.connected) cp.send(message, undefined, {}, () => {});
    };
    const child = new ChildHandle(pid, exited, {
      signal(sig: Signal) {
        if (ended) return;
        if (sig === "SIGUSR1") return send({ t: "sig", sig });
        try {
          Deno.kill(pid, sig);
        } catch {
          // Already gone (ESRCH): its exit is reported anyway.
        }
      },
      post(message) {
        send({ t: "msg", m: message });
      },
    });
    cp.on("message", (message: unknown) => {
      if (!isToParent(message)) return;
      if (message.t === "msg") child.receive(message.m);
      else if (message.t === "up") child.up();
    });

    const start: StartPayload = {
      pid,
      kind: info.kind,
      name: info.name,
      entry: info.entry,
      params: info.params,
      client: info.client ? { via: "handle", remote: info.client.remote } : null,
    };
    if (node !== null) {
      // Our copy goes only once the fd is on the wire: closing it earlier
      // would hand the child a dead socket.
      cp.send({ t: "start", start } satisfies ToChild, node.socket, {}, () => node.release());
    } else {
      send({ t: "start", start });
    }
    return Promise.resolve(child);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
