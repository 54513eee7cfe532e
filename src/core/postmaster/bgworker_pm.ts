/**
 * The postmaster's side of background workers (the bgworker parts of
 * PostgreSQL's postmaster.c: maybe_start_bgworkers, the exit bookkeeping of
 * CleanupBackend, BackgroundWorkerStateChange, ForgetUnstartedBackgroundWorkers),
 * over the registration list of bgworker.ts.
 *
 * Called only from the server loop. It starts workers and signals them
 * through PostmasterChildren; it never decides that a crash has happened,
 * it only reports whether an exit was one.
 */

import { ereport } from "../elog.ts";
import { classifyChildExit } from "./backendtype.ts";
import {
  type BackgroundWorkerHandle,
  BackgroundWorkerList,
  type BackgroundWorkerSpec,
  BGW_NEVER_RESTART,
  type BgwHandleStatus,
  BGWORKER_SHMEM_ACCESS,
  bgworkerShouldStartNow,
  makeBackgroundWorkerHandle,
  type RegisteredBgWorker,
  workerType,
} from "./bgworker.ts";
import { BGWORKER_MAIN_ENTRY } from "./auxmains.ts";
import type { ChildExit } from "../adapter.ts";
import type { PMChild } from "./pmchild.ts";
import type { PostmasterChildren } from "./pmlaunch.ts";
import type { ConnectionClaim, PMRequest, PostmasterToChild } from "./pmsignal.ts";
import { type PMState, pmStateAtLeast } from "./pmstate.ts";
import type { PostmasterSettings } from "./settings.ts";

const LOG = { category: "postmaster" } as const;

export class BgWorkerScheduler {
  readonly list = new BackgroundWorkerList();
  #settings: PostmasterSettings;
  #childParams: unknown;
  #children: () => PostmasterChildren | null;
  #changed: () => void;
  #subscribers = new Map<number, Set<() => void>>();

  constructor(options: {
    settings: PostmasterSettings;
    childParams: unknown;
    /** The postmaster's children, once it has started. */
    children: () => PostmasterChildren | null;
    /** Wakes the server loop to look at the list again. */
    changed: () => void;
  }) {
    this.#settings = options.settings;
    this.#childParams = options.childParams;
    this.#children = options.children;
    this.#changed = options.changed;
    this.list.onNotify = (rw, status) => this.#notify(rw, status);
  }

  registerStatic(worker: BackgroundWorkerSpec): boolean {
    return this.list.register(worker, {
      dynamic: false,
      maxWorkers: this.#settings.int("max_worker_processes"),
    }) !== null;
  }

  /** RegisterDynamicBackgroundWorker's postmaster half. */
  registerDynamic(worker: BackgroundWorkerSpec, pmState: PMState): RegisteredBgWorker | null {
    const rw = this.list.register(worker, {
      dynamic: true,
      maxWorkers: this.#settings.int("max_worker_processes"),
    });
    if (rw === null) return null;
    // Too late to start anything: it will be forgotten, and its handle says STOPPED.
    if (pmStateAtLeast(pmState, "PM_STOP_BACKENDS")) rw.terminate = true;
    this.#changed();
    return rw;
  }

  /** A handle for code in the postmaster's realm. */
  handle(
    rw: RegisteredBgWorker,
    options: { terminate: (id: number) => void; died: Promise<void> },
  ): BackgroundWorkerHandle {
    return makeBackgroundWorkerHandle(rw.id, {
      status: (id) => Promise.resolve(this.list.status(id)),
      terminate: (id) => {
        options.terminate(id);
        return Promise.resolve();
      },
      subscribe: (id, fn) => {
        const set = this.#subscribers.get(id) ?? new Set();
        set.add(fn);
        this.#subscribers.set(id, set);
        return () => set.delete(fn);
      },
      died: options.died,
    });
  }

  /** TerminateBackgroundWorker, carried out: SIGTERM if running, never restart. */
  terminate(id: number): void {
    const rw = this.list.get(id);
    if (rw === undefined) return;
    rw.terminate = true;
    if (rw.pid === 0) {
      this.list.forget(rw);
      return;
    }
    const children = this.#children();
    const child = children?.registry.findByPid(rw.pid);
    if (child !== undefined) children!.signalChild(child, "SIGTERM");
  }

  /** Wakes handles in this realm and the bgw_notify_pid child. */
  #notify(rw: RegisteredBgWorker, status: BgwHandleStatus): void {
    for (const fn of this.#subscribers.get(rw.id) ?? []) fn();
    if (status === "BGWH_STOPPED" && this.list.get(rw.id) === undefined) {
      this.#subscribers.delete(rw.id);
    }
    const pid = rw.spec.notifyPid;
    if (pid === undefined || pid === 0) return;
    const target = this.#children()?.registry.findByPid(pid);
    const msg: PostmasterToChild = { pgts: "bgworker-notify", handle: rw.id, status, pid: rw.pid };
    target?.proc?.post(msg);
  }

  /** ForgetUnstartedBackgroundWorkers: in a shutdown nothing new starts; release the waiters. */
  forgetUnstarted(): void {
    for (const rw of this.list.all()) if (rw.pid === 0) this.list.forget(rw);
  }

  /** maybe_start_bgworkers: start whatever is due and allowed in this state. */
  async maybeStart(pmState: PMState, stillRunning: () => boolean): Promise<void> {
    const now = Date.now();
    for (const rw of this.list.all()) {
      if (!stillRunning()) return;
      if (rw.pid !== 0) continue;
      if (rw.terminate) {
        this.list.forget(rw);
        continue;
      }
      if (rw.crashedAt !== 0) {
        if (rw.spec.restartTime === BGW_NEVER_RESTART) {
          this.list.forget(rw);
          continue;
        }
        if (now < rw.crashedAt + rw.spec.restartTime * 1000) continue;
      }
      if (!bgworkerShouldStartNow(rw.spec.startTime, pmState)) continue;
      await this.#start(rw, now);
    }
  }

  async #start(rw: RegisteredBgWorker, now: number): Promise<void> {
    const children = this.#children();
    if (children === null) return;
    const child = children.registry.assignSlot("bg_worker", rw.spec.name);
    if (child === null) {
      // Counted as a crash so the worker is retried after its interval.
      ereport("LOG", "no slot available for new background worker process", LOG);
      rw.crashedAt = now;
      return;
    }
    child.workerId = rw.id;
    child.workerType = workerType(rw.spec);
    ereport("DEBUG1", `starting background worker process "${rw.spec.name}"`, LOG);
    rw.crashedAt = 0;
    const params = { shared: this.#childParams, bgworker: rw.spec };
    if (!(await children.launch(child, BGWORKER_MAIN_ENTRY, { params }))) {
      rw.crashedAt = now;
      return;
    }
    this.list.started(rw, child.pid);
  }

  /**
   * InitProcess's check, at the end of authentication: a backend gets one of
   * max_connections, or is told why not (the backend raises 53300). The
   * last superuser_reserved_connections go to superusers only, the
   * reserved_connections before them to superusers and roles with
   * privileges of pg_use_reserved_connections.
   */
  #claimConnection(child: PMChild, superuser: boolean, useReserved: boolean): ConnectionClaim {
    const registry = this.#children()?.registry;
    if (registry === undefined) return "too-many";
    return registry.claimConnection(child, {
      maxConnections: this.#settings.int("max_connections"),
      reserved: superuser ? 0 : this.#settings.int("superuser_reserved_connections"),
      forRole: superuser || useReserved ? 0 : this.#settings.int("reserved_connections"),
    });
  }

  /** Answers a child's request (pmsignal.ts). */
  answer(child: PMChild, request: PMRequest, pmState: PMState): unknown {
    switch (request.op) {
      case "claim-connection":
        return this.#claimConnection(child, request.superuser, request.useReserved);
      case "register-bgworker": {
        const worker = { ...request.worker, notifyPid: request.worker.notifyPid ?? child.pid };
        return this.registerDynamic(worker, pmState)?.id ?? null;
      }
      case "bgworker-status":
        return this.list.status(request.handle);
      case "terminate-bgworker":
        this.terminate(request.handle);
        return null;
      default: {
        const never: never = request;
        throw new TypeError(`Unknown postmaster request: ${JSON.stringify(never)}`);
      }
    }
  }

  /** Whether a worker's exit is a crash: only for workers with shared-state access. */
  isCrash(child: PMChild, exit: ChildExit, pmState: PMState): boolean {
    const rw = child.workerId === undefined ? undefined : this.list.get(child.workerId);
    const sharedState = rw === undefined || (rw.spec.flags & BGWORKER_SHMEM_ACCESS) !== 0;
    return classifyChildExit("bg_worker", exit, { pmState, sharedState }) === "crash";
  }

  /** A worker's exit: applies the restart policy. `counted` is false when the postmaster caused it. */
  exited(child: PMChild, exit: ChildExit, options: { counted: boolean }): void {
    const rw = child.workerId === undefined ? undefined : this.list.get(child.workerId);
    if (rw === undefined) return;
    this.list.exited(rw, exit.code === 0, {
      counted: options.counted,
      now: Date.now(),
      limits: {
        intensity: this.#settings.int("bgworker_restart_intensity"),
        period: this.#settings.seconds("bgworker_restart_period"),
      },
    });
  }
}
