/**
 * One client's session on the shared PGlite backend: the `EngineSession` a
 * backend talks to.
 *
 * It owns the session's private state that the one backend cannot keep
 * apart: its statement-name prefix and statements, its settings map, its
 * LISTEN channels, its saved unnamed statement, its transaction status. For
 * each input it renames (naming.ts), waits for the engine (scheduler.ts),
 * has the engine put its settings back (engine.ts), runs the bytes and
 * filters the answer (output.ts); it gives the engine back at
 * ReadyForQuery 'I'. While it holds the engine idle, the
 * idle-in-transaction timer runs. Everything it sends goes through its
 * `AnswerGate` (groupcommit.ts): an answer leaves only once the WAL it
 * depends on is on disk, and `exec` resolves then, after the engine went to
 * the next session.
 *
 * It must never let bytes of its input run while another session owns the
 * engine, never hand its output or notifications to another session, and
 * never leave the engine held or mid-transaction when it fails or closes.
 */

import { ERRCODE, isPgError, PgError } from "../../core/elog.ts";
import { parseErrorResponse, pgErrorFromFields } from "../../core/protocol/backend-reader.ts";
import type { BackendOutput, EngineSession, TransactionStatus } from "../../core/engine/types.ts";
import { type InputPlan, planInput, publicText, type StatementEffects } from "./naming.ts";
import type { ListenOp } from "./naming.ts";
import type { Listener } from "./notify.ts";
import { OutputFilter } from "./output.ts";
import { AnswerGate } from "./groupcommit.ts";
import type { Holder } from "./scheduler.ts";
import { parseDurationMs, type SettingsMap } from "./settings.ts";
import {
  concat,
  dataRows,
  errorResponse,
  fe,
  type Frame,
  message,
  noticeResponse,
  readInt32,
  readyForQuery,
  splitFrames,
} from "./wire.ts";
import type { PgliteEngine } from "./engine.ts";
import type { ActivityRow } from "./backends.ts";
import { NO_TEMP, type TempPair } from "./tempnamespace.ts";
import { answerWithoutEngine } from "./offengine.ts";
import type { CopyFeedWriter } from "./copyfeed.ts";

const SYNC = 0x53;
const QUERY = 0x51;
const FLUSH = 0x48;
const TERMINATE = 0x58;
const PARSE = 0x50;
const CLOSE = 0x43;
const PARSE_COMPLETE = 0x31;
const BIND = 0x42;
const BIND_COMPLETE = 0x32;
const NO_DATA = 0x6e;
const PARAMETER_DESCRIPTION = 0x74;
const ERROR_RESPONSE = 0x45;
const CLOSE_COMPLETE = 0x33;
const COPY_DATA = 0x64;
const COPY_DONE = 0x63;
const COPY_FAIL = 0x66;
const G_COPY_IN = 0x47;

type State = "idle" | "waiting" | "active" | "closed";

/**
 * A statement's wait for a lock that only a prepared transaction can hold
 * (lockwait.ts), ended after `ms`: PostgreSQL's lock_timeout error, with
 * what holds the lock.
 */
function lockTimeout(ms: number): PgError {
  return new PgError(ERRCODE.LOCK_NOT_AVAILABLE, "canceling statement due to lock timeout", {
    detail:
      `The lock is held by a prepared transaction; only COMMIT PREPARED or ROLLBACK PREPARED can release it, and they need the engine, which this statement held for ${ms} ms while it waited.`,
    hint:
      "Commit or roll back the prepared transaction (pg_prepared_xacts lists them); lock_timeout, or pgts.engine_wait_timeout when shorter, bounds such a wait.",
  });
}

function closeAllRefused(): PgError {
  return new PgError(
    ERRCODE.FEATURE_NOT_SUPPORTED,
    "CLOSE ALL is not supported while other sessions have WITH HOLD cursors",
    {
      detail:
        "pgts runs every session on one PGlite backend, where CLOSE ALL would close the other sessions' cursors too.",
      hint: "Close this session's cursors by name.",
    },
  );
}

export function queryCanceled(): PgError {
  return new PgError(ERRCODE.QUERY_CANCELED, "canceling statement due to user request");
}

/** What exec raises after close: one instance (an Error's stack costs on every connection). */
const SESSION_CLOSED = new PgError(ERRCODE.CONNECTION_DOES_NOT_EXIST, "the session is closed", {
  severity: "FATAL",
});

export class PgliteSession implements EngineSession, Holder, Listener {
  readonly pid: number;
  readonly id: number;
  readonly user: string;
  /** The login role's OID: who the identity guard (guard.ts) lets this session be. */
  readonly userOid: number;
  /** Prefix of this session's statement names on the engine. */
  readonly prefix: string;
  onAsync: ((backend: Uint8Array) => void) | null = null;
  /** Called once when the engine ends the session itself, after the FATAL went through onAsync. */
  onTerminate: ((reason: PgError) => void) | null = null;

  readonly listens = new Set<string>();
  /** Engine names of this session's prepared statements. */
  readonly statements = new Set<string>();
  /** Those of them that LISTEN, SET... again when executed (naming.ts). */
  readonly statementEffects = new Map<string, StatementEffects>();
  /**
   * Cursors the session declared WITH HOLD and has not closed, as it names
   * them (the engine has them prefixed; naming.ts). Closed when it ends.
   */
  readonly holdCursors = new Set<string>();
  /** Custom setting names this session set. */
  settings: SettingsMap;
  settingsVersion = 0;
  settingsDirty = true;
  /**
   * Whether the only reason for `settingsDirty` is the start: the backend
   * then carries the startup map as the server spells it, which the engine
   * may know from an earlier session with the same map (engine.ts).
   */
  settingsFromStartup = true;
  readonly startupSettings: SettingsMap;
  rolesDirty = false;
  databasesDirty = false;
  pendingListen: ListenOp[] = [];
  pendingListenSpoiled = false;
  unnamedParse: Uint8Array | null = null;
  owns = false;
  /**
   * The session's last word on backup mode was pg_backup_start: if it ends
   * so, the engine ends the backup (engine.ts endSession), as PostgreSQL
   * aborts a backup whose session ended; here the backend lives on and
   * would refuse every later pg_backup_start.
   */
  backupStarted = false;
  /** This session's temporary namespaces (tempnamespace.ts); none until PostgreSQL makes them. */
  temp: TempPair = NO_TEMP;
  /** The backend just made `temp`, still named pg_temp_N: the engine renames it (engine.ts). */
  tempUnnamed = false;

  #engine: PgliteEngine;
  /** All output to the client, released in order as the WAL it depends on is durable. */
  #gate: AnswerGate;
  #status: TransactionStatus = "I";
  #state: State = "idle";
  #chain: Promise<void> = Promise.resolve();
  #skipUntilSync = false;
  #cancelPending = false;
  /** Where the input in hand is: before its exec (waiting, switching), in it, or after it. */
  #phase: "before" | "running" | "after" = "after";
  /** Inputs the client sent that have not started yet. */
  #queued = 0;
  /** A cancel for the next input, which arrived after the previous one's exec. */
  #cancelNext = false;
  /** A client's cancel reached the input in flight (not statement_timeout). */
  #canceledByClient = false;
  /** The last input ended at a ReadyForQuery (no batch or COPY open). */
  #atReadyForQuery = true;
  /** The input being run may change settings (the scan saw SET, set_config...). */
  #inputSets = false;
  /** A SET in the open transaction block may have changed statement_timeout. */
  #timeoutStale = false;
  /** statement_timeout as read inside the open block; null outside one. */
  #blockTimeoutMs: number | null = null;
  #idleTimer: ReturnType<typeof setTimeout> | null = null;
  /** pgts.engine_hold_timeout's timer: armed while this session holds the engine idle and others wait. */
  #holdTimer: ReturnType<typeof setTimeout> | null = null;
  #terminated: PgError | null = null;
  #closing: Promise<void> | null = null;
  /** Parse and Close messages answered while the engine was held (#defer), to run first. */
  #deferred: Uint8Array[] = [];
  /** A COPY FROM STDIN waiting for its data: the Query, and the CopyData so far (inline engine). */
  #copy: { query: Uint8Array; data: Uint8Array[] } | null = null;
  /** A COPY FROM STDIN running on the engine, fed the client's data as it comes (copyfeed.ts). */
  #fed: FedCopy | null = null;
  /** The input names pg_stat_activity (the engine passes its rows with the exec). */
  #readsActivity = false;
  /** The input names an extension (the engine loads the bundles first, once). */
  #needsExtensions = false;
  // pg_stat_activity: times in ms since the epoch, the last input's first
  // Query or Parse message (a bounded copy, decoded only when read).
  readonly #client: { readonly address: string; readonly port: number } | null;
  readonly #backendStart = Date.now();
  #queryStart = 0;
  #stateChange = Date.now();
  #xactStart = 0;
  #lastQuery: Uint8Array | null = null;

  constructor(
    engine: PgliteEngine,
    init: {
      id: number;
      pid: number;
      user: string;
      userOid: number;
      settings: SettingsMap;
      /** The startup map as the backend spells it, when the engine knows it already. */
      spelled?: SettingsMap;
      /** The client's TCP address, if it has one. */
      client?: { readonly address: string; readonly port: number };
    },
  ) {
    this.#client = init.client ?? null;
    this.#engine = engine;
    this.#gate = new AnswerGate(engine.executor.wal);
    this.id = init.id;
    this.pid = init.pid;
    this.user = init.user;
    this.userOid = init.userOid;
    this.prefix = `pgts${init.id}:`;
    this.settings = init.settings;
    this.startupSettings = init.settings;
    if (init.spelled !== undefined) {
      this.settings = init.spelled;
      this.settingsDirty = false;
      this.settingsFromStartup = false;
    }
    this.#armIdle();
  }

  /** close() has begun: the session is going (its client left, or it was terminated). */
  get closing(): boolean {
    return this.#closing !== null || this.#terminated !== null;
  }

  get transactionStatus(): TransactionStatus {
    return this.#status;
  }

  activity(): string {
    if (this.#state === "active") return "running a statement";
    if (this.#status === "T") return "idle in transaction";
    if (this.#status === "E") return "idle in transaction (aborted)";
    return "in an unfinished extended-query batch";
  }

  /** This session's row of pg_stat_activity (before visibility rules). */
  activityRow(): ActivityRow {
    const iso = (ms: number) => (ms === 0 ? null : new Date(ms).toISOString());
    let state: string;
    let wait: [string, string] | null = null;
    if (this.#state === "active") state = "active";
    else if (this.#state === "waiting") {
      state = "active";
      wait = ["Extension", "PgtsEngine"];
    } else {
      state = this.#status === "T"
        ? "idle in transaction"
        : this.#status === "E"
        ? "idle in transaction (aborted)"
        : "idle";
      wait = ["Client", "ClientRead"];
    }
    const inXact = state !== "idle";
    return {
      pid: this.pid,
      datname: this.#engine.database,
      usesysid: this.userOid,
      application_name: this.settings.get("application_name") ?? "",
      state,
      query: queryText(this.#lastQuery),
      wait_event_type: wait?.[0] ?? null,
      wait_event: wait?.[1] ?? null,
      xact_start: inXact ? iso(this.#xactStart || this.#queryStart) : null,
      query_start: iso(this.#queryStart),
      backend_start: new Date(this.#backendStart).toISOString(),
      state_change: iso(this.#stateChange),
      client_addr: this.#client?.address ?? null,
      client_port: this.#client?.port ?? null,
    };
  }

  /** Keeps (a bounded copy of) the input's first Query or Parse, and when it started. */
  #noteQuery(input: Uint8Array, frames: readonly Frame[]): void {
    const f = frames.find((x) => x.type === QUERY || x.type === PARSE);
    if (f === undefined) return;
    this.#queryStart = this.#stateChange = Date.now();
    if (this.#status === "I") this.#xactStart = 0;
    const body = input.subarray(f.start + 5, Math.min(f.end, f.start + 5 + QUERY_TEXT_MAX));
    if (f.type === PARSE) {
      // The statement name, then the text.
      const nul = body.indexOf(0);
      this.#lastQuery = body.slice(nul + 1);
    } else this.#lastQuery = body.slice();
  }

  deliverAsync(bytes: Uint8Array): void {
    if (this.#state === "closed") return;
    this.#gate.send(bytes, (b) => {
      if (this.#state !== "closed") this.onAsync?.(b);
    });
  }

  exec(frontend: Uint8Array, out: BackendOutput): Promise<void> {
    this.#queued++;
    const gate = this.#gate;
    const gated: BackendOutput = (b) => gate.send(b, out);
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
    } else if (this.#state === "active" && this.#phase === "running") {
      this.#canceledByClient = true;
      this.#engine.executor.interrupt();
    } else if (this.#state === "active" && this.#phase === "before") {
      this.#canceledByClient = true;
      this.#cancelPending = true;
    } else if (this.#queued > 0) {
      this.#cancelNext = true;
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#disarmIdle();
    this.#terminated ??= SESSION_CLOSED;
    // A statement still waiting or running is ended first: the transaction
    // is rolled back now, not when the statement would have finished.
    this.cancel();
    const fed = this.#fed;
    if (fed !== null) {
      // A COPY whose client is gone ends as a CopyFail ends it (at the top
      // level, after the COPY, PostgreSQL ignores it), and is rolled back.
      // Not by end of file: PGlite's read would wait for more.
      fed.over = true;
      await fed.feed.write(fe.copyFail("connection to client lost"), () => fed.finished);
      fed.feed.end();
      await fed.done;
      this.#fed = null;
    }
    await this.#chain;
    this.#state = "closed";
    await this.#engine.endSession(this);
  }

  /** Ends the session from the engine side (idle timeout, engine failure). */
  terminate(reason: PgError): void {
    if (this.#terminated !== null) return;
    this.#terminated = reason;
    this.#disarmIdle();
    // After what is held (the FATAL comes last, as it would have), or at
    // once when held answers can never go (a failed WAL fdatasync).
    this.#gate.afterDrain(() => {
      this.onAsync?.(errorResponse(reason));
      this.onTerminate?.(reason);
    });
    void this.close();
  }

  /** The bound on a wait for the engine: pgts.engine_wait_timeout, and lock_timeout when set. */
  #waitBoundMs(): number {
    let bound = parseDurationMs(this.settings.get("pgts.engine_wait_timeout")) ?? 0;
    if (!(bound > 0)) bound = this.#engine.options.engineWaitTimeoutMs;
    const lock = parseDurationMs(this.settings.get("lock_timeout")) ?? 0;
    return lock > 0 ? Math.min(bound, lock) : bound;
  }

  async #exec(input: Uint8Array, out: (b: Uint8Array) => void): Promise<void> {
    if (this.#terminated !== null) throw this.#terminated;
    if (this.#fed !== null) {
      // The COPY's data: the exec that runs it is in flight (its phase and
      // state stand); what follows the copy is an input of its own.
      const frames = splitFrames(input);
      if (frames === null) {
        throw new PgError(ERRCODE.PROTOCOL_VIOLATION, "invalid frontend message framing", {
          severity: "FATAL",
        });
      }
      const next = await this.#feedCopy(this.#fed, input, frames, out);
      if (next >= frames.length) return;
      input = input.subarray(frames[next]!.start);
    }
    this.#phase = "before";
    this.#cancelPending = this.#cancelNext;
    this.#canceledByClient = this.#cancelNext;
    this.#cancelNext = false;
    let frames = splitFrames(input);
    if (frames === null) {
      throw new PgError(ERRCODE.PROTOCOL_VIOLATION, "invalid frontend message framing", {
        severity: "FATAL",
      });
    }
    // After an error pgts raised itself in an extended batch, the rest of
    // the batch is skipped up to Sync, as PostgreSQL skips after an error.
    if (this.#skipUntilSync) {
      const s = frames.findIndex((f) => f.type === SYNC);
      if (s < 0) return;
      this.#skipUntilSync = false;
      out(readyForQuery(this.#status));
      if (s + 1 === frames.length) return;
      input = input.subarray(frames[s + 1]!.start);
      frames = splitFrames(input)!;
    }
    if (this.#copy !== null) {
      const end = frames.findIndex((f) => f.type === COPY_DONE || f.type === COPY_FAIL);
      for (const f of end < 0 ? frames : frames.slice(0, end)) {
        if (f.type === COPY_DATA) this.#copy.data.push(input.slice(f.start, f.end));
      }
      if (end < 0) return;
      const last = frames[end]!;
      await this.#finishCopy(input.slice(last.start, last.end), out);
      if (end + 1 === frames.length) return;
      input = input.subarray(frames[end + 1]!.start);
      frames = splitFrames(input)!;
    }
    const x = frames.findIndex((f) => f.type === TERMINATE);
    if (x >= 0) {
      if (x > 0) await this.#run(input.subarray(0, frames[x]!.start), frames.slice(0, x), out);
      // close() waits for this exec to finish: start it, do not await it here.
      void this.close();
      return;
    }
    await this.#run(input, frames, out);
  }

  /** Whether the input starts or stops a backup (its last mention wins). */
  #noteBackup(input: Uint8Array): void {
    // One pass for both names: the last "pg_backup_st", then "art" or "op".
    const at = lastMentionOf(input, "pg_backup_st");
    if (at === -1) return;
    const next = (input[at + 12] ?? 0) | 0x20;
    if (next === 0x61) this.backupStarted = true; // pg_backup_start
    else if (next === 0x6f) this.backupStarted = false; // pg_backup_stop
  }

  async #run(input: Uint8Array, frames: Frame[], out: (b: Uint8Array) => void): Promise<void> {
    const engine = this.#engine;
    this.#noteQuery(input, frames);
    this.#noteBackup(input);
    const plan = planInput(input, frames, this.prefix, {
      user: this.user,
      effects: this.statementEffects,
      holdCursors: this.holdCursors,
    });
    this.#readsActivity = plan.readsActivity;
    this.#needsExtensions = plan.needsExtensions;
    // CLOSE ALL in the one backend would close every session's WITH HOLD cursors.
    const reject = plan.reject ??
      (plan.closesAll && engine.holdCursorsOfOthers(this) > 0 ? closeAllRefused() : null);
    if (reject !== null) {
      this.#failInput(frames, reject, out);
      return;
    }
    for (const n of plan.declaredHoldCursors) this.holdCursors.add(n);
    for (const n of plan.closedHoldCursors) this.holdCursors.delete(n);
    if (plan.closesAll) this.holdCursors.clear();
    if (plan.databaseCommand !== null && engine.cluster !== null) {
      await this.#databaseCommand(plan.databaseCommand, input, frames, out);
      return;
    }
    this.#disarmIdle();
    if (!this.owns && frames.every((f) => f.type === SYNC || f.type === FLUSH)) {
      // Nothing pending: a Sync needs no engine, only a ReadyForQuery.
      for (const f of frames) if (f.type === SYNC) out(readyForQuery(this.#status));
      this.#armIdle();
      return;
    }
    // While another session holds the engine, what reads only pgts's own
    // tables (pg_cancel_backend of that session, say) is answered at once.
    if (
      !this.owns && this.#status === "I" && engine.scheduler.owner !== null &&
      this.#deferred.length === 0 && !this.#cancelPending &&
      (await this.#answerWithoutEngine(input, frames, plan, out))
    ) {
      return;
    }
    // Owning already (a transaction block) needs no wait and no switch.
    if (!this.owns && !(await this.#acquire(frames, out, plan))) return;
    this.#state = "active";
    if (this.#deferred.length > 0 && !(await this.#runDeferred(frames, out))) return;
    for (const n of plan.customSettings) engine.noteCustomSetting(n);
    for (const n of plan.createdStatements) this.statements.add(n);
    if (plan.settingsDirty) {
      this.#inputSets = true;
      this.settingsDirty = true;
      this.settingsFromStartup = false;
    }
    if (plan.rolesDirty) this.rolesDirty = true;
    if (plan.databasesDirty) this.databasesDirty = true;
    if (plan.listenOps.length > 0) this.pendingListen.push(...plan.listenOps);
    if (plan.createsTempObject && engine.tempShared !== null) {
      out(noticeResponse(tempTableWarning()));
    }

    // In a failed transaction, or DISCARD ALL in any transaction, the engine
    // itself answers with the right error; only the rest is done here.
    const special = plan.special === "deallocate all"
      ? this.#status !== "E"
      : plan.special === "discard all" && this.#status === "I";
    if (special && plan.special !== null) {
      await this.#settle(await engine.runSpecial(this, plan.special, out), out);
      return;
    }

    // COPY FROM STDIN is fed to the engine as it arrives (copyfeed.ts)
    // where the engine runs in a Worker; inline, it is buffered until
    // CopyDone.
    const fedCopy = plan.copyFromStdin && this.#status !== "E" &&
      (engine.executor.copyFeed ?? null) !== null;
    if (plan.copyFromStdin && this.#status !== "E" && !fedCopy) {
      try {
        if (await this.#startCopy(plan.bytes, out)) return;
      } catch (e) {
        await this.#engineFailure(e, frames, out, 0);
        return;
      }
    }

    // The unnamed statement lives in the one backend until the next Parse
    // of it or the next simple Query, by any session. If this input binds
    // it before parsing it and another session has replaced it since, put
    // this session's back (or none, so the Bind fails as it should).
    let bytes = plan.bytes;
    let drop = 0;
    if (plan.usesUnnamedFirst && engine.unnamedOwner !== this) {
      bytes = concat([this.unnamedParse ?? fe.close("S", ""), bytes]);
      drop = this.unnamedParse !== null ? PARSE_COMPLETE : CLOSE_COMPLETE;
    }
    if (plan.unnamedParse !== null) this.unnamedParse = plan.unnamedParse;
    else if (plan.hasQuery) this.unnamedParse = null;
    engine.unnamedOwner = plan.unnamedParse !== null || plan.usesUnnamedFirst
      ? this
      : plan.hasQuery
      ? null
      : engine.unnamedOwner;

    if (fedCopy) await this.#startFedCopy(bytes, frames, out);
    else await this.#execute(bytes, frames, out, drop);
  }

  /**
   * offengine.ts's statements, answered without waiting for the engine;
   * false when the input is not one of them (nothing was sent). Only when
   * the session's settings map shows its identity: after a SET ROLE not
   * yet read back, the engine must answer.
   */
  async #answerWithoutEngine(
    input: Uint8Array,
    frames: readonly Frame[],
    plan: InputPlan,
    out: (b: Uint8Array) => void,
  ): Promise<boolean> {
    const engine = this.#engine;
    // The role catalog it checks against must be what committed before:
    // after another session's GRANT, wait for the engine to read it back.
    if ((this.settingsDirty && !this.settingsFromStartup) || engine.catalogsSettling) return false;
    const role = this.settings.get("role") ?? "none";
    // Its own row shows it active (offengine.ts), but #state stays: an
    // input that is not answered here goes on to wait, and another
    // session's cancel must find it waiting, never "active" before it is.
    const answered = await answerWithoutEngine(input, frames, {
      pid: this.pid,
      currentUser: role !== "none" ? role : this.settings.get("session_authorization") ?? this.user,
      roles: engine.roleGraph,
      activityRows: () => engine.activityRows(),
      signal: (pid, kind) => {
        engine.signalBackends([[pid, kind]]);
        // terminate() has started the close: this is its promise.
        const target = kind === "terminate" ? engine.clusterSession(pid) : undefined;
        return target?.close() ?? Promise.resolve();
      },
      fixedSetting: (name) => engine.fixedSetting(name),
    }, out);
    if (!answered) return false;
    // What the Parse or Query did to the unnamed statement, as the engine
    // would have: this session's is now this text (or none after a Query),
    // which the engine does not have.
    if (plan.unnamedParse !== null) this.unnamedParse = plan.unnamedParse;
    else if (plan.hasQuery) this.unnamedParse = null;
    if (engine.unnamedOwner === this) engine.unnamedOwner = null;
    this.#stateChange = Date.now();
    this.#armIdle();
    return true;
  }

  /** Takes the engine (bounded wait) and puts this session's settings on it; false when the input was answered with an error instead. */
  async #acquire(
    frames: readonly Frame[],
    out: (b: Uint8Array) => void,
    plan?: InputPlan,
  ): Promise<boolean> {
    if (this.owns) return true;
    const engine = this.#engine;
    this.#state = "waiting";
    try {
      if (!engine.scheduler.tryAcquire(this)) {
        await engine.scheduler.acquire(this, { timeoutMs: this.#waitBoundMs() });
      }
    } catch (e) {
      this.#state = "idle";
      if (!isPgError(e)) throw e;
      if (e.code === ERRCODE.LOCK_NOT_AVAILABLE && plan !== undefined && this.#defer(plan, out)) {
        return false;
      }
      this.#failInput(frames, e, out);
      return false;
    }
    this.owns = true;
    this.#state = "active";
    try {
      if (!engine.carriesSettingsOf(this)) {
        const warnings = await engine.prepareFor(this);
        if (warnings.length > 0) out(concat(warnings.map(noticeResponse)));
      }
    } catch (e) {
      this.#state = "idle";
      const fatal = isPgError(e)
        ? new PgError(e.code, e.message, { ...e.fields, severity: "FATAL" })
        : new PgError(ERRCODE.INTERNAL_ERROR, String(e), { severity: "FATAL" });
      this.#terminated = fatal;
      engine.scheduler.release(this);
      this.owns = false;
      throw fatal;
    }
    return true;
  }

  /**
   * A Parse/Close-only batch (libpq's PQprepare, pgbench -M prepared) whose
   * wait for the engine timed out: in PostgreSQL, preparing a statement
   * never waits for another session's transaction, so it is answered now
   * (ParseComplete, CloseComplete, ReadyForQuery) and run on the engine
   * before this session's next input. An error it raises then (a syntax
   * error) is that input's answer. False when the batch is not of that kind.
   */
  #defer(plan: InputPlan, out: (b: Uint8Array) => void): boolean {
    if (this.#status !== "I" || plan.unnamedParse !== null || plan.hasQuery) return false;
    const fs = plan.frames;
    if (fs.length < 2 || fs[fs.length - 1]!.type !== SYNC) return false;
    const answers: Uint8Array[] = [];
    for (const f of fs) {
      if (f.type === PARSE) answers.push(message(PARSE_COMPLETE));
      else if (f.type === CLOSE) answers.push(message(CLOSE_COMPLETE));
      else if (f.type === SYNC) answers.push(readyForQuery(this.#status));
      else if (f.type !== FLUSH) return false;
    }
    for (const f of fs) {
      if (f.type !== SYNC && f.type !== FLUSH) {
        this.#deferred.push(plan.bytes.slice(f.start, f.end));
      }
    }
    for (const n of plan.createdStatements) this.statements.add(n);
    out(concat(answers));
    return true;
  }

  /** Runs the deferred Parse/Close messages (see #defer); false when their error answered the input. */
  async #runDeferred(frames: readonly Frame[], out: (b: Uint8Array) => void): Promise<boolean> {
    const bytes = concat([...this.#deferred, fe.sync()]);
    this.#deferred = [];
    let err: PgError | null;
    try {
      // As this session: the guard (guard.ts) checks what its statements do.
      err = firstPgError(await this.#engine.runRaw(bytes, this), this.prefix);
    } catch (e) {
      await this.#engineFailure(e, frames, out, 0);
      return false;
    }
    if (err === null) return true;
    this.#failInput(frames, err, out);
    await this.#settle(true, out);
    return false;
  }

  /**
   * COPY FROM STDIN, first half. PGlite cannot wait for copy data, so the
   * Query runs once with an immediate CopyFail (inside a savepoint when a
   * transaction is open) to learn the real CopyInResponse, which goes to
   * the client; the data is then collected and the Query runs for real with
   * it, in one exec, at CopyDone. False when the Query does not start a
   * copy after all (it then runs normally and reports its own error).
   */
  async #startCopy(query: Uint8Array, out: (b: Uint8Array) => void): Promise<boolean> {
    const engine = this.#engine;
    const inBlock = this.#status === "T";
    const probe = inBlock
      ? concat([
        fe.query("SAVEPOINT pgts_copy_probe"),
        query,
        fe.copyFail("pgts: copy probe"),
        fe.query("ROLLBACK TO SAVEPOINT pgts_copy_probe; RELEASE SAVEPOINT pgts_copy_probe"),
      ])
      : concat([query, fe.copyFail("pgts: copy probe")]);
    const filter = new OutputFilter({
      prefix: this.prefix,
      out: () => {},
      notify: () => null,
      dropFirst: 0,
      holdCopyIn: true,
    });
    filter.push(await engine.runRaw(probe, this));
    if (filter.copyInResponse === null) return false;
    out(filter.copyInResponse);
    // `query` may be a view of the caller's buffer, which is only lent for
    // one exec (the backend reuses its MessageContext): keep a copy.
    this.#copy = { query: query.slice(), data: [] };
    this.#state = "idle";
    if (!inBlock) {
      this.owns = false;
      engine.scheduler.release(this);
    }
    return true;
  }

  /** COPY FROM STDIN, second half: the Query, its data and CopyDone (or CopyFail) in one exec. */
  async #finishCopy(end: Uint8Array, out: (b: Uint8Array) => void): Promise<void> {
    const copy = this.#copy!;
    this.#copy = null;
    const frames = splitFrames(copy.query)!;
    if (!(await this.#acquire(frames, out))) return;
    this.#state = "active";
    await this.#execute(concat([copy.query, ...copy.data, end]), frames, out, G_COPY_IN);
  }

  /**
   * COPY FROM STDIN on an engine in a Worker: the Query runs at once, as in
   * PostgreSQL, with a feed as its input (copyfeed.ts), and this input is
   * over when the CopyInResponse is out (or when the statement ended
   * without starting a copy: an error, a COPY from a file after all). The
   * exec goes on while the client's next inputs bring the data (#feedCopy);
   * what it answers meanwhile goes with the input in hand, or waits for
   * the next one.
   */
  async #startFedCopy(
    query: Uint8Array,
    frames: readonly Frame[],
    out: BackendOutput,
  ): Promise<void> {
    const feed = this.#engine.executor.copyFeed!.open();
    let begun = () => {};
    const started = new Promise<void>((resolve) => (begun = resolve));
    const copy: FedCopy = {
      feed,
      out,
      held: [],
      over: false,
      lastData: Date.now(),
      finished: false,
      error: null,
      done: Promise.resolve(),
    };
    this.#fed = copy;
    const sink: BackendOutput = (b) => {
      if (copy.out !== null) return copy.out(b);
      copy.held.push(b.slice());
    };
    copy.done = this.#execute(query, frames, sink, 0, {
      feed: true,
      onCopyIn: begun,
      // Over (done, failed, cancelled, or never begun): what the client still sends of it
      // is read and dropped, as PostgreSQL drops it, without the engine.
      onStatementEnd: () => {
        copy.over = true;
        feed.end();
      },
    }).catch((e) => {
      copy.error = e;
    }).finally(() => {
      copy.finished = true;
      copy.over = true;
      feed.end();
      begun();
    });
    await started;
    copy.out = null;
    if (copy.finished) this.#fed = null;
    if (copy.error !== null) throw copy.error;
  }

  /**
   * The client's input during a fed COPY: CopyData (and the Flush and Sync
   * PostgreSQL ignores there) into the feed, waiting for room, up to the
   * CopyDone or CopyFail, which ends the feed, or any other message, which
   * goes too and ends it (PostgreSQL's "unexpected message type" error).
   * Once the COPY is over, its remaining data is dropped up to its end.
   * Returns the index of the first frame after the copy (frames.length
   * when all of them belonged to it).
   */
  async #feedCopy(
    copy: FedCopy,
    input: Uint8Array,
    frames: readonly Frame[],
    out: BackendOutput,
  ): Promise<number> {
    copy.out = out;
    copy.lastData = Date.now();
    for (const b of copy.held.splice(0)) out(b);
    let end = frames.findIndex((f) => f.type !== COPY_DATA && f.type !== FLUSH && f.type !== SYNC);
    const t = end >= 0 ? frames[end]!.type : null;
    // What the engine is given: up to the CopyDone or CopyFail, or up to
    // (not including) a message that has no place in a COPY.
    const foreign = t !== null && t !== COPY_DONE && t !== COPY_FAIL;
    const upTo = end < 0 ? input.length : foreign ? frames[end]!.start : frames[end]!.end;
    if (!copy.over && upTo > 0) {
      await copy.feed.write(input.subarray(0, upTo), () => copy.finished);
    }
    if (foreign && !copy.over) await this.#breakCopy(copy, t!, out);
    if (end >= 0) {
      // After a COPY that ended by itself (an error in its data), another
      // message is the client's next input, as in PostgreSQL.
      if (foreign) end--;
      copy.feed.end();
      await copy.done;
      this.#fed = null;
      copy.out = null;
      if (copy.error !== null) throw copy.error;
      return end + 1;
    }
    copy.out = null;
    return frames.length;
  }

  /**
   * A message other than CopyData, CopyDone, CopyFail, Flush or Sync in
   * the middle of a COPY. PostgreSQL's CopyGetData rejects its type before
   * it has read the message, so the ERROR leaves the backend mid-message
   * and PostgresMain ends the session: ERROR "unexpected message type",
   * then FATAL "protocol synchronization was lost". The message must never
   * reach PGlite: there that FATAL is an exit() in the middle of an exec,
   * after which the backend answers every later exec with the same FATAL,
   * in a loop that holds the engine for ever. So the engine is given a
   * CopyFail (the COPY is rolled back, its answer is not the client's), and
   * the client PostgreSQL's two errors.
   */
  async #breakCopy(copy: FedCopy, type: number, out: BackendOutput): Promise<never> {
    copy.out = () => {};
    copy.held.length = 0;
    await copy.feed.write(fe.copyFail("unexpected message type"), () => copy.finished);
    copy.feed.end();
    await copy.done;
    this.#fed = null;
    const hex = type.toString(16).toUpperCase().padStart(2, "0");
    out(errorResponse(
      new PgError(
        ERRCODE.PROTOCOL_VIOLATION,
        `unexpected message type 0x${hex} during COPY from stdin`,
      ),
    ));
    throw new PgError(
      ERRCODE.PROTOCOL_VIOLATION,
      "terminating connection because protocol synchronization was lost",
      { severity: "FATAL" },
    );
  }

  /**
   * statement_timeout for the next exec. The settings map is re-read when a
   * transaction ends; a SET inside a transaction block (SET LOCAL, say) is
   * read back here before the block's next statement, as the session's own
   * work, only while the backend is at a ReadyForQuery of a block in
   * progress (not mid-batch, not failed).
   */
  async #statementTimeoutMs(): Promise<number> {
    if (this.#timeoutStale && this.#status === "T" && this.#atReadyForQuery) {
      this.#timeoutStale = false;
      const answer = await this.#engine.runRaw(
        fe.query("select pg_catalog.current_setting('statement_timeout')"),
        this,
      );
      this.#blockTimeoutMs = parseDurationMs(dataRows(answer)[0]?.[0] ?? undefined) ?? 0;
    }
    if (this.#status === "I") this.#blockTimeoutMs = null;
    return this.#blockTimeoutMs ?? parseDurationMs(this.settings.get("statement_timeout")) ?? 0;
  }

  /** Runs bytes on the engine (owned) and settles ownership afterwards. */
  async #execute(
    bytes: Uint8Array,
    frames: readonly Frame[],
    out: BackendOutput,
    drop: number,
    fed?: { feed: true; onCopyIn: () => void; onStatementEnd: () => void },
  ): Promise<void> {
    const engine = this.#engine;
    // statement_timeout: PostgreSQL's own timer is off in PGlite (it would
    // fire between other sessions' statements); the executor cancels the
    // exec once it has run this long, and its 57014 says why.
    const timeoutMs = await this.#statementTimeoutMs();
    // A cancel that came while the engine was being made ready for this
    // input (the switch to its settings) ends it before it runs, as one
    // that came during the wait does: what PostgreSQL's first
    // CHECK_FOR_INTERRUPTS would do. Outside a block nothing needs a
    // rollback; one statement or one batch only, since a pipelined next
    // one must still run.
    if (
      this.#cancelPending && this.#status === "I" && drop === 0 &&
      frames.filter((f) => f.type === QUERY || f.type === SYNC).length === 1
    ) {
      this.#cancelPending = false;
      this.#phase = "after";
      this.#failInput(frames, queryCanceled(), out);
      await this.#settle(true, out);
      return;
    }
    this.#canceledByClient = this.#cancelPending;
    let lockWaited = 0;
    const filter = new OutputFilter({
      prefix: this.prefix,
      out,
      notify: (msg) => engine.listeners.route(msg, this),
      dropFirst: drop,
      timedOut: () => timeoutMs > 0 && !this.#canceledByClient,
      lockTimedOut: () => (lockWaited === 0 ? null : errorResponse(lockTimeout(lockWaited))),
      ...(fed !== undefined ? { onCopyIn: fed.onCopyIn, onStatementEnd: fed.onStatementEnd } : {}),
    });
    const backends = engine.backendsForExec();
    // A wait for a prepared transaction's lock ends after this long (lockwait.ts).
    const lockWaitMs = this.#waitBoundMs();
    try {
      const running = engine.exec(bytes, (c) => filter.push(c), {
        lockWaitMs,
        onLockTimeout: () => (lockWaited = lockWaitMs),
        runAs: this.userOid,
        pid: this.pid,
        timeoutMs: timeoutMs > 0 ? timeoutMs : 0,
        ...(backends !== undefined ? { backends } : {}),
        ...(this.#readsActivity ? { activity: engine.activityRows() } : {}),
        ...(engine.loadExtensionsFor(this.#needsExtensions) ? { loadExtensions: true } : {}),
        ...(fed !== undefined ? { feed: true } : {}),
      }, this);
      this.#phase = "running";
      if (this.#cancelPending) engine.executor.interrupt();
      await running;
    } catch (e) {
      this.#cancelPending = false;
      this.#phase = "after";
      await this.#engineFailure(e, frames, out, filter.zCount);
      return;
    } finally {
      this.#phase = "after";
    }
    this.#cancelPending = false;
    if (filter.lastStatus !== null) {
      if (this.#status === "I" && filter.lastStatus !== "I") this.#xactStart = this.#queryStart;
      this.#status = filter.lastStatus;
    }
    this.#stateChange = Date.now();
    this.#atReadyForQuery = filter.endsWithZ;
    if (this.#status === "T" && (this.#inputSets || filter.sawParameterStatus)) {
      this.#timeoutStale = true;
    }
    this.#inputSets = false;
    if (filter.sawError || filter.sawRollback) this.pendingListenSpoiled = true;
    if (filter.sawParameterStatus) {
      this.settingsDirty = true;
      this.settingsFromStartup = false;
    }
    await this.#settle(filter.endsWithZ && !filter.copyIn, out);
    if (filter.terminatedSelf) {
      // pg_terminate_backend(pg_backend_pid()): the statement's answer was
      // held back; the input ends in the FATAL (the caller sends it and
      // closes the session, which rolls back what is open).
      this.#disarmIdle();
      this.#terminated = new PgError(
        ERRCODE.ADMIN_SHUTDOWN,
        "terminating connection due to administrator command",
        { severity: "FATAL" },
      );
      throw this.#terminated;
    }
  }

  /** After an input ran: give the engine back at ReadyForQuery 'I', or keep it and start the idle timer. */
  async #settle(atReadyForQuery: boolean, out: (b: Uint8Array) => void): Promise<void> {
    if (atReadyForQuery && this.#status === "I") {
      try {
        if (this.#engine.hasWorkAfterTransaction(this)) await this.#engine.afterTransaction(this);
        else this.pendingListenSpoiled = false;
      } catch (e) {
        await this.#engineFailure(e, [], out, 0);
        return;
      }
      this.owns = false;
      this.#state = "idle";
      this.#engine.scheduler.release(this);
      this.#armIdle();
      return;
    }
    this.#state = "idle";
    this.#armIdle();
  }

  /** Answers an input pgts could not run with `err`, keeping the protocol in step. */
  /**
   * CREATE, ALTER or DROP DATABASE in a multi-database cluster: the
   * cluster carries it out (dbcommands.ts), not this engine's backend,
   * which holds one database only. Not inside a transaction block: the
   * cluster's work cannot be rolled back.
   */
  async #databaseCommand(
    sql: string,
    input: Uint8Array,
    frames: readonly Frame[],
    out: (b: Uint8Array) => void,
  ): Promise<void> {
    const what = /^\s*(\w+)/.exec(sql)?.[1]?.toUpperCase() ?? "ALTER";
    if (sql === "embedded") {
      this.#failInput(
        frames,
        new PgError(
          ERRCODE.FEATURE_NOT_SUPPORTED,
          "CREATE, ALTER and DROP DATABASE must be sent as a query of their own",
          { detail: "pgts carries out database commands outside the engine's backend." },
        ),
        out,
      );
      return;
    }
    if (this.#status !== "I") {
      const err = this.#status === "E"
        ? new PgError(
          ERRCODE.IN_FAILED_SQL_TRANSACTION,
          "current transaction is aborted, commands ignored until end of transaction block",
        )
        : new PgError(
          ERRCODE.ACTIVE_SQL_TRANSACTION,
          `${what} DATABASE cannot run inside a transaction block`,
        );
      this.#failInput(frames, err, out);
      return;
    }
    this.#disarmIdle();
    this.#state = "active";
    // In an extended batch (Parse, [Describe,] Bind, [Describe,] Execute,
    // Sync) each message before Execute is answered as PostgreSQL answers
    // it for a utility statement with no parameters.
    const before = frames.slice(0, frames.length > 1 ? -2 : 0).flatMap((f) =>
      f.type === PARSE
        ? [message(PARSE_COMPLETE)]
        : f.type === BIND
        ? [message(BIND_COMPLETE)]
        : input[f.start + 5] === 0x53
        ? [message(PARAMETER_DESCRIPTION, Uint8Array.of(0, 0)), message(NO_DATA)]
        : [message(NO_DATA)]
    );
    try {
      const parts = await this.#engine.cluster!.databaseCommand(this, sql);
      out(concat([...before, ...parts, readyForQuery(this.#status)]));
    } catch (e) {
      const err = isPgError(e) ? e : new PgError(ERRCODE.INTERNAL_ERROR, String(e));
      out(concat([...before, errorResponse(err), readyForQuery(this.#status)]));
    } finally {
      this.#state = "idle";
      this.#armIdle();
    }
  }

  #failInput(frames: readonly Frame[], err: PgError, out: (b: Uint8Array) => void): void {
    const parts: Uint8Array[] = [];
    let skipping = false;
    for (const f of frames) {
      if (skipping) {
        if (f.type === SYNC) {
          parts.push(readyForQuery(this.#status));
          skipping = false;
        }
      } else if (f.type === QUERY) parts.push(errorResponse(err), readyForQuery(this.#status));
      else if (f.type === SYNC) parts.push(readyForQuery(this.#status));
      else if (f.type !== FLUSH) {
        parts.push(errorResponse(err));
        skipping = true;
      }
    }
    this.#skipUntilSync = skipping;
    if (parts.length > 0) out(concat(parts));
  }

  /**
   * PGlite threw (not an SQL error): report it for every batch of the input
   * not yet answered, roll back, give the engine back.
   */
  async #engineFailure(
    e: unknown,
    frames: readonly Frame[],
    out: (b: Uint8Array) => void,
    answered: number,
  ): Promise<void> {
    const msg = e instanceof Error ? e.message : String(e);
    const recovered = await this.#engine.abortOpenWork(this);
    this.#status = "I";
    this.#state = "idle";
    this.#copy = null;
    if (this.#fed !== null) {
      this.#fed.over = true;
      this.#fed.feed.end();
    }
    let from = 0;
    for (let n = 0; from < frames.length && n < answered; from++) {
      if (frames[from]!.type === SYNC || frames[from]!.type === QUERY) n++;
    }
    const rest = frames.slice(from);
    const err = new PgError(ERRCODE.INTERNAL_ERROR, `engine failure: ${msg}`);
    if (rest.length > 0) this.#failInput(rest, err, out);
    else out(errorResponse(err));
    this.owns = false;
    this.#engine.scheduler.release(this);
    if (!recovered) this.#engine.markBroken(msg);
  }

  /**
   * The timer of an idle session: idle_in_transaction_session_timeout while
   * it holds the engine between statements, idle_session_timeout while it
   * holds nothing (PostgreSQL's 25P03 and 57P05).
   */
  #armIdle(): void {
    if (this.#terminated !== null) return;
    if (!this.owns) {
      const idle = parseDurationMs(this.settings.get("idle_session_timeout")) ?? 0;
      if (idle > 0) {
        this.#idleTimer = setTimeout(() => {
          this.#idleTimer = null;
          if (!this.owns && this.#state === "idle") {
            this.terminate(
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
    const ms = parseDurationMs(this.settings.get("idle_in_transaction_session_timeout")) ??
      this.#engine.options.idleInTransactionSessionTimeoutMs;
    if (!(ms > 0)) return;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = null;
      if (this.owns && this.#state === "idle") {
        this.terminate(
          new PgError(
            ERRCODE.IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
            "terminating connection due to idle-in-transaction timeout",
            { severity: "FATAL" },
          ),
        );
      }
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
    const ms = this.#engine.options.engineHoldTimeoutMs;
    if (this.#holdTimer !== null || !(ms > 0) || this.#terminated !== null) return;
    if (this.#fed !== null && !this.#fed.over) {
      this.#watchCopy(ms);
      return;
    }
    if (!this.owns || this.#state !== "idle") return;
    this.#holdTimer = setTimeout(() => {
      this.#holdTimer = null;
      const waiting = this.#engine.scheduler.waiting;
      if (!this.owns || this.#state !== "idle" || waiting === 0) return;
      this.terminate(
        new PgError(
          ERRCODE.IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
          "terminating connection due to idle-in-transaction timeout",
          {
            severity: "FATAL",
            detail: `The session held the engine idle for ${ms} ms while ${waiting} other ${
              waiting === 1 ? "session" : "sessions"
            } waited for it.`,
            hint: 'End transactions promptly, or raise "pgts.engine_hold_timeout".',
          },
        ),
      );
    }, ms);
  }

  /**
   * A fed COPY that others wait for: the engine is this session's only
   * while its client keeps sending. Once the engine has read everything
   * and the client has sent nothing more for pgts.engine_hold_timeout, the
   * session is ended as an idle holder is (25P03), its COPY rolled back.
   */
  #watchCopy(ms: number): void {
    const check = () => {
      this.#holdTimer = null;
      const fed = this.#fed;
      const waiting = this.#engine.scheduler.waiting;
      if (waiting === 0 || this.#terminated !== null) return;
      if (fed === null || fed.over) {
        // The COPY is over: an idle holder's rule from now on.
        this.waitedFor();
        return;
      }
      const quiet = Date.now() - fed.lastData;
      if (fed.feed.pending > 0 || quiet < ms) {
        this.#holdTimer = setTimeout(check, Math.max(ms - quiet, 100));
        return;
      }
      this.terminate(
        new PgError(
          ERRCODE.IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
          "terminating connection due to idle-in-transaction timeout",
          {
            severity: "FATAL",
            detail:
              `The session's COPY FROM STDIN held the engine for ${quiet} ms without data while ${waiting} other ${
                waiting === 1 ? "session" : "sessions"
              } waited for it.`,
            hint: 'Send COPY data promptly, or raise "pgts.engine_hold_timeout".',
          },
        ),
      );
    };
    this.#holdTimer = setTimeout(check, ms);
  }

  #disarmIdle(): void {
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
    if (this.#holdTimer !== null) clearTimeout(this.#holdTimer);
    this.#holdTimer = null;
  }

  /** Marks the transaction status after the engine rolled this session back. */
  resetStatus(): void {
    this.#status = "I";
  }
}

/** A COPY FROM STDIN whose exec is in flight, reading its data from `feed`. */
interface FedCopy {
  readonly feed: CopyFeedWriter;
  /** Where its answer goes: the out of the client's input in hand, or null (then `held`). */
  out: BackendOutput | null;
  readonly held: Uint8Array[];
  /** The COPY ended (ReadyForQuery): the client's remaining data is dropped. */
  over: boolean;
  /** When the client's data last came (ms since the epoch). */
  lastData: number;
  /** Its exec is over. */
  finished: boolean;
  error: unknown;
  done: Promise<void>;
}

/** pg_stat_activity's query text is cut as PostgreSQL's track_activity_query_size (1024) cuts it. */
const QUERY_TEXT_MAX = 1024;

/** The text of a kept Query or Parse body (up to its NUL). */
function queryText(body: Uint8Array | null): string {
  if (body === null) return "";
  const nul = body.indexOf(0);
  return new TextDecoder().decode(nul < 0 ? body : body.subarray(0, nul));
}

/** The first ErrorResponse in backend bytes, as a PgError naming this session's statements. */
function firstPgError(buf: Uint8Array, prefix: string): PgError | null {
  for (let at = 0; at + 5 <= buf.length; at += 1 + readInt32(buf, at + 1)) {
    if (buf[at] !== ERROR_RESPONSE) continue;
    const f = parseErrorResponse(buf.subarray(at + 5, at + 1 + readInt32(buf, at + 1)));
    f.message = publicText(f.message, prefix);
    if (f.detail !== undefined) f.detail = publicText(f.detail, prefix);
    return pgErrorFromFields(f);
  }
  return null;
}

function tempTableWarning(): PgError {
  return new PgError(
    ERRCODE.WARNING,
    "temporary objects are shared by all sessions of this engine",
    {
      severity: "WARNING",
      detail:
        "pgts runs every session on one PGlite backend, which has one temporary schema; other sessions can see and drop this object.",
    },
  );
}

/** Where `word` (lowercase ASCII letters and "_") last occurs in `bytes`, in any case; -1 if nowhere. */
function lastMentionOf(bytes: Uint8Array, word: string): number {
  const first = word.charCodeAt(0);
  outer: for (let i = bytes.length - word.length; i >= 0; i--) {
    if ((bytes[i]! | 0x20) !== first) continue;
    for (let k = 1; k < word.length; k++) {
      const c = word.charCodeAt(k);
      const b = bytes[i + k]!;
      if ((c === 0x5f ? b : b | 0x20) !== c) continue outer;
    }
    return i;
  }
  return -1;
}
