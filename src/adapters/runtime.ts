/**
 * Runtime detection, in one place: which runtime this is, and the default
 * launcher and NetAdapter for it.
 *
 * - Bun: subprocess children (`Bun.spawn`), clients accepted by node:net and
 *   handed over as fds.
 * - Deno: subprocess children (`node:child_process` fork) by default, since
 *   only they can take a client socket (a socket cannot be posted to a
 *   Worker); `adapter: "worker"` picks Web Workers, which start and idle
 *   cheaper but relay every client byte through the postmaster and die
 *   with it.
 *
 * - HTTP: `Bun.serve` under Bun, `Deno.serve` under Deno (`runtimeHttpServer`).
 *
 * Adapters are imported dynamically so that one runtime never loads the
 * other's code.
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

export function detectRuntime(): RuntimeName {
  const g = globalThis as { Bun?: unknown; Deno?: unknown };
  if (g.Bun !== undefined) return "bun";
  if (g.Deno !== undefined) return "deno";
  throw new TypeError("Unsupported runtime: pgts runs on Bun or Deno");
}

/**
 * The launcher and NetAdapter for this runtime; `kind` defaults to
 * "subprocess". `backendPool` is the number of backend processes the Bun
 * subprocess launcher starts ahead and reuses (0, the default: none), with
 * `backendModule` loaded in them from the start.
 */
export async function defaultAdapter(
  options: { kind?: AdapterKind; backendPool?: number; backendModule?: string } = {},
): Promise<RuntimeAdapter> {
  const runtime = detectRuntime();
  const kind = options.kind ?? "subprocess";
  // Under Bun, node:net rather than Bun.listen: after a hand-off the
  // postmaster must drop its copy of the client's fd with a plain close(2).
  // A Bun socket can only let go through terminate(), which sets SO_LINGER 0
  // on the socket it shares with the child, so every later close by the
  // child was a reset (the client saw ECONNRESET, not its FATAL or EOF).
  const net: NetAdapter = runtime === "bun"
    ? new (await import("./node/nodenet.ts")).NodeSocketNetAdapter()
    : new (await import("./deno/net.ts")).DenoNetAdapter();
  let launcher: ChildLauncher;
  switch (kind) {
    case "worker":
      launcher = new (await import("./worker/launcher.ts")).WorkerLauncher();
      break;
    case "subprocess":
      launcher = runtime === "bun"
        ? new (await import("./bun/launcher.ts")).BunSubprocessLauncher({
          pool: {
            size: options.backendPool ?? 0,
            ...(options.backendModule !== undefined ? { module: options.backendModule } : {}),
          },
        })
        : new (await import("./deno/launcher.ts")).DenoSubprocessLauncher();
      break;
    default:
      throw new RangeError(`Unknown adapter kind "${kind satisfies never}"`);
  }
  return { runtime, kind, launcher, net };
}

/** Outgoing connections, as the core's `Connection`. */
export interface Dialer {
  connectTcp(host: string, port: number): Promise<Connection>;
  connectUnix(path: string): Promise<Connection>;
}

/**
 * How this runtime dials out (backend → engine child, the upstream engine):
 * Bun's own sockets under Bun, since node:net's stream machinery costs on
 * every write of a link that carries every statement; node:net under Deno,
 * and in a Worker thread under Bun, where Bun 1.4's socket stopped
 * delivering the engine's answers mid-session.
 */
export async function runtimeDialer(): Promise<Dialer> {
  if (detectRuntime() === "bun" && (await import("node:worker_threads")).isMainThread) {
    return await import("./bun/connect.ts");
  }
  return await import("./node/connect.ts");
}

/**
 * A NetAdapter whose connections stay in this realm (no hand-off to a
 * child process): the in-process postmaster's listeners and the engine
 * child's socket. Bun's own listeners under Bun, for the same reason as
 * `runtimeDialer`; node:net under Deno.
 */
export async function inRealmNetAdapter(): Promise<NetAdapter> {
  return detectRuntime() === "bun"
    ? new (await import("./bun/net.ts")).BunNetAdapter({ handOff: false })
    : new (await import("./node/nodenet.ts")).NodeSocketNetAdapter();
}

/** The runtime's own HTTP server (bun/http.ts, deno/http.ts), for `pgts serve-http`. */
export async function runtimeHttpServer(): Promise<ServeHttp> {
  return detectRuntime() === "bun"
    ? (await import("./bun/http.ts")).serveHttp
    : (await import("./deno/http.ts")).serveHttp;
}

/**
 * For a CLI: if this process was started as a pgts child (CHILD_FLAG in
 * argv), runs it as one and returns true; the process exits by itself when
 * the child main is done. Call it first thing, before any server setup.
 */
export async function runChildFromArgv(argv?: readonly string[]): Promise<boolean> {
  const mod = detectRuntime() === "bun"
    ? await import("./bun/child.ts")
    : await import("./deno/child.ts");
  return argv === undefined ? mod.runChildFromArgv() : mod.runChildFromArgv(argv);
}
