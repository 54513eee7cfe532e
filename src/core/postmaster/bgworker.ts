/**
 * Background workers (PostgreSQL's bgworker.h and bgworker.c): what a worker
 * is, the postmaster's list of registered workers, and the handles through
 * which whoever registered a worker at run time follows and stops it.
 *
 * The list is owned by the postmaster and changed only from its server loop;
 * a backend that registers a worker sends a request (pmsignal.ts) instead of
 * writing a shared slot, so the postmaster never has to trust a child's
 * memory, which is the point of PostgreSQL's paranoid slot copying.
 *
 * Restart policy, as in PostgreSQL: exit 0 unregisters the worker; any other
 * exit restarts it `restartTime` seconds later, or never (BGW_NEVER_RESTART).
 * pgts adds Erlang/OTP's restart intensity: more than
 * `bgworker_restart_intensity` abnormal exits within
 * `bgworker_restart_period` seconds and the worker is given up on.
 * Exits caused by the postmaster itself (SIGQUIT during crash recovery or an
 * immediate shutdown) do not count.
 */

import { ereport, PgError } from "../elog.ts";
import type { ChildEntry } from "../adapter.ts";
import type { PMState } from "./pmstate.ts";

/** The worker may touch shared state (the engine); its crash is everyone's crash. */
export const BGWORKER_SHMEM_ACCESS = 0x0001;
/** The worker connects to a database (requires BGWORKER_SHMEM_ACCESS). */
export const BGWORKER_BACKEND_DATABASE_CONNECTION = 0x0002;
/** `restartTime` meaning "do not restart". */
export const BGW_NEVER_RESTART = -1;
export const BGW_DEFAULT_RESTART_INTERVAL = 60;
/** Maximum length of `extra`, PostgreSQL's BGW_EXTRALEN. */
export const BGW_EXTRALEN = 128;

/** PostgreSQL's BgWorkerStartTime. */
export type BgWorkerStartTime =
  | "BgWorkerStart_PostmasterStart"
  | "BgWorkerStart_ConsistentState"
  | "BgWorkerStart_RecoveryFinished";

/** PostgreSQL's BgwHandleStatus. */
export type BgwHandleStatus =
  | "BGWH_STARTED"
  | "BGWH_NOT_YET_STARTED"
  | "BGWH_STOPPED"
  | "BGWH_POSTMASTER_DIED";

/** What to run and how (PostgreSQL's `BackgroundWorker`); structured-cloneable. */
export interface BackgroundWorkerSpec {
  /** bgw_name: shown in logs and as the child's name. */
  readonly name: string;
  /** bgw_type: groups workers in logs ("background worker \"<type>\""); defaults to the name. */
  readonly type?: string;
  /** bgw_library_name + bgw_function_name: the module and its exported main. */
  readonly entry: ChildEntry;
  /** BGWORKER_* flags. */
  readonly flags: number;
  readonly startTime: BgWorkerStartTime;
  /** Seconds to wait before restarting after an abnormal exit, or BGW_NEVER_RESTART. */
  readonly restartTime: number;
  /** bgw_main_arg. */
  readonly mainArg?: unknown;
  /** bgw_extra, at most BGW_EXTRALEN bytes. */
  readonly extra?: Uint8Array;
  /** bgw_notify_pid: the child told when the worker starts or stops (dynamic workers only). */
  readonly notifyPid?: number;
}

/** Checks a worker before registration (PostgreSQL's SanityCheckBackgroundWorker). */
export function sanityCheckBackgroundWorker(w: BackgroundWorkerSpec): void {
  const fail = (message: string) => {
    throw new PgError("22023", message);
  };
  if (typeof w.name !== "string" || w.name === "") {
    throw new TypeError("Background worker name must be a non-empty string");
  }
  if (typeof w.entry?.module !== "string" || typeof w.entry?.export !== "string") {
    throw new TypeError(`Background worker "${w.name}" needs an entry with module and export`);
  }
  if (w.flags & BGWORKER_BACKEND_DATABASE_CONNECTION) {
    if (!(w.flags & BGWORKER_SHMEM_ACCESS)) {
      fail(
        `background worker "${w.name}": must attach to shared memory in order to request a database connection`,
      );
    }
    if (w.startTime === "BgWorkerStart_PostmasterStart") {
      fail(
        `background worker "${w.name}": cannot request database access if starting at postmaster start`,
      );
    }
  }
  if (
    w.restartTime !== BGW_NEVER_RESTART &&
    !(Number.isFinite(w.restartTime) && w.restartTime >= 0)
  ) {
    fail(`background worker "${w.name}": invalid restart interval`);
  }
  if (w.extra !== undefined && w.extra.length > BGW_EXTRALEN) {
    throw new RangeError(
      `Background worker "${w.name}" extra is ${w.extra.length} bytes; at most ${BGW_EXTRALEN} fit`,
    );
  }
}

/** Whether a worker may start in this state (PostgreSQL's bgworker_should_start_now). */
export function bgworkerShouldStartNow(start: BgWorkerStartTime, pmState: PMState): boolean {
  switch (pmState) {
    case "PM_NO_CHILDREN":
    case "PM_WAIT_DEAD_END":
    case "PM_WAIT_CHECKPOINTER":
    case "PM_WAIT_BACKENDS":
    case "PM_STOP_BACKENDS":
      return false;
    case "PM_RUN":
      return true;
    case "PM_RECOVERY":
    case "PM_STARTUP":
    case "PM_INIT":
      return start === "BgWorkerStart_PostmasterStart";
    default: {
      const never: never = pmState;
      throw new TypeError(`Unknown PMState: ${String(never)}`);
    }
  }
}

/** A registration as the postmaster keeps it (PostgreSQL's `RegisteredBgWorker`). */
export interface RegisteredBgWorker {
  /** The handle: unique for the postmaster's life, so a stale handle never finds a new worker. */
  readonly id: number;
  readonly spec: BackgroundWorkerSpec;
  readonly dynamic: boolean;
  /** 0 when not running. */
  pid: number;
  everStarted: boolean;
  /** When it last exited abnormally (ms since epoch), 0 if it has not (or was reset). */
  crashedAt: number;
  /** Unregister at the next opportunity, never restart (exit 0, terminate(), give-up). */
  terminate: boolean;
  /** Times of abnormal exits inside the intensity window. */
  restartHistory: number[];
}

export function workerType(spec: BackgroundWorkerSpec): string {
  return spec.type ?? spec.name;
}

/** What the postmaster does after a worker's exit. */
export type WorkerExitAction = "restart" | "forget";

export interface RestartIntensity {
  readonly intensity: number;
  /** Seconds. */
  readonly period: number;
}

/**
 * The registered workers. `onNotify` is told of every start, stop and
 * forget, so the postmaster can wake handles and bgw_notify_pid children.
 */
export class BackgroundWorkerList {
  #workers = new Map<number, RegisteredBgWorker>();
  #nextId = 1;
  onNotify: ((rw: RegisteredBgWorker, status: BgwHandleStatus) => void) | null = null;

  get size(): number {
    return this.#workers.size;
  }

  /**
   * Adds a worker; returns null when all `maxWorkers` registrations are in
   * use (PostgreSQL's "too many background workers" for static ones, a false
   * return of RegisterDynamicBackgroundWorker for dynamic ones).
   */
  register(
    spec: BackgroundWorkerSpec,
    options: { dynamic: boolean; maxWorkers: number },
  ): RegisteredBgWorker | null {
    sanityCheckBackgroundWorker(spec);
    if (!options.dynamic && spec.notifyPid !== undefined && spec.notifyPid !== 0) {
      throw new TypeError(
        `Background worker "${spec.name}": only dynamic background workers can request notification`,
      );
    }
    if (this.#workers.size >= options.maxWorkers) {
      if (!options.dynamic) {
        ereport("LOG", "too many background workers", {
          code: "53400",
          detail: `Up to ${options.maxWorkers} background worker${
            options.maxWorkers === 1 ? "" : "s"
          } can be registered with the current settings.`,
          hint: 'Consider increasing the configuration parameter "max_worker_processes".',
          category: "postmaster",
        });
      }
      return null;
    }
    const rw: RegisteredBgWorker = {
      id: this.#nextId++,
      spec: structuredClone(spec),
      dynamic: options.dynamic,
      pid: 0,
      everStarted: false,
      crashedAt: 0,
      terminate: false,
      restartHistory: [],
    };
    this.#workers.set(rw.id, rw);
    ereport("DEBUG1", `registering background worker "${spec.name}"`, { category: "postmaster" });
    return rw;
  }

  get(id: number): RegisteredBgWorker | undefined {
    return this.#workers.get(id);
  }

  all(): RegisteredBgWorker[] {
    return [...this.#workers.values()];
  }

  /** GetBackgroundWorkerPid: a forgotten worker (or a stale handle) is STOPPED. */
  status(id: number): { status: BgwHandleStatus; pid: number } {
    const rw = this.#workers.get(id);
    if (rw === undefined) return { status: "BGWH_STOPPED", pid: 0 };
    if (rw.pid !== 0) return { status: "BGWH_STARTED", pid: rw.pid };
    return rw.everStarted
      ? { status: "BGWH_STOPPED", pid: 0 }
      : { status: "BGWH_NOT_YET_STARTED", pid: 0 };
  }

  /** Records that a worker is running. */
  started(rw: RegisteredBgWorker, pid: number): void {
    rw.pid = pid;
    rw.everStarted = true;
    this.onNotify?.(rw, "BGWH_STARTED");
  }

  /** ForgetBackgroundWorker: removes it and tells whoever waits that it stopped. */
  forget(rw: RegisteredBgWorker): void {
    if (!this.#workers.delete(rw.id)) return;
    ereport("DEBUG1", `unregistering background worker "${rw.spec.name}"`, {
      category: "postmaster",
    });
    this.onNotify?.(rw, "BGWH_STOPPED");
  }

  /**
   * Applies the restart policy to an exit. `counted` is false when the
   * postmaster itself caused the exit (crash recovery, immediate shutdown).
   */
  exited(
    rw: RegisteredBgWorker,
    exitedCleanly: boolean,
    options: { counted: boolean; now: number; limits: RestartIntensity },
  ): WorkerExitAction {
    rw.pid = 0;
    if (exitedCleanly) {
      rw.crashedAt = 0;
      rw.terminate = true;
    } else {
      rw.crashedAt = options.now;
      if (options.counted && rw.spec.restartTime !== BGW_NEVER_RESTART && !rw.terminate) {
        const since = options.now - options.limits.period * 1000;
        rw.restartHistory = rw.restartHistory.filter((t) => t > since);
        rw.restartHistory.push(options.now);
        if (rw.restartHistory.length > options.limits.intensity) {
          ereport(
            "LOG",
            `background worker "${rw.spec.name}" exceeded its restart intensity and will not be restarted`,
            {
              detail:
                `It exited abnormally ${rw.restartHistory.length} times within ${options.limits.period} s; "bgworker_restart_intensity" is ${options.limits.intensity}.`,
              category: "postmaster",
            },
          );
          rw.terminate = true;
        }
      }
    }
    // Forget before notifying, so that whoever registered it can reuse the
    // registration at once (PostgreSQL's ReportBackgroundWorkerExit).
    if (rw.terminate || rw.spec.restartTime === BGW_NEVER_RESTART) {
      this.forget(rw);
      return "forget";
    }
    this.onNotify?.(rw, "BGWH_STOPPED");
    return "restart";
  }

  /**
   * After a crash, restart every worker at once rather than after its
   * interval, and drop those that must never restart
   * (ResetBackgroundWorkerCrashTimes).
   */
  resetCrashTimes(): void {
    for (const rw of this.#workers.values()) {
      if (rw.spec.restartTime === BGW_NEVER_RESTART) {
        rw.terminate = true;
      } else {
        rw.crashedAt = 0;
      }
    }
  }

  /** When the next crashed worker becomes due, or null (DetermineSleepTime). */
  nextRestartAt(): number | null {
    let next: number | null = null;
    for (const rw of this.#workers.values()) {
      if (rw.pid !== 0 || rw.crashedAt === 0 || rw.terminate) continue;
      const due = rw.crashedAt + rw.spec.restartTime * 1000;
      if (next === null || due < next) next = due;
    }
    return next;
  }
}

/** The handle RegisterDynamicBackgroundWorker returns; the same on both sides of the channel. */
export interface BackgroundWorkerHandle {
  readonly id: number;
  /** GetBackgroundWorkerPid. */
  getPid(): Promise<{ status: BgwHandleStatus; pid: number }>;
  /** WaitForBackgroundWorkerStartup: STARTED (with pid), STOPPED or POSTMASTER_DIED. */
  waitForStartup(): Promise<{ status: BgwHandleStatus; pid: number }>;
  /** WaitForBackgroundWorkerShutdown: STOPPED or POSTMASTER_DIED. */
  waitForShutdown(): Promise<BgwHandleStatus>;
  /** TerminateBackgroundWorker: SIGTERM it if running, and never restart it. */
  terminate(): Promise<void>;
}

/** What a handle needs from whichever side it lives on. */
export interface BgWorkerControl {
  status(id: number): Promise<{ status: BgwHandleStatus; pid: number }>;
  terminate(id: number): Promise<void>;
  /** Calls `fn` whenever the worker's state may have changed; returns an unsubscribe function. */
  subscribe(id: number, fn: () => void): () => void;
  /** Resolves if the postmaster dies first. */
  readonly died: Promise<void>;
}

/** A handle over a `BgWorkerControl`. */
export function makeBackgroundWorkerHandle(
  id: number,
  control: BgWorkerControl,
): BackgroundWorkerHandle {
  // Re-check the status after every change notice, as PostgreSQL re-reads the
  // slot after every latch wakeup: notices may be coalesced or arrive early.
  const waitUntil = async (
    done: (s: { status: BgwHandleStatus; pid: number }) => boolean,
  ): Promise<{ status: BgwHandleStatus; pid: number }> => {
    let wake: () => void = () => {};
    const unsubscribe = control.subscribe(id, () => wake());
    let dead = false;
    void control.died.then(() => {
      dead = true;
      wake();
    });
    try {
      for (;;) {
        const changed = new Promise<void>((resolve) => (wake = resolve));
        if (dead) return { status: "BGWH_POSTMASTER_DIED", pid: 0 };
        const s = await control.status(id);
        if (done(s)) return s;
        await changed;
      }
    } finally {
      unsubscribe();
    }
  };
  return {
    id,
    getPid: () => control.status(id),
    waitForStartup: () => waitUntil((s) => s.status !== "BGWH_NOT_YET_STARTED"),
    waitForShutdown: async () => (await waitUntil((s) => s.status === "BGWH_STOPPED")).status,
    terminate: () => control.terminate(id),
  };
}
