/**
 * Error reporting, the pgts counterpart of PostgreSQL's elog.c.
 *
 * Owns the `PgError` type that every layer throws for a condition a client or
 * operator should see (severity, SQLSTATE, message, detail, hint, position),
 * the SQLSTATE codes pgts uses, and `ereport`, which hands a server message to
 * LogTape under the "pgts" category. How a message is printed (PostgreSQL's
 * `timestamp [pid] LEVEL:  message` shape, the log collector's files) is the
 * business of whoever configures the sinks; this module never writes anywhere
 * itself and uses nothing but Web-standard APIs.
 *
 * Messages follow PostgreSQL's style: lowercase, no trailing period,
 * identifiers in double quotes.
 */

import { getConfig, getLogger, type Logger } from "@logtape/logtape";

/** Severity levels as PostgreSQL names them, mildest first. */
export type Severity =
  | "DEBUG5"
  | "DEBUG4"
  | "DEBUG3"
  | "DEBUG2"
  | "DEBUG1"
  | "LOG"
  | "INFO"
  | "NOTICE"
  | "WARNING"
  | "ERROR"
  | "FATAL"
  | "PANIC";

/** The SQLSTATE codes pgts raises, named as in PostgreSQL's errcodes.txt. */
export const ERRCODE = {
  SUCCESSFUL_COMPLETION: "00000",
  WARNING: "01000",
  CONNECTION_EXCEPTION: "08000",
  CONNECTION_DOES_NOT_EXIST: "08003",
  CONNECTION_FAILURE: "08006",
  SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION: "08001",
  PROTOCOL_VIOLATION: "08P01",
  FEATURE_NOT_SUPPORTED: "0A000",
  INVALID_PARAMETER_VALUE: "22023",
  INVALID_TRANSACTION_STATE: "25000",
  ACTIVE_SQL_TRANSACTION: "25001",
  IN_FAILED_SQL_TRANSACTION: "25P02",
  IDLE_IN_TRANSACTION_SESSION_TIMEOUT: "25P03",
  TRANSACTION_TIMEOUT: "25P04",
  DEPENDENT_OBJECTS_STILL_EXIST: "2BP01",
  INVALID_AUTHORIZATION_SPECIFICATION: "28000",
  INVALID_PASSWORD: "28P01",
  INVALID_CATALOG_NAME: "3D000",
  INVALID_SQL_STATEMENT_NAME: "26000",
  SYNTAX_ERROR: "42601",
  NAME_TOO_LONG: "42622",
  INSUFFICIENT_PRIVILEGE: "42501",
  UNDEFINED_OBJECT: "42704",
  WRONG_OBJECT_TYPE: "42809",
  DUPLICATE_DATABASE: "42P04",
  DUPLICATE_PREPARED_STATEMENT: "42P05",
  INVALID_CURSOR_NAME: "34000",
  DUPLICATE_CURSOR: "42P03",
  UNDEFINED_FUNCTION: "42883",
  INSUFFICIENT_RESOURCES: "53000",
  OUT_OF_MEMORY: "53200",
  TOO_MANY_CONNECTIONS: "53300",
  PROGRAM_LIMIT_EXCEEDED: "54000",
  OBJECT_NOT_IN_PREREQUISITE_STATE: "55000",
  OBJECT_IN_USE: "55006",
  LOCK_NOT_AVAILABLE: "55P03",
  SERIALIZATION_FAILURE: "40001",
  DEADLOCK_DETECTED: "40P01",
  CANT_CHANGE_RUNTIME_PARAM: "55P02",
  OPERATOR_INTERVENTION: "57000",
  QUERY_CANCELED: "57014",
  ADMIN_SHUTDOWN: "57P01",
  CRASH_SHUTDOWN: "57P02",
  CANNOT_CONNECT_NOW: "57P03",
  IDLE_SESSION_TIMEOUT: "57P05",
  UNDEFINED_FILE: "58P01",
  CONFIG_FILE_ERROR: "F0000",
  INTERNAL_ERROR: "XX000",
  DATA_CORRUPTED: "XX001",
} as const;

export type ErrCode = (typeof ERRCODE)[keyof typeof ERRCODE];

/** The optional fields of an error or notice, as the protocol carries them. */
export interface ErrorFields {
  detail?: string;
  hint?: string;
  /** 1-based character position in the query text. */
  position?: number;
  context?: string;
  schema?: string;
  table?: string;
  column?: string;
  dataType?: string;
  constraint?: string;
}

/**
 * A condition PostgreSQL would report with ereport(): carries everything an
 * ErrorResponse needs. Throw it for anything a client or operator should read;
 * programmer errors in the library API stay TypeError/RangeError.
 */
export class PgError extends Error {
  override readonly name = "PgError";
  readonly severity: Severity;
  readonly code: string;
  readonly fields: ErrorFields;
  /**
   * A detail for the server log only, never sent to the client; the log
   * shows it instead of `detail` (PostgreSQL's errdetail_log).
   */
  readonly detailLog: string | undefined;

  constructor(
    code: string,
    message: string,
    options: ErrorFields & { severity?: Severity; cause?: unknown; detailLog?: string } = {},
  ) {
    const { severity = "ERROR", cause, detailLog, ...fields } = options;
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.severity = severity;
    this.fields = fields;
    this.detailLog = detailLog;
  }

  get detail(): string | undefined {
    return this.fields.detail;
  }

  get hint(): string | undefined {
    return this.fields.hint;
  }
}

/** True for a PgError (also across realms, where instanceof fails). */
export function isPgError(e: unknown): e is PgError {
  return e instanceof PgError ||
    (typeof e === "object" && e !== null && (e as { name?: unknown }).name === "PgError" &&
      typeof (e as { code?: unknown }).code === "string");
}

const logtapeLevel = {
  DEBUG5: "trace",
  DEBUG4: "trace",
  DEBUG3: "trace",
  DEBUG2: "debug",
  DEBUG1: "debug",
  LOG: "info",
  INFO: "info",
  NOTICE: "info",
  WARNING: "warning",
  ERROR: "error",
  FATAL: "fatal",
  PANIC: "fatal",
} as const satisfies Record<Severity, string>;

/** Loggers by category ("" for the root "pgts" one). */
const loggers = new Map<string, Logger>();
let reportFilter: { config: object; wanted: (severity: Severity) => boolean } | null = null;

/**
 * Set by the logging set-up (log.ts) with the LogTape configuration it
 * installed: which severities reach the server log. While that
 * configuration is LogTape's current one, ereport drops the others before a
 * record is built (the DEBUG reports on every connection's path); under any
 * other configuration (a test's own sink) every report goes on.
 */
export function setReportFilter(config: object, wanted: (severity: Severity) => boolean): void {
  reportFilter = { config, wanted };
}

/**
 * Reports a server message. The record's properties carry the PostgreSQL
 * severity, SQLSTATE and fields so a sink can print them in PostgreSQL's shape.
 */
export function ereport(
  severity: Severity,
  message: string,
  fields: ErrorFields & { code?: string; category?: string; query?: string; statement?: string } =
    {},
): void {
  if (
    reportFilter !== null && !reportFilter.wanted(severity) && getConfig() === reportFilter.config
  ) {
    return;
  }
  const { category, ...rest } = fields;
  const key = category ?? "";
  let log = loggers.get(key);
  if (log === undefined) {
    log = getLogger(category === undefined ? ["pgts"] : ["pgts", category]);
    loggers.set(key, log);
  }
  log[logtapeLevel[severity]]("{message}", { ...rest, message, severity });
}
