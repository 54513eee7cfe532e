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
 */

import type {
  ChildExit,
  ChildLauncher,
  ChildProcess,
  ChildStartInfo,
  Signal,
} from "../../core/adapter.ts";
import { ChildHandle } from "../child/childhandle.ts";
import { EXIT_CRASH, isToParent, type StartPayload, type ToChild } from "../child/envelope.ts";
import { relayTo } from "./relayconn.ts";

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

  launch(info: ChildStartInfo): Promise<ChildProcess> {
    const pid = this.#nextPid++;
    const worker = new Worker(this.#entry, { type: "module", name: `${info.name} ${pid}` });
    const post = (message: ToChild, transfer?: Transferable[]) =>
      transfer ? worker.postMessage(message, transfer) : worker.postMessage(message);
    const relay = info.client ? relayTo(info.client, post) : null;

    let settle: (exit: ChildExit) => void = () => {};
    const exited = new Promise<ChildExit>((resolve) => settle = resolve);
    let done = false;
    const finish = (exit: ChildExit) => {
      if (done) return;
      done = true;
      worker.terminate();
      relay?.finish();
      this.#live.delete(finish);
      settle(exit);
    };
    this.#live.add(finish);

    const child = new ChildHandle(pid, exited, {
      signal(sig: Signal) {
        if (done) return;
        if (sig === "SIGKILL") finish({ code: null, signal: "SIGKILL" });
        else post({ t: "sig", sig });
      },
      post(message) {
        if (!done) post({ t: "msg", m: message });
      },
    });

    worker.onmessage = (event: MessageEvent) => {
      const message: unknown = event.data;
      if (!isToParent(message) || done) return;
      switch (message.t) {
        case "msg":
          child.receive(message.m);
          return;
        case "up":
          child.up();
          return;
        case "sigdefault":
          finish({ code: null, signal: message.sig });
          return;
        case "exit":
          finish({ code: message.code, signal: null });
          return;
        default:
          relay?.handle(message);
      }
    };
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      console.error(`${info.name} (PID ${pid}) crashed: uncaught exception: ${event.message}`);
      finish({ code: EXIT_CRASH, signal: null });
    };

    const start: StartPayload = {
      pid,
      kind: info.kind,
      name: info.name,
      entry: info.entry,
      params: info.params,
      client: info.client ? { via: "relay", remote: info.client.remote } : null,
    };
    post({ t: "start", start });
    return Promise.resolve(child);
  }

  /** Ends any worker still running, reported as killed (they die with the process anyway). */
  close(): Promise<void> {
    for (const finish of [...this.#live]) finish({ code: null, signal: "SIGKILL" });
    return Promise.resolve();
  }
}
