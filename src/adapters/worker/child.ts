/**
 * A child that is a Web Worker (WorkerLauncher): `serveWorkerChild` waits
 * for the start envelope, runs the main in a ChildRuntime whose signals
 * arrive as messages, relays its client through the postmaster, and ends by
 * posting its exit code: a worker cannot exit on its own terms, so the
 * launcher terminates it on that message. An uncaught error is the
 * launcher's to see (the worker's "error" event), which reports it as a
 * crash. The Worker's entry module calls it: worker_entry.ts, or the
 * compiled binary's own (src/bin/worker.ts), which resolves pgts's mains
 * from the bundle.
 */

import type { ChildEntry, ChildMain } from "../../core/adapter.ts";
import { ChildRuntime, flushAndClose } from "../child/childenv.ts";
import { isToChild, type StartPayload, type ToParent } from "../child/envelope.ts";
import { RelayedConnection } from "./relayconn.ts";

interface WorkerScope {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent) => void) | null;
}

const scope = globalThis as unknown as WorkerScope;
const post = (message: ToParent, transfer?: Transferable[]) =>
  transfer ? scope.postMessage(message, transfer) : scope.postMessage(message);

export interface WorkerChildOptions {
  /** How the start envelope's entry becomes a main; `import()` by default. */
  readonly resolveMain?: (entry: ChildEntry) => Promise<ChildMain>;
}

/** Serves this Worker as a pgts child: call once, from the Worker's entry module. */
export function serveWorkerChild(options: WorkerChildOptions = {}): void {
  let runtime: ChildRuntime | null = null;
  let relay: RelayedConnection | null = null;

  const begin = async (start: StartPayload): Promise<void> => {
    relay = start.client === null ? null : new RelayedConnection(start.client.remote, post);
    runtime = new ChildRuntime(start, relay, {
      post,
      ...(options.resolveMain === undefined ? {} : { resolveMain: options.resolveMain }),
    });
    const code = await runtime.run();
    if (relay !== null) await flushAndClose(relay);
    post({ t: "exit", code });
  };

  scope.onmessage = (event) => {
    const message: unknown = event.data;
    if (!isToChild(message)) return;
    switch (message.t) {
      case "start":
        void begin(message.start);
        return;
      case "data":
      case "written":
      case "closed":
        relay?.deliver(message);
        return;
      default:
        runtime?.deliver(message);
    }
  };
}
