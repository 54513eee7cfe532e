/**
 * The child side of every out-of-realm adapter: builds the `ChildEnv` a child
 * main sees from the start payload, runs the main, and turns how it ended into
 * an exit code. Subprocess entries (src/adapters/bun/child.ts,
 * src/adapters/deno/child.ts) and the Web Worker entry wrap it with their own
 * transport; this module never exits the process itself, so that exactly one
 * file per entry decides how a child ends.
 *
 * Exit codes follow PostgreSQL: whatever the main returns (0 when it returns
 * nothing; 1 is a normal FATAL exit), and EXIT_CRASH (2, quickdie's code) for
 * an uncaught throw, a rejected main, or a signal handler that throws, so that
 * the postmaster runs its crash handling.
 */

import type {
  CatchableSignal,
  ChildEntry,
  ChildEnv,
  ChildMain,
  Connection,
  Signal,
} from "../../core/adapter.ts";
import { EXIT_CRASH, type StartPayload, type ToChild, type ToParent } from "./envelope.ts";

export interface ChildHooks {
  /** Sends an envelope to the launcher. */
  post(message: ToParent): void;
  /**
   * Installs an OS-level listener for a signal, for children that are
   * processes. Absent for Web Workers, where signals arrive as messages.
   */
  installSignal?: (sig: CatchableSignal, listener: () => void) => void;
  /** Finds the main for an entry; by default `import(entry.module)[entry.export]`. */
  resolveMain?: (entry: ChildEntry) => Promise<ChildMain>;
}

/**
 * Mains already resolved, by module and export: import() costs even for a
 * loaded module, and an in-process launcher resolves one per connection.
 */
const mains = new Map<string, ChildMain>();

/** Imports `entry.module` and returns its `entry.export`, which must be a function (remembered). */
export async function importMain(entry: ChildEntry): Promise<ChildMain> {
  const key = `${entry.module}#${entry.export}`;
  const known = mains.get(key);
  if (known !== undefined) return known;
  const mod = (await import(entry.module)) as Record<string, unknown>;
  const main = mod[entry.export];
  if (typeof main !== "function") {
    throw new TypeError(`Module "${entry.module}" has no exported function "${entry.export}"`);
  }
  mains.set(key, main as ChildMain);
  return main as ChildMain;
}

/** One running child: its ChildEnv, plus the hooks its entry feeds events into. */
export class ChildRuntime implements ChildEnv {
  readonly pid: number;
  readonly kind: string;
  readonly name: string;
  readonly params: unknown;
  readonly client: Connection | null;
  onMessage: ((message: unknown) => void) | null = null;

  #start: StartPayload;
  #hooks: ChildHooks;
  #handlers = new Map<CatchableSignal, Array<() => void>>();
  #abort = new AbortController();
  // Settles run() early: a crash outside the main, or postmaster death.
  #endEarly: (code: number) => void = () => {};
  #ended = new Promise<number>((resolve) => {
    this.#endEarly = resolve;
  });

  constructor(start: StartPayload, client: Connection | null, hooks: ChildHooks) {
    this.#start = start;
    this.#hooks = hooks;
    this.pid = start.pid;
    this.kind = start.kind;
    this.name = start.name;
    this.params = start.params;
    this.client = client;
  }

  get abort(): AbortSignal {
    return this.#abort.signal;
  }

  onSignal(sig: CatchableSignal, handler: () => void): void {
    if ((sig as Signal) === "SIGKILL") throw new TypeError("SIGKILL cannot be caught");
    let list = this.#handlers.get(sig);
    if (list === undefined) {
      list = [];
      this.#handlers.set(sig, list);
      // One OS listener per signal, installed lazily: a signal nobody asked
      // for keeps its default action (terminate), as in a C process.
      this.#hooks.installSignal?.(sig, () => this.#dispatchSignal(sig));
    }
    list.push(handler);
  }

  post(message: unknown): void {
    this.#hooks.post({ t: "msg", m: message });
  }

  /** Feeds an envelope from the launcher (user message or signal as message). */
  deliver(message: ToChild): void {
    switch (message.t) {
      case "msg":
        this.onMessage?.(message.m);
        return;
      case "sig":
        if (this.#handlers.has(message.sig)) this.#dispatchSignal(message.sig);
        else this.#hooks.post({ t: "sigdefault", sig: message.sig });
        return;
      case "start":
      case "preload":
      case "data":
      case "written":
      case "closed":
        // Belongs to the entry or the relayed connection, not to the env.
        return;
      default:
        message satisfies never;
    }
  }

  /** An error nobody caught: log it and end the child as crashed. */
  crash(error: unknown): void {
    reportCrash(this.#start, error);
    this.#abort.abort(error);
    this.#endEarly(EXIT_CRASH);
  }

  /** The postmaster is gone (IPC channel closed): stop at once, as FATAL. */
  postmasterDied(): void {
    this.#abort.abort(new Error("terminating connection due to unexpected postmaster exit"));
    this.#endEarly(1);
  }

  /** Runs the main; resolves with the exit code. Never rejects. */
  async run(): Promise<number> {
    const resolve = this.#hooks.resolveMain ?? importMain;
    const main = (async () => {
      const fn = await resolve(this.#start.entry);
      const pending = fn(this);
      this.#hooks.post({ t: "up" });
      const result = await pending;
      if (result === undefined) return 0;
      if (!Number.isInteger(result) || result < 0 || result > 255) {
        throw new RangeError(`Child main returned ${String(result)}, not an exit code 0..255`);
      }
      return result;
    })();
    return await Promise.race([
      main.catch((error: unknown) => {
        reportCrash(this.#start, error);
        return EXIT_CRASH;
      }),
      this.#ended,
    ]);
  }

  #dispatchSignal(sig: CatchableSignal): void {
    for (const handler of this.#handlers.get(sig) ?? []) {
      try {
        handler();
      } catch (error) {
        this.crash(error);
        return;
      }
    }
  }
}

// How long a finished child waits for its last client bytes to leave.
const FLUSH_TIMEOUT_MS = 1000;

/** Lets queued client bytes leave before the child ends and drops them, then closes. */
export async function flushAndClose(client: Connection): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    client.drained(),
    new Promise<void>((resolve) => timer = setTimeout(resolve, FLUSH_TIMEOUT_MS)),
  ]);
  clearTimeout(timer);
  client.end();
}

// Children have no log sinks of their own (the postmaster owns the log), so a
// crash goes to stderr, which every launcher shares with the postmaster.
function reportCrash(start: StartPayload, error: unknown): void {
  const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
  console.error(`${start.name} (PID ${start.pid}) crashed: uncaught exception: ${text}`);
}
