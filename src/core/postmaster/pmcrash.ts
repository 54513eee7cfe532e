/**
 * Children ending, and what a crash sets off (postmaster.c's
 * process_pm_child_exit, CleanupBackend, HandleChildCrash and
 * HandleFatalError). An exit is judged by its kind (backendtype.ts): the
 * startup process and an engine still recovering have their own rules, a
 * background worker's exit counts against its restart intensity, and any
 * other abnormal exit is a crash that stops every child with SIGQUIT.
 *
 * It only records the crash and moves PMState to where the state machine
 * (pmstatemachine.ts) takes over: the restart itself happens there once
 * every child is gone. Also the two deadlines a crash sets: SIGKILL for
 * children that ignore the SIGQUIT, and the engine's retry after it failed
 * to start after a crash. Called only from the server loop.
 */

import { ereport } from "../elog.ts";
import { childExitMessage, childProcName, classifyChildExit } from "./backendtype.ts";
import type { ChildExit } from "../adapter.ts";
import { LOG, type PMContext } from "./pmcontext.ts";
import type { PMChild } from "./pmchild.ts";
import { type QuitSignalReason, Shutdown } from "./pmstate.ts";

/** The first and the longest wait before starting the engine again after it failed to start after a crash. */
const ENGINE_RETRY_MIN_MS = 1000;
const ENGINE_RETRY_MAX_MS = 30_000;

/** process_pm_child_exit + CleanupBackend. */
export function processChildExit(pm: PMContext, pid: number, exit: ChildExit): void {
  const registry = pm.children!.registry;
  const child = registry.findByPid(pid);
  if (child === undefined) return; // already reaped, or not ours
  const quitSent = pm.children!.takeQuitSent(child);
  pm.children!.cancelSeen(child); // a cancel's reader waits no longer
  const released = registry.release(child);
  const kind = child.kind;
  switch (kind) {
    case "startup":
      startupExited(pm, child, exit, quitSent);
      return;
    case "engine":
      if (!pm.engineReady) {
        // Still in its recovery phase: judged like the startup process.
        startupExited(pm, child, exit, quitSent);
        return;
      }
      pm.engineReady = false;
      if (classifyChildExit(kind, exit, { pmState: pm.pmState }) === "crash") {
        handleChildCrash(pm, child, exit);
      }
      return;
    case "checkpointer":
    case "autovac_launcher":
    case "logger":
    case "stats":
    case "archiver":
    case "backend":
      if (!released || classifyChildExit(kind, exit, { pmState: pm.pmState }) === "crash") {
        handleChildCrash(pm, child, exit);
      } else if (exit.code !== 0) {
        ereport(
          kind === "backend" ? "DEBUG2" : "LOG",
          childExitMessage(procName(child), pid, exit),
          LOG,
        );
      }
      return;
    case "bg_worker":
      bgworkerExited(pm, child, exit);
      return;
    case "dead_end_backend":
      return;
    default: {
      const never: never = kind;
      throw new TypeError(`Unknown backend type: ${String(never)}`);
    }
  }
}

function procName(child: PMChild): string {
  return childProcName(child.kind, child.workerType ?? child.name);
}

/** The startup process's special cases (and the engine's, before it is ready). */
function startupExited(pm: PMContext, child: PMChild, exit: ChildExit, quitSent: boolean): void {
  if (child.kind === "startup") pm.startupStatus = "not_running";
  if (pm.shutdown > Shutdown.NoShutdown && (exit.code === 0 || exit.code === 1)) {
    // Stopped on request (or done anyway): the state machine does the rest.
    if (pm.pmState === "PM_STARTUP" || pm.pmState === "PM_RECOVERY") {
      pm.updatePMState("PM_WAIT_BACKENDS");
    }
    return;
  }
  if (exit.code !== 0 || child.kind === "engine") {
    // A failure nobody caused during the first phase: recovery itself is
    // broken, and looping through crash recovery would not fix it.
    if (pm.pmState === "PM_STARTUP" && !quitSent) {
      ereport("LOG", childExitMessage(procName(child), child.pid, exit), LOG);
      if (child.kind === "engine" && pm.hasRun) {
        // After a crash the cluster ran before, so recovery is not broken
        // in itself: what stops it now is usually outside (a full disk
        // the crash recovery must write to). PostgreSQL would exit and
        // wait for a manual restart; pgts tries again, with backoff,
        // refusing connections (57P03) meanwhile.
        pm.engineRetryDelayMs = Math.min(
          ENGINE_RETRY_MAX_MS,
          Math.max(ENGINE_RETRY_MIN_MS, pm.engineRetryDelayMs * 2),
        );
        pm.engineRetryAt = Date.now() + pm.engineRetryDelayMs;
        ereport(
          "LOG",
          `engine could not start after a crash; retrying in ${pm.engineRetryDelayMs / 1000} s`,
          {
            ...LOG,
            hint:
              "Look for the cause above (such as a full disk); a fast shutdown stops the retries.",
          },
        );
        return;
      }
      ereport("LOG", "aborting startup due to startup process failure", LOG);
      void pm.exitPostmaster(1);
      return;
    }
    // Later, the same failure stops the cluster once everyone is gone;
    // if we had signalled it, its death is ours and we do restart.
    if (!quitSent) pm.startupStatus = "crashed";
    handleChildCrash(pm, child, exit);
    return;
  }
  if (pm.pmState !== "PM_STARTUP" && pm.pmState !== "PM_RECOVERY") return;
  // Startup succeeded. FatalError stays set until the engine too is done
  // with its recovery (maybeReachRun).
  pm.abortStartTime = 0;
  pm.startupDone = true;
  maybeReachRun(pm);
}

/** PM_RUN once the startup process is done and the engine (if any) serves. */
export function maybeReachRun(pm: PMContext): void {
  if (!pm.startupDone || (pm.entries.engine !== undefined && !pm.engineReady)) return;
  if (pm.pmState !== "PM_STARTUP" && pm.pmState !== "PM_RECOVERY") return;
  pm.fatalError = false;
  pm.connsAllowed = true;
  pm.hasRun = true;
  pm.engineRetryDelayMs = 0;
  pm.updatePMState("PM_RUN");
  pm.hooks.setStatus?.("ready");
  ereport("LOG", "database system is ready to accept connections", LOG);
}

function bgworkerExited(pm: PMContext, child: PMChild, exit: ChildExit): void {
  // Exits the postmaster itself caused must not count against the
  // worker's restart intensity.
  const counted = !pm.fatalError && pm.shutdown < Shutdown.ImmediateShutdown;
  const crashed = pm.bgworkers.isCrash(child, exit, pm.pmState);
  if (crashed) {
    handleChildCrash(pm, child, exit);
  } else if (counted || exit.code === 0) {
    const level = exit.code === 0 ? "DEBUG1" : "LOG";
    ereport(level, childExitMessage(procName(child), child.pid, exit), LOG);
  }
  pm.bgworkers.exited(child, exit, { counted });
}

/** HandleChildCrash: the first crash stops everyone; later exits only update the books. */
function handleChildCrash(pm: PMContext, child: PMChild, exit: ChildExit): void {
  if (pm.fatalError || pm.shutdown >= Shutdown.ImmediateShutdown) return;
  ereport("LOG", childExitMessage(procName(child), child.pid, exit), LOG);
  ereport("LOG", "terminating any other active server processes", LOG);
  handleFatalError(pm, "crash");
}

/** HandleFatalError. */
function handleFatalError(pm: PMContext, reason: QuitSignalReason): void {
  pm.children!.quitReason = reason;
  pm.terminateChildren("SIGQUIT");
  pm.fatalError = true;
  const state = pm.pmState;
  switch (state) {
    case "PM_INIT":
    case "PM_WAIT_BACKENDS":
    case "PM_WAIT_DEAD_END":
    case "PM_NO_CHILDREN":
      break;
    // PostgreSQL leaves PM_STARTUP alone and lets the startup process's
    // exit move on; pgts goes straight to waiting, so a startup process
    // that finishes after the SIGQUIT cannot declare the system ready.
    case "PM_STARTUP":
    case "PM_RECOVERY":
    case "PM_RUN":
    case "PM_STOP_BACKENDS":
      pm.updatePMState("PM_WAIT_BACKENDS");
      break;
    case "PM_WAIT_CHECKPOINTER":
      pm.updatePMState("PM_WAIT_DEAD_END");
      break;
    default: {
      const never: never = state;
      throw new TypeError(`Unknown PMState: ${String(never)}`);
    }
  }
  if (pm.abortStartTime === 0) pm.abortStartTime = Date.now();
}

/** When a crash's deadline is due (the engine's retry, SIGKILL for the slow), or null. */
export function nextCrashDeadline(pm: PMContext): number | null {
  let due: number | null = null;
  if (pm.abortStartTime !== 0 && (pm.fatalError || pm.shutdown >= Shutdown.ImmediateShutdown)) {
    due = pm.abortStartTime + pm.settings.seconds("sigkill_children_after") * 1000;
  }
  if (pm.engineRetryAt !== 0 && (due === null || pm.engineRetryAt < due)) due = pm.engineRetryAt;
  return due;
}

/** The timer's work: the engine's retry after a crash, then SIGKILL for who ignored SIGQUIT. */
export async function processCrashDeadlines(pm: PMContext): Promise<void> {
  if (pm.engineRetryAt !== 0 && Date.now() >= pm.engineRetryAt) {
    pm.engineRetryAt = 0;
    if (pm.shutdown === Shutdown.NoShutdown && pm.pmState === "PM_STARTUP") {
      if ((await pm.children!.startAux("engine")) === null) {
        await pm.exitPostmaster(1);
        return;
      }
    }
  }
  const after = pm.settings.seconds("sigkill_children_after") * 1000;
  if (
    (pm.shutdown >= Shutdown.ImmediateShutdown || pm.fatalError) &&
    pm.abortStartTime !== 0 && Date.now() - pm.abortStartTime >= after
  ) {
    // We were gentle with them before; not any more.
    ereport("LOG", "issuing SIGKILL to recalcitrant children", LOG);
    pm.terminateChildren("SIGKILL");
    pm.abortStartTime = 0;
  }
}
