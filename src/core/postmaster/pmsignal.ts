/**
 * Messages between the postmaster and its children (PostgreSQL's pmsignal.c
 * and the postmaster-side half of bgworker.c's shared slots), plus
 * `PostmasterLink`, the child-side end of them.
 *
 * PostgreSQL's children talk to the postmaster through flags in shared
 * memory and SIGUSR1; pgts children have only `ChildEnv.post`, so every such
 * flag becomes a message. All messages are plain structured-cloneable
 * objects tagged `pgts`, so that they can share the channel with whatever
 * else an adapter or a child sends. Requests carry an id and get exactly one
 * reply; the postmaster answers them in its server loop, in order.
 */

import type { BackgroundWorkerSpec, BgwHandleStatus } from "./bgworker.ts";
import type { ChildEnv } from "../adapter.ts";
import type { QuitSignalReason } from "./pmstate.ts";

/** PostgreSQL's PMSignalReason, the ones pgts uses. */
export type PMSignalReason =
  /** The startup process began recovery (PM_STARTUP → PM_RECOVERY). */
  | "recovery-started"
  /** The engine finished its recovery phase and serves queries. */
  | "engine-ready"
  /** Ask the postmaster to look at the background worker list (dynamic registration). */
  | "background-worker-change"
  /** pg_reload_conf() ran in a backend: PostgreSQL's SIGHUP to the postmaster. */
  | "reload-config";

/** The answer to a claim-connection request. */
export type ConnectionClaim = "ok" | "too-many" | "reserved" | "reserved-for-role";

export type PMRequest =
  /**
   * A connection, once the client has authenticated (InitProcess's PGPROC):
   * max_connections counts these, not backends still in authentication.
   */
  | {
    readonly op: "claim-connection";
    readonly superuser: boolean;
    /** The role has privileges of pg_use_reserved_connections. */
    readonly useReserved: boolean;
  }
  | { readonly op: "register-bgworker"; readonly worker: BackgroundWorkerSpec }
  | { readonly op: "bgworker-status"; readonly handle: number }
  | { readonly op: "terminate-bgworker"; readonly handle: number };

/**
 * A backend telling the postmaster its cancel key, right after it chose it
 * (PostgreSQL's postmaster kept each backend's key in its Backend entry too).
 */
export interface BackendKeyMessage {
  readonly pgts: "backend-key";
  readonly key: number;
  readonly user: string;
  readonly database: string;
  readonly applicationName: string;
}

/** A backend that read a CancelRequest, passing it on for the postmaster to judge and route. */
export interface CancelRequestMessage {
  readonly pgts: "cancel-request";
  readonly pid: number;
  readonly key: number;
}

/** Child → postmaster. */
export type ChildToPostmaster =
  | { readonly pgts: "pmsignal"; readonly reason: PMSignalReason }
  | { readonly pgts: "request"; readonly id: number; readonly request: PMRequest }
  | BackendKeyMessage
  | CancelRequestMessage
  /**
   * A backend has taken a SIGINT in (its session holds the cancel): where
   * PostgreSQL's signal handler runs before the backend reads anything
   * more, a child's may run after it read the client's next query, so the
   * readers of CancelRequests for it close their connections only now.
   */
  | { readonly pgts: "cancel-seen" };

/** Postmaster → child. */
export type PostmasterToChild =
  /** Sent just before SIGQUIT, so the child can tell its client why (SetQuitSignalReason). */
  | { readonly pgts: "pmquit"; readonly reason: QuitSignalReason }
  /** To the child that read a CancelRequest: the target backend has taken the signal in (or is gone). */
  | { readonly pgts: "cancel-done" }
  | {
    readonly pgts: "reply";
    readonly id: number;
    readonly value?: unknown;
    readonly error?: { readonly code: string; readonly message: string };
  }
  /** bgw_notify_pid: a worker this child registered started, stopped or was forgotten. */
  | {
    readonly pgts: "bgworker-notify";
    readonly handle: number;
    readonly status: BgwHandleStatus;
    readonly pid: number;
  };

export function isChildToPostmaster(m: unknown): m is ChildToPostmaster {
  const tag = typeof m === "object" && m !== null ? (m as { pgts?: unknown }).pgts : undefined;
  return tag === "pmsignal" || tag === "request" || tag === "backend-key" ||
    tag === "cancel-request" || tag === "cancel-seen";
}

function isPostmasterToChild(m: unknown): m is PostmasterToChild {
  const tag = typeof m === "object" && m !== null ? (m as { pgts?: unknown }).pgts : undefined;
  return tag === "pmquit" || tag === "reply" || tag === "bgworker-notify" ||
    tag === "cancel-done";
}

/** A request the postmaster refused; carries its SQLSTATE. */
export class PostmasterRequestError extends Error {
  override readonly name = "PostmasterRequestError";
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * The child's end of the channel. It takes over `env.onMessage`: postmaster
 * messages are handled here, anything else goes to `onOtherMessage`. Create
 * one per child, before anything else reads messages.
 */
export class PostmasterLink {
  #env: ChildEnv;
  #nextId = 1;
  #pending = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
  #quitReason: QuitSignalReason | null = null;
  #quitWaiters: ((r: QuitSignalReason | null) => void)[] = [];
  #notifyListeners = new Set<(handle: number, status: BgwHandleStatus, pid: number) => void>();
  /** Messages that are not the postmaster's. */
  onOtherMessage: ((message: unknown) => void) | null = null;

  constructor(env: ChildEnv) {
    this.#env = env;
    env.onMessage = (m) => this.#dispatch(m);
    env.abort.addEventListener("abort", () => {
      for (const p of this.#pending.values()) p.reject(new Error("Postmaster link closed"));
      this.#pending.clear();
    }, { once: true });
  }

  get env(): ChildEnv {
    return this.#env;
  }

  #dispatch(m: unknown): void {
    if (!isPostmasterToChild(m)) {
      this.onOtherMessage?.(m);
      return;
    }
    switch (m.pgts) {
      case "pmquit": {
        this.#quitReason = m.reason;
        for (const w of this.#quitWaiters.splice(0)) w(m.reason);
        return;
      }
      case "reply": {
        const p = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        if (p === undefined) return;
        if (m.error !== undefined) {
          p.reject(new PostmasterRequestError(m.error.code, m.error.message));
        } else p.resolve(m.value);
        return;
      }
      case "bgworker-notify":
        for (const l of this.#notifyListeners) l(m.handle, m.status, m.pid);
        return;
      case "cancel-done":
        // For the child that read a CancelRequest, which waits for it itself
        // (startup.ts); late or elsewhere it means nothing.
        return;
      default: {
        const never: never = m;
        throw new TypeError(`Unknown postmaster message: ${JSON.stringify(never)}`);
      }
    }
  }

  /** The backend has taken a SIGINT in: see ChildToPostmaster's "cancel-seen". */
  cancelSeen(): void {
    const msg: ChildToPostmaster = { pgts: "cancel-seen" };
    this.#env.post(msg);
  }

  /** PostgreSQL's SendPostmasterSignal. */
  sendSignal(reason: PMSignalReason): void {
    const msg: ChildToPostmaster = { pgts: "pmsignal", reason };
    this.#env.post(msg);
  }

  /** Sends a request and waits for its reply. */
  request(request: PMRequest): Promise<unknown> {
    const id = this.#nextId++;
    const msg: ChildToPostmaster = { pgts: "request", id, request };
    return new Promise((resolve, reject) => {
      if (this.#env.abort.aborted) {
        reject(new Error("Postmaster link closed"));
        return;
      }
      this.#pending.set(id, { resolve, reject });
      this.#env.post(msg);
    });
  }

  /**
   * Takes one of max_connections for this backend, after authentication:
   * "ok", or why not ("too-many": every connection is taken; "reserved":
   * only superuser_reserved_connections are left and this is no superuser;
   * "reserved-for-role": only those and reserved_connections are left, and
   * the role has no privileges of pg_use_reserved_connections).
   */
  async claimConnection(superuser: boolean, useReserved = false): Promise<ConnectionClaim> {
    return (await this.request({
      op: "claim-connection",
      superuser,
      useReserved,
    })) as ConnectionClaim;
  }

  /**
   * Why the postmaster sent SIGQUIT. The reason travels as a message just
   * before the signal; where an adapter delivers signals out of band, the
   * signal can overtake it, so this waits up to `waitMs` for it. Null means
   * SIGQUIT came without one (PostgreSQL's PMQUIT_NOT_SENT).
   */
  quitReason(waitMs = 100): Promise<QuitSignalReason | null> {
    if (this.#quitReason !== null) return Promise.resolve(this.#quitReason);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#quitWaiters = this.#quitWaiters.filter((w) => w !== done);
        resolve(null);
      }, waitMs);
      const done = (r: QuitSignalReason | null) => {
        clearTimeout(timer);
        resolve(r);
      };
      this.#quitWaiters.push(done);
    });
  }

  /** Listens for bgw_notify_pid notifications; returns a function that stops listening. */
  onBgworkerNotify(l: (handle: number, status: BgwHandleStatus, pid: number) => void): () => void {
    this.#notifyListeners.add(l);
    return () => this.#notifyListeners.delete(l);
  }
}
