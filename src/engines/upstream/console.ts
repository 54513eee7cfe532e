/**
 * The transaction pool's admin console commands, in pgbouncer's column
 * shapes (its SHOW POOLS, CLIENTS, SERVERS, STATS, DATABASES, USERS and
 * CONFIG of 1.21) and with its PAUSE, SUSPEND, RESUME [db], KILL db and
 * RELOAD, for the `pgts` console database: the server glue wraps the pool
 * with the console session (src/http/console.ts) and these commands. Only
 * those five change anything.
 *
 * What pgts does not have is shown as pgbouncer shows an unused value (0,
 * false, NULL): cancel-request states, tested and used connections,
 * local addresses, TLS details. STATS averages are over the pool's whole
 * life, not pgbouncer's last stats period.
 */

import { ERRCODE, PgError } from "../../core/elog.ts";
import type { GucDescription } from "../../core/guc/guc.ts";
import { formatValue } from "../../core/guc/values.ts";
import type { FieldDescription } from "../../core/protocol/mod.ts";
import type { Pool } from "./pool-objects.ts";
import type { UpstreamPool } from "./pool.ts";
import type { PoolServer } from "./server.ts";

/** The shape of a console answer (the console session's ConsoleResult). */
export interface ConsoleRows {
  readonly fields: FieldDescription[];
  readonly rows: (string | null)[][];
  readonly tag: string;
}

const TEXT = 25;
const INT4 = 23;
const INT8 = 20;
const TIMESTAMPTZ = 1184;

const columns = (names: string, types: Record<string, number> = {}): FieldDescription[] =>
  names.split(" ").map((name) => ({ name, typeOid: types[name] ?? TEXT }));

const POOLS = columns(
  "database user cl_active cl_waiting cl_active_cancel_req cl_waiting_cancel_req sv_active " +
    "sv_active_cancel sv_being_canceled sv_idle sv_used sv_tested sv_login maxwait maxwait_us " +
    "pool_mode",
  Object.fromEntries(
    [
      "cl_active",
      "cl_waiting",
      "cl_active_cancel_req",
      "cl_waiting_cancel_req",
      "sv_active",
      "sv_active_cancel",
      "sv_being_canceled",
      "sv_idle",
      "sv_used",
      "sv_tested",
      "sv_login",
      "maxwait",
      "maxwait_us",
    ].map((n) => [n, INT4]),
  ),
);

/** SHOW CLIENTS and SHOW SERVERS share pgbouncer's columns. */
const SOCKETS = columns(
  "type user database state addr port local_addr local_port connect_time request_time wait " +
    "wait_us close_needed ptr link remote_pid tls application_name prepared_statements",
  {
    port: INT4,
    local_port: INT4,
    connect_time: TIMESTAMPTZ,
    request_time: TIMESTAMPTZ,
    wait: INT4,
    wait_us: INT4,
    close_needed: INT4,
    remote_pid: INT4,
    prepared_statements: INT4,
  },
);

const STATS = columns(
  "database total_xact_count total_query_count total_received total_sent total_xact_time " +
    "total_query_time total_wait_time avg_xact_count avg_query_count avg_recv avg_sent " +
    "avg_xact_time avg_query_time avg_wait_time",
  Object.fromEntries(
    [
      "total_xact_count",
      "total_query_count",
      "total_received",
      "total_sent",
      "total_xact_time",
      "total_query_time",
      "total_wait_time",
      "avg_xact_count",
      "avg_query_count",
      "avg_recv",
      "avg_sent",
      "avg_xact_time",
      "avg_query_time",
      "avg_wait_time",
    ].map((n) => [n, INT8]),
  ),
);

const DATABASES = columns(
  "name host port database force_user pool_size min_pool_size reserve_pool pool_mode " +
    "max_connections current_connections paused disabled",
  Object.fromEntries(
    [
      "port",
      "pool_size",
      "min_pool_size",
      "reserve_pool",
      "max_connections",
      "current_connections",
      "paused",
      "disabled",
    ].map((n) => [n, INT4]),
  ),
);

const USERS = columns("name pool_mode");

const CONFIG = columns("key value default changeable");

/** SHOW CONFIG: pgts's parameters for the pool (src/core/guc/tables.ts). */
const POOL_PARAMETERS = [
  "pool_mode",
  "pool_mode_by_database",
  "pool_mode_by_user",
  "upstream_login",
  "default_pool_size",
  "min_pool_size",
  "reserve_pool_size",
  "reserve_pool_timeout",
  "max_client_conn",
  "server_idle_timeout",
  "server_lifetime",
  "server_reset_query",
  "query_wait_timeout",
  "max_prepared_statements",
  "read_only_routing",
];

const HELP = [
  "SHOW POOLS      each (database, user) pool: clients active and waiting, connections",
  "SHOW CLIENTS    every client of the pool",
  "SHOW SERVERS    every upstream connection",
  "SHOW STATS      transactions, queries, bytes and times per database",
  "SHOW DATABASES  each database of the pools: sizes, mode, connections, paused",
  "SHOW USERS      each user of the pools and its pool_mode_by_user",
  "SHOW CONFIG     the pool's parameters: value, default, changeable by RELOAD",
  "PAUSE [db]      hold new transactions (of db); returns once their connections are back",
  "SUSPEND         hold every client's input, mid-transaction too; returns once none is in flight",
  "RESUME [db]     end PAUSE or SUSPEND; with db, PAUSE db or KILL db",
  "KILL db         end every client and connection of db; its new clients wait for RESUME db",
  "RELOAD          re-read the pool's settings from postgresql.conf",
];

const time = (ms: number) => new Date(ms).toISOString();

type Commands = (sql: string) => ConsoleRows | null | Promise<ConsoleRows | null>;

/** pgbouncer's "admin access needed" cases: the console's own state says no. */
const notNow = (message: string) => new PgError(ERRCODE.OBJECT_NOT_IN_PREREQUISITE_STATE, message);

/**
 * The console commands of `engine`'s pools. `reload` re-reads its settings
 * (RELOAD); `config` gives the parameters in force (SHOW CONFIG); `fallback`
 * answers the commands that are not the pool's (the HTTP server's own).
 */
export function poolConsole(
  engine: UpstreamPool,
  options: {
    reload?: () => void;
    config?: () => { describe(name: string): GucDescription };
    fallback?: Commands;
  } = {},
): Commands {
  return (sql) => {
    const text = sql.trim().replace(/;\s*$/, "").trim();
    if (text === "") return null;
    const words = text.split(/\s+/);
    // pgbouncer's argument: one word, double quotes kept out.
    const arg = words.length === 2 ? words[1]!.replace(/^"(.*)"$/, "$1") : null;
    const command = words[0]!.toUpperCase();
    if (words.length === 2 && command === "KILL") return kill(engine, arg!);
    if (words.length === 2 && command === "RESUME") return resumeDatabase(engine, arg!);
    if (words.length === 2 && command === "PAUSE") return pauseDatabase(engine, arg!);
    const verb = words.map((w) => w.toUpperCase()).join(" ");
    const now = Date.now();
    const sessions = engine.sessions().map((s) => ({ s, i: s.info }));
    switch (verb) {
      case "SHOW POOLS":
        return {
          fields: POOLS,
          rows: engine.pools().map((p) => {
            const waiting = sessions.filter((x) => x.i.pool === p && x.i.state === "waiting");
            const active = sessions.filter((x) => x.i.pool === p).length - waiting.length;
            const oldest = Math.min(now, ...waiting.map((x) => x.s.requestAt));
            const waitUs = (now - oldest) * 1000;
            return [
              // A read-only companion (read_only_routing) is a pool of its own.
              p.forReads ? `${p.database} (read-only)` : p.database,
              p.user,
              String(active),
              String(waiting.length),
              "0",
              "0",
              String(p.active.size),
              "0",
              "0",
              String(p.idle.length),
              "0",
              "0",
              String(p.opening),
              String(Math.floor(waitUs / 1e6)),
              String(waitUs % 1e6),
              p.mode,
            ];
          }),
          tag: "SHOW",
        };
      case "SHOW CLIENTS":
        return {
          fields: SOCKETS,
          rows: sessions.map(({ s, i }) => {
            const waitMs = i.state === "waiting" ? now - s.requestAt : 0;
            return [
              "C",
              i.pool.user,
              i.pool.database,
              i.state,
              i.startup.client?.address ?? "unix",
              String(i.startup.client?.port ?? 0),
              null,
              null,
              time(s.connectedAt),
              time(s.requestAt),
              String(Math.floor(waitMs / 1000)),
              String((waitMs % 1000) * 1000),
              "0",
              `c${s.id}`,
              i.server === null ? null : `s${i.server.id}`,
              String(i.startup.pid),
              null,
              i.applicationName,
              String(i.statements),
            ];
          }),
          tag: "SHOW",
        };
      case "SHOW SERVERS":
        return {
          fields: SOCKETS,
          rows: engine.pools().flatMap((p) => [
            ...[...p.active].map((s) => serverRow(p, s, "active")),
            ...p.idle.map((s) => serverRow(p, s, "idle")),
          ]),
          tag: "SHOW",
        };
      case "SHOW STATS": {
        const byDb = new Map<string, Pool[]>();
        for (const p of engine.pools()) byDb.set(p.database, [...(byDb.get(p.database) ?? []), p]);
        return {
          fields: STATS,
          rows: [...byDb].map(([db, pools]) => {
            const sum = (f: (p: Pool) => number) => pools.reduce((a, p) => a + f(p), 0);
            const xacts = sum((p) => p.transactions);
            const queries = sum((p) => p.queries);
            const xactUs = sum((p) => p.xactMs) * 1000;
            const waitUs = sum((p) => p.waitedMs) * 1000;
            const seconds = Math.max(1, (now - Math.min(...pools.map((p) => p.createdAt))) / 1000);
            const per = (n: number) => String(Math.round(n / seconds));
            return [
              db,
              String(xacts),
              String(queries),
              String(sum((p) => p.received)),
              String(sum((p) => p.sent)),
              String(xactUs),
              String(xactUs),
              String(waitUs),
              per(xacts),
              per(queries),
              per(sum((p) => p.received)),
              per(sum((p) => p.sent)),
              String(xacts === 0 ? 0 : Math.round(xactUs / xacts)),
              String(queries === 0 ? 0 : Math.round(xactUs / queries)),
              String(xacts === 0 ? 0 : Math.round(waitUs / xacts)),
            ];
          }),
          tag: "SHOW",
        };
      }
      case "SHOW DATABASES":
        return { fields: DATABASES, rows: databaseRows(engine), tag: "SHOW" };
      case "SHOW USERS": {
        const users = new Set(engine.pools().map((p) => p.user));
        for (const u of engine.modes.byUser.keys()) users.add(u);
        return {
          fields: USERS,
          rows: [...users].sort().map((u) => [u, engine.modes.byUser.get(u) ?? null]),
          tag: "SHOW",
        };
      }
      case "SHOW CONFIG": {
        const config = options.config?.();
        if (config === undefined) break;
        return {
          fields: CONFIG,
          rows: POOL_PARAMETERS.map((name) => {
            const d = config.describe(name);
            return [
              name,
              d.setting,
              formatValue(d.def, d.def.boot),
              d.def.context === "sighup" ? "yes" : "no",
            ];
          }),
          tag: "SHOW",
        };
      }
      case "SHOW HELP": {
        const rows = HELP.map((h) => [h]);
        const more = options.fallback?.(sql);
        if (more instanceof Promise || more === undefined || more === null) {
          return { fields: columns("command"), rows, tag: "SHOW" };
        }
        return { fields: columns("command"), rows: [...rows, ...more.rows], tag: "SHOW" };
      }
      case "PAUSE":
        if (engine.paused || engine.suspended) {
          throw notNow("the pool is already paused or suspended");
        }
        return engine.pause().then(() => ({ fields: [], rows: [], tag: "PAUSE" }));
      case "SUSPEND":
        if (engine.paused || engine.suspended) {
          throw notNow("the pool is already paused or suspended");
        }
        if (engine.pausedDatabases.size > 0) {
          throw notNow("cannot suspend the pool while a database is paused");
        }
        return engine.suspend().then(() => ({ fields: [], rows: [], tag: "SUSPEND" }));
      case "RESUME":
        if (!engine.paused && !engine.suspended) {
          throw notNow("the pool is not paused or suspended");
        }
        engine.resume();
        return { fields: [], rows: [], tag: "RESUME" };
      case "RELOAD":
        // The HTTP server's own RELOAD re-reads its files.
        if (options.reload === undefined && options.fallback !== undefined) {
          return options.fallback(sql);
        }
        options.reload?.();
        return { fields: [], rows: [], tag: "RELOAD" };
    }
    if (options.fallback !== undefined) return options.fallback(sql);
    throw new PgError(ERRCODE.SYNTAX_ERROR, `unrecognized admin console command "${text}"`, {
      hint: "Try SHOW HELP.",
    });
  };
}

/** KILL db: as pgbouncer's, refused for the console itself and while the pool is paused. */
function kill(engine: UpstreamPool, database: string): ConsoleRows {
  if (database === "pgts") throw notNow('cannot kill the admin console database "pgts"');
  if (engine.paused || engine.suspended) throw notNow("the pool is already paused or suspended");
  engine.kill(
    database,
    new PgError(ERRCODE.ADMIN_SHUTDOWN, "terminating connection due to administrator command", {
      severity: "FATAL",
      detail: `KILL "${database}" was issued in the pgts console.`,
    }),
  );
  return { fields: [], rows: [], tag: "KILL" };
}

/** PAUSE db: as PAUSE, for one database; returns once its connections are back. */
function pauseDatabase(engine: UpstreamPool, database: string): Promise<ConsoleRows> {
  if (database === "pgts") throw notNow('cannot pause the admin console database "pgts"');
  if (engine.paused || engine.suspended) throw notNow("the pool is already paused or suspended");
  const pausing = engine.pauseDatabase(database);
  if (pausing === null) throw notNow(`database "${database}" is already paused`);
  return pausing.then(() => ({ fields: [], rows: [], tag: "PAUSE" }));
}

function resumeDatabase(engine: UpstreamPool, database: string): ConsoleRows {
  if (!engine.resumeDatabase(database)) throw notNow(`database "${database}" is not paused`);
  return { fields: [], rows: [], tag: "RESUME" };
}

/** SHOW DATABASES: the databases of the pools and those pool_mode_by_database names. */
function databaseRows(engine: UpstreamPool): (string | null)[][] {
  const s = engine.settings;
  const a = engine.target.address;
  const [host, port] = a.family === "tcp"
    ? [a.host, a.port]
    : [a.path.slice(0, a.path.lastIndexOf("/")), Number(a.path.slice(a.path.lastIndexOf(".") + 1))];
  const names = new Set(engine.pools().map((p) => p.database));
  for (const d of engine.modes.byDatabase.keys()) names.add(d);
  for (const d of engine.pausedDatabases) names.add(d);
  return [...names].sort().map((db) => {
    const connections = engine.pools().filter((p) => p.database === db)
      .reduce((n, p) => n + p.size, 0);
    return [
      db,
      host,
      String(port),
      db,
      null,
      String(s.defaultPoolSize),
      String(s.minPoolSize),
      String(s.reservePoolSize),
      engine.modes.byDatabase.get(db) ?? null,
      "0",
      String(connections),
      engine.pausedDatabases.has(db) ? "1" : "0",
      "0",
    ];
  });
}

function serverRow(p: Pool, s: PoolServer, state: string): (string | null)[] {
  const a = s.address;
  return [
    "S",
    p.user,
    p.database,
    state,
    a.family === "tcp" ? a.host : "unix",
    a.family === "tcp" ? String(a.port) : "0",
    null,
    null,
    time(s.openedAt),
    time(s.assignedAt),
    "0",
    "0",
    "0",
    `s${s.id}`,
    s.client === null ? null : `c${s.client.id}`,
    String(s.pid),
    null,
    s.reported.get("application_name") ?? "",
    String(s.prepared.size),
  ];
}
