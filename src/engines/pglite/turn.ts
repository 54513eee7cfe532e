/**
 * A session's turn on the engine, the session's side of scheduler.ts: the
 * wait for the engine, bounded by the session's wait bound and its
 * statement_timeout (a prepare's by
 * PREPARE_WAIT_MS, after which it is answered at once and deferred:
 * deferred.ts); the session's settings put on the backend when another
 * session's are there; the deferred Parse/Close messages run before the
 * input; and the end of a turn that PGlite itself broke. A database
 * command (CREATE, ALTER or DROP DATABASE in a cluster of several) takes
 * its turn on the cluster instead (dbcommands.ts).
 *
 * `EngineTurn` changes the session's state only through the hooks the
 * session gives it (`TurnHooks`), which end in the session's one writer
 * of state. It must never leave the engine held by a session whose
 * settings could not be put on it (the session is lost, FATAL), nor after
 * a PGlite failure (the session's open work is rolled back, or the engine
 * is marked broken).
 */

import { ERRCODE, isPgError, PgError } from "../../core/elog.ts";
import type { TransactionStatus } from "../../core/engine/types.ts";
import { asFatal, databaseCommandAnswer, databaseCommandRefusal, unanswered } from "./answers.ts";
import { deferrable, type DeferredPrepares, PREPARE_WAIT_MS } from "./deferred.ts";
import type { InputPlan } from "./naming.ts";
import { isPing } from "./offengine.ts";
import { type Holder, waitBoundOf } from "./scheduler.ts";
import type { SessionEngine } from "./sessionengine.ts";
import type { SessionTimeouts } from "./timeout.ts";
import { concat, errorResponse, type Frame, noticeResponse } from "./wire.ts";

/** What a turn reads and sets of its session. */
export interface TurnSession extends Holder {
  /** It holds the engine. */
  owns: boolean;
  readonly prefix: string;
  readonly statements: Set<string>;
  readonly transactionStatus: TransactionStatus;
  /** Marks the transaction status after the engine rolled the session back. */
  resetStatus(): void;
}

/** How a turn acts on its session: each ends in the session's own code. */
export interface TurnHooks {
  /** The session's one writer of state. */
  changeState(next: "idle" | "waiting" | "active"): void;
  /**
   * Answers the input with `err`, skipping the rest of its batch to Sync;
   * inside a transaction block the block is aborted first.
   */
  failInput(frames: readonly Frame[], err: PgError, out: (b: Uint8Array) => void): Promise<void>;
  /** Gives the engine back to the next waiter. */
  giveBack(): void;
  /** The session is ended by `fatal`: its settings could not be put on the backend. */
  lose(fatal: PgError): void;
  /** After an input ran (the session's settle): the engine given back at ReadyForQuery 'I'. */
  settle(atReadyForQuery: boolean, out: (b: Uint8Array) => void): Promise<void>;
  /**
   * A pool's ping (`SELECT 1`) that waited PING_WAIT_MS: answered without
   * the engine (offengine.ts), or false (nothing sent) when it cannot be.
   */
  answerPing(plan: InputPlan, out: (b: Uint8Array) => void): Promise<boolean>;
}

/**
 * How long a pool's `SELECT 1` (outside a transaction block) waits for the
 * engine before it is answered without it: every PostgreSQL backend answers
 * its own at once, and a pool that checks a connection before it hands it
 * out (SQLAlchemy's pre-ping, Django's and Rails's checks) would otherwise
 * wait for another session's long statement, or see its connection fail
 * with 55P03, and an idle transaction's holder be ended for it
 * (pgts.engine_hold_timeout). Short waits, as under pgbench, end well
 * before it: the engine answers those, as every statement.
 */
export const PING_WAIT_MS = 100;

/** What a turn asks of the session's engine. */
export type TurnEngine<S> = Pick<
  SessionEngine<S>,
  | "scheduler"
  | "cluster"
  | "carriesSettingsOf"
  | "prepareFor"
  | "runRaw"
  | "abortOpenWork"
  | "markBroken"
>;

/** What a turn works with besides its session. */
export interface TurnParts<S> {
  readonly engine: TurnEngine<S>;
  /** How long a wait for the engine may last (querycancel.ts's waitBoundMs). */
  waitBoundMs(): number;
  /** The input's statement_timeout (querycancel.ts; 0: none), which bounds the wait too. */
  statementTimeoutMs(): Promise<number>;
  /** The session's lock_timeout (0: none), part of waitBoundMs. */
  lockTimeoutMs(): number;
  readonly deferred: DeferredPrepares;
  /** The session's timers between inputs (timeout.ts), stopped while the cluster works. */
  readonly timeouts: Pick<SessionTimeouts, "disarm" | "armIdle">;
  /** Ends the session's COPY FROM STDIN, if one is in flight (copyfrom.ts). */
  stopCopy(): void;
  readonly hooks: TurnHooks;
}

export class EngineTurn<S extends TurnSession> {
  readonly #session: S;
  readonly #parts: TurnParts<S>;

  constructor(session: S, parts: TurnParts<S>) {
    this.#session = session;
    this.#parts = parts;
  }

  /**
   * Takes the engine (bounded wait) and puts the session's settings on it,
   * unless it holds it already; then it is active. False when the input was
   * answered with an error instead.
   */
  async take(
    frames: readonly Frame[],
    out: (b: Uint8Array) => void,
    plan?: InputPlan,
    first = false,
  ): Promise<boolean> {
    const s = this.#session;
    const { engine, hooks } = this.#parts;
    if (s.owns) {
      hooks.changeState("active");
      return true;
    }
    hooks.changeState("waiting");
    try {
      // `first`: it waits at the head of the line.
      let acquired = !first && engine.scheduler.tryAcquire(s);
      if (
        !acquired && !first && plan !== undefined && s.transactionStatus === "I" && isPing(plan)
      ) {
        try {
          await engine.scheduler.acquire(s, { timeoutMs: PING_WAIT_MS });
          acquired = true;
        } catch (e) {
          if (!isPgError(e) || e.code !== ERRCODE.LOCK_NOT_AVAILABLE) throw e;
          // Answered; else it waits on, as any statement (at the end of the line).
          if (await hooks.answerPing(plan, out)) return false;
        }
      }
      if (!acquired) {
        let timeoutMs = this.#parts.waitBoundMs();
        let statementMs = 0;
        if (plan !== undefined && deferrable(plan, s.transactionStatus)) {
          // A prepare waits briefly, then is answered at once (deferred.ts).
          timeoutMs = Math.min(timeoutMs, PREPARE_WAIT_MS);
        } else {
          // statement_timeout ends the wait, as it ends a wait for a lock in
          // PostgreSQL (57014); the statement then has it whole once it runs.
          statementMs = await this.#parts.statementTimeoutMs();
        }
        const { by, ms } = waitBoundOf(timeoutMs, this.#parts.lockTimeoutMs(), statementMs);
        await engine.scheduler.acquire(s, {
          timeoutMs: ms,
          first,
          bound: by,
        });
      }
    } catch (e) {
      hooks.changeState("idle");
      if (!isPgError(e)) throw e;
      // A prepare never waits for another session's transaction (deferred.ts).
      if (
        e.code === ERRCODE.LOCK_NOT_AVAILABLE && plan !== undefined &&
        this.#parts.deferred.defer(plan, {
          status: s.transactionStatus,
          statements: s.statements,
          out,
        })
      ) {
        return false;
      }
      await hooks.failInput(frames, e, out);
      return false;
    }
    s.owns = true;
    hooks.changeState("active");
    try {
      if (!engine.carriesSettingsOf(s)) {
        const warnings = await engine.prepareFor(s);
        if (warnings.length > 0) out(concat(warnings.map(noticeResponse)));
      }
    } catch (e) {
      hooks.changeState("idle");
      const fatal = asFatal(e);
      hooks.lose(fatal);
      throw fatal;
    }
    return true;
  }

  /** Runs the deferred Parse/Close messages (deferred.ts); false when their error answered the input. */
  async runDeferred(frames: readonly Frame[], out: (b: Uint8Array) => void): Promise<boolean> {
    const s = this.#session;
    const { engine, deferred, hooks } = this.#parts;
    let err: PgError | null;
    try {
      err = await deferred.run((bytes) => engine.runRaw(bytes, s), s.prefix);
    } catch (e) {
      await this.failed(e, frames, out, 0);
      return false;
    }
    if (err === null) return true;
    await hooks.failInput(frames, err, out);
    await hooks.settle(true, out);
    return false;
  }

  /**
   * CREATE, ALTER or DROP DATABASE in a multi-database cluster: the
   * cluster carries it out (dbcommands.ts), not this engine's backend,
   * which holds one database only. Not inside a transaction block: the
   * cluster's work cannot be rolled back.
   */
  async databaseCommand(
    sql: string,
    input: Uint8Array,
    frames: readonly Frame[],
    out: (b: Uint8Array) => void,
  ): Promise<void> {
    const s = this.#session;
    const { engine, hooks, timeouts } = this.#parts;
    const refused = databaseCommandRefusal(sql, s.transactionStatus);
    if (refused !== null) {
      await hooks.failInput(frames, refused, out);
      return;
    }
    timeouts.disarm();
    hooks.changeState("active");
    try {
      out(
        await databaseCommandAnswer(input, frames, {
          run: () => engine.cluster!.databaseCommand(s, sql),
          status: () => s.transactionStatus,
        }),
      );
    } finally {
      hooks.changeState("idle");
      timeouts.armIdle();
    }
  }

  /**
   * PGlite threw (not an SQL error): report it for every batch of the input
   * not yet answered, roll back, give the engine back.
   */
  async failed(
    e: unknown,
    frames: readonly Frame[],
    out: (b: Uint8Array) => void,
    answered: number,
  ): Promise<void> {
    const s = this.#session;
    const { engine, hooks } = this.#parts;
    const msg = e instanceof Error ? e.message : String(e);
    const recovered = await engine.abortOpenWork(s);
    s.resetStatus();
    hooks.changeState("idle");
    this.#parts.stopCopy();
    const rest = unanswered(frames, answered);
    const err = new PgError(ERRCODE.INTERNAL_ERROR, `engine failure: ${msg}`);
    if (rest.length > 0) await hooks.failInput(rest, err, out);
    else out(errorResponse(err));
    hooks.giveBack();
    if (!recovered) engine.markBroken(msg);
  }
}
