/**
 * The runtime, chosen in one place: `currentRuntime()` detects Bun or Deno
 * once and returns the one object through which everything else reaches
 * what differs between them (Elysia's adapter objects are the model):
 *
 * - `adapter`: the launcher and NetAdapter of a non-inproc `pgts start`.
 *   Bun: subprocess children (`Bun.spawn`), clients accepted by node:net and
 *   handed over as fds. Deno: subprocess children (`node:child_process`
 *   fork) by default, since only they can take a client socket (a socket
 *   cannot be posted to a Worker); `kind: "worker"` picks Web Workers, which
 *   start and idle cheaper but relay every client byte through the
 *   postmaster and die with it.
 * - `dialer`: outgoing connections (backend → engine child, the upstream).
 * - `inRealmNet`: listeners whose clients stay in this realm.
 * - `serveHttp`: `Bun.serve` or `Deno.serve`.
 * - `runChildFromArgv`: a CLI started as a pgts child runs as one.
 *
 * Each runtime's code is imported dynamically, on first use, so one runtime
 * never loads the other's.
 */

import type { ChildLauncher, Connection, NetAdapter, ServeHttp } from "../core/adapter.ts";

export type RuntimeName = "bun" | "deno";
export type AdapterKind = "subprocess" | "worker";

export interface RuntimeAdapter {
  readonly runtime: RuntimeName;
  readonly kind: AdapterKind;
  readonly launcher: ChildLauncher;
  readonly net: NetAdapter;
}

/** Outgoing connections, as the core's `Connection`. */
export interface Dialer {
  connectTcp(host: string, port: number): Promise<Connection>;
  connectUnix(path: string): Promise<Connection>;
}

/** What differs between Bun and Deno; one implementation per runtime. */
export interface Runtime {
  readonly name: RuntimeName;
  /**
   * Whether `pgts start` compiles pglite.wasm in the postmaster's realm as
   * soon as its server starts (runServer), while the listeners open and the
   * engine's Worker boots, rather than when that Worker is created. Bun:
   * yes, its compile takes ~0.25 s and mostly runs off the calling thread.
   * Deno: no; V8's is ~0.08 s but holds the calling thread for most of it,
   * which there delayed the TCP listen by 0.25–0.3 s and the first answer
   * by 0.1–0.2 s (`scripts/bench/startup.ts --rounds 5`, three runs: 1.20,
   * 1.29 and 1.36 s against 1.29, 1.44 and 1.54 s).
   */
  readonly compileEngineEarly: boolean;
  /**
   * The launcher and NetAdapter; `kind` defaults to "subprocess".
   * `backendPool` is the number of backend processes (or Workers) the
   * launcher starts ahead and reuses (0, the default: none), with
   * `backendModule` loaded in them from the start (adapters/child/pool.ts).
   */
  adapter(
    options?: { kind?: AdapterKind; backendPool?: number; backendModule?: string },
  ): Promise<RuntimeAdapter>;
  /** How this process dials out. */
  dialer(): Promise<Dialer>;
  /** A NetAdapter whose connections stay in this realm (no hand-off to a child process). */
  inRealmNet(): Promise<NetAdapter>;
  /** The runtime's own HTTP server, for `pgts serve-http`. */
  serveHttp(): Promise<ServeHttp>;
  /**
   * If this process was started as a pgts child (CHILD_FLAG in argv), runs
   * it as one and returns true; the process exits by itself when the child
   * main is done. A CLI calls it first thing, before any server setup.
   */
  runChildFromArgv(argv?: readonly string[]): Promise<boolean>;
}

/** Web Workers, under either runtime, `backendPool` of them started ahead for backends. */
async function workerLauncher(
  options: { backendPool?: number; backendModule?: string },
): Promise<ChildLauncher> {
  return new (await import("./worker/launcher.ts")).WorkerLauncher({
    pool: {
      size: options.backendPool ?? 0,
      ...(options.backendModule !== undefined ? { module: options.backendModule } : {}),
    },
  });
}

const BUN: Runtime = {
  name: "bun",
  compileEngineEarly: true,
  async adapter(options = {}) {
    const kind = options.kind ?? "subprocess";
    // node:net rather than Bun.listen: after a hand-off the postmaster must
    // drop its copy of the client's fd with a plain close(2). A Bun socket
    // can only let go through terminate(), which sets SO_LINGER 0 on the
    // socket it shares with the child, so every later close by the child was
    // a reset (the client saw ECONNRESET, not its FATAL or EOF).
    const net = new (await import("./node/nodenet.ts")).NodeSocketNetAdapter();
    const launcher = kind === "worker"
      ? await workerLauncher(options)
      : new (await import("./bun/launcher.ts")).BunSubprocessLauncher({
        pool: {
          size: options.backendPool ?? 0,
          ...(options.backendModule !== undefined ? { module: options.backendModule } : {}),
        },
      });
    return { runtime: "bun", kind, launcher, net };
  },
  // Bun's own sockets, since node:net's stream machinery costs on every
  // write of a link that carries every statement; node:net in a Worker
  // thread, where Bun 1.4's socket stopped delivering the engine's answers
  // mid-session.
  async dialer() {
    return (await import("node:worker_threads")).isMainThread
      ? await import("./bun/connect.ts")
      : await import("./node/connect.ts");
  },
  async inRealmNet() {
    return new (await import("./bun/net.ts")).BunNetAdapter({ handOff: false });
  },
  async serveHttp() {
    return (await import("./bun/http.ts")).serveHttp;
  },
  async runChildFromArgv(argv) {
    const mod = await import("./bun/child.ts");
    return argv === undefined ? mod.runChildFromArgv() : mod.runChildFromArgv(argv);
  },
};

const DENO: Runtime = {
  name: "deno",
  compileEngineEarly: false,
  async adapter(options = {}) {
    const kind = options.kind ?? "subprocess";
    if (kind === "worker") {
      // The postmaster relays a Worker's client (worker/relayconn.ts), so
      // it may read the first packet itself (silent sockets end in the
      // postmaster, as under Bun): Deno's own sockets, not node:net's.
      const net = new (await import("./deno/conn.ts")).DenoConnNetAdapter();
      return { runtime: "deno", kind, launcher: await workerLauncher(options), net };
    }
    const net = new (await import("./deno/net.ts")).DenoNetAdapter();
    const launcher = new (await import("./deno/launcher.ts")).DenoSubprocessLauncher({
      pool: {
        size: options.backendPool ?? 0,
        ...(options.backendModule !== undefined ? { module: options.backendModule } : {}),
      },
    });
    return { runtime: "deno", kind, launcher, net };
  },
  async dialer() {
    return await import("./node/connect.ts");
  },
  // Deno's own sockets: node:net's streams cost 3-5 µs of CPU per
  // statement on top of the same Deno.Conn operations (deno/conn.ts).
  async inRealmNet() {
    return new (await import("./deno/conn.ts")).DenoConnNetAdapter();
  },
  async serveHttp() {
    return (await import("./deno/http.ts")).serveHttp;
  },
  async runChildFromArgv(argv) {
    const mod = await import("./deno/child.ts");
    return argv === undefined ? mod.runChildFromArgv() : mod.runChildFromArgv(argv);
  },
};

let current: Runtime | null = null;

/** This process's runtime, detected once. Throws a TypeError outside Bun and Deno. */
export function currentRuntime(): Runtime {
  if (current !== null) return current;
  const g = globalThis as { Bun?: unknown; Deno?: unknown };
  if (g.Bun !== undefined) current = BUN;
  else if (g.Deno !== undefined) current = DENO;
  else throw new TypeError("Unsupported runtime: pgts runs on Bun or Deno");
  return current;
}
