/**
 * Ownership of the one PGlite backend: which session may send it bytes.
 *
 * A session owns the engine from its first message until ReadyForQuery with
 * status 'I' (a transaction block or an unsynced extended batch keeps it),
 * because everything between is state of that one backend: the transaction,
 * the unnamed statement and portal, an aborted-transaction state. Others
 * wait in one FIFO queue, and every wait is bounded: a waiter that is not
 * granted the engine within its timeout gets 55P03 naming the pid of the
 * holder, so an application whose transaction on one connection waits for
 * a query on another gets an error instead of a hang.
 *
 * This module is the only place ownership changes. It never runs SQL and
 * never waits itself; it never grants the engine to two holders.
 */

import { ERRCODE, PgError } from "../../core/elog.ts";

export interface Holder {
  /** The backend pid a client would see; 0 for the engine's own work. */
  readonly pid: number;
  /** What the holder is doing, for the wait-timeout detail ("idle in transaction"). */
  activity(): string;
  /** Told, while it owns the engine, that another holder has started to wait for it. */
  waitedFor?(): void;
}

interface Waiter {
  readonly holder: Holder;
  readonly resolve: () => void;
  readonly reject: (e: PgError) => void;
  timer: ReturnType<typeof setTimeout> | null;
  readonly since: number;
}

export class EngineScheduler {
  #owner: Holder | null = null;
  #queue: Waiter[] = [];
  #closed: PgError | null = null;

  get owner(): Holder | null {
    return this.#owner;
  }

  /** Waiters, oldest first (for diagnostics and tests). */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Takes the engine at once if nobody holds it or waits for it. */
  tryAcquire(holder: Holder): boolean {
    if (this.#closed !== null) throw this.#closed;
    if (this.#owner === holder) return true;
    if (this.#owner !== null || this.#queue.length > 0) return false;
    this.#owner = holder;
    return true;
  }

  /**
   * Waits for the engine, first come first served. Rejects with 55P03 after
   * `timeoutMs` (Infinity only for the engine's own work), or with the
   * reason given to `cancelWait` or `close`.
   */
  acquire(holder: Holder, options: { timeoutMs: number }): Promise<void> {
    if (this.tryAcquire(holder)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { holder, resolve, reject, timer: null, since: Date.now() };
      if (Number.isFinite(options.timeoutMs)) {
        w.timer = setTimeout(() => {
          this.#remove(w);
          reject(this.#timeoutError(options.timeoutMs));
        }, Math.max(0, options.timeoutMs));
      }
      this.#queue.push(w);
      this.#owner?.waitedFor?.();
    });
  }

  /** Ends `holder`'s wait with `reason`; false when it was not waiting. */
  cancelWait(holder: Holder, reason: PgError): boolean {
    const w = this.#queue.find((q) => q.holder === holder);
    if (w === undefined) return false;
    this.#remove(w);
    w.reject(reason);
    return true;
  }

  isWaiting(holder: Holder): boolean {
    return this.#queue.some((q) => q.holder === holder);
  }

  /** Gives the engine to the oldest waiter. A no-op unless `holder` owns it. */
  release(holder: Holder): void {
    if (this.#owner !== holder) return;
    this.#owner = null;
    const next = this.#queue.shift();
    if (next === undefined) return;
    if (next.timer !== null) clearTimeout(next.timer);
    this.#owner = next.holder;
    next.resolve();
  }

  /** Fails every wait, now and later, with `reason`. */
  close(reason: PgError): void {
    this.#closed = reason;
    for (const w of this.#queue.splice(0)) {
      if (w.timer !== null) clearTimeout(w.timer);
      w.reject(reason);
    }
  }

  #remove(w: Waiter): void {
    const i = this.#queue.indexOf(w);
    if (i >= 0) this.#queue.splice(i, 1);
    if (w.timer !== null) clearTimeout(w.timer);
  }

  #timeoutError(timeoutMs: number): PgError {
    const owner = this.#owner;
    const pid = owner?.pid ?? 0;
    const who = pid === 0 ? "the engine's own work" : `process ${pid}`;
    const what = owner === null ? "" : ` (${owner.activity()})`;
    return new PgError(
      ERRCODE.LOCK_NOT_AVAILABLE,
      `canceling statement due to engine wait timeout: the engine is held by ${who}`,
      {
        detail: `${who[0]!.toUpperCase()}${who.slice(1)}${what} holds the engine. ` +
          `PGlite runs one session's transaction at a time, and this statement waited ${timeoutMs} ms for it.`,
        hint: 'End the transaction on the other connection, or raise "pgts.engine_wait_timeout".',
      },
    );
  }
}
