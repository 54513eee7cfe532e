/**
 * Backend identity inside the engine: the SQL functions through which a
 * PostgreSQL backend knows itself and the others — `pg_backend_pid()`,
 * `pg_cancel_backend(pid)`, `pg_terminate_backend(pid, timeout)` and the
 * rows behind `pg_stat_activity` — answered for pgts's sessions instead of
 * PGlite's one process; and `pg_reload_conf()`, which signals pgts's
 * postmaster rather than PGlite's own process.
 *
 * Each is a host function put in the slot of PGlite's function table that
 * the builtin's fmgr entry points at (found with the exported `fmgr_info`),
 * so every caller reaches it, however the call is spelled. PGlite's
 * `MyProcPid` is left alone: NOTIFY compares the pid it registered a
 * listener under with MyProcPid to signal itself (async.c's
 * SignalBackends), which a per-session MyProcPid would break.
 *
 * - `pg_backend_pid()` returns the pid of the session whose exec runs (its
 *   BackendKeyData pid), PGlite's own for pgts's own work.
 * - `pg_cancel_backend` and `pg_terminate_backend` check as
 *   signalfuncs.c's pg_signal_backend does, inside the backend (superuser
 *   targets only for superusers; else the caller must have the privileges
 *   of the target's role or of pg_signal_backend), and answer PostgreSQL's
 *   errors and WARNING. A signal to another session is recorded and handed
 *   to the engine when the exec is over (the engine cancels or terminates
 *   that session); a cancel of the caller itself sets Postgres's own cancel
 *   flags, so the statement ends with 57014 as in PostgreSQL.
 * - `pg_log_backend_memory_contexts(pid)` takes a session's pid for
 *   PGlite's own: the memory of every session is the one backend's.
 * - `pg_catalog.pgts_backend_status()` (language internal, bound to the
 *   same builtin slot as pg_backend_pid and told apart by the function OID
 *   in its FmgrInfo) returns the session rows the engine passed with this
 *   exec, as JSON, with PostgreSQL's visibility rules applied for the
 *   calling role: rows of roles it has no privileges of (and is not a
 *   pg_read_all_stats member) keep pid, role, database and
 *   application_name, and show the query as `<insufficient privilege>`.
 *
 * - `pg_listening_channels()` lists the running session's channels: the
 *   backend listens to the union of every session's (notify.ts), and the
 *   builtin's rows are kept only when they are the session's, passed with
 *   an exec whose text names the function (none otherwise). pgts's own work
 *   sees the backend's.
 * - `pg_catalog.pgts_engine_pid()`, bound to the same slot, returns PGlite's
 *   own pid, which pg_locks shows as the running session's (activity.ts).
 * - `pg_catalog.pgts_advisory_locks()`, bound to the same slot, returns the
 *   advisory locks pgts holds for its sessions (advisory.ts) as JSON, for
 *   pg_locks (activity.ts).
 * - `pg_catalog.pgts_statement_prefix()`, bound to the same slot, returns
 *   the running session's statement-name prefix, by which pgts's
 *   pg_prepared_statements view keeps that session's statements only.
 * - `pg_catalog.pgts_statement_names()`, bound to the same slot, returns
 *   as JSON, passed with an exec whose text names the views, the running
 *   session's names that end in a hash on the engine (too long for the
 *   prefix, enginenames.ts) with the names PostgreSQL keeps of them, and
 *   the texts of its PREPAREs and DECLAREs as it sent them.
 * - A session's exec that changed a role or a membership, however spelled
 *   (CREATE ROLE in a DO block or a function, where the text scan of
 *   naming.ts does not look), ends with a `roles` signal, so that the
 *   engine reads them again and gives them to pgts's role catalog and the
 *   other databases' engines. It is known from the backend's syscache
 *   invalidations of pg_authid and pg_auth_members, which every change of
 *   them makes.
 *
 * Runs on the thread that runs PGlite, and must never act on a session
 * itself: it only records what the engine should do.
 */

import { onUtilityStatement, parsedStatement, wasmFunction, type WasmTools } from "./wasmtools.ts";
import type { ShownName } from "./enginenames.ts";

/** A session the engine serves, as the signal functions check it. */
export interface BackendEntry {
  readonly pid: number;
  /** The OID of the role the session logged in as (PostgreSQL's PGPROC roleId). */
  readonly roleOid: number;
  /** The prefix of the session's statement names on the engine (naming.ts). */
  readonly statementPrefix: string;
  /** Its client's TCP address (PostgreSQL's Port raddr and laddr); null over a Unix socket. */
  readonly client?: ClientAddress | null;
}

/**
 * The engine's sessions as an exec passes them to the backend (procarray.ts
 * forExec): all of them, or what changed since the last exec that passed
 * them. A connection's start or end is then one entry, not the whole list:
 * with hundreds of idle connections open, encoding the whole list for each
 * exec after a connect took a quarter of the postmaster thread's time.
 */
export interface BackendsUpdate {
  /** True: `entries` are every session and replace what the backend had; false: those added since. */
  readonly whole: boolean;
  readonly entries: readonly BackendEntry[];
  /** The pids of the sessions that ended since (applied before `entries`: a pid can be reused). */
  readonly gone: readonly number[];
}

/**
 * The engine's sessions on the backend's side, by pid, as the execs'
 * updates give them (BackendsUpdate), and which pids are still the
 * sessions they were. A pid names a session only while it lives: the
 * subprocess adapter's pooled backend processes serve one client after
 * another under one pid. The per-session tables kept by pid (advisory
 * locks, currval, reset values) must forget a pid whose session is
 * another now, or the next client inherits the last one's locks and
 * values. A session is known by its statement prefix, which is never
 * reused. The signal functions (installBackendFunctions) and the client
 * addresses (clientaddr.ts) read the sessions here.
 */
export class BackendTable {
  readonly #known = new Map<number, BackendEntry>();

  get(pid: number): BackendEntry | undefined {
    return this.#known.get(pid);
  }

  /**
   * Takes `update`; returns which pids' per-session state goes (null:
   * none): a session that ended, or a pid that another session has now.
   * After a whole list, every pid but those it keeps, known here or not
   * (state an exec left for a session whose update never arrived); after
   * a change, each pid it says ended, even one no update had named.
   */
  apply(update: BackendsUpdate): ((pid: number) => boolean) | null {
    const known = this.#known;
    if (update.whole) {
      const keep = new Set<number>();
      const was = new Map(known);
      known.clear();
      for (const e of update.entries) {
        const before = was.get(e.pid);
        if (before === undefined || before.statementPrefix === e.statementPrefix) keep.add(e.pid);
        known.set(e.pid, e);
      }
      return (pid) => !keep.has(pid);
    }
    const dropped = new Set(update.gone);
    for (const pid of update.gone) known.delete(pid);
    for (const e of update.entries) {
      const before = known.get(e.pid);
      if (before !== undefined && before.statementPrefix !== e.statementPrefix) dropped.add(e.pid);
      known.set(e.pid, e);
    }
    return dropped.size === 0 ? null : (pid) => dropped.has(pid);
  }
}

/** A TCP client's address and port, and the server's end of its connection where known. */
export interface ClientAddress {
  readonly address: string;
  readonly port: number;
  readonly local?: { readonly address: string; readonly port: number } | undefined;
}

/** One row of pg_stat_activity, before visibility rules (activity.ts's SessionActivity builds it). */
export interface ActivityRow {
  readonly pid: number;
  readonly usesysid: number;
  readonly application_name: string;
  readonly state: string;
  readonly query: string;
  readonly wait_event_type: string | null;
  readonly wait_event: string | null;
  readonly xact_start: string | null;
  readonly query_start: string | null;
  readonly backend_start: string;
  readonly state_change: string | null;
  readonly client_addr: string | null;
  readonly client_port: number | null;
  /** pg_stat_ssl's columns: the connection's TLS, or false and nulls. */
  readonly ssl: boolean;
  readonly sslversion: string | null;
  readonly sslcipher: string | null;
  readonly sslbits: number | null;
  readonly ssl_client_dn: string | null;
  /** The session's database (PostgreSQL's view lists the backends of every database). */
  readonly datname: string;
}

/** pg_stat_activity as one engine shows it: the view's oid, and each database's oid by name. */
export interface StatActivityView {
  readonly oid: number;
  readonly databaseOids: ReadonlyMap<string, number>;
}

/**
 * The routine ('R' field) of the ERROR that ends a statement whose session
 * terminated itself with pg_terminate_backend (see output.ts).
 */
export const TERMINATE_SELF_ROUTINE = "pgts_terminate_self";
const ERRCODE_ADMIN_SHUTDOWN = "57P01";

/**
 * What an exec asks of the engine when it is over: cancel or terminate the
 * session `pid`; (pid 0) the postmaster's SIGHUP, for pg_reload_conf(); or
 * read again what session `pid` changed: the roles (`roles`), or the
 * database privileges a login checks (`databases`, databasegrants.ts).
 */
export type BackendSignal = readonly [
  pid: number,
  kind: "cancel" | "terminate" | "reload" | "roles" | "databases",
];

export interface BackendFunctions {
  /** The session whose exec runs next (its pid), or null for pgts's own work. */
  runAs(pid: number | null): void;
  /** The rows pgts_backend_status() returns during the next exec (null: keep the last ones). */
  setActivity(rows: readonly ActivityRow[] | null): void;
  /** The channels pg_listening_channels() keeps during the next exec: the session's own. */
  setChannels(channels: readonly string[]): void;
  /** What pgts_statement_names() returns during the next exec: the session's names and texts. */
  setNames(names: readonly ShownName[]): void;
  /** Signals to other sessions recorded since the last call. */
  takeSignals(): BackendSignal[];
  /** The statement-name prefix of the session whose exec runs, or null for pgts's own work. */
  runningPrefix(): string | null;
  /** The running session's exec changes a database's privileges: a `databases` signal at its end. */
  databasesChanged(): void;
  /** Where pgts_advisory_locks() reads its rows (advisory.ts, installed after these). */
  setAdvisoryRows(rows: () => readonly unknown[]): void;
}

/** Builtin function OIDs (pg_proc.dat). */
const F_PG_BACKEND_PID = 2026;
const F_PG_CANCEL_BACKEND = 2171;
const F_PG_TERMINATE_BACKEND = 2096;
const F_PG_RELOAD_CONF = 2621;
const F_PG_LOG_BACKEND_MEMORY_CONTEXTS = 4543;
const F_PG_LISTENING_CHANNELS = 3035;
const F_PG_STAT_GET_DB_NUMBACKENDS = 1941;

/**
 * Syscache ids of pg_auth_members (by member) and pg_authid (by oid):
 * PostgreSQL 18's syscache_ids.h numbers the caches in their names'
 * alphabetical order (AGGFNOID 0, …, AUTHMEMMEMROLE 8, …, AUTHOID 11).
 */
const AUTHMEMMEMROLE = 8;
const AUTHOID = 11;

/** Offsets in wasm32 structures (fmgr.h): FmgrInfo.fn_oid, FunctionCallInfoBaseData.args. */
const FLINFO_FN_OID = 4;
const FCINFO_ARGS = 20;
/** FunctionCallInfoBaseData.resultinfo, ReturnSetInfo.isDone and ExprEndResult (execnodes.h). */
const FCINFO_RESULTINFO = 8;
const RSI_IS_DONE = 20;
const EXPR_END_RESULT = 2;
const NULLABLE_DATUM_SIZE = 8;

/** The function table slot of builtin `oid`'s C function, as fmgr_info finds it. */
export function builtinSlot(tools: WasmTools, oid: number): number {
  const ex = tools.ex as unknown as BackendExports & typeof tools.ex;
  if (typeof ex.fmgr_info !== "function") throw new Error("PGlite does not export fmgr_info");
  let finfo = finfoOf.get(tools);
  if (finfo === undefined) finfoOf.set(tools, finfo = ex.malloc(64));
  ex.fmgr_info(oid, finfo);
  const v = tools.view();
  if (v.getUint32(finfo + FLINFO_FN_OID, true) !== oid) {
    throw new Error("PGlite's FmgrInfo has an unknown layout");
  }
  return v.getUint32(finfo, true);
}

/**
 * Puts `wrapper` in the function table slot of builtin `oid` (a version-1
 * C function), called with each call's fcinfo and the builtin it replaced.
 */
export function wrapBuiltin(
  tools: WasmTools,
  oid: number,
  wrapper: (fcinfo: number, builtin: (fcinfo: number) => number) => number,
): void {
  const table = tools.ex.__indirect_function_table;
  const slot = builtinSlot(tools, oid);
  const builtin = table.get(slot) as ((fcinfo: number) => number) | null;
  if (typeof builtin !== "function") throw new Error(`PGlite's builtin ${oid} is not a function`);
  table.set(slot, wasmFunctionOf((fcinfo: number): number => wrapper(fcinfo, builtin)));
}

/**
 * A text Datum's string: a short (1-byte header) varlena or a plain 4-byte
 * one. Never a compressed or external one: what reaches it is a literal or
 * a function's result.
 */
export function textOfDatum(tools: WasmTools, datum: number): string {
  const v = tools.view();
  const first = v.getUint8(datum);
  const [start, length] = (first & 1) === 1
    ? [datum + 1, (first >> 1) - 1]
    : [datum + 4, (v.getUint32(datum, true) >>> 2) - 4];
  return new TextDecoder().decode(new Uint8Array(v.buffer, start, length).slice());
}

/** One FmgrInfo buffer per instance, for builtinSlot. */
const finfoOf = new WeakMap<WasmTools, number>();

/** Argument `n` of a version-1 call: a Datum (a pointer for int8, which is by reference here). */
export function argDatum(tools: WasmTools, fcinfo: number, n: number): number {
  return tools.view().getUint32(fcinfo + FCINFO_ARGS + n * NULLABLE_DATUM_SIZE, true);
}

/** Whether argument `n` of a version-1 call is NULL (NullableDatum.isnull, after its Datum). */
export function argIsNull(tools: WasmTools, fcinfo: number, n: number): boolean {
  return tools.view().getUint8(fcinfo + FCINFO_ARGS + n * NULLABLE_DATUM_SIZE + 4) !== 0;
}

export interface BackendFunctionOptions {
  /** Sets Postgres's cancel flags for the exec in flight (a session cancelling itself). */
  readonly cancelSelf: () => void;
  /** The sessions the signal functions know. */
  readonly sessions: BackendTable;
}

interface BackendExports {
  fmgr_info(oid: number, finfo: number): void;
  GetUserId(): number;
  superuser(): number;
  superuser_arg(roleOid: number): number;
  has_privs_of_role(member: number, role: number): number;
  get_role_oid(name: number, missingOk: number): number;
  palloc(size: number): number;
  cstring_to_text(s: number): number;
  get_func_name(oid: number): number;
  get_database_name(dbid: number): number;
  CacheRegisterSyscacheCallback(cacheId: number, fn: number, arg: number): void;
}

export function installBackendFunctions(
  tools: WasmTools,
  options: BackendFunctionOptions,
): BackendFunctions {
  const ex = tools.ex as unknown as BackendExports & typeof tools.ex;
  const sessions = options.sessions;
  for (
    const fn of [
      "fmgr_info",
      "GetUserId",
      "superuser",
      "has_privs_of_role",
      "get_role_oid",
      "palloc",
      "cstring_to_text",
      "get_func_name",
      "CacheRegisterSyscacheCallback",
    ] as const
  ) {
    if (typeof ex[fn] !== "function") throw new Error(`PGlite does not export ${fn}`);
  }
  const table = ex.__indirect_function_table;
  const pidSlot = builtinSlot(tools, F_PG_BACKEND_PID);
  const cancelSlot = builtinSlot(tools, F_PG_CANCEL_BACKEND);
  const terminateSlot = builtinSlot(tools, F_PG_TERMINATE_BACKEND);
  const reloadSlot = builtinSlot(tools, F_PG_RELOAD_CONF);
  const logContextsSlot = builtinSlot(tools, F_PG_LOG_BACKEND_MEMORY_CONTEXTS);
  const channelsSlot = builtinSlot(tools, F_PG_LISTENING_CHANNELS);
  if (
    new Set([pidSlot, cancelSlot, terminateSlot, reloadSlot, logContextsSlot, channelsSlot])
      .size !== 6
  ) {
    throw new Error("PGlite's backend functions share a function table slot");
  }
  const originalPid = table.get(pidSlot) as () => number;
  if (typeof originalPid !== "function") throw new Error("pg_backend_pid is not a function");
  const originalChannels = table.get(channelsSlot) as (fcinfo: number) => number;
  if (typeof originalChannels !== "function") {
    throw new Error("pg_listening_channels is not a function");
  }
  const originalLogContexts = table.get(logContextsSlot) as (fcinfo: number) => number;
  if (typeof originalLogContexts !== "function") {
    throw new Error("pg_log_backend_memory_contexts is not a function");
  }

  let runner: number | null = null;
  let activity: readonly ActivityRow[] = [];
  let channels: readonly string[] = [];
  let statementNames: readonly ShownName[] = [];
  let signals: BackendSignal[] = [];
  const roleOids = new Map<string, number>();
  /** A predefined role's OID, looked up (inside a transaction) on first use. */
  const roleOid = (name: string): number => {
    let oid = roleOids.get(name);
    if (oid === undefined) {
      oid = ex.get_role_oid(tools.cString(name), 1);
      roleOids.set(name, oid);
    }
    return oid;
  };
  const textDatum = (s: string): number => ex.cstring_to_text(tools.pallocCString(s));

  /**
   * signalfuncs.c's pg_signal_backend: null when the signal may go, else
   * what refuses it. Raises nothing itself.
   */
  const check = (pid: number): "unknown" | "nosuperuser" | "nopermission" | null => {
    const role = sessions.get(pid)?.roleOid;
    if (role === undefined) return "unknown";
    if (ex.superuser_arg(role) !== 0 && ex.superuser() === 0) return "nosuperuser";
    const me = ex.GetUserId();
    if (
      ex.has_privs_of_role(me, role) === 0 &&
      ex.has_privs_of_role(me, roleOid("pg_signal_backend")) === 0
    ) {
      return "nopermission";
    }
    return null;
  };

  const signal = (pid: number, kind: "cancel" | "terminate"): number => {
    const refused = check(pid);
    if (refused === "unknown") {
      tools.warn(`PID ${pid} is not a PostgreSQL backend process`);
      return 0;
    }
    const cancel = kind === "cancel";
    const what = cancel
      ? "permission denied to cancel query"
      : "permission denied to terminate process";
    if (refused === "nosuperuser") {
      tools.raise(
        "42501",
        what,
        cancel
          ? "Only roles with the SUPERUSER attribute may cancel queries of roles with the SUPERUSER attribute."
          : "Only roles with the SUPERUSER attribute may terminate processes of roles with the SUPERUSER attribute.",
      );
    }
    if (refused === "nopermission") {
      tools.raise(
        "42501",
        what,
        cancel
          ? 'Only roles with privileges of the role whose query is being canceled or with privileges of the "pg_signal_backend" role may cancel this query.'
          : 'Only roles with privileges of the role whose process is being terminated or with privileges of the "pg_signal_backend" role may terminate this process.',
      );
    }
    if (pid === runner) {
      if (cancel) options.cancelSelf();
      else {
        // PostgreSQL's backend dies at the next CHECK_FOR_INTERRUPTS, so
        // the statement gives no result and the client gets the FATAL
        // instead. PGlite's one backend must not die: the statement is
        // ended with an ERROR that output.ts knows by its routine and
        // turns into the session's FATAL.
        tools.raise(
          ERRCODE_ADMIN_SHUTDOWN,
          "terminating connection due to administrator command",
          undefined,
          { routine: TERMINATE_SELF_ROUTINE },
        );
      }
    } else signals.push([pid, kind]);
    return 1;
  };

  /** The names of the functions bound to pg_backend_pid's slot, by OID. */
  const names = new Map<number, string>();
  const boundTo = (oid: number): string => {
    let name = names.get(oid);
    if (name === undefined) {
      const p = ex.get_func_name(oid);
      names.set(oid, name = p === 0 ? "" : tools.readCString(p));
    }
    return name;
  };
  /**
   * The running session's statement-name prefix, for pg_prepared_statements
   * (activity.ts); for no session one that no name has, so nothing shows.
   */
  let advisoryRows: () => readonly unknown[] = () => [];
  const statementPrefix = (): string =>
    (runner === null ? undefined : sessions.get(runner)?.statementPrefix) ?? "\u0001";

  const status = (): string => {
    const me = ex.GetUserId();
    const readsAll = ex.has_privs_of_role(me, roleOid("pg_read_all_stats")) !== 0;
    return JSON.stringify(
      activity.map((r) =>
        readsAll || ex.has_privs_of_role(me, r.usesysid) !== 0 ? r : {
          pid: r.pid,
          datname: r.datname,
          usesysid: r.usesysid,
          application_name: r.application_name,
          query: "<insufficient privilege>",
        }
      ),
    );
  };

  table.set(
    pidSlot,
    wasmFunctionOf((fcinfo: number): number => {
      const flinfo = fcinfo === 0 ? 0 : tools.view().getUint32(fcinfo, true);
      const oid = flinfo === 0
        ? F_PG_BACKEND_PID
        : tools.view().getUint32(flinfo + FLINFO_FN_OID, true);
      if (oid === F_PG_BACKEND_PID) return runner ?? originalPid();
      const name = boundTo(oid);
      if (name === "pgts_engine_pid") return originalPid();
      if (name === "pgts_advisory_locks") return textDatum(JSON.stringify(advisoryRows()));
      if (name === "pgts_statement_names") return textDatum(JSON.stringify(statementNames));
      return textDatum(name === "pgts_statement_prefix" ? statementPrefix() : status());
    }),
  );
  table.set(
    cancelSlot,
    wasmFunctionOf((fcinfo: number): number => signal(argDatum(tools, fcinfo, 0) | 0, "cancel")),
  );
  table.set(
    terminateSlot,
    wasmFunctionOf((fcinfo: number): number => {
      // int8 is passed by reference where a Datum has 4 bytes.
      const timeout = tools.view().getBigInt64(argDatum(tools, fcinfo, 1), true);
      if (timeout < 0n) tools.raise("22003", '"timeout" must not be negative');
      return signal(argDatum(tools, fcinfo, 0) | 0, "terminate");
    }),
  );

  // pg_log_backend_memory_contexts(pid): PostgreSQL finds the pid among its
  // backends and signals it to log its memory contexts. A session's pid
  // (what pg_backend_pid() and pg_stat_activity show) is not PGlite's
  // process, so the builtin answered false with the WARNING "PID n is not a
  // PostgreSQL server process"; every session's memory is the one backend's,
  // so a session's pid is given to it as PGlite's own.
  table.set(
    logContextsSlot,
    wasmFunctionOf((fcinfo: number): number => {
      const at = fcinfo + FCINFO_ARGS;
      if (sessions.get(tools.view().getInt32(at, true)) !== undefined) {
        tools.view().setInt32(at, originalPid(), true);
      }
      return originalLogContexts(fcinfo);
    }),
  );

  // pg_listening_channels(): a value-per-call set-returning function whose
  // state is in the FmgrInfo; the builtin is called again for the next row
  // while the row it gave is another session's channel.
  table.set(
    channelsSlot,
    wasmFunctionOf((fcinfo: number): number => {
      if (runner === null) return originalChannels(fcinfo);
      const rsi = tools.view().getUint32(fcinfo + FCINFO_RESULTINFO, true);
      for (;;) {
        const datum = originalChannels(fcinfo);
        if (rsi === 0 || tools.view().getInt32(rsi + RSI_IS_DONE, true) === EXPR_END_RESULT) {
          return datum;
        }
        if (channels.includes(textOfDatum(tools, datum))) return datum;
      }
    }),
  );

  // pg_reload_conf(): PGlite's backend has no postmaster to signal (its
  // kill fails, and the function returns false with a WARNING); the engine
  // asks pgts's postmaster for its SIGHUP when the exec ends. Who may call
  // it is pg_proc's ACL, checked before the call (superusers by default).
  table.set(
    reloadSlot,
    wasmFunctionOf((): number => {
      signals.push([0, "reload"]);
      return 1;
    }),
  );

  // pg_stat_get_db_numbackends(oid), pg_stat_database's numbackends: the
  // builtin counts PGlite's one backend, 1 for this database and 0 for the
  // others; PostgreSQL's counts the backends connected to the database.
  // These are the sessions of the rows passed with the exec (an input that
  // names pg_stat_database carries them, statementtext.ts).
  if (typeof ex.get_database_name === "function") {
    wrapBuiltin(tools, F_PG_STAT_GET_DB_NUMBACKENDS, (fcinfo, builtin) => {
      if (runner === null) return builtin(fcinfo);
      const p = ex.get_database_name(argDatum(tools, fcinfo, 0));
      if (p === 0) return 0;
      const name = tools.readCString(p);
      let n = 0;
      for (const r of activity) if (r.datname === name) n++;
      return n;
    });
  }

  // Roles changed by a session's exec. pgts's own work (the copy of
  // another engine's roles, rolesSyncSql) changes them too, and is not a
  // change to pass on.
  let rolesChangedBy: number | null = null;
  let databasesChangedBy: number | null = null;
  const rolesChanged = tools.addFunction(() => {
    if (runner !== null) rolesChangedBy = runner;
  }, { params: 3, result: false });
  ex.CacheRegisterSyscacheCallback(AUTHOID, rolesChanged, 0);
  ex.CacheRegisterSyscacheCallback(AUTHMEMMEMROLE, rolesChanged, 0);
  // ALTER ROLE … SET and ALTER DATABASE … SET write pg_db_role_setting,
  // which has no syscache: seen when parsed, in a function or DO block too
  // (where the input's text scan does not look), as a change of roles.
  const roleSet = tools.view().getUint32(
    parsedStatement(tools, "ALTER ROLE pgts_probe SET work_mem = 1"),
    true,
  );
  const databaseSet = tools.view().getUint32(
    parsedStatement(tools, "ALTER DATABASE pgts_probe SET work_mem = 1"),
    true,
  );
  onUtilityStatement(tools, (stmt) => {
    if (runner === null) return;
    const tag = tools.view().getUint32(stmt, true);
    if (tag === roleSet || tag === databaseSet) rolesChangedBy = runner;
  });

  return {
    runAs(pid) {
      runner = pid;
    },
    setActivity(rows) {
      if (rows !== null) activity = rows;
    },
    setChannels(list) {
      channels = list;
    },
    setNames(list) {
      statementNames = list;
    },
    takeSignals() {
      if (rolesChangedBy !== null) {
        signals.push([rolesChangedBy, "roles"]);
        rolesChangedBy = null;
      }
      if (databasesChangedBy !== null) {
        signals.push([databasesChangedBy, "databases"]);
        databasesChangedBy = null;
      }
      if (signals.length === 0) return signals;
      const out = signals;
      signals = [];
      return out;
    },
    setAdvisoryRows(rows) {
      advisoryRows = rows;
    },
    runningPrefix() {
      return runner === null ? null : sessions.get(runner)?.statementPrefix ?? null;
    },
    databasesChanged() {
      if (runner !== null) databasesChangedBy = runner;
    },
  };
}

/** A host function of type (i32) → i32, for a builtin's slot in the function table. */
// deno-lint-ignore ban-types -- WebAssembly.Table.set takes a Function
export function wasmFunctionOf(fn: (fcinfo: number) => number): Function {
  return wasmFunction(fn, { params: 1, result: true });
}
