/**
 * The postmaster (PostgreSQL's postmaster.c): starts the auxiliary children,
 * admits clients and launches a backend for each, runs background workers,
 * and takes the cluster through crash recovery and the three shutdown modes.
 *
 * Everything it does happens in one server loop that takes events (a signal,
 * a child's exit or message, a new connection, a timer) off a queue and
 * handles them one at a time, then runs `postmasterStateMachine`. Callbacks
 * from the outside world only enqueue, the way PostgreSQL's signal handlers
 * only set `pending_*` flags, so no two decisions ever interleave even though
 * launching a child is asynchronous. This module owns the queue, the loop,
 * the timer, the public surface and `exitPostmaster`; postmaster.c's other
 * concerns are modules of their own over the state in pmcontext.ts:
 * pmstatemachine.ts (PostmasterStateMachine, the restart after a crash),
 * pmshutdown.ts (reload and shutdown requests), pmcrash.ts (child exits,
 * HandleChildCrash) and pmadmit.ts (BackendStartup). Three chokepoints:
 * `PMContext.updatePMState` for every state change,
 * `PostmasterChildren.signalChild` (pmlaunch.ts) for every signal to a
 * child, `#exitPostmaster` for the end.
 *
 * The postmaster never touches shared state itself: the engine child owns
 * it, and after a crash the caller's `resetSharedState` hook rebuilds it.
 * It uses Web-standard APIs only; children and sockets come from the
 * ChildLauncher and NetAdapter it is given.
 */

import { ereport } from "../elog.ts";
import { startupTrace } from "../starttrace.ts";
import type { BackgroundWorkerHandle, BackgroundWorkerSpec, BgwHandleStatus } from "./bgworker.ts";
import type {
  ChildLauncher,
  ChildProcess,
  ListenAddress,
  Listener,
  NetAdapter,
} from "../adapter.ts";
import { rejectionFor } from "./deadend.ts";
import { acceptConnection, admitBackendRun, backendStartup, maxLiveBackends } from "./pmadmit.ts";
import { btmask, btmaskAllExcept, ChildRegistry } from "./pmchild.ts";
import { type ChildInfo, LOG, PMContext, type PostmasterHooks } from "./pmcontext.ts";
import {
  maybeReachRun,
  nextCrashDeadline,
  processChildExit,
  processCrashDeadlines,
} from "./pmcrash.ts";
import { errText, openListeners, PostmasterChildren, type PostmasterEntries } from "./pmlaunch.ts";
import { isChildToPostmaster, type PostmasterToChild } from "./pmsignal.ts";
import {
  type BackendActivity,
  type PMEvent,
  type PMState,
  type PostmasterSignal,
  Shutdown,
  type ShutdownLevel,
  shutdownLevelFor,
} from "./pmstate.ts";
import { processReloadRequest, processShutdownRequest } from "./pmshutdown.ts";
import {
  launchMissingBackgroundProcesses,
  postmasterStateMachine,
  startChildrenForStartup,
} from "./pmstatemachine.ts";
import { PostmasterSettings, type SettingsSource } from "./settings.ts";

export type { ChildInfo, PMStatus, PostmasterHooks } from "./pmcontext.ts";

export interface PostmasterOptions {
  readonly launcher: ChildLauncher;
  readonly settings: SettingsSource;
  readonly entries: PostmasterEntries;
  readonly net?: NetAdapter;
  readonly listen?: readonly ListenAddress[];
  /** Structured-cloneable parameters every child receives as `params.shared`. */
  readonly childParams?: unknown;
  readonly hooks?: PostmasterHooks;
}

/** A background worker registration, as the postmaster keeps it. */
export interface BackgroundWorkerInfo {
  /** The handle's number. */
  readonly handle: number;
  readonly name: string;
  readonly type: string;
  readonly dynamic: boolean;
  readonly status: BgwHandleStatus;
  /** 0 when not running. */
  readonly pid: number;
}

export class Postmaster extends EventTarget {
  #launcher: ChildLauncher;
  #net: NetAdapter | undefined;
  #listen: readonly ListenAddress[];
  #childParams: unknown;
  /** The state postmaster.c keeps in file-level variables, shared with its other modules. */
  #pm: PMContext;
  #listeners: Listener[] = [];

  #queue: PMEvent[] = [];
  #wake: (() => void) | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #timerDue = 0;
  #started = false;
  #resolveExited: (code: number) => void = () => {};
  readonly #exited = new Promise<number>((resolve) => (this.#resolveExited = resolve));

  constructor(options: PostmasterOptions) {
    super();
    if (options.entries?.backend === undefined) {
      throw new TypeError("Postmaster options.entries.backend is required");
    }
    this.#launcher = options.launcher;
    this.#net = options.net;
    this.#listen = options.listen ?? [];
    if (this.#listen.length > 0 && this.#net === undefined) {
      throw new TypeError("Postmaster options.listen needs options.net");
    }
    this.#childParams = options.childParams ?? null;
    this.#pm = new PMContext({
      settings: new PostmasterSettings(options.settings),
      entries: options.entries,
      hooks: options.hooks ?? {},
      childParams: this.#childParams,
      enqueue: (ev) => this.#enqueue(ev),
      exitPostmaster: (code) => this.#exitPostmaster(code),
      onStateChange: (from, to) =>
        this.dispatchEvent(new CustomEvent("pmstate", { detail: { from, to } })),
    });
  }

  get pmState(): PMState {
    return this.#pm.pmState;
  }
  get shutdownLevel(): ShutdownLevel {
    return this.#pm.shutdown;
  }
  get fatalError(): boolean {
    return this.#pm.fatalError;
  }
  get connsAllowed(): boolean {
    return this.#pm.connsAllowed;
  }
  /** The bound addresses (a tcp port 0 resolved to the port picked). */
  get addresses(): ListenAddress[] {
    return this.#listeners.map((l) => l.address);
  }
  /** Resolves with the postmaster's exit code. */
  get exited(): Promise<number> {
    return this.#exited;
  }

  children(): ChildInfo[] {
    const children = this.#pm.children;
    if (children === null) return [];
    return [...children.registry.children()].map((c) => ({
      pid: c.pid,
      kind: c.kind,
      name: c.name,
      startedAt: c.startedAt,
      ...(c.activity === undefined ? {} : { activity: c.activity() }),
    }));
  }

  /** The registered background workers, with their handles' status. */
  backgroundWorkers(): BackgroundWorkerInfo[] {
    const bgworkers = this.#pm.bgworkers;
    return bgworkers.list.all().map((rw) => ({
      handle: rw.id,
      name: rw.spec.name,
      type: rw.spec.type ?? rw.spec.name,
      dynamic: rw.dynamic,
      ...bgworkers.list.status(rw.id),
    }));
  }

  /**
   * Admits an in-process backend run (one HTTP request) the way
   * BackendStartup admits a client: judged by the cluster state, then given
   * a backend slot, so it counts against max_connections and shutdown waits
   * for it. `proc` stands for the run: its `pid` must be unique, its
   * `signal` is how the postmaster stops it, and resolving its `exited`
   * releases the slot. Rejects with the FATAL a refused client would read
   * (53300 when every slot is taken, 57P03 while starting or stopping).
   */
  admitBackendRun(
    proc: ChildProcess,
    options: { name?: string; activity?: () => BackendActivity } = {},
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const admitted = (error: Error | null) => error === null ? resolve() : reject(error);
      if (this.#pm.exitCode !== null || !this.#started) {
        admitted(rejectionFor("CAC_SHUTDOWN"));
        return;
      }
      this.#enqueue({
        type: "backend-run",
        proc,
        name: options.name ?? "client backend",
        ...(options.activity === undefined ? {} : { activity: options.activity }),
        admitted,
      });
    });
  }

  /**
   * Queues a signal for the server loop, the way PostgreSQL's handlers set
   * pending_* flags. The adapter (or CLI) wires OS signals to this.
   */
  signal(sig: PostmasterSignal): void {
    this.#enqueue({ type: "signal", signal: sig });
  }

  /**
   * Cancels the statement a backend is running (SIGINT, as a CancelRequest
   * does). The caller has checked the request's key; queued like a signal.
   * `from`, the child that read the CancelRequest, is told once the signal
   * is sent: it closes the request's connection only then, so a client that
   * waits for that close before its next query (as libpq's PQcancel does)
   * never has the next query overtake the cancel.
   */
  cancelBackend(pid: number, options: { from?: number } = {}): void {
    this.#enqueue({
      type: "cancel-backend",
      pid,
      ...(options.from !== undefined ? { from: options.from } : {}),
    });
  }

  /**
   * RegisterBackgroundWorker: static registration, before `start()` (the CLI
   * feeds shared_preload_libraries-style entries here). Returns false when
   * max_worker_processes registrations are taken ("too many background workers").
   */
  registerBackgroundWorker(worker: BackgroundWorkerSpec): boolean {
    if (this.#started) {
      throw new TypeError(
        `Background worker "${worker.name}" must be registered before the postmaster starts`,
      );
    }
    return this.#pm.bgworkers.registerStatic(worker);
  }

  /**
   * RegisterDynamicBackgroundWorker, for code running beside the postmaster.
   * Returns null when every registration is in use. Children use
   * `registerDynamicBackgroundWorker(link, worker)` from bgworker_main.ts.
   */
  registerDynamicBackgroundWorker(worker: BackgroundWorkerSpec): BackgroundWorkerHandle | null {
    const bgworkers = this.#pm.bgworkers;
    const rw = bgworkers.registerDynamic(worker, this.#pm.pmState);
    if (rw === null) return null;
    return bgworkers.handle(rw, {
      terminate: (id: number) => this.#enqueue({ type: "bgworker-terminate", id }),
      died: this.#exited.then(() => {}),
    });
  }

  /**
   * PostmasterMain: opens the listen sockets, starts the auxiliary children
   * and the startup process, and runs the server loop in the background.
   * Resolves once the postmaster is in PM_STARTUP (or has already exited:
   * see `exited`).
   */
  async start(): Promise<void> {
    if (this.#started) throw new TypeError("Postmaster already started");
    this.#started = true;
    const pm = this.#pm;
    const registry = new ChildRegistry({
      backend: maxLiveBackends(pm.settings),
      bg_worker: pm.settings.int("max_worker_processes"),
    });
    pm.children = new PostmasterChildren(registry, {
      launcher: this.#launcher,
      entries: pm.entries,
      childParams: this.#childParams,
      enqueue: (ev: PMEvent) => this.#enqueue(ev),
      sslServer: () => pm.hooks.sslServer?.() ?? null,
    });
    pm.hooks.setStatus?.("starting");
    await this.#openListeners();
    startupTrace("listen sockets open");
    if (pm.exitCode !== null) return;
    pm.accepting = true;
    if (!(await startChildrenForStartup(pm))) return;
    startupTrace("start-up children launched");
    void this.#serverLoop();
    this.#enqueue({ type: "bgworker-change" });
  }

  async #openListeners(): Promise<void> {
    if (this.#listen.length === 0) return;
    // No backend until the client's first packet is whole (firstpacket.ts),
    // unless the adapter hands the socket over before anything is read.
    const readFirst = this.#net!.readsBeforeHandOff !== false;
    this.#listeners = await openListeners(
      this.#net!,
      this.#listen,
      (conn) => acceptConnection(this.#pm, conn, readFirst),
    );
    // As PostgreSQL: each kind of socket asked for must open at least once
    // (a TCP port taken by another server is not served on the Unix socket alone).
    const noneOpened = (family: ListenAddress["family"]) =>
      this.#listen.some((a) => a.family === family) &&
      !this.#listeners.some((l) => l.address.family === family);
    const failure = noneOpened("tcp")
      ? "could not create any TCP/IP sockets"
      : noneOpened("unix")
      ? "could not create any Unix-domain sockets"
      : this.#listeners.length === 0
      ? "no socket created for listening"
      : null;
    if (failure !== null) {
      // Reported once, here; start() sees the exit code and returns.
      ereport("FATAL", failure, LOG);
      await this.#exitPostmaster(1);
    }
  }

  // ---- the server loop ----------------------------------------------------

  #enqueue(ev: PMEvent): void {
    if (this.#pm.exitCode !== null) {
      if (ev.type === "connection") ev.conn.destroy();
      return;
    }
    this.#queue.push(ev);
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  async #serverLoop(): Promise<void> {
    const pm = this.#pm;
    while (pm.exitCode === null) {
      const ev = this.#queue.shift();
      if (ev === undefined) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        continue;
      }
      try {
        await this.#handleEvent(ev);
        await postmasterStateMachine(pm);
        if (pm.exitCode !== null) break;
        await launchMissingBackgroundProcesses(pm);
        await pm.bgworkers.maybeStart(pm.pmState, () => pm.exitCode === null);
        this.#scheduleTimer();
      } catch (e) {
        // A bug in the postmaster itself: nothing can be trusted any more.
        ereport(
          "PANIC",
          `unexpected error in postmaster: ${
            e instanceof Error ? e.stack ?? e.message : String(e)
          }`,
          LOG,
        );
        pm.terminateChildren("SIGKILL");
        await this.#exitPostmaster(1);
      }
    }
  }

  async #handleEvent(ev: PMEvent): Promise<void> {
    const pm = this.#pm;
    switch (ev.type) {
      case "signal":
        if (ev.signal === "SIGHUP") await processReloadRequest(pm);
        else processShutdownRequest(pm, shutdownLevelFor(ev.signal));
        return;
      case "child-exit":
        processChildExit(pm, ev.pid, ev.exit);
        return;
      case "child-message":
        this.#processChildMessage(ev.pid, ev.message);
        return;
      case "connection":
        await backendStartup(pm, ev.conn);
        return;
      case "dead-end-done":
        pm.children!.deadEndDone(ev.id);
        return;
      case "bgworker-change":
        return;
      case "cancel-backend": {
        const registry = pm.children!.registry;
        const child = registry.findByPid(ev.pid);
        if (child !== undefined && child.kind === "backend") {
          if (ev.from !== undefined) pm.children!.cancelBackend(child, ev.from);
          else pm.children!.signalChild(child, "SIGINT");
        } else if (ev.from !== undefined) {
          const done: PostmasterToChild = { pgts: "cancel-done" };
          registry.findByPid(ev.from)?.proc?.post(done);
        }
        return;
      }
      case "bgworker-terminate":
        pm.bgworkers.terminate(ev.id);
        return;
      case "backend-run":
        admitBackendRun(pm, ev);
        return;
      case "timer":
        await processCrashDeadlines(pm);
        return;
      default: {
        const never: never = ev;
        throw new TypeError(`Unknown postmaster event: ${JSON.stringify(never)}`);
      }
    }
  }

  /** DetermineSleepTime: one timer, for the earliest of a crash's deadlines and worker restarts. */
  #scheduleTimer(): void {
    let due = nextCrashDeadline(this.#pm);
    const restart = this.#pm.bgworkers.list.nextRestartAt();
    if (restart !== null && (due === null || restart < due)) due = restart;
    if (due === null) {
      if (this.#timer !== null) clearTimeout(this.#timer);
      this.#timer = null;
      return;
    }
    if (this.#timer !== null && this.#timerDue === due) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerDue = due;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#enqueue({ type: "timer" });
    }, Math.max(0, due - Date.now()));
  }

  // ---- children talking --------------------------------------------------

  /** process_pm_pmsignal, and the requests and keys children send. */
  #processChildMessage(pid: number, message: unknown): void {
    const pm = this.#pm;
    const child = pm.children!.registry.findByPid(pid);
    if (child === undefined) return; // a zombie's last words
    if (!isChildToPostmaster(message)) {
      pm.hooks.onChildMessage?.(
        { pid, kind: child.kind, name: child.name, startedAt: child.startedAt },
        message,
      );
      return;
    }
    if (message.pgts === "backend-key") {
      child.cancelKey = message.key;
      return;
    }
    if (message.pgts === "cancel-request") {
      pm.children!.processCancelRequest(child, message);
      return;
    }
    if (message.pgts === "cancel-seen") {
      pm.children!.cancelSeen(child);
      return;
    }
    if (message.pgts === "request") {
      let reply: PostmasterToChild;
      try {
        reply = {
          pgts: "reply",
          id: message.id,
          value: pm.bgworkers.answer(child, message.request, pm.pmState),
        };
      } catch (e) {
        const code = typeof (e as { code?: unknown }).code === "string"
          ? (e as { code: string }).code
          : "XX000";
        reply = { pgts: "reply", id: message.id, error: { code, message: errText(e) } };
      }
      child.proc?.post(reply);
      return;
    }
    switch (message.reason) {
      case "recovery-started":
        // PMSIGNAL_RECOVERY_STARTED: the crash is behind us once recovery runs.
        if (pm.pmState === "PM_STARTUP" && pm.shutdown === Shutdown.NoShutdown) {
          pm.fatalError = false;
          pm.abortStartTime = 0;
          pm.updatePMState("PM_RECOVERY");
        }
        return;
      case "engine-ready":
        if (child.kind === "engine") {
          pm.engineReady = true;
          maybeReachRun(pm);
        }
        return;
      case "background-worker-change":
        return;
      case "reload-config":
        this.signal("SIGHUP");
        return;
      default: {
        const never: never = message.reason;
        throw new TypeError(`Unknown pmsignal: ${String(never)}`);
      }
    }
  }

  // ---- the end --------------------------------------------------------------

  /** ExitPostmaster: the only way out. */
  async #exitPostmaster(code: number): Promise<void> {
    const pm = this.#pm;
    if (pm.exitCode !== null) return;
    pm.exitCode = code;
    if (this.#timer !== null) clearTimeout(this.#timer);
    pm.accepting = false;
    for (const conn of pm.held.splice(0)) conn.destroy();
    for (const conn of pm.awaiting) conn.destroy();
    pm.awaiting.clear();
    for (const ev of this.#queue.splice(0)) if (ev.type === "connection") ev.conn.destroy();
    // Children outlive a PostgreSQL postmaster only until they notice its
    // death; pgts makes that immediate. The logger goes last, politely.
    if (pm.children !== null) {
      pm.signalChildren("SIGKILL", btmaskAllExcept("logger"));
      pm.signalChildren("SIGTERM", btmask("logger"));
    }
    await Promise.allSettled(this.#listeners.map((l) => l.close()));
    ereport("LOG", "database system is shut down", LOG);
    this.#resolveExited(code);
    this.dispatchEvent(new CustomEvent("exit", { detail: { code } }));
  }
}
