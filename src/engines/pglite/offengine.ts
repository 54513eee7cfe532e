/**
 * Statements a session answers without the engine while another session
 * holds it. In PostgreSQL every backend runs its own statements, so
 * `SELECT pg_cancel_backend(pid)` from a second connection acts at once on a
 * first one stuck in `pg_sleep` or a long loop. Here the first one holds
 * the only backend, and the second would wait for it (and fail with 55P03)
 * instead of stopping it. What these statements read is pgts's own: its
 * session table (pids, roles, pg_stat_activity's rows), the role catalog
 * the engine keeps (acl.ts) and settings fixed for the server's life. So a
 * few exact shapes are answered here, with PostgreSQL's results, notices,
 * errors and permission rules:
 *
 * - `SELECT pg_cancel_backend(N)`, `SELECT pg_terminate_backend(N[, T])`,
 *   optionally `pg_catalog.`-qualified, with an alias, N and T literals or
 *   parameters (`$1`), with casts to int/bigint; several such calls;
 * - `SELECT <*, any of the view's columns, a signal call of pid, or
 *   (SELECT <that call>)> FROM pg_stat_activity [WHERE <column> =|<>|!=|[NOT]
 *   [I]LIKE <literal, $n, column or pg_backend_pid()> [AND …]]` (the
 *   columns a WHERE compares: text, name, integer and oid ones) —
 *   node-postgres's tests, the usual "end the other sessions" statement,
 *   and a monitor's `SELECT *`. The rows are what the engine's view
 *   (activity.ts) gives the caller: its columns, types and RowDescription
 *   (the view's oid and each column's place in it), datid as the caller's
 *   engine's pg_database shows it, PostgreSQL's visibility rules, values
 *   in text or in binary as Bind asks. Timestamps are written in text as
 *   the engine writes them for the session's DateStyle and TimeZone (its
 *   ParameterStatus values) where offengine-out.ts can be sure to: ISO
 *   with a zone of the tz database; another DateStyle or a POSIX-style
 *   zone, when a row has a timestamp to write, is the engine's. The
 *   caller's own row is active since its statement's start, which its
 *   xact_start (unless a transaction was open), query_start and
 *   state_change show (the session's clock, to the millisecond; on the
 *   engine, transaction_timestamp() and statement_timestamp());
 * - `SHOW <name>` of a parameter PostgreSQL fixes at start (context
 *   internal, such as server_version_num), which clients read first;
 * - the empty query (white space, semicolons, comments): the pings of
 *   connection pools (pgxpool's `-- ping`, HikariCP's isValid through
 *   pgjdbc's empty statement), which must not wait for a long statement;
 * - `SELECT <integer constants>` (a pool's `SELECT 1`), only once it has
 *   waited turn.ts's PING_WAIT_MS for the engine (isPing; `constants`).
 *   Under load the engine answers it, as any statement.
 *
 * Each is one simple Query; one Parse/Bind/[Describe]/Execute/Sync batch;
 * a Parse [and Describe] alone up to a Sync or a Flush (a driver's
 * prepare: postgres.js, pgx, asyncpg); or a Bind/[Describe]/Execute/Sync of
 * a named statement prepared so, which the session keeps and parses on the
 * engine before its next input that goes there (session.ts). Anything
 * else — another shape, a cast or type this file does not know, a signal
 * to the caller itself (the engine ends its own statement), a caller whose
 * identity the session's map may not show yet — returns false before
 * anything is sent or signalled, and the input waits for the engine as
 * before. The statement is never run on the engine: a
 * user function of the same name earlier in search_path, which would
 * shadow pg_catalog's only if search_path names pg_catalog after it, is
 * not seen.
 */

import { ERRCODE, PgError } from "../../core/elog.ts";
import {
  FE,
  type FieldDescription,
  MessageWriter,
  parseBind,
  parseDescribe,
  parseExecute,
  parseParse,
  parseQuery,
  writeBindComplete,
  writeCommandComplete,
  writeDataRow,
  writeEmptyQueryResponse,
  writeNoData,
  writeParameterDescription,
  writeParseComplete,
  writeRowDescription,
} from "../../core/protocol/mod.ts";
import type { AclRole, RoleGraph } from "./acl.ts";
import type { ActivityRow, BackendSignal, StatActivityView } from "./backends.ts";
import type { InputPlan } from "./naming.ts";
import type { SettingsMap } from "./settings.ts";
import {
  inetOut,
  inetSend,
  type TimestampStyle,
  timestamptzOut,
  timestamptzSend,
} from "./offengine-out.ts";
import { mayAnswerOffEngine } from "./sqlscan.ts";
import { concat, errorResponse, type Frame, noticeResponse, readyForQuery } from "./wire.ts";
import {
  BOOLOID,
  type Call,
  COLUMNS,
  type Cond,
  INETOID,
  inferParams,
  INT4OID,
  INT8OID,
  NAMEOID,
  OIDOID,
  type Operand,
  paramValue,
  parseStatement,
  type Stmt,
  TEXTOID,
  TIMESTAMPTZOID,
  type Value,
  XIDOID,
} from "./offengine-sql.ts";

/** What the answer needs from the session and its engine. */
export interface OffEngineContext {
  /** The caller's pid (pg_backend_pid()). */
  readonly pid: number;
  /** The caller's current user (SET ROLE's role, else its session user): GetUserId(). */
  readonly currentUser: string;
  readonly roles: RoleGraph;
  /** pg_stat_activity's rows of every database, as they are now. */
  activityRows(): ActivityRow[];
  /** Cancels or terminates session `pid`; resolves when a terminated one has ended. */
  signal(pid: number, kind: "cancel" | "terminate"): Promise<void>;
  /** A parameter fixed for the server's life: its name as PostgreSQL spells it, and SHOW's value. */
  fixedSetting(name: string): readonly [string, string] | undefined;
  /** pg_stat_activity's oid and the databases' in the caller's engine (null: not known). */
  readonly view: StatActivityView | null;
  /** The caller's DateStyle and TimeZone, as its client was last told them. */
  readonly timestampStyle: TimestampStyle;
}

/** What a session's context asks of its engine (session.ts's SessionEngine has it). */
export interface OffEngineEngine {
  readonly roleGraph: RoleGraph;
  activityRows(): ActivityRow[];
  signalBackends(signals: readonly BackendSignal[]): void;
  /** The session `pid` of any database of the cluster. */
  clusterSession(pid: number): { whenClosed(): Promise<void> } | undefined;
  fixedSetting(name: string): readonly [string, string] | undefined;
  readonly statActivityView: StatActivityView | null;
}

/** What a session shows of itself to be answered here. */
export interface OffEngineSession {
  readonly pid: number;
  readonly user: string;
  readonly settings: SettingsMap;
  /** Its settings map may not show what it set (settings.ts's re-read is due). */
  readonly settingsDirty: boolean;
  readonly settingsFromStartup: boolean;
  /** A GUC_REPORT parameter's value as its client was last told it (ParameterStatus). */
  reportedValue(name: string): string | undefined;
  noteUnnamed(plan: InputPlan): void;
}

/** The session user: SET SESSION AUTHORIZATION's role, else the login role (GetSessionUserId()). */
export function sessionUserOf(session: Pick<OffEngineSession, "user" | "settings">): string {
  return session.settings.get("session_authorization") || session.user;
}

/** The current user, whose privileges a statement has: SET ROLE's role, else the session user (GetUserId()). */
export function currentUserOf(session: Pick<OffEngineSession, "user" | "settings">): string {
  const role = session.settings.get("role") ?? "none";
  return role !== "none" && role !== "" ? role : sessionUserOf(session);
}

/** The context of a session: its pid, its current user as its settings map shows it, its engine. */
export function sessionContext(
  engine: OffEngineEngine,
  session: Pick<OffEngineSession, "pid" | "user" | "settings" | "reportedValue">,
): OffEngineContext {
  return {
    pid: session.pid,
    currentUser: currentUserOf(session),
    roles: engine.roleGraph,
    activityRows: () => engine.activityRows(),
    signal: (pid, kind) => {
      const target = kind === "terminate" ? engine.clusterSession(pid) : undefined;
      engine.signalBackends([[pid, kind]]);
      // The target's end, which its terminate() has begun (its connection
      // ends at the next turn, after this answer: session.ts).
      return target?.whenClosed() ?? Promise.resolve();
    },
    fixedSetting: (name) => engine.fixedSetting(name),
    view: engine.statActivityView,
    timestampStyle: {
      dateStyle: session.reportedValue("DateStyle"),
      timeZone: session.reportedValue("TimeZone"),
    },
  };
}

const ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE = "22003";

// ---- evaluation -------------------------------------------------------------------

/**
 * One row of pg_stat_activity as the caller sees it, by column (COLUMNS);
 * timestamptz values in microseconds since the Unix epoch, client_addr as
 * the connection gave it (encodeValue writes them).
 */
type ViewRow = Readonly<Record<string, number | string | null>>;

/** An ActivityRow's time (an ISO string, or null) in microseconds since the Unix epoch. */
const micros = (
  iso: string | null,
): number | null => (iso === null ? null : Date.parse(iso) * 1000);

/**
 * The rows the on-engine view (activity.ts) gives the caller: datid and
 * datname as its engine's pg_database shows them, usename as pg_authid
 * does, and PostgreSQL's visibility rules (pg_stat_get_activity): a row of
 * a role the caller has no privileges of, unless it has those of
 * pg_read_all_stats, keeps datid, pid, usesysid and application_name (and
 * the names joined to them), with `<insufficient privilege>` as its query
 * and every other column NULL.
 */
function viewRows(ctx: OffEngineContext, me: AclRole, view: StatActivityView): ViewRow[] {
  const readsAll = ctx.roles.byName("pg_read_all_stats");
  return ctx.activityRows().map((r) => {
    // The caller runs this statement: PostgreSQL shows it active, since its
    // start (the session noted it: query_start), in a transaction that
    // began then unless one was open. The engine's view takes these times
    // from transaction_timestamp() and statement_timestamp().
    if (r.pid === ctx.pid) {
      r = {
        ...r,
        state: "active",
        wait_event_type: null,
        wait_event: null,
        xact_start: r.xact_start ?? r.query_start,
        state_change: r.query_start,
      };
    }
    const sees = ctx.roles.hasPrivsOfRole(me.oid, r.usesysid) ||
      (readsAll !== undefined && ctx.roles.hasPrivsOfRole(me.oid, readsAll.oid));
    const datid = view.databaseOids.get(r.datname) ?? null;
    return {
      datid,
      datname: datid === null ? null : r.datname,
      pid: r.pid,
      leader_pid: null,
      usesysid: r.usesysid,
      usename: ctx.roles.byOid(r.usesysid)?.name ?? null,
      application_name: r.application_name,
      client_addr: sees ? r.client_addr : null,
      client_hostname: null,
      client_port: sees ? r.client_port : null,
      backend_start: sees ? micros(r.backend_start) : null,
      xact_start: sees ? micros(r.xact_start) : null,
      query_start: sees ? micros(r.query_start) : null,
      state_change: sees ? micros(r.state_change) : null,
      wait_event_type: sees ? r.wait_event_type : null,
      wait_event: sees ? r.wait_event : null,
      state: sees ? r.state : null,
      backend_xid: null,
      backend_xmin: null,
      query_id: null,
      query: sees ? r.query : "<insufficient privilege>",
      backend_type: sees ? "client backend" : null,
    };
  });
}

function likeRegExp(pattern: string, insensitive: boolean): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "\\" && i + 1 < pattern.length) re += escapeRe(pattern[++i]!);
    else if (c === "%") re += "[\\s\\S]*";
    else if (c === "_") re += "[\\s\\S]";
    else re += escapeRe(c);
  }
  return new RegExp(`^${re}$`, insensitive ? "iu" : "u");
}

function escapeRe(c: string): string {
  return /[\\^$.*+?()[\]{}|]/.test(c) ? `\\${c}` : c;
}

function evalOperand(
  o: Operand,
  row: ViewRow | null,
  params: ReadonlyMap<number, Value>,
  ctx: OffEngineContext,
): Value {
  switch (o.t) {
    case "col":
      return row?.[o.name] ?? null;
    case "int":
    case "str":
      return o.v;
    case "param":
      return params.get(o.n) ?? null;
    case "mypid":
      return ctx.pid;
  }
}

function matches(
  w: Cond,
  row: ViewRow,
  params: ReadonlyMap<number, Value>,
  ctx: OffEngineContext,
): boolean {
  const l = evalOperand(w.left, row, params, ctx);
  const r = evalOperand(w.right, row, params, ctx);
  if (l === null || r === null) return false;
  if (w.op === "=" || w.op === "<>") {
    const numeric = typeof l === "number" || typeof r === "number" || typeof l === "bigint";
    const eq = numeric ? Number(String(l).trim()) === Number(String(r).trim()) : l === r;
    return w.op === "=" ? eq : !eq;
  }
  const hit = likeRegExp(String(r), w.op.endsWith("ilike")).test(String(l));
  return w.op.startsWith("not") ? !hit : hit;
}

/** One row's outcome of a signal call: its value, and a WARNING to send before the row. */
interface Signalled {
  readonly value: boolean | null;
  readonly warning: string | null;
}

/**
 * signalfuncs.c's pg_signal_backend and its two callers: the permission
 * checks (a PgError to raise), then the signal, then for a terminate with a
 * timeout the wait for the session to end.
 */
async function signalBackend(
  ctx: OffEngineContext,
  me: AclRole,
  call: Call,
  pid: number,
  timeout: bigint,
  sessions: ReadonlyMap<number, number>,
): Promise<Signalled> {
  const cancel = call.fn === "pg_cancel_backend";
  if (timeout < 0n) {
    throw new PgError(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE, '"timeout" must not be negative');
  }
  const roleOid = sessions.get(pid);
  if (roleOid === undefined) {
    return { value: false, warning: `PID ${pid} is not a PostgreSQL backend process` };
  }
  const what = cancel
    ? "permission denied to cancel query"
    : "permission denied to terminate process";
  if (ctx.roles.byOid(roleOid)?.superuser !== false && !me.superuser) {
    throw new PgError(ERRCODE.INSUFFICIENT_PRIVILEGE, what, {
      detail: cancel
        ? "Only roles with the SUPERUSER attribute may cancel queries of roles with the SUPERUSER attribute."
        : "Only roles with the SUPERUSER attribute may terminate processes of roles with the SUPERUSER attribute.",
    });
  }
  const signaller = ctx.roles.byName("pg_signal_backend");
  if (
    !ctx.roles.hasPrivsOfRole(me.oid, roleOid) &&
    !(signaller !== undefined && ctx.roles.hasPrivsOfRole(me.oid, signaller.oid))
  ) {
    throw new PgError(ERRCODE.INSUFFICIENT_PRIVILEGE, what, {
      detail: cancel
        ? 'Only roles with privileges of the role whose query is being canceled or with privileges of the "pg_signal_backend" role may cancel this query.'
        : 'Only roles with privileges of the role whose process is being terminated or with privileges of the "pg_signal_backend" role may terminate this process.',
    });
  }
  const ended = ctx.signal(pid, cancel ? "cancel" : "terminate");
  if (cancel || timeout === 0n) return { value: true, warning: null };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const inTime = await Promise.race([
    ended.then(() => true),
    new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), Number(timeout))),
  ]);
  clearTimeout(timer);
  if (inTime) return { value: true, warning: null };
  return {
    value: false,
    warning: `backend with PID ${pid} did not terminate within ${timeout} millisecond${
      timeout === 1n ? "" : "s"
    }`,
  };
}

// ---- the protocol -------------------------------------------------------------------

interface Batch {
  readonly sql: string;
  /** Extended protocol: the messages to answer, in order; null for a simple Query. */
  readonly extended: {
    /** The statement's name when the input parses one (`""`: the unnamed), else null. */
    readonly parsed: string | null;
    /** It ends with a Sync (not a Flush): a ReadyForQuery ends the answer. */
    readonly synced: boolean;
    readonly declared: readonly number[];
    readonly describeStatement: boolean;
    /** No Bind and no Execute: the statement is only prepared (and described). */
    readonly prepareOnly: boolean;
    readonly describePortal: boolean;
    readonly paramFormats: readonly number[];
    readonly params: readonly (Uint8Array | null)[];
    readonly resultFormats: readonly number[];
    /** The Execute's row limit (0: all); only the empty query is answered with one. */
    readonly maxRows: number;
  } | null;
}

/**
 * A named statement a session prepared without the engine (its text and
 * declared parameter types), by the name the client gave it.
 */
export interface PreparedOffEngine {
  readonly sql: string;
  readonly declared: readonly number[];
}

/**
 * The input as one simple Query; one Parse/Bind/[Describe]/Execute/Sync
 * batch (the Bind of the statement parsed); one Parse [and its Describe]
 * up to a Sync or a Flush, of a named statement or the unnamed one (a
 * driver's prepare: postgres.js's describe, pgx's and asyncpg's statement
 * caches); or a Bind/[Describe]/Execute/Sync of a named statement
 * `prepared` knows (one the session prepared without the engine).
 */
function readBatch(
  input: Uint8Array,
  frames: readonly Frame[],
  prepared: (name: string) => PreparedOffEngine | undefined = () => undefined,
): Batch | null {
  const body = (f: Frame) => input.subarray(f.start + 5, f.end);
  const fs = frames.filter((f) => f.type !== FE.Flush);
  try {
    if (fs.length === 1 && fs[0]!.type === FE.Query) {
      return { sql: parseQuery(body(fs[0]!)), extended: null };
    }
    const types = fs.map((f) => f.type);
    const shape = String.fromCharCode(...types);
    // Ended by a Sync, or by a Flush (postgres.js describes so), which
    // wants the answer now too.
    if (/^P(D)?S$/.test(shape) || (/^PD?$/.test(shape) && frames.at(-1)!.type === FE.Flush)) {
      const parse = parseParse(body(fs[0]!));
      const described = fs[1]?.type === FE.Describe;
      if (described) {
        const d = parseDescribe(body(fs[1]!));
        if (d.target !== "S" || d.name !== parse.name) return null;
      }
      return {
        sql: parse.query,
        extended: {
          parsed: parse.name,
          synced: fs.at(-1)!.type === FE.Sync,
          declared: parse.paramTypes,
          describeStatement: described,
          prepareOnly: true,
          describePortal: false,
          paramFormats: [],
          params: [],
          resultFormats: [],
          maxRows: 0,
        },
      };
    }
    let statement: PreparedOffEngine | null = null;
    if (/^B(D)?ES$/.test(shape)) {
      const name = parseBind(body(fs[0]!)).statement;
      statement = name === "" ? null : prepared(name) ?? null;
      if (statement === null) return null;
    } else if (!/^P(D)?B(D)?ES$/.test(shape)) return null;
    const parse = statement === null ? parseParse(body(fs[0]!)) : null;
    let describeStatement = false;
    let describePortal = false;
    let bind: ReturnType<typeof parseBind> | null = null;
    let maxRows = 0;
    for (const f of parse === null ? fs : fs.slice(1)) {
      if (f.type === FE.Bind) {
        bind = parseBind(body(f));
        if (bind.portal !== "" || (parse !== null && bind.statement !== parse.name)) return null;
      } else if (f.type === FE.Describe) {
        const d = parseDescribe(body(f));
        if (d.name !== (d.target === "S" ? parse?.name ?? "" : "")) return null;
        if (d.target === "S" && bind === null) describeStatement = true;
        else if (d.target === "P" && bind !== null) describePortal = true;
        else return null;
      } else if (f.type === FE.Execute) {
        const e = parseExecute(body(f));
        if (e.portal !== "") return null;
        maxRows = e.maxRows;
      } else if (f.type !== FE.Sync) return null;
    }
    if (bind === null) return null;
    return {
      sql: parse?.query ?? statement!.sql,
      extended: {
        parsed: parse === null ? null : parse.name,
        synced: true,
        declared: parse?.paramTypes ?? statement!.declared,
        describeStatement,
        prepareOnly: false,
        describePortal,
        paramFormats: bind.paramFormats,
        params: bind.params,
        resultFormats: bind.resultFormats,
        maxRows,
      },
    };
  } catch {
    return null; // malformed: the engine answers it
  }
}

/** A value's text or binary form, as a DataRow carries it (null: NULL). */
type Encoded = Uint8Array | string | null;

/**
 * `v` of `type` in `format` (0 text, 1 binary); `timestamptz` writes
 * timestamps in text for the session. Undefined when this file cannot
 * write it exactly.
 */
function encodeValue(
  v: Value | boolean,
  type: number,
  format: number,
  timestamptz: ((us: number) => string | null) | null,
): Encoded | undefined {
  if (v === null) return null;
  if (type === TIMESTAMPTZOID) {
    if (typeof v !== "number") return undefined;
    return format === 1 ? timestamptzSend(v) : timestamptz?.(v) ?? undefined;
  }
  if (type === INETOID) {
    return (format === 1 ? inetSend(String(v)) : inetOut(String(v))) ?? undefined;
  }
  if (format === 1) {
    if (type === BOOLOID) return Uint8Array.of(v ? 1 : 0);
    if (type === INT4OID || type === OIDOID || type === XIDOID) {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, Number(v) >>> 0);
      return b;
    }
    if (type === INT8OID) {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigInt64(0, BigInt(v));
      return b;
    }
    return new TextEncoder().encode(String(v));
  }
  if (type === BOOLOID) return v ? "t" : "f";
  return String(v);
}

const formatOf = (formats: readonly number[], i: number): number =>
  formats.length === 0 ? 0 : formats.length === 1 ? formats[0]! : formats[i] ?? 0;

/** A cell of a result row: a value as it is sent, or a signal call still to make. */
type Cell =
  | { readonly encoded: Encoded }
  | { readonly call: Call; readonly pid: Value; readonly timeout: Value | bigint };

/** What answering takes, all worked out before anything is sent or signalled. */
interface Plan {
  readonly fields: readonly FieldDescription[];
  readonly paramTypes: readonly number[];
  readonly rows: readonly (readonly Cell[])[];
  /** EMPTY: the empty query, answered with EmptyQueryResponse (and NoData for a Describe). */
  readonly tag: "SHOW" | "SELECT" | "EMPTY";
  readonly me: AclRole;
}

/** pg_type.typlen of the types of this file's columns (-1: variable width). */
const TYPE_SIZES: ReadonlyMap<number, number> = new Map([
  [BOOLOID, 1],
  [INT4OID, 4],
  [OIDOID, 4],
  [XIDOID, 4],
  [INT8OID, 8],
  [TIMESTAMPTZOID, 8],
  [NAMEOID, 64],
]);

/** The view's columns' attribute numbers, in its order. */
const ATTNUMS = new Map(Object.keys(COLUMNS).map((c, i) => [c, i + 1]));

/**
 * The RowDescription's fields of a statement of this file's (a SELECT of
 * calls and columns): a column of the view names the view and its place in
 * it, as PostgreSQL's does for a column of a view in FROM.
 */
function fieldsOf(
  stmt: Stmt & { kind: "select" },
  view: StatActivityView | null,
): FieldDescription[] {
  return stmt.items.map((it): FieldDescription => {
    const t = it.lit !== null ? INT4OID : it.call !== null ? BOOLOID : COLUMNS[it.col!]!;
    const field: FieldDescription = {
      name: it.name,
      typeOid: t,
      typeSize: TYPE_SIZES.get(t) ?? -1,
    };
    if (it.col !== null && view !== null) {
      field.tableOid = view.oid;
      field.columnAttr = ATTNUMS.get(it.col)!;
    }
    return field;
  });
}

/**
 * The plan for `batch`, or null when the engine must answer it. Sends and
 * signals nothing. `constants`: a SELECT of integer constants alone (a
 * pool's `SELECT 1`) may be answered, else it is the engine's.
 */
function plan(batch: Batch, ctx: OffEngineContext, constants: boolean): Plan | null {
  const stmt = parseStatement(batch.sql);
  if (stmt === null) return null;
  const ext = batch.extended;
  // Result formats PostgreSQL refuses (an unknown code, a count that is
  // neither 0, 1 nor the columns'): the engine says what is wrong.
  if (ext !== null && !ext.resultFormats.every((f) => f === 0 || f === 1)) return null;
  const columns = stmt.kind === "select" ? stmt.items.length : 1;
  if (ext !== null && ext.resultFormats.length > 1 && ext.resultFormats.length !== columns) {
    return null;
  }
  const format = (i: number) => ext === null ? 0 : formatOf(ext.resultFormats, i);
  if (stmt.kind === "select" && stmt.items.some((it) => it.lit !== null)) {
    if (!constants || stmt.from || stmt.items.some((it) => it.lit === null)) return null;
  } else if (constants) return null;
  // The view's columns name it in the RowDescription.
  if (stmt.kind === "select" && stmt.from && ctx.view === null) return null;
  const me = ctx.roles.byName(ctx.currentUser);
  if (me === undefined) return null;
  if (stmt.kind === "show") {
    const fixed = ctx.fixedSetting(stmt.name);
    if (fixed === undefined) return null;
    if (ext !== null && (ext.params.length > 0 || ext.declared.length > 0)) return null;
    return {
      fields: [{ name: fixed[0], typeOid: TEXTOID }],
      paramTypes: [],
      rows: [[{ encoded: encodeValue(fixed[1], TEXTOID, format(0), null)! }]],
      tag: "SHOW",
      me,
    };
  }
  if (stmt.kind === "empty") {
    if (ext !== null && (ext.params.length > 0 || ext.declared.length > 0)) return null;
    return { fields: [], paramTypes: [], rows: [], tag: "EMPTY", me };
  }
  // A row limit (pgjdbc's setMaxRows) could leave a portal suspended: the engine's.
  if (ext !== null && ext.maxRows !== 0) return null;
  const types = inferParams(stmt);
  if (types === null) return null;
  const count = types.size === 0 ? 0 : Math.max(...types.keys());
  const paramTypes: number[] = [];
  for (let n = 1; n <= count; n++) {
    const t = types.get(n);
    if (t === undefined) return null; // $2 without $1: PostgreSQL says what is wrong
    paramTypes.push(t);
  }
  const params = new Map<number, Value>();
  if (ext === null) {
    if (count > 0) return null;
  } else {
    // The Parse's declared types (0: unspecified) are the ones PostgreSQL infers.
    if (ext.declared.length > count) return null;
    for (let i = 0; i < ext.declared.length; i++) {
      if (ext.declared[i] !== 0 && ext.declared[i] !== paramTypes[i]) return null;
    }
    // Described only: nothing is evaluated, nobody is signalled.
    if (ext.prepareOnly) {
      return { fields: fieldsOf(stmt, ctx.view), paramTypes, rows: [], tag: "SELECT", me };
    }
    if (ext.params.length !== count) return null;
    for (let i = 0; i < count; i++) {
      const v = paramValue(ext.params[i]!, paramTypes[i]!, formatOf(ext.paramFormats, i));
      if (v === undefined) return null;
      params.set(i + 1, v);
    }
  }
  const fields = fieldsOf(stmt, ctx.view);
  const source: Array<ViewRow | null> = stmt.from
    ? viewRows(ctx, me, ctx.view!).filter((r) =>
      stmt.where.every((c) => matches(c, r, params, ctx))
    )
    : [null];
  // timestamptz in text as the session's DateStyle and TimeZone write it,
  // where this file can (offengine-out.ts); made only when a row needs it.
  let timestamptz: ((us: number) => string | null) | null | undefined;
  let exact = true;
  const encoded = (v: Value, i: number): Cell => {
    const t = fields[i]!.typeOid;
    if (t === TIMESTAMPTZOID && v !== null && format(i) === 0) {
      timestamptz ??= timestamptzOut(ctx.timestampStyle);
    }
    const e = encodeValue(v, t, format(i), timestamptz ?? null);
    if (e === undefined) exact = false;
    return { encoded: e ?? null };
  };
  const rows = source.map((row) =>
    stmt.items.map((it, i): Cell => {
      if (it.lit !== null) return encoded(it.lit, i);
      if (it.call === null) return encoded(row?.[it.col!] ?? null, i);
      const pid = evalOperand(it.call.target, row, params, ctx);
      const timeout = it.call.timeout === null
        ? 0n
        : evalOperand(it.call.timeout, row, params, ctx);
      return { call: it.call, pid, timeout };
    })
  );
  // A value this file cannot write exactly (a timestamp in an unusual
  // DateStyle or TimeZone): the engine's.
  if (!exact) return null;
  // A signal to the caller itself ends its own statement: the engine's work.
  for (const r of rows) for (const c of r) if ("call" in c && c.pid === ctx.pid) return null;
  return { fields, paramTypes, rows, tag: "SELECT", me };
}

/**
 * Answers `input` without the engine when it is one of this file's
 * statements (see the header); false, with nothing sent or done, when it
 * is not, and the input goes to the engine.
 */
export async function answerWithoutEngine(
  input: Uint8Array,
  frames: readonly Frame[],
  ctx: OffEngineContext,
  out: (b: Uint8Array) => void,
  prepared?: {
    /** A named statement the session prepared without the engine. */
    lookup(name: string): PreparedOffEngine | undefined;
    /** May a named statement of this name be prepared now (none of the session's has it)? */
    mayPrepare(name: string): boolean;
    /** A named statement was prepared without the engine. */
    note(name: string, statement: PreparedOffEngine): void;
  },
  constants = false,
): Promise<boolean> {
  const batch = readBatch(input, frames, (name) => prepared?.lookup(name));
  if (batch === null || !(constants || mayAnswerOffEngine(batch.sql))) return false;
  const named = batch.extended?.parsed ?? "";
  if (named !== "" && (prepared === undefined || !prepared.mayPrepare(named))) return false;
  let p: Plan | null;
  try {
    p = plan(batch, ctx, constants);
  } catch {
    p = null; // whatever this file did not foresee is the engine's to answer
  }
  if (p === null) return false;
  const ext = batch.extended;
  const format = (i: number) => ext === null ? 0 : formatOf(ext.resultFormats, i);
  const w = new MessageWriter();
  if (ext !== null) {
    if (ext.parsed !== null) writeParseComplete(w);
    if (ext.describeStatement) {
      writeParameterDescription(w, p.paramTypes);
      if (p.tag === "EMPTY") writeNoData(w);
      else writeRowDescription(w, p.fields);
    }
    if (named !== "") prepared!.note(named, { sql: batch.sql, declared: ext.declared });
    if (ext.prepareOnly) {
      out(ext.synced ? concat([w.take(), readyForQuery("I")]) : w.take());
      return true;
    }
    writeBindComplete(w);
    if (ext.describePortal) {
      if (p.tag === "EMPTY") writeNoData(w);
      else writeRowDescription(w, p.fields.map((f, i) => ({ ...f, format: format(i) })));
    }
  } else if (p.tag !== "EMPTY") writeRowDescription(w, p.fields);
  if (p.tag === "EMPTY") {
    writeEmptyQueryResponse(w);
    out(concat([w.take(), readyForQuery("I")]));
    return true;
  }
  // In PostgreSQL's order: a row's WARNING before the row, an error after
  // the rows before it (their signals went).
  const sessions = new Map(ctx.activityRows().map((r) => [r.pid, r.usesysid]));
  const parts: Uint8Array[] = [];
  try {
    for (const r of p.rows) {
      const values: Encoded[] = [];
      for (const [i, c] of r.entries()) {
        if (!("call" in c)) values.push(c.encoded);
        else if (c.pid === null || c.timeout === null) values.push(null); // strict
        else {
          const s = await signalBackend(
            ctx,
            p.me,
            c.call,
            Number(c.pid),
            BigInt(c.timeout),
            sessions,
          );
          if (s.warning !== null) {
            parts.push(w.take());
            parts.push(noticeResponse(new PgError("01000", s.warning, { severity: "WARNING" })));
          }
          values.push(encodeValue(s.value, BOOLOID, format(i), null) ?? null);
        }
      }
      writeDataRow(w, values);
    }
    writeCommandComplete(w, p.tag === "SHOW" ? "SHOW" : `SELECT ${p.rows.length}`);
    parts.push(w.take());
  } catch (e) {
    if (!(e instanceof PgError)) throw e;
    parts.push(w.take());
    parts.push(errorResponse(e));
  }
  parts.push(readyForQuery("I"));
  for (const b of parts) if (b.length > 0) out(b);
  return true;
}

/** "select", then white space, then a digit or a minus sign: where a pool's ping begins. */
const PING_START = /^\s*select\s+[-0-9]/i;
const pingDecoder = new TextDecoder();

/**
 * The input is a pool's ping: one SELECT of integer constants (`SELECT 1`,
 * `select 1 as ok;`) and nothing else, as a simple Query or one
 * Parse/Bind/[Describe]/Execute/Sync batch. Exact: only such an input is
 * answered without the engine after a short wait (turn.ts's PING_WAIT_MS).
 */
export function isPing(plan: InputPlan): boolean {
  const { bytes, frames } = plan;
  const first = frames[0];
  if (first === undefined || (first.type !== FE.Query && first.type !== FE.Parse)) return false;
  // The text's first bytes, before anything is decoded whole.
  let at = first.start + 5;
  if (first.type === FE.Parse) at = bytes.indexOf(0, at) + 1;
  const head = pingDecoder.decode(bytes.subarray(at, Math.min(at + 24, first.end)));
  if (!PING_START.test(head) || first.end - at > 256) return false;
  const batch = readBatch(bytes, frames);
  if (batch === null || (batch.extended !== null && batch.extended.prepareOnly)) return false;
  const stmt = parseStatement(batch.sql);
  return stmt?.kind === "select" && !stmt.from && stmt.items.every((it) => it.lit !== null);
}

/**
 * A session's input (`plan`, planned by naming.ts) answered without
 * waiting for the engine, when it is one of this file's statements; false
 * when it is not (nothing was sent). Only when the session's settings map
 * shows its identity: after a SET ROLE not yet read back, the engine must
 * answer. The session's state is its own to change afterwards.
 */
export async function answerForSession<S extends OffEngineSession>(
  session: S,
  engine: OffEngineEngine & { readonly catalogsSettling: boolean; unnamedOwner: S | null },
  { input, frames, plan, out, prepared, constants = false }: {
    input: Uint8Array;
    frames: readonly Frame[];
    plan: InputPlan;
    out: (b: Uint8Array) => void;
    /** The session's named statements prepared without the engine (answerWithoutEngine). */
    prepared?: Parameters<typeof answerWithoutEngine>[4];
    /** A pool's ping may be answered (isPing). */
    constants?: boolean;
  },
): Promise<boolean> {
  // The role catalog it checks against must be what committed before:
  // after another session's GRANT, wait for the engine to read it back.
  if ((session.settingsDirty && !session.settingsFromStartup) || engine.catalogsSettling) {
    return false;
  }
  // Its own row shows it active, but the session's state stays: an input
  // that is not answered here goes on to wait, and another session's
  // cancel must find it waiting, never "active" before it is.
  if (
    !(await answerWithoutEngine(
      input,
      frames,
      sessionContext(engine, session),
      out,
      prepared,
      constants,
    ))
  ) {
    return false;
  }
  // What the Parse or Query did to the unnamed statement, as the engine
  // would have: this session's is now this text (or none after a Query),
  // which the engine does not have.
  session.noteUnnamed(plan);
  if (engine.unnamedOwner === session) engine.unnamedOwner = null;
  return true;
}
