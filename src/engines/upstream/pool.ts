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
 *   last-in first-out, so a few stay warm.
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
 * Never writes to a client: sessions do.
 */

import { ereport, ERRCODE, isPgError, PgError } from "../../core/elog.ts";
import { parsePoolModeList } from "../../core/guc/tables_pool.ts";
import type { Engine, RoleInfo, ScramLogin, SessionStartup } from "../../core/engine/types.ts";
import { parseSnapshot, snapshotSql } from "../pglite/settings.ts";
import { NOT_SESSION_STATE } from "./client-settings.ts";
import {
  openUpstream,
  type UpstreamConnect,
  type UpstreamLogin,
  type UpstreamStartTls,
} from "./connect.ts";
import { literal } from "./engine.ts";
import { PooledSession } from "./pooled-session.ts";
import {
  type AuthFileEntry,
  type AuthFileLookup,
  AuthFileSecrets,
  upstreamLoginFor,
} from "./auth-file.ts";
import { PoolServer } from "./server.ts";
import { parseUpstreamUrl, type UpstreamTarget } from "./url.ts";

/** pgbouncer's settings, as pgts names them (src/core/guc/tables.ts). */
export interface PoolSettings {
  readonly defaultPoolSize: number;
  readonly minPoolSize: number;
  readonly reservePoolSize: number;
  readonly reservePoolTimeoutMs: number;
  readonly maxClientConn: number;
  /** 0: never. */
  readonly serverIdleTimeoutMs: number;
  /** 0: never. */
  readonly serverLifetimeMs: number;
  readonly serverResetQuery: string;
  /** 0: wait forever. */
  readonly queryWaitTimeoutMs: number;
  readonly maxPreparedStatements: number;
  /** Read-only transactions to a standby (with several hosts). */
  readonly readOnlyRouting: boolean;
}

export const DEFAULT_POOL_SETTINGS: PoolSettings = {
  defaultPoolSize: 20,
  minPoolSize: 0,
  reservePoolSize: 0,
  reservePoolTimeoutMs: 5000,
  maxClientConn: 1000,
  serverIdleTimeoutMs: 600_000,
  serverLifetimeMs: 3_600_000,
  serverResetQuery: "DISCARD ALL",
  queryWaitTimeoutMs: 120_000,
  maxPreparedStatements: 200,
  readOnlyRouting: false,
};

/** The pool's settings from pgts's parameters (src/core/guc/tables.ts). */
export function poolSettingsOf(guc: {
  getBool(name: string): boolean;
  getInt(name: string): number;
  getMs(name: string): number;
  getString(name: string): string;
}): PoolSettings {
  return {
    defaultPoolSize: guc.getInt("default_pool_size"),
    minPoolSize: guc.getInt("min_pool_size"),
    reservePoolSize: guc.getInt("reserve_pool_size"),
    reservePoolTimeoutMs: guc.getMs("reserve_pool_timeout"),
    maxClientConn: guc.getInt("max_client_conn"),
    serverIdleTimeoutMs: guc.getMs("server_idle_timeout"),
    serverLifetimeMs: guc.getMs("server_lifetime"),
    serverResetQuery: guc.getString("server_reset_query"),
    queryWaitTimeoutMs: guc.getMs("query_wait_timeout"),
    maxPreparedStatements: guc.getInt("max_prepared_statements"),
    readOnlyRouting: guc.getBool("read_only_routing"),
  };
}

export type PoolMode = "session" | "transaction";

/** Which pool mode a (database, user) gets: pgbouncer's [users] over [databases] over the default. */
export interface PoolModes {
  readonly default: PoolMode;
  readonly byDatabase: ReadonlyMap<string, PoolMode>;
  readonly byUser: ReadonlyMap<string, PoolMode>;
}

export const TRANSACTION_POOLING: PoolModes = {
  default: "transaction",
  byDatabase: new Map(),
  byUser: new Map(),
};

/** The modes from pgts's parameters (checked when they were set). */
export function poolModesOf(guc: { getString(name: string): string }): PoolModes {
  const list = (name: string) => {
    const r = parsePoolModeList(guc.getString(name));
    return r instanceof Map ? r : new Map<string, PoolMode>();
  };
  return {
    default: guc.getString("pool_mode") === "transaction" ? "transaction" : "session",
    byDatabase: list("pool_mode_by_database"),
    byUser: list("pool_mode_by_user"),
  };
}

export function poolModeFor(modes: PoolModes, database: string, user: string): PoolMode {
  return modes.byUser.get(user) ?? modes.byDatabase.get(database) ?? modes.default;
}

/**
 * Whether any client may be pooled per transaction: then the pool (in the
 * engine child) serves every client, those of session-mode pools too;
 * otherwise each backend relays its own upstream connection.
 */
export function poolsTransactions(modes: PoolModes): boolean {
  return modes.default === "transaction" ||
    [...modes.byDatabase.values(), ...modes.byUser.values()].includes("transaction");
}

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

/** A client waiting for a connection. */
interface Waiter {
  readonly since: number;
  resolve(server: PoolServer): void;
  reject(e: PgError): void;
}

/** A wait for a connection that its client may give up. */
export interface Acquire {
  readonly promise: Promise<PoolServer>;
  /** Ends the wait with `reason`; no-op once a connection was handed out. */
  cancel(reason: PgError): void;
}

/** The connections of one (database, user). */
export class Pool {
  readonly database: string;
  readonly user: string;
  /** Session: a client keeps the connection it gets until it leaves. */
  readonly mode: PoolMode;
  readonly idle: PoolServer[] = [];
  readonly active = new Set<PoolServer>();
  opening = 0;
  readonly waiters: Waiter[] = [];
  /** What a fresh connection carries (settings.ts map): where every client's map starts. */
  baseline: ReadonlyMap<string, string> | null = null;
  /**
   * Its connections log in as `user` with auth_file's password or md5 hash,
   * or with the SCRAM keys the latest client of it proved; null: as the
   * URL's user with role set. Decided when the pool is made, so that its
   * connections all carry one identity.
   */
  login: UpstreamLogin | null = null;
  /** Its size when not default_pool_size (the role-lookup pool). */
  fixedSize: number | null = null;
  /** It serves the read-only transactions of its (database, user): its connections prefer a standby. */
  forReads = false;
  /** Startup parameters already checked → the map and ParameterStatus list they give. */
  readonly logins = new Map<
    string,
    { map: ReadonlyMap<string, string>; reported: Array<[string, string]> }
  >();
  readonly createdAt = Date.now();
  /** SHOW STATS: transactions (connections given back), queries (ReadyForQuery), bytes, times. */
  transactions = 0;
  queries = 0;
  received = 0;
  sent = 0;
  xactMs = 0;
  waitedMs = 0;

  constructor(database: string, user: string, mode: PoolMode) {
    this.database = database;
    this.user = user;
    this.mode = mode;
  }

  get size(): number {
    return this.idle.length + this.active.size;
  }

  /** A connection is free now (no one waits ahead). */
  get hasFree(): boolean {
    return this.waiters.length === 0 && this.idle.some((s) => !s.closed);
  }

  get display(): string {
    return `${this.database}/${this.user}${this.forReads ? " (read-only)" : ""}`;
  }
}

const SWEEP_MS = 1000;
const AUTH_POOL_SIZE = 2;
/** Distinct statement texts the pool remembers (the oldest forgotten first). */
const MAX_SHARED_STATEMENTS = 10_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** A protocol statement as the pool prepares it on any connection. */
export interface SharedStatement {
  /** Its name on every upstream connection. */
  readonly name: string;
  /** The whole Parse message under that name. */
  readonly parse: Uint8Array;
  /** What executing it does (effects.ts), from its text. */
  readonly effects: import("./effects.ts").SqlEffects;
}

export class UpstreamPool implements Engine {
  readonly target: UpstreamTarget;
  settings: PoolSettings;
  #connect: UpstreamConnect;
  #startTls: UpstreamStartTls | undefined;
  #loginAs: "client" | "url";
  #authFile: AuthFileLookup | undefined;
  #secrets = new AuthFileSecrets();
  #modes: PoolModes;
  #timeoutMs: number;
  #pools = new Map<string, Pool>();
  #sessions = new Set<PooledSession>();
  #statements = new Map<string, SharedStatement>();
  #statementCount = 0;
  #sweep: ReturnType<typeof setInterval> | null = null;
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

  constructor(url: string, options: UpstreamPoolOptions) {
    this.target = parseUpstreamUrl(url);
    this.#connect = options.connect;
    this.#startTls = options.startTls;
    this.#loginAs = options.loginAs ?? "client";
    this.#authFile = options.authFile;
    this.#modes = options.modes ?? TRANSACTION_POOLING;
    this.#timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.settings = { ...DEFAULT_POOL_SETTINGS, ...options.settings };
    this.#auth = new Pool(this.target.database, this.target.user, "transaction");
    this.#auth.fixedSize = AUTH_POOL_SIZE;
  }

  get connect(): UpstreamConnect {
    return this.#connect;
  }

  /** New settings (a reload): they apply to the next wait, release and sweep. */
  configure(settings: Partial<PoolSettings>): void {
    this.settings = { ...this.settings, ...settings };
    for (const pool of this.#pools.values()) this.#grow(pool);
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
      this.#startSweep();
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

  /** A free connection of `pool`, now or when one is free. */
  acquire(pool: Pool): Acquire {
    if (this.#closed) {
      const e = shutdownError();
      return { promise: Promise.reject(e), cancel: () => {} };
    }
    const held = this.#held(pool);
    for (let s = held ? undefined : pool.idle.pop(); s !== undefined; s = pool.idle.pop()) {
      if (s.closed) continue;
      pool.active.add(s);
      s.assignedAt = Date.now();
      return { promise: Promise.resolve(s), cancel: () => {} };
    }
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
    this.#grow(pool);
    return { promise, cancel };
  }

  /** Gives a connection back: to the first waiter, else to the free list. */
  release(pool: Pool, server: PoolServer): void {
    pool.active.delete(server);
    server.handler = null;
    server.client = null;
    if (server.closed) {
      this.#grow(pool);
      this.#checkPaused();
      return;
    }
    pool.transactions++;
    pool.xactMs += Date.now() - server.assignedAt;
    const lifetime = this.settings.serverLifetimeMs;
    if (this.#closed || (lifetime > 0 && Date.now() - server.openedAt > lifetime)) {
      server.close();
      this.#grow(pool);
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
    this.#grow(pool);
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
      this.#grow(pool);
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

  /** Opens connections for the waiters the pool's size allows (and the reserve, for long waits). */
  #grow(pool: Pool): void {
    if (this.#closed || this.#held(pool)) return;
    const s = this.settings;
    const now = Date.now();
    let limit = pool.fixedSize ?? s.defaultPoolSize;
    if (
      s.reservePoolSize > 0 && pool.waiters[0] !== undefined &&
      now - pool.waiters[0].since >= s.reservePoolTimeoutMs
    ) limit += s.reservePoolSize;
    const wanted = Math.max(pool.waiters.length, s.minPoolSize - pool.size - pool.opening);
    while (pool.size + pool.opening < limit && pool.opening < wanted) this.#open(pool);
  }

  #open(pool: Pool): void {
    pool.opening++;
    const params: Record<string, string> = {};
    if (pool.user !== this.target.user && pool.login === null) params["role"] = pool.user;
    if (pool === this.#auth) params["application_name"] = "pgts role lookup";
    const target: UpstreamTarget = pool.forReads
      ? { ...this.target, targetSessionAttrs: "prefer-standby" }
      : this.target;
    const opened = (async () => {
      const upstream = await openUpstream(target, {
        connect: this.#connect,
        startTls: this.#startTls,
        database: pool.database,
        params,
        timeoutMs: this.#timeoutMs,
        login: pool.login === null ? undefined : { ...pool.login },
      });
      const server = new PoolServer(upstream, {
        target,
        connect: this.#connect,
        onClosed: (s) => this.#forget(pool, s),
      });
      // What a fresh connection carries: the base every client's map starts from.
      const r = await server.query(snapshotSql([], NOT_SESSION_STATE));
      if (r.error !== null) {
        server.close();
        throw r.error;
      }
      server.carried = parseSnapshot(r.rows);
      pool.baseline ??= server.carried;
      return server;
    })();
    opened.then((server) => {
      pool.opening--;
      if (this.#closed) server.close();
      else this.#handOut(pool, server);
    }, (e: unknown) => {
      pool.opening--;
      const err = isPgError(e) ? e : new PgError(ERRCODE.CONNECTION_FAILURE, String(e));
      ereport("LOG", `could not open an upstream connection for pool "${pool.display}"`, {
        category: "pool",
        detail: err.message,
      });
      // With nothing open and nothing opening, nobody would wake the waiters.
      if (pool.size === 0 && pool.opening === 0) {
        for (const w of pool.waiters.splice(0)) w.reject(err);
      }
    });
  }

  #forget(pool: Pool, server: PoolServer): void {
    pool.active.delete(server);
    const i = pool.idle.indexOf(server);
    if (i >= 0) pool.idle.splice(i, 1);
    this.#checkPaused();
  }

  #startSweep(): void {
    if (this.#sweep !== null) return;
    this.#sweep = setInterval(() => this.#sweepPools(), SWEEP_MS);
    (this.#sweep as { unref?: () => void }).unref?.();
  }

  /** server_idle_timeout, server_lifetime of free connections, min_pool_size, the reserve. */
  #sweepPools(): void {
    const s = this.settings;
    const now = Date.now();
    for (const pool of [...this.#pools.values(), this.#auth]) {
      // Oldest first: the free list is used from its end.
      for (const server of [...pool.idle]) {
        const idleTooLong = s.serverIdleTimeoutMs > 0 &&
          now - server.idleSince > s.serverIdleTimeoutMs && pool.size > s.minPoolSize;
        const tooOld = s.serverLifetimeMs > 0 && now - server.openedAt > s.serverLifetimeMs;
        if (idleTooLong || tooOld) {
          pool.idle.splice(pool.idle.indexOf(server), 1);
          server.close();
        }
      }
      this.#grow(pool);
    }
  }

  async lookupRole(name: string): Promise<RoleInfo | null> {
    const pool = this.#auth;
    this.#startSweep();
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
      let r = await server.query(
        `SELECT rolsuper, rolcanlogin, rolpassword FROM pg_catalog.pg_authid ${where}`,
      );
      if (r.error?.code === ERRCODE.INSUFFICIENT_PRIVILEGE) {
        r = await server.query(
          `SELECT rolsuper, rolcanlogin, NULL FROM pg_catalog.pg_roles ${where}`,
        );
      }
      if (r.error !== null) throw lookupFailed(name, r.error);
      const row = r.rows[0];
      if (row === undefined) return null;
      return { name, superuser: row[0] === "t", canLogin: row[1] === "t", secret: row[2] ?? null };
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
    if (this.#sweep !== null) clearInterval(this.#sweep);
    this.#sweep = null;
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
