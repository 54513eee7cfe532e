/**
 * The transaction pool's settings and pool modes as pgts's parameters give
 * them (src/core/guc/tables_pool.ts): pgbouncer's sizes and timeouts, and
 * which mode each (database, user) gets, pgbouncer's [users] `pool_mode=`
 * over [databases] `pool_mode=` over `pool_mode`. Values only: read by the
 * pool (pool.ts), its janitor and the CLI, which decides from them whether
 * the engine child runs a pool at all.
 */

import { parsePoolModeList } from "../../core/guc/tables_pool.ts";

/** pgbouncer's settings, as pgts names them (src/core/guc/tables_pool.ts). */
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

/** The pool's settings from pgts's parameters (src/core/guc/tables_pool.ts). */
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
