/**
 * Server log output, the printing half of elog.c: turns the records that
 * `ereport` (and any LogTape logger under the "pgts" category) produces into
 * PostgreSQL-shaped lines, `log_line_prefix` + `LEVEL:  message`, then
 * DETAIL:, HINT:, CONTEXT:, STATEMENT: lines with the same prefix, filtered by
 * `log_min_messages` with PostgreSQL's ordering (LOG ranks between ERROR and
 * FATAL for the server log).
 *
 * `configureLogging(settings, {sink})` is called once by the postmaster and
 * by every child; the sink decides where lines go (stderr, the log
 * collector, a test array). Settings are read at every record, so a reload
 * takes effect without reconfiguring. Web-standard only: the sinks that
 * write are in src/adapters/node.
 *
 * Children that run in the postmaster's own realm (the in-process adapter)
 * share its sink but not its identity: `setLogPrefixLookup` lets the adapter
 * say which child's code is running, so that a line carries that child's
 * %p, %b and %l, as it would from a process of its own.
 */

import { configureSync, type LogLevel, type LogRecord } from "@logtape/logtape";
import { setReportFilter, type Severity } from "./elog.ts";

/** Receives one formatted message: one or more lines, each ending in "\n". */
export type LineSink = (text: string) => void;

/** What the formatter needs from the settings; a `Guc` satisfies it. */
export interface LogSettings {
  getString(name: string): string;
  /** A time parameter in milliseconds (a `Guc` has it; other settings may not). */
  getMs?(name: string): number;
  getBool?(name: string): boolean;
  getInt?(name: string): number;
  /** Changes whenever a value does (a `Guc`'s), so what was read of them can be kept. */
  readonly generation?: number;
}

/**
 * The server's log_statement, log_min_duration_statement, log_duration,
 * log_min_error_statement and log_parameter_max_length, as configured (a
 * session's SET overrides them for itself).
 */
export interface StatementLogDefaults {
  readonly statement: string;
  readonly minDurationMs: number;
  readonly duration: boolean;
  /** log_min_error_statement: the least severe report logged with its statement. */
  readonly minErrorStatement: string;
  /** log_parameter_max_length: bytes of each logged parameter (-1: all, 0: no parameters). */
  readonly parameterMaxLength: number;
}

const NO_STATEMENT_LOG: StatementLogDefaults = {
  statement: "none",
  minDurationMs: -1,
  duration: false,
  minErrorStatement: "error",
  parameterMaxLength: -1,
};

/** Facts about this process for %p, %b, %c, %s. */
export interface ProcessLogInfo {
  readonly pid: number;
  /** PostgreSQL's backend type name: "postmaster", "client backend", "logger"... */
  readonly backendType: string;
  /** Process (or session) start, ms since the epoch. */
  readonly startTime: number;
}

/** Facts about the session a backend serves, for %u %d %a %r %h %i; set once known. */
export interface SessionLogInfo {
  user?: string;
  database?: string;
  applicationName?: string;
  remoteHost?: string;
  /** The client's port; a function when reading it costs (a getpeername), read only if shown. */
  remotePort?: string | (() => string);
  commandTag?: string;
}

/** The session's client port for the log, "" when none. */
export function remotePortOf(s: SessionLogInfo): string {
  return typeof s.remotePort === "function" ? s.remotePort() : s.remotePort ?? "";
}

const severityRank: Readonly<Record<Severity, number>> = {
  DEBUG5: 10,
  DEBUG4: 11,
  DEBUG3: 12,
  DEBUG2: 13,
  DEBUG1: 14,
  LOG: 15,
  INFO: 17,
  NOTICE: 18,
  WARNING: 19,
  ERROR: 21,
  FATAL: 22,
  PANIC: 23,
};

const severities = Object.keys(severityRank) as Severity[];

function toSeverity(s: string): Severity | undefined {
  const up = s.toUpperCase();
  return severities.find((x) => x === up);
}

/**
 * PostgreSQL's is_log_level_output: whether a message of `severity` goes to
 * the server log under `log_min_messages`. LOG counts as more important than
 * ERROR and less than FATAL here.
 */
export function isLogLevelOutput(severity: Severity, minMessages: string): boolean {
  const min = toSeverity(minMessages) ?? "WARNING";
  if (severity === "LOG") return min === "LOG" || severityRank[min] <= severityRank.ERROR;
  if (min === "LOG") return severityRank[severity] >= severityRank.FATAL;
  return severityRank[severity] >= severityRank[min];
}

const fromLogTape: Readonly<Record<LogLevel, Severity>> = {
  trace: "DEBUG5",
  debug: "DEBUG1",
  info: "LOG",
  warning: "WARNING",
  error: "ERROR",
  fatal: "FATAL",
};

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (f === undefined) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      weekday: "short",
      hourCycle: "h23",
      timeZoneName: "short",
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** Calendar fields of an instant in a time zone, with the zone's abbreviation and offset. */
export interface ZonedTime {
  readonly year: number;
  readonly month: number;
  readonly day: number;
  readonly hour: number;
  readonly minute: number;
  readonly second: number;
  readonly ms: number;
  /** 0 = Sunday. */
  readonly weekday: number;
  readonly zone: string;
  /** Seconds east of UTC. */
  readonly offset: number;
}

const weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

export function zonedTime(epochMs: number, timeZone: string): ZonedTime {
  let f: Intl.DateTimeFormat;
  try {
    f = formatter(timeZone);
  } catch {
    f = formatter("UTC");
  }
  const parts: Record<string, string> = {};
  for (const p of f.formatToParts(new Date(epochMs))) parts[p.type] = p.value;
  const num = (k: string) => Number(parts[k]);
  const ms = ((epochMs % 1000) + 1000) % 1000;
  const asUtc = Date.UTC(
    num("year"),
    num("month") - 1,
    num("day"),
    num("hour"),
    num("minute"),
    num("second"),
  );
  return {
    year: num("year"),
    month: num("month"),
    day: num("day"),
    hour: num("hour"),
    minute: num("minute"),
    second: num("second"),
    ms,
    weekday: weekdays.indexOf(parts.weekday ?? "Sun"),
    zone: parts.timeZoneName ?? timeZone,
    offset: Math.round((asUtc - (epochMs - ms)) / 1000),
  };
}

const p2 = (n: number) => String(n).padStart(2, "0");

/** "2024-05-01 12:00:00 GMT", or with milliseconds for %m. */
export function formatLogTime(epochMs: number, timeZone: string, withMs: boolean): string {
  const t = zonedTime(epochMs, timeZone);
  const frac = withMs ? `.${String(t.ms).padStart(3, "0")}` : "";
  return `${t.year}-${p2(t.month)}-${p2(t.day)} ${p2(t.hour)}:${p2(t.minute)}:${
    p2(t.second)
  }${frac} ${t.zone}`;
}

/** One message as the formatter sees it. */
export interface LogMessage {
  readonly severity: Severity;
  readonly message: string;
  readonly detail?: string;
  readonly hint?: string;
  /** The internal query an error is in (a PL/pgSQL statement's SQL): the QUERY line. */
  readonly query?: string;
  readonly context?: string;
  readonly statement?: string;
  readonly code?: string;
  /** Where the report was raised ("routine, file:line"): the LOCATION line. */
  readonly location?: string;
  /** log_error_verbosity for this report (a session's SET); else the server's. */
  readonly verbosity?: string;
  /** ms since the epoch. */
  readonly timestamp: number;
}

/** Per-process state of the formatter: line counter (%l) and the facts above. */
export class LogLinePrefix {
  #process: ProcessLogInfo;
  #session: SessionLogInfo = {};
  #lineNo = 0;

  constructor(process: ProcessLogInfo) {
    this.#process = process;
  }

  get session(): SessionLogInfo {
    return this.#session;
  }

  /** The process (or backend) whose lines these are. */
  get pid(): number {
    return this.#process.pid;
  }

  setSession(info: SessionLogInfo): void {
    this.#session = { ...this.#session, ...info };
  }

  /** No session facts (a backend process about to serve another connection). */
  clearSession(): void {
    this.#session = {};
  }

  /** Counts a message; every line of it shares one %l number, as in PostgreSQL. */
  nextLine(): number {
    return ++this.#lineNo;
  }

  /** Expands log_line_prefix for one message. */
  expand(prefix: string, msg: LogMessage, lineNo: number, timeZone: string): string {
    let out = "";
    const proc = this.#process;
    const s = this.#session;
    const isSession = s.user !== undefined || s.database !== undefined;
    for (let i = 0; i < prefix.length; i++) {
      const c = prefix[i]!;
      if (c !== "%" || i + 1 >= prefix.length) {
        out += c;
        continue;
      }
      let j = i + 1;
      const pad = /^-?[0-9]+/.exec(prefix.slice(j));
      const width = pad === null ? 0 : Number(pad[0]);
      if (pad !== null) j += pad[0].length;
      const esc = prefix[j];
      i = j;
      if (esc === undefined) break;
      let value: string;
      switch (esc) {
        case "a":
          value = s.applicationName ?? "";
          break;
        case "u":
          value = s.user ?? "";
          break;
        case "d":
          value = s.database ?? "";
          break;
        case "b":
          value = proc.backendType;
          break;
        case "p":
          value = String(proc.pid);
          break;
        case "P":
          value = "";
          break;
        case "l":
          value = String(lineNo);
          break;
        case "m":
          value = formatLogTime(msg.timestamp, timeZone, true);
          break;
        case "t":
          value = formatLogTime(msg.timestamp, timeZone, false);
          break;
        case "n":
          value = (msg.timestamp / 1000).toFixed(3);
          break;
        case "s":
          value = formatLogTime(proc.startTime, timeZone, false);
          break;
        case "c":
          value = `${Math.floor(proc.startTime / 1000).toString(16)}.${proc.pid.toString(16)}`;
          break;
        case "e":
          value = msg.code ?? defaultCode(msg.severity);
          break;
        case "r": {
          const port = remotePortOf(s);
          value = s.remoteHost === undefined
            ? ""
            : port === ""
            ? s.remoteHost
            : `${s.remoteHost}(${port})`;
          break;
        }
        case "h":
          value = s.remoteHost ?? "";
          break;
        case "i":
          value = s.commandTag ?? "";
          break;
        case "v":
          value = "";
          break;
        case "x":
        case "Q":
          value = "0";
          break;
        case "q":
          // Stop here in processes that serve no session.
          if (!isSession) return out;
          continue;
        case "%":
          out += "%";
          continue;
        default:
          // Unknown escapes print nothing, as in PostgreSQL.
          continue;
      }
      out += width > 0 ? value.padStart(width) : width < 0 ? value.padEnd(-width) : value;
    }
    return out;
  }
}

function defaultCode(severity: Severity): string {
  if (severityRank[severity] >= severityRank.ERROR) return "XX000";
  if (severity === "WARNING") return "01000";
  return "00000";
}

/** The word PostgreSQL prints for a severity (all DEBUG levels print "DEBUG"). */
export function severityLabel(severity: Severity): string {
  return severity.startsWith("DEBUG") ? "DEBUG" : severity;
}

/**
 * Formats one message into its server-log lines: the message line, then
 * DETAIL, HINT, QUERY, CONTEXT, LOCATION and STATEMENT lines, each with the
 * prefix, as log_error_verbosity has them (elog.c's
 * send_message_to_server_log): `terse` leaves out DETAIL to CONTEXT,
 * `verbose` puts the SQLSTATE before the message and adds LOCATION where
 * the report has one. Newlines inside a field are followed by a tab, as
 * PostgreSQL's append_with_tabs does.
 */
export function formatLogMessage(
  msg: LogMessage,
  options: { prefix: LogLinePrefix; linePrefix: string; timeZone: string; verbosity?: string },
): string {
  const lineNo = options.prefix.nextLine();
  const head = options.prefix.expand(options.linePrefix, msg, lineNo, options.timeZone);
  const tabbed = (s: string) => s.replace(/\n/g, "\n\t");
  const verbosity = msg.verbosity ?? options.verbosity ?? "default";
  const code = verbosity === "verbose" ? `${msg.code ?? defaultCode(msg.severity)}: ` : "";
  let out = `${head}${severityLabel(msg.severity)}:  ${code}${tabbed(msg.message)}\n`;
  const full = verbosity !== "terse";
  const extra: [string, string | undefined][] = [
    ["DETAIL", full ? msg.detail : undefined],
    ["HINT", full ? msg.hint : undefined],
    ["QUERY", full ? msg.query : undefined],
    ["CONTEXT", full ? msg.context : undefined],
    ["LOCATION", verbosity === "verbose" ? msg.location : undefined],
    ["STATEMENT", msg.statement],
  ];
  for (const [label, text] of extra) {
    if (text !== undefined && text !== "") out += `${head}${label}:  ${tabbed(text)}\n`;
  }
  return out;
}

function messageOf(record: LogRecord): LogMessage {
  const p = record.properties;
  const str = (k: string) => (typeof p[k] === "string" ? (p[k] as string) : undefined);
  const severity = (str("severity") && toSeverity(str("severity")!)) || fromLogTape[record.level];
  const message = str("message") ??
    record.message.map((m, i) => (i % 2 === 0 ? String(m) : JSON.stringify(m))).join("");
  const fields: Record<string, string> = {};
  for (
    const k of [
      "detail",
      "hint",
      "query",
      "context",
      "statement",
      "code",
      "location",
      "verbosity",
    ] as const
  ) {
    const v = str(k);
    if (v !== undefined) fields[k] = v;
  }
  return { severity, message, timestamp: record.timestamp, ...fields };
}

export interface LoggingOptions {
  /** Where formatted lines go. */
  sink: LineSink;
  /** This process; by default pid 0, "postmaster", started now. */
  process?: ProcessLogInfo;
}

let current: LogLinePrefix | undefined;

/** log_error_verbosity as configured; "default" where the settings have none (a test's own). */
function errorVerbosity(settings: LogSettings): string {
  try {
    return settings.getString("log_error_verbosity");
  } catch {
    return "default";
  }
}

/** The settings `configureLogging` was given last (the postmaster's, reloaded in place). */
let configured: LogSettings | null = null;

/** What statementLogDefaults read last, of which settings, at which generation. */
let cachedDefaults: StatementLogDefaults = NO_STATEMENT_LOG;
let cachedFor: LogSettings | null = null;
let cachedGeneration = -1;

/** The server's statement-logging settings now; none where they are not configured. */
export function statementLogDefaults(): StatementLogDefaults {
  const s = configured;
  if (s === null || s.getMs === undefined || s.getBool === undefined) return NO_STATEMENT_LOG;
  // Read again only once a value changed (a reload), not for every statement.
  if (s.generation !== undefined && cachedFor === s && cachedGeneration === s.generation) {
    return cachedDefaults;
  }
  try {
    cachedDefaults = {
      statement: s.getString("log_statement"),
      minDurationMs: s.getMs("log_min_duration_statement"),
      duration: s.getBool("log_duration"),
      minErrorStatement: s.getString("log_min_error_statement"),
      parameterMaxLength: s.getInt?.("log_parameter_max_length") ?? -1,
    };
  } catch {
    // Settings without these parameters (a test's own).
    cachedDefaults = NO_STATEMENT_LOG;
  }
  cachedFor = s;
  cachedGeneration = s.generation ?? -1;
  return cachedDefaults;
}

/**
 * The server's client_min_messages, as configured ("notice" where it is
 * not): what a session that did not set its own is sent of the notices
 * and warnings pgts itself reports.
 */
export function clientMinMessagesDefault(): string {
  try {
    return configured?.getString("client_min_messages") ?? "notice";
  } catch {
    return "notice";
  }
}

/** The prefix state of the child running now, where children share this realm's logging. */
let prefixLookup: (() => LogLinePrefix | undefined) | null = null;

/** A backend's lines logged by another process (the one serving its engine): see `logAs`. */
let forced: LogLinePrefix | null = null;

/** The prefix state the lines logged now are formatted with. */
export function currentLogPrefix(): LogLinePrefix | undefined {
  return forced ?? prefixLookup?.() ?? current;
}

/**
 * Runs `fn` with its log lines formatted as `prefix`'s: the engine's
 * process logs a backend's errors as that backend (its pid), where the
 * backend is a process of its own.
 */
export function logAs<R>(prefix: LogLinePrefix, fn: () => R): R {
  const before = forced;
  forced = prefix;
  try {
    return fn();
  } finally {
    forced = before;
  }
}

/**
 * Sets (or, with null, clears) how to find the child whose code is running:
 * its prefix state then formats the line instead of the one `configureLogging`
 * made. The in-process adapter keeps it in an async context, so that what a
 * child schedules stays its own.
 */
export function setLogPrefixLookup(lookup: (() => LogLinePrefix | undefined) | null): void {
  prefixLookup = lookup;
}

/**
 * Routes every "pgts" LogTape record through PostgreSQL's formatting into
 * `sink`. Call it again to change the sink (the postmaster does, once the log
 * collector runs). Returns the prefix state, whose `setSession` a backend
 * calls once it knows its user and database.
 */
export function configureLogging(settings: LogSettings, options: LoggingOptions): LogLinePrefix {
  const prefix = new LogLinePrefix(
    options.process ?? { pid: 0, backendType: "postmaster", startTime: Date.now() },
  );
  current = prefix;
  configured = settings;
  const sink = options.sink;
  const pgSink = (record: LogRecord): void => {
    const msg = messageOf(record);
    if (!isLogLevelOutput(msg.severity, settings.getString("log_min_messages"))) return;
    sink(formatLogMessage(msg, {
      prefix: currentLogPrefix() ?? prefix,
      linePrefix: settings.getString("log_line_prefix"),
      timeZone: settings.getString("log_timezone"),
      verbosity: errorVerbosity(settings),
    }));
  };
  const config = {
    reset: true,
    sinks: { server: pgSink },
    loggers: [
      { category: ["pgts"], sinks: ["server"], lowestLevel: "trace" as const },
      { category: ["logtape", "meta"], sinks: ["server"], lowestLevel: "warning" as const },
    ],
  };
  configureSync(config);
  // Severities below log_min_messages are dropped by ereport before any
  // record is built (the sink's own check stays: LogTape users may log directly).
  setReportFilter(
    config,
    (severity) => isLogLevelOutput(severity, settings.getString("log_min_messages")),
  );
  return prefix;
}
