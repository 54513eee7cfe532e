/**
 * A session's timers between its inputs (PostgreSQL's utils/misc/timeout.c
 * reasons IDLE_SESSION_TIMEOUT and IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
 * plus pgts's engine hold): idle_session_timeout while it holds nothing,
 * idle_in_transaction_session_timeout while it holds the engine between
 * statements, and pgts.engine_hold_timeout while it holds the engine idle,
 * or feeds a COPY without data, or its client does not read its answers,
 * and others wait. And TRANSACTION_TIMEOUT's, which runs through a
 * transaction's statements and its idle time alike.
 *
 * It owns the timers and the FATALs they end the session with; the
 * session says when it is idle (armIdle) and busy (disarm), and when a
 * transaction begins and ends. A timer checks again when it fires that the
 * session is still as it was: it must never end a session that has started
 * an input since (nor one whose transaction has ended, for
 * transaction_timeout's).
 */

import { ERRCODE, PgError } from "../../core/elog.ts";
import type { FedCopy } from "./copyfrom.ts";
import { parseDurationMs, type SettingsMap } from "./settings.ts";

/** What the timers read of their session when armed and when they fire. */
export interface TimedSession {
  /** It holds the engine. */
  readonly owns: boolean;
  /**
   * In a transaction block it holds no engine for yet: a BEGIN answered
   * while another session held the engine (deferredbegin.ts).
   */
  readonly beginPending: boolean;
  /** Between inputs: not waiting for the engine, not running, not closed. */
  readonly idle: boolean;
  /** It is going (closed, or terminated). */
  readonly closing: boolean;
  readonly settings: SettingsMap;
  /** Its COPY FROM STDIN in flight, if any. */
  readonly fedCopy: FedCopy | null;
  terminate(reason: PgError): void;
}

/** What the timers read of the engine. */
export interface TimedEngine {
  readonly scheduler: { readonly waiting: number };
  readonly options: {
    readonly engineHoldTimeoutMs: number;
    readonly idleInTransactionSessionTimeoutMs: number;
    readonly idleSessionTimeoutMs: number;
  };
}

export class SessionTimeouts {
  readonly #session: TimedSession;
  readonly #engine: TimedEngine;
  #idleTimer: ReturnType<typeof setTimeout> | null = null;
  /** pgts.engine_hold_timeout's timer: armed while the session holds the engine idle and others wait. */
  #holdTimer: ReturnType<typeof setTimeout> | null = null;
  /** Since when the client has not taken the session's answers (its socket is full); null while it does. */
  #blockedSince: number | null = null;
  /** Watches a session whose answers wait for its client (outputBlocked). */
  #stallTimer: ReturnType<typeof setTimeout> | null = null;
  /** transaction_timeout's timer, armed while the session's transaction runs, and its setting. */
  #transactionTimer: ReturnType<typeof setTimeout> | null = null;
  #transactionMs = 0;

  constructor(session: TimedSession, engine: TimedEngine) {
    this.#session = session;
    this.#engine = engine;
  }

  /**
   * The session is idle: idle_in_transaction_session_timeout while it holds
   * the engine between statements, idle_session_timeout while it holds
   * nothing (PostgreSQL's 25P03 and 57P05).
   */
  armIdle(): void {
    const s = this.#session;
    if (s.closing) return;
    if (!s.owns && !s.beginPending) {
      const idle = parseDurationMs(s.settings.get("idle_session_timeout")) ??
        this.#engine.options.idleSessionTimeoutMs;
      if (idle > 0) {
        this.#idleTimer = setTimeout(() => {
          this.#idleTimer = null;
          if (!s.owns && s.idle) {
            s.terminate(
              new PgError(
                ERRCODE.IDLE_SESSION_TIMEOUT,
                "terminating connection due to idle-session timeout",
                { severity: "FATAL" },
              ),
            );
          }
        }, idle);
      }
      return;
    }
    if (this.#engine.scheduler.waiting > 0) this.waitedFor();
    const ms = parseDurationMs(s.settings.get("idle_in_transaction_session_timeout")) ??
      this.#engine.options.idleInTransactionSessionTimeoutMs;
    // A transaction_timeout no longer than it stands instead (postgres.c).
    if (!(ms > 0) || (this.#transactionMs > 0 && ms >= this.#transactionMs)) return;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = null;
      if ((s.owns || s.beginPending) && s.idle) s.terminate(idleInTransactionTimeout());
    }, ms);
  }

  /**
   * Another session waits for the engine this session holds. PostgreSQL's
   * idle-in-transaction session holds only its own rows; here it holds every
   * other session's next statement, so once it has sat idle for
   * pgts.engine_hold_timeout while others wait it is ended as
   * idle_in_transaction_session_timeout would end it (25P03), its
   * transaction rolled back, and the waiters go on. The default (2 s) is
   * below pgts.engine_wait_timeout's (5 s), so that a waiter gets the engine
   * before its own wait fails.
   */
  waitedFor(): void {
    const s = this.#session;
    const ms = this.#engine.options.engineHoldTimeoutMs;
    if (this.#holdTimer !== null || !(ms > 0) || s.closing) return;
    const fed = s.fedCopy;
    if (fed !== null && !fed.over) {
      this.#watchCopy(ms);
      return;
    }
    if (!s.owns || !s.idle) return;
    this.#holdTimer = setTimeout(() => {
      this.#holdTimer = null;
      const waiting = this.#engine.scheduler.waiting;
      if (!s.owns || !s.idle || waiting === 0) return;
      s.terminate(idleInTransactionTimeout({
        detail: `The session held the engine idle for ${ms} ms while ${waiting} other ${
          waiting === 1 ? "session" : "sessions"
        } waited for it.`,
        hint: 'End transactions promptly, or raise "pgts.engine_hold_timeout".',
      }));
    }, ms);
  }

  /**
   * A fed COPY that others wait for: the engine is this session's only
   * while its client keeps sending. Once the engine has read everything
   * and the client has sent nothing more for pgts.engine_hold_timeout, the
   * session is ended as an idle holder is (25P03), its COPY rolled back.
   */
  #watchCopy(ms: number): void {
    const s = this.#session;
    const check = () => {
      this.#holdTimer = null;
      const fed = s.fedCopy;
      const waiting = this.#engine.scheduler.waiting;
      if (waiting === 0 || s.closing) return;
      if (fed === null || fed.over) {
        // The COPY is over: an idle holder's rule from now on.
        this.waitedFor();
        return;
      }
      const quiet = Date.now() - fed.lastData;
      // The engine works (the data is all in, or a Query runs its next
      // statements): the session is not idle.
      if (!fed.readingData || fed.feed.pending > 0 || quiet < ms) {
        this.#holdTimer = setTimeout(check, Math.max(ms - quiet, 100));
        return;
      }
      s.terminate(idleInTransactionTimeout({
        detail:
          `The session's COPY FROM STDIN held the engine for ${quiet} ms without data while ${waiting} other ${
            waiting === 1 ? "session" : "sessions"
          } waited for it.`,
        hint: 'Send COPY data promptly, or raise "pgts.engine_hold_timeout".',
      }));
    };
    this.#holdTimer = setTimeout(check, ms);
  }

  /**
   * The client's socket is full: the session's answers wait for it to read.
   * A PostgreSQL backend blocked in send holds only its own locks; here the
   * engine, and with it every other session. Once the client has taken
   * nothing for pgts.engine_hold_timeout while the session holds the engine
   * and others wait, the session is ended (its statement cancelled, its
   * transaction rolled back), as an idle holder is.
   */
  outputBlocked(): void {
    if (this.#blockedSince !== null) return;
    this.#blockedSince = Date.now();
    const ms = this.#engine.options.engineHoldTimeoutMs;
    if (!(ms > 0) || this.#stallTimer !== null) return;
    const s = this.#session;
    const check = () => {
      this.#stallTimer = null;
      const since = this.#blockedSince;
      if (since === null || s.closing) return;
      const stalled = Date.now() - since;
      const waiting = this.#engine.scheduler.waiting;
      if (!s.owns || waiting === 0 || stalled < ms) {
        this.#stallTimer = setTimeout(check, Math.max(ms - stalled, 250));
        return;
      }
      s.terminate(
        new PgError(
          ERRCODE.CONNECTION_FAILURE,
          "terminating connection because its client does not read its results",
          {
            severity: "FATAL",
            detail:
              `The session held the engine for ${stalled} ms with its answer unread while ${waiting} other ${
                waiting === 1 ? "session" : "sessions"
              } waited for it.`,
            hint:
              'Read results as they come (a cursor fetches a large result in parts), or raise "pgts.engine_hold_timeout".',
          },
        ),
      );
    };
    this.#stallTimer = setTimeout(check, ms);
  }

  /** The client took what was waiting for it. */
  outputFlowing(): void {
    this.#blockedSince = null;
    if (this.#stallTimer !== null) clearTimeout(this.#stallTimer);
    this.#stallTimer = null;
  }

  /**
   * The session's transaction begins (an input from idle), with
   * transaction_timeout `ms` (0: none): once it has run that long, its
   * statements and its idle time alike, the session is ended with
   * PostgreSQL's FATAL 25P04 (its statement cancelled, its transaction
   * rolled back), as the timer xact.c starts does.
   */
  transactionBegins(ms: number): void {
    this.transactionEnds();
    this.transactionTimeoutSet(ms);
  }

  /**
   * transaction_timeout is `ms` inside the transaction: PostgreSQL's assign
   * hook starts the timer from now if none runs, and stops it at 0.
   */
  transactionTimeoutSet(ms: number): void {
    this.#transactionMs = ms > 0 ? ms : 0;
    if (!(ms > 0)) {
      this.transactionEnds();
      return;
    }
    const s = this.#session;
    if (this.#transactionTimer !== null || s.closing) return;
    this.#transactionTimer = setTimeout(() => {
      this.#transactionTimer = null;
      if (s.closing) return;
      s.terminate(
        new PgError(
          ERRCODE.TRANSACTION_TIMEOUT,
          "terminating connection due to transaction timeout",
          {
            severity: "FATAL",
          },
        ),
      );
    }, ms);
  }

  /** The session's transaction is over (committed, rolled back, prepared), or the session is. */
  transactionEnds(): void {
    if (this.#transactionTimer !== null) clearTimeout(this.#transactionTimer);
    this.#transactionTimer = null;
  }

  /** The session is busy (or going): no timer runs but transaction_timeout's. */
  disarm(): void {
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
    if (this.#holdTimer !== null) clearTimeout(this.#holdTimer);
    this.#holdTimer = null;
  }
}

/** The FATAL that ends an idle holder (of the engine, or of the cluster's turn to change roles). */
export function idleInTransactionTimeout(why?: { detail: string; hint: string }): PgError {
  return new PgError(
    ERRCODE.IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
    "terminating connection due to idle-in-transaction timeout",
    { severity: "FATAL", ...why },
  );
}
