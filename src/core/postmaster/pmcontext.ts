/**
 * What postmaster.c keeps in file-level variables (`pmState`, `Shutdown`,
 * `FatalError`, `connsAllowed`, `StartupStatus`, `AbortStartTime`, ...), in
 * one object the postmaster's modules share: pmstatemachine.ts,
 * pmshutdown.ts, pmcrash.ts and pmadmit.ts. `Postmaster` creates it and
 * hands it to them only from its server loop, so no two of them ever run
 * at once.
 *
 * Its methods are the chokepoints. `updatePMState` is the only writer of
 * PMState; `signalChildren` and `terminateChildren` reach a child only
 * through `PostmasterChildren.signalChild`; `exitPostmaster` is the
 * Postmaster's own, the only way out. It never launches a child or reads a
 * socket itself.
 */

import { ereport } from "../elog.ts";
import type { SslServer } from "../backend/secure.ts";
import { BgWorkerScheduler } from "./bgworker_pm.ts";
import type { AcceptedConnection, Signal } from "../adapter.ts";
import type { BackendType } from "./backendtype.ts";
import { type BackendTypeMask, btmaskAllExcept } from "./pmchild.ts";
import type { FirstPacket, PostmasterChildren, PostmasterEntries } from "./pmlaunch.ts";
import {
  type BackendActivity,
  type PMEvent,
  type PMState,
  Shutdown,
  type ShutdownLevel,
  type StartupStatus,
} from "./pmstate.ts";
import type { PostmasterSettings } from "./settings.ts";

/** The lock file's status line (postmaster.pid line 8). */
export type PMStatus = "starting" | "ready" | "stopping";

/** A child as the postmaster's callers see it. */
export interface ChildInfo {
  readonly pid: number;
  readonly kind: BackendType;
  readonly name: string;
  /** When its slot was taken, ms since the epoch. */
  readonly startedAt: number;
  /** For an in-process backend run: its state and current query. */
  readonly activity?: BackendActivity;
}

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

export const LOG = { category: "postmaster" } as const;

export class PMContext {
  readonly settings: PostmasterSettings;
  readonly entries: PostmasterEntries;
  readonly hooks: PostmasterHooks;
  readonly bgworkers: BgWorkerScheduler;
  /** The children's books and launcher; set once `start()` has begun. */
  children: PostmasterChildren | null = null;

  #pmState: PMState = "PM_INIT";
  shutdown: ShutdownLevel = Shutdown.NoShutdown;
  fatalError = false;
  /** The archiver was told to finish (PM_SHUTDOWN_2's signal), once. */
  archiverStopping = false;
  connsAllowed = true;
  startupStatus: StartupStatus = "not_running";
  /** The cluster reached PM_RUN at least once (a later engine start is after a crash). */
  hasRun = false;
  /** When to start the engine again after it failed to start after a crash (0: not waiting). */
  engineRetryAt = 0;
  engineRetryDelayMs = 0;
  startupDone = false;
  engineReady = false;
  abortStartTime = 0;
  /** False while clients are held rather than admitted (crash recovery, the end). */
  accepting = false;
  /** Clients that arrived while none could be admitted, in arrival order. */
  readonly held: AcceptedConnection[] = [];
  /** Clients whose first packet has not arrived yet (firstpacket.ts): no backend, no slot. */
  readonly awaiting = new Set<AcceptedConnection>();
  /** What the postmaster read of a client before starting its backend, and when it accepted it. */
  readonly firstPackets = new WeakMap<AcceptedConnection, FirstPacket>();
  /** Set once, by the Postmaster's exitPostmaster. */
  exitCode: number | null = null;

  readonly enqueue: (ev: PMEvent) => void;
  readonly exitPostmaster: (code: number) => Promise<void>;
  #onStateChange: (from: PMState, to: PMState) => void;

  constructor(options: {
    settings: PostmasterSettings;
    entries: PostmasterEntries;
    hooks: PostmasterHooks;
    childParams: unknown;
    /** Queues an event for the server loop. */
    enqueue: (ev: PMEvent) => void;
    /** ExitPostmaster. */
    exitPostmaster: (code: number) => Promise<void>;
    /** Told of every PMState change, after it is made. */
    onStateChange: (from: PMState, to: PMState) => void;
  }) {
    this.settings = options.settings;
    this.entries = options.entries;
    this.hooks = options.hooks;
    this.enqueue = options.enqueue;
    this.exitPostmaster = options.exitPostmaster;
    this.#onStateChange = options.onStateChange;
    this.bgworkers = new BgWorkerScheduler({
      settings: options.settings,
      childParams: options.childParams,
      children: () => this.children,
      changed: () => this.enqueue({ type: "bgworker-change" }),
    });
  }

  get pmState(): PMState {
    return this.#pmState;
  }

  /** UpdatePMState: every state change, logged once. */
  updatePMState(to: PMState): void {
    const from = this.#pmState;
    ereport("DEBUG1", `updating PMState from ${from} to ${to}`, LOG);
    this.#pmState = to;
    this.#onStateChange(from, to);
  }

  /** Every signal to a child goes through PostmasterChildren.signalChild (signal_child). */
  signalChildren(sig: Signal, mask: BackendTypeMask): void {
    this.children!.signalChildren(sig, mask);
  }

  /** TerminateChildren: everyone but the logger. */
  terminateChildren(sig: Signal): void {
    if (sig === "SIGQUIT" || sig === "SIGKILL" || sig === "SIGABRT") {
      if (this.startupStatus === "running") this.startupStatus = "signaled";
    }
    this.signalChildren(sig, btmaskAllExcept("logger"));
  }
}
