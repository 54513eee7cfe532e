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
 * launching a child is asynchronous. Three chokepoints: `#updatePMState` for
 * every state change, `PostmasterChildren.signalChild` (pmlaunch.ts) for
 * every signal to a child, `#exitPostmaster` for the end.
 *
 * The postmaster never touches shared state itself: the engine child owns
 * it, and after a crash the caller's `resetSharedState` hook rebuilds it.
 * It uses Web-standard APIs only; children and sockets come from the
 * ChildLauncher and NetAdapter it is given.
 */

import { ereport, PgError } from "../elog.ts";
import {
  type BackendType,
  childExitMessage,
  childProcName,
  classifyChildExit,
} from "./backendtype.ts";
import type { BackgroundWorkerHandle, BackgroundWorkerSpec, BgwHandleStatus } from "./bgworker.ts";
import { BgWorkerScheduler } from "./bgworker_pm.ts";
import { canAcceptConnections, rejectionFor } from "./deadend.ts";
import type {
  AcceptedConnection,
  ChildExit,
  ChildLauncher,
  ChildProcess,
  ListenAddress,
  Listener,
  NetAdapter,
  Signal,
} from "./launch.ts";
import {
  type BackendActivity,
  type BackendTypeMask,
  btmask,
  btmaskAllExcept,
  ChildRegistry,
  type PMChild,
} from "./pmchild.ts";
import {
  type AuxKind,
  errText,
  openListeners,
  PostmasterChildren,
  type PostmasterEntries,
} from "./pmlaunch.ts";
import { isChildToPostmaster, type PostmasterToChild } from "./pmsignal.ts";
import {
  type PMEvent,
  type PMState,
  type PostmasterSignal,
  type QuitSignalReason,
  Shutdown,
  type ShutdownLevel,
  shutdownLevelFor,
  type StartupStatus,
} from "./pmstate.ts";
import { awaitFirstPacket } from "./firstpacket.ts";
import type { FirstPacket } from "./pmlaunch.ts";
import { PostmasterSettings, type SettingsSource } from "./settings.ts";
import type { SslServer } from "../backend/secure.ts";

/** The lock file's status line (postmaster.pid line 8). */
export type PMStatus = "starting" | "ready" | "stopping";

export interface PostmasterHooks {
  /** SIGHUP: re-read postgresql.conf and pg_hba.conf (the GUC module's ProcessConfigFile). */
  reloadConfig?(): void | Promise<void>;
  /** After a crash, once every child is gone: rebuild shared state before the startup process runs. */
  resetSharedState?(): void | Promise<void>;
  /** The status to write into postmaster.pid. */
  setStatus?(status: PMStatus): void;
  /** Messages from children that are not the postmaster's own. */
  onChildMessage?(child: ChildInfo, message: unknown): void;
  /**
   * SSL as loaded now (null: ssl is off), for the clients the postmaster
   * turns away itself: a dead-end negotiates SSL as a backend would, so that
   * an sslmode=require client reads the FATAL.
   */
  sslServer?(): SslServer | null;
}

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

export interface ChildInfo {
  readonly pid: number;
  readonly kind: BackendType;
  readonly name: string;
  /** When its slot was taken, ms since the epoch. */
  readonly startedAt: number;
  /** For an in-process backend run: its state and current query. */
  readonly activity?: BackendActivity;
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

const LOG = { category: "postmaster" } as const;

/** The first and the longest wait before starting the engine again after it failed to start after a crash. */
const ENGINE_RETRY_MIN_MS = 1000;
const ENGINE_RETRY_MAX_MS = 30_000;

export class Postmaster extends EventTarget {
  #launcher: ChildLauncher;
  #settings: PostmasterSettings;
  #entries: PostmasterEntries;
  #net: NetAdapter | undefined;
  #listen: readonly ListenAddress[];
  #childParams: unknown;
  #hooks: PostmasterHooks;

  #children: PostmasterChildren | null = null;
  #bgworkers: BgWorkerScheduler;
  #pmState: PMState = "PM_INIT";
  #shutdown: ShutdownLevel = Shutdown.NoShutdown;
  #fatalError = false;
  /** The archiver was told to finish (PM_SHUTDOWN_2's signal), once. */
  #archiverStopping = false;
  #connsAllowed = true;
  #startupStatus: StartupStatus = "not_running";
  /** The cluster reached PM_RUN at least once (a later engine start is after a crash). */
  #hasRun = false;
  /** When to start the engine again after it failed to start after a crash (0: not waiting). */
  #engineRetryAt = 0;
  #engineRetryDelayMs = 0;
  #startupDone = false;
  #engineReady = false;
  #abortStartTime = 0;
  #accepting = false;
  #held: AcceptedConnection[] = [];
  /** Clients whose first packet has not arrived yet (firstpacket.ts): no backend, no slot. */
  #awaiting = new Set<AcceptedConnection>();
  /** What the postmaster read of a client before starting its backend, and when it accepted it. */
  #firstPackets = new WeakMap<AcceptedConnection, FirstPacket>();
  #listeners: Listener[] = [];

  #queue: PMEvent[] = [];
  #wake: (() => void) | null = null;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #timerDue = 0;
  #started = false;
  #exitCode: number | null = null;
  #resolveExited: (code: number) => void = () => {};
  readonly #exited = new Promise<number>((resolve) => (this.#resolveExited = resolve));

  constructor(options: PostmasterOptions) {
    super();
    if (options.entries?.backend === undefined) {
      throw new TypeError("Postmaster options.entries.backend is required");
    }
    this.#launcher = options.launcher;
    this.#settings = new PostmasterSettings(options.settings);
    this.#entries = options.entries;
    this.#net = options.net;
    this.#listen = options.listen ?? [];
    if (this.#listen.length > 0 && this.#net === undefined) {
      throw new TypeError("Postmaster options.listen needs options.net");
    }
    this.#childParams = options.childParams ?? null;
    this.#hooks = options.hooks ?? {};
    this.#bgworkers = new BgWorkerScheduler({
      settings: this.#settings,
      childParams: this.#childParams,
      children: () => this.#children,
      changed: () => this.#enqueue({ type: "bgworker-change" }),
    });
  }

  get pmState(): PMState {
    return this.#pmState;
  }
  get shutdownLevel(): ShutdownLevel {
    return this.#shutdown;
  }
  get fatalError(): boolean {
    return this.#fatalError;
  }
  get connsAllowed(): boolean {
    return this.#connsAllowed;
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
    if (this.#children === null) return [];
    return [...this.#children.registry.children()].map((c) => ({
      pid: c.pid,
      kind: c.kind,
      name: c.name,
      startedAt: c.startedAt,
      ...(c.activity === undefined ? {} : { activity: c.activity() }),
    }));
  }

  /** The registered background workers, with their handles' status. */
  backgroundWorkers(): BackgroundWorkerInfo[] {
    return this.#bgworkers.list.all().map((rw) => ({
      handle: rw.id,
      name: rw.spec.name,
      type: rw.spec.type ?? rw.spec.name,
      dynamic: rw.dynamic,
      ...this.#bgworkers.list.status(rw.id),
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
      if (this.#exitCode !== null || !this.#started) {
        admitted(
          new PgError("57P03", "the database system is shutting down", { severity: "FATAL" }),
        );
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
    return this.#bgworkers.registerStatic(worker);
  }

  /**
   * RegisterDynamicBackgroundWorker, for code running beside the postmaster.
   * Returns null when every registration is in use. Children use
   * `registerDynamicBackgroundWorker(link, worker)` from bgworker_main.ts.
   */
  registerDynamicBackgroundWorker(worker: BackgroundWorkerSpec): BackgroundWorkerHandle | null {
    const rw = this.#bgworkers.registerDynamic(worker, this.#pmState);
    if (rw === null) return null;
    return this.#bgworkers.handle(rw, {
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
    const registry = new ChildRegistry({
      backend: maxLiveBackends(this.#settings),
      bg_worker: this.#settings.int("max_worker_processes"),
    });
    this.#children = new PostmasterChildren(registry, {
      launcher: this.#launcher,
      entries: this.#entries,
      childParams: this.#childParams,
      enqueue: (ev: PMEvent) => this.#enqueue(ev),
      sslServer: () => this.#hooks.sslServer?.() ?? null,
    });
    this.#hooks.setStatus?.("starting");
    await this.#openListeners();
    if (this.#exitCode !== null) return;
    this.#accepting = true;
    if (!(await this.#startChildrenForStartup())) return;
    void this.#serverLoop();
    this.#enqueue({ type: "bgworker-change" });
  }

  async #openListeners(): Promise<void> {
    if (this.#listen.length === 0) return;
    const readFirst = this.#net!.readsBeforeHandOff !== false;
    this.#listeners = await openListeners(this.#net!, this.#listen, (conn) => {
      if (!readFirst) {
        this.#enqueue({ type: "connection", conn });
        return;
      }
      // No backend until the client's first packet is whole (firstpacket.ts).
      const acceptedAt = Date.now();
      this.#awaiting.add(conn);
      const timeoutMs = this.#settings.seconds("authentication_timeout") * 1000;
      void awaitFirstPacket(conn, { timeoutMs }).then((bytes) => {
        this.#awaiting.delete(conn);
        if (bytes === null) return;
        if (this.#exitCode !== null) {
          conn.destroy();
          return;
        }
        this.#firstPackets.set(conn, { bytes, acceptedAt });
        this.#enqueue({ type: "connection", conn });
      });
    });
    if (this.#listeners.length === 0) {
      ereport("FATAL", "no socket created for listening", LOG);
      await this.#exitPostmaster(1);
      throw new PgError("XX000", "no socket created for listening", { severity: "FATAL" });
    }
  }

  /** Starts what PM_STARTUP needs; false if the postmaster had to give up. */
  async #startChildrenForStartup(): Promise<boolean> {
    this.#startupDone = false;
    this.#engineReady = false;
    await this.#launchMissingBackgroundProcesses();
    const children = this.#children!;
    if (children.hasEntry("engine") && (await children.startAux("engine")) === null) {
      await this.#exitPostmaster(1);
      return false;
    }
    if ((await children.startAux("startup")) === null) {
      await this.#exitPostmaster(1);
      return false;
    }
    this.#startupStatus = "running";
    this.#updatePMState("PM_STARTUP");
    return true;
  }

  // ---- the server loop ----------------------------------------------------

  #enqueue(ev: PMEvent): void {
    if (this.#exitCode !== null) {
      if (ev.type === "connection") ev.conn.destroy();
      return;
    }
    this.#queue.push(ev);
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  async #serverLoop(): Promise<void> {
    while (this.#exitCode === null) {
      const ev = this.#queue.shift();
      if (ev === undefined) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        continue;
      }
      try {
        await this.#handleEvent(ev);
        await this.#postmasterStateMachine();
        if (this.#exitCode !== null) break;
        await this.#launchMissingBackgroundProcesses();
        await this.#bgworkers.maybeStart(this.#pmState, () => this.#exitCode === null);
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
        this.#terminateChildren("SIGKILL");
        await this.#exitPostmaster(1);
      }
    }
  }

  async #handleEvent(ev: PMEvent): Promise<void> {
    switch (ev.type) {
      case "signal":
        if (ev.signal === "SIGHUP") await this.#processReloadRequest();
        else this.#processShutdownRequest(shutdownLevelFor(ev.signal));
        return;
      case "child-exit":
        this.#processChildExit(ev.pid, ev.exit);
        return;
      case "child-message":
        this.#processChildMessage(ev.pid, ev.message);
        return;
      case "connection":
        await this.#backendStartup(ev.conn);
        return;
      case "dead-end-done":
        this.#children!.deadEndDone(ev.id);
        return;
      case "bgworker-change":
        return;
      case "cancel-backend": {
        const registry = this.#children!.registry;
        const child = registry.findByPid(ev.pid);
        if (child !== undefined && child.kind === "backend") {
          this.#children!.signalChild(child, "SIGINT");
        }
        if (ev.from !== undefined) {
          const done: PostmasterToChild = { pgts: "cancel-done" };
          registry.findByPid(ev.from)?.proc?.post(done);
        }
        return;
      }
      case "bgworker-terminate":
        this.#bgworkers.terminate(ev.id);
        return;
      case "backend-run":
        this.#admitBackendRun(ev);
        return;
      case "timer":
        await this.#processTimer();
        return;
      default: {
        const never: never = ev;
        throw new TypeError(`Unknown postmaster event: ${JSON.stringify(never)}`);
      }
    }
  }

  /** DetermineSleepTime: one timer, for the earliest of SIGKILL escalation and worker restarts. */
  #scheduleTimer(): void {
    let due: number | null = null;
    if (
      this.#abortStartTime !== 0 &&
      (this.#fatalError || this.#shutdown >= Shutdown.ImmediateShutdown)
    ) {
      due = this.#abortStartTime + this.#settings.seconds("sigkill_children_after") * 1000;
    }
    const restart = this.#bgworkers.list.nextRestartAt();
    if (restart !== null && (due === null || restart < due)) due = restart;
    if (this.#engineRetryAt !== 0 && (due === null || this.#engineRetryAt < due)) {
      due = this.#engineRetryAt;
    }
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

  async #processTimer(): Promise<void> {
    if (this.#engineRetryAt !== 0 && Date.now() >= this.#engineRetryAt) {
      this.#engineRetryAt = 0;
      if (this.#shutdown === Shutdown.NoShutdown && this.#pmState === "PM_STARTUP") {
        if ((await this.#children!.startAux("engine")) === null) {
          await this.#exitPostmaster(1);
          return;
        }
      }
    }
    const after = this.#settings.seconds("sigkill_children_after") * 1000;
    if (
      (this.#shutdown >= Shutdown.ImmediateShutdown || this.#fatalError) &&
      this.#abortStartTime !== 0 && Date.now() - this.#abortStartTime >= after
    ) {
      // We were gentle with them before; not any more.
      ereport("LOG", "issuing SIGKILL to recalcitrant children", LOG);
      this.#terminateChildren("SIGKILL");
      this.#abortStartTime = 0;
    }
  }

  // ---- requests from outside: reload and shutdown ------------------------

  /** process_pm_reload_request. */
  async #processReloadRequest(): Promise<void> {
    // Once a fast or immediate shutdown has begun, a reload could only get
    // in the way (and could restart children we are stopping).
    if (this.#shutdown > Shutdown.SmartShutdown) return;
    ereport("LOG", "received SIGHUP, reloading configuration files", LOG);
    try {
      await this.#hooks.reloadConfig?.();
    } catch (e) {
      ereport(
        "LOG",
        `configuration file reload failed: ${e instanceof Error ? e.message : String(e)}`,
        LOG,
      );
    }
    this.#signalChildren("SIGHUP", btmaskAllExcept("dead_end_backend"));
  }

  /** process_pm_shutdown_request: the most urgent request wins, a gentler one later is ignored. */
  #processShutdownRequest(level: ShutdownLevel): void {
    if (level <= this.#shutdown) return;
    this.#shutdown = level;
    switch (level) {
      case Shutdown.NoShutdown:
        return;
      case Shutdown.SmartShutdown:
        ereport("LOG", "received smart shutdown request", LOG);
        this.#hooks.setStatus?.("stopping");
        // In PM_RUN existing sessions go on; new clients are turned away
        // and the rest of the shutdown waits for the last session to end.
        if (this.#pmState === "PM_RUN") this.#connsAllowed = false;
        else if (this.#pmState === "PM_STARTUP" || this.#pmState === "PM_RECOVERY") {
          this.#updatePMState("PM_STOP_BACKENDS");
        }
        return;
      case Shutdown.FastShutdown:
        ereport("LOG", "received fast shutdown request", LOG);
        this.#hooks.setStatus?.("stopping");
        if (this.#pmState === "PM_STARTUP" || this.#pmState === "PM_RECOVERY") {
          this.#updatePMState("PM_STOP_BACKENDS");
        } else if (this.#pmState === "PM_RUN") {
          ereport("LOG", "aborting any active transactions", LOG);
          this.#updatePMState("PM_STOP_BACKENDS");
        }
        return;
      case Shutdown.ImmediateShutdown:
        ereport("LOG", "received immediate shutdown request", LOG);
        this.#hooks.setStatus?.("stopping");
        this.#children!.quitReason = "stop";
        this.#terminateChildren("SIGQUIT");
        this.#updatePMState("PM_WAIT_BACKENDS");
        this.#accepting = false;
        this.#abortStartTime = Date.now();
        return;
      default: {
        const never: never = level;
        throw new TypeError(`Unknown shutdown level: ${String(never)}`);
      }
    }
  }

  // ---- children ending ----------------------------------------------------

  /** process_pm_child_exit + CleanupBackend. */
  #processChildExit(pid: number, exit: ChildExit): void {
    const registry = this.#children!.registry;
    const child = registry.findByPid(pid);
    if (child === undefined) return; // already reaped, or not ours
    const quitSent = this.#children!.takeQuitSent(child);
    const released = registry.release(child);
    const kind = child.kind;
    switch (kind) {
      case "startup":
        this.#startupExited(child, exit, quitSent);
        return;
      case "engine":
        if (!this.#engineReady) {
          // Still in its recovery phase: judged like the startup process.
          this.#startupExited(child, exit, quitSent);
          return;
        }
        this.#engineReady = false;
        if (classifyChildExit(kind, exit, { pmState: this.#pmState }) === "crash") {
          this.#handleChildCrash(child, exit);
        }
        return;
      case "checkpointer":
      case "autovac_launcher":
      case "logger":
      case "stats":
      case "archiver":
      case "backend":
        if (!released || classifyChildExit(kind, exit, { pmState: this.#pmState }) === "crash") {
          this.#handleChildCrash(child, exit);
        } else if (exit.code !== 0) {
          ereport(
            kind === "backend" ? "DEBUG2" : "LOG",
            childExitMessage(this.#procName(child), pid, exit),
            LOG,
          );
        }
        return;
      case "bg_worker":
        this.#bgworkerExited(child, exit);
        return;
      case "dead_end_backend":
        return;
      default: {
        const never: never = kind;
        throw new TypeError(`Unknown backend type: ${String(never)}`);
      }
    }
  }

  #procName(child: PMChild): string {
    return childProcName(child.kind, child.workerType ?? child.name);
  }

  /** The startup process's special cases (and the engine's, before it is ready). */
  #startupExited(child: PMChild, exit: ChildExit, quitSent: boolean): void {
    if (child.kind === "startup") this.#startupStatus = "not_running";
    if (this.#shutdown > Shutdown.NoShutdown && (exit.code === 0 || exit.code === 1)) {
      // Stopped on request (or done anyway): the state machine does the rest.
      if (this.#pmState === "PM_STARTUP" || this.#pmState === "PM_RECOVERY") {
        this.#updatePMState("PM_WAIT_BACKENDS");
      }
      return;
    }
    if (exit.code !== 0 || child.kind === "engine") {
      // A failure nobody caused during the first phase: recovery itself is
      // broken, and looping through crash recovery would not fix it.
      if (this.#pmState === "PM_STARTUP" && !quitSent) {
        ereport("LOG", childExitMessage(this.#procName(child), child.pid, exit), LOG);
        if (child.kind === "engine" && this.#hasRun) {
          // After a crash the cluster ran before, so recovery is not broken
          // in itself: what stops it now is usually outside (a full disk
          // the crash recovery must write to). PostgreSQL would exit and
          // wait for a manual restart; pgts tries again, with backoff,
          // refusing connections (57P03) meanwhile.
          this.#engineRetryDelayMs = Math.min(
            ENGINE_RETRY_MAX_MS,
            Math.max(ENGINE_RETRY_MIN_MS, this.#engineRetryDelayMs * 2),
          );
          this.#engineRetryAt = Date.now() + this.#engineRetryDelayMs;
          ereport(
            "LOG",
            `engine could not start after a crash; retrying in ${
              this.#engineRetryDelayMs / 1000
            } s`,
            {
              ...LOG,
              hint:
                "Look for the cause above (such as a full disk); a fast shutdown stops the retries.",
            },
          );
          return;
        }
        ereport("LOG", "aborting startup due to startup process failure", LOG);
        void this.#exitPostmaster(1);
        return;
      }
      // Later, the same failure stops the cluster once everyone is gone;
      // if we had signalled it, its death is ours and we do restart.
      if (!quitSent) this.#startupStatus = "crashed";
      this.#handleChildCrash(child, exit);
      return;
    }
    if (this.#pmState !== "PM_STARTUP" && this.#pmState !== "PM_RECOVERY") return;
    // Startup succeeded. FatalError stays set until the engine too is done
    // with its recovery (#maybeReachRun).
    this.#abortStartTime = 0;
    this.#startupDone = true;
    this.#maybeReachRun();
  }

  /** PM_RUN once the startup process is done and the engine (if any) serves. */
  #maybeReachRun(): void {
    if (!this.#startupDone || (this.#entries.engine !== undefined && !this.#engineReady)) return;
    if (this.#pmState !== "PM_STARTUP" && this.#pmState !== "PM_RECOVERY") return;
    this.#fatalError = false;
    this.#connsAllowed = true;
    this.#hasRun = true;
    this.#engineRetryDelayMs = 0;
    this.#updatePMState("PM_RUN");
    this.#hooks.setStatus?.("ready");
    ereport("LOG", "database system is ready to accept connections", LOG);
  }

  #bgworkerExited(child: PMChild, exit: ChildExit): void {
    // Exits the postmaster itself caused must not count against the
    // worker's restart intensity.
    const counted = !this.#fatalError && this.#shutdown < Shutdown.ImmediateShutdown;
    const crashed = this.#bgworkers.isCrash(child, exit, this.#pmState);
    if (crashed) {
      this.#handleChildCrash(child, exit);
    } else if (counted || exit.code === 0) {
      const level = exit.code === 0 ? "DEBUG1" : "LOG";
      ereport(level, childExitMessage(this.#procName(child), child.pid, exit), LOG);
    }
    this.#bgworkers.exited(child, exit, { counted });
  }

  /** HandleChildCrash: the first crash stops everyone; later exits only update the books. */
  #handleChildCrash(child: PMChild, exit: ChildExit): void {
    if (this.#fatalError || this.#shutdown >= Shutdown.ImmediateShutdown) return;
    ereport("LOG", childExitMessage(this.#procName(child), child.pid, exit), LOG);
    ereport("LOG", "terminating any other active server processes", LOG);
    this.#handleFatalError("crash");
  }

  /** HandleFatalError. */
  #handleFatalError(reason: QuitSignalReason): void {
    this.#children!.quitReason = reason;
    this.#terminateChildren("SIGQUIT");
    this.#fatalError = true;
    const state = this.#pmState;
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
        this.#updatePMState("PM_WAIT_BACKENDS");
        break;
      case "PM_WAIT_CHECKPOINTER":
        this.#updatePMState("PM_WAIT_DEAD_END");
        break;
      default: {
        const never: never = state;
        throw new TypeError(`Unknown PMState: ${String(never)}`);
      }
    }
    if (this.#abortStartTime === 0) this.#abortStartTime = Date.now();
  }

  /** TerminateChildren: everyone but the logger. */
  #terminateChildren(sig: Signal): void {
    if (sig === "SIGQUIT" || sig === "SIGKILL" || sig === "SIGABRT") {
      if (this.#startupStatus === "running") this.#startupStatus = "signaled";
    }
    this.#signalChildren(sig, btmaskAllExcept("logger"));
  }

  // ---- children talking --------------------------------------------------

  #processChildMessage(pid: number, message: unknown): void {
    const child = this.#children!.registry.findByPid(pid);
    if (child === undefined) return; // a zombie's last words
    if (!isChildToPostmaster(message)) {
      this.#hooks.onChildMessage?.(
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
      this.#children!.processCancelRequest(child, message);
      return;
    }
    if (message.pgts === "request") {
      let reply: PostmasterToChild;
      try {
        reply = {
          pgts: "reply",
          id: message.id,
          value: this.#bgworkers.answer(child, message.request, this.#pmState),
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
        if (this.#pmState === "PM_STARTUP" && this.#shutdown === Shutdown.NoShutdown) {
          this.#fatalError = false;
          this.#abortStartTime = 0;
          this.#updatePMState("PM_RECOVERY");
        }
        return;
      case "engine-ready":
        if (child.kind === "engine") {
          this.#engineReady = true;
          this.#maybeReachRun();
        }
        return;
      case "background-worker-change":
        return;
      default: {
        const never: never = message.reason;
        throw new TypeError(`Unknown pmsignal: ${String(never)}`);
      }
    }
  }

  // ---- clients ------------------------------------------------------------

  /** BackendStartup: admit the client and launch its backend, or turn it away. */
  async #backendStartup(conn: AcceptedConnection): Promise<void> {
    if (!this.#accepting) {
      // PostgreSQL stops polling its sockets here and the kernel queues new
      // clients; pgts queues them itself until crash recovery is done.
      this.#held.push(conn);
      return;
    }
    const cac = canAcceptConnections({
      pmState: this.#pmState,
      shutdown: this.#shutdown,
      fatalError: this.#fatalError,
      connsAllowed: this.#connsAllowed,
    });
    const timeoutMs = this.#settings.seconds("authentication_timeout") * 1000;
    const first = this.#firstPackets.get(conn);
    this.#firstPackets.delete(conn);
    await this.#children!.backendStartup(conn, {
      cac,
      timeoutMs,
      ...(first !== undefined ? { first } : {}),
    });
  }

  /** BackendStartup for an in-process run: no dead-end to serve, the refusal is the answer. */
  #admitBackendRun(ev: Extract<PMEvent, { type: "backend-run" }>): void {
    const cac = this.#accepting
      ? canAcceptConnections({
        pmState: this.#pmState,
        shutdown: this.#shutdown,
        fatalError: this.#fatalError,
        connsAllowed: this.#connsAllowed,
      })
      : "CAC_RECOVERY";
    const registry = this.#children!.registry;
    let child = cac === "CAC_OK" ? registry.assignSlot("backend", ev.name) : null;
    // A run is authenticated already: it takes one of max_connections now.
    const maxConnections = this.#settings.int("max_connections");
    if (
      child !== null && registry.claimConnection(child, { maxConnections, reserved: 0 }) !== "ok"
    ) {
      registry.release(child);
      child = null;
    }
    if (child === null) {
      const r = rejectionFor(cac === "CAC_OK" ? "CAC_TOOMANY" : cac);
      ev.admitted(
        new PgError(r.code, r.message, {
          severity: "FATAL",
          ...(r.detail === undefined ? {} : { detail: r.detail }),
        }),
      );
      return;
    }
    if (ev.activity !== undefined) child.activity = ev.activity;
    this.#children!.adopt(child, ev.proc);
    ev.admitted(null);
  }

  // ---- auxiliary children -------------------------------------------------

  /** LaunchMissingBackgroundProcesses: relaunch what exited normally, when it belongs. */
  async #launchMissingBackgroundProcesses(): Promise<void> {
    const children = this.#children!;
    const state = this.#pmState;
    const missing = (kind: AuxKind) =>
      children.hasEntry(kind) && children.registry.singleton(kind) === undefined;
    if (missing("logger") && state !== "PM_NO_CHILDREN") await children.startAux("logger");
    const starting = state === "PM_INIT" || state === "PM_STARTUP" || state === "PM_RECOVERY" ||
      state === "PM_RUN";
    if (missing("checkpointer") && starting) await children.startAux("checkpointer");
    const running = state === "PM_RUN" && this.#shutdown === Shutdown.NoShutdown &&
      !this.#fatalError;
    if (missing("stats") && running) await children.startAux("stats");
    // PgArchStartupAllowed: archiving is on, and the cluster is running.
    if (missing("archiver") && running && this.#settings.string("archive_mode") !== "off") {
      await children.startAux("archiver");
    }
    if (missing("autovac_launcher") && running && this.#settings.bool("autovacuum")) {
      await children.startAux("autovac_launcher");
    }
  }

  // ---- the state machine --------------------------------------------------

  /** PostmasterStateMachine: moves the shutdown and crash sequences along. */
  async #postmasterStateMachine(): Promise<void> {
    if (this.#exitCode !== null) return;
    const registry = this.#children!.registry;
    if (this.#pmState === "PM_RUN" && !this.#connsAllowed) {
      // Smart shutdown: the rest waits for the last session to end.
      if (registry.count(btmask("backend")) === 0) this.#updatePMState("PM_STOP_BACKENDS");
    }
    if (this.#pmState === "PM_STOP_BACKENDS") {
      this.#bgworkers.forgetUnstarted();
      this.#signalChildren(
        "SIGTERM",
        btmask("backend", "autovac_launcher", "bg_worker", "startup"),
      );
      if (this.#fatalError) {
        // Stopped while crash recovery has not finished (an engine that
        // cannot start, retried): there is nothing for a shutdown
        // checkpoint to keep, and the children started for the recovery
        // (the checkpointer, the engine) would otherwise be waited for.
        this.#terminateChildren("SIGQUIT");
      }
      this.#updatePMState("PM_WAIT_BACKENDS");
    }
    if (this.#pmState === "PM_WAIT_BACKENDS") {
      const abnormal = this.#fatalError || this.#shutdown >= Shutdown.ImmediateShutdown;
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
          this.#accepting = false;
          this.#updatePMState("PM_WAIT_DEAD_END");
          this.#signalChildren("SIGQUIT", btmask("dead_end_backend"));
        } else {
          this.#updatePMState("PM_WAIT_CHECKPOINTER");
          this.#signalChildren("SIGUSR2", btmask("checkpointer", "engine", "stats"));
        }
      }
    }
    if (this.#pmState === "PM_WAIT_CHECKPOINTER") {
      // PostgreSQL's PM_SHUTDOWN_2: once the engine closed (its shutdown
      // checkpoint completes the last segment), the archiver's SIGUSR2
      // makes it archive what is ready and exit.
      if (
        registry.count(btmask("checkpointer", "engine", "stats")) === 0 &&
        registry.count(btmask("archiver")) > 0 && !this.#archiverStopping
      ) {
        this.#archiverStopping = true;
        this.#signalChildren("SIGUSR2", btmask("archiver"));
      }
      if (registry.count(btmask("checkpointer", "engine", "stats", "archiver")) === 0) {
        this.#accepting = false;
        this.#updatePMState("PM_WAIT_DEAD_END");
        this.#signalChildren("SIGTERM", btmaskAllExcept("logger"));
      }
    }
    if (this.#pmState === "PM_WAIT_DEAD_END") {
      if (registry.count(btmaskAllExcept("logger")) === 0) this.#updatePMState("PM_NO_CHILDREN");
    }
    if (this.#pmState !== "PM_NO_CHILDREN") return;

    if (this.#shutdown > Shutdown.NoShutdown) {
      if (this.#fatalError) {
        ereport("LOG", "abnormal database system shutdown", LOG);
        await this.#exitPostmaster(1);
      } else {
        await this.#exitPostmaster(0);
      }
      return;
    }
    if (this.#startupStatus === "crashed") {
      ereport("LOG", "shutting down due to startup process failure", LOG);
      await this.#exitPostmaster(1);
      return;
    }
    if (!this.#settings.bool("restart_after_crash")) {
      ereport("LOG", 'shutting down because "restart_after_crash" is off', LOG);
      await this.#exitPostmaster(1);
      return;
    }
    if (this.#fatalError) await this.#reinitialize();
  }

  /** Crash recovery, once every child is gone. */
  async #reinitialize(): Promise<void> {
    ereport("LOG", "all server processes terminated; reinitializing", LOG);
    this.#bgworkers.list.resetCrashTimes();
    try {
      await this.#hooks.resetSharedState?.();
    } catch (e) {
      ereport(
        "FATAL",
        `could not reinitialize shared state: ${e instanceof Error ? e.message : String(e)}`,
        LOG,
      );
      await this.#exitPostmaster(1);
      return;
    }
    this.#children!.quitReason = null;
    this.#children!.forgetQuitSent();
    if (!(await this.#startChildrenForStartup())) return;
    this.#abortStartTime = 0;
    this.#accepting = true;
    // Clients that arrived while we could not admit anyone, in arrival order.
    for (const conn of this.#held.splice(0)) this.#enqueue({ type: "connection", conn });
  }

  // ---- chokepoints ----------------------------------------------------------

  #updatePMState(to: PMState): void {
    const from = this.#pmState;
    ereport("DEBUG1", `updating PMState from ${from} to ${to}`, LOG);
    this.#pmState = to;
    this.dispatchEvent(new CustomEvent("pmstate", { detail: { from, to } }));
  }

  /** Every signal to a child goes through PostmasterChildren.signalChild (signal_child). */
  #signalChildren(sig: Signal, mask: BackendTypeMask): void {
    this.#children!.signalChildren(sig, mask);
  }

  async #exitPostmaster(code: number): Promise<void> {
    if (this.#exitCode !== null) return;
    this.#exitCode = code;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#accepting = false;
    for (const conn of this.#held.splice(0)) conn.destroy();
    for (const conn of this.#awaiting) conn.destroy();
    this.#awaiting.clear();
    for (const ev of this.#queue.splice(0)) if (ev.type === "connection") ev.conn.destroy();
    // Children outlive a PostgreSQL postmaster only until they notice its
    // death; pgts makes that immediate. The logger goes last, politely.
    if (this.#children !== null) {
      this.#signalChildren("SIGKILL", btmaskAllExcept("logger"));
      this.#signalChildren("SIGTERM", btmask("logger"));
    }
    await Promise.allSettled(this.#listeners.map((l) => l.close()));
    ereport("LOG", "database system is shut down", LOG);
    this.#resolveExited(code);
    this.dispatchEvent(new CustomEvent("exit", { detail: { code } }));
  }
}

/**
 * Backends the postmaster lets live at once (MaxLivePostmasterChildren):
 * twice max_connections and the worker slots, as in PostgreSQL, because a
 * backend still reading its startup packet or authenticating holds no
 * connection yet. max_connections itself is checked after authentication
 * (the "claim-connection" request), so clients that connect and send
 * nothing cannot lock out the ones that log in.
 */
export function maxLiveBackends(settings: PostmasterSettings): number {
  return 2 * (settings.int("max_connections") + settings.int("max_worker_processes"));
}
