/**
 * PostmasterStateMachine and what it starts (postmaster.c's
 * PostmasterStateMachine, LaunchMissingBackgroundProcesses and the restart
 * after a crash): after every event the server loop runs it, and it moves
 * the shutdown and crash sequences on as the children they wait for exit,
 * from PM_STOP_BACKENDS down to PM_NO_CHILDREN, then ends the postmaster or,
 * after a crash, rebuilds shared state and starts over at PM_STARTUP.
 *
 * It changes PMState only through `PMContext.updatePMState` and signals
 * children only through `PMContext.signalChildren`. Called only from the
 * server loop.
 */

import { ereport } from "../elog.ts";
import { LOG, type PMContext } from "./pmcontext.ts";
import { btmask, btmaskAllExcept } from "./pmchild.ts";
import type { AuxKind } from "./pmlaunch.ts";
import { Shutdown } from "./pmstate.ts";

/** PostmasterStateMachine: moves the shutdown and crash sequences along. */
export async function postmasterStateMachine(pm: PMContext): Promise<void> {
  if (pm.exitCode !== null) return;
  const registry = pm.children!.registry;
  if (pm.pmState === "PM_RUN" && !pm.connsAllowed) {
    // Smart shutdown: the rest waits for the last session to end.
    if (registry.count(btmask("backend")) === 0) pm.updatePMState("PM_STOP_BACKENDS");
  }
  if (pm.pmState === "PM_STOP_BACKENDS") {
    pm.bgworkers.forgetUnstarted();
    pm.signalChildren("SIGTERM", btmask("backend", "autovac_launcher", "bg_worker", "startup"));
    if (pm.fatalError) {
      // Stopped while crash recovery has not finished (an engine that
      // cannot start, retried): there is nothing for a shutdown
      // checkpoint to keep, and the children started for the recovery
      // (the checkpointer, the engine) would otherwise be waited for.
      pm.terminateChildren("SIGQUIT");
    }
    pm.updatePMState("PM_WAIT_BACKENDS");
  }
  if (pm.pmState === "PM_WAIT_BACKENDS") {
    const abnormal = pm.fatalError || pm.shutdown >= Shutdown.ImmediateShutdown;
    // In a normal shutdown the engine, checkpointer and stats process stay
    // for the shutdown checkpoint; after a crash nothing that touched
    // shared state may survive.
    const mask = abnormal ? btmaskAllExcept("dead_end_backend", "logger") : btmaskAllExcept(
      "dead_end_backend",
      "logger",
      "checkpointer",
      "engine",
      "stats",
      "archiver",
    );
    if (registry.count(mask) === 0) {
      if (abnormal) {
        pm.accepting = false;
        pm.updatePMState("PM_WAIT_DEAD_END");
        pm.signalChildren("SIGQUIT", btmask("dead_end_backend"));
      } else {
        pm.updatePMState("PM_WAIT_CHECKPOINTER");
        pm.signalChildren("SIGUSR2", btmask("checkpointer", "engine", "stats"));
      }
    }
  }
  if (pm.pmState === "PM_WAIT_CHECKPOINTER") {
    // PostgreSQL's PM_SHUTDOWN_2: once the engine closed (its shutdown
    // checkpoint completes the last segment), the archiver's SIGUSR2
    // makes it archive what is ready and exit.
    if (
      registry.count(btmask("checkpointer", "engine", "stats")) === 0 &&
      registry.count(btmask("archiver")) > 0 && !pm.archiverStopping
    ) {
      pm.archiverStopping = true;
      pm.signalChildren("SIGUSR2", btmask("archiver"));
    }
    if (registry.count(btmask("checkpointer", "engine", "stats", "archiver")) === 0) {
      pm.accepting = false;
      pm.updatePMState("PM_WAIT_DEAD_END");
      pm.signalChildren("SIGTERM", btmaskAllExcept("logger"));
    }
  }
  if (pm.pmState === "PM_WAIT_DEAD_END") {
    if (registry.count(btmaskAllExcept("logger")) === 0) pm.updatePMState("PM_NO_CHILDREN");
  }
  if (pm.pmState !== "PM_NO_CHILDREN") return;

  if (pm.shutdown > Shutdown.NoShutdown) {
    if (pm.fatalError) {
      ereport("LOG", "abnormal database system shutdown", LOG);
      await pm.exitPostmaster(1);
    } else {
      await pm.exitPostmaster(0);
    }
    return;
  }
  if (pm.startupStatus === "crashed") {
    ereport("LOG", "shutting down due to startup process failure", LOG);
    await pm.exitPostmaster(1);
    return;
  }
  if (!pm.settings.bool("restart_after_crash")) {
    ereport("LOG", 'shutting down because "restart_after_crash" is off', LOG);
    await pm.exitPostmaster(1);
    return;
  }
  if (pm.fatalError) await reinitialize(pm);
}

/** Crash recovery, once every child is gone. */
async function reinitialize(pm: PMContext): Promise<void> {
  ereport("LOG", "all server processes terminated; reinitializing", LOG);
  pm.bgworkers.list.resetCrashTimes();
  try {
    await pm.hooks.resetSharedState?.();
  } catch (e) {
    ereport(
      "FATAL",
      `could not reinitialize shared state: ${e instanceof Error ? e.message : String(e)}`,
      LOG,
    );
    await pm.exitPostmaster(1);
    return;
  }
  pm.children!.quitReason = null;
  pm.children!.forgetQuitSent();
  if (!(await startChildrenForStartup(pm))) return;
  pm.abortStartTime = 0;
  pm.accepting = true;
  // Clients that arrived while we could not admit anyone, in arrival order.
  for (const conn of pm.held.splice(0)) pm.enqueue({ type: "connection", conn });
}

/** Starts what PM_STARTUP needs; false if the postmaster had to give up. */
export async function startChildrenForStartup(pm: PMContext): Promise<boolean> {
  pm.startupDone = false;
  pm.engineReady = false;
  await launchMissingBackgroundProcesses(pm);
  const children = pm.children!;
  if (children.hasEntry("engine") && (await children.startAux("engine")) === null) {
    await pm.exitPostmaster(1);
    return false;
  }
  if ((await children.startAux("startup")) === null) {
    await pm.exitPostmaster(1);
    return false;
  }
  pm.startupStatus = "running";
  pm.updatePMState("PM_STARTUP");
  return true;
}

/** LaunchMissingBackgroundProcesses: relaunch what exited normally, when it belongs. */
export async function launchMissingBackgroundProcesses(pm: PMContext): Promise<void> {
  const children = pm.children!;
  const state = pm.pmState;
  const missing = (kind: AuxKind) =>
    children.hasEntry(kind) && children.registry.singleton(kind) === undefined;
  if (missing("logger") && state !== "PM_NO_CHILDREN") await children.startAux("logger");
  const starting = state === "PM_INIT" || state === "PM_STARTUP" || state === "PM_RECOVERY" ||
    state === "PM_RUN";
  if (missing("checkpointer") && starting) await children.startAux("checkpointer");
  const running = state === "PM_RUN" && pm.shutdown === Shutdown.NoShutdown && !pm.fatalError;
  if (missing("stats") && running) await children.startAux("stats");
  // PgArchStartupAllowed: archiving is on, and the cluster is running.
  if (missing("archiver") && running && pm.settings.string("archive_mode") !== "off") {
    await children.startAux("archiver");
  }
  if (missing("autovac_launcher") && running && pm.settings.bool("autovacuum")) {
    await children.startAux("autovac_launcher");
  }
}
