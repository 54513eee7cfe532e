/**
 * The transaction pool (`pool_mode = transaction`): pgts as pgbouncer, with
 * the engine child as the one owner of the upstream connections. Clients'
 * sessions (pooled-session.ts) borrow a connection for a transaction and
 * give it back at ReadyForQuery 'I'; this module owns who gets which.
 *
 * - One pool per (database, user): its connections log in with the URL's
 *   credentials and `role` set to the user, as session mode does.
 * - `default_pool_size` connections per pool, opened on demand; a client
 *   that finds none free waits in FIFO order. After `reserve_pool_timeout`
 *   of waiting, up to `reserve_pool_size` more may open. A wait longer than
 *   `query_wait_timeout` ends that statement with 57014.
 * - `min_pool_size` connections stay open; an idle connection beyond that is
 *   closed after `server_idle_timeout`, and any connection older than
 *   `server_lifetime` when it is released. Free connections are handed out
 *   last-in first-out, so a few stay warm. Opening and closing them is the
 *   janitor's (janitor.ts); handing them out is this module's.
 * - `max_client_conn` bounds the sessions (53300 beyond it).
 * - Each pool has its mode, pgbouncer's: `pool_mode_by_user` over
 *   `pool_mode_by_database` over `pool_mode`. A client of a session-mode
 *   pool keeps the first connection it gets until it leaves (a pin from
 *   the start, pooled-session.ts); `server_reset_query` then runs and the
 *   connection serves the pool's next client.
 * - `read_only_routing` (with several hosts in the URL): each pool has a
 *   companion for read-only transactions whose connections open with
 *   target_session_attrs=prefer-standby; pooled-session.ts sends a
 *   transaction there when its first statement says it is read-only.
 * - The console's PAUSE and KILL db hold connections back, SUSPEND holds
 *   clients' input (pooled-session.ts waits on `running`); RESUME ends them.
 * - Role lookups for authentication borrow a connection of the URL's own
 *   pool instead of opening one per login.
 *
 * The settings and modes are in pool-settings.ts, the pool objects and the
 * `Pooler` interface the sessions see this module through in
 * pool-objects.ts. Never writes to a client: sessions do.
 */

import { ERRCODE, isPgError, PgError } from "../../core/elog.ts";
import type { Engine, RoleInfo, ScramLogin, SessionStartup } from "../../core/engine/types.ts";
import type { UpstreamConnect, UpstreamStartTls } from "./connect.ts";
import { literal } from "./engine.ts";
import {
  type Acquire,
  Pool,
  type Pooler,
  type SharedStatement,
  type Waiter,
} from "./pool-objects.ts";
import {
  DEFAULT_POOL_SETTINGS,
  poolModeFor,
  type PoolModes,
  type PoolSettings,
  TRANSACTION_POOLING,
} from "./pool-settings.ts";
import { Janitor } from "./janitor.ts";
import { PooledSession } from "./pooled-session.ts";
import {
  type AuthFileEntry,
  type AuthFileLookup,
  AuthFileSecrets,
  roleFromRow,
  roleLookupSql,
  upstreamLoginFor,
} from "./auth-file.ts";
import type { PoolServer } from "./server.ts";
import { parseUpstreamUrl, type UpstreamTarget } from "./url.ts";

export interface UpstreamPoolOptions {
  readonly connect: UpstreamConnect;
  readonly settings?: Partial<PoolSettings>;
  /** Bounds connecting and the startup exchange; default 10 s. */
  readonly connectTimeoutMs?: number;
  /** The TLS handshake for sslmode (none: allow and prefer are plain, require fails). */
  readonly startTls?: UpstreamStartTls;
  /** As UpstreamEngineOptions.loginAs: a pool's connections log in as its role when keys are known. */
  readonly loginAs?: "client" | "url";
  /** Each pool's mode; default: transaction for all. Fixed for the pool's life. */
  readonly modes?: PoolModes;
  /** As UpstreamEngineOptions.authFile. */
  readonly authFile?: AuthFileLookup;
}

const AUTH_POOL_SIZE = 2;
/** Distinct statement texts the pool remembers (the oldest forgotten first). */
const MAX_SHARED_STATEMENTS = 10_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** The cancel of an acquire that did not wait. */
const NO_CANCEL = (): void => {};

export class UpstreamPool implements Engine, Pooler {
  readonly target: UpstreamTarget;
  settings: PoolSettings;
  #connect: UpstreamConnect;
  #loginAs: "client" | "url";
  #authFile: AuthFileLookup | undefined;
  #secrets = new AuthFileSecrets();
  #modes: PoolModes;
  #pools = new Map<string, Pool>();
  #sessions = new Set<PooledSession>();
  #statements = new Map<string, SharedStatement>();
  #statementCount = 0;
  /** PAUSE: no connection is handed out until RESUME; `#paused` resolves each waiting PAUSE. */
  #paused = false;
  /** SUSPEND: no client input goes upstream until RESUME; resolved by RESUME. */
  #suspension: { promise: Promise<void>; resolve: () => void } | null = null;
  /** PAUSE db and KILL db: the databases whose new transactions wait for RESUME db. */
  #pausedDatabases = new Set<string>();
  /** Each waiting PAUSE (of one database, or of all: null), resolved once its connections are back. */
  #pauseWaiters: Array<{ database: string | null; resolve: () => void }> = [];
  /**
   * Role lookups have connections of their own (pgbouncer's auth_user): a
   * login must not wait for a client's transaction, nor a client for logins.
   */
  #auth: Pool;
  #closed = false;
  /** Opens and closes the connections of every pool (janitor.ts). */
  #janitor: Janitor;

  constructor(url: string, options: UpstreamPoolOptions) {
    this.target = parseUpstreamUrl(url);
    this.#connect = options.connect;
    this.#loginAs = options.loginAs ?? "client";
    this.#authFile = options.authFile;
    this.#modes = options.modes ?? TRANSACTION_POOLING;
    this.settings = { ...DEFAULT_POOL_SETTINGS, ...options.settings };
    this.#auth = new Pool(this.target.database, this.target.user, "transaction");
    this.#auth.fixedSize = AUTH_POOL_SIZE;
    this.#auth.forLookups = true;
    this.#janitor = new Janitor(this.target, {
      settings: () => this.settings,
      pools: () => [...this.#pools.values(), this.#auth],
      holdsBack: (pool) => this.#closed || this.#held(pool),
      opened: (pool, server) => {
        if (this.#closed) server.close();
        else this.#handOut(pool, server);
      },
      forgotten: () => this.#checkPaused(),
    }, {
      connect: options.connect,
      startTls: options.startTls,
      timeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    });
  }

  get connect(): UpstreamConnect {
    return this.#connect;
  }

  /** New settings (a reload): they apply to the next wait, release and sweep. */
  configure(settings: Partial<PoolSettings>): void {
    this.settings = { ...this.settings, ...settings };
    for (const pool of this.#pools.values()) this.#janitor.grow(pool);
  }

  /** The pools, for reporting. */
  pools(): Pool[] {
    return [...this.#pools.values()];
  }

  /** The clients' sessions, for the console. */
  sessions(): PooledSession[] {
    return [...this.#sessions];
  }

  /**
   * The pool of (database, user); `scram`: the keys the client logged in
   * with, if it did; `entry`: the user's line of auth_file, if any.
   */
  poolFor(
    database: string,
    user: string,
    login: { scram?: ScramLogin | undefined; entry?: AuthFileEntry | null } = {},
  ): Pool {
    const key = `${database}\0${user}`;
    const upstream = this.#loginAs === "client"
      ? upstreamLoginFor(user, {
        entry: login.entry ?? null,
        scram: login.scram,
        urlUser: this.target.user,
      })
      : null;
    let pool = this.#pools.get(key);
    if (pool === undefined) {
      pool = new Pool(database, user, poolModeFor(this.#modes, database, user));
      pool.login = upstream;
      this.#pools.set(key, pool);
      this.#janitor.start();
    } else if (pool.login !== null && upstream !== null) {
      // A newer login's keys or auth_file's new password: right again
      // after a password change, for the read-only companion too.
      pool.login = upstream;
      const reads = this.#pools.get(`${key}\0r`);
      if (reads !== undefined) reads.login = upstream;
    }
    return pool;
  }

  /** Whether read-only transactions go to their pool's companion (read_only_routing, several hosts). */
  get routesReads(): boolean {
    return this.settings.readOnlyRouting && (this.target.hosts?.length ?? 1) > 1;
  }

  /** `pool`'s companion for read-only transactions; the same role logs in the same way. */
  readPoolFor(pool: Pool): Pool {
    const key = `${pool.database}\0${pool.user}\0r`;
    let reads = this.#pools.get(key);
    if (reads === undefined) {
      reads = new Pool(pool.database, pool.user, "transaction");
      reads.forReads = true;
      reads.login = pool.login;
      reads.baseline = pool.baseline;
      this.#pools.set(key, reads);
    }
    return reads;
  }

  /** The pool's statement for this Parse text and parameter types (one name on every connection). */
  statement(
    key: string,
    make: (name: string) => Omit<SharedStatement, "name">,
  ): SharedStatement {
    let s = this.#statements.get(key);
    if (s === undefined) {
      // A new name each time, never reused: a connection may still hold
      // the statement of a forgotten entry under its old name.
      const name = `pgts_${++this.#statementCount}`;
      s = { name, ...make(name) };
      this.#statements.set(key, s);
      // Texts seen once (dynamic SQL prepared by a driver) must not grow
      // the registry for ever; clients keep what they use.
      if (this.#statements.size > MAX_SHARED_STATEMENTS) {
        this.#statements.delete(this.#statements.keys().next().value!);
      }
    }
    return s;
  }

  /**
   * A free connection of `pool` now, or null: no promise, so that a
   * transaction that finds one (the common case) starts in the same turn.
   */
  acquireNow(pool: Pool): PoolServer | null {
    if (this.#closed || this.#held(pool)) return null;
    for (let s = pool.idle.pop(); s !== undefined; s = pool.idle.pop()) {
      if (s.closed) continue;
      pool.active.add(s);
      s.assignedAt = Date.now();
      return s;
    }
    return null;
  }

  /** A free connection of `pool`, now or when one is free. */
  acquire(pool: Pool): Acquire {
    if (this.#closed) {
      const e = shutdownError();
      return { promise: Promise.reject(e), cancel: () => {} };
    }
    const free = this.acquireNow(pool);
    if (free !== null) return { promise: Promise.resolve(free), cancel: NO_CANCEL };
    let waiter!: Waiter;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const promise = new Promise<PoolServer>((resolve, reject) => {
      waiter = {
        since: Date.now(),
        resolve: (s) => {
          clearTimeout(timer);
          resolve(s);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
    pool.waiters.push(waiter);
    const cancel = (reason: PgError) => {
      const i = pool.waiters.indexOf(waiter);
      if (i < 0) return;
      pool.waiters.splice(i, 1);
      waiter.reject(reason);
    };
    const limit = this.settings.queryWaitTimeoutMs;
    if (limit > 0) {
      timer = setTimeout(() => {
        cancel(
          new PgError(ERRCODE.QUERY_CANCELED, "canceling statement due to query wait timeout", {
            detail: `No upstream connection of pool "${pool.display}" became free within ` +
              `query_wait_timeout (${limit} ms); the pool has ${pool.size} connections, all busy.`,
            hint: "Raise default_pool_size or reserve_pool_size, or shorten the transactions " +
              "that hold the connections.",
          }),
        );
      }, limit);
    }
    this.#janitor.grow(pool);
    return { promise, cancel };
  }

  /** Gives a connection back: to the first waiter, else to the free list. */
  release(pool: Pool, server: PoolServer): void {
    pool.active.delete(server);
    server.handler = null;
    server.client = null;
    if (server.closed) {
      this.#janitor.grow(pool);
      this.#checkPaused();
      return;
    }
    pool.transactions++;
    pool.xactMs += Date.now() - server.assignedAt;
    const lifetime = this.settings.serverLifetimeMs;
    if (this.#closed || (lifetime > 0 && Date.now() - server.openedAt > lifetime)) {
      server.close();
      this.#janitor.grow(pool);
      this.#checkPaused();
      return;
    }
    this.#handOut(pool, server);
  }

  /** A connection that cannot go back (its state is unknown): closed, and replaced if needed. */
  discard(pool: Pool, server: PoolServer): void {
    pool.active.delete(server);
    server.handler = null;
    server.close();
    this.#janitor.grow(pool);
    this.#checkPaused();
  }

  #handOut(pool: Pool, server: PoolServer): void {
    const w = this.#held(pool) ? undefined : pool.waiters.shift();
    if (w !== undefined) {
      pool.active.add(server);
      server.assignedAt = Date.now();
      pool.waitedMs += Date.now() - w.since;
      w.resolve(server);
      return;
    }
    server.idleSince = Date.now();
    pool.idle.push(server);
    this.#checkPaused();
  }

  /**
   * PAUSE (pgbouncer's): clients' new transactions wait (query_wait_timeout
   * still applies) and the promise resolves once every connection a client
   * held is back; pinned clients hold theirs until they leave. Role
   * lookups go on, so that clients can still log in and queue.
   */
  pause(): Promise<void> {
    this.#paused = true;
    return new Promise<void>((resolve) => {
      this.#pauseWaiters.push({ database: null, resolve });
      this.#checkPaused();
    });
  }

  /**
   * PAUSE db: as PAUSE, for the clients of one database; null when it is
   * paused (or killed) already.
   */
  pauseDatabase(database: string): Promise<void> | null {
    if (this.#pausedDatabases.has(database)) return null;
    this.#pausedDatabases.add(database);
    return new Promise<void>((resolve) => {
      this.#pauseWaiters.push({ database, resolve });
      this.#checkPaused();
    });
  }

  /** RESUME: what waited is handed connections again, and suspended input goes on. */
  resume(): void {
    this.#paused = false;
    this.#endPauses((w) => w.database === null);
    const suspension = this.#suspension;
    this.#suspension = null;
    suspension?.resolve();
    this.#wake();
  }

  #wake(): void {
    for (const pool of this.#pools.values()) {
      while (pool.waiters.length > 0 && !this.#held(pool)) {
        const s = pool.idle.pop();
        if (s === undefined) break;
        if (!s.closed) this.#handOut(pool, s);
      }
      this.#janitor.grow(pool);
    }
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** Connections of `pool` are not handed out now (PAUSE, SUSPEND, KILL of its database). */
  #held(pool: Pool): boolean {
    if (pool === this.#auth) return false;
    return this.#paused || this.#suspension !== null || this.#pausedDatabases.has(pool.database);
  }

  /**
   * SUSPEND (pgbouncer's, for an online restart): every client's next input
   * waits before it goes upstream, mid-transaction too, until RESUME; the
   * promise resolves once no answer is in flight, so that nothing moves.
   */
  async suspend(): Promise<void> {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.#suspension = { promise, resolve };
    while (this.#suspension !== null && [...this.#sessions].some((s) => s.inFlight)) {
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  get suspended(): boolean {
    return this.#suspension !== null;
  }

  /** Resolves when input may go upstream (null: now). */
  get running(): Promise<void> | null {
    return this.#suspension?.promise ?? null;
  }

  /**
   * KILL db: every client of `database` is ended with `reason`, every
   * connection of its pools closed, and its new clients wait (their
   * transactions, not their logins) until `resumeDatabase`.
   */
  kill(database: string, reason: PgError): void {
    this.#pausedDatabases.add(database);
    for (const s of [...this.#sessions]) if (s.database === database) s.terminate(reason);
    for (const pool of this.#pools.values()) {
      if (pool.database !== database) continue;
      for (const s of pool.idle.splice(0)) s.close();
      for (const s of [...pool.active]) s.close();
    }
  }

  /** RESUME db after PAUSE db or KILL db; false when it was not paused. */
  resumeDatabase(database: string): boolean {
    if (!this.#pausedDatabases.delete(database)) return false;
    this.#endPauses((w) => w.database === database);
    this.#wake();
    return true;
  }

  /** The databases PAUSE db or KILL db paused. */
  get pausedDatabases(): ReadonlySet<string> {
    return this.#pausedDatabases;
  }

  /** Which pool mode each (database, user) gets. */
  get modes(): PoolModes {
    return this.#modes;
  }

  /** Resolves each waiting PAUSE whose connections are all back. */
  #checkPaused(): void {
    if (this.#pauseWaiters.length === 0) return;
    const busy = new Set<string>();
    for (const pool of this.#pools.values()) if (pool.active.size > 0) busy.add(pool.database);
    this.#endPauses((w) => w.database === null ? busy.size === 0 : !busy.has(w.database));
  }

  #endPauses(which: (w: { database: string | null }) => boolean): void {
    const done = this.#pauseWaiters.filter(which);
    if (done.length === 0) return;
    this.#pauseWaiters = this.#pauseWaiters.filter((w) => !which(w));
    for (const w of done) w.resolve();
  }

  async lookupRole(name: string): Promise<RoleInfo | null> {
    const pool = this.#auth;
    this.#janitor.start();
    let server: PoolServer;
    try {
      server = await this.acquire(pool).promise;
    } catch (e) {
      throw asFatal(e);
    }
    try {
      const where = `WHERE rolname = ${literal(name)}`;
      const entry = (await this.#authFile?.(name)) ?? null;
      if (entry !== null) {
        // auth_file has the secret: the upstream gives only the flags.
        const r = await server.query(
          `SELECT rolsuper, rolcanlogin FROM pg_catalog.pg_roles ${where}`,
        );
        if (r.error !== null) throw lookupFailed(name, r.error);
        const row = r.rows[0];
        if (row === undefined) return null;
        const secret = await this.#secrets.secretOf(name, entry);
        return { name, superuser: row[0] === "t", canLogin: row[1] === "t", secret };
      }
      const sql = roleLookupSql(where);
      let r = await server.query(sql.authid);
      if (r.error?.code === ERRCODE.INSUFFICIENT_PRIVILEGE) r = await server.query(sql.roles);
      if (r.error !== null) throw lookupFailed(name, r.error);
      const row = r.rows[0];
      return row === undefined ? null : roleFromRow(name, row);
    } finally {
      this.release(pool, server);
    }
  }

  async startSession(startup: SessionStartup) {
    if (this.#closed) throw shutdownError();
    if (this.#sessions.size >= this.settings.maxClientConn) {
      throw new PgError(ERRCODE.TOO_MANY_CONNECTIONS, "sorry, too many clients already", {
        severity: "FATAL",
        detail:
          `The upstream pool serves at most max_client_conn (${this.settings.maxClientConn}) clients.`,
      });
    }
    const session: PooledSession = new PooledSession(this, {
      pool: this.poolFor(startup.database, startup.user, {
        scram: startup.scram,
        entry: (await this.#authFile?.(startup.user)) ?? null,
      }),
      startup,
      onEnd: () => this.#sessions.delete(session),
    });
    this.#sessions.add(session);
    try {
      const parameterStatus = await session.start();
      return { session, parameterStatus };
    } catch (e) {
      this.#sessions.delete(session);
      throw asFatal(e);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#janitor.stop();
    await Promise.all([...this.#sessions].map((s) => s.close().catch(() => {})));
    for (const pool of [...this.#pools.values(), this.#auth]) {
      for (const w of pool.waiters.splice(0)) w.reject(shutdownError());
      for (const s of pool.idle.splice(0)) s.close();
      for (const s of pool.active) s.close();
    }
  }
}

function lookupFailed(name: string, e: PgError): PgError {
  return new PgError(
    ERRCODE.SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
    `could not look up role "${name}" on the upstream server: ${e.message}`,
    { severity: "FATAL" },
  );
}

function shutdownError(): PgError {
  return new PgError(ERRCODE.ADMIN_SHUTDOWN, "the upstream pool is closed", {
    severity: "FATAL",
  });
}

function asFatal(e: unknown): PgError {
  if (isPgError(e)) {
    return e.severity === "FATAL" ? e : new PgError(e.code, e.message, {
      ...e.fields,
      severity: "FATAL",
    });
  }
  return new PgError(ERRCODE.CONNECTION_FAILURE, String(e), { severity: "FATAL" });
}
