/**
 * One client's session on the shared PGlite backend: the `EngineSession` a
 * backend talks to, and its main loop (PostgreSQL's tcop/postgres.c, for a
 * backend that shares its process with every other session).
 *
 * Its share of the backend's state (statements, settings map, channels,
 * unnamed statement...) is `SessionGlobals` (globals.ts), which it extends;
 * here is its transaction status and where it is in its input. For each
 * input it renames (naming.ts), waits for the engine and has it put its
 * settings back (turn.ts, scheduler.ts), runs the bytes and filters the
 * answer (output.ts); it gives the engine back at ReadyForQuery 'I'. Between
 * inputs its timers run (timeout.ts); what stops a statement early is
 * querycancel.ts's; a COPY FROM STDIN is fed across inputs (copyfrom.ts);
 * what it answers without the engine is in answers.ts, deferred.ts and
 * offengine.ts. It needs of its engine only what sessionengine.ts lists. Everything it sends goes through its
 * `AnswerGate` (groupcommit.ts): an answer leaves only once the WAL it
 * depends on is on disk, and `exec` resolves then, after the engine went to
 * the next session. `#changeState` is the only writer of its state.
 *
 * It must never let bytes of its input run while another session owns the
 * engine, never hand its output or notifications to another session, and
 * never leave the engine held or mid-transaction when it fails or closes.
 */

import { ERRCODE, isPgError, PgError } from "../../core/elog.ts";
import type {
  BackendOutput,
  EngineSession,
  ParameterStatusList,
  SessionSsl,
  TransactionStatus,
} from "../../core/engine/types.ts";
import { BE, FE } from "../../core/protocol/constants.ts";
import { clientMinMessagesDefault, statementLogDefaults } from "../../core/log.ts";
import {
  closesAfterSync,
  closesOnly,
  describesOnly,
  flushBeforeExecute,
} from "../../core/protocol/pipeline.ts";
import { SessionActivity } from "./activity.ts";
import { inputStatement, SessionServerLog } from "./serverlog.ts";
import { StatementLog } from "./statementlog.ts";
import {
  aloneOnly,
  databasesNamed,
  inlineExtendedCopy,
  roleInDatabase,
  setsDatabase,
} from "./statementtext.ts";
import {
  adminShutdown,
  closeAllRefused,
  failInput,
  inputFrames,
  lockTimeout,
  queryCanceled,
  roleInOtherDatabaseInBlock,
  SESSION_CLOSED,
  tempTableWarning,
  utilityBatchPrefix,
  waitedOutStatementTimeout,
} from "./answers.ts";
import type { ActivityRow, ClientAddress } from "./backends.ts";
import { type FedCopy, type FedCopyHooks, SessionCopy } from "./copyfrom.ts";
import { DeferredPrepares } from "./deferred.ts";
import { AdvisoryWait, waitsForAdvisoryLock } from "./advisorywait.ts";
import { AnswerGate } from "./groupcommit.ts";
import { type GlobalsInit, SessionGlobals } from "./globals.ts";
import { type InputPlan, planInput } from "./naming.ts";
import { withBackslashStrings } from "./sqlscan.ts";
import { handsOverAfter, isPlain } from "./pipeline.ts";
import { ExecNotRun, type ExecOptions } from "./executor.ts";
import type { Listener } from "./notify.ts";
import { answerForSession, type PreparedOffEngine } from "./offengine.ts";
import { OutputFilter } from "./output.ts";
import { ReportedToClient } from "./paramstatus.ts";
import { SessionOutput } from "./sessionoutput.ts";
import { parseDurationMs } from "./settings.ts";
import { QueryCancel } from "./querycancel.ts";
import { boundedWait, type Holder, type WaitBound, waitBoundOf } from "./scheduler.ts";
import type { SessionEngine } from "./sessionengine.ts";
import type { TextEdits } from "./textedits.ts";
import { SessionTimeouts, type TimedSession } from "./timeout.ts";
import { EngineTurn } from "./turn.ts";
import { shownNames } from "./enginenames.ts";
import { decodeIn, reportInUtf8 } from "./conversions.ts";
import { beginAnswer, endOfPendingBlock, inPendingBlock, isPlainBegin } from "./deferredbegin.ts";
import { wallClockMs } from "./wallclock.ts";
import {
  afterSync,
  concat,
  cstring,
  errorResponse,
  fe,
  type Frame,
  isCopyData,
  noticeResponse,
  readyForQuery,
} from "./wire.ts";

type State = "idle" | "waiting" | "active" | "closed";

/** The messages of the extended protocol that a Sync ends. */
const EXTENDED: ReadonlySet<number> = new Set([
  FE.Parse,
  FE.Bind,
  FE.Describe,
  FE.Execute,
  FE.Close,
]);

/**
 * The first Query that follows extended-protocol messages with no Sync
 * between them, or -1; `open`: such messages came before these frames.
 */
function queryAfterExtended(frames: readonly Frame[], open = false): number {
  let extended = open;
  for (let i = 0; i < frames.length; i++) {
    const t = frames[i]!.type;
    if (t === FE.Query && extended) return i;
    if (t === FE.Sync) extended = false;
    else if (EXTENDED.has(t)) extended = true;
  }
  return -1;
}

/** Whether extended-protocol messages follow the frames' last Sync. */
function endsExtended(frames: readonly Frame[]): boolean {
  for (let i = frames.length - 1; i >= 0; i--) {
    const t = frames[i]!.type;
    if (t === FE.Sync) return false;
    if (EXTENDED.has(t)) return true;
  }
  return false;
}

/** An error on the engine with no other effect: what aborts a block after an error pgts raised. */
const ABORT_BLOCK_SQL = "select 1/0";

export class PgliteSession extends SessionGlobals
  implements EngineSession, Holder, Listener, TimedSession {
  onAsync: ((backend: Uint8Array) => void | Promise<void>) | null = null;
  /** Called once when the engine ends the session itself, after the FATAL went through onAsync. */
  onTerminate: ((reason: PgError) => void) | null = null;

  #engine: SessionEngine<PgliteSession>;
  /** All output to the client, released in order as the WAL it depends on is durable. */
  readonly #output: SessionOutput;
  #status: TransactionStatus = "I";
  /** A BEGIN answered without the engine, not run on it yet (deferredbegin.ts). */
  #beginPending = false;
  /**
   * Named statements prepared without the engine (offengine.ts: pgx's and
   * asyncpg's statement caches prepare `SELECT pg_terminate_backend($1)`
   * by name): the client's name, the statement, and its Parse as the
   * engine gets it, run there before anything else of the session's.
   */
  #preparedOffEngine = new Map<
    string,
    { statement: PreparedOffEngine; parse: Uint8Array; onEngine: string }
  >();
  /** When it was answered (wallclock.ts): the block's transaction starts then. */
  #beginAtMs = 0;
  /** Extended-protocol messages ran since the last Sync (a Query then needs one first: #exec). */
  #extendedOpen = false;
  /** It took the cluster's turn to change roles, and may hold it still (rolesturn.ts). */
  #tookRolesTurn = false;
  #state: State = "idle";
  #chain: Promise<void> = Promise.resolve();
  #skipUntilSync = false;
  /** What its client is told of errors and warnings, in the server log too. */
  readonly #serverLog = new SessionServerLog(() => ({
    pid: this.pid,
    user: this.user,
    database: this.#engine.database,
    applicationName: this.settings.get("application_name") ?? "",
    client: this.client,
  }));
  /** log_statement, log_min_duration_statement, log_duration (statementlog.ts). */
  readonly #statementLog = new StatementLog((fn) => this.#serverLog.as(fn));
  /** The client's input being run, and its frames (the STATEMENT of a logged error); only while it runs. */
  #inputInHand: Uint8Array | null = null;
  #framesInHand: readonly Frame[] = [];
  /** Inputs the client sent that have not started yet. */
  #queued = 0;
  /** What stops its statement early: cancels, statement_timeout, the wait's bound. */
  readonly #cancel: QueryCancel<PgliteSession>;
  readonly #timeouts: SessionTimeouts;
  #terminated: PgError | null = null;
  #closing: Promise<void> | null = null;
  /** Settled when the session has closed (whenClosed). */
  readonly #closed = Promise.withResolvers<void>();
  /** Parse and Close messages answered while the engine was held, to run first (deferred.ts). */
  readonly #deferred = new DeferredPrepares();
  /** Its COPY FROM STDIN across inputs (copyfrom.ts). */
  readonly #copy: SessionCopy;
  /** Its turn on the engine (or the cluster): the wait, its settings, deferred prepares (turn.ts). */
  readonly #turn: EngineTurn<PgliteSession>;
  /** The input names pg_stat_activity (the engine passes its rows with the exec). */
  #readsActivity = false;
  /** The input names an extension (the engine loads the bundles first, once). */
  #needsExtensions = false;
  /** What pg_stat_activity shows of this session. */
  readonly #activity: SessionActivity;
  /** Its client's TCP address (inet_client_addr and the like: clientaddr.ts); null over a Unix socket. */
  readonly client: ClientAddress | null;
  /** What its client was last told of the GUC_REPORT parameters (ParameterStatus). */
  readonly #told: ReportedToClient;
  /**
   * The input in hand may be granted the engine one step ahead, behind
   * another session's running exec (scheduler.ts's takesEarly): it is
   * plain (pipeline.ts) and nothing of its own must run first.
   */
  #early = false;
  /** Why its last exec was taken back before it ran (ExecNotRun), if it was. */
  #withdrawnBy: ExecNotRun["withdrawnBy"] = null;
  /** When the input in hand began to wait for the engine (performance.now()). */
  #waitSince = 0;
  /** What bounded its exec's wait behind another's (ExecOptions.waitMs), and the bound's ms. */
  #waitBound: { readonly by: WaitBound; readonly ms: number } = { by: "engine", ms: 0 };

  constructor(
    engine: SessionEngine<PgliteSession>,
    init: GlobalsInit & {
      /** The client's TCP address, if it has one. */
      client?: ClientAddress;
      /** The connection's TLS, if it has one. */
      ssl?: SessionSsl;
      /** The ParameterStatus messages its login sent. */
      parameterStatus?: ParameterStatusList;
    },
  ) {
    super(init);
    // Kept as given: its port is read (a getpeername) only when asked for.
    this.client = init.client ?? null;
    this.#activity = new SessionActivity(init.client ?? null, init.ssl ?? null);
    this.#told = new ReportedToClient(init.parameterStatus ?? []);
    this.#engine = engine;
    this.#cancel = new QueryCancel<PgliteSession>(this, engine);
    this.#timeouts = new SessionTimeouts(this, engine);
    this.#output = new SessionOutput(new AnswerGate(engine.executor.wal), {
      blocked: () => this.#timeouts.outputBlocked(),
      flowing: () => this.#timeouts.outputFlowing(),
      overflow: (bytes) =>
        this.terminate(
          new PgError(
            ERRCODE.CONNECTION_FAILURE,
            "terminating connection because its client does not read its notifications",
            {
              severity: "FATAL",
              detail: `${bytes} bytes of notifications were waiting for the client.`,
            },
          ),
        ),
    });
    this.#timeouts.armIdle();
    this.#turn = new EngineTurn<PgliteSession>(this, {
      engine,
      waitBoundMs: () => this.#cancel.waitBoundMs(),
      statementTimeoutMs: () => this.#cancel.statementTimeoutMs(),
      lockTimeoutMs: () => this.#cancel.lockTimeoutMs(),
      deferred: this.#deferred,
      timeouts: this.#timeouts,
      stopCopy: () => this.#copy.stop(),
      hooks: {
        changeState: (next) => this.#changeState(next),
        failInput: (frames, err, out) => this.#failInput(frames, err, out),
        giveBack: () => this.#giveBack(),
        lose: (fatal) => {
          this.#terminated = fatal;
          this.#giveBack();
        },
        settle: (atReadyForQuery, out) => this.#settle(atReadyForQuery, out),
        answerPing: (plan, out) => this.#answerPing(plan, out),
      },
    });
    this.#copy = new SessionCopy({
      prefix: this.prefix,
      status: () => this.#status,
      runRaw: (bytes) => engine.runRaw(bytes, this),
      openFeed: () => engine.executor.copyFeed!.open(),
      waitForData: (inBlock) => {
        this.#changeState("idle");
        if (!inBlock) this.#giveBack();
      },
      acquire: (frames, out) => this.#turn.take(frames, out),
      execute: async (bytes, frames, out, drop, fed) => {
        await this.#execute(bytes, frames, out, drop, { fed });
      },
    });
  }

  /**
   * The one writer of #state. Not logged: it changes several times in
   * every statement's path (pgbench -S); the transitions are checked
   * instead: nothing leaves "closed".
   */
  #changeState(next: State): void {
    if (this.#state === "closed") {
      throw new TypeError(`PGlite session cannot go from closed to ${next}`);
    }
    this.#state = next;
  }

  /** Gives the engine back to the next waiter. */
  #giveBack(): void {
    this.owns = false;
    this.#engine.scheduler.release(this);
  }

  /** close() has begun: the session is going (its client left, or it was terminated). */
  get closing(): boolean {
    return this.#closing !== null || this.#terminated !== null;
  }

  /** Between inputs: not waiting for the engine, not running on it, not closed. */
  get idle(): boolean {
    return this.#state === "idle";
  }

  /** Its COPY FROM STDIN in flight, if any (the hold timer watches its data). */
  get fedCopy(): FedCopy | null {
    return this.#copy.fed;
  }

  get transactionStatus(): TransactionStatus {
    return this.#status;
  }

  /** In a transaction block whose BEGIN has not reached the engine yet (deferredbegin.ts). */
  get beginPending(): boolean {
    return this.#beginPending;
  }

  activity(): string {
    if (this.#state === "active") return "running a statement";
    if (this.#status === "T") return "idle in transaction";
    if (this.#status === "E") return "idle in transaction (aborted)";
    return "in an unfinished extended-query batch";
  }

  /**
   * A GUC_REPORT parameter's value as its client was last told it: between
   * inputs, the session's own (DateStyle and TimeZone, for timestamps
   * written without the engine: offengine.ts).
   */
  reportedValue(name: string): string | undefined {
    return this.#told.value(name);
  }

  /** This session's row of pg_stat_activity (before visibility rules). */
  activityRow(): ActivityRow {
    return this.#activity.row({
      pid: this.pid,
      datname: this.#engine.database,
      usesysid: this.userOid,
      applicationName: this.settings.get("application_name") ?? "",
      state: this.#state,
      status: this.#status,
    });
  }

  /** A notification (or notice) for this session's client (sessionoutput.ts bounds what waits). */
  deliverAsync(bytes: Uint8Array): void {
    if (this.#state === "closed") return;
    this.#output.notification(bytes, (b) => {
      if (this.#state === "closed" || this.#terminated !== null) return;
      return this.onAsync?.(b);
    });
  }

  exec(frontend: Uint8Array, out: BackendOutput): Promise<void> {
    this.#queued++;
    const gate = this.#output.gate;
    const gated = this.#output.answers(out);
    const run = this.#chain.then(async () => {
      this.#queued--;
      try {
        await this.#exec(frontend, gated);
      } finally {
        // The engine may already run the next session: this input is
        // answered when the WAL its answer depends on is on disk.
        await gate.drained();
      }
    });
    this.#chain = run.catch(() => {});
    return run;
  }

  /**
   * A CancelRequest acts on what PostgreSQL's backend would be running when
   * it arrives: the input being waited for or run, or, once that input's
   * exec is over, the next input the client already sent (a pipelined
   * query starts at once in PostgreSQL). Never on pgts's own SQL around an
   * exec, and, with nothing sent after the statement it meant, on nothing.
   */
  cancel(): void {
    if (this.#state === "waiting") {
      this.#engine.scheduler.cancelWait(this, queryCanceled());
    } else if (this.#cancel.request(this.#state === "active", this.#queued > 0)) {
      this.#engine.executor.interrupt(this);
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close().finally(() => this.#closed.resolve());
    return this.#closing;
  }

  /** Resolves once the session has closed, without closing it. */
  whenClosed(): Promise<void> {
    return this.#closed.promise;
  }

  async #close(): Promise<void> {
    this.#timeouts.disarm();
    this.#timeouts.transactionEnds();
    this.#terminated ??= SESSION_CLOSED;
    // A statement still waiting or running is ended first: the transaction
    // is rolled back now, not when the statement would have finished.
    this.cancel();
    await this.#copy.abandon();
    await this.#chain;
    this.#changeState("closed");
    await this.#engine.endSession(this);
  }

  /**
   * Ends the session from the engine side (idle timeout, engine failure,
   * another session's pg_terminate_backend). `closeAfterSignaller`: the
   * connection ends at the next turn, after the signalling statement's
   * answer, as a PostgreSQL backend's exit comes milliseconds after its
   * FATAL and after pg_terminate_backend() returned. A client that gives
   * back the connection it killed once that answer comes (Kysely's 'kill
   * session') must not see it end before: node-postgres's pool then has no
   * listener, and the error is uncaught.
   */
  terminate(reason: PgError, options: { closeAfterSignaller?: boolean } = {}): void {
    if (this.#terminated !== null) return;
    this.#terminated = reason;
    this.#timeouts.disarm();
    // After what is held (the FATAL comes last, as it would have), or at
    // once when held answers can never go (a failed WAL fdatasync).
    this.#output.gate.afterDrain(() => {
      this.onAsync?.(errorResponse(reason));
      if (options.closeAfterSignaller === true) setTimeout(() => this.onTerminate?.(reason), 0);
      else this.onTerminate?.(reason);
    });
    void this.close();
  }

  /** Another session started to wait for the engine this one holds (scheduler.ts). */
  waitedFor(): void {
    this.#timeouts.waitedFor();
  }

  /** Granted the engine now, it would go straight to its exec (scheduler.ts). */
  takesEarly(): boolean {
    return this.#early && this.#state === "waiting" && this.#engine.carriesSettingsOf(this);
  }

  /** Marks the transaction status after the engine rolled this session back. */
  resetStatus(): void {
    this.#status = "I";
  }

  async #failInput(
    frames: readonly Frame[],
    err: PgError,
    out: (b: Uint8Array) => void,
  ): Promise<void> {
    // pgts's own errors (a statement refused, a wait ended) reach the server log as the engine's do.
    this.#logReport(errorResponse(err), this.#inputInHand, this.#framesInHand, true);
    // An error inside a transaction block aborts the block, as in
    // PostgreSQL: its statements until ROLLBACK fail with 25P02, and its
    // COMMIT rolls back. The engine's transaction is aborted too by an
    // error of its own, whose answer nobody sees.
    if (this.#status === "T" && this.owns) {
      const answer = await this.#engine.runRaw(fe.query(ABORT_BLOCK_SQL), this);
      if (answer.length > 0 && answer[answer.length - 1] === "E".charCodeAt(0)) this.#status = "E";
    } else if (this.#status === "T" && this.#beginPending) {
      this.#status = "E";
    }
    this.#skipUntilSync = failInput(frames, err, { status: this.#status, out });
  }

  /**
   * An input answered without the engine did to the unnamed statement what
   * the engine would have (a Parse makes it this text, a Query drops it),
   * and the engine's is not this session's any more.
   */
  #unnamedAnsweredHere(plan: InputPlan): void {
    this.noteUnnamed(plan);
    if (this.#engine.unnamedOwner === this) this.#engine.unnamedOwner = null;
  }

  /**
   * Runs the block's BEGIN, answered before (deferredbegin.ts), on the
   * engine the session has just taken, and aborts the block there too when
   * an error aborted it meanwhile; false when the engine failed (the input
   * was answered so).
   */
  async #runPendingBegin(frames: readonly Frame[], out: (b: Uint8Array) => void): Promise<boolean> {
    this.#beginPending = false;
    try {
      await this.#engine.runRaw(fe.query("BEGIN"), this, undefined, {
        clockAtMs: this.#beginAtMs,
      });
      if (this.#status === "E") await this.#engine.runRaw(fe.query(ABORT_BLOCK_SQL), this);
    } catch (e) {
      await this.#engineFailure(e, frames, out, 0);
      return false;
    }
    return true;
  }

  /**
   * Parses the statements prepared without the engine (#preparedOffEngine)
   * on the engine the session has just taken, before its block's BEGIN (a
   * prepared statement belongs to no transaction); false when the engine
   * failed (the input was answered so).
   */
  async #prepareOnEngine(frames: readonly Frame[], out: (b: Uint8Array) => void): Promise<boolean> {
    const pending = [...this.#preparedOffEngine.values()];
    this.#preparedOffEngine.clear();
    try {
      await this.#engine.runRaw(concat([...pending.map((p) => p.parse), fe.sync()]), this);
    } catch (e) {
      await this.#engineFailure(e, frames, out, 0);
      return false;
    }
    for (const p of pending) this.statements.add(p.onEngine);
    return true;
  }

  /**
   * A pool's `SELECT 1` that waited turn.ts's PING_WAIT_MS for another
   * session's statement or transaction: answered without the engine
   * (offengine.ts), as every PostgreSQL backend answers its own; false
   * (nothing sent) when it cannot be, and it waits on.
   */
  async #answerPing(plan: InputPlan, out: (b: Uint8Array) => void): Promise<boolean> {
    if (this.#deferred.pending || this.#preparedOffEngine.size > 0 || !this.#utf8Client()) {
      return false;
    }
    const answered = await answerForSession(this, this.#engine, {
      input: plan.bytes,
      frames: plan.frames,
      plan,
      out,
      constants: true,
    });
    if (!answered) return false;
    this.#changeState("idle");
    this.#activity.noteStateChange();
    this.#timeouts.armIdle();
    return true;
  }

  async #exec(input: Uint8Array, out: (b: Uint8Array) => void): Promise<void> {
    if (this.#terminated !== null) throw this.#terminated;
    // A fed COPY's data goes to its exec in flight (copyfrom.ts).
    const rest = await this.#copy.feed(input, out);
    if (rest === null) return;
    input = rest;
    this.#cancel.startInput();
    let frames = inputFrames(input);
    // After an error pgts raised itself in an extended batch, the rest of
    // the batch is skipped up to Sync, as PostgreSQL skips after an error.
    if (this.#skipUntilSync) {
      const rest = afterSync(input, frames);
      if (rest === null) return;
      this.#skipUntilSync = false;
      out(readyForQuery(this.#status));
      if (rest.frames.length === 0) return;
      ({ input, frames } = rest);
    }
    // An inline COPY's data is kept, and the COPY runs at its end.
    const after = await this.#copy.collect(input, frames, out);
    if (after === null) return;
    ({ input, frames } = after);
    // A Query sent with the copy data behind it, before the CopyInResponse
    // (asyncpg's copy_records_to_table does so), or an extended batch that
    // executes a COPY: the statement is an input of its own, then the data
    // reaches the COPY it started, as later data would.
    const data = frames.findIndex((f) => isCopyData(f.type));
    if (
      data > 0 &&
      (frames[0]!.type === FE.Query
        ? data === 1
        : frames.slice(0, data).some((f) => f.type === FE.Execute))
    ) {
      await this.#run(input.subarray(0, frames[data]!.start), frames.slice(0, data), out);
      return await this.#exec(input.subarray(frames[data]!.start), out);
    }
    const x = frames.findIndex((f) => f.type === FE.Terminate);
    if (x >= 0) {
      if (x > 0) await this.#run(input.subarray(0, frames[x]!.start), frames.slice(0, x), out);
      // close() waits for this exec to finish: start it, do not await it here.
      void this.close();
      return;
    }
    // A Query after extended-protocol messages with no Sync between:
    // PostgreSQL runs it in the implicit transaction of the messages
    // before it, but PGlite answered it with ReadyForQuery 'T' and left its
    // transaction state broken (the rows were lost, and the next exec,
    // whoever's, failed with XX000 "StartTransactionCommand: unexpected
    // state STARTED"). So the messages before it run first, ended by a
    // Sync of pgts's own whose ReadyForQuery the client never sees, then
    // the Query, skipped if they failed, as PostgreSQL skips to Sync.
    // The same when the messages came in an input before (ended by a Flush).
    if (this.#extendedOpen && this.owns && queryAfterExtended(frames, true) >= 0) {
      const sync = fe.sync();
      await this.#run(sync, inputFrames(sync), out, true);
    }
    // A Flush with an Execute after it: what came before the Flush is
    // answered before the Execute runs (core/protocol/pipeline.ts).
    const cut = flushBeforeExecute(input);
    if (cut >= 0) {
      const end = frames.findIndex((f) => f.start === cut);
      await this.#run(input.subarray(0, cut), frames.slice(0, end), out);
      return await this.#exec(input.subarray(cut), out);
    }
    const q = queryAfterExtended(frames);
    if (q >= 0) {
      const s = frames.findLastIndex((f, i) => i < q && f.type === FE.Sync);
      const end = s >= 0 ? s + 1 : q;
      await this.#run(input.subarray(0, frames[end]!.start), frames.slice(0, end), out, s < 0);
      return await this.#exec(input.subarray(frames[end]!.start), out);
    }
    // Close messages after the input's last Sync (pg-cursor's close of a
    // failed cursor, with no Sync after it): the batch ends at its Sync,
    // and the Closes are an input of their own, which holds the engine no
    // longer than it runs (closesOnly).
    const closes = closesAfterSync(frames);
    if (closes > 0) {
      await this.#run(input.subarray(0, frames[closes]!.start), frames.slice(0, closes), out);
      return await this.#exec(input.subarray(frames[closes]!.start), out);
    }
    await this.#run(input, frames, out);
  }

  /** `endSync`: see #runInput. */
  async #run(
    input: Uint8Array,
    frames: Frame[],
    out: (b: Uint8Array) => void,
    endSync = false,
  ): Promise<void> {
    this.#inputInHand = input;
    this.#framesInHand = frames;
    // log_statement's lines now; log_duration's once the answer is out.
    const log = this.#statementLog.begin(input, frames, this.settings);
    const started = performance.now();
    const version = this.settingsVersion;
    try {
      await this.#runInput(input, frames, log === null ? out : log.watch(out), endSync);
    } finally {
      const changed = this.settingsVersion !== version;
      if (log !== null) log.end(this.settings);
      else if (changed) {
        // A SET that turned duration logging on is timed by it.
        this.#statementLog.afterSet(input, frames, performance.now() - started, this.settings);
      }
      // %a follows a SET application_name in what is logged next.
      if (changed) this.#serverLog.followSettings();
      this.#extendedOpen = frames.some((f) => f.type === FE.Sync)
        ? endsExtended(frames)
        : this.#extendedOpen || endsExtended(frames);
      // Not kept past its input: it may be a large one.
      this.#inputInHand = null;
      this.#framesInHand = [];
      // Out of a transaction with no change of roles left to copy: the
      // cluster's turn to change roles, if it took it, goes on (rolesturn.ts).
      if (this.#tookRolesTurn && this.#status === "I" && !this.rolesDirty) {
        this.#tookRolesTurn = false;
        this.#engine.rolesTurnDone(this);
      }
    }
  }

  /** `endSync`: the input ends with a Sync of pgts's own, whose ReadyForQuery is not the client's. */
  async #runInput(
    input: Uint8Array,
    frames: Frame[],
    out: (b: Uint8Array) => void,
    endSync = false,
  ): Promise<void> {
    const engine = this.#engine;
    this.#activity.noteQuery(input, frames, this.#status, this.#told.value("client_encoding"));
    this.noteBackup(input);
    // With standard_conforming_strings off, 'a\'…' is one string: a name
    // inside it is no statement's to rename.
    const plan = withBackslashStrings(
      this.settings.get("standard_conforming_strings") === "off",
      () =>
        planInput(input, frames, this.prefix, {
          user: this.user,
          effects: this.statementEffects,
          holdCursors: this.holdCursors,
          copyIn: this.copyIn,
        }),
    );
    this.#readsActivity = plan.readsActivity;
    this.#needsExtensions = plan.needsExtensions;
    // CLOSE ALL in the one backend would close every session's WITH HOLD cursors.
    const reject = plan.reject ??
      (plan.closesAll && engine.holdCursorsOfOthers(this) > 0 ? closeAllRefused() : null) ??
      ((plan.extendedCopy || plan.copyAmongOthers) && (engine.executor.copyFeed ?? null) === null
        ? (plan.extendedCopy ? inlineExtendedCopy() : aloneOnly("COPY FROM STDIN"))
        : null);
    if (reject !== null) {
      await this.#failInput(frames, reject, out);
      return;
    }
    this.noteHoldCursors(plan);
    // A lone BEGIN is answered at once, and so is the COMMIT or ROLLBACK of
    // a block that has not reached the engine since (deferredbegin.ts).
    if (this.#beginPending) {
      const end = endOfPendingBlock(input, frames, this.#status === "E" ? "E" : "T");
      if (end !== null) {
        this.#beginPending = false;
        this.#status = "I";
        this.#timeouts.disarm();
        this.#timeouts.transactionEnds();
        this.#unnamedAnsweredHere(plan);
        out(end);
        this.#activity.noteStateChange();
        this.#timeouts.armIdle();
        return;
      }
    } else if (
      this.#status === "I" && !this.owns && !this.#extendedOpen &&
      !this.#deferred.pending && !this.#cancel.pending && isPlainBegin(input, frames)
    ) {
      this.#beginPending = true;
      this.#beginAtMs = wallClockMs();
      // The transaction begins here: transaction_timeout counts from now.
      this.#timeouts.transactionBegins(this.#cancel.transactionTimeoutMs());
      this.#status = "T";
      this.#timeouts.disarm();
      this.#activity.noteTransactionStart();
      this.#unnamedAnsweredHere(plan);
      out(beginAnswer(input, frames));
      this.#activity.noteStateChange();
      this.#timeouts.armIdle();
      return;
    }
    // ALTER DATABASE of its own database SET or RESET inside a block runs
    // in the engine, in the block, as PostgreSQL runs it: the values are
    // that engine's (pg_db_role_setting), read again after the block.
    if (
      plan.databaseCommand !== null && engine.cluster !== null &&
      !(this.#status === "T" && setsDatabase(plan.databaseCommand) === engine.database)
    ) {
      await this.#turn.databaseCommand(plan.databaseCommand, input, frames, out);
      return;
    }
    // A GRANT, REVOKE or COMMENT on another database, or ALTER ROLE … IN
    // DATABASE another: that database's engine keeps its privileges, its
    // comment and its roles' settings (dbcommands.ts). In a transaction
    // block it stays here, and the engine refuses a GRANT
    // (databasegrants.ts).
    if (
      plan.databaseGrant !== null && engine.cluster !== null &&
      databasesNamed(plan.databaseGrant)?.some((d) => d !== engine.database) === true
    ) {
      if (this.#status === "I") {
        await this.#turn.databaseCommand(plan.databaseGrant, input, frames, out);
        return;
      }
      // In a block, a role's setting for another database would be stored
      // where no login to that database reads it.
      const other = this.#status === "T" ? roleInDatabase(plan.databaseGrant) : null;
      if (other !== null) {
        await this.#failInput(frames, roleInOtherDatabaseInBlock(other.name), out);
        return;
      }
    }
    // DROP ROLE of a role with objects or privileges in another database:
    // refused, as PostgreSQL's one pg_shdepend refuses it (pg_shdepend.ts).
    if (plan.droppedRoles.length > 0 && engine.cluster !== null && this.#status !== "E") {
      const refused = await engine.dropRoleRefusal(plan.droppedRoles, !this.owns).catch((
        e: unknown,
      ) =>
        isPgError(e)
          ? e
          : new PgError(ERRCODE.INTERNAL_ERROR, e instanceof Error ? e.message : String(e))
      );
      if (refused !== null) {
        await this.#failInput(frames, refused, out);
        return;
      }
    }
    this.#timeouts.disarm();
    if (!this.owns && frames.every((f) => f.type === FE.Sync || f.type === FE.Flush)) {
      // Nothing pending: a Sync needs no engine, only a ReadyForQuery.
      for (const f of frames) if (f.type === FE.Sync) out(readyForQuery(this.#status));
      this.#timeouts.armIdle();
      return;
    }
    // While another session holds the engine, or in a block that has not
    // reached the engine yet, what reads only pgts's own tables
    // (pg_cancel_backend of that session, say) is answered at once
    // (offengine.ts), in UTF-8: not to a client of another client_encoding.
    if (
      (plan.offEngine || (this.#preparedOffEngine.size > 0 && frames[0]?.type === FE.Bind)) &&
      !this.owns &&
      (this.#status === "I" && engine.scheduler.owner !== null ||
        this.#status === "T" && this.#beginPending) &&
      !this.#deferred.pending && !this.#cancel.pending &&
      this.#utf8Client() &&
      (await answerForSession(this, engine, {
        input,
        frames,
        plan,
        prepared: {
          lookup: (name) => this.#preparedOffEngine.get(name)?.statement,
          mayPrepare: (name) =>
            !this.#preparedOffEngine.has(name) && plan.createdStatements.length === 1 &&
            !this.statements.has(plan.createdStatements[0]!),
          note: (name, statement) => {
            const parse = plan.frames.find((f) => f.type === FE.Parse)!;
            this.#preparedOffEngine.set(name, {
              statement,
              parse: plan.bytes.slice(parse.start, parse.end),
              onEngine: plan.createdStatements[0]!,
            });
          },
        },
        // Its errors (42501 for another's pg_cancel_backend, say) are logged as the engine's are.
        out: (b) => {
          if (b[0] === BE.ErrorResponse) this.#logReport(b, input, frames);
          if (this.#beginPending) {
            // In the block: an error aborts it, as PostgreSQL's would.
            const answer = inPendingBlock(b, this.#status === "E");
            if (answer.failed) this.#status = "E";
            b = answer.bytes;
          }
          out(b);
        },
      }))
    ) {
      this.#activity.noteStateChange();
      this.#timeouts.armIdle();
      return;
    }
    // Parse and Describe up to a Flush, or Close messages alone, from idle:
    // run with a Sync of pgts's own, whose ReadyForQuery the client never
    // sees, so that the engine is not held while the client decides what to
    // bind, or until its next query (core/protocol/pipeline.ts). An error
    // there skips the client's messages to its own Sync, as PostgreSQL does.
    const ownSync = endSync ||
      !this.owns && this.#status === "I" && (describesOnly(frames) || closesOnly(frames)) &&
        isPlain(plan) && !this.#deferred.pending;
    // Owning already (a transaction block) needs no wait and no switch.
    this.#early = engine.executor.pipelines && this.#status === "I" && !this.owns &&
      isPlain(plan) && !this.#deferred.pending && this.#preparedOffEngine.size === 0;
    this.#waitSince = performance.now();
    // A statement that changes roles runs in the cluster's turn for them,
    // after every earlier change (rolesturn.ts).
    if (plan.rolesDirty && engine.cluster !== null && this.#status !== "E") {
      const refused = await engine.takeRolesTurn(this, this.owns);
      this.#tookRolesTurn ||= refused === null;
      if (refused !== null) {
        await this.#failInput(frames, refused, out);
        return;
      }
    }
    // A role another database's session made or changed is this engine's
    // too before the next statement runs here, as in PostgreSQL.
    // (No longer than a wait for the engine may be: past it, the input
    // goes on to its own wait, bounded from the same start.)
    const arriving = this.owns ? null : engine.rolesArriving();
    if (arriving !== null) await boundedWait(arriving, engine.options.engineWaitTimeoutMs);
    if (!(await this.#turn.take(frames, out, plan))) return;
    if (this.#preparedOffEngine.size > 0 && !(await this.#prepareOnEngine(frames, out))) return;
    if (this.#beginPending && !(await this.#runPendingBegin(frames, out))) return;
    if (this.#deferred.pending && !(await this.#turn.runDeferred(frames, out))) return;
    if (plan.settingsDirty) this.#cancel.inputSets = true;
    this.noteInput(plan, engine);
    if (plan.createsTempObject && engine.tempShared !== null && this.#clientGets("WARNING")) {
      out(noticeResponse(tempTableWarning()));
    }
    // What PostgreSQL's scanner says of a name it truncates, for the names
    // the engine sees short (pgts renamed them).
    if (plan.truncatedNames.length > 0 && this.#clientGets("NOTICE")) {
      for (const [written, kept] of plan.truncatedNames) {
        out(noticeResponse(
          new PgError(
            ERRCODE.NAME_TOO_LONG,
            `identifier "${written}" will be truncated to "${kept}"`,
            { severity: "NOTICE" },
          ),
        ));
      }
    }

    // In a failed transaction, or DISCARD ALL in any transaction, the engine
    // itself answers with the right error; only the rest is done here.
    const special = plan.special === "deallocate all"
      ? this.#status !== "E"
      : plan.special === "discard all" && this.#status === "I";
    if (special && plan.special !== null) {
      this.#statementLog.forgetAll();
      const told = this.#told.before(out, () => this.#engine.reportedValues);
      // Alone in an extended batch: its Parse, Bind and Describe answered first.
      const prefix = utilityBatchPrefix(plan.bytes, plan.frames);
      if (prefix !== null) out(prefix);
      await this.#settle(await engine.runSpecial(this, plan.special, told), out);
      return;
    }

    // COPY FROM STDIN is fed to the engine as it arrives (copyfrom.ts)
    // where the engine runs in a Worker; inline, it is buffered until
    // CopyDone. In a failed transaction a lone COPY fails before it reads
    // anything; beside other statements (a ROLLBACK first) it may not.
    const fedCopy = plan.copyFromStdin && (this.#status !== "E" || plan.copyAmongOthers) &&
      (engine.executor.copyFeed ?? null) !== null;
    if (plan.copyFromStdin && this.#status !== "E" && !fedCopy) {
      try {
        if (await this.#copy.startInline(plan.bytes, out)) return;
      } catch (e) {
        await this.#engineFailure(e, frames, out, 0);
        return;
      }
    }

    if (fedCopy) {
      // With this session's unnamed statement put back if another's replaced it (globals.ts).
      const { bytes } = this.withOwnUnnamed(plan, engine);
      await this.#copy.startFed(bytes, frames, out, plan.extendedCopy);
      return;
    }
    // A lone pg_advisory_lock() outside a block waits for the lock, tried
    // again without holding the engine between tries (advisorywait.ts).
    const lockWait = this.#status === "I" && waitsForAdvisoryLock(plan)
      ? new AdvisoryWait(engine, this.pid, {
        statementTimeoutMs: await this.#cancel.statementTimeoutMs(),
        lockTimeoutMs: this.#cancel.lockTimeoutMs(),
        deadlockTimeoutMs: parseDurationMs(this.settings.get("deadlock_timeout")) ?? 1000,
      })
      : null;
    const handsOver = engine.executor.pipelines && isPlain(plan) && lockWait === null &&
      handsOverAfter(plan, frames, this.#status) && !engine.hasWorkAfterTransaction(this);
    for (;;) {
      const unnamed = this.unnamedParse;
      const { bytes, drop } = this.withOwnUnnamed(plan, engine);
      const run = ownSync ? concat([bytes, fe.sync()]) : bytes;
      const to = lockWait?.output ?? out;
      const how = {
        handsOver,
        ownSync,
        advisoryWait: lockWait !== null,
        edits: plan.edits,
        resetTags: plan.resetTags,
      };
      if (await this.#execute(run, frames, to, drop, how)) {
        if (lockWait === null || !lockWait.again(out, () => this.closing)) return;
        // The key is another session's: the engine went back at the try's
        // ReadyForQuery; the input is still in hand, and a cancel from now
        // on is for it.
        this.#timeouts.disarm();
        this.#changeState("active");
        this.#cancel.notRun();
        await lockWait.pause();
        this.#waitSince = performance.now();
        if (!(await this.#turn.take(frames, out, plan))) return;
        continue;
      }
      // Granted one step ahead, and the exec before it did not end idle, or
      // a cancel or its wait bound took it back while it waited behind that
      // one (workerexecutor.ts): nothing ran. What it noted of the unnamed
      // statement is undone. A client's cancel is answered now, as one that
      // came before its exec began (with nothing of its own left to run on
      // the engine), and so is the timeout; else it waits for the engine
      // again, first in line.
      this.unnamedParse = unnamed;
      if (engine.unnamedOwner === this) engine.unnamedOwner = null;
      const timedOut = this.#withdrawnBy === "wait timeout";
      this.#withdrawnBy = null;
      if (
        !engine.hasWorkAfterTransaction(this) &&
        (timedOut || this.#cancel.beginExec(frames, drop))
      ) {
        this.#early = false;
        await this.#failInput(frames, timedOut ? this.#waitedOut() : queryCanceled(), out);
        await this.#settle(true, out);
        return;
      }
      this.owns = false;
      this.#early = false;
      if (!(await this.#turn.take(frames, out, plan, true))) return;
    }
  }

  /**
   * How long the input's exec may wait behind another session's running
   * exec (ExecOptions.waitMs): what is left, since the input began to wait
   * for the engine, of its statement_timeout (`statementMs`) and of its
   * wait bound (`boundMs`: lock_timeout or pgts.engine_wait_timeout), as
   * the scheduler's line bounds a wait (turn.ts). Which one it is is kept
   * for the error (#waitedOut).
   */
  #waitLeftMs(statementMs: number, boundMs: number): number {
    this.#waitBound = waitBoundOf(boundMs, this.#cancel.lockTimeoutMs(), statementMs);
    const { ms } = this.#waitBound;
    if (!(ms > 0 && Number.isFinite(ms))) return 0;
    return Math.max(1, ms - (performance.now() - this.#waitSince));
  }

  /** The error of an input whose exec waited behind another's for its bound (#waitLeftMs). */
  #waitedOut(): PgError {
    const { by, ms } = this.#waitBound;
    if (by === "statement") return waitedOutStatementTimeout();
    // The session whose exec it waited behind, which runs on.
    return this.#engine.scheduler.waitTimeoutError(ms, by, this.#engine.scheduler.handedBy);
  }

  /**
   * Whether this session's client is sent a NOTICE or WARNING that pgts
   * reports itself: client_min_messages as the session has it (its SET,
   * its startup packet, ALTER ROLE/DATABASE … SET), else as the server does.
   */
  #clientGets(severity: "NOTICE" | "WARNING"): boolean {
    const level = (this.settings.get("client_min_messages") ?? clientMinMessagesDefault())
      .toLowerCase();
    if (level === "error") return false;
    return severity === "WARNING" || level !== "warning";
  }

  #logReport(
    msg: Uint8Array,
    input: Uint8Array | null,
    frames: readonly Frame[],
    /** `msg` is pgts's own, in UTF-8 whatever the client's encoding. */
    ownMessage = false,
  ): void {
    // The log is UTF-8, the server's encoding: what the engine wrote in a
    // client's other encoding is read as that.
    const encoding = this.#utf8Client() ? null : this.#told.value("client_encoding")!;
    this.#serverLog.report(
      encoding === null || ownMessage ? msg : reportInUtf8(msg, encoding),
      () => this.#statementOf(input, frames, encoding),
      this.settings.get("log_min_error_statement") ?? statementLogDefaults().minErrorStatement,
      this.settings.get("log_error_verbosity"),
    );
  }

  /**
   * The statement an error of an input is logged with: its Query's or
   * Parse's text, else (a Bind of a statement prepared before) the last one
   * the session sent.
   */
  #statementOf(
    input: Uint8Array | null,
    frames: readonly Frame[],
    encoding: string | null = null,
  ): string {
    const text = input === null ? "" : inputStatement(input, frames);
    if (text === "") return this.#activity.lastQuery();
    // A client of another encoding: readCString's escapes of its bytes, given back and read so.
    return encoding === null ? text : decodeIn(encoding, cstring(text).subarray(0, -1));
  }

  /** Whether the client reads UTF-8 (client_encoding UTF8, or SQL_ASCII, which converts nothing). */
  #utf8Client(): boolean {
    const encoding = this.#told.value("client_encoding");
    return encoding === undefined || encoding === "UTF8" || encoding === "SQL_ASCII";
  }

  /**
   * Runs bytes on the engine (owned) and settles ownership afterwards.
   * False when the exec did not run (ExecNotRun: granted one step ahead,
   * and the exec before did not end idle); the caller waits and tries again.
   */
  async #execute(
    bytes: Uint8Array,
    frames: readonly Frame[],
    out: BackendOutput,
    drop: number,
    how: {
      readonly fed?: FedCopyHooks | undefined;
      /** It may hand the engine on as soon as it runs (pipeline.ts). */
      readonly handsOver?: boolean;
      /** The input ends with a Sync of pgts's own (describesOnly). */
      readonly ownSync?: boolean;
      /** A lone pg_advisory_lock() that waits (advisorywait.ts). */
      readonly advisoryWait?: boolean;
      /** The input's rewritten SQL text, for error positions. */
      readonly edits?: TextEdits | null;
      /** CommandCompletes whose tag is RESET (naming.ts). */
      readonly resetTags?: readonly number[];
    } = {},
  ): Promise<boolean> {
    const { fed, handsOver = false, ownSync = false } = how;
    const engine = this.#engine;
    // statement_timeout: PostgreSQL's own timer is off in PGlite (it would
    // fire between other sessions' statements); the executor cancels the
    // exec once its statement has run this long (by Postgres's own
    // reckoning, statementtimer.ts), and its 57014 says why.
    const timeoutMs = await this.#cancel.statementTimeoutMs();
    // From idle, the exec begins a transaction: transaction_timeout's timer.
    if (this.#status === "I") this.#timeouts.transactionBegins(this.#cancel.transactionTimeoutMs());
    // A cancel that came before it runs ends it now (querycancel.ts).
    if (this.#cancel.beginExec(frames, drop)) {
      await this.#failInput(frames, queryCanceled(), out);
      await this.#settle(true, out);
      return true;
    }
    let lockWaited = 0;
    const edits = how.edits ?? null;
    // The input whose statement a logged error names, as it is now: an
    // answer may still come once the next input is in hand.
    const input = this.#inputInHand;
    const inputFrames = this.#framesInHand;
    const filter = new OutputFilter({
      prefix: this.prefix,
      onReport: (msg) => this.#logReport(msg, input, inputFrames),
      position: edits === null ? undefined : (p) => edits.original(p),
      ...(how.resetTags !== undefined && how.resetTags.length > 0
        ? { resetTags: how.resetTags }
        : {}),
      out,
      notify: (msg) => engine.listeners.route(msg, this),
      dropFirst: drop,
      timedOut: () => timeoutMs > 0 && !this.#cancel.byClient,
      lockTimedOut: () => (lockWaited === 0 ? null : errorResponse(lockTimeout(lockWaited))),
      ...(fed !== undefined ? { onCopyIn: fed.onCopyIn, onStatementEnd: fed.onStatementEnd } : {}),
      beforeReadyForQuery: () => this.#told.changes(engine.reportedValues),
      holdReadyForQuery: ownSync,
    });
    const backends = engine.backendsForExec();
    // A wait for a prepared transaction's lock ends after this long (lockwait.ts).
    const lockWaitMs = this.#cancel.waitBoundMs();
    let reported: ParameterStatusList | null = null;
    try {
      // Assigned, not spread from conditional literals: once per statement.
      const options: { -readonly [K in keyof ExecOptions]: ExecOptions[K] } = {
        lockWaitMs,
        onLockTimeout: () => (lockWaited = lockWaitMs),
        runAs: this.userOid,
        pid: this.pid,
        timeoutMs: timeoutMs > 0 ? timeoutMs : 0,
        owner: this,
      };
      if (backends !== undefined) options.backends = backends;
      if (this.#readsActivity) {
        options.activity = engine.activityRows();
        options.channels = [...this.listens];
        options.names = shownNames(this.prefix, this.writtenTexts.values());
      }
      if (engine.loadExtensionsFor(this.#needsExtensions)) options.loadExtensions = true;
      if (fed !== undefined) options.feed = true;
      if (this.#early) {
        options.conditional = true;
        options.waitMs = this.#waitLeftMs(timeoutMs, lockWaitMs);
      }
      if (handsOver) options.handsOver = true;
      if (how.advisoryWait === true) options.advisoryWait = true;
      const running = engine.exec(bytes, (c) => filter.push(c), options, this);
      if (this.#cancel.running()) engine.executor.interrupt(this);
      const { gucs } = await running;
      if (gucs !== null) {
        // Changed however it was spelled (a function's set_config): the
        // map is read back, and the next session switched from it.
        this.settingsDirty = true;
        this.settingsFromStartup = false;
        reported = gucs.reported;
        // A custom setting a function set: read back with the map from now on.
        if (gucs.custom !== undefined) this.noteCustomMade(gucs.custom, engine, true);
      }
    } catch (e) {
      if (e instanceof ExecNotRun) {
        this.#cancel.notRun();
        this.#withdrawnBy = e.withdrawnBy;
        return false;
      }
      this.#cancel.endExec();
      await this.#engineFailure(e, frames, out, filter.zCount);
      return true;
    }
    this.#cancel.endExec();
    if (filter.lastStatus !== null) {
      if (this.#status === "I" && filter.lastStatus !== "I") this.#activity.noteTransactionStart();
      this.#status = filter.lastStatus;
    }
    this.#activity.noteStateChange();
    this.#cancel.afterExec(filter);
    // Its last ReadyForQuery went before the change was known (a streamed
    // answer): the client is told just after it, as of a change between
    // commands.
    const late = filter.terminatedSelf ? null : this.#told.changes(reported);
    if (late !== null) out(late);
    // The LISTENs of a transaction that rolled back are not applied; those
    // of one that committed are, without what its ROLLBACK TOs undid (notify.ts).
    if (filter.rolledBack && filter.lastStatus === "I") this.pendingListenSpoiled = true;
    if (ownSync && filter.sawError) this.#skipUntilSync = true;
    if (filter.sawParameterStatus) {
      this.settingsDirty = true;
      this.settingsFromStartup = false;
    }
    await this.#settle(filter.endsWithZ && !filter.copyIn, out);
    if (filter.terminatedSelf) {
      // pg_terminate_backend(pg_backend_pid()): the statement's answer was
      // held back; the input ends in the FATAL (the caller sends it and
      // closes the session, which rolls back what is open).
      this.#timeouts.disarm();
      this.#terminated = adminShutdown();
      throw this.#terminated;
    }
    return true;
  }

  /** After an input ran: give the engine back at ReadyForQuery 'I', or keep it and start the idle timer. */
  async #settle(atReadyForQuery: boolean, out: (b: Uint8Array) => void): Promise<void> {
    if (atReadyForQuery && this.#status === "I") {
      // The transaction is over, and its portals with it.
      this.#timeouts.transactionEnds();
      if (this.copyIn.portals.size > 0) this.copyIn.portals.clear();
      try {
        if (this.#engine.hasWorkAfterTransaction(this)) await this.#engine.afterTransaction(this);
        else this.pendingListenSpoiled = false;
      } catch (e) {
        await this.#engineFailure(e, [], out, 0);
        return;
      }
      this.#changeState("idle");
      this.#giveBack();
      this.#timeouts.armIdle();
      return;
    }
    // A SET in the block may have set transaction_timeout (its assign hook
    // starts the timer).
    if (
      atReadyForQuery && this.#cancel.blockTimeoutsStale &&
      (await this.#cancel.readBlockTimeouts())
    ) {
      this.#timeouts.transactionTimeoutSet(this.#cancel.transactionTimeoutMs());
    }
    this.#changeState("idle");
    this.#timeouts.armIdle();
  }

  /** PGlite threw (not an SQL error): the turn ends (turn.ts). */
  #engineFailure(
    e: unknown,
    frames: readonly Frame[],
    out: (b: Uint8Array) => void,
    answered: number,
  ): Promise<void> {
    return this.#turn.failed(e, frames, out, answered);
  }
}
