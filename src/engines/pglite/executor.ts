/**
 * The raw executor: the only thing that talks to the PGlite instance. It
 * runs one byte batch at a time and knows nothing of sessions; the
 * scheduler (scheduler.ts) decides whose bytes run, and an exec's owner is
 * only a name to cancel it by and to report its end under. This module is
 * its contract: `RawExecutor`, what an exec is given and what it answers;
 * placement.ts starts one.
 *
 * Two placements:
 * - `worker` (default, workerexecutor.ts): PGlite runs in a Worker thread.
 *   The engine's own thread stays free while a statement runs, so wait
 *   timeouts, idle timeouts and cancels happen on time. PGlite's heap is
 *   shared memory (sharedheap.ts), so a cancel or statement_timeout (a
 *   watchdog timer there) sets Postgres's interrupt flags directly and
 *   stops even a statement that makes no host call (interrupt.ts).
 *   An exec and its answer cross through a SharedArrayBuffer channel woken
 *   by Atomics (channel.ts), not a postMessage each way, when they fit.
 *   It pipelines: the next session's exec may wait in the Worker behind
 *   the one running, and runs the moment that one ends idle, while this
 *   thread still reads the answer before it (scheduler.ts's hand-over).
 * - `inline` (placement.ts): PGlite runs on the calling thread. Cheaper per
 *   call, but nothing else on the thread runs during a statement: a cancel
 *   or a timeout only takes effect at the statement's next host call, or
 *   when it is over.
 *
 * An executor never throws for SQL errors (they are protocol bytes); it
 * rejects only when PGlite itself fails, and stays usable afterwards when
 * PGlite does.
 *
 * Group commit (walflush.ts, groupcommit.ts): before each chunk of an
 * answer reaches `onData`, `wal.requested` is the WAL ticket the chunk
 * depends on; `wal.durable` follows the fdatasyncs done where PGlite runs
 * (for a Worker, on this thread: walsyncs.ts). The Worker's messages are
 * in executor-messages.ts.
 */

import type { ImageSource } from "./image.ts";
import type { BackendSignal } from "./backends.ts";
import type { TempSpan } from "./tempnamespace.ts";
import type { GucChange } from "./gucwatch.ts";
import type { InstanceExecOptions } from "./instancetypes.ts";
import type { WalProgress } from "./groupcommit.ts";
import type { CopyFeed } from "./copyfeed.ts";
import type { SettingFiles } from "./settingsource.ts";

export interface RawExecutor {
  /**
   * Runs framed frontend messages; backend bytes go to `onData` (copies,
   * possibly split mid-message). A promise from `onData` holds the rest of
   * the answer back until it resolves (in a Worker; inline, PGlite cannot
   * wait).
   */
  exec(
    bytes: Uint8Array,
    onData: (chunk: Uint8Array) => void | Promise<void>,
    options?: ExecOptions,
  ): Promise<ExecResult>;
  /**
   * Why temporary objects are shared by every session (tempnamespace.ts),
   * or null when each session has its own.
   */
  readonly tempShared: string | null;
  /**
   * Cancels the exec of `owner` (ExecOptions.owner), or with no owner the
   * one running; a no-op when there is none. An exec still waiting behind
   * another is cancelled once it runs.
   */
  interrupt(owner?: object): void;
  /**
   * Whether an exec may wait in the executor behind the one running
   * (ExecOptions.conditional): a Worker, which then runs it the moment the
   * one before ends idle, without a round trip to this thread between.
   */
  readonly pipelines: boolean;
  /**
   * Called when an exec ends, before its answer is handed on: whether it
   * ended idle (channel.ts's endedIdle), so that the exec behind it runs.
   */
  onExecEnd: ((owner: object | undefined, endedIdle: boolean) => void) | null;
  /**
   * Called when an exec changed settings (gucwatch.ts), before the last
   * part of its answer (the one with its last ReadyForQuery, unless that
   * was streamed already) is handed on: a ParameterStatus goes before it.
   */
  onSettingsChanged: ((change: GucChange) => void) | null;
  /**
   * Called when an exec with `handsOver` runs and nothing waits behind it:
   * the next may be given the engine now (scheduler.ts's handOver).
   */
  onRunning: ((owner: object | undefined) => void) | null;
  /**
   * Whether sessions wait for the engine (scheduler.ts): a Worker's
   * executor then polls for the running exec's answer between its
   * thread's other work rather than sleeping on it (channel.ts's `reply`).
   */
  contended: (() => boolean) | null;
  /** Whether a lock wait is ended after its bound (lockwait.ts): a Worker, on a known build. */
  readonly boundsLockWaits: boolean;
  close(): Promise<void>;
  /**
   * Gets the signals an exec sent to other sessions (pg_cancel_backend,
   * pg_terminate_backend; see backends.ts), once that exec is over.
   */
  onSignals: ((signals: readonly BackendSignal[]) => void) | null;
  /** The WAL tickets answers depend on, and those on disk (group commit). */
  readonly wal: WalProgress;
  /** Called once when a deferred fdatasync of the WAL failed: the backend is gone (a PANIC). */
  onWalFailure: ((message: string) => void) | null;
  /**
   * Where an exec run with `feed` reads the client's COPY data as it comes
   * (copyfeed.ts); null inline, where the engine cannot wait for it.
   */
  readonly copyFeed: CopyFeed | null;
}

export interface ExecResult {
  /**
   * The backend's temporary namespaces at the exec's start and end, when
   * PostgreSQL changed them during it; null when it did not (or when they
   * are not per session).
   */
  readonly temp: TempSpan | null;
  /** The answer ended idle (channel.ts's endedIdle); always false inline. */
  readonly endedIdle: boolean;
  /** What the exec changed of the settings, however spelled (gucwatch.ts); null: nothing. */
  readonly gucs: GucChange | null;
}

/**
 * The rejection of a conditional exec (ExecOptions.conditional) that did
 * not run: the exec before it did not end idle, and its caller tries again
 * once it owns the engine; or it was taken back while it waited behind
 * that one (`withdrawnBy`: its session's cancel, or its wait bound,
 * ExecOptions.waitMs, running out), and its caller answers that. Nothing
 * of it reached the engine.
 */
export class ExecNotRun extends Error {
  constructor(readonly withdrawnBy: "cancel" | "wait timeout" | null = null) {
    super(
      withdrawnBy === null
        ? "the exec did not run: the one before it did not end idle"
        : `the exec did not run: taken back by a ${withdrawnBy}`,
    );
    this.name = "ExecNotRun";
  }
}

/**
 * An exec's options: what the instance is given with it (InstanceExecOptions,
 * where pgts's own work leaves `runAs`, `pid` and `timeoutMs` out), and
 * what the executor itself does with it.
 */
export interface ExecOptions extends Omit<InstanceExecOptions, "runAs" | "pid" | "timeoutMs"> {
  /**
   * The OID of the login role of the session whose input this is
   * (guard.ts); without it the bytes are pgts's own work and may switch the
   * backend to any role.
   */
  readonly runAs?: number;
  /** statement_timeout in ms: the exec is cancelled once it runs longer (see instance.ts). */
  readonly timeoutMs?: number;
  /** The pid of the session whose input this is: what pg_backend_pid() returns. */
  readonly pid?: number;
  /**
   * How long a lock wait may hold the engine before the exec is cancelled
   * (lockwait.ts); the executor's `lockWaitMs` when absent.
   */
  readonly lockWaitMs?: number;
  /** Called, on this thread, just before an exec is cancelled for its lock wait. */
  readonly onLockTimeout?: () => void;
  /** Whose exec this is: what `interrupt(owner)` names, and what onExecEnd and onRunning are told. */
  readonly owner?: object;
  /**
   * It may wait behind the exec running (where the executor pipelines),
   * and then runs only if that one ends idle; else it rejects with
   * ExecNotRun.
   */
  readonly conditional?: boolean;
  /** Call onRunning once it runs with nothing behind it. */
  readonly handsOver?: boolean;
  /**
   * How long a conditional exec may wait behind the one running (ms; 0 or
   * absent: as long as that one runs): then it is taken back, if the
   * Worker has not taken it, with ExecNotRun("wait timeout").
   */
  readonly waitMs?: number;
}

/** InstanceExecOptions as instanceOptions builds it (a type alias: the channel indexes it by name). */
type ExecOptionsRecord = { -readonly [K in keyof InstanceExecOptions]: InstanceExecOptions[K] };

/**
 * What an exec carries to the instance (instance.ts) besides its bytes,
 * from its options. Built by assignment, not by spreading conditional
 * literals: it runs for every statement, and each spread is a copy.
 */
export function instanceOptions(options: ExecOptions): ExecOptionsRecord {
  const o: ExecOptionsRecord = {
    runAs: options.runAs ?? null,
    timeoutMs: options.timeoutMs ?? 0,
    pid: options.pid ?? null,
  };
  if (options.backends !== undefined) o.backends = options.backends;
  if (options.activity !== undefined) o.activity = options.activity;
  if (options.channels !== undefined) o.channels = options.channels;
  if (options.names !== undefined) o.names = options.names;
  if (options.reloadSettings !== undefined) o.reloadSettings = options.reloadSettings;
  if (options.reloadFiles !== undefined) o.reloadFiles = options.reloadFiles;
  if (options.loadExtensions === true) o.loadExtensions = true;
  if (options.temp !== undefined) o.temp = options.temp;
  if (options.feed === true) o.feed = true;
  if (options.discardSequences === true) o.discardSequences = true;
  if (options.advisoryWait === true) o.advisoryWait = true;
  if (options.clockAtMs !== undefined) o.clockAtMs = options.clockAtMs;
  if (options.customMade !== undefined) o.customMade = options.customMade;
  if (options.resetValues !== undefined) {
    o.resetValues = options.resetValues;
    o.resetAsSuperuser = options.resetAsSuperuser === true;
  }
  return o;
}

export interface ExecutorOptions {
  readonly placement?: "worker" | "inline";
  /**
   * With a Worker, microseconds it polls for the next exec before it sleeps
   * (channel.ts; pgts.engine_spin_time); default 0.
   */
  readonly spinUs?: number;
  readonly settings?: Readonly<Record<string, string>>;
  /** The settings pgts's files set, with file and line (settingsource.ts). */
  readonly settingFiles?: SettingFiles;
  /** A cluster image to load into the (empty) data directory first; see instance.ts. */
  readonly image?: ImageSource;
  /** The database of the cluster the backend serves (PGlite's default: "postgres"). */
  readonly database?: string;
  /**
   * Bound lock waits (lockwait.ts) to this many ms by default; 0 or absent:
   * not watched (no prepared transactions, no lock waits).
   */
  readonly lockWaitMs?: number;
}
