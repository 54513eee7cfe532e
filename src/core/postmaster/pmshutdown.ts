/**
 * Requests from outside (postmaster.c's process_pm_reload_request and
 * process_pm_shutdown_request): SIGHUP re-reads the configuration and passes
 * the signal on; SIGTERM, SIGINT and SIGQUIT ask for a smart, fast or
 * immediate shutdown. The most urgent request wins and a gentler one later
 * is ignored.
 *
 * A request only sets the shutdown level and the first PMState of its
 * sequence; pmstatemachine.ts moves the sequence along as children exit.
 * Called only from the server loop.
 */

import { ereport } from "../elog.ts";
import { LOG, type PMContext } from "./pmcontext.ts";
import { btmaskAllExcept } from "./pmchild.ts";
import { Shutdown, type ShutdownLevel } from "./pmstate.ts";

/** process_pm_reload_request. */
export async function processReloadRequest(pm: PMContext): Promise<void> {
  // Once a fast or immediate shutdown has begun, a reload could only get
  // in the way (and could restart children we are stopping).
  if (pm.shutdown > Shutdown.SmartShutdown) return;
  ereport("LOG", "received SIGHUP, reloading configuration files", LOG);
  try {
    await pm.hooks.reloadConfig?.();
  } catch (e) {
    ereport(
      "LOG",
      `configuration file reload failed: ${e instanceof Error ? e.message : String(e)}`,
      LOG,
    );
  }
  pm.signalChildren("SIGHUP", btmaskAllExcept("dead_end_backend"));
}

/** process_pm_shutdown_request. */
export function processShutdownRequest(pm: PMContext, level: ShutdownLevel): void {
  if (level <= pm.shutdown) return;
  pm.shutdown = level;
  switch (level) {
    case Shutdown.NoShutdown:
      return;
    case Shutdown.SmartShutdown:
      ereport("LOG", "received smart shutdown request", LOG);
      pm.hooks.setStatus?.("stopping");
      // In PM_RUN existing sessions go on; new clients are turned away
      // and the rest of the shutdown waits for the last session to end.
      if (pm.pmState === "PM_RUN") pm.connsAllowed = false;
      else if (pm.pmState === "PM_STARTUP" || pm.pmState === "PM_RECOVERY") {
        pm.updatePMState("PM_STOP_BACKENDS");
      }
      return;
    case Shutdown.FastShutdown:
      ereport("LOG", "received fast shutdown request", LOG);
      pm.hooks.setStatus?.("stopping");
      if (pm.pmState === "PM_STARTUP" || pm.pmState === "PM_RECOVERY") {
        pm.updatePMState("PM_STOP_BACKENDS");
      } else if (pm.pmState === "PM_RUN") {
        ereport("LOG", "aborting any active transactions", LOG);
        pm.updatePMState("PM_STOP_BACKENDS");
      }
      return;
    case Shutdown.ImmediateShutdown:
      ereport("LOG", "received immediate shutdown request", LOG);
      pm.hooks.setStatus?.("stopping");
      pm.children!.quitReason = "stop";
      pm.terminateChildren("SIGQUIT");
      pm.updatePMState("PM_WAIT_BACKENDS");
      pm.accepting = false;
      pm.abortStartTime = Date.now();
      return;
    default: {
      const never: never = level;
      throw new TypeError(`Unknown shutdown level: ${String(never)}`);
    }
  }
}
