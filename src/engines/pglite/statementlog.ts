/**
 * log_statement, log_min_duration_statement and log_duration: the lines a
 * PostgreSQL backend writes about the statements it runs, written here for
 * a session of the shared engine, whose backend writes no server log.
 *
 * As PostgreSQL's: a Query message is logged whole (`statement: …`) when
 * log_statement takes any of its statements — `ddl` CREATE, ALTER, DROP,
 * GRANT, REVOKE, COMMENT, SELECT INTO…; `mod` those and INSERT, UPDATE,
 * DELETE, MERGE, TRUNCATE, COPY FROM, and an EXPLAIN ANALYZE, PREPARE or
 * EXECUTE of one; `all` every one — and an Execute as `execute
 * <name>[/portal]: <its statement>` (`execute fetch from` on a portal run
 * before) with its Bind's parameters in a DETAIL, each cut to
 * log_parameter_max_length.
 * Once a message has completed without an error, `duration: … ms` follows
 * when log_duration is on, and with the statement when it took
 * log_min_duration_statement or longer and was not logged already: a
 * Query, and each Parse (`parse <name>: …`), Bind (`bind <name>[/portal]:
 * …` and its parameters) and Execute. A
 * session's SET of these applies to it alone, and its duration lines take
 * the values the message ended with (a SET of log_min_duration_statement is
 * timed by its own new value, as PostgreSQL's).
 *
 * What differs (README "The server log"): statements are classified by
 * their words, not by a parse tree, so a Query that does not parse is
 * still logged under `all`, and an Execute is logged before its batch
 * runs (one whose Parse fails too); a message's duration is measured from
 * the end of the one before it to its answer reaching the session
 * (messages the engine answered together split the time unevenly: a Parse
 * and a Bind answered with their Execute take none of it); a Bind's
 * parameters are not shown when one is in binary format (PostgreSQL prints
 * the typed value, which the session does not know).
 */

import { ereport } from "../../core/elog.ts";
import { statementLogDefaults } from "../../core/log.ts";
import { BE, FE } from "../../core/protocol/constants.ts";
import { identName, scanStatements, type Token } from "./sqlscan.ts";
import type { SettingsMap } from "./settings.ts";
import { type Frame, MessageBoundaries, readCString, readInt32 } from "./wire.ts";

/** PostgreSQL's LogStmtLevel, most important first. */
const DDL = 0;
const MOD = 1;
const ALL = 2;
type Level = typeof DDL | typeof MOD | typeof ALL;

/** log_statement's values: the least important level each logs (-1: none). */
const THRESHOLD: ReadonlyMap<string, number> = new Map([
  ["none", -1],
  ["ddl", DDL],
  ["mod", MOD],
  ["all", ALL],
]);

const DDL_WORDS = new Set([
  "create",
  "alter",
  "drop",
  "grant",
  "revoke",
  "comment",
  "security",
  "refresh",
  "reassign",
  "import",
]);
const MOD_WORDS = new Set(["insert", "update", "delete", "merge", "truncate"]);
/** The words a WITH's main statement starts with. */
const MAIN_WORDS = new Set(["select", "insert", "update", "delete", "merge", "values", "table"]);

const decoder = new TextDecoder();

/** One message of an input whose end is awaited in the session's output. */
interface Entry {
  readonly kind: "query" | "parse" | "bind" | "execute";
  /** What the line names before the statement: "statement", "parse <name>", "bind …", "execute …". */
  readonly what: string;
  readonly text: string;
  readonly detail: string | null;
  /** log_statement wrote it already. */
  readonly logged: boolean;
  failed: boolean;
}

/** A message that completed, with its time; its duration line is decided at the input's end. */
interface Completed {
  readonly entry: Entry;
  readonly ms: number;
}

/** The statement-logging settings one input runs with. */
interface Settings {
  readonly threshold: number;
  readonly minDurationMs: number;
  readonly duration: boolean;
  /** log_parameter_max_length. */
  readonly parameterMaxLength: number;
}

/** A SQL-level PREPARE: its level and the Query it came in (EXECUTE's DETAIL). */
interface Prepared {
  readonly level: Level;
  readonly source: string;
}

/** Runs a function with its log lines written as the session's backend's (serverlog.ts's `as`). */
export type LogAs = (fn: () => void) => void;

/** One session's statement logging: what it prepared, and each input's lines. */
export class StatementLog {
  readonly #as: LogAs;
  /** Protocol-level statements by name ("" the unnamed one, while known). */
  readonly #statements = new Map<string, string>();
  /** Portals by name: the statement each binds and its parameters as logged. */
  readonly #portals = new Map<
    string,
    { readonly statement: string; readonly params: string | null; ran: boolean }
  >();
  /** SQL PREPAREs seen while logging was on. */
  readonly #prepared = new Map<string, Prepared>();
  /** The entries of the last input, when `begin` logged its statements and left its answer unwatched. */
  #unwatched: Entry[] | null = null;

  constructor(as: LogAs) {
    this.#as = as;
  }

  /**
   * Starts an input: writes log_statement's lines for its messages and
   * returns what watches its answer for their ends, or null when nothing
   * is logged for this session now (its statement names are still noted).
   */
  begin(input: Uint8Array, frames: readonly Frame[], session: SettingsMap): InputLog | null {
    this.#unwatched = null;
    const d = statementLogDefaults();
    if (
      d.statement === "none" && d.minDurationMs < 0 && !d.duration &&
      !session.has("log_statement") && !session.has("log_min_duration_statement") &&
      !session.has("log_duration")
    ) {
      this.#noteNames(input, frames);
      return null;
    }
    const s = settingsOf(session);
    if (s.threshold < 0 && s.minDurationMs < 0 && !s.duration) {
      this.#noteNames(input, frames);
      return null;
    }
    const entries: Entry[] = [];
    for (const f of frames) {
      const entry = this.#take(input, f, s);
      if (entry === null) continue;
      if (entry.logged) {
        this.#as(() => ereport("LOG", `${entry.what}: ${entry.text}`, detailOf(entry.detail)));
      }
      entries.push(entry);
    }
    // No duration to log: the answer need not be watched (a SET that turns
    // one on is timed by `afterSet`, which needs to know what was logged).
    if (s.minDurationMs < 0 && !s.duration) {
      this.#unwatched = entries;
      return null;
    }
    return new InputLog(entries, this.#as);
  }

  /**
   * An input whose answer was not watched (nothing was to be timed when it
   * began) and that changed the session's settings: a lone Query that
   * turned log_duration or log_min_duration_statement on gets its duration
   * line, as PostgreSQL checks them once the statement is over, with its
   * statement unless log_statement wrote it already.
   */
  afterSet(input: Uint8Array, frames: readonly Frame[], ms: number, session: SettingsMap): void {
    if (frames.length !== 1 || frames[0]!.type !== FE.Query) return;
    const s = settingsOf(session);
    if (s.minDurationMs < 0 && !s.duration) return;
    const entry = this.#unwatched?.[0] ?? this.#take(input, frames[0]!, { ...s, threshold: -1 })!;
    this.#unwatched = null;
    const log = new InputLog([entry], this.#as);
    log.completed(entry, ms);
    log.end(session);
  }

  /** DISCARD ALL or DEALLOCATE ALL: no statement is prepared any more. */
  forgetAll(): void {
    this.#statements.clear();
    this.#portals.clear();
    this.#prepared.clear();
  }

  /**
   * Logging off: only what later Executes need. A named Parse's text is
   * kept (a statement is prepared once and executed often, perhaps once
   * logging is on); an unnamed one is only known to have changed.
   */
  #noteNames(input: Uint8Array, frames: readonly Frame[]): void {
    for (const f of frames) {
      if (f.type === FE.Parse) {
        if (input[f.start + 5] === 0) this.#statements.delete("");
        else this.#parse(input, f);
      } else if (f.type === FE.Close) this.#close(input, f);
    }
  }

  #parse(input: Uint8Array, f: Frame): void {
    const [name, at] = readCString(input, f.start + 5);
    this.#statements.set(name, readCString(input, at)[0]);
  }

  #close(input: Uint8Array, f: Frame): void {
    const name = readCString(input, f.start + 6)[0];
    if (input[f.start + 5] === 0x53 /* 'S' */) this.#statements.delete(name);
    else this.#portals.delete(name);
  }

  /** A frame of an input while logging is on: the entry of a Query or Execute, else null. */
  #take(input: Uint8Array, f: Frame, s: Settings): Entry | null {
    const threshold = s.threshold;
    switch (f.type) {
      case FE.Query: {
        const text = readCString(input, f.start + 5)[0];
        const statements = scanStatements(text, Infinity);
        let level: Level = ALL;
        let detail: string | null = null;
        for (const st of statements) {
          const t = st.tokens;
          const own = this.#levelOf(t, 0);
          if (t[0]?.text === "prepare" && t[0].kind === "word") {
            const name = identName(t[1]);
            if (name !== null) this.#prepared.set(name, { level: own, source: text });
          } else if (t[0]?.text === "execute" && t[0].kind === "word") {
            const p = this.#prepared.get(identName(t[1]) ?? "");
            if (p !== undefined) detail ??= `prepare: ${p.source}`;
          }
          level = Math.min(level, own) as Level;
        }
        return {
          kind: "query",
          what: "statement",
          text,
          detail,
          logged: threshold >= 0 && level <= threshold,
          failed: false,
        };
      }
      case FE.Parse: {
        const [name, at] = readCString(input, f.start + 5);
        const text = readCString(input, at)[0];
        this.#statements.set(name, text);
        // Timed, never logged by log_statement (the Execute is).
        return {
          kind: "parse",
          what: `parse ${name === "" ? "<unnamed>" : name}`,
          text,
          detail: null,
          logged: false,
          failed: false,
        };
      }
      case FE.Bind: {
        const [portal, at] = readCString(input, f.start + 5);
        const [statement, paramsAt] = readCString(input, at);
        const params = bindParams(input, paramsAt, s.parameterMaxLength);
        this.#portals.set(portal, { statement, params, ran: false });
        const text = this.#statements.get(statement);
        if (text === undefined) return null;
        return {
          kind: "bind",
          what: `bind ${statement === "" ? "<unnamed>" : statement}${
            portal === "" ? "" : `/${portal}`
          }`,
          text,
          detail: params === null || params === "" ? null : `Parameters: ${params}`,
          logged: false,
          failed: false,
        };
      }
      case FE.Close:
        this.#close(input, f);
        return null;
      case FE.Execute: {
        const portal = readCString(input, f.start + 5)[0];
        const bound = this.#portals.get(portal);
        const text = bound === undefined ? undefined : this.#statements.get(bound.statement);
        if (bound === undefined || text === undefined) return null;
        const name = bound.statement === "" ? "<unnamed>" : bound.statement;
        const level = threshold === DDL || threshold === MOD ? this.#queryLevel(text) : ALL;
        // A portal run before (suspended at its row limit) is fetched from.
        const verb = bound.ran ? "execute fetch from" : "execute";
        bound.ran = true;
        return {
          kind: "execute",
          what: `${verb} ${name}${portal === "" ? "" : `/${portal}`}`,
          text,
          detail: bound.params === null || bound.params === ""
            ? null
            : `Parameters: ${bound.params}`,
          logged: threshold >= 0 && level <= threshold,
          failed: false,
        };
      }
      default:
        return null;
    }
  }

  /** The most important level of the statements in `text`. */
  #queryLevel(text: string): Level {
    let level: Level = ALL;
    for (const st of scanStatements(text, Infinity)) {
      level = Math.min(level, this.#levelOf(st.tokens, 0)) as Level;
    }
    return level;
  }

  /** The level of the statement starting at tokens[i] (GetCommandLogLevel by its words). */
  #levelOf(t: readonly Token[], i: number): Level {
    const first = t[i];
    if (first === undefined || first.kind !== "word") return ALL;
    const w = first.text;
    if (MOD_WORDS.has(w)) return MOD;
    if (DDL_WORDS.has(w)) return DDL;
    switch (w) {
      case "select":
        // SELECT … INTO creates a table.
        return topLevelWord(t, i + 1, (x) => x === "into") >= 0 ? DDL : ALL;
      case "copy": {
        const dir = topLevelWord(t, i + 1, (x) => x === "from" || x === "to");
        return dir >= 0 && t[dir]!.text === "from" ? MOD : ALL;
      }
      case "with": {
        const main = mainAfterWith(t, i + 1);
        return main < 0 ? ALL : this.#levelOf(t, main);
      }
      case "explain": {
        const inner = explainAnalyzed(t, i + 1);
        return inner < 0 ? ALL : this.#levelOf(t, inner);
      }
      case "prepare": {
        // That of the statement after its AS.
        const as = topLevelWord(t, i + 2, (x) => x === "as");
        return as < 0 ? ALL : this.#levelOf(t, as + 1);
      }
      case "execute":
        return this.#prepared.get(identName(t[i + 1]) ?? "")?.level ?? ALL;
      default:
        return ALL;
    }
  }
}

/**
 * The lines of one input's ends: it watches the bytes the session sends
 * (`watch`) for the end of each logged message, and `end` writes their
 * duration lines.
 */
export class InputLog {
  readonly #entries: Entry[];
  readonly #as: LogAs;
  readonly #done: Completed[] = [];
  /**
   * Parses and Binds that completed, their time not yet given: none if an
   * Execute (or an error) ends after them, as the engine answers a batch
   * at once; else the first of them has it, at the Sync or the input's end.
   */
  readonly #pending: Entry[] = [];
  #mark = performance.now();
  /** The answer's messages as they pass (their ends: `#message`). */
  readonly #messages = new MessageBoundaries((type) => this.#message(type));

  constructor(entries: Entry[], as: LogAs) {
    this.#entries = entries;
    this.#as = as;
  }

  /** `out`, with the answer's message ends noted on the way. */
  watch<R>(out: (b: Uint8Array) => R): (b: Uint8Array) => R {
    if (this.#entries.length === 0) return out;
    return (b) => {
      this.#messages.feed(b);
      return out(b);
    };
  }

  /** The input is over: the duration lines of what completed, with the settings now. */
  end(session: SettingsMap): void {
    if (this.#pending.length > 0) this.#givePending();
    if (this.#done.length === 0) return;
    const s = settingsOf(session);
    this.#as(() => {
      for (const { entry, ms } of this.#done) {
        const exceeded = s.minDurationMs === 0 || (s.minDurationMs > 0 && ms >= s.minDurationMs);
        if (!s.duration && !exceeded) continue;
        const took = `duration: ${ms.toFixed(3)} ms`;
        if (exceeded && !entry.logged) {
          ereport("LOG", `${took}  ${entry.what}: ${entry.text}`, detailOf(entry.detail));
        } else ereport("LOG", took);
      }
    });
  }

  /** `entry` ended without an error after `ms`, as its input's only message. */
  completed(entry: Entry, ms: number): void {
    this.#done.push({ entry, ms });
  }

  #message(type: number): void {
    const head = this.#entries[0];
    if (head === undefined) return;
    switch (type) {
      case BE.ErrorResponse:
        if (head.kind === "query") head.failed = true;
        else {
          // The failed message took the time: those answered with it none.
          this.#entries.shift();
          this.#givePending(0);
        }
        return;
      case BE.ParseComplete:
      case BE.BindComplete:
        if (head.kind === (type === BE.ParseComplete ? "parse" : "bind")) {
          this.#pending.push(this.#entries.shift()!);
        }
        return;
      case BE.CommandComplete:
      case BE.EmptyQueryResponse:
      case BE.PortalSuspended:
        if (head.kind === "execute") this.#complete();
        return;
      case BE.ReadyForQuery:
        // A Sync: the messages before it that did not end were skipped.
        while (this.#entries[0] !== undefined && this.#entries[0].kind !== "query") {
          this.#entries.shift();
        }
        if (this.#pending.length > 0) this.#givePending();
        if (this.#entries[0]?.kind === "query") this.#complete();
        return;
    }
  }

  /**
   * A Query or Execute ended. The Parses and Binds that ended since the
   * last end get none of the time (the engine answers a batch at once): it
   * is the Execute's, as in PostgreSQL the Execute is what takes long (a
   * slow query's line is its `execute`).
   */
  #complete(): void {
    const entry = this.#entries.shift()!;
    const now = performance.now();
    for (const p of this.#pending) this.#done.push({ entry: p, ms: 0 });
    this.#pending.length = 0;
    if (!entry.failed) this.#done.push({ entry, ms: now - this.#mark });
    this.#mark = now;
  }

  /**
   * Parses and Binds with no Execute after them (a Parse and Describe up
   * to a Sync or Flush): the first has the time since the last end, or
   * `first`.
   */
  #givePending(first?: number): void {
    const now = performance.now();
    for (const [i, p] of this.#pending.entries()) {
      this.#done.push({ entry: p, ms: i === 0 ? first ?? now - this.#mark : 0 });
    }
    this.#pending.length = 0;
    this.#mark = now;
  }
}

function detailOf(detail: string | null): { detail?: string } {
  return detail === null ? {} : { detail };
}

function settingsOf(session: SettingsMap): Settings {
  const d = statementLogDefaults();
  const statement = session.get("log_statement") ?? d.statement;
  const min = session.get("log_min_duration_statement");
  const duration = session.get("log_duration");
  const maxLength = session.get("log_parameter_max_length");
  return {
    threshold: THRESHOLD.get(statement) ?? -1,
    minDurationMs: min === undefined || !/^-?\d+$/.test(min) ? d.minDurationMs : Number(min),
    duration: duration === undefined ? d.duration : duration === "on",
    parameterMaxLength: maxLength === undefined || !/^-?\d+$/.test(maxLength)
      ? d.parameterMaxLength
      : Number(maxLength),
  };
}

/** The index of the first word at parenthesis depth 0 from `from` that `is` takes, or -1. */
function topLevelWord(t: readonly Token[], from: number, is: (w: string) => boolean): number {
  let depth = 0;
  for (let i = from; i < t.length; i++) {
    const x = t[i]!;
    if (x.kind === "punct") {
      if (x.text === "(") depth++;
      else if (x.text === ")") depth--;
    } else if (depth === 0 && x.kind === "word" && is(x.text)) return i;
  }
  return -1;
}

/** The index of a WITH's main statement: its first word after a common table expression's body. */
function mainAfterWith(t: readonly Token[], from: number): number {
  let depth = 0;
  let afterBody = false;
  for (let i = from; i < t.length; i++) {
    const x = t[i]!;
    if (x.kind === "punct") {
      if (x.text === "(") depth++;
      else if (x.text === ")" && --depth === 0) {
        afterBody = true;
        continue;
      }
    } else if (depth === 0 && afterBody && x.kind === "word" && MAIN_WORDS.has(x.text)) return i;
    if (depth === 0) afterBody = false;
  }
  return -1;
}

/** The index of an EXPLAIN ANALYZE's statement (the tokens after `explain`), or -1 without ANALYZE. */
function explainAnalyzed(t: readonly Token[], from: number): number {
  let i = from;
  let analyze = false;
  if (t[i]?.text === "(") {
    // EXPLAIN (ANALYZE [boolean], …): up to the closing parenthesis.
    for (i++; i < t.length && t[i]!.text !== ")"; i++) {
      const w = t[i]!.text;
      if (w !== "analyze" && w !== "analyse") continue;
      const v = t[i + 1]?.text;
      analyze = v !== "false" && v !== "off" && v !== "0";
    }
    i++;
  } else {
    for (; t[i]?.kind === "word"; i++) {
      const w = t[i]!.text;
      if (w === "analyze" || w === "analyse") analyze = true;
      else if (w !== "verbose") break;
    }
  }
  return analyze && i < t.length ? i : -1;
}

/**
 * A Bind's parameters as PostgreSQL logs them (`$1 = '42', $2 = NULL`),
 * from its format codes at `at`, each cut to `maxLength` bytes (then
 * "...") unless it is -1; null when one is binary or `maxLength` is 0.
 */
function bindParams(input: Uint8Array, at: number, maxLength: number): string | null {
  if (maxLength === 0) return null;
  const formats = (input[at]! << 8) | input[at + 1]!;
  const codes: number[] = [];
  for (let k = 0; k < formats; k++) {
    codes.push((input[at + 2 + 2 * k]! << 8) | input[at + 3 + 2 * k]!);
  }
  at += 2 + 2 * formats;
  const count = (input[at]! << 8) | input[at + 1]!;
  at += 2;
  const parts: string[] = [];
  for (let k = 0; k < count; k++) {
    const format = formats === 0 ? 0 : formats === 1 ? codes[0]! : codes[k] ?? 0;
    if (format !== 0) return null;
    const len = readInt32(input, at);
    at += 4;
    if (len < 0) {
      parts.push(`$${k + 1} = NULL`);
      continue;
    }
    const cut = maxLength > 0 && len > maxLength;
    // Cut at a character's start, as PostgreSQL's pg_mbcliplen does.
    let end = cut ? at + maxLength : at + len;
    while (cut && end > at && (input[end]! & 0xc0) === 0x80) end--;
    const value = decoder.decode(input.subarray(at, end));
    at += len;
    parts.push(`$${k + 1} = '${value.replaceAll("'", "''")}${cut ? "..." : ""}'`);
  }
  return parts.join(", ");
}
