/**
 * The postmaster's state, as PostgreSQL's postmaster.c keeps it: `PMState`,
 * the `Shutdown` level, `FatalError` and `connsAllowed`, plus the events the
 * server loop consumes.
 *
 * This module only names things. Nothing here changes a state: the one place
 * that does is `PMContext.updatePMState` (PostgreSQL's `UpdatePMState`), so
 * every transition is logged once, at DEBUG1.
 *
 * pgts keeps the states of PostgreSQL 18 that have a meaning without WAL
 * shipping, hot standby or io workers: PM_HOT_STANDBY, PM_WAIT_XLOG_SHUTDOWN,
 * PM_WAIT_XLOG_ARCHIVAL and PM_WAIT_IO_WORKERS have no counterpart. The
 * shutdown checkpoint that PostgreSQL writes in PM_WAIT_XLOG_SHUTDOWN is
 * folded into PM_WAIT_CHECKPOINTER, where the checkpointer and the engine are
 * told to finish and exit.
 */

import type { AcceptedConnection, ChildExit, ChildProcess } from "../adapter.ts";

/** The postmaster's states, in PostgreSQL's order (a later state is further into shutdown). */
export const PM_STATES = [
  "PM_INIT",
  "PM_STARTUP",
  "PM_RECOVERY",
  "PM_RUN",
  "PM_STOP_BACKENDS",
  "PM_WAIT_BACKENDS",
  "PM_WAIT_CHECKPOINTER",
  "PM_WAIT_DEAD_END",
  "PM_NO_CHILDREN",
] as const;

/** PostgreSQL's `PMState`; the value is what `pmstate_name()` prints. */
export type PMState = (typeof PM_STATES)[number];

/** True when `a` comes at or after `b` in the state order (`pmState >= PM_STOP_BACKENDS`). */
export function pmStateAtLeast(a: PMState, b: PMState): boolean {
  return PM_STATES.indexOf(a) >= PM_STATES.indexOf(b);
}

/** The `Shutdown` level; ordered, so a more urgent request compares greater. */
export const Shutdown = {
  NoShutdown: 0,
  SmartShutdown: 1,
  FastShutdown: 2,
  ImmediateShutdown: 3,
} as const;

export type ShutdownLevel = (typeof Shutdown)[keyof typeof Shutdown];

/** Which signal asks for which shutdown level. */
export function shutdownLevelFor(sig: "SIGTERM" | "SIGINT" | "SIGQUIT"): ShutdownLevel {
  switch (sig) {
    case "SIGTERM":
      return Shutdown.SmartShutdown;
    case "SIGINT":
      return Shutdown.FastShutdown;
    case "SIGQUIT":
      return Shutdown.ImmediateShutdown;
    default: {
      const never: never = sig;
      throw new TypeError(`Unknown shutdown signal: ${String(never)}`);
    }
  }
}

/**
 * Why the postmaster sent SIGQUIT (PostgreSQL's `QuitSignalReason`): a
 * backend tells its client a different story for each.
 */
export type QuitSignalReason = "crash" | "stop";

/**
 * What the startup process is doing (PostgreSQL's `StartupStatusEnum`).
 * "signaled" means we sent it SIGQUIT/SIGKILL, so its non-zero exit is not
 * the startup failure that would stop the postmaster.
 */
export type StartupStatus = "not_running" | "running" | "signaled" | "crashed";

/**
 * What a backend is doing, as pg_stat_activity shows it: reported by an
 * in-process backend run (the "backend-run" event below) and kept on its
 * `PMChild`. Declared here with the event that carries it: this module
 * names things and imports none of the postmaster's others.
 */
export interface BackendActivity {
  readonly state: string;
  readonly query: string | null;
}

/** Signals the postmaster itself acts on. */
export type PostmasterSignal = "SIGHUP" | "SIGTERM" | "SIGINT" | "SIGQUIT";

/**
 * One unit of work for the server loop. Signal handlers, socket callbacks,
 * child exit promises and timers only enqueue these; the loop handles them
 * one at a time, in order, so no two handlers ever interleave.
 */
export type PMEvent =
  | { readonly type: "signal"; readonly signal: PostmasterSignal }
  | { readonly type: "child-exit"; readonly pid: number; readonly exit: ChildExit }
  | { readonly type: "child-message"; readonly pid: number; readonly message: unknown }
  | { readonly type: "connection"; readonly conn: AcceptedConnection }
  | { readonly type: "dead-end-done"; readonly id: number }
  | { readonly type: "bgworker-change" }
  | { readonly type: "bgworker-terminate"; readonly id: number }
  /** A validated cancel request: SIGINT to that backend, if it still runs. */
  | { readonly type: "cancel-backend"; readonly pid: number; readonly from?: number }
  /** An in-process backend run (an HTTP request) asking for a backend slot. */
  | {
    readonly type: "backend-run";
    readonly proc: ChildProcess;
    readonly name: string;
    readonly activity?: () => BackendActivity;
    readonly admitted: (error: Error | null) => void;
  }
  | { readonly type: "timer" };
