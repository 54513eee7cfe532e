/**
 * A launcher whose children are Web Workers (`new Worker(url, { type:
 * "module" })`), for Deno's `--adapter worker` and also usable under Bun.
 * Children share the postmaster's process, so what the kernel does for a
 * subprocess is emulated here:
 * - pids are synthetic, above any Linux pid_max, so they never collide with
 *   a real process;
 * - signals are control messages; one the child has no handler for ends it
 *   with that signal (the default action), and SIGKILL is `terminate()`;
 * - an uncaught error in the worker is a crash (exit code 2); its "error"
 *   event is `preventDefault()`ed, since under Deno it would otherwise end
 *   the whole postmaster;
 * - a socket cannot be posted to a worker (neither a node:net socket nor a
 *   Deno.Conn is cloneable or transferable), so the postmaster relays its
 *   bytes (relayconn.ts).
 *
 * With `pool` (`backend_pool_size`), backend Workers are started ahead and
 * reused (child/pool.ts, the subprocess launchers' pool): a new Worker is a
 * new realm that loads pgts's modules before it can answer, 60-250 ms from
 * connect to the first answer, which a pooled one has done before its
 * client arrives. A Worker whose run ended with exit code 0 goes back to the
 * pool under the same pid, as a pooled process does; any other end (FATAL,
 * crash, a signal's default action, SIGKILL) terminates it as before.
 */

import type {
  ChildExit,
  ChildLauncher,
  ChildProcess,
  ChildStartInfo,
  Connection,
  Signal,
} from "../../core/adapter.ts";
import { ChildHandle } from "../child/childhandle.ts";
import {
  EXIT_CRASH,
  isToParent,
  type StartPayload,
  type ToChild,
  type ToParent,
} from "../child/envelope.ts";
import { BackendPool, type BackendPoolOptions, type PoolProcess } from "../child/pool.ts";
import { relayTo } from "./relayconn.ts";

export interface WorkerLauncherOptions {
  /** Backend Workers started ahead and reused (child/pool.ts). Default: no pool. */
  readonly pool?: BackendPoolOptions;
}

/** The Worker entry registered by the running program (registerWorkerEntry), if any. */
let registeredEntry: string | null = null;

/**
 * Makes every WorkerLauncher of this realm start its Workers from `url`
 * instead of worker_entry.ts next to this module: a compiled binary, whose
 * modules all share the binary's `import.meta.url`, registers the Worker
 * entry it was built with (src/bin/worker.ts).
 */
export function registerWorkerEntry(url: string): void {
  registeredEntry = url;
}

// Linux's pid_max is at most 2^22; synthetic pids start above it.
const FIRST_SYNTHETIC_PID = 4_194_305;

export class WorkerLauncher implements ChildLauncher {
  readonly name = "worker";
  #nextPid = FIRST_SYNTHETIC_PID;
  #entry = registeredEntry ?? new URL("./entry.ts", import.meta.url).href;
  #live = new Set<(exit: ChildExit) => void>();
  #pool: BackendPool;

  constructor(options: WorkerLauncherOptions = {}) {
    this.#pool = new BackendPool(
      options.pool ?? { size: 0 },
      (module, onMessage) => this.#pooledWorker(module, onMessage),
    );
  }

  launch(info: ChildStartInfo): Promise<ChildProcess> {
    this.#pool.prime();
    if (info.client !== undefined) {
      // The "socket" a pooled Worker is sent is the client itself, which
      // the pooled Worker's relay then serves (#pooledWorker).
      const pooled = this.#pool.take(info, { socket: info.client, release: () => {} });
      if (pooled !== null) return Promise.resolve(pooled);
    }
    // A Worker of its own, used once: its run's exit, whatever the code, ends it.
    let child: ChildHandle | null = null;
    const proc = this.#worker(info.name, (message) => {
      if (message.t === "msg") child?.receive(message.m);
      else if (message.t === "up") child?.up();
    }, false);
    child = new ChildHandle(proc.pid, proc.exited, {
      signal: (sig: Signal) => proc.kill(sig),
      post: (message) => proc.send({ t: "msg", m: message }),
    });
    const start: StartPayload = {
      pid: proc.pid,
      kind: info.kind,
      name: info.name,
      entry: info.entry,
      params: info.params,
      client: info.client ? { via: "relay", remote: info.client.remote } : null,
    };
    if (info.client) proc.sendWithSocket({ t: "start", start }, info.client, () => {});
    else proc.send({ t: "start", start });
    return Promise.resolve(child);
  }

  /**
   * A Worker of the pool, loading `module` while it waits, as the pool
   * drives it (#worker, reusable).
   */
  #pooledWorker(module: string, onMessage: (message: ToParent) => void): PoolProcess {
    const proc = this.#worker("backend", onMessage, true);
    proc.send({ t: "preload", module });
    return proc;
  }

  /**
   * A Worker as a process: each run's client is relayed from
   * `sendWithSocket` (its start) until the run's exit; its envelopes (`msg`,
   * `up`, and a `reusable` Worker's exit 0) go to `onMessage`. A reusable
   * Worker's exit 0 leaves it waiting for the next start; any other end
   * terminates it and is its `exited`.
   */
  #worker(
    name: string,
    onMessage: (message: ToParent) => void,
    reusable: boolean,
  ): PoolProcess {
    const pid = this.#nextPid++;
    const worker = new Worker(this.#entry, { type: "module", name: `${name} ${pid}` });
    const post = (message: ToChild, transfer?: Transferable[]) =>
      transfer ? worker.postMessage(message, transfer) : worker.postMessage(message);
    let relay: ReturnType<typeof relayTo> | null = null;

    let settle: (exit: ChildExit) => void = () => {};
    const exited = new Promise<ChildExit>((resolve) => settle = resolve);
    let done = false;
    const finish = (exit: ChildExit) => {
      if (done) return;
      done = true;
      worker.terminate();
      relay?.finish();
      relay = null;
      this.#live.delete(finish);
      settle(exit);
    };
    this.#live.add(finish);

    worker.onmessage = (event: MessageEvent) => {
      const message: unknown = event.data;
      if (!isToParent(message) || done) return;
      switch (message.t) {
        case "msg":
        case "up":
          onMessage(message);
          return;
        case "sigdefault":
          finish({ code: null, signal: message.sig });
          return;
        case "exit":
          if (!reusable || message.code !== 0) {
            return finish({ code: message.code, signal: null });
          }
          // The run is over and its client the postmaster's to close; the
          // Worker waits for the pool's next start.
          relay?.finish();
          relay = null;
          onMessage(message);
          return;
        default:
          relay?.handle(message);
      }
    };
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      console.error(`${name} (PID ${pid}) crashed: uncaught exception: ${event.message}`);
      finish({ code: EXIT_CRASH, signal: null });
    };

    return {
      pid,
      exited,
      running: () => !done,
      kill(sig: Signal) {
        if (done) return;
        if (sig === "SIGKILL") finish({ code: null, signal: "SIGKILL" });
        else post({ t: "sig", sig });
      },
      send(message) {
        if (!done) post(message);
      },
      sendWithSocket(message, socket, release) {
        release();
        if (done || message.t !== "start" || message.start.client === null) return;
        relay = relayTo(socket as Connection, post);
        const remote = message.start.client.remote;
        post({ t: "start", start: { ...message.start, client: { via: "relay", remote } } });
      },
    };
  }

  /**
   * Ends every Worker, pooled ones too, a running one reported as killed
   * (they die with the process anyway).
   */
  async close(): Promise<void> {
    const idle = this.#pool.close();
    for (const finish of [...this.#live]) finish({ code: null, signal: "SIGKILL" });
    await idle;
  }
}
