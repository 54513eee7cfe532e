/**
 * The wait of a blocking `pg_advisory_lock()` for a key another session
 * holds, as PostgreSQL's backend waits in its lock manager. Migration tools
 * (Prisma Migrate, node-pg-migrate) send `SELECT pg_advisory_lock(k)`
 * alone and expect the second of two runners to wait for the first.
 *
 * The lock table is the engine's (advisory.ts), where a statement cannot
 * wait: the session that holds the key needs the engine to let it go. So a
 * statement sent alone outside a transaction block that calls
 * `pg_advisory_lock(…)` (or `_shared`, or the `_xact_` forms), whose try
 * fails with the engine's conflict error, is tried again, without holding
 * the engine between tries, until it gets the lock: the client sees only
 * the last try's answer. The wait ends as PostgreSQL's does: a cancel
 * (57014), statement_timeout (57014), lock_timeout (55P03), or a deadlock
 * with other waiting sessions (40P01, found after deadlock_timeout by the
 * first whose wait closes the cycle). Inside a transaction block, or with
 * other statements in the input, the conflict is the answer at once, as
 * before. What differs from PostgreSQL's wait: the statement runs again
 * from its start at each try, so what it does outside its transaction
 * before the call (nextval) is done again, and the keys it took before the
 * one it waits for are not held meanwhile; lock_timeout is the session's,
 * not a value the statement itself sets with set_config(…, true).
 *
 * `AdvisoryWait` owns one input's wait; `WAITS` (per engine) knows which
 * session waits for which holders, for deadlock detection. Tries come 1,
 * 2, 4 … 50 ms apart; the engine's lock table queues the waiters of a key
 * (exec option `advisoryWait`), so that they get it in the order they came.
 */

import { ERRCODE, PgError } from "../../core/elog.ts";
import { BE, FE, PG_DIAG } from "../../core/protocol/constants.ts";
import { ADVISORY_CONFLICT_ROUTINE } from "./advisory.ts";
import { queryCanceled, timeoutCanceled } from "./answers.ts";
import type { InputPlan } from "./naming.ts";
import { scanStatements } from "./sqlscan.ts";
import {
  concat,
  errorField,
  errorResponse,
  readCString,
  readInt32,
  readyForQuery,
} from "./wire.ts";

/** A call of a blocking advisory-lock function: pg_advisory_lock, pg_advisory_xact_lock, each `_shared` too. */
const BLOCKING_CALL = /\bpg_advisory(?:_xact)?_lock(?:_shared)?\s*\(/i;

/** The longest statement text looked at: past it, the conflict is the answer at once. */
const MAX_TEXT = 16 * 1024;

/** The longest pause between two tries. */
const MAX_PAUSE_MS = 50;

/**
 * The input is one statement that calls a blocking advisory-lock function,
 * and nothing else: a Query, or Parse, Bind, [Describe,] Execute and Sync.
 * A bare `SELECT pg_advisory_lock($1)` (Prisma Migrate, node-pg-migrate) or
 * one inside a CTE that sets lock_timeout first (Kysely's migrator). Only
 * such an input, from outside a transaction block, waits: a try that
 * conflicts ran in a transaction of its own, which the conflict rolled
 * back, so the next try starts over (advisory.ts lets go of the
 * session-level holds it took before the conflict).
 */
export function waitsForAdvisoryLock(plan: InputPlan): boolean {
  const { bytes, frames } = plan;
  const first = frames[0];
  if (first === undefined) return false;
  let at: number;
  if (frames.length === 1 && first.type === FE.Query) at = first.start + 5;
  else if (
    first.type === FE.Parse && frames[1]?.type === FE.Bind &&
    ((frames.length === 4 && frames[2]!.type === FE.Execute && frames[3]!.type === FE.Sync) ||
      (frames.length === 5 && frames[2]!.type === FE.Describe &&
        frames[3]!.type === FE.Execute && frames[4]!.type === FE.Sync))
  ) {
    at = readCString(bytes, first.start + 5)[1];
  } else return false;
  // Most inputs are told apart here, before their text is decoded.
  if (first.end - at > MAX_TEXT || !namesAdvisory(bytes, at, first.end)) return false;
  const sql = readCString(bytes, at)[0];
  if (!BLOCKING_CALL.test(sql)) return false;
  // A Parse holds one statement; a Query may hold several, and a try must
  // not run a statement before the one that waits a second time.
  return first.type !== FE.Query || scanStatements(sql, 1).length === 1;
}

const ADVISORY = [0x61, 0x64, 0x76, 0x69, 0x73, 0x6f, 0x72, 0x79]; // "advisory"

/** Whether "advisory", in any case, is in `bytes` from `at` to `end`. */
function namesAdvisory(bytes: Uint8Array, at: number, end: number): boolean {
  for (let i = at; i <= end - ADVISORY.length; i++) {
    let j = 0;
    while (j < ADVISORY.length && (bytes[i + j]! | 0x20) === ADVISORY[j]) j++;
    if (j === ADVISORY.length) return true;
  }
  return false;
}

/** The holders' pids when `answer` is the engine's advisory-lock conflict, else null. */
export function advisoryConflict(answer: Uint8Array): number[] | null {
  let at = 0;
  while (at + 5 <= answer.length) {
    const end = at + 1 + readInt32(answer, at + 1);
    if (answer[at] === BE.ErrorResponse) {
      const msg = answer.subarray(at, end);
      if (errorField(msg, PG_DIAG.SOURCE_FUNCTION) !== ADVISORY_CONFLICT_ROUTINE) return null;
      return (errorField(msg, PG_DIAG.MESSAGE_DETAIL).match(/\d+/g) ?? []).map(Number);
    }
    at = end;
  }
  return null;
}

/** Which session waits for which holders, per engine. */
const WAITS = new WeakMap<object, Map<number, readonly number[]>>();

export interface WaitLimits {
  /** statement_timeout of the session (0: none). */
  readonly statementTimeoutMs: number;
  /** lock_timeout of the session (0: none). */
  readonly lockTimeoutMs: number;
  /** deadlock_timeout: how long it waits before it looks for a deadlock. */
  readonly deadlockTimeoutMs: number;
}

/** One input's wait for an advisory lock. */
export class AdvisoryWait {
  readonly #waits: Map<number, readonly number[]>;
  readonly #pid: number;
  readonly #limits: WaitLimits;
  readonly #started = Date.now();
  #pause = 1;
  #held: Uint8Array[] = [];

  constructor(engine: object, pid: number, limits: WaitLimits) {
    let waits = WAITS.get(engine);
    if (waits === undefined) WAITS.set(engine, waits = new Map());
    this.#waits = waits;
    this.#pid = pid;
    this.#limits = limits;
  }

  /** Where a try's answer goes: kept until it is known not to be the conflict. */
  readonly output = (b: Uint8Array): void => {
    this.#held.push(b.slice());
  };

  /**
   * After a try: its answer goes to `out` unless it is the conflict; then,
   * unless the wait is over (its error answered), true: pause, then try
   * again. `stop` says the session is going.
   */
  again(out: (b: Uint8Array) => void, stop: () => boolean): boolean {
    const answer = concat(this.#held);
    this.#held = [];
    const holders = advisoryConflict(answer);
    if (holders === null) {
      this.#waits.delete(this.#pid);
      out(answer);
      return false;
    }
    const ended = stop() ? queryCanceled() : this.#ended(holders);
    if (ended !== null) {
      this.#waits.delete(this.#pid);
      out(concat([errorResponse(ended), readyForQuery("I")]));
      return false;
    }
    return true;
  }

  /** The pause before the next try: 1, 2, 4 … 50 ms. */
  async pause(): Promise<void> {
    await new Promise((r) => setTimeout(r, this.#pause));
    this.#pause = Math.min(this.#pause * 2, MAX_PAUSE_MS);
  }

  /** Why the wait ends now (a timeout, a deadlock), or null: it goes on. */
  #ended(holders: readonly number[]): PgError | null {
    const waited = Date.now() - this.#started;
    const { statementTimeoutMs, lockTimeoutMs } = this.#limits;
    if (statementTimeoutMs > 0 && waited >= statementTimeoutMs) return timeoutCanceled("statement");
    if (lockTimeoutMs > 0 && waited >= lockTimeoutMs) return timeoutCanceled("lock");
    this.#waits.set(this.#pid, holders);
    const cycle = waited >= this.#limits.deadlockTimeoutMs ? this.#cycle() : null;
    if (cycle === null) return null;
    this.#waits.delete(this.#pid);
    const detail = cycle.map((pid, i) =>
      `Process ${pid} waits for an advisory lock; blocked by process ${
        cycle[(i + 1) % cycle.length]
      }.`
    ).join("\n");
    return new PgError(ERRCODE.DEADLOCK_DETECTED, "deadlock detected", { detail });
  }

  /** The waiting sessions from this one back to itself, if its wait closes a cycle. */
  #cycle(): number[] | null {
    const path: number[] = [];
    const seen = new Set<number>();
    const visit = (pid: number): boolean => {
      if (pid === this.#pid && path.length > 0) return true;
      if (seen.has(pid)) return false;
      seen.add(pid);
      path.push(pid);
      for (const next of this.#waits.get(pid) ?? []) if (visit(next)) return true;
      path.pop();
      return false;
    };
    return visit(this.#pid) ? path : null;
  }
}
