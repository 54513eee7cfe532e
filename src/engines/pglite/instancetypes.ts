/**
 * The PGlite instance's contract (instance.ts): what opening one takes, and
 * what an exec is given and answers. The Worker's messages
 * (executor-messages.ts) carry these options across threads.
 */

import type { PGlite } from "@electric-sql/pglite";
import type { WalRequests } from "./walsyncs.ts";
import type { ImageSource } from "./image.ts";
import type { CopyFeedInput } from "./copyfeed.ts";
import type { ActivityRow, BackendSignal, BackendsUpdate } from "./backends.ts";
import type { TempPair, TempSpan } from "./tempnamespace.ts";
import type { SharedInterruptTarget } from "./interrupt.ts";
import type { GucChange } from "./gucwatch.ts";
import type { SettingFiles } from "./settingsource.ts";
import type { ShownName } from "./enginenames.ts";

export interface InstanceOptions {
  /** The cancel cell (interrupt.ts), shared with the thread that requests cancels. */
  readonly cancelCell: Int32Array;
  /**
   * Put Postgres's heap in shared memory, so another thread can set its
   * interrupt flags during a statement (`interruptTarget`).
   */
  readonly sharedHeap?: boolean;
  /**
   * `-c name=value` server settings, as in postgresql.conf. `fsync` is
   * PostgreSQL's (default on; always off for memory://): see fsync.ts.
   */
  readonly settings?: Readonly<Record<string, string>>;
  /** The settings of `settings` that pgts's files set, with file and line (settingsource.ts). */
  readonly settingFiles?: SettingFiles;
  /** A cluster image (image.ts) a memory:// data directory starts from, instead of PGlite's initdb. */
  readonly image?: ImageSource;
  /** The database of the cluster the backend serves (PGlite's default: "postgres"). */
  readonly database?: string;
  /** Group commit: every WAL ticket up to `durable` is on disk (walflush.ts). */
  readonly onWalDurable?: (durable: number) => void;
  /** Group commit: a deferred fdatasync of the WAL failed (the PANIC's message); the backend is ended. */
  readonly onWalFailure?: (message: string) => void;
  /**
   * Group commit: the table through which another thread runs the
   * background fdatasyncs (walsyncs.ts; default: this thread's I/O pool).
   */
  readonly walRequests?: WalRequests;
  /** Notes each step of the open as it ends (the start-up tracer, core/starttrace.ts). */
  readonly trace?: (step: string) => void;
}

export interface PGliteInstance {
  readonly db: PGlite;
  /** The shared heap and where its interrupt flags are; null unless `sharedHeap`. */
  readonly interruptTarget: SharedInterruptTarget | null;
  /**
   * Why temporary objects are shared by all sessions (tempnamespace.ts), or
   * null when each session has its own.
   */
  readonly tempShared: string | null;
  /**
   * Runs raw frontend messages; `onData` gets copies of the backend bytes.
   * Resolves with the signals the exec sent to other sessions (backends.ts)
   * and the temporary namespaces the backend has after it. A
   * `CopyFeedInput` (copyfeed.ts) is input that grows while it runs.
   */
  exec(
    seq: number,
    bytes: Uint8Array | CopyFeedInput,
    onData: (chunk: Uint8Array) => void,
    options: InstanceExecOptions,
  ): Promise<InstanceExecResult>;
  /**
   * The last WAL ticket issued (walflush.ts): an answer produced now may
   * be released only once `onWalDurable` reached it. 0 without fsync.
   */
  walTicket(): number;
  /** Every WAL ticket up to this one is on disk. */
  walDurable(): number;
  close(): Promise<void>;
}

export interface InstanceExecResult {
  readonly signals: BackendSignal[];
  /**
   * The backend's temporary namespaces at the exec's start and end, when
   * PostgreSQL changed them during it; else null.
   */
  readonly temp: TempSpan | null;
  /** What it changed of the settings, however spelled (gucwatch.ts); null: nothing. */
  readonly gucs: GucChange | null;
}

export interface InstanceExecOptions {
  /**
   * The wall clock Postgres reads during this exec, in milliseconds since
   * the epoch (wallclock.ts's holdWallClock): a deferred BEGIN's, run when
   * the block's first statement takes the engine (deferredbegin.ts).
   */
  readonly clockAtMs?: number;
  /**
   * The OID of the login role of the session whose bytes these are, or null
   * for pgts's own work (guard.ts).
   */
  readonly runAs: number | null;
  /** The pid of the session whose bytes these are (pg_backend_pid()), or null for pgts's own work. */
  readonly pid: number | null;
  /** The engine's sessions, when they changed since the last exec that passed them: all, or the change. */
  readonly backends?: BackendsUpdate;
  /** pg_stat_activity's rows, when the input reads them. */
  readonly activity?: readonly ActivityRow[];
  /** The session's LISTEN channels, when the input reads them (none otherwise). */
  readonly channels?: readonly string[];
  /**
   * What pg_prepared_statements and pg_cursors show of the session's names
   * and texts, when the input reads them (enginenames.ts shownNames).
   */
  readonly names?: readonly ShownName[];
  /** Settings a reload of the configuration changed, applied first (configreload.ts). */
  readonly reloadSettings?: readonly (readonly [string, string])[];
  /** With reloadSettings: every setting pgts's files set now, with file and line (settingsource.ts). */
  readonly reloadFiles?: SettingFiles;
  /** Put the shipped extension bundles into the file system first (extensions.ts). */
  readonly loadExtensions?: boolean;
  /**
   * The temporary namespaces of the session whose bytes these are
   * (tempnamespace.ts); without it the backend keeps the ones it has.
   */
  readonly temp?: TempPair;
  /**
   * statement_timeout: after this many ms the exec is cancelled as a cancel
   * request would cancel it; 0 for none.
   */
  readonly timeoutMs: number;
  /** The exec's input is a CopyFeedInput (the worker builds it; copyfeed.ts). */
  readonly feed?: boolean;
  /** The session's currval/lastval values are forgotten first (DISCARD; sequences.ts). */
  readonly discardSequences?: boolean;
  /** A lone pg_advisory_lock() that waits: queued for the key if it cannot have it (advisory.ts). */
  readonly advisoryWait?: boolean;
  /** The session's reset values (its startup map), sent with its first exec (resetvalues.ts). */
  readonly resetValues?: readonly (readonly [string, string])[];
  /** The session logged in as a superuser: its reset values are set as one's. */
  readonly resetAsSuperuser?: boolean;
  /** Custom placeholders the session SET or RESET since its last exec (customsettings.ts). */
  readonly customMade?: readonly string[];
}
