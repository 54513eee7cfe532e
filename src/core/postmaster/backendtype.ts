/**
 * The kinds of child the postmaster runs (PostgreSQL's `BackendType`, from
 * miscadmin.h and launch_backend.c's `child_process_kinds[]`) and the rule
 * each kind's exit is judged by (process_pm_child_exit / CleanupBackend).
 *
 * pgts adds one kind PostgreSQL does not have: `engine`, the single owner of
 * the SQL engine. It is pgts's "shared memory": whatever it holds, every
 * backend depends on, so any exit of it outside the shutdown sequence is a
 * crash. Its first phase is recovery (opening the data directory replays
 * WAL), so until it reports ready it is judged like the startup process: if
 * it fails then, the postmaster gives up instead of looping through crash
 * recovery.
 *
 * The tables here are data, not behaviour: the postmaster reads them, tests
 * check them, and nothing here touches a child.
 */

import type { CatchableSignal, ChildExit } from "../adapter.ts";
import { type PMState, pmStateAtLeast } from "./pmstate.ts";

export const BACKEND_TYPES = [
  "backend",
  "dead_end_backend",
  "startup",
  "checkpointer",
  "logger",
  "stats",
  "autovac_launcher",
  "archiver",
  "bg_worker",
  "engine",
] as const;

/** PostgreSQL's `BackendType`, lower-cased without the `B_` prefix. */
export type BackendType = (typeof BACKEND_TYPES)[number];

export function isBackendType(s: string): s is BackendType {
  return (BACKEND_TYPES as readonly string[]).includes(s);
}

/** What `GetBackendTypeDesc()` returns: the name in pg_stat_activity and the ps title. */
export function backendTypeDesc(kind: BackendType): string {
  switch (kind) {
    case "backend":
      return "client backend";
    case "dead_end_backend":
      return "dead-end client backend";
    case "startup":
      return "startup";
    case "checkpointer":
      return "checkpointer";
    case "logger":
      return "logger";
    case "stats":
      return "stats collector";
    case "autovac_launcher":
      return "autovacuum launcher";
    case "archiver":
      return "archiver";
    case "bg_worker":
      return "background worker";
    case "engine":
      return "engine";
    default: {
      const never: never = kind;
      throw new TypeError(`Unknown backend type: ${String(never)}`);
    }
  }
}

/**
 * The name the postmaster uses for a child in "%s (PID %d) exited with exit
 * code %d". PostgreSQL names auxiliary processes "... process", backends by
 * their type description and workers by `background worker "<bgw_type>"`.
 */
export function childProcName(kind: BackendType, workerType?: string): string {
  switch (kind) {
    case "backend":
    case "dead_end_backend":
      return backendTypeDesc(kind);
    case "bg_worker":
      return `background worker "${workerType ?? ""}"`;
    case "startup":
      return "startup process";
    case "checkpointer":
      return "checkpointer process";
    case "logger":
      return "system logger process";
    case "stats":
      return "statistics collector process";
    case "autovac_launcher":
      return "autovacuum launcher process";
    case "archiver":
      return "archiver process";
    case "engine":
      return "engine process";
    default: {
      const never: never = kind;
      throw new TypeError(`Unknown backend type: ${String(never)}`);
    }
  }
}

/** How the postmaster must react to a child's exit. */
export type ExitVerdict = "normal" | "crash";

export interface ExitContext {
  readonly pmState: PMState;
  /** For a background worker: whether it has shared-state access (BGWORKER_SHMEM_ACCESS). */
  readonly sharedState?: boolean;
}

function isCode(exit: ChildExit, ...codes: number[]): boolean {
  return exit.code !== null && codes.includes(exit.code);
}

/**
 * Judges one exit by the rules of PostgreSQL's postmaster.c
 * (process_pm_child_exit and CleanupBackend). A "crash" means shared state
 * may be corrupt: every other child is stopped and the state reset. The startup process has further special cases (failure during
 * PM_STARTUP stops the postmaster) that the postmaster applies on top.
 */
export function classifyChildExit(
  kind: BackendType,
  exit: ChildExit,
  ctx: ExitContext,
): ExitVerdict {
  switch (kind) {
    // Exit 0 or 1 (a FATAL) leaves shared state consistent; anything else,
    // including any signal, may have left it half-written.
    case "backend":
      return isCode(exit, 0, 1) ? "normal" : "crash";
    case "bg_worker":
      if (ctx.sharedState === false) return "normal";
      return isCode(exit, 0, 1) ? "normal" : "crash";
    // Served by the postmaster itself in pgts: it never touches shared state.
    case "dead_end_backend":
      return "normal";
    // The log collector and stats process hold nothing shared: just restart them.
    case "logger":
    case "stats":
      return "normal";
    // PostgreSQL's archiver attaches to shared memory, so since 14 an exit
    // other than 0 or 1 is a crash there. pgts's reads and renames files
    // and runs archive_command: it shares nothing, so it is only restarted.
    case "archiver":
      return "normal";
    // A clean exit means "relaunch me"; anything else is a crash.
    case "autovac_launcher":
      return isCode(exit, 0) ? "normal" : "crash";
    case "startup":
      return isCode(exit, 0) ? "normal" : "crash";
    // Expected to exit only when told to, at the end of a normal shutdown;
    // any other exit (even a clean one) is treated as a crash.
    case "checkpointer":
    case "engine":
      return isCode(exit, 0) && pmStateAtLeast(ctx.pmState, "PM_WAIT_CHECKPOINTER")
        ? "normal"
        : "crash";
    default: {
      const never: never = kind;
      throw new TypeError(`Unknown backend type: ${String(never)}`);
    }
  }
}

/**
 * Kinds that are simply relaunched after a normal exit (PostgreSQL's
 * `LaunchMissingBackgroundProcesses`), as opposed to backends, which come
 * and go with clients, and workers, which follow their own restart policy.
 */
export function relaunchedWhenMissing(kind: BackendType): boolean {
  switch (kind) {
    case "logger":
    case "stats":
    case "autovac_launcher":
    case "checkpointer":
    case "archiver":
      return true;
    case "backend":
    case "dead_end_backend":
    case "startup":
    case "bg_worker":
    case "engine":
      return false;
    default: {
      const never: never = kind;
      throw new TypeError(`Unknown backend type: ${String(never)}`);
    }
  }
}

/** Every signal a child can handle, for runtimes that install a handler per signal. */
export const CATCHABLE_SIGNALS: readonly CatchableSignal[] = [
  "SIGHUP",
  "SIGINT",
  "SIGTERM",
  "SIGQUIT",
  "SIGUSR1",
  "SIGUSR2",
  "SIGABRT",
];

/** Linux signal numbers, for "terminated by signal %d: %s". */
export const SIGNAL_NUMBERS = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGABRT: 6,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGUSR2: 12,
  SIGTERM: 15,
} as const;

/** What strsignal() prints for each signal on Linux. */
export const SIGNAL_DESCRIPTIONS = {
  SIGHUP: "Hangup",
  SIGINT: "Interrupt",
  SIGQUIT: "Quit",
  SIGABRT: "Aborted",
  SIGKILL: "Killed",
  SIGUSR1: "User defined signal 1",
  SIGUSR2: "User defined signal 2",
  SIGTERM: "Terminated",
} as const;

/** LogChildExit's text: "%s (PID %d) exited with exit code %d" or "... was terminated by signal %d: %s". */
export function childExitMessage(procName: string, pid: number, exit: ChildExit): string {
  if (exit.code !== null) return `${procName} (PID ${pid}) exited with exit code ${exit.code}`;
  return `${procName} (PID ${pid}) was terminated by signal ${SIGNAL_NUMBERS[exit.signal]}: ${
    SIGNAL_DESCRIPTIONS[exit.signal]
  }`;
}
