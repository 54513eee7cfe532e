/**
 * A child that is a Web Worker (WorkerLauncher): `serveWorkerChild` waits
 * for the start envelope, runs the main in a ChildRuntime whose signals
 * arrive as messages, relays its client through the postmaster, and ends its
 * run by posting its exit code: a worker cannot exit on its own terms, so the
 * launcher terminates it on that message, or, for a Worker of its pool
 * (`backend_pool_size`) whose run ended cleanly (exit code 0), sends it the
 * next client's start envelope. An uncaught error is the launcher's to see
 * (the worker's "error" event), which reports it as a crash. The Worker's
 * entry module calls it: worker_entry.ts, or the compiled binary's own
 * (src/bin/worker.ts), which resolves pgts's mains from the bundle.
 *
 * Between runs nothing of the last one is left to act on the next: each run
 * has its own ChildRuntime (its signal handlers, its abort signal) and its
 * own RelayedConnection, both dropped before the exit is posted, so that a
 * signal or client byte the launcher sent the last run before it read that
 * exit is dropped here, not delivered to the next run (the envelope channel
 * is ordered: the next start comes after them), and whatever the last run's
 * tasks still post is dropped too. The modules' state is the
 * realm's, as it is for every backend of the in-process adapter, which runs
 * them all in one realm.
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
  // Whether a run is under way: a start envelope is only taken between runs.
  let running = false;

  const begin = async (start: StartPayload): Promise<void> => {
    running = true;
    // This run's way out, closed before its exit is posted: a task of its
    // session still running after its main returned cannot post into the
    // next run's (its messages would be read as the next backend's).
    let live = true;
    const runPost = (message: ToParent, transfer?: Transferable[]) => {
      if (live) post(message, transfer);
    };
    const client = start.client === null
      ? null
      : new RelayedConnection(start.client.remote, runPost);
    const env = new ChildRuntime(start, client, {
      post: runPost,
      ...(options.resolveMain === undefined ? {} : { resolveMain: options.resolveMain }),
    });
    relay = client;
    runtime = env;
    const code = await env.run();
    if (client !== null) await flushAndClose(client);
    // Dropped before the exit is posted: what still arrives for this run
    // (a signal, client bytes) is the launcher's last words to it.
    runtime = null;
    relay = null;
    live = false;
    running = false;
    post({ t: "exit", code });
  };

  scope.onmessage = (event) => {
    const message: unknown = event.data;
    if (!isToChild(message)) return;
    switch (message.t) {
      case "start":
        if (!running) void begin(message.start);
        return;
      case "preload":
        // A pooled Worker loads its main's module while it waits for a
        // client; the run's import then finds it in the module cache. A
        // compiled binary's mains are in its bundle, loaded already.
        if (options.resolveMain === undefined) import(message.module).catch(() => {});
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
