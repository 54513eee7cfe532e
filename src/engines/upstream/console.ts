/**
 * The transaction pool's admin console commands, in pgbouncer's column
 * shapes (its SHOW POOLS, CLIENTS, SERVERS and STATS of 1.21) and with its
 * PAUSE, RESUME and RELOAD, for the
 * `pgts` console database: the server glue wraps the pool with the
 * console session (src/http/console.ts) and these commands. Only
 * PAUSE, RESUME and RELOAD change anything.
 *
 * What pgts does not have is shown as pgbouncer shows an unused value (0,
 * false, NULL): cancel-request states, tested and used connections,
 * local addresses, TLS details. STATS averages are over the pool's whole
 * life, not pgbouncer's last stats period.
 */

import { ERRCODE, PgError } from "../../core/elog.ts";
import type { FieldDescription } from "../../core/protocol/mod.ts";
import type { Pool, UpstreamPool } from "./pool.ts";
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

const HELP = [
  "SHOW POOLS      each (database, user) pool: clients active and waiting, connections",
  "SHOW CLIENTS    every client of the pool",
  "SHOW SERVERS    every upstream connection",
  "SHOW STATS      transactions, queries, bytes and times per database",
  "PAUSE           hold new transactions; returns once every connection is back",
  "RESUME          let them run again",
  "RELOAD          re-read the pool's settings from postgresql.conf",
];

const time = (ms: number) => new Date(ms).toISOString();

/** The console commands of `engine`'s pools; `reload` re-reads its settings (RELOAD). */
export function poolConsole(
  engine: UpstreamPool,
  options: { reload?: () => void } = {},
): (sql: string) => ConsoleRows | null | Promise<ConsoleRows | null> {
  return (sql) => {
    const text = sql.trim().replace(/;\s*$/, "").trim();
    if (text === "") return null;
    const verb = text.split(/\s+/).map((w) => w.toUpperCase()).join(" ");
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
      case "SHOW HELP":
        return { fields: columns("command"), rows: HELP.map((h) => [h]), tag: "SHOW" };
      case "PAUSE":
        return engine.pause().then(() => ({ fields: [], rows: [], tag: "PAUSE" }));
      case "RESUME":
        if (!engine.paused) {
          throw new PgError(ERRCODE.OBJECT_NOT_IN_PREREQUISITE_STATE, "the pool is not paused");
        }
        engine.resume();
        return { fields: [], rows: [], tag: "RESUME" };
      case "RELOAD":
        options.reload?.();
        return { fields: [], rows: [], tag: "RELOAD" };
    }
    throw new PgError(ERRCODE.SYNTAX_ERROR, `unrecognized admin console command "${text}"`, {
      hint: "Try SHOW HELP.",
    });
  };
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
