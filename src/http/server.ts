/**
 * `HttpServer`: a postmaster whose clients are HTTP requests. It owns the
 * Postmaster (children as in-process tasks: the engine child, and a backend
 * per psql client when a pg port is given), the hono app, the settings and
 * pg_hba.conf rules, the adapter's TopMemoryContext that every run's context
 * hangs under, and the registry of live runs.
 *
 * The children are `pgts start`'s own (src/server/children.ts, found
 * through the one table in src/server/mains.ts), run in this realm: the
 * engine child opens the engine (PGlite, or an upstream PostgreSQL where
 * the host has no file system) the way this server registers, so the
 * postmaster supervises it as it does under `pgts start`: PM_RUN only once
 * it serves, and a crash takes every run down and reopens it. A psql
 * client's backend is `backendMain`, with its authentication, cancel keys
 * and log_connections. Runs reach the engine through `engine()`, which
 * refuses (57P03) while there is none. A run never outlives its request;
 * `stop()` ends the postmaster in the mode asked.
 */

import type { Hono } from "hono";
import { type HbaLine, parseHba } from "../core/auth/mod.ts";
import type { Engine } from "../core/engine/types.ts";
import { Guc } from "../core/guc/guc.ts";
import { getBackendMemoryContexts, memoryContextInit } from "../core/mcxt/mod.ts";
import type { MemoryContextTree } from "../core/mcxt/mod.ts";
import {
  type ListenAddress,
  type NetAdapter,
  type PMStatus,
  Postmaster,
} from "../core/postmaster/mod.ts";
import { InprocLauncher } from "../adapters/inproc/launcher.ts";
import { inprocEngine, markPostmasterRealm, registerEngineOpener } from "../server/children.ts";
import { childEntry, resolveMain } from "../server/mains.ts";
import type { ServerParams } from "../server/params.ts";
import type { ArchiverStats } from "../engines/pglite/pgstat_archiver.ts";
import type { AdminSource, AdminStatus, StopMode } from "./admin.ts";
import { createApp, type HttpBindings } from "./app.ts";
import { runConsoleCommand, withAdminConsole } from "./console.ts";
import { poolConsole } from "../engines/upstream/console.ts";
import { UpstreamPool } from "../engines/upstream/pool.ts";
import type { SqlRequest } from "./neon.ts";
import { BackendRun, PasswordCache, type RunAnswer, type RunHost } from "./run.ts";
import { checkUpstreamConfig, type HttpUpstreamConfig, openUpstreamEngine } from "./upstream.ts";

/** Where the SQL runs. */
export type HttpEngineConfig =
  /** PGlite on a data directory (initialised with initCluster) or "memory://". */
  | { readonly dataDir: string; readonly placement?: "worker" | "inline" }
  /** Every database of a pgts data directory (`pgts init`), an engine each (dbengines.ts). */
  | { readonly cluster: string; readonly placement?: "worker" | "inline" }
  /** A real PostgreSQL, each request a session of its own; no file system needed. */
  | HttpUpstreamConfig
  /** Any other Engine. */
  | { readonly open: () => Promise<Engine> };

export interface HttpServerOptions {
  /**
   * Default: PGlite in memory. A string is an upstream URL
   * (`"postgres://user:password@host:port/db"`), short for `{ upstream }`.
   */
  readonly engine?: HttpEngineConfig | string;
  /** pg_hba.conf text. Default: trust for loopback clients only. */
  readonly hba?: string;
  /** Server settings (max_connections, statement_timeout, ...); or a loaded Guc. */
  readonly settings?: Readonly<Record<string, string | number | boolean>> | Guc;
  /** Turns the admin API on. */
  readonly adminToken?: string;
  /** Largest request body, in bytes; default 10 MiB (Neon's limit). */
  readonly maxBodyBytes?: number;
  /** Listen addresses for PostgreSQL-protocol clients (psql), with the NetAdapter to open them. */
  readonly listen?: readonly ListenAddress[];
  readonly net?: NetAdapter;
  /** Re-reads settings and pg_hba.conf on SIGHUP (the CLI passes one that reads the files). */
  readonly reload?: () => { hba?: string } | void;
  /** The status for postmaster.pid ("starting", "ready", "stopping"). */
  readonly setStatus?: (status: PMStatus) => void;
}

export const DEFAULT_HBA = "host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n";
export const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;

/**
 * The engine option in its object form; an upstream URL is checked here, so
 * that a wrong one is a RangeError from the caller's own call.
 */
export function engineConfig(engine: HttpEngineConfig | string | undefined): HttpEngineConfig {
  const config = typeof engine === "string" ? { upstream: engine } : engine;
  if (config === undefined) return { dataDir: "memory://" };
  if ("upstream" in config) checkUpstreamConfig(config);
  return config;
}

export class HttpServer implements AdminSource {
  readonly id = crypto.randomUUID();
  readonly guc: Guc;
  readonly postmaster: Postmaster;
  readonly app: Hono<{ Bindings: HttpBindings }>;
  readonly #engineConfig: HttpEngineConfig;
  readonly #reloadHook: HttpServerOptions["reload"];
  readonly #mcxt: MemoryContextTree;
  readonly #host: RunHost;
  readonly #params: ServerParams;
  #hba: HbaLine[];

  private constructor(options: HttpServerOptions) {
    this.#engineConfig = engineConfig(options.engine);
    this.#reloadHook = options.reload;
    if (options.settings instanceof Guc) this.guc = options.settings;
    else {
      this.guc = new Guc();
      for (const [name, value] of Object.entries(options.settings ?? {})) {
        this.guc.set(name, String(value), { source: "override" });
      }
    }
    const hba = options.hba ?? DEFAULT_HBA;
    this.#hba = parseHba(hba, { fileName: "pg_hba.conf" });
    this.#mcxt = memoryContextInit();
    this.#mcxt.deletePostmasterContext();
    const guc = this.guc;
    // What pgts start's children receive; the engine is in this realm, and
    // opens the way this server was configured (registered in start()).
    this.#params = {
      dataDir: "cluster" in this.#engineConfig ? this.#engineConfig.cluster : "",
      settings: guc.snapshot(),
      hba,
      hbaFile: "pg_hba.conf",
      engine: { kind: "inproc", id: this.id },
      ssl: null,
    };
    this.postmaster = new Postmaster({
      launcher: new InprocLauncher({ resolve: resolveMain }),
      settings: { get: (name) => guc.get(name) },
      entries: {
        backend: childEntry("backendMain"),
        engine: childEntry("engineMain"),
        // A data directory's WAL is archived as under pgts start (archive_mode).
        ...("cluster" in this.#engineConfig ? { archiver: childEntry("archiverMain") } : {}),
      },
      childParams: this.#params,
      ...(options.listen === undefined ? {} : { listen: options.listen }),
      ...(options.net === undefined ? {} : { net: options.net }),
      hooks: {
        reloadConfig: () => this.#reload(),
        ...(options.setStatus === undefined ? {} : { setStatus: options.setStatus }),
      },
    });
    this.#host = {
      postmaster: this.postmaster,
      engine: () => this.engine(),
      hba: () => this.#hba,
      statementTimeoutMs: (options) => this.#statementTimeoutMs(options),
      memoryParent: this.#mcxt.topMemoryContext,
      runs: new Map(),
      passwords: new PasswordCache(),
    };
    this.app = createApp({
      sql: (request, address) => this.runSql(request, address),
      admin: this,
      maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
      ...(options.adminToken === undefined ? {} : { adminToken: options.adminToken }),
    });
  }

  /** Starts the postmaster and resolves once it accepts requests (PM_RUN). */
  static async start(options: HttpServerOptions = {}): Promise<HttpServer> {
    const server = new HttpServer(options);
    // The children run in this realm and log through its logging.
    markPostmasterRealm();
    // Runs and psql backends see database "pgts" as the admin console.
    const forget = registerEngineOpener(server.id, async () => {
      const engine = await server.#openEngine();
      if (!(engine instanceof UpstreamPool)) return withAdminConsole(engine, server);
      // In front of a transaction pool the console has the pool's commands
      // (SHOW POOLS...) as under pgts start, and this server's own.
      return withAdminConsole(
        engine,
        poolConsole(engine, {
          config: () => server.guc,
          fallback: (sql) => runConsoleCommand(server, sql),
        }),
      );
    });
    void server.postmaster.exited.then(() => {
      forget();
      server.#mcxt[Symbol.dispose]();
    });
    const running = new Promise<void>((resolve, reject) => {
      server.postmaster.addEventListener("pmstate", (ev) => {
        if ((ev as CustomEvent<{ to: string }>).detail.to === "PM_RUN") resolve();
      });
      void server.postmaster.exited.then((code) =>
        reject(new Error(`the postmaster exited with code ${code} before it was ready`))
      );
    });
    await server.postmaster.start();
    await running;
    return server;
  }

  /** The app's fetch, for a runtime or host to call. */
  fetch = (request: Request, bindings: HttpBindings = {}): Promise<Response> =>
    Promise.resolve(this.app.fetch(request, bindings));

  /** Stops the postmaster (smart, fast or immediate) and resolves with its exit code. */
  async stop(mode: StopMode = "fast"): Promise<number> {
    this.requestStop(mode);
    return await this.postmaster.exited;
  }

  /** Resolves with the postmaster's exit code. */
  get exited(): Promise<number> {
    return this.postmaster.exited;
  }

  /** Runs one SQL request as a backend run. */
  runSql(request: SqlRequest, address: string | null): Promise<RunAnswer> {
    return new BackendRun(this.#host.memoryParent).serve(this.#host, request, address);
  }

  // ---- the engine ----------------------------------------------------------

  /** Opens the configured engine (the engine child calls it, through its opener). */
  async #openEngine(): Promise<Engine> {
    const config = this.#engineConfig;
    if ("open" in config) return await config.open();
    if ("upstream" in config) return openUpstreamEngine(config);
    const { ClusterEngine, openEngine } = await import("../engines/pglite/mod.ts");
    const options = {
      engineWaitTimeoutMs: this.guc.getMs("engine_wait_timeout"),
      engineHoldTimeoutMs: this.guc.getMs("engine_hold_timeout"),
      idleInTransactionSessionTimeoutMs: this.guc.getMs("idle_in_transaction_session_timeout"),
      idleSessionTimeoutMs: this.guc.getMs("idle_session_timeout"),
      transactionTimeoutMs: this.guc.getMs("transaction_timeout"),
      settings: {
        ...this.guc.engineSettings(),
        fsync: this.guc.getBool("fsync") ? "on" : "off",
        synchronous_commit: this.guc.getString("synchronous_commit"),
        wal_writer_delay: `${this.guc.getMs("wal_writer_delay")}ms`,
        // PGlite marks completed segments .ready for the archiver child.
        ...("cluster" in config && this.guc.getString("archive_mode") !== "off"
          ? {
            archive_mode: "on",
            wal_level: "replica", // minimal is refused with archiving, logical always
          }
          : {}),
      },
      ...(config.placement === undefined ? {} : { placement: config.placement }),
      spinUs: this.guc.getInt("engine_spin_time"),
    };
    if ("cluster" in config) {
      return await ClusterEngine.open(config.cluster, {
        ...options,
        idleTimeoutMs: this.guc.getMs("engine_idle_timeout"),
      });
    }
    return await openEngine(config.dataDir, options);
  }

  /** The engine the engine child serves; 57P03 while there is none. */
  engine(): Engine {
    return inprocEngine(this.id);
  }

  hba(): readonly HbaLine[] {
    return this.#hba;
  }

  /** `-c statement_timeout=...` in the connection's options wins over the server's setting. */
  #statementTimeoutMs(options: string | undefined): number {
    const m = options === undefined ? null : /(?:-c\s*|--)statement[_-]timeout=(\S+)/.exec(options);
    if (m === null) return this.guc.getMs("statement_timeout");
    const session = new Guc();
    session.set("statement_timeout", m[1]!, { source: "session" });
    return session.getMs("statement_timeout");
  }

  #reload(): void {
    const result = this.#reloadHook?.();
    // New backends read both from the children's params, as under pgts start.
    this.#params.settings = this.guc.snapshot();
    if (result?.hba !== undefined) {
      this.#hba = parseHba(result.hba, { fileName: "pg_hba.conf" });
      this.#params.hba = result.hba;
    }
  }

  // ---- AdminSource ----------------------------------------------------------

  status(): AdminStatus {
    return {
      pmState: this.postmaster.pmState,
      children: this.postmaster.children().map((c) => ({
        pid: c.pid,
        kind: c.kind,
        name: c.name,
        state: c.activity?.state ?? null,
        backend_start: new Date(c.startedAt).toISOString(),
        query: c.activity?.query ?? null,
      })),
    };
  }

  memory(pid: number) {
    const run = this.#host.runs.get(pid);
    return run === undefined ? null : getBackendMemoryContexts(run.context);
  }

  workers() {
    return this.postmaster.backgroundWorkers();
  }

  async archiver(): Promise<ArchiverStats> {
    const config = this.#engineConfig;
    // Only a data directory has an archiver; node:fs is loaded for it alone.
    const { readArchiverStats } = "cluster" in config
      ? await import("../engines/pglite/pgstat_archiver.ts")
      : { readArchiverStats: () => null };
    return ("cluster" in config ? readArchiverStats(config.cluster) : null) ?? {
      archived_count: 0,
      last_archived_wal: null,
      last_archived_time: null,
      failed_count: 0,
      last_failed_wal: null,
      last_failed_time: null,
      stats_reset: null,
    };
  }

  reload(): void {
    this.postmaster.signal("SIGHUP");
  }

  requestStop(mode: StopMode): void {
    this.postmaster.signal(mode === "smart" ? "SIGTERM" : mode === "fast" ? "SIGINT" : "SIGQUIT");
  }
}
