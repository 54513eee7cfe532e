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
 * One step ahead (the pipeline): a holder whose exec has just begun and
 * ends, if all goes as planned, at ReadyForQuery 'I' may hand the engine
 * over at once to the first waiter that can start without any work of its
 * own on the engine (`takesEarly`), whose exec then waits in the executor
 * behind the running one and runs the moment it ends (workerexecutor.ts). If the
 * running exec does not end idle after all, the engine goes back to the
 * holder that handed it over, and the one it was handed to (its exec not
 * run) waits again, first in line.
 *
 * This module is the only place ownership changes. It never runs SQL and
 * never waits itself; it never grants the engine to two holders, except
 * in that one step, where the first's exec is still running and the
 * second's can only run after it.
 */

import { ERRCODE, PgError } from "../../core/elog.ts";
import { timeoutCanceled } from "./answers.ts";

export interface Holder {
  /** The backend pid a client would see; 0 for the engine's own work. */
  readonly pid: number;
  /** What the holder is doing, for the wait-timeout detail ("idle in transaction"). */
  activity(): string;
  /** Told, while it owns the engine, that another holder has started to wait for it. */
  waitedFor?(): void;
  /**
   * Whether, granted the engine now, it would go straight to one exec that
   * may wait behind another (no settings to put back, no work of its own).
   */
  takesEarly?(): boolean;
}

/** What bounds a wait for the engine (EngineScheduler.acquire). */
export type WaitBound = "engine" | "lock" | "statement";

/**
 * Which bound ends a session's wait for the engine, and after how long:
 * its statement_timeout (`statementMs`, 0: none) when shorter than its
 * wait bound (`boundMs`: pgts.engine_wait_timeout, or lock_timeout
 * (`lockMs`) when that is the shorter; querycancel.ts's waitBoundMs).
 */
export function waitBoundOf(
  boundMs: number,
  lockMs: number,
  statementMs: number,
): { readonly by: WaitBound; readonly ms: number } {
  if (statementMs > 0 && statementMs < boundMs) return { by: "statement", ms: statementMs };
  return { by: lockMs > 0 && lockMs === boundMs ? "lock" : "engine", ms: boundMs };
}

interface Waiter {
  readonly holder: Holder;
  readonly resolve: () => void;
  readonly reject: (e: PgError) => void;
  /** When its wait times out (performance.now() ms; Infinity: never), and after how long. */
  readonly deadline: number;
  readonly timeoutMs: number;
  readonly since: number;
  /**
   * Whose bound its timeout is: pgts.engine_wait_timeout's (55P03), the
   * statement's lock_timeout (55P03 as PostgreSQL words it) or its
   * statement_timeout (57014).
   */
  readonly bound: WaitBound;
}

export class EngineScheduler {
  #owner: Holder | null = null;
  #queue: Waiter[] = [];
  #closed: PgError | null = null;
  /**
   * One timer for every wait, armed for the earliest deadline: a wait is a
   * clock read and a comparison, not a setTimeout and a clearTimeout (most
   * end long before their timeout; a timer each was ~3% of the main
   * thread's time for `SELECT 1` from four sessions).
   */
  #timer: ReturnType<typeof setTimeout> | null = null;
  #timerAt = Infinity;
  /** The holder that handed the engine over while its exec runs, until that exec ends. */
  #handedBy: Holder | null = null;
  /** The owner, whose exec runs, would hand the engine over to a waiter that takes it early. */
  #offeredBy: Holder | null = null;

  get owner(): Holder | null {
    return this.#owner;
  }

  /** The holder whose handed-over exec runs (handOver), until that exec ends. */
  get handedBy(): Holder | null {
    return this.#handedBy;
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
    // While a handed-over exec runs, the engine is free only to one that takes it early.
    if (this.#handedBy !== null && holder.takesEarly?.() !== true) return false;
    this.#owner = holder;
    return true;
  }

  /**
   * Waits for the engine, first come first served. Rejects after
   * `timeoutMs` (Infinity only for the engine's own work) with 55P03, or
   * with PostgreSQL's own error when that is the statement's lock_timeout
   * (55P03) or statement_timeout (57014), as they end a wait for a lock; or
   * with the reason given to `cancelWait` or `close`.
   */
  acquire(
    holder: Holder,
    options: { timeoutMs: number; first?: boolean; bound?: WaitBound },
  ): Promise<void> {
    // First in line or not, a free engine is taken at once.
    if (this.tryAcquire(holder)) return Promise.resolve();
    if (this.#closed !== null) return Promise.reject(this.#closed);
    return new Promise<void>((resolve, reject) => {
      const now = performance.now();
      const timeoutMs = Math.max(0, options.timeoutMs);
      const w: Waiter = {
        holder,
        resolve,
        reject,
        deadline: now + timeoutMs,
        timeoutMs,
        since: Date.now(),
        bound: options.bound ?? "engine",
      };
      if (w.deadline < this.#timerAt) this.#arm(w.deadline, now);
      if (options.first === true) this.#queue.unshift(w);
      else this.#queue.push(w);
      if (this.#offeredBy !== null && this.#queue[0] === w) this.handOver(this.#offeredBy);
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

  /**
   * Gives the engine to the oldest waiter. A no-op unless `holder` owns it.
   * While a handed-over exec runs, only to a waiter that takes it early
   * (the rest wait for that exec's end).
   */
  release(holder: Holder): void {
    if (this.#owner !== holder) return;
    this.#owner = null;
    this.#offeredBy = null;
    if (this.#handedBy !== null) {
      if (this.#queue[0]?.holder.takesEarly?.() === true) this.#grant();
      return;
    }
    this.#grant();
  }

  /**
   * `from`, which owns the engine and whose exec has begun, hands it to the
   * first waiter if that one takes it early, or else to the first that
   * comes and does while the exec runs; settleHandOver says, when the exec
   * ends, whether that stands.
   */
  handOver(from: Holder): void {
    if (this.#owner !== from || this.#handedBy !== null) return;
    if (this.#queue[0]?.holder.takesEarly?.() !== true) {
      // Offered until the exec ends: a waiter that comes meanwhile takes it.
      this.#offeredBy = from;
      return;
    }
    this.#offeredBy = null;
    this.#handedBy = from;
    this.#owner = null;
    this.#grant();
  }

  /**
   * The exec of `from` ended. If it ended idle, the hand-over stands (and a
   * free engine goes to the oldest waiter); if not, `from` owns the engine
   * again, and whoever had it since (its exec not run, executor.ts) must
   * wait for it again.
   */
  settleHandOver(from: Holder, endedIdle: boolean): void {
    if (this.#offeredBy === from) this.#offeredBy = null;
    if (this.#handedBy !== from) return;
    this.#handedBy = null;
    if (endedIdle) {
      if (this.#owner === null) this.#grant();
      return;
    }
    this.#owner = from;
  }

  #grant(): void {
    const next = this.#queue.shift();
    if (next === undefined) return;
    this.#owner = next.holder;
    next.resolve();
  }

  /** Fails every wait, now and later, with `reason`. */
  close(reason: PgError): void {
    this.#closed = reason;
    this.#disarm();
    for (const w of this.#queue.splice(0)) w.reject(reason);
  }

  #remove(w: Waiter): void {
    const i = this.#queue.indexOf(w);
    if (i >= 0) this.#queue.splice(i, 1);
  }

  /** The timer fires at `at` (its earliest deadline). */
  #arm(at: number, now: number): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, at - now));
    // Left armed when the waits end before it: it keeps nothing alive.
    (this.#timer as { unref?: () => void }).unref?.();
  }

  #disarm(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAt = Infinity;
  }

  /** Ends the waits whose time is up; armed again for the earliest left. */
  #expire(): void {
    this.#timer = null;
    this.#timerAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const w of [...this.#queue]) {
      if (w.deadline <= now) {
        this.#remove(w);
        w.reject(this.waitTimeoutError(w.timeoutMs, w.bound));
      } else if (w.deadline < next) next = w.deadline;
    }
    if (next !== Infinity) this.#arm(next, now);
  }

  /**
   * The error of a wait for the engine that ran out after `timeoutMs`,
   * naming `owner`: the holder of the engine, or the one whose handed-over
   * exec runs (a wait behind it in the executor, session.ts).
   */
  waitTimeoutError(
    timeoutMs: number,
    bound: WaitBound,
    owner: Holder | null = this.#owner,
  ): PgError {
    const pid = owner?.pid ?? 0;
    const who = pid === 0 ? "the engine's own work" : `process ${pid}`;
    const what = owner === null ? "" : ` (${owner.activity()})`;
    if (bound !== "engine") {
      return timeoutCanceled(bound, {
        detail: `${who[0]!.toUpperCase()}${who.slice(1)}${what} holds the engine. ` +
          `PGlite runs one session's transaction at a time, and this statement waited ${timeoutMs} ms for it, its ${bound}_timeout.`,
      });
    }
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

/** `p`, or after `ms` (Infinity or 0: no bound) whichever comes first. */
export async function boundedWait(p: Promise<void>, ms: number): Promise<void> {
  if (!(ms > 0 && Number.isFinite(ms))) return await p;
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([p, new Promise<void>((resolve) => timer = setTimeout(resolve, ms))]);
  clearTimeout(timer);
}
