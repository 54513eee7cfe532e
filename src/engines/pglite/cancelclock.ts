/**
 * The host calls at which PGlite's thread stops a running statement: a
 * cancel (the cancel cell, interrupt.ts) or the exec's statement_timeout,
 * acted on the way PostgreSQL's SIGINT handler acts.
 *
 * PGlite runs Postgres synchronously on the calling thread, so nothing on
 * that thread can interrupt a statement. What can: Postgres calls out to the
 * host (clock reads, file I/O) all the time, pg_sleep and every timed wait
 * busy-poll `clock_time_get`. `wrapImports` wraps those imports; when the
 * cell names the exec in flight, or its deadline has passed, the hook sets
 * Postgres's own `QueryCancelPending`/`InterruptPending` flags (and its
 * latch), exactly what StatementCancelHandler does, and moves the monotonic
 * clock forward so a timed wait ends now instead of at its timeout. The next
 * CHECK_FOR_INTERRUPTS raises 57014.
 *
 * A timed wait (pg_sleep, a vacuum delay: wait events of class Timeout)
 * is that busy poll too, and took a whole CPU while it waited, allocating
 * as it went (the i64 of each call is a BigInt on the host's side):
 * `select pg_sleep(5)` cost 1.7 s of CPU a 3 s sleep and grew the server by
 * ~300 MB a second until it ended. So at each clock read inside such a wait
 * the thread blocks for up to WAIT_NAP_MS on the cancel cell, which a cancel
 * wakes at once (Atomics.notify of CANCEL_SEQ): PostgreSQL's WaitLatch
 * sleeps in epoll_wait until its latch is set or its timeout passes.
 *
 * `setitimer` is disabled here too: Postgres's own timeouts
 * (statement_timeout, lock_timeout, idle_in_transaction_session_timeout)
 * would fire as Emscripten timers between two sessions' statements and
 * could FATAL the single backend that all sessions share. pgts enforces the
 * timeouts it supports itself, on the host side.
 *
 * Owns the clock's shift and the exec's deadline; a request must never
 * outlive its exec (`end` clears what it set), since the next exec may be
 * another session's.
 */

import { CANCEL_SEQ, type InterruptFlags, RUNNING_SEQ, settleRequest } from "./interrupt.ts";
import { msUntilDue, postgresNowUs } from "./statementtimer.ts";

/** One hour in nanoseconds: how far a cancel moves the monotonic clock. */
const CLOCK_JUMP_NS = 3_600_000_000_000n;
const CLOCK_MONOTONIC = 1;
/**
 * How often a standing cancel moves the clock again (see `#trip`). Each
 * move is an hour: a request that stands for minutes (interrupts held)
 * adds years, far from the 292 years an int64 of nanoseconds holds.
 */
const CLOCK_REJUMP_MS = 10;
/**
 * How long one clock read inside a timed wait blocks the thread (ms): the
 * most a pg_sleep ends late by, a thousand wake-ups a second while it lasts.
 */
const WAIT_NAP_MS = 1;
/** PG_WAIT_TIMEOUT (utils/wait_classes.h): the class byte of pg_sleep's and the other timed waits. */
const PG_WAIT_TIMEOUT_CLASS = 0x09;
/** The imports a statement calls all the time, at which a cancel is looked for. */
const IO_IMPORTS = ["fd_read", "fd_pread", "fd_write", "fd_pwrite"];

export class CancelClock {
  readonly #cell: Int32Array;
  /** The heap is shared memory: the requesting thread may set the flags itself. */
  readonly #shared: boolean;
  #memory: WebAssembly.Memory | null = null;
  #flags: InterruptFlags | null = null;
  /** How far the monotonic clock has moved; only ever grows, so it stays monotonic. */
  #shift = 0n;
  /** Whether the exec in flight has been asked to stop (its clock moved). */
  #tripped = false;
  /** When (performance.now()) the clock last moved. */
  #jumpedAt = 0;
  /**
   * When to look at statement_timeout next (performance.now() ms, 0: the
   * exec has none). Checked at the same host calls as a cancel, so it needs
   * no timer on this thread, which the statement itself occupies (with a
   * shared heap, the executor's watchdog covers a statement without host
   * calls). Postgres's own timer decides once it is found
   * (statementtimer.ts): each statement of a Query has the whole timeout.
   */
  #deadline = 0;
  /** The exec's statement_timeout in ms, and its start as a PostgreSQL timestamp. */
  #timeoutMs = 0;
  #startUs = 0;
  /** The backend's `wait_event_info` in the heap (lockwait.ts), 0 until found or for an unknown build. */
  waitEvent = 0;
  /** A view of the heap, made again when the heap grows (a new buffer). */
  #view: DataView | null = null;
  /** all_timeouts[STATEMENT_TIMEOUT] in the heap (statementtimer.ts), 0 until found. */
  statementTimer = 0;
  /** settleRequest's options, made once rather than at every exec. */
  readonly #acknowledged: { ended: boolean; clear: () => void };
  readonly #ended: { ended: boolean; clear: () => void };

  constructor(cell: Int32Array, options: { shared: boolean }) {
    this.#cell = cell;
    this.#shared = options.shared;
    this.#acknowledged = { ended: false, clear: () => this.#setFlags(0) };
    // Clears Postgres's flags if they were set after its last
    // CHECK_FOR_INTERRUPTS (by this thread or, with a shared heap, by the
    // requesting one).
    this.#ended = {
      ended: true,
      clear: () => {
        if (this.#tripped || (this.#shared && this.#flagsSet())) this.#setFlags(0);
      },
    };
  }

  /** Postgres's heap, once PGlite's setup has chosen it. */
  get memory(): WebAssembly.Memory | null {
    return this.#memory;
  }

  set memory(memory: WebAssembly.Memory) {
    this.#memory = memory;
  }

  /** Where the interrupt flags are, once the module is instantiated; null if it exports none. */
  get flags(): InterruptFlags | null {
    return this.#flags;
  }

  set flags(flags: InterruptFlags) {
    this.#flags = flags;
  }

  /**
   * Wraps the clock and I/O imports in `env` so that they act on a standing
   * request, and turns `setitimer` off.
   */
  wrapImports(env: Record<string, unknown>): void {
    const clock = env["clock_time_get"] as (id: number, p: bigint, ptr: number) => number;
    env["clock_time_get"] = (id: number, precision: bigint, ptr: number) => {
      this.check();
      const r = clock(id, precision, ptr);
      if (this.#shift !== 0n && id === CLOCK_MONOTONIC && this.#memory !== null) {
        const v = new DataView(this.#memory.buffer);
        v.setBigUint64(ptr, v.getBigUint64(ptr, true) + this.#shift, true);
      }
      if (this.waitEvent !== 0) this.#napInTimedWait();
      return r;
    };
    for (const name of IO_IMPORTS) {
      const f = env[name] as ((...a: unknown[]) => unknown) | undefined;
      if (typeof f === "function") {
        env[name] = (...a: unknown[]) => {
          this.check();
          return f(...a);
        };
      }
    }
    env["_setitimer_js"] = () => 0;
  }

  /**
   * Inside a timed wait, and with no cancel standing: blocks up to
   * WAIT_NAP_MS, or until a cancel comes (its notify). A tripped request
   * lets the wait run on to its end, which the moved clock has brought.
   */
  #napInTimedWait(): void {
    const memory = this.#memory;
    if (memory === null || this.#tripped) return;
    const buffer = memory.buffer;
    let view = this.#view;
    if (view === null || view.buffer !== buffer) view = this.#view = new DataView(buffer);
    if (view.getUint32(this.waitEvent, true) >>> 24 !== PG_WAIT_TIMEOUT_CLASS) return;
    const want = Atomics.load(this.#cell, CANCEL_SEQ);
    if (want !== 0) return;
    Atomics.wait(this.#cell, CANCEL_SEQ, 0, WAIT_NAP_MS);
  }

  /** At a host call: acts on a request for the exec in flight, or on its deadline. */
  check(): void {
    const cell = this.#cell;
    const want = Atomics.load(cell, CANCEL_SEQ);
    const running = Atomics.load(cell, RUNNING_SEQ);
    if (want !== 0 && want === running) this.#trip();
    else if (this.#deadline !== 0 && performance.now() >= this.#deadline && this.#timedOut()) {
      this.#deadline = 0;
      Atomics.compareExchange(cell, CANCEL_SEQ, 0, running);
      this.#trip();
    }
  }

  /**
   * The exec's deadline has passed: whether its statement is due by
   * Postgres's own timer, or else when to look again.
   */
  #timedOut(): boolean {
    if (this.statementTimer === 0 || this.#memory === null) return true;
    const wait = msUntilDue(
      new DataView(this.#memory.buffer),
      this.statementTimer,
      this.#startUs,
      this.#timeoutMs,
    );
    if (wait === 0) return true;
    this.#deadline = performance.now() + wait;
    return false;
  }

  /** Exec `seq` is running: a request naming it acts from now on. */
  start(seq: number): void {
    Atomics.store(this.#cell, RUNNING_SEQ, seq);
  }

  /** The exec's statement_timeout (0: none), from now. */
  arm(timeoutMs: number): void {
    this.#deadline = timeoutMs > 0 ? performance.now() + timeoutMs : 0;
    this.#timeoutMs = timeoutMs;
    if (timeoutMs > 0) this.#startUs = postgresNowUs();
    this.#tripped = false;
  }

  /** pg_cancel_backend(pg_backend_pid()): the statement cancels itself (backends.ts). */
  cancelSelf(): void {
    this.#tripped = true;
    this.#setFlags(1);
  }

  /** An ErrorResponse left exec `seq`: a request for it has acted (or is moot). */
  acknowledge(seq: number): void {
    if (Atomics.load(this.#cell, CANCEL_SEQ) === seq) {
      settleRequest(this.#cell, seq, this.#acknowledged);
    }
  }

  /**
   * Exec `seq` is over: a request that came too late is cleared, and so are
   * flags nobody consumed, so that they never reach the next exec.
   */
  end(seq: number): void {
    this.#deadline = 0;
    settleRequest(this.#cell, seq, this.#ended);
    this.#tripped = false;
  }

  #setFlags(v: number): void {
    const memory = this.#memory;
    const flags = this.#flags;
    if (memory === null || flags === null) return;
    const view = new DataView(memory.buffer);
    view.setInt32(flags.cancel, v, true);
    view.setInt32(flags.interrupt, v, true);
    // SetLatch, as PostgreSQL's StatementCancelHandler does (interrupt.ts).
    const latch = v !== 0 && flags.latch !== 0 ? view.getUint32(flags.latch, true) : 0;
    if (latch !== 0) view.setInt32(latch, 1, true);
  }

  #flagsSet(): boolean {
    return this.#memory !== null && this.#flags !== null &&
      new DataView(this.#memory.buffer).getInt32(this.#flags.cancel, true) !== 0;
  }

  /**
   * Sets the flags and moves the clock. The request stands until the exec
   * ends or answers an error (interrupt.ts): flags Postgres dropped before
   * the statement began are set again here.
   *
   * The clock's jump is PostgreSQL's SetLatch: it ends a timed wait that
   * began before it. A wait that begins after it, while the flags wait for
   * a CHECK_FOR_INTERRUPTS (pg_sleep reads the time, then waits), would run
   * its whole length, so while the request stands the clock moves again
   * every CLOCK_REJUMP_MS: such a wait ends at its first reading after
   * that, and its caller's next CHECK_FOR_INTERRUPTS raises the cancel. (A
   * cancel that reached a pg_sleep(30) within milliseconds of its start was
   * otherwise acted on 30 s later.)
   */
  #trip(): void {
    if (this.#memory === null || this.#flags === null) return;
    const set = this.#flagsSet();
    const now = performance.now();
    if (this.#tripped && set && now - this.#jumpedAt < CLOCK_REJUMP_MS) return;
    this.#tripped = true;
    if (!set) this.#setFlags(1);
    // Permanent, so the clock stays monotonic: a wait that started before
    // the jump sees its deadline pass; later durations are unaffected.
    this.#shift += CLOCK_JUMP_NS;
    this.#jumpedAt = now;
  }
}
