/**
 * The entry of a child that is a Web Worker (WorkerLauncher). It waits for
 * the start envelope, runs the main in a ChildRuntime whose signals arrive as
 * messages, relays its client through the postmaster, and ends by posting
 * its exit code: a worker cannot exit on its own terms, so the launcher
 * terminates it on that message. An uncaught error is the launcher's to see
 * (the worker's "error" event), which reports it as a crash.
 */

import { ChildRuntime, flushAndClose } from "./childenv.ts";
import { isToChild, type StartPayload, type ToParent } from "./protocol.ts";
import { RelayedConnection } from "./relayconn.ts";

interface WorkerScope {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent) => void) | null;
}

const scope = globalThis as unknown as WorkerScope;
const post = (message: ToParent, transfer?: Transferable[]) =>
  transfer ? scope.postMessage(message, transfer) : scope.postMessage(message);

let runtime: ChildRuntime | null = null;
let relay: RelayedConnection | null = null;

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

async function begin(start: StartPayload): Promise<void> {
  relay = start.client === null ? null : new RelayedConnection(start.client.remote, post);
  runtime = new ChildRuntime(start, relay, { post });
  const code = await runtime.run();
  if (relay !== null) await flushAndClose(relay);
  post({ t: "exit", code });
}
