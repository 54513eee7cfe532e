/**
 * pg_stat_activity for pgts's sessions. PGlite's view lists its one
 * process; pgts replaces the view, once per cluster (engine.ts), by one with
 * the same columns that reads `pg_catalog.pgts_stat_get_activity()`, which
 * reads the rows the engine passed with the exec (`pgts_backend_status()`,
 * backends.ts). The engine passes them only for an input whose text names
 * pg_stat_activity (naming.ts), so ordinary statements pay nothing; a query
 * that reaches the view another way (a function, a view of the view) sees
 * the rows of the last input that named it.
 *
 * pg_prepared_statements is replaced the same way: PGlite's lists every
 * session's statements under their engine names (`pgts<id>:name`); the new
 * view keeps the running session's, by the prefix that
 * `pgts_statement_prefix()` returns (backends.ts), and shows them under the
 * names the client gave, in their statements too (`prepare s1 as …`, not
 * the engine's `prepare "pgts3.…:s1" as …`: the name as quote_ident spells
 * it). A name too long to follow the prefix in the engine's 63 bytes ends
 * there in a hash (enginenames.ts); the session passes its such names with
 * an exec whose text names the view (`pgts_statement_names()`,
 * backends.ts), and the view shows what PostgreSQL keeps of them. It
 * passes too the texts of its latest PREPAREs (and DECLAREs) as it sent
 * them, with the text the engine got: where the engine's statement is that
 * text, the view shows the client's, as PostgreSQL shows the query string
 * (`PREPARE S AS …`, and the other statements of its Query). Its rows
 * come in the order of PostgreSQL's backend (prepare.c's hash table, read
 * bucket by bucket): by the bucket of hashtext(name) in a table of 32
 * buckets, grown by one for each statement past 32 (linear hashing, as
 * dynahash.c grows it; from the number the session has now, not the most
 * it ever had), then by prepare_time (the order within a bucket; one
 * Query's statements tie). The engine's own order was its hash of the
 * engine names, another for every session.
 *
 * Both read the backend's list through a SECURITY DEFINER function, and
 * the builtins that list every session's (pg_prepared_statement(),
 * pg_cursor()) are for superusers only: another role read every session's
 * statement texts there.
 *
 * cursor_to_xml and cursor_to_xmlschema, the builtins that take a
 * refcursor, are replaced by SQL functions that give the builtin's C
 * function (`pgts_cursor_to_xml`, `pgts_cursor_to_xmlschema`) the engine
 * name of the session's WITH HOLD cursor of that name, if pgts_cursors
 * lists one (`pgts_portal_name`, no SECURITY DEFINER of its own), else the
 * name as given: `cursor_to_xml('c', …)` reads the session's cursor c, as
 * in PostgreSQL.
 *
 * pg_cursors is replaced alike: a WITH HOLD cursor outlives its transaction
 * under its engine name (enginenames.ts), so PGlite's view listed
 * every session's, with the statements that declared them. The new view
 * shows the running session's under the names it gave, and the cursors
 * without HOLD, which live in the transaction of the session that holds the
 * engine, as they are.
 *
 * pg_locks is replaced too: every lock of the backend's own PGPROC is the
 * running session's (one that holds locks holds the engine, in its
 * transaction), so the view shows that session's pid (pg_backend_pid())
 * where PGlite's shows its process's (`pgts_engine_pid()`); `WHERE pid =
 * pg_backend_pid()` found none.
 *
 * The rows are the sessions of every database of the cluster, each with its
 * database's name (datid is looked up in this database's pg_database, which
 * lists them all), as PostgreSQL's view lists every backend.
 *
 * Visibility is PostgreSQL's, applied in the backend for the calling role:
 * rows of roles it has no privileges of show pid, role, database and
 * application_name, `<insufficient privilege>` as the query, and NULL in
 * every other column, backend_type too (as PostgreSQL 18's
 * pg_stat_get_activity; such a row has no state, which every row it may
 * see has).
 *
 * Each session keeps what its row shows in a `SessionActivity` (the
 * PgBackendStatus of PostgreSQL's backend_status.c): when it started, its
 * last query and when, when its transaction started. Noting a query costs
 * a bounded copy of its text, decoded only when the view is read. Those
 * times are the host's; the caller's own row takes its transaction's and
 * statement's start from the engine (transaction_timestamp(),
 * statement_timestamp()), so that its `xact_start = now()`, as in
 * PostgreSQL, where both are read from one clock.
 */

import type { SessionSsl, TransactionStatus } from "../../core/engine/types.ts";
import { FE } from "../../core/protocol/constants.ts";
import type { ActivityRow } from "./backends.ts";
import { decodeIn } from "./conversions.ts";
import { ENGINE_NAME_PATTERN } from "./enginenames.ts";
import type { Frame } from "./wire.ts";

/** The DDL that makes pg_stat_activity pgts's (idempotent; the bootstrap superuser runs it). */
export const STAT_ACTIVITY_SQL = `
CREATE OR REPLACE FUNCTION pg_catalog.pgts_backend_status() RETURNS text
  LANGUAGE internal STABLE PARALLEL RESTRICTED AS 'pg_backend_pid';
CREATE OR REPLACE FUNCTION pg_catalog.pgts_stat_get_activity(
  OUT datid oid, OUT pid integer, OUT usesysid oid, OUT application_name text,
  OUT state text, OUT query text, OUT wait_event_type text, OUT wait_event text,
  OUT xact_start timestamptz, OUT query_start timestamptz, OUT backend_start timestamptz,
  OUT state_change timestamptz, OUT client_addr inet, OUT client_hostname text,
  OUT client_port integer, OUT backend_xid xid, OUT backend_xmin xid, OUT backend_type text,
  OUT leader_pid integer, OUT query_id bigint)
RETURNS SETOF record LANGUAGE sql STABLE PARALLEL RESTRICTED AS $pgts$
  SELECT d.oid, b.pid, b.usesysid, b.application_name, b.state, b.query, b.wait_event_type,
    b.wait_event,
    CASE WHEN b.pid = pg_catalog.pg_backend_pid() AND b.xact_start IS NOT NULL
      THEN pg_catalog.transaction_timestamp() ELSE b.xact_start END,
    CASE WHEN b.pid = pg_catalog.pg_backend_pid() AND b.query_start IS NOT NULL
      THEN pg_catalog.statement_timestamp() ELSE b.query_start END,
    b.backend_start,
    CASE WHEN b.pid = pg_catalog.pg_backend_pid() AND b.state_change IS NOT NULL
      THEN GREATEST(b.state_change, pg_catalog.statement_timestamp())
      ELSE b.state_change END,
    b.client_addr,
    NULL::text, b.client_port, NULL::xid, NULL::xid,
    CASE WHEN b.state IS NOT NULL THEN 'client backend'::text END, NULL::integer, NULL::bigint
  FROM pg_catalog.json_to_recordset(pg_catalog.pgts_backend_status()::pg_catalog.json) AS b(
    pid integer, usesysid oid, application_name text, state text, query text,
    wait_event_type text, wait_event text, xact_start timestamptz, query_start timestamptz,
    backend_start timestamptz, state_change timestamptz, client_addr inet, client_port integer,
    datname name)
  LEFT JOIN pg_catalog.pg_database d ON d.datname = b.datname
$pgts$;
CREATE OR REPLACE FUNCTION pg_catalog.pgts_statement_prefix() RETURNS text
  LANGUAGE internal STABLE PARALLEL RESTRICTED AS 'pg_backend_pid';
CREATE OR REPLACE FUNCTION pg_catalog.pgts_statement_names() RETURNS text
  LANGUAGE internal STABLE PARALLEL RESTRICTED AS 'pg_backend_pid';
CREATE OR REPLACE FUNCTION pg_catalog.pgts_prepared_statements(
  OUT name text, OUT statement text, OUT prepare_time timestamptz,
  OUT parameter_types pg_catalog.regtype[], OUT result_types pg_catalog.regtype[],
  OUT from_sql boolean, OUT generic_plans bigint, OUT custom_plans bigint)
RETURNS SETOF record LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp AS $pgts$
  WITH s AS (SELECT y.client AS name,
    COALESCE(
      (SELECT n.original
        FROM pg_catalog.json_to_recordset(x.names) AS n(engine text, original text, rewritten text)
        WHERE n.engine OPERATOR(pg_catalog.=) p.name
          AND n.rewritten OPERATOR(pg_catalog.=) p.statement LIMIT 1),
      pg_catalog.replace(
        pg_catalog.replace(p.statement, pg_catalog.quote_ident(p.name),
          pg_catalog.quote_ident(y.client)),
        '"' OPERATOR(pg_catalog.||) x.prefix, '"')) AS statement,
    p.prepare_time, p.parameter_types, p.result_types, p.from_sql, p.generic_plans,
    p.custom_plans
  FROM pg_catalog.pg_prepared_statement() p
    CROSS JOIN (SELECT pg_catalog.pgts_statement_prefix() AS prefix,
      pg_catalog.pgts_statement_names()::pg_catalog.json AS names) x
    CROSS JOIN LATERAL (SELECT COALESCE(
      (SELECT n.client FROM pg_catalog.json_to_recordset(x.names) AS n(engine text, client text)
        WHERE n.engine OPERATOR(pg_catalog.=) p.name AND n.client IS NOT NULL LIMIT 1),
      pg_catalog.substr(p.name, pg_catalog.length(x.prefix) + 1)) AS client) y
  WHERE pg_catalog.starts_with(p.name, x.prefix)),
  t AS (SELECT GREATEST(31, pg_catalog.count(*) OPERATOR(pg_catalog.-) 1) AS top FROM s),
  m AS (SELECT t.top, GREATEST(31,
      (SELECT pg_catalog.max((1 OPERATOR(pg_catalog.<<) b) OPERATOR(pg_catalog.-) 1)
        FROM pg_catalog.generate_series(5, 30) b
        WHERE (1 OPERATOR(pg_catalog.<<) b) OPERATOR(pg_catalog.<=) t.top)) AS low FROM t),
  h AS (SELECT s.*, m.top, m.low,
      pg_catalog.hashtext(s.name COLLATE "C")::pg_catalog.int8 AS hash FROM s, m)
  SELECT h.name, h.statement, h.prepare_time, h.parameter_types, h.result_types, h.from_sql,
    h.generic_plans, h.custom_plans
  FROM h
  ORDER BY CASE
      WHEN (h.hash OPERATOR(pg_catalog.&) (2 OPERATOR(pg_catalog.*) h.low OPERATOR(pg_catalog.+) 1))
        OPERATOR(pg_catalog.>) h.top
      THEN h.hash OPERATOR(pg_catalog.&) h.low
      ELSE h.hash OPERATOR(pg_catalog.&) (2 OPERATOR(pg_catalog.*) h.low OPERATOR(pg_catalog.+) 1)
    END, h.prepare_time
$pgts$;
CREATE OR REPLACE VIEW pg_catalog.pg_prepared_statements AS
  SELECT * FROM pg_catalog.pgts_prepared_statements();
CREATE OR REPLACE FUNCTION pg_catalog.pgts_cursors(
  OUT name text, OUT statement text, OUT is_holdable boolean, OUT is_binary boolean,
  OUT is_scrollable boolean, OUT creation_time timestamptz)
RETURNS SETOF record LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp AS $pgts$
  SELECT y.client,
    COALESCE(
      (SELECT n.original
        FROM pg_catalog.json_to_recordset(x.names) AS n(engine text, original text, rewritten text)
        WHERE n.engine OPERATOR(pg_catalog.=) c.name
          AND n.rewritten OPERATOR(pg_catalog.=) c.statement LIMIT 1),
      pg_catalog.replace(
        CASE WHEN pg_catalog.starts_with(c.name, x.prefix)
          THEN pg_catalog.replace(c.statement, pg_catalog.quote_ident(c.name),
            pg_catalog.quote_ident(y.client))
          ELSE c.statement END,
        '"' OPERATOR(pg_catalog.||) x.prefix, '"')),
    c.is_holdable, c.is_binary, c.is_scrollable, c.creation_time
  FROM pg_catalog.pg_cursor() c
    CROSS JOIN (SELECT pg_catalog.pgts_statement_prefix() AS prefix,
      pg_catalog.pgts_statement_names()::pg_catalog.json AS names) x
    CROSS JOIN LATERAL (SELECT CASE WHEN pg_catalog.starts_with(c.name, x.prefix)
      THEN COALESCE(
        (SELECT n.client FROM pg_catalog.json_to_recordset(x.names) AS n(engine text, client text)
          WHERE n.engine OPERATOR(pg_catalog.=) c.name AND n.client IS NOT NULL LIMIT 1),
        pg_catalog.substr(c.name, pg_catalog.length(x.prefix) + 1))
      ELSE c.name END AS client) y
  WHERE pg_catalog.starts_with(c.name, x.prefix)
    OR NOT (c.is_holdable AND c.name OPERATOR(pg_catalog.~) '${ENGINE_NAME_PATTERN}')
$pgts$;
CREATE OR REPLACE VIEW pg_catalog.pg_cursors AS SELECT * FROM pg_catalog.pgts_cursors();
CREATE OR REPLACE FUNCTION pg_catalog.pgts_portal_name(name pg_catalog.refcursor)
RETURNS pg_catalog.refcursor LANGUAGE sql VOLATILE STRICT AS $pgts$
  SELECT CASE WHEN EXISTS (SELECT FROM pg_catalog.pgts_cursors() c
      WHERE c.is_holdable AND c.name OPERATOR(pg_catalog.=) $1::pg_catalog.text)
    THEN (pg_catalog.pgts_statement_prefix() OPERATOR(pg_catalog.||) $1::pg_catalog.text)
      ::pg_catalog.refcursor
    ELSE $1 END
$pgts$;
CREATE OR REPLACE FUNCTION pg_catalog.pgts_cursor_to_xml(cursor pg_catalog.refcursor,
  count integer, nulls boolean, tableforest boolean, targetns text)
RETURNS pg_catalog.xml LANGUAGE internal VOLATILE STRICT AS 'cursor_to_xml';
CREATE OR REPLACE FUNCTION pg_catalog.cursor_to_xml(cursor pg_catalog.refcursor,
  count integer, nulls boolean, tableforest boolean, targetns text)
RETURNS pg_catalog.xml LANGUAGE sql VOLATILE STRICT AS $pgts$
  SELECT pg_catalog.pgts_cursor_to_xml(pg_catalog.pgts_portal_name(cursor), count, nulls,
    tableforest, targetns)
$pgts$;
CREATE OR REPLACE FUNCTION pg_catalog.pgts_cursor_to_xmlschema(cursor pg_catalog.refcursor,
  nulls boolean, tableforest boolean, targetns text)
RETURNS pg_catalog.xml LANGUAGE internal VOLATILE STRICT AS 'cursor_to_xmlschema';
CREATE OR REPLACE FUNCTION pg_catalog.cursor_to_xmlschema(cursor pg_catalog.refcursor,
  nulls boolean, tableforest boolean, targetns text)
RETURNS pg_catalog.xml LANGUAGE sql VOLATILE STRICT AS $pgts$
  SELECT pg_catalog.pgts_cursor_to_xmlschema(pg_catalog.pgts_portal_name(cursor), nulls,
    tableforest, targetns)
$pgts$;
REVOKE EXECUTE ON FUNCTION pg_catalog.pg_prepared_statement() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pg_catalog.pg_cursor() FROM PUBLIC;
CREATE OR REPLACE FUNCTION pg_catalog.pgts_engine_pid() RETURNS integer
  LANGUAGE internal STABLE PARALLEL RESTRICTED AS 'pg_backend_pid';
CREATE OR REPLACE FUNCTION pg_catalog.pgts_advisory_locks() RETURNS text
  LANGUAGE internal STABLE PARALLEL RESTRICTED AS 'pg_backend_pid';
CREATE OR REPLACE VIEW pg_catalog.pg_locks AS
  SELECT l.locktype, l.database, l.relation, l.page, l.tuple, l.virtualxid, l.transactionid,
    l.classid, l.objid, l.objsubid, l.virtualtransaction,
    CASE WHEN l.pid = pg_catalog.pgts_engine_pid() THEN pg_catalog.pg_backend_pid()
      ELSE l.pid END AS pid,
    l.mode, l.granted, l.fastpath, l.waitstart
  FROM pg_catalog.pg_lock_status() l(locktype, database, relation, page, tuple, virtualxid,
    transactionid, classid, objid, objsubid, virtualtransaction, pid, mode, granted, fastpath,
    waitstart)
  UNION ALL
  SELECT 'advisory'::text, d.oid, NULL::oid, NULL::integer, NULL::smallint, NULL::text,
    NULL::xid, a.classid, a.objid, a.objsubid, NULL::text, a.pid, a.mode, a.granted, false,
    NULL::timestamptz
  FROM pg_catalog.json_to_recordset(pg_catalog.pgts_advisory_locks()::pg_catalog.json)
      AS a(classid oid, objid oid, objsubid smallint, pid integer, mode text, granted boolean),
    pg_catalog.pg_database d
  WHERE d.datname = pg_catalog.current_database();
CREATE OR REPLACE VIEW pg_catalog.pg_stat_ssl AS
  SELECT b.pid, b.ssl, b.sslversion AS version, b.sslcipher AS cipher, b.sslbits AS bits,
    b.ssl_client_dn AS client_dn, NULL::numeric AS client_serial, NULL::text AS issuer_dn
  FROM pg_catalog.json_to_recordset(pg_catalog.pgts_backend_status()::pg_catalog.json) AS b(
    pid integer, ssl boolean, sslversion text, sslcipher text, sslbits integer,
    ssl_client_dn text);
CREATE OR REPLACE VIEW pg_catalog.pg_stat_gssapi AS
  SELECT b.pid, false AS gss_authenticated, NULL::text AS principal, false AS encrypted,
    false AS credentials_delegated
  FROM pg_catalog.json_to_recordset(pg_catalog.pgts_backend_status()::pg_catalog.json)
    AS b(pid integer);
CREATE OR REPLACE VIEW pg_catalog.pg_stat_activity AS
  SELECT s.datid, d.datname, s.pid, s.leader_pid, s.usesysid, u.rolname AS usename,
    s.application_name, s.client_addr, s.client_hostname, s.client_port, s.backend_start,
    s.xact_start, s.query_start, s.state_change, s.wait_event_type, s.wait_event, s.state,
    s.backend_xid, s.backend_xmin, s.query_id, s.query, s.backend_type
  FROM pg_catalog.pgts_stat_get_activity() s
    LEFT JOIN pg_catalog.pg_database d ON s.datid = d.oid
    LEFT JOIN pg_catalog.pg_authid u ON s.usesysid = u.oid;
`;

/**
 * True when the cluster's pg_stat_activity and pg_prepared_statements are
 * already pgts's, with rows of every database (b.datname), since pgts
 * served several (the query's one value).
 */
export const STAT_ACTIVITY_INSTALLED_SQL =
  "select pg_catalog.pg_get_viewdef('pg_catalog.pg_stat_activity'::pg_catalog.regclass)" +
  " like '%pgts_stat_get_activity%'" +
  " and pg_catalog.pg_get_viewdef('pg_catalog.pg_prepared_statements'::pg_catalog.regclass)" +
  " like '%pgts_prepared_statements%'" +
  " and pg_catalog.pg_get_functiondef(" +
  "pg_catalog.to_regproc('pg_catalog.pgts_prepared_statements')::pg_catalog.oid)" +
  " like '%quote_ident%'" +
  " and pg_catalog.pg_get_functiondef(" +
  "pg_catalog.to_regproc('pg_catalog.pgts_cursors')::pg_catalog.oid) like '%quote_ident%'" +
  " and pg_catalog.pg_get_functiondef(" +
  "pg_catalog.to_regproc('pg_catalog.pgts_prepared_statements')::pg_catalog.oid)" +
  " like '%n.client IS NOT NULL%'" +
  " and pg_catalog.pg_get_functiondef(" +
  "pg_catalog.to_regproc('pg_catalog.pgts_prepared_statements')::pg_catalog.oid)" +
  " like '%hashtext%'" +
  " and pg_catalog.pg_get_functiondef('pg_catalog.cursor_to_xml(pg_catalog.refcursor," +
  " integer, boolean, boolean, text)'::pg_catalog.regprocedure) like '%pgts_portal_name%'" +
  " and pg_catalog.pg_get_functiondef('pg_catalog.cursor_to_xmlschema(pg_catalog.refcursor," +
  " boolean, boolean, text)'::pg_catalog.regprocedure) like '%pgts_portal_name%'" +
  " and pg_catalog.pg_get_functiondef(" +
  "pg_catalog.to_regproc('pg_catalog.pgts_cursors')::pg_catalog.oid)" +
  " like '%n.client IS NOT NULL%'" +
  " and pg_catalog.pg_get_viewdef('pg_catalog.pg_cursors'::pg_catalog.regclass)" +
  " like '%pgts_cursors%'" +
  " and pg_catalog.pg_get_functiondef(" +
  "pg_catalog.to_regproc('pg_catalog.pgts_cursors')::pg_catalog.oid)" +
  ` like '%${ENGINE_NAME_PATTERN.replaceAll("\\", "\\\\")}%'` +
  " and pg_catalog.pg_get_viewdef('pg_catalog.pg_stat_ssl'::pg_catalog.regclass)" +
  " like '%pgts_backend_status%'" +
  " and pg_catalog.pg_get_viewdef('pg_catalog.pg_locks'::pg_catalog.regclass)" +
  " like '%pgts_advisory_locks%'" +
  " and pg_catalog.pg_get_functiondef(" +
  "pg_catalog.to_regproc('pg_catalog.pgts_stat_get_activity')::pg_catalog.oid)" +
  " like '%b.datname%'" +
  " and pg_catalog.pg_get_functiondef(" +
  "pg_catalog.to_regproc('pg_catalog.pgts_stat_get_activity')::pg_catalog.oid)" +
  " like '%transaction_timestamp%'" +
  " and pg_catalog.pg_get_functiondef(" +
  "pg_catalog.to_regproc('pg_catalog.pgts_stat_get_activity')::pg_catalog.oid)" +
  " like '%b.state IS NOT NULL%'";

/** pg_stat_activity's query text is cut as PostgreSQL's track_activity_query_size (1024) cuts it. */
const QUERY_TEXT_MAX = 1024;

/** Who a row is about and what the session is doing now. */
export interface ActivityRowOf {
  readonly pid: number;
  readonly datname: string;
  readonly usesysid: number;
  readonly applicationName: string;
  /** The session's state: between inputs, waiting for the engine, running on it. */
  readonly state: "idle" | "waiting" | "active" | "closed";
  readonly status: TransactionStatus;
}

/** One session's times and last query, as pg_stat_activity shows them (ms since the epoch). */
export class SessionActivity {
  readonly #client: { readonly address: string; readonly port: number } | null;
  readonly #ssl: SessionSsl | null;
  readonly #backendStart = Date.now();
  #queryStart = 0;
  #stateChange = Date.now();
  #xactStart = 0;
  /** The last input's first Query or Parse message (a bounded copy). */
  #lastQuery: Uint8Array | null = null;
  /** The client_encoding it came in (undefined: UTF8). */
  #encoding: string | undefined;

  constructor(
    client: { readonly address: string; readonly port: number } | null,
    ssl: SessionSsl | null,
  ) {
    this.#client = client;
    this.#ssl = ssl;
  }

  /**
   * Keeps (a bounded copy of) the input's first Query or Parse, and when it
   * started; `encoding` is the session's client_encoding.
   */
  noteQuery(
    input: Uint8Array,
    frames: readonly Frame[],
    status: TransactionStatus,
    encoding?: string,
  ): void {
    const f = frames.find((x) => x.type === FE.Query || x.type === FE.Parse);
    if (f === undefined) return;
    this.#encoding = encoding;
    this.#queryStart = this.#stateChange = Date.now();
    if (status === "I") this.#xactStart = 0;
    const body = input.subarray(f.start + 5, Math.min(f.end, f.start + 5 + QUERY_TEXT_MAX));
    if (f.type === FE.Parse) {
      // The statement name, then the text.
      const nul = body.indexOf(0);
      this.#lastQuery = body.slice(nul + 1);
    } else this.#lastQuery = body.slice();
  }

  /** The last query's text (bounded), as pg_stat_activity shows it. */
  lastQuery(): string {
    return queryText(this.#lastQuery, this.#encoding);
  }

  /** The session's state changed without a new query (an input answered, one run). */
  noteStateChange(): void {
    this.#stateChange = Date.now();
  }

  /** The input in hand opened a transaction: it started with the input. */
  noteTransactionStart(): void {
    this.#xactStart = this.#queryStart;
  }

  /** The session's row (before visibility rules). */
  row(of: ActivityRowOf): ActivityRow {
    const iso = (ms: number) => (ms === 0 ? null : new Date(ms).toISOString());
    let state: string;
    let wait: [string, string] | null = null;
    if (of.state === "active") state = "active";
    else if (of.state === "waiting") {
      state = "active";
      wait = ["Extension", "PgtsEngine"];
    } else {
      state = of.status === "T"
        ? "idle in transaction"
        : of.status === "E"
        ? "idle in transaction (aborted)"
        : "idle";
      wait = ["Client", "ClientRead"];
    }
    const inXact = state !== "idle";
    return {
      pid: of.pid,
      datname: of.datname,
      usesysid: of.usesysid,
      application_name: of.applicationName,
      state,
      query: queryText(this.#lastQuery, this.#encoding),
      wait_event_type: wait?.[0] ?? null,
      wait_event: wait?.[1] ?? null,
      xact_start: inXact ? iso(this.#xactStart || this.#queryStart) : null,
      query_start: iso(this.#queryStart),
      backend_start: new Date(this.#backendStart).toISOString(),
      state_change: iso(this.#stateChange),
      client_addr: this.#client?.address ?? null,
      client_port: this.#client?.port ?? null,
      ssl: this.#ssl !== null,
      sslversion: this.#ssl?.version ?? null,
      sslcipher: this.#ssl?.cipher ?? null,
      sslbits: this.#ssl?.bits ?? null,
      ssl_client_dn: this.#ssl?.clientDn ?? null,
    };
  }
}

/** The text of a kept Query or Parse body (up to its NUL). */
function queryText(body: Uint8Array | null, encoding: string | undefined): string {
  if (body === null) return "";
  const nul = body.indexOf(0);
  return decodeIn(encoding, nul < 0 ? body : body.subarray(0, nul));
}
