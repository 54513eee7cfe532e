/**
 * The upstream pool's parameters (engine = 'postgres://...'), pgbouncer's
 * settings with pgbouncer's meanings: pool_mode (and per database and per
 * user), pool sizes and timeouts, upstream_login, auth_file,
 * read_only_routing. Part of the parameter table (tables.ts spreads them in
 * at their place); the upstream engine (src/engines/upstream) reads them.
 */

import { MAX_BACKENDS, splitList } from "./values.ts";
import type { CheckFailure, ParamDef } from "./values.ts";
import { INT_MAX } from "./units.ts";

/**
 * `pool_mode_by_database` and `pool_mode_by_user`: pgbouncer's [databases]
 * and [users] `pool_mode=`, as a list of `name=mode` items (an item whose
 * name has a comma or space in double quotes: `"my db=session"`). Returns
 * the map, or what is wrong with the list.
 */
export function parsePoolModeList(
  value: string,
): ReadonlyMap<string, "session" | "transaction"> | CheckFailure {
  const items = splitList(value);
  if (items === null) return { detail: "List syntax is invalid." };
  const modes = new Map<string, "session" | "transaction">();
  for (const item of items) {
    const eq = item.lastIndexOf("=");
    const name = eq < 0 ? "" : item.slice(0, eq).trim();
    const mode = eq < 0 ? "" : item.slice(eq + 1).trim().toLowerCase();
    if (name === "" || (mode !== "session" && mode !== "transaction")) {
      return {
        detail: `Item "${item}" is not of the form name=session or name=transaction.`,
      };
    }
    modes.set(name, mode);
  }
  return modes;
}

function checkPoolModeList(value: string): CheckFailure | null {
  const r = parsePoolModeList(value);
  return r instanceof Map ? null : r as CheckFailure;
}

export const POOL_PARAMETERS: readonly ParamDef[] = [
  {
    name: "pool_mode",
    type: "enum",
    context: "postmaster",
    boot: "session",
    values: ["session", "transaction"],
    pgts: true,
    description:
      "With an upstream engine: whether a client holds its upstream connection for its whole session or only for each transaction.",
  },
  {
    name: "pool_mode_by_database",
    type: "string",
    context: "postmaster",
    boot: "",
    check: checkPoolModeList,
    pgts: true,
    description:
      "With an upstream engine: pool_mode for these databases (pgbouncer's [databases] pool_mode), as a list of name=session|transaction.",
  },
  {
    name: "pool_mode_by_user",
    type: "string",
    context: "postmaster",
    boot: "",
    check: checkPoolModeList,
    pgts: true,
    description:
      "With an upstream engine: pool_mode for these users (pgbouncer's [users] pool_mode), over the database's and the default.",
  },
  {
    name: "upstream_login",
    type: "enum",
    context: "postmaster",
    boot: "client",
    values: ["client", "url"],
    pgts: true,
    description:
      "With an upstream engine: log in upstream as the client's role when it logged in with SCRAM (client), or always as the engine URL's user with role set (url).",
  },
  {
    name: "default_pool_size",
    type: "int",
    context: "sighup",
    boot: 20,
    min: 1,
    max: 10000,
    pgts: true,
    description: "Upstream connections per (database, user) pool in transaction mode.",
  },
  {
    name: "min_pool_size",
    type: "int",
    context: "sighup",
    boot: 0,
    min: 0,
    max: 10000,
    pgts: true,
    description: "Upstream connections a pool keeps open even when idle.",
  },
  {
    name: "reserve_pool_size",
    type: "int",
    context: "sighup",
    boot: 0,
    min: 0,
    max: 10000,
    pgts: true,
    description:
      "Extra upstream connections a pool may open when a client has waited reserve_pool_timeout.",
  },
  {
    name: "reserve_pool_timeout",
    type: "int",
    context: "sighup",
    boot: 5000,
    min: 0,
    max: INT_MAX,
    unit: "ms",
    pgts: true,
    description: "How long a client waits before the reserve pool is used.",
  },
  {
    name: "max_client_conn",
    type: "int",
    context: "sighup",
    boot: 1000,
    min: 1,
    max: MAX_BACKENDS,
    pgts: true,
    description: "Clients the upstream pool serves at once in transaction mode.",
  },
  {
    name: "server_idle_timeout",
    type: "int",
    context: "sighup",
    boot: 600,
    min: 0,
    max: INT_MAX,
    unit: "s",
    pgts: true,
    description:
      "An upstream connection idle this long is closed (beyond min_pool_size); 0 keeps it.",
  },
  {
    name: "server_lifetime",
    type: "int",
    context: "sighup",
    boot: 3600,
    min: 0,
    max: INT_MAX,
    unit: "s",
    pgts: true,
    description:
      "An upstream connection older than this is closed when it is next released; 0 keeps it.",
  },
  {
    name: "server_reset_query",
    type: "string",
    context: "sighup",
    boot: "DISCARD ALL",
    pgts: true,
    description:
      "Run on an upstream connection a client held for its whole session before another client gets it.",
  },
  {
    name: "query_wait_timeout",
    type: "int",
    context: "sighup",
    boot: 120_000,
    min: 0,
    max: INT_MAX,
    unit: "ms",
    pgts: true,
    description:
      "How long a client's statement waits for a free upstream connection; 0 waits forever.",
  },
  {
    name: "max_prepared_statements",
    type: "int",
    context: "sighup",
    boot: 200,
    min: 1,
    max: 100000,
    pgts: true,
    description:
      "Protocol-level prepared statements kept per upstream connection in transaction mode.",
  },
  {
    name: "auth_file",
    type: "string",
    context: "sighup",
    boot: "",
    pgts: true,
    description:
      'With an upstream engine: pgbouncer\'s userlist file ("user" "secret" lines), relative to the data directory; read at every login.',
  },
  {
    name: "read_only_routing",
    type: "bool",
    context: "sighup",
    boot: false,
    pgts: true,
    description:
      "In transaction mode, with several upstream hosts: read-only transactions go to a standby when there is one.",
  },
];
