/**
 * The data directory and its lock file, as miscinit.c and utils/pidfile.h
 * define them: the contract the postmaster and the CLI use, and the pure
 * parts (the eight-line postmaster.pid layout, its parsing). The node:fs
 * implementation lives in src/adapters/node/datadir.ts; this module never
 * touches a file.
 *
 * postmaster.pid, one value per line:
 *   1 postmaster PID          5 first Unix socket directory
 *   2 data directory          6 first listen address
 *   3 start time (epoch s)    7 shared memory key ("%9lu %9lu"; pgts writes 0 0)
 *   4 port                    8 status: "starting", "stopping", "ready   ", "standby "
 * The status words share one width so that rewriting the line in place never
 * changes the file's length, which lets pg_ctl-style readers poll it safely.
 */

/** The lock file's name inside the data directory. */
export const PID_FILE = "postmaster.pid";
/** The options the server was started with, printed by `pgts status`. */
export const OPTS_FILE = "postmaster.opts";
/** Marks a pgts cluster; holds CLUSTER_FORMAT (PostgreSQL's PG_VERSION). */
export const VERSION_FILE = "PGTS_VERSION";
/** The layout version `pgts init` writes and the server accepts. */
export const CLUSTER_FORMAT = "1";

export const LOCK_FILE_LINE = {
  PID: 1,
  DATA_DIR: 2,
  START_TIME: 3,
  PORT: 4,
  SOCKET_DIR: 5,
  LISTEN_ADDR: 6,
  SHMEM_KEY: 7,
  PM_STATUS: 8,
} as const;

export type PmStatus = "starting" | "stopping" | "ready" | "standby";

/** The status words as written, padded to one width. */
export const PM_STATUS_TEXT: Readonly<Record<PmStatus, string>> = {
  starting: "starting",
  stopping: "stopping",
  ready: "ready   ",
  standby: "standby ",
};

export interface LockFileContents {
  readonly pid: number;
  readonly dataDir: string;
  /** Seconds since the epoch. */
  readonly startTime: number;
  readonly port: number;
  readonly socketDir: string;
  readonly listenAddress: string;
  /** The shared memory key line as written ("        0         0"). */
  readonly shmemKey: string;
  /** Null while the postmaster has not written a status yet. */
  readonly status: PmStatus | null;
}

/** The fields a running postmaster may update (AddToDataDirLockFile). */
export type LockFileUpdate = Partial<
  Pick<LockFileContents, "port" | "socketDir" | "listenAddress" | "status">
>;

/** PostgreSQL's "%9lu %9lu" shared memory line for key and id 0. */
export const NO_SHMEM_KEY = `${"0".padStart(9)} ${"0".padStart(9)}`;

export function formatLockFile(c: LockFileContents): string {
  const lines = [
    String(c.pid),
    c.dataDir,
    String(c.startTime),
    String(c.port),
    c.socketDir,
    c.listenAddress,
    c.shmemKey,
    c.status === null ? "" : PM_STATUS_TEXT[c.status],
  ];
  return lines.map((l) => `${l}\n`).join("");
}

/** Parses postmaster.pid; null when the first line is not a PID. Missing lines read as empty. */
export function parseLockFile(text: string): LockFileContents | null {
  const lines = text.split("\n");
  const line = (n: number) => (lines[n - 1] ?? "").replace(/\r$/, "");
  const pid = Number.parseInt(line(LOCK_FILE_LINE.PID), 10);
  if (!Number.isInteger(pid)) return null;
  const statusText = line(LOCK_FILE_LINE.PM_STATUS).trimEnd();
  const status = (["starting", "stopping", "ready", "standby"] as const).find(
    (s) => s === statusText,
  ) ?? null;
  return {
    pid,
    dataDir: line(LOCK_FILE_LINE.DATA_DIR),
    startTime: Number.parseInt(line(LOCK_FILE_LINE.START_TIME), 10) || 0,
    port: Number.parseInt(line(LOCK_FILE_LINE.PORT), 10) || 0,
    socketDir: line(LOCK_FILE_LINE.SOCKET_DIR),
    listenAddress: line(LOCK_FILE_LINE.LISTEN_ADDR),
    shmemKey: line(LOCK_FILE_LINE.SHMEM_KEY),
    status,
  };
}

/** What the server knows when it takes the lock. */
export interface LockRequest {
  readonly pid: number;
  readonly port: number;
  /** Seconds since the epoch; now by default. */
  readonly startTime?: number;
  readonly socketDir?: string;
  readonly listenAddress?: string;
}

/**
 * The postmaster's hold on postmaster.pid, from CreateDataDirLockFile until
 * exit. Disposing it (or `release()`) removes the file if it is still ours.
 */
export interface DataDirLock extends Disposable {
  readonly path: string;
  readonly contents: LockFileContents;
  /** Rewrites the file with changed fields (AddToDataDirLockFile). */
  update(fields: LockFileUpdate): void;
  /** True while the file still names this process (RecheckDataDirLockFile). */
  recheck(): boolean;
  /** Removes the file; safe to call more than once. */
  release(): void;
}

/**
 * A data directory. Every failure is a PgError with PostgreSQL's message
 * (severity FATAL), ready for the CLI or the postmaster to report.
 */
export interface DataDirectory {
  /** Absolute path. */
  readonly path: string;
  /**
   * checkDataDir and ValidatePgVersion: the directory exists, is a directory
   * owned by this user with mode 0700 or 0750, and holds VERSION_FILE with
   * CLUSTER_FORMAT.
   */
  check(): void;
  /** Takes postmaster.pid exclusively, taking over a stale one from a dead process. */
  lock(request: LockRequest): DataDirLock;
  /** The current lock file, or null when there is none. */
  readLockFile(): LockFileContents | null;
}

/** The engine's own directory inside the data directory (PGlite's cluster). */
export const ENGINE_DIR = "pglite";
