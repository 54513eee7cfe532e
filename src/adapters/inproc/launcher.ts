/**
 * A ChildLauncher that runs every child main in the postmaster's own realm,
 * as an asynchronous task with a synthetic, unique pid. It exists so the
 * whole postmaster can run in one process (tests, embedding, platforms
 * without subprocesses) and behaves like a process launcher where that is
 * observable:
 *
 * - Signals are events: `signal()` returns at once and the child's handler
 *   runs later, in order with the messages sent before it. A signal without
 *   a handler has POSIX's default action: the child ends, "terminated by
 *   signal" (SIGKILL always does so, and cannot be handled).
 * - SIGKILL is immediate: the child's `abort` fires, its client connection
 *   is destroyed and its exit is reported at once. The main's code may still
 *   be running (nothing can stop a task in the same realm), but it is a
 *   zombie: whatever it posts afterwards is dropped, and its return value
 *   is ignored.
 * - An uncaught throw or rejection from the main is a crash, reported as
 *   SIGABRT, the way PostgreSQL's PANIC ends in abort(); the exception is
 *   PgError with severity FATAL, which ends the child with exit code 1 as
 *   PostgreSQL's FATAL does. Throws outside the main's promise chain (a
 *   floating promise) cannot be attributed to a child here.
 *
 * Children share the realm's globals, so a child that mutates them affects
 * its siblings; that is the price of no isolation. Given a `logContext` (an
 * AsyncLocalStorage, which this module does not import: it stays portable),
 * a child's code runs as that child, and what it logs carries its own pid,
 * as a process's lines do.
 */

import { ereport, isPgError } from "../../core/elog.ts";
import { LogLinePrefix } from "../../core/log.ts";
import { importMain } from "../child/childenv.ts";
import type {
  CatchableSignal,
  ChildEntry,
  ChildEnv,
  ChildExit,
  ChildLauncher,
  ChildMain,
  ChildProcess,
  ChildStartInfo,
  Connection,
  Signal,
} from "../../core/adapter.ts";

/**
 * The abort reason of every ended child: one instance, since abort()'s
 * default reason is a new DOMException, whose stack trace costs on every
 * connection.
 */
const CHILD_ENDED = new Error("the child has ended");

/** Unique across every launcher in the realm, so pids never collide in logs. */
let nextPid = 100000;

export interface InprocLauncherOptions {
  /**
   * Resolves an entry to its main; defaults to `import(entry.module)` and
   * the named export. Use it where dynamic import is not available (some
   * bundles) or to substitute mains in tests.
   */
  readonly resolve?: (entry: ChildEntry) => ChildMain | Promise<ChildMain>;
  /**
   * Runs each child's main, signal handlers and message handlers inside the
   * child's log prefix, and the postmaster's handlers outside any: an
   * `AsyncLocalStorage<LogLinePrefix>` whose `getStore` is given to
   * `setLogPrefixLookup`. Without it children log as the postmaster.
   */
  readonly logContext?: ChildLogContext;
}

/** The part of AsyncLocalStorage the launcher uses. */
export interface ChildLogContext {
  run<R>(prefix: LogLinePrefix, fn: () => R): R;
  exit<R>(fn: () => R): R;
}

/**
 * What structuredClone would make of a message, as a pipe would carry it.
 * A record of primitives and of such records (most messages: a backend's
 * cancel key, a signal, a request to the postmaster and its reply) is
 * copied by hand, as structuredClone would (own enumerable string keys,
 * plain objects); structuredClone itself, several microseconds a call, is
 * left for everything else.
 */
function cloneMessage(message: unknown): unknown {
  if (typeof message !== "object" || message === null) {
    return typeof message === "symbol" || typeof message === "function"
      ? structuredClone(message) // throws DataCloneError, as a pipe would refuse it
      : message;
  }
  return copyRecord(message, 0) ?? structuredClone(message);
}

/** How deep copyRecord follows nested records before leaving a message to structuredClone. */
const RECORD_DEPTH = 3;

/** A copy of a plain record of primitives and records, or null when it holds anything else. */
function copyRecord(record: object, depth: number): Record<string, unknown> | null {
  if (Object.getPrototypeOf(record) !== Object.prototype) return null;
  const copy: Record<string, unknown> = {};
  for (const key of Object.keys(record)) {
    // An own "__proto__" key would set the copy's prototype instead.
    if (key === "__proto__") return null;
    let value = (record as Record<string, unknown>)[key];
    if (typeof value === "object" && value !== null) {
      // Deeper, or a cycle: structuredClone's.
      if (depth === RECORD_DEPTH) return null;
      value = copyRecord(value, depth + 1);
      if (value === null) return null;
    } else if (typeof value === "symbol" || typeof value === "function") return null;
    copy[key] = value;
  }
  return copy;
}

type InboxItem =
  | { readonly kind: "message"; readonly message: unknown }
  | { readonly kind: "signal"; readonly signal: CatchableSignal };

/** One child: its ChildEnv (the child's view) and ChildProcess (the postmaster's). */
class InprocChild {
  readonly pid: number;
  readonly info: ChildStartInfo;
  #abort = new AbortController();
  #handlers = new Map<CatchableSignal, () => void>();
  #inbox: InboxItem[] = [];
  #draining = false;
  #toChildPending: unknown[] = [];
  #toParentPending: unknown[] = [];
  #childOnMessage: ((m: unknown) => void) | null = null;
  #parentOnMessage: ((m: unknown) => void) | null = null;
  #exit: ChildExit | null = null;
  #resolveExited: (exit: ChildExit) => void = () => {};
  readonly exited = new Promise<ChildExit>((resolve) => (this.#resolveExited = resolve));
  readonly env: ChildEnv;
  readonly process: ChildProcess;
  /** Runs code as this child (its log lines) and as the postmaster. */
  readonly #asChild: <R>(fn: () => R) => R;
  readonly #asParent: <R>(fn: () => R) => R;

  constructor(pid: number, info: ChildStartInfo, logContext?: ChildLogContext) {
    this.pid = pid;
    this.info = info;
    if (logContext === undefined) {
      this.#asChild = this.#asParent = (fn) => fn();
    } else {
      const prefix = new LogLinePrefix({ pid, backendType: info.name, startTime: Date.now() });
      this.#asChild = (fn) => logContext.run(prefix, fn);
      this.#asParent = (fn) => logContext.exit(fn);
    }
    const handlers = this.#handlers;
    const toChildPending = this.#toChildPending;
    const toParentPending = this.#toParentPending;
    const isZombie = () => this.#exit !== null;
    const toParent = (m: unknown) => this.#toParent(m);
    const childHandler = {
      get: () => this.#childOnMessage,
      set: (h: ((m: unknown) => void) | null) => (this.#childOnMessage = h),
    };
    const parentHandler = {
      get: () => this.#parentOnMessage,
      set: (h: ((m: unknown) => void) | null) => (this.#parentOnMessage = h),
    };
    this.env = {
      pid,
      kind: info.kind,
      name: info.name,
      params: info.params,
      client: info.client ?? null,
      abort: this.#abort.signal,
      onSignal(sig, handler) {
        // A later registration replaces the earlier one, as sigaction does.
        handlers.set(sig, handler);
      },
      post(message) {
        if (isZombie()) return; // a zombie's words are lost
        toParent(cloneMessage(message));
      },
      get onMessage() {
        return childHandler.get();
      },
      set onMessage(h) {
        childHandler.set(h);
        if (h !== null) { for (const m of toChildPending.splice(0)) h(m); }
      },
    };
    this.process = {
      pid,
      exited: this.exited,
      signal: (sig) => this.#signal(sig),
      post: (message) => {
        if (this.#exit !== null) return;
        this.#deliver({ kind: "message", message: cloneMessage(message) });
      },
      get onMessage() {
        return parentHandler.get();
      },
      set onMessage(h) {
        parentHandler.set(h);
        if (h !== null) { for (const m of toParentPending.splice(0)) h(m); }
      },
    };
  }

  #toParent(message: unknown): void {
    // Asynchronous, like a pipe: the postmaster hears it on a later turn.
    // The postmaster's handler runs as the postmaster, not as this child.
    queueMicrotask(() =>
      this.#asParent(() => {
        if (this.#parentOnMessage === null) this.#toParentPending.push(message);
        else this.#parentOnMessage(message);
      })
    );
  }

  #signal(sig: Signal): void {
    if (this.#exit !== null) return;
    if (sig === "SIGKILL") {
      this.#finish({ code: null, signal: "SIGKILL" }, { destroyClient: true });
      return;
    }
    this.#deliver({ kind: "signal", signal: sig });
  }

  /** Messages and signals reach the child in the order they were sent. */
  #deliver(item: InboxItem): void {
    this.#inbox.push(item);
    if (this.#draining) return;
    this.#draining = true;
    queueMicrotask(() => this.#asChild(() => this.#drain()));
  }

  #drain(): void {
    this.#draining = false;
    while (this.#exit === null) {
      const item = this.#inbox.shift();
      if (item === undefined) return;
      if (item.kind === "message") {
        if (this.#childOnMessage === null) this.#toChildPending.push(item.message);
        else this.#childOnMessage(item.message);
        continue;
      }
      const handler = this.#handlers.get(item.signal);
      if (handler === undefined) {
        // POSIX default action for every signal pgts sends: terminate.
        this.#finish({ code: null, signal: item.signal }, { destroyClient: true });
        return;
      }
      try {
        handler();
      } catch (e) {
        this.#crashed(e);
        return;
      }
    }
  }

  /** Runs the main; its outcome becomes the exit unless something ended the child first. */
  run(main: ChildMain): void {
    void this.#asChild(() => this.#main(main));
  }

  async #main(main: ChildMain): Promise<void> {
    try {
      const result = await main(this.env);
      this.#finish({ code: typeof result === "number" ? result : 0, signal: null }, {
        destroyClient: false,
      });
    } catch (e) {
      this.#crashed(e);
    }
  }

  #crashed(e: unknown): void {
    if (this.#exit !== null) return;
    if (isPgError(e) && e.severity === "FATAL") {
      ereport("FATAL", e.message, { code: e.code, category: "inproc" });
      this.#finish({ code: 1, signal: null }, { destroyClient: false });
      return;
    }
    const text = e instanceof Error ? (e.stack ?? e.message) : String(e);
    ereport("PANIC", `uncaught exception in ${this.info.name} (PID ${this.pid}): ${text}`, {
      category: "inproc",
    });
    this.#finish({ code: null, signal: "SIGABRT" }, { destroyClient: true });
  }

  #finish(exit: ChildExit, options: { destroyClient: boolean }): void {
    if (this.#exit !== null) return;
    this.#exit = exit;
    this.#inbox.length = 0;
    this.#abort.abort(CHILD_ENDED);
    // A process's sockets close when it ends: flushed on a normal exit,
    // dropped when it is killed.
    const client: Connection | null = this.env.client;
    if (client !== null) {
      if (options.destroyClient) client.destroy();
      else client.end();
    }
    this.#resolveExited(exit);
  }

  get alive(): boolean {
    return this.#exit === null;
  }

  kill(): void {
    this.#signal("SIGKILL");
  }
}

/** Runs children as tasks in this realm. */
export class InprocLauncher implements ChildLauncher {
  readonly name = "inproc";
  #resolve: (entry: ChildEntry) => ChildMain | Promise<ChildMain>;
  #logContext: ChildLogContext | undefined;
  #children = new Set<InprocChild>();
  #closed = false;

  constructor(options: InprocLauncherOptions = {}) {
    this.#resolve = options.resolve ?? importMain;
    this.#logContext = options.logContext;
  }

  async launch(info: ChildStartInfo): Promise<ChildProcess> {
    if (this.#closed) throw new TypeError("InprocLauncher is closed");
    // Resolving first means a missing module is a failed fork, not a crash.
    const main = await this.#resolve(info.entry);
    const child = new InprocChild(nextPid++, info, this.#logContext);
    this.#children.add(child);
    void child.exited.then(() => this.#children.delete(child));
    // Start on a later turn, after the postmaster has wired up the handle.
    queueMicrotask(() => child.run(main));
    return child.process;
  }

  /** Postmaster death: every child still running is killed. */
  close(): Promise<void> {
    this.#closed = true;
    for (const child of [...this.#children]) child.kill();
    return Promise.resolve();
  }
}
