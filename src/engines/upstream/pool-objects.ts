/**
 * The objects of the transaction pool, pgbouncer's objects.c in name: a
 * `Pool` of connections per (database, user) with its waiters and its
 * statistics, the wait for a connection (`Acquire`), a statement as every
 * connection knows it (`SharedStatement`), and `Pooler`, what a client's
 * session (pooled-session.ts, requests.ts) asks of the pool that owns them
 * (pool.ts). The sessions see the pool only through that interface, so
 * neither module imports the other's.
 *
 * Data and their small derived values; who gets which connection is
 * decided in pool.ts, when connections open and close in janitor.ts.
 */

import type { PgError } from "../../core/elog.ts";
import type { UpstreamLogin } from "./connect.ts";
import type { SqlEffects } from "./effects.ts";
import type { PoolMode, PoolSettings } from "./pool-settings.ts";
import type { PoolServer } from "./server.ts";
import type { UpstreamTarget } from "./url.ts";

/** A client waiting for a connection. */
export interface Waiter {
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
  /** It serves role lookups (pgbouncer's auth_user): its connections say so in application_name. */
  forLookups = false;
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

/** A protocol statement as the pool prepares it on any connection. */
export interface SharedStatement {
  /** Its name on every upstream connection. */
  readonly name: string;
  /** The whole Parse message under that name. */
  readonly parse: Uint8Array;
  /** What executing it does (effects.ts), from its text. */
  readonly effects: SqlEffects;
}

/**
 * The pool as a client's session sees it: the connections it may acquire,
 * give back or discard, the companion pool for read-only transactions, the
 * pool-wide statement names, the settings in force and SUSPEND's wait.
 * `UpstreamPool` implements it.
 */
export interface Pooler {
  readonly target: UpstreamTarget;
  /** The settings in force (a reload replaces the object). */
  readonly settings: PoolSettings;
  /** Resolves when input may go upstream (null: now); SUSPEND holds it. */
  readonly running: Promise<void> | null;
  /** Whether read-only transactions go to their pool's companion. */
  readonly routesReads: boolean;
  /** A free connection of `pool` now (no one waits for it), or null. */
  acquireNow(pool: Pool): PoolServer | null;
  /** A free connection of `pool`, now or when one is free. */
  acquire(pool: Pool): Acquire;
  /** Gives a connection back: to the first waiter, else to the free list. */
  release(pool: Pool, server: PoolServer): void;
  /** A connection that cannot go back (its state is unknown): closed, and replaced if needed. */
  discard(pool: Pool, server: PoolServer): void;
  /** `pool`'s companion for read-only transactions. */
  readPoolFor(pool: Pool): Pool;
  /** The pool's statement for this Parse text and parameter types (one name on every connection). */
  statement(key: string, make: (name: string) => Omit<SharedStatement, "name">): SharedStatement;
}
