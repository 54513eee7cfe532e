/**
 * What stops a session's statement early: a client's CancelRequest
 * (PostgreSQL's QueryCancelPending), statement_timeout and the bound on a
 * wait for the engine (lock_timeout's part), the reasons postgres.c's
 * ProcessInterrupts tells apart by their message.
 *
 * It owns the cancel flags of the input in hand and the next one, where
 * the input in hand is for a cancel (before its exec, running, after), and
 * statement_timeout as read inside a transaction block; the session says
 * when an input starts, when its exec runs and ends, and what it saw. It
 * changes no state of the session and never interrupts the engine itself:
 * the session acts on what it says.
 */

import type { TransactionStatus } from "../../core/engine/types.ts";
import { FE } from "../../core/protocol/constants.ts";
import { parseDurationMs, type SettingsMap } from "./settings.ts";
import { dataRows, fe, type Frame } from "./wire.ts";

/** What it reads of its session. */
export interface CanceledSession {
  readonly settings: SettingsMap;
  readonly transactionStatus: TransactionStatus;
}

/** What it asks of the session's engine. */
export interface CancelEngine<S> {
  readonly options: {
    readonly engineWaitTimeoutMs: number;
    readonly statementTimeoutMs: number;
    readonly lockTimeoutMs: number;
    readonly transactionTimeoutMs: number;
  };
  runRaw(bytes: Uint8Array, as: S): Promise<Uint8Array>;
}

export class QueryCancel<S extends CanceledSession> {
  /** A cancel that came before the input's exec began: it ends the input where it stands. */
  pending = false;
  /** Where the input in hand is: before its exec (waiting, switching), in it, or after it. */
  #phase: "before" | "running" | "after" = "after";
  /** A client's cancel reached the input in flight (not statement_timeout). */
  byClient = false;
  /** The input being run may change settings (the scan saw SET, set_config...). */
  inputSets = false;
  /** A cancel for the next input, which arrived after the previous one's exec. */
  #next = false;
  /** The last input ended at a ReadyForQuery (no batch or COPY open). */
  #atReadyForQuery = true;
  /** A SET in the open transaction block may have changed statement_timeout or transaction_timeout. */
  #timeoutStale = false;
  /** statement_timeout and transaction_timeout as read inside the open block; null outside one. */
  #blockTimeoutMs: number | null = null;
  #blockTransactionMs: number | null = null;
  readonly #session: S;
  readonly #engine: CancelEngine<S>;

  constructor(session: S, engine: CancelEngine<S>) {
    this.#session = session;
    this.#engine = engine;
  }

  /**
   * A client's cancel, the session being `active` (its input in hand
   * switched to or running) or having inputs `queued`: for the input in
   * hand, before its exec or while it runs, or else for the next one. True
   * when the exec is running: the session interrupts it.
   */
  request(active: boolean, queued: boolean): boolean {
    if (active && this.#phase === "running") {
      this.byClient = true;
      return true;
    }
    if (active && this.#phase === "before") {
      this.byClient = true;
      this.pending = true;
    } else if (queued) {
      this.#next = true;
    }
    return false;
  }

  /** A new input starts: a cancel that came for it before it did is pending. */
  startInput(): void {
    this.#phase = "before";
    this.pending = this.#next;
    this.byClient = this.#next;
    this.#next = false;
  }

  /**
   * An exec of the input begins. A cancel that came while the engine was
   * being made ready for this input (the switch to its settings) ends it
   * before it runs, as one that came during the wait does: what
   * PostgreSQL's first CHECK_FOR_INTERRUPTS would do. Outside a block
   * nothing needs a rollback; one statement or one batch only, since a
   * pipelined next one must still run. True when it does (the cancel is
   * then spent); otherwise the exec's cancel is the client's only if one
   * came already.
   */
  beginExec(frames: readonly Frame[], drop: number): boolean {
    if (
      this.pending && this.#session.transactionStatus === "I" && drop === 0 &&
      frames.filter((f) => f.type === FE.Query || f.type === FE.Sync).length === 1
    ) {
      this.pending = false;
      this.#phase = "after";
      return true;
    }
    this.byClient = this.pending;
    return false;
  }

  /** The exec is on the engine: true when a cancel is pending (the session interrupts it). */
  running(): boolean {
    this.#phase = "running";
    return this.pending;
  }

  /**
   * The exec did not run (granted one step ahead, and the exec before it
   * did not end idle): the input is before its exec again, and a client's
   * cancel that came meanwhile is pending for it.
   */
  notRun(): void {
    this.pending = this.byClient;
    this.#phase = "before";
  }

  /** The exec is over, or failed: a cancel that came for it is spent. */
  endExec(): void {
    this.pending = false;
    this.#phase = "after";
  }

  /** The input's exec is over: where it ended, and whether it may have set statement_timeout. */
  afterExec(exec: { readonly endsWithZ: boolean; readonly sawParameterStatus: boolean }): void {
    this.#atReadyForQuery = exec.endsWithZ;
    if (
      this.#session.transactionStatus === "T" && (this.inputSets || exec.sawParameterStatus)
    ) {
      this.#timeoutStale = true;
    }
    this.inputSets = false;
  }

  /**
   * statement_timeout for the next exec. The settings map is re-read when a
   * transaction ends; a SET inside a transaction block (SET LOCAL, say) is
   * read back here before the block's next statement, as the session's own
   * work, only while the backend is at a ReadyForQuery of a block in
   * progress (not mid-batch, not failed). With SHOW, which takes no
   * snapshot: a SELECT would set the transaction's first snapshot, after
   * which the client's SET TRANSACTION ISOLATION LEVEL / READ WRITE /
   * SNAPSHOT fail with "must be called before any query".
   */
  async statementTimeoutMs(): Promise<number> {
    this.#forgetOutsideBlock();
    if (this.blockTimeoutsStale) await this.readBlockTimeouts();
    const s = this.#session;
    const ms = this.#blockTimeoutMs ?? parseDurationMs(s.settings.get("statement_timeout")) ??
      this.#engine.options.statementTimeoutMs;
    // A transaction_timeout no longer than it stands instead (postgres.c).
    const transaction = this.transactionTimeoutMs();
    return transaction > 0 && ms >= transaction ? 0 : ms;
  }

  /** transaction_timeout (0: none), as read inside the open block if it was. */
  transactionTimeoutMs(): number {
    this.#forgetOutsideBlock();
    return this.#blockTransactionMs ??
      parseDurationMs(this.#session.settings.get("transaction_timeout")) ??
      this.#engine.options.transactionTimeoutMs;
  }

  /**
   * A SET in the open block may have changed statement_timeout or
   * transaction_timeout, and the backend is where they can be read back
   * (readBlockTimeouts). Checked first, so that the statements that set
   * nothing pay no await.
   */
  get blockTimeoutsStale(): boolean {
    return this.#timeoutStale && this.#session.transactionStatus === "T" && this.#atReadyForQuery;
  }

  /**
   * Reads statement_timeout and transaction_timeout back inside a block
   * after a SET may have changed them (see statementTimeoutMs); whether it
   * did read.
   */
  async readBlockTimeouts(): Promise<boolean> {
    this.#forgetOutsideBlock();
    if (!this.blockTimeoutsStale) return false;
    const s = this.#session;
    this.#timeoutStale = false;
    const answer = await this.#engine.runRaw(
      fe.query("SHOW statement_timeout; SHOW transaction_timeout"),
      s,
    );
    const rows = dataRows(answer);
    this.#blockTimeoutMs = parseDurationMs(rows[0]?.[0] ?? undefined) ?? 0;
    this.#blockTransactionMs = parseDurationMs(rows[1]?.[0] ?? undefined) ?? 0;
    return true;
  }

  /** Outside a block, the values read inside the last one are gone. */
  #forgetOutsideBlock(): void {
    if (this.#session.transactionStatus !== "I") return;
    this.#blockTimeoutMs = null;
    this.#blockTransactionMs = null;
  }

  /**
   * The bound on a wait for the engine: pgts.engine_wait_timeout (the
   * session's, else the server's; 0: Infinity, no bound), and lock_timeout
   * when set.
   */
  waitBoundMs(): number {
    const own = parseDurationMs(this.#session.settings.get("pgts.engine_wait_timeout"));
    const bound = own === null || own < 0
      ? this.#engine.options.engineWaitTimeoutMs
      : own > 0
      ? own
      : Infinity;
    const lock = this.lockTimeoutMs();
    return lock > 0 ? Math.min(bound, lock) : bound;
  }

  /** lock_timeout (0: none). */
  lockTimeoutMs(): number {
    return parseDurationMs(this.#session.settings.get("lock_timeout")) ??
      this.#engine.options.lockTimeoutMs;
  }
}
