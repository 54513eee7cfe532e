/**
 * The child half of a subprocess launcher, on the node-compatible `process`
 * API that Bun and Deno share: receives the start envelope (and, on the IPC
 * route, the client socket with it) over the IPC channel, wires OS signals,
 * uncaught errors and postmaster death into a ChildRuntime, runs the main,
 * and resolves with the exit code. The per-runtime entry files call it and
 * are the only places that call `process.exit`.
 *
 * Postmaster death is the IPC channel closing ("disconnect"), the pgts
 * counterpart of PostgreSQL's postmaster-alive pipe.
 *
 * A pooled child (`reuse`) is started before any client needs it: it loads
 * its main's module while it waits, and after a main that ends cleanly
 * (exit code 0) it reports the exit, removes every signal listener the run
 * installed and waits for the next start envelope. Only the process stays;
 * each run gets a fresh ChildRuntime, as a freshly forked backend would.
 * Any other end (a FATAL, a crash, postmaster death) ends the process.
 */

import process from "node:process";
import type { CatchableSignal, Connection } from "../../core/adapter.ts";
import { type ChildHooks, ChildRuntime, flushAndClose } from "./childenv.ts";
import { EXIT_CRASH, isToChild, type StartPayload, type ToParent } from "./envelope.ts";

export interface SubprocessChildOptions {
  /** Builds the client Connection from the start payload and the handle sent with it. */
  openClient(start: StartPayload, handle: unknown): Promise<Connection | null>;
  /** Installs an OS signal listener. */
  installSignal(sig: CatchableSignal, listener: () => void): void;
  /** Removes a listener `installSignal` installed (needed by `reuse`). */
  removeSignal?(sig: CatchableSignal, listener: () => void): void;
  resolveMain?: ChildHooks["resolveMain"];
  /** Serve one start envelope after another while mains end with 0 (a pooled child). */
  readonly reuse?: boolean;
  /** A module to load while waiting for the first start envelope. */
  readonly preload?: string;
}

/** The listener that keeps a signal's default action from a pooled process between runs. */
function ignoreSignal(): void {}

// How long a finished child waits for its exit envelope to leave.
const FLUSH_TIMEOUT_MS = 1000;

/** Runs one child (or, with `reuse`, one after another) in this process; resolves with its exit code. */
export async function runSubprocessChild(options: SubprocessChildOptions): Promise<number> {
  if (typeof process.send !== "function") {
    throw new TypeError("Child was not started by a pgts launcher: no IPC channel");
  }
  const send = (message: ToParent) => {
    if (process.connected) process.send!(message);
  };

  let runtime: ChildRuntime | null = null;
  let failedEarly: ((error: unknown) => void) | null = null;
  let idleDisconnect: (() => void) | null = null;
  const onError = (error: unknown) => {
    if (runtime !== null) runtime.crash(error);
    else failedEarly?.(error);
  };
  process.on("uncaughtException", onError);
  process.on("unhandledRejection", onError);

  let started: (value: { start: StartPayload; handle: unknown }) => void = () => {};
  process.on("message", (message: unknown, handle?: unknown) => {
    if (!isToChild(message)) return;
    if (message.t === "start") started({ start: message.start, handle });
    else runtime?.deliver(message);
  });
  process.on("disconnect", () => {
    if (runtime !== null) runtime.postmasterDied();
    else if (idleDisconnect !== null) idleDisconnect();
    else failedEarly?.(new Error("postmaster exited before starting the child"));
  });
  if (options.preload !== undefined) {
    // Loaded ahead; the run's own import then finds it in the module cache.
    import(options.preload).catch(() => {});
  }

  // Signals a pooled process ignores between runs (see the end of the loop).
  const ignored = new Set<CatchableSignal>();
  for (;;) {
    const startMessage = new Promise<{ start: StartPayload; handle: unknown } | null>(
      (resolve, reject) => {
        started = resolve;
        failedEarly = reject;
        // A pooled child that was never (or is no longer) serving anyone
        // leaves quietly with its postmaster.
        idleDisconnect = options.reuse ? () => resolve(null) : null;
      },
    );
    if (options.reuse && !process.connected) return 0;
    let start: StartPayload;
    let client: Connection | null;
    try {
      const received = await startMessage;
      if (received === null) return 0;
      idleDisconnect = null;
      start = received.start;
      client = await options.openClient(start, received.handle);
    } catch (error) {
      console.error(`pgts child (PID ${process.pid}) could not start: ${String(error)}`);
      return EXIT_CRASH;
    }
    const installed: Array<[CatchableSignal, () => void]> = [];
    runtime = new ChildRuntime(start, client, {
      post: send,
      installSignal: (sig, listener) => {
        installed.push([sig, listener]);
        options.installSignal(sig, listener);
      },
      ...(options.resolveMain ? { resolveMain: options.resolveMain } : {}),
    });
    const code = await runtime.run();
    if (client !== null) await flushAndClose(client);
    // The exit envelope is sent with a callback: once it is on the wire, every
    // message the main posted before it is too (the channel is ordered).
    await new Promise<void>((resolve) => {
      if (!process.connected) return resolve();
      const timer = setTimeout(resolve, FLUSH_TIMEOUT_MS);
      process.send!({ t: "exit", code } satisfies ToParent, undefined, {}, () => {
        clearTimeout(timer);
        resolve();
      });
    });
    if (!options.reuse || code !== 0 || !process.connected || options.removeSignal === undefined) {
      return code;
    }
    // Back to the pool: nothing of this run may act on the next one. A
    // signal the launcher sent this run before it read the exit envelope
    // can still arrive; with no listener left it would meet the default
    // action (SIGHUP, SIGTERM end the process), and the launcher, seeing
    // the process die before it read the envelope, reported a crash ("was
    // terminated by signal 1" after a reload). Such signals are ignored.
    for (const [sig, listener] of installed) {
      if (!ignored.has(sig)) {
        ignored.add(sig);
        options.installSignal(sig, ignoreSignal);
      }
      options.removeSignal(sig, listener);
    }
    runtime = null;
  }
}
