/**
 * What a session's client is told of errors and warnings goes to the server
 * log too, as a PostgreSQL backend's ereport writes it there: the message
 * with its position, DETAIL, HINT, QUERY and CONTEXT, and the statement that
 * caused it (STATEMENT) when log_min_error_statement takes its severity.
 * log_min_messages decides which are written (core/log.ts): WARNING and
 * above by default, so a NOTICE is not. PGlite's backend writes no server
 * log of its own, so the session logs the reports it passes to its client.
 * A FATAL or PANIC is not logged here: pgts ends the session or the engine
 * itself then, and logs that.
 */

import { ereport, type Severity } from "../../core/elog.ts";
import { currentLogPrefix, isLogLevelOutput, logAs, LogLinePrefix } from "../../core/log.ts";
import { parseErrorResponse } from "../../core/protocol/backend-reader.ts";
import { FE } from "../../core/protocol/constants.ts";
import { type Frame, readCString } from "./wire.ts";

const LOGGED: ReadonlyMap<string, Severity> = new Map([
  ["ERROR", "ERROR"],
  ["WARNING", "WARNING"],
  ["NOTICE", "NOTICE"],
  ["INFO", "INFO"],
  ["LOG", "LOG"],
  ["DEBUG", "DEBUG1"],
]);

/** The facts of a session its log lines are prefixed with. */
export interface SessionLogFacts {
  readonly pid: number;
  readonly user: string;
  readonly database: string;
  readonly applicationName: string;
  readonly client: { readonly address: string; readonly port: number } | null;
}

/** One session's reports in the server log, written as its backend's lines. */
export class SessionServerLog {
  readonly #facts: () => SessionLogFacts;
  /** The prefix of its lines where its backend is a process of its own. */
  #prefix: LogLinePrefix | null = null;

  constructor(facts: () => SessionLogFacts) {
    this.#facts = facts;
  }

  /**
   * Logs `msg` as the session's backend (`as`), with the statement when
   * its severity is `minErrorStatement` (log_min_error_statement) or more.
   */
  report(
    msg: Uint8Array,
    statement: () => string,
    minErrorStatement: string,
    verbosity?: string,
  ): void {
    this.as(() => logReport(msg, statement, minErrorStatement, verbosity));
  }

  /** The session's settings changed: its next lines' prefix takes them (%a). */
  followSettings(): void {
    this.as(() => {});
  }

  /**
   * Runs `fn` with its log lines written as the session's backend's: in
   * the backend's own log context where it runs in this process, else
   * (a backend process of its own, whose engine runs here) with a prefix
   * of its pid, user and database.
   */
  as<R>(fn: () => R): R {
    const facts = this.#facts();
    const own = currentLogPrefix();
    if (own?.pid === facts.pid) {
      followApplicationName(own, facts.applicationName);
      return fn();
    }
    if (this.#prefix === null) {
      this.#prefix = new LogLinePrefix({
        pid: facts.pid,
        backendType: "client backend",
        startTime: Date.now(),
      });
      this.#prefix.setSession({
        user: facts.user,
        database: facts.database,
        applicationName: facts.applicationName,
        remoteHost: facts.client?.address ?? "[local]",
        remotePort: facts.client === null ? "" : String(facts.client.port),
      });
    }
    followApplicationName(this.#prefix, facts.applicationName);
    return logAs(this.#prefix, fn);
  }
}

/** %a is the session's application_name now, as PostgreSQL's (a SET changes it). */
function followApplicationName(prefix: LogLinePrefix, name: string): void {
  if (prefix.session.applicationName !== name) prefix.setSession({ applicationName: name });
}

/**
 * Logs one ErrorResponse or NoticeResponse the session passed on;
 * `statement` is asked only when its severity is `minErrorStatement`
 * (log_min_error_statement, PostgreSQL's level names) or more.
 */
export function logReport(
  msg: Uint8Array,
  statement: () => string,
  minErrorStatement: string,
  verbosity?: string,
): void {
  const f = parseErrorResponse(msg.subarray(5));
  const severity = LOGGED.get(f.severityV ?? f.severity);
  if (severity === undefined) return;
  const text = isLogLevelOutput(severity, minErrorStatement) ? statement() : "";
  // The cursor position, else the internal query's, as elog.c's server log line has it.
  const at = f.position ?? f.internalPosition;
  ereport(severity, f.message + (at ? ` at character ${at}` : ""), {
    code: f.code,
    ...(f.detail !== undefined ? { detail: f.detail } : {}),
    ...(f.hint !== undefined ? { hint: f.hint } : {}),
    ...(f.internalQuery !== undefined ? { query: f.internalQuery } : {}),
    ...(f.context !== undefined ? { context: f.context } : {}),
    ...(text !== "" ? { statement: text } : {}),
    // elog.c's LOCATION: "routine, file:line", or "file:line".
    ...(f.file !== undefined
      ? {
        location: `${f.routine !== undefined ? `${f.routine}, ` : ""}${f.file}:${f.line ?? 0}`,
      }
      : {}),
    ...(verbosity !== undefined ? { verbosity } : {}),
  });
}

/** The text of an input's first Query or Parse (the statement an error is logged with), or "". */
export function inputStatement(input: Uint8Array, frames: readonly Frame[]): string {
  const f = frames.find((x) => x.type === FE.Query || x.type === FE.Parse);
  if (f === undefined) return "";
  let at = f.start + 5;
  // A Parse: the statement's name, then its text.
  if (f.type === FE.Parse) at = readCString(input, at)[1];
  return readCString(input, at)[0];
}
