/**
 * One HTTP request as a backend run: the HTTP adapter's PostgresMain.
 *
 * A run is admitted by the postmaster into a backend slot (so it counts
 * against max_connections and a shutdown waits for it or stops it), then
 * authenticated by the pg_hba.conf line that matches its address, user and
 * database and by the password from the connection string, then given an
 * engine session for its queries. It owns a memory context under the
 * adapter's TopMemoryContext, which holds the request's protocol bytes and
 * is deleted when the request ends, whatever the outcome. While it lasts,
 * the postmaster's children() show it with its state and current query.
 *
 * To the postmaster a run is a ChildProcess: SIGINT cancels the running
 * statement, SIGTERM/SIGQUIT/SIGKILL end the run with FATAL 57P01 (57P02
 * after a crash elsewhere). statement_timeout is applied here, because the
 * PGlite engine does not run Postgres's own timers. It must never answer a
 * request before its session is closed and its slot released.
 */

import {
  checkRoleLogin,
  ClientAuthentication,
  type HbaLine,
  hbaLineFor,
} from "../core/auth/mod.ts";
import { ERRCODE, PgError } from "../core/elog.ts";
import type { Engine, EngineSession } from "../core/engine/types.ts";
import {
  ALLOCSET_SMALL_SIZES,
  type AllocSetContext,
  allocSetContextCreate,
  type MemoryContext,
} from "../core/mcxt/mod.ts";
import type { BackendActivity, Postmaster } from "../core/postmaster/mod.ts";
import type { ChildExit, ChildProcess, Signal } from "../core/adapter.ts";
import { rollback, runQueries } from "./extended.ts";
import { engineError, resultJson, type SqlRequest, toHttpError } from "./neon.ts";

/** What a run needs of the server it belongs to. */
export interface RunHost {
  readonly postmaster: Postmaster;
  /** The engine, once the engine child serves; throws 57P03 before that. */
  engine(): Engine;
  hba(): readonly HbaLine[];
  /** statement_timeout in ms (0: none), the server's or the one in the connection's `options`. */
  statementTimeoutMs(options: string | undefined): number;
  /** The parent of every run's memory context (the adapter's TopMemoryContext). */
  readonly memoryParent: MemoryContext;
  /** Live runs by pid, for the admin API's memory view. */
  readonly runs: Map<number, BackendRun>;
  readonly passwords: PasswordCache;
}

/** A JSON answer: status, body, extra headers. */
export interface RunAnswer {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

/** Synthetic pids for runs, far from the in-process launcher's range. */
let nextRunPid = 2_000_000;

/**
 * Remembers passwords that were verified against a role's secret, keyed by
 * the secret, so that a SCRAM secret's 4096 PBKDF2 rounds are paid once
 * per password and not per request. Only a SHA-256 of the password is kept;
 * a changed secret is a new key.
 */
export class PasswordCache {
  #verified = new Map<string, string>();
  #max: number;

  constructor(max = 1024) {
    this.#max = max;
  }

  async #digest(password: string): Promise<string> {
    const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(password));
    return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async has(key: string, password: string): Promise<boolean> {
    const known = this.#verified.get(key);
    return known !== undefined && known === await this.#digest(password);
  }

  async add(key: string, password: string): Promise<void> {
    if (this.#verified.size >= this.#max) this.#verified.clear();
    this.#verified.set(key, await this.#digest(password));
  }
}

export class BackendRun implements ChildProcess {
  readonly pid = nextRunPid++;
  readonly context: AllocSetContext;
  readonly exited: Promise<ChildExit>;
  onMessage: ((message: unknown) => void) | null = null;
  #resolveExited: (exit: ChildExit) => void = () => {};
  #session: EngineSession | null = null;
  #state = "starting";
  #query: string | null = null;
  #fatal: PgError | null = null;
  #quitReason: string | null = null;
  #timedOut = false;

  constructor(parent: MemoryContext) {
    this.context = allocSetContextCreate(parent, "HttpRunContext", {
      sizes: ALLOCSET_SMALL_SIZES,
    });
    this.context.setIdentifier(`pid ${this.pid}`);
    this.exited = new Promise((resolve) => (this.#resolveExited = resolve));
  }

  /** pg_stat_activity's state and query, for the postmaster's children(). */
  activity(): BackendActivity {
    return { state: this.#state, query: this.#query };
  }

  /** signal_child's target. */
  signal(sig: Signal): void {
    switch (sig) {
      case "SIGINT":
        this.#session?.cancel();
        return;
      case "SIGTERM":
      case "SIGQUIT":
      case "SIGKILL":
      case "SIGABRT":
        this.#fatal ??= this.#quitReason === "crash"
          ? new PgError(
            ERRCODE.CRASH_SHUTDOWN,
            "terminating connection because of crash of another server process",
            { severity: "FATAL" },
          )
          : new PgError(
            ERRCODE.ADMIN_SHUTDOWN,
            "terminating connection due to administrator command",
            { severity: "FATAL" },
          );
        this.#session?.cancel();
        return;
      case "SIGHUP":
      case "SIGUSR1":
      case "SIGUSR2":
        return;
      default: {
        const never: never = sig;
        throw new TypeError(`Unknown signal ${String(never)}`);
      }
    }
  }

  post(message: unknown): void {
    const m = message as { pgts?: unknown; reason?: unknown } | null;
    if (m?.pgts === "pmquit" && typeof m.reason === "string") this.#quitReason = m.reason;
  }

  /** Serves the request to the end; never rejects. */
  async serve(host: RunHost, request: SqlRequest, address: string | null): Promise<RunAnswer> {
    try {
      await host.postmaster.admitBackendRun(this, { activity: () => this.activity() });
    } catch (e) {
      this.context.delete();
      return answerError(e);
    }
    host.runs.set(this.pid, this);
    let code = 0;
    try {
      return await this.#serve(host, request, address);
    } catch (e) {
      code = 1;
      return answerError(e);
    } finally {
      const session = this.#session;
      this.#session = null;
      await session?.close().catch(() => {});
      host.runs.delete(this.pid);
      this.context.delete();
      this.#resolveExited({ code, signal: null });
    }
  }

  async #serve(host: RunHost, request: SqlRequest, address: string | null): Promise<RunAnswer> {
    const { user, database } = request.target;
    this.#state = "authenticating";
    const engine = host.engine();
    await authenticate(host, request, address ?? "0.0.0.0", engine);
    this.#checkFatal();
    const params: Record<string, string> = { ...request.target.params };
    const { session } = await engine.startSession({ pid: this.pid, user, database, params });
    this.#session = session;
    this.#checkFatal();

    this.#state = "active";
    this.#query = request.queries.map((q) => q.query).join("; ");
    const timeoutMs = host.statementTimeoutMs(request.target.params["options"]);
    const timer = timeoutMs > 0
      ? setTimeout(() => {
        this.#timedOut = true;
        session.cancel();
      }, timeoutMs)
      : null;
    let outcome;
    try {
      outcome = await runQueries(session, request.queries, {
        ...(request.begin === null ? {} : { begin: request.begin }),
        allocate: (n) => this.context.alloc(n),
      });
    } finally {
      if (timer !== null) clearTimeout(timer);
    }
    this.#checkFatal();
    if (!outcome.ok) {
      await rollback(session).catch(() => {});
      const f = outcome.error;
      if (this.#timedOut && f.code === ERRCODE.QUERY_CANCELED) {
        f.message = "canceling statement due to statement timeout";
      }
      throw engineError(f);
    }
    this.#state = "idle";
    const results = outcome.results.map((r, i) =>
      resultJson(r, {
        arrayMode: request.queries[i]?.arrayMode ?? request.arrayMode,
        rawTextOutput: request.rawTextOutput,
      })
    );
    return request.begin === null
      ? { status: 200, body: results[0] }
      : { status: 200, body: { results }, headers: request.echo };
  }

  #checkFatal(): void {
    if (this.#fatal !== null) throw this.#fatal;
  }
}

/** The pg_hba.conf line, the role, and the password from the connection string. */
async function authenticate(
  host: RunHost,
  request: SqlRequest,
  address: string,
  engine: Engine,
): Promise<void> {
  const { user, database, password } = request.target;
  const line = await hbaLineFor(host.hba(), { type: "host", database, user, address }, {
    host: address,
    user,
    database,
  });
  const role = await engine.lookupRole(user);
  if (line.method !== "trust") {
    // The password arrives in clear text (over TLS at the edge), as with
    // the "password" method, whatever the line's method: the role's stored
    // secret, SCRAM or md5, is what it is checked against.
    const secret = role?.secret ?? null;
    const key = `${user}\u0000${secret}`;
    if (password === null || secret === null || !(await host.passwords.has(key, password))) {
      const auth = new ClientAuthentication({ method: "password", user, secret });
      await auth.start();
      await auth.receive(new TextEncoder().encode(`${password ?? ""}\u0000`));
      await host.passwords.add(key, password ?? "");
    }
  }
  checkRoleLogin(role, user);
}

function answerError(e: unknown): RunAnswer {
  const err = toHttpError(e);
  return { status: err.status, body: err.body };
}
