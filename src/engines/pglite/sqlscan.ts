/**
 * A lexical scan of SQL text, just deep enough to find what changes session
 * state on the shared engine: SET/RESET/set_config (settings), LISTEN and
 * UNLISTEN, PREPARE/EXECUTE/DEALLOCATE names, DISCARD, role and database
 * DDL, temporary tables. It splits statements at top-level semicolons and
 * skips comments, quoted strings, quoted identifiers and dollar quotes, so a
 * keyword inside a string or a function body is never mistaken for one.
 *
 * It is not a parser. It never rejects text (the engine does); what it
 * cannot see, set_config or SET inside a function body, the engine's
 * thread sees (customsettings.ts). `mightMatter` is the cheap
 * gate that keeps the scan off the hot path for ordinary queries.
 */

export interface Token {
  /** Lowercased word, the identifier for quoted ones, the literal's value for strings. */
  readonly text: string;
  readonly kind: "word" | "quoted" | "string" | "punct";
  readonly start: number;
  readonly end: number;
}

export interface Statement {
  readonly start: number;
  readonly end: number;
  /** The statement's first tokens (up to MAX_TOKENS). */
  readonly tokens: Token[];
  /** True when `set_config` appears anywhere in the statement. */
  readonly callsSetConfig: boolean;
  /** Literal first arguments of set_config(...) calls. */
  readonly setConfigNames: string[];
}

const MAX_TOKENS = 8;
/** How many leading tokens a Statement keeps: one with fewer is whole. */
export const MAX_SCANNED_TOKENS = MAX_TOKENS;

const GATE =
  /set|listen|prepare|execute|deallocate|discard|role|user|group|database|temp|authorization|stdin|stdout|stat_activity|stat_ssl|stat_gssapi|numbackends|pg_cursor|extension|grant|revoke|declare|close|savepoint|release|rollback|owned/i;

/**
 * Whether a plain '…' string takes backslash escapes, as it does where
 * standard_conforming_strings is off: set around a session's scan
 * (`withBackslashStrings`), which runs synchronously.
 */
let backslashStrings = false;

/** Runs `fn` with plain strings scanned as standard_conforming_strings = off reads them when `on`. */
export function withBackslashStrings<T>(on: boolean, fn: () => T): T {
  if (!on) return fn();
  backslashStrings = true;
  try {
    return fn();
  } finally {
    backslashStrings = false;
  }
}

/**
 * A U&"…" identifier's name: \XXXX and \+XXXXXX are code points, \\ a
 * backslash (or `escape` for \, from its UESCAPE clause); null when an
 * escape is malformed (PostgreSQL's 42601: then the name is left alone).
 */
function unicodeIdentName(raw: string, escape: string): string | null {
  let out = "";
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i]!;
    if (ch !== escape) {
      out += ch;
      continue;
    }
    if (raw[i + 1] === escape) {
      out += escape;
      i++;
      continue;
    }
    const six = raw[i + 1] === "+";
    const hex = raw.slice(i + (six ? 2 : 1), i + (six ? 8 : 5));
    if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== (six ? 6 : 4)) return null;
    const cp = parseInt(hex, 16);
    if (cp === 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return null;
    out += String.fromCodePoint(cp);
    i += six ? 7 : 4;
  }
  return out;
}

/** False when the text cannot contain anything the engine layer tracks. */
export function mightMatter(sql: string): boolean {
  return GATE.test(sql);
}

/**
 * Whether `sql` holds no statement: white space, semicolons, line comments
 * and block comments (nested, as PostgreSQL's scanner nests them). The
 * pings of connection pools: pgx's `-- ping` (pgxpool, before it hands out
 * a connection idle for a second), pgjdbc's empty statement (HikariCP's
 * isValid), `;`. One pass, no regular expression: a Query's text can be
 * megabytes, and most end the test at their first character.
 */
export function isEmptyQuery(sql: string): boolean {
  const n = sql.length;
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c === 0x20 || c === 0x3b || (c >= 0x09 && c <= 0x0d)) {
      i++;
    } else if (c === 0x2d && sql.charCodeAt(i + 1) === 0x2d) {
      const eol = sql.indexOf("\n", i + 2);
      if (eol < 0) return true;
      i = eol + 1;
    } else if (c === 0x2f && sql.charCodeAt(i + 1) === 0x2a) {
      let depth = 1;
      i += 2;
      while (depth > 0) {
        const open = sql.indexOf("/*", i);
        const close = sql.indexOf("*/", i);
        if (close < 0) return false; // unterminated: the engine's error
        if (open >= 0 && open < close) {
          depth++;
          i = open + 2;
        } else {
          depth--;
          i = close + 2;
        }
      }
    } else return false;
  }
  return true;
}

/** What offengine.ts may answer without the engine names one of these, is a SHOW, or is empty. */
const OFF_ENGINE_GATE = /pg_cancel_backend|pg_terminate_backend|pg_stat_activity|^\s*show\s/i;

/** False when offengine.ts cannot answer the text: the cheap test before it reads an input. */
export function mayAnswerOffEngine(sql: string): boolean {
  return OFF_ENGINE_GATE.test(sql) || isEmptyQuery(sql);
}

function isIdentStart(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c >= 128;
}

function isIdentPart(c: number): boolean {
  return isIdentStart(c) || (c >= 48 && c <= 57) || c === 36;
}

/** Splits `sql` into statements with their leading tokens (`maxTokens` of each, every one with Infinity). */
export function scanStatements(sql: string, maxTokens = MAX_TOKENS): Statement[] {
  const out: Statement[] = [];
  let tokens: Token[] = [];
  let stmtStart = -1;
  let depth = 0;
  let callsSetConfig = false;
  let setConfigNames: string[] = [];
  // 1: saw set_config, 2: saw "("
  let afterSetConfig = 0;
  const n = sql.length;
  let i = 0;
  const finish = (end: number) => {
    if (stmtStart >= 0) {
      out.push({
        start: stmtStart,
        end,
        tokens,
        callsSetConfig,
        setConfigNames,
      });
    }
    tokens = [];
    stmtStart = -1;
    callsSetConfig = false;
    setConfigNames = [];
    afterSetConfig = 0;
  };
  const push = (t: Token) => {
    if (stmtStart < 0) stmtStart = t.start;
    if (tokens.length < maxTokens) tokens.push(t);
    if (t.kind === "word" && t.text === "set_config") {
      callsSetConfig = true;
      afterSetConfig = 1;
    } else if (afterSetConfig === 1 && t.text === "(") afterSetConfig = 2;
    else {
      if (afterSetConfig === 2 && t.kind === "string") setConfigNames.push(t.text.toLowerCase());
      afterSetConfig = 0;
    }
  };
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c === 32 || c === 9 || c === 10 || c === 13 || c === 12) {
      i++;
    } else if (c === 45 && sql.charCodeAt(i + 1) === 45) {
      const e = sql.indexOf("\n", i);
      i = e < 0 ? n : e + 1;
    } else if (c === 47 && sql.charCodeAt(i + 1) === 42) {
      let level = 1;
      i += 2;
      while (i < n && level > 0) {
        if (sql.charCodeAt(i) === 47 && sql.charCodeAt(i + 1) === 42) {
          level++;
          i += 2;
        } else if (sql.charCodeAt(i) === 42 && sql.charCodeAt(i + 1) === 47) {
          level--;
          i += 2;
        } else i++;
      }
    } else if (c === 39 || ((c === 69 || c === 101) && sql.charCodeAt(i + 1) === 39)) {
      // 'string' or E'string' (backslash escapes only in the E form, or
      // in both with standard_conforming_strings off).
      const escapes = c !== 39 || backslashStrings;
      const start = i;
      i += c !== 39 ? 2 : 1;
      let value = "";
      while (i < n) {
        const d = sql.charCodeAt(i);
        if (escapes && d === 92) {
          value += sql[i + 1] ?? "";
          i += 2;
        } else if (d === 39) {
          if (sql.charCodeAt(i + 1) === 39) {
            value += "'";
            i += 2;
          } else {
            i++;
            break;
          }
        } else {
          value += sql[i];
          i++;
        }
      }
      push({ text: value, kind: "string", start, end: i });
    } else if (
      (c === 85 || c === 117) && sql.charCodeAt(i + 1) === 38 && sql.charCodeAt(i + 2) === 34
    ) {
      // U&"identifier" [UESCAPE 'c']: a name in Unicode escapes.
      const start = i;
      const close = sql.indexOf('"', i + 3);
      let raw = sql.slice(i + 3, close < 0 ? n : close);
      i = close < 0 ? n : close + 1;
      while (sql.charCodeAt(i) === 34) {
        // "" inside it: a quote.
        const next = sql.indexOf('"', i + 1);
        raw += '"' + sql.slice(i + 1, next < 0 ? n : next);
        i = next < 0 ? n : next + 1;
      }
      const uescape = /^\s*uescape\s*'([^'])'/i.exec(sql.slice(i, i + 32));
      if (uescape !== null) i += uescape[0].length;
      const name = unicodeIdentName(raw, uescape?.[1] ?? "\\");
      push({ text: name ?? "", kind: name === null ? "punct" : "quoted", start, end: i });
    } else if (c === 34) {
      const start = i;
      i++;
      let value = "";
      while (i < n) {
        if (sql.charCodeAt(i) === 34) {
          if (sql.charCodeAt(i + 1) === 34) {
            value += '"';
            i += 2;
          } else {
            i++;
            break;
          }
        } else {
          value += sql[i];
          i++;
        }
      }
      push({ text: value, kind: "quoted", start, end: i });
    } else if (c === 36 && /^\$([A-Za-z_][A-Za-z_0-9]*)?\$/.test(sql.slice(i, i + 64))) {
      const tag = /^\$([A-Za-z_][A-Za-z_0-9]*)?\$/.exec(sql.slice(i, i + 64))![0];
      const start = i;
      const close = sql.indexOf(tag, i + tag.length);
      i = close < 0 ? n : close + tag.length;
      push({ text: "", kind: "string", start, end: i });
    } else if (isIdentStart(c)) {
      const start = i;
      while (i < n && isIdentPart(sql.charCodeAt(i))) i++;
      push({ text: sql.slice(start, i).toLowerCase(), kind: "word", start, end: i });
    } else if (c === 59 && depth === 0) {
      finish(i);
      i++;
    } else {
      if (c === 40) depth++;
      else if (c === 41 && depth > 0) depth--;
      push({ text: sql[i]!, kind: "punct", start: i, end: i + 1 });
      i++;
    }
  }
  finish(n);
  return out;
}

/** An identifier token's name as the server folds it; null for other tokens. */
export function identName(t: Token | undefined): string | null {
  if (t === undefined) return null;
  if (t.kind === "quoted") return t.text;
  if (t.kind === "word") return t.text;
  return null;
}

/** `a.b` custom setting name starting at tokens[i], with the index after it. */
export function settingName(tokens: Token[], i: number): [string, number] | null {
  const first = identName(tokens[i]);
  if (first === null) return null;
  let name = first;
  let j = i + 1;
  while (tokens[j]?.text === "." && identName(tokens[j + 1]) !== null) {
    name += "." + identName(tokens[j + 1]);
    j += 2;
  }
  return [name, j];
}

/**
 * The setting a SET or RESET statement (`tokens` from its first word on)
 * names, past SESSION or LOCAL, with the index after it (settingName).
 */
export function setStatementName(tokens: Token[]): [string, number] | null {
  const w1 = tokens[1]?.kind === "word" ? tokens[1].text : "";
  return settingName(tokens, w1 === "session" || w1 === "local" ? 2 : 1);
}

/**
 * The custom (dotted) settings `sql` sets or resets: the names of its SET
 * and RESET statements and set_config's literal first arguments,
 * lowercased (customsettings.ts reads a function's statements so).
 */
export function customSettingNames(sql: string): string[] {
  const names: string[] = [];
  for (const st of scanStatements(sql)) {
    for (const n of st.setConfigNames) if (n.includes(".")) names.push(n);
    const w0 = st.tokens[0]?.kind === "word" ? st.tokens[0].text : "";
    if (w0 !== "set" && w0 !== "reset") continue;
    const name = setStatementName(st.tokens);
    if (name !== null && name[0].includes(".")) names.push(name[0]);
  }
  return names;
}

/**
 * Whether an input starts or stops a backup: its last mention of
 * pg_backup_start or pg_backup_stop, in any case; null when it names
 * neither. A byte scan, not a lexical one: a mention in a string counts.
 */
export function lastBackupCall(input: Uint8Array): "start" | "stop" | null {
  // One pass for both names: the last "pg_backup_st", then "art" or "op".
  const at = lastMentionOf(input, "pg_backup_st");
  if (at === -1) return null;
  const next = (input[at + 12] ?? 0) | 0x20;
  return next === 0x61 ? "start" : next === 0x6f ? "stop" : null;
}

/** Where `word` (lowercase ASCII letters and "_") last occurs in `bytes`, in any case; -1 if nowhere. */
function lastMentionOf(bytes: Uint8Array, word: string): number {
  const first = word.charCodeAt(0);
  outer: for (let i = bytes.length - word.length; i >= 0; i--) {
    if ((bytes[i]! | 0x20) !== first) continue;
    for (let k = 1; k < word.length; k++) {
      const c = word.charCodeAt(k);
      const b = bytes[i + k]!;
      if ((c === 0x5f ? b : b | 0x20) !== c) continue outer;
    }
    return i;
  }
  return -1;
}
