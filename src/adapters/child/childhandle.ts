/**
 * The postmaster's side of one child, common to every launcher: a
 * ChildProcess whose signal and post are the launcher's, and whose messages
 * are held until somebody sets `onMessage` (a child may post "ready" before
 * `launch()` has even resolved in the postmaster).
 *
 * Signals other than SIGKILL are held until the child is up (its main has
 * been called and has installed its handlers), the way a forked PostgreSQL
 * child starts with signals blocked: a SIGTERM sent to a child still loading
 * its code would otherwise meet the default action and end it "terminated by
 * signal 15", which the postmaster must treat as a crash.
 */

import type { ChildExit, ChildProcess, Signal } from "../../core/adapter.ts";

export interface ChildOps {
  signal(sig: Signal): void;
  post(message: unknown): void;
}

export class ChildHandle implements ChildProcess {
  readonly pid: number;
  readonly exited: Promise<ChildExit>;
  #ops: ChildOps;
  #onMessage: ((message: unknown) => void) | null = null;
  #queued: unknown[] = [];
  #up = false;
  #heldSignals: Signal[] = [];

  constructor(pid: number, exited: Promise<ChildExit>, ops: ChildOps) {
    this.pid = pid;
    this.exited = exited;
    this.#ops = ops;
  }

  get onMessage(): ((message: unknown) => void) | null {
    return this.#onMessage;
  }

  set onMessage(fn: ((message: unknown) => void) | null) {
    this.#onMessage = fn;
    while (fn !== null && this.#queued.length > 0 && this.#onMessage === fn) {
      fn(this.#queued.shift());
    }
  }

  signal(sig: Signal): void {
    if (this.#up || sig === "SIGKILL") this.#ops.signal(sig);
    else if (!this.#heldSignals.includes(sig)) this.#heldSignals.push(sig);
  }

  /** Called by the launcher when the child reports it is up: delivers held signals in order. */
  up(): void {
    if (this.#up) return;
    this.#up = true;
    for (const sig of this.#heldSignals.splice(0)) this.#ops.signal(sig);
  }

  post(message: unknown): void {
    this.#ops.post(message);
  }

  /** Called by the launcher for each user message from the child. */
  receive(message: unknown): void {
    if (this.#onMessage === null) this.#queued.push(message);
    else this.#onMessage(message);
  }
}
