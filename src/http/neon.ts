/**
 * Neon's SQL-over-HTTP protocol, as `@neondatabase/serverless` speaks it:
 * reading a request (`POST /sql`, the `Neon-Connection-String` header with
 * user, password and database, `{query, params}` or `{queries: [...]}` for a
 * transaction, and the `Neon-Raw-Text-Output`, `Neon-Array-Mode`,
 * `Neon-Batch-Isolation-Level`, `Neon-Batch-Read-Only` and
 * `Neon-Batch-Deferrable` headers) and writing its answer (`fields`, `rows`,
 * `rowCount`, `command`, `rowAsArray`; `{results: [...]}` for a batch).
 *
 * Errors: the driver reads a JSON error body (message, code, position...)
 * only from an HTTP 400, so every SQL and authentication error is a 400, as
 * on Neon. Conditions of the server rather than the request (too many
 * clients, shutting down, starting up) are 503 with the SQLSTATE in the
 * body; the driver shows them as "Server error (HTTP status 503): ...".
 *
 * Pure request/response shaping: nothing here runs SQL or knows the server.
 */

import { ERRCODE, isPgError, PgError } from "../core/elog.ts";
import type { NoticeFields } from "../core/protocol/mod.ts";
import type { QueryOutcome, QueryText } from "./extended.ts";
import { paramToText, textToJson } from "./pgjson.ts";

/** Who the request connects as, from the Neon-Connection-String header. */
export interface ConnectionTarget {
  readonly user: string;
  readonly password: string | null;
  readonly database: string;
  /** Query parameters of the connection string (application_name, options...). */
  readonly params: Readonly<Record<string, string>>;
}

export interface SqlQuery extends QueryText {
  /** The query's own arrayMode, over the Neon-Array-Mode header. */
  readonly arrayMode?: boolean;
}

/** A parsed SQL-over-HTTP request. */
export interface SqlRequest {
  readonly target: ConnectionTarget;
  readonly rawTextOutput: boolean;
  readonly arrayMode: boolean;
  /** Null for a single query; the transaction's BEGIN for a batch. */
  readonly begin: string | null;
  readonly queries: readonly SqlQuery[];
  /** Response headers a batch echoes (Neon echoes the transaction settings). */
  readonly echo: Readonly<Record<string, string>>;
}

/** An answer that is not a result: an HTTP status and the JSON body the driver reads. */
export class HttpError extends Error {
  override readonly name = "HttpError";
  readonly status: number;
  readonly body: Record<string, unknown>;

  constructor(status: number, body: { message: string; code?: string } & Record<string, unknown>) {
    super(body.message);
    this.status = status;
    this.body = body;
  }
}

/** A malformed request: 400 with SQLSTATE 08P01, the code PostgreSQL gives a malformed message. */
export function badRequest(message: string): HttpError {
  return new HttpError(400, { message, code: ERRCODE.PROTOCOL_VIOLATION });
}

const ISOLATION_LEVELS: Readonly<Record<string, string>> = {
  Serializable: "SERIALIZABLE",
  RepeatableRead: "REPEATABLE READ",
  ReadCommitted: "READ COMMITTED",
  ReadUncommitted: "READ UNCOMMITTED",
};

/** Parses `postgres://user:password@host/database?params`; 400 when it is not one. */
export function parseConnectionString(text: string | null): ConnectionTarget {
  if (text === null || text === "") {
    throw badRequest('missing "Neon-Connection-String" header');
  }
  let url: URL;
  try {
    // URL does not parse the authority of unknown schemes everywhere: read it as http.
    const colon = text.indexOf(":");
    const scheme = text.slice(0, colon);
    if (scheme !== "postgres" && scheme !== "postgresql") throw new TypeError("scheme");
    url = new URL(`http:${text.slice(colon + 1)}`);
  } catch {
    throw badRequest('invalid "Neon-Connection-String" header: not a postgres:// URL');
  }
  const user = decodeURIComponent(url.username);
  const database = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (user === "" || database === "") {
    throw badRequest('invalid "Neon-Connection-String" header: user and database are required');
  }
  const params: Record<string, string> = {};
  for (const [k, v] of url.searchParams) params[k] = v;
  return {
    user,
    password: url.password === "" ? null : decodeURIComponent(url.password),
    database,
    params,
  };
}

const isTrue = (v: string | null) => v === "true";

function parseQuery(value: unknown, where: string): SqlQuery {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw badRequest(`${where} must be an object with a "query" string`);
  }
  const { query, params, arrayMode } = value as Record<string, unknown>;
  if (typeof query !== "string") throw badRequest(`${where} needs a "query" string`);
  if (params !== undefined && params !== null && !Array.isArray(params)) {
    throw badRequest(`"params" of ${where} must be an array`);
  }
  if (arrayMode !== undefined && typeof arrayMode !== "boolean") {
    throw badRequest(`"arrayMode" of ${where} must be a boolean`);
  }
  return {
    query,
    params: (params ?? []).map(paramToText),
    ...(arrayMode === undefined ? {} : { arrayMode }),
  };
}

/** Reads a request's headers and its (already size-checked) body. */
export function parseSqlRequest(headers: Headers, body: string): SqlRequest {
  const target = parseConnectionString(headers.get("Neon-Connection-String"));
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (e) {
    throw badRequest(`request body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw badRequest('request body must be a JSON object with "query" or "queries"');
  }
  const rawTextOutput = isTrue(headers.get("Neon-Raw-Text-Output"));
  const arrayMode = isTrue(headers.get("Neon-Array-Mode"));
  const queries = (json as { queries?: unknown }).queries;
  if (queries === undefined) {
    return {
      target,
      rawTextOutput,
      arrayMode,
      begin: null,
      queries: [parseQuery(json, "the request body")],
      echo: {},
    };
  }
  if (!Array.isArray(queries)) throw badRequest('"queries" must be an array');
  const echo: Record<string, string> = {};
  let begin = "BEGIN";
  const level = headers.get("Neon-Batch-Isolation-Level");
  if (level !== null) {
    const sql = ISOLATION_LEVELS[level];
    if (sql === undefined) {
      throw new HttpError(400, {
        message: `invalid isolation level "${level}"`,
        code: ERRCODE.INVALID_PARAMETER_VALUE,
        hint: `Use one of ${Object.keys(ISOLATION_LEVELS).join(", ")}.`,
      });
    }
    begin += ` ISOLATION LEVEL ${sql}`;
    echo["Neon-Batch-Isolation-Level"] = level;
  }
  if (isTrue(headers.get("Neon-Batch-Read-Only"))) {
    begin += " READ ONLY";
    echo["Neon-Batch-Read-Only"] = "true";
  }
  if (isTrue(headers.get("Neon-Batch-Deferrable"))) {
    begin += " DEFERRABLE";
    echo["Neon-Batch-Deferrable"] = "true";
  }
  return {
    target,
    rawTextOutput,
    arrayMode,
    begin,
    queries: queries.map((q, i) => parseQuery(q, `queries[${i}]`)),
    echo,
  };
}

/** Splits a command tag the way Neon does: "INSERT 0 3" → INSERT, 3; "CREATE TABLE" → CREATE, null. */
export function parseCommandTag(tag: string): { command: string; rowCount: number | null } {
  const space = tag.indexOf(" ");
  if (space < 0) return { command: tag, rowCount: null };
  const command = tag.slice(0, space);
  let rest = tag.slice(space + 1);
  if (command === "INSERT") {
    const second = rest.indexOf(" ");
    if (second < 0) return { command, rowCount: null };
    rest = rest.slice(second + 1);
  }
  return { command, rowCount: /^-?\d+$/.test(rest) ? Number(rest) : null };
}

/** One query's result object, as Neon's proxy writes it. */
export function resultJson(
  outcome: QueryOutcome,
  options: { arrayMode: boolean; rawTextOutput: boolean },
): Record<string, unknown> {
  const { fields } = outcome;
  const convert = (v: string | null, i: number) =>
    v === null || options.rawTextOutput ? v : textToJson(v, fields[i]!.typeOid);
  let rows: unknown[];
  try {
    rows = options.arrayMode ? outcome.rows.map((r) => r.map(convert)) : outcome.rows.map((r) => {
      const o: Record<string, unknown> = {};
      r.forEach((v, i) => (o[fields[i]!.name] = convert(v, i)));
      return o;
    });
  } catch (e) {
    throw new HttpError(500, {
      message: `could not convert a result value to JSON: ${(e as Error).message}`,
      code: ERRCODE.INTERNAL_ERROR,
    });
  }
  const { command, rowCount } = parseCommandTag(outcome.tag);
  return {
    rowAsArray: options.arrayMode,
    fields: fields.map((f) => ({
      name: f.name,
      dataTypeID: f.typeOid,
      tableID: f.tableOid,
      columnID: f.columnAttr,
      dataTypeSize: f.typeSize,
      dataTypeModifier: f.typeModifier,
      format: "text",
    })),
    rows,
    command,
    rowCount,
  };
}

/** The SQLSTATEs that are the server's condition, not the request's: 503. */
function statusFor(code: string): number {
  if (code === ERRCODE.TOO_MANY_CONNECTIONS) return 503;
  if (code === ERRCODE.CANNOT_CONNECT_NOW) return 503;
  if (code === ERRCODE.ADMIN_SHUTDOWN || code === ERRCODE.CRASH_SHUTDOWN) return 503;
  return 400;
}

/** An engine's ErrorResponse as Neon's error body, with every field the driver copies. */
export function engineError(f: NoticeFields): HttpError {
  return new HttpError(statusFor(f.code), {
    message: f.message,
    code: f.code,
    detail: f.detail ?? null,
    hint: f.hint ?? null,
    position: f.position === undefined ? null : String(f.position),
    internalPosition: f.internalPosition === undefined ? null : String(f.internalPosition),
    internalQuery: f.internalQuery ?? null,
    severity: f.severityV ?? f.severity,
    where: f.context ?? null,
    table: f.table ?? null,
    column: f.column ?? null,
    schema: f.schema ?? null,
    dataType: f.dataType ?? null,
    constraint: f.constraint ?? null,
    file: f.file ?? null,
    line: f.line === undefined ? null : String(f.line),
    routine: f.routine ?? null,
  });
}

/** Any failure of a run as an HttpError: PgErrors keep their SQLSTATE, the rest are 500. */
export function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (isPgError(e)) {
    const pe = e as PgError;
    return engineError({
      severity: pe.severity,
      code: pe.code,
      message: pe.message,
      ...pe.fields,
    });
  }
  return new HttpError(500, {
    message: `internal error: ${e instanceof Error ? e.message : String(e)}`,
    code: ERRCODE.INTERNAL_ERROR,
  });
}
