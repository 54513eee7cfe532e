/**
 * Deferred prepares: a batch of only Parse and Close messages (libpq's
 * PQprepare, pgbench -M prepared), or Close messages alone with no Sync
 * (pg-cursor's close of a failed cursor), whose wait for the engine timed
 * out is answered at once and run on the engine before the session's next
 * input. In PostgreSQL, preparing a statement or closing one never waits
 * for another session's transaction.
 *
 * `DeferredPrepares` owns the messages answered and not yet run. It runs
 * them with the runner the session gives it (as the session, on the engine
 * it holds) and reports their first error; the session answers its input
 * with it. It changes no state of the session's but its statement names.
 */

import type { PgError } from "../../core/elog.ts";
import type { TransactionStatus } from "../../core/engine/types.ts";
import { BE, FE } from "../../core/protocol/constants.ts";
import { closesOnly } from "../../core/protocol/pipeline.ts";
import { firstPgError } from "./answers.ts";
import type { InputPlan } from "./naming.ts";
import { concat, fe, type Frame, message, readyForQuery } from "./wire.ts";

/**
 * A batch of only Parse and Close messages and Sync (libpq's PQprepare,
 * pgbench -M prepared), or of Close messages alone, answered before it
 * runs: ParseComplete, CloseComplete, ReadyForQuery (at a Sync), and the
 * messages to run later. Null when the batch is of another kind.
 */
function deferredPrepare(
  bytes: Uint8Array,
  frames: readonly Frame[],
  status: TransactionStatus,
): { answer: Uint8Array; messages: Uint8Array[] } | null {
  // Close messages alone, with no Sync (pg-cursor closes a failed cursor's
  // portal so, after the Sync that ended its batch): a CloseComplete each.
  if (closesOnly(frames)) {
    return {
      answer: concat(frames.map(() => message(BE.CloseComplete))),
      messages: frames.map((f) => bytes.slice(f.start, f.end)),
    };
  }
  if (frames.length < 2 || frames[frames.length - 1]!.type !== FE.Sync) return null;
  const answers: Uint8Array[] = [];
  for (const f of frames) {
    if (f.type === FE.Parse) answers.push(message(BE.ParseComplete));
    else if (f.type === FE.Close) answers.push(message(BE.CloseComplete));
    else if (f.type === FE.Sync) answers.push(readyForQuery(status));
    else if (f.type !== FE.Flush) return null;
  }
  const messages: Uint8Array[] = [];
  for (const f of frames) {
    if (f.type !== FE.Sync && f.type !== FE.Flush) messages.push(bytes.slice(f.start, f.end));
  }
  return { answer: concat(answers), messages };
}

/**
 * How long a batch that can be deferred waits for the engine before it is
 * answered at once: well under pgts.engine_hold_timeout (2 s), so that a
 * client thread blocked in PQprepare (pgbench -M prepared runs several
 * clients on a thread) is free again before the transaction it waits
 * behind, held by another client of that same thread, counts as idle.
 */
export const PREPARE_WAIT_MS = 500;

/** Whether `plan`, run from `status`, is a batch `defer` would take. */
export function deferrable(plan: InputPlan, status: TransactionStatus): boolean {
  return status === "I" && plan.unnamedParse === null && !plan.hasQuery &&
    deferredPrepare(plan.bytes, plan.frames, status) !== null;
}

/** A session's Parse and Close messages answered while the engine was held, to run first. */
export class DeferredPrepares {
  #messages: Uint8Array[] = [];

  /** There are messages to run before the session's next input. */
  get pending(): boolean {
    return this.#messages.length > 0;
  }

  /**
   * A Parse/Close-only batch whose wait for the engine timed out is
   * answered now (ParseComplete, CloseComplete, ReadyForQuery) and kept to
   * run before the session's next input; the statements it creates are the
   * session's from now. An error it raises then (a syntax error) is that
   * input's answer. False when the batch is not of that kind.
   */
  defer(
    plan: InputPlan,
    session: {
      readonly status: TransactionStatus;
      readonly statements: Set<string>;
      out: (b: Uint8Array) => void;
    },
  ): boolean {
    if (!deferrable(plan, session.status)) return false;
    const deferred = deferredPrepare(plan.bytes, plan.frames, session.status);
    if (deferred === null) return false;
    this.#messages.push(...deferred.messages);
    for (const n of plan.createdStatements) session.statements.add(n);
    session.out(deferred.answer);
    return true;
  }

  /**
   * Runs the kept messages (`run` runs bytes on the engine as the session:
   * the guard, guard.ts, checks what its statements do) and forgets them;
   * their first error, named as the session names its statements, or null.
   */
  async run(
    run: (bytes: Uint8Array) => Promise<Uint8Array>,
    prefix: string,
  ): Promise<PgError | null> {
    const bytes = concat([...this.#messages, fe.sync()]);
    this.#messages = [];
    return firstPgError(await run(bytes), prefix);
  }
}
