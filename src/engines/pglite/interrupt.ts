/**
 * The cancel cell: how the engine's thread asks the exec running on PGlite's
 * thread to stop, PostgreSQL's StatementCancelHandler across two threads.
 *
 * The cell is an Int32Array over a SharedArrayBuffer: the exec sequence to
 * cancel, the exec sequence running, and a lock. A request names an exec
 * (its sequence) and stands until that exec ends or its answer carries an
 * ErrorResponse, so it can never reach the next exec, which may be another
 * session's. Two ways act on it:
 *
 * - PGlite's thread, at every host call (cancelclock.ts): sets Postgres's
 *   `QueryCancelPending`/`InterruptPending` and moves the monotonic clock
 *   forward so a timed wait (pg_sleep) ends now.
 * - The requesting thread, when PGlite's heap is shared (sharedheap.ts):
 *   writes the same flags into the heap directly, so a statement that
 *   computes without host calls sees them at its next CHECK_FOR_INTERRUPTS.
 *   It writes them again while the request stands and they read 0: flags
 *   that arrive before the statement began (Postgres still reading the
 *   message) are dropped by Postgres, as PostgreSQL drops a SIGINT in
 *   ReadCommand.
 *
 * The lock makes "the exec is still running, set its flags" one step
 * against "the exec ended, clear its flags": without it a late write could
 * cancel the next exec. Both sides hold it for a few loads and stores.
 *
 * `ProcDiePending` is never set: PGlite's one backend serves every session,
 * and a FATAL would end them all. A terminated session's statement is
 * cancelled and the session closed by the engine.
 */

import { BE } from "../../core/protocol/constants.ts";
import { MessageBoundaries } from "./wire.ts";

/** Cell layout, in Int32 slots. */
export const CANCEL_SEQ = 0;
export const RUNNING_SEQ = 1;
const LOCK = 2;
/** The size of a cell's SharedArrayBuffer. */
export const CELL_BYTES = 12;

/** Where Postgres's interrupt flags are: byte addresses in PGlite's heap. */
export interface InterruptFlags {
  readonly cancel: number;
  readonly interrupt: number;
  /**
   * The `MyLatch` variable (a pointer to the backend's latch, whose first
   * word is `is_set`), or 0: a request sets the latch too, as PostgreSQL's
   * SIGINT handler does, so that a wait for it (a lock wait) ends.
   */
  readonly latch: number;
}

/** A shared heap and its flags, as the requesting thread sees them. */
export interface SharedInterruptTarget extends InterruptFlags {
  readonly heap: SharedArrayBuffer;
  /** The backend's `wait_event_info` (lockwait.ts), or 0 when unknown. */
  readonly waitEvent: number;
  /** all_timeouts[STATEMENT_TIMEOUT] (statementtimer.ts), or 0 when not found. */
  readonly statementTimer: number;
}

export function newCancelCell(): Int32Array<SharedArrayBuffer> {
  return new Int32Array(new SharedArrayBuffer(CELL_BYTES));
}

function lock(cell: Int32Array): void {
  while (Atomics.compareExchange(cell, LOCK, 0, 1) !== 0) {
    // Held for a few instructions by the other thread; spin.
  }
}

function unlock(cell: Int32Array): void {
  Atomics.store(cell, LOCK, 0);
}

/**
 * Sets or clears both flags in a heap view; setting them sets the latch
 * too (it is never cleared here: Postgres resets its latch itself, and a
 * latch found set only ends one wait early, as in PostgreSQL).
 */
export function writeFlags(heap: Int32Array, flags: InterruptFlags, value: number): void {
  Atomics.store(heap, flags.cancel >> 2, value);
  Atomics.store(heap, flags.interrupt >> 2, value);
  if (value !== 0 && flags.latch !== 0) {
    const latch = Atomics.load(heap, flags.latch >> 2);
    if (latch !== 0) Atomics.store(heap, latch >> 2, 1);
  }
}

/**
 * On the requesting thread: sets the flags of exec `seq` if it is running,
 * the request for it stands, and they are not set already. Returns whether
 * the request still stands (false: the exec is over or acknowledged).
 */
export function pokeFlags(
  cell: Int32Array,
  heap: Int32Array,
  flags: InterruptFlags,
  seq: number,
): boolean {
  lock(cell);
  try {
    if (Atomics.load(cell, CANCEL_SEQ) !== seq) return false;
    if (Atomics.load(cell, RUNNING_SEQ) === seq && Atomics.load(heap, flags.cancel >> 2) === 0) {
      writeFlags(heap, flags, 1);
    }
    return true;
  } finally {
    unlock(cell);
  }
}

/**
 * On PGlite's thread: ends the request for exec `seq` (it is over, or its
 * answer has its error) and clears flags nobody consumed; with `ended`, the
 * exec is no longer running either.
 */
export function settleRequest(
  cell: Int32Array,
  seq: number,
  options: { ended: boolean; clear: () => void },
): void {
  lock(cell);
  try {
    if (options.ended) Atomics.store(cell, RUNNING_SEQ, 0);
    Atomics.compareExchange(cell, CANCEL_SEQ, seq, 0);
    options.clear();
  } finally {
    unlock(cell);
  }
}

/**
 * Follows backend message boundaries across an exec's answer chunks (which
 * may split a message anywhere) and tells whether an ErrorResponse began in
 * a chunk: the acknowledgement of a cancel. Also whether the answer so far
 * is inside a COPY FROM STDIN: a CopyInResponse not yet followed by the
 * COPY's CommandComplete, ErrorResponse or ReadyForQuery.
 */
export class ErrorWatch {
  #seen = false;
  /** The backend is reading a COPY's data from its input. */
  copyIn = false;
  /** CopyInResponses so far: COPYs begun (a Query may run several). */
  copyIns = 0;
  readonly #messages = new MessageBoundaries((type) => {
    if (type === BE.ErrorResponse) this.#seen = true;
    if (type === BE.CopyInResponse) {
      this.copyIn = true;
      this.copyIns++;
    } else if (
      type === BE.CommandComplete || type === BE.ErrorResponse || type === BE.ReadyForQuery
    ) {
      this.copyIn = false;
    }
  });

  /** Whether an ErrorResponse starts in `chunk`. */
  feed(chunk: Uint8Array): boolean {
    this.#seen = false;
    this.#messages.feed(chunk);
    return this.#seen;
  }
}
