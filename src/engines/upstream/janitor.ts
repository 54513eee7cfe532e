/**
 * The transaction pool's janitor, pgbouncer's janitor.c: the life of the
 * upstream connections. It opens a pool's connections when clients wait
 * and its size allows (launch_new_connection), more after a wait of
 * `reserve_pool_timeout` (the reserve), and enough to keep `min_pool_size`;
 * once a second it closes free connections idle beyond
 * `server_idle_timeout` (above `min_pool_size`) or older than
 * `server_lifetime`; and it takes a connection that closed out of its pool.
 *
 * A connection it opened goes to its owner (pool.ts), which hands it to the
 * first waiter or to the free list: the janitor never gives a connection to
 * a client and never decides who waits. Never writes to a client.
 */

import { ereport, ERRCODE, isPgError, PgError } from "../../core/elog.ts";
import { parseSnapshot, snapshotSql } from "../pglite/settings.ts";
import { NOT_SESSION_STATE } from "./client-settings.ts";
import { openUpstream, type UpstreamConnect, type UpstreamStartTls } from "./connect.ts";
import type { Pool } from "./pool-objects.ts";
import type { PoolSettings } from "./pool-settings.ts";
import { PoolServer } from "./server.ts";
import type { UpstreamTarget } from "./url.ts";

const SWEEP_MS = 1000;

/** What the janitor asks of the pool it works for. */
export interface JanitorOwner {
  /** The settings in force (a reload replaces them). */
  settings(): PoolSettings;
  /** Every pool, the role-lookup pool included: what the sweep visits. */
  pools(): Pool[];
  /** No connection is to be opened for `pool` now (the pool is closed, PAUSE, SUSPEND, KILL db). */
  holdsBack(pool: Pool): boolean;
  /** A new connection of `pool`, ready to serve: the owner hands it out (or closes it, if closed). */
  opened(pool: Pool, server: PoolServer): void;
  /** A connection closed and left `pool`. */
  forgotten(pool: Pool): void;
}

export class Janitor {
  readonly #target: UpstreamTarget;
  readonly #owner: JanitorOwner;
  readonly #connect: UpstreamConnect;
  readonly #startTls: UpstreamStartTls | undefined;
  readonly #timeoutMs: number;
  #sweep: ReturnType<typeof setInterval> | null = null;

  constructor(target: UpstreamTarget, owner: JanitorOwner, options: {
    connect: UpstreamConnect;
    startTls: UpstreamStartTls | undefined;
    /** Bounds connecting and the startup exchange. */
    timeoutMs: number;
  }) {
    this.#target = target;
    this.#owner = owner;
    this.#connect = options.connect;
    this.#startTls = options.startTls;
    this.#timeoutMs = options.timeoutMs;
  }

  /** Opens connections for the waiters the pool's size allows (and the reserve, for long waits). */
  grow(pool: Pool): void {
    if (this.#owner.holdsBack(pool)) return;
    const s = this.#owner.settings();
    const now = Date.now();
    let limit = pool.fixedSize ?? s.defaultPoolSize;
    if (
      s.reservePoolSize > 0 && pool.waiters[0] !== undefined &&
      now - pool.waiters[0].since >= s.reservePoolTimeoutMs
    ) limit += s.reservePoolSize;
    const wanted = Math.max(pool.waiters.length, s.minPoolSize - pool.size - pool.opening);
    while (pool.size + pool.opening < limit && pool.opening < wanted) this.#open(pool);
  }

  /** Starts the sweep, once a second (a second call does nothing). */
  start(): void {
    if (this.#sweep !== null) return;
    this.#sweep = setInterval(() => this.#sweepPools(), SWEEP_MS);
    (this.#sweep as { unref?: () => void }).unref?.();
  }

  /** Stops the sweep (the pool is closing). */
  stop(): void {
    if (this.#sweep !== null) clearInterval(this.#sweep);
    this.#sweep = null;
  }

  #open(pool: Pool): void {
    pool.opening++;
    const params: Record<string, string> = {};
    if (pool.user !== this.#target.user && pool.login === null) params["role"] = pool.user;
    if (pool.forLookups) params["application_name"] = "pgts role lookup";
    const target: UpstreamTarget = pool.forReads
      ? { ...this.#target, targetSessionAttrs: "prefer-standby" }
      : this.#target;
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
      this.#owner.opened(pool, server);
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
    this.#owner.forgotten(pool);
  }

  /** server_idle_timeout, server_lifetime of free connections, min_pool_size, the reserve. */
  #sweepPools(): void {
    const s = this.#owner.settings();
    const now = Date.now();
    for (const pool of this.#owner.pools()) {
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
      this.grow(pool);
    }
  }
}
