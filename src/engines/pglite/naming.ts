/**
 * Per-session names on the shared engine, and what a session's input does
 * to session state.
 *
 * PGlite has one backend, so one namespace of prepared statements. Every
 * named statement a session creates (Parse, SQL PREPARE) is renamed with the
 * session's prefix in Parse, Bind, Describe, Close, PREPARE, EXECUTE and
 * DEALLOCATE, and the prefix is taken out of error texts on the way back
 * (`publicText`), so two sessions can both use "s1". Portals are not
 * renamed: a portal cannot outlive its transaction and a session owns the
 * engine for the whole of its transaction, so no other session can see one.
 * A cursor declared WITH HOLD does outlive it: its name is prefixed in the
 * DECLARE, and then wherever the session names it (FETCH, MOVE, CLOSE,
 * WHERE CURRENT OF) until it closes it. Other cursor names (a transaction's
 * own, a PL/pgSQL refcursor's) are left alone.
 *
 * The same pass records what the engine layer must act on after the input
 * ran: settings that may have changed, LISTEN/UNLISTEN, role and database
 * DDL, temporary tables, unnamed-statement use. It never changes SQL beyond
 * swapping a statement name token, and never drops a message.
 */

import { ERRCODE, PgError } from "../../core/elog.ts";
import { FE } from "../../core/protocol/constants.ts";
import {
  identName,
  MAX_SCANNED_TOKENS,
  mightMatter,
  scanStatements,
  settingName,
  type Statement,
  type Token,
} from "./sqlscan.ts";
import { unsupportedClientEncoding } from "./settings.ts";
import { engineName } from "./enginenames.ts";
import { TextEdits } from "./textedits.ts";
import { concat, cstring, type Frame, quoteIdent, readCString } from "./wire.ts";

export type ListenOp = readonly ["listen" | "unlisten", string];

export interface InputPlan {
  /** What the engine runs: the input, with statement names prefixed. */
  readonly bytes: Uint8Array;
  readonly frames: readonly Frame[];
  readonly settingsDirty: boolean;
  /** Custom (dotted) setting names the input sets, e.g. "app.tenant". */
  readonly customSettings: readonly string[];
  readonly listenOps: readonly ListenOp[];
  readonly rolesDirty: boolean;
  readonly databasesDirty: boolean;
  readonly createsTempObject: boolean;
  /** Engine names of statements this input creates. */
  readonly createdStatements: readonly string[];
  /** The last Parse of the unnamed statement in this input, as the engine gets it. */
  readonly unnamedParse: Uint8Array | null;
  /** A Bind or Describe uses the unnamed statement before any Parse of it in this input. */
  readonly usesUnnamedFirst: boolean;
  /** A simple Query (which drops the engine's unnamed statement) is in the input. */
  readonly hasQuery: boolean;
  /** The input is one Query that is exactly DISCARD ALL or DEALLOCATE ALL. */
  readonly special: "discard all" | "deallocate all" | null;
  /**
   * CREATE, ALTER or DROP DATABASE: the statement's text when the input is
   * one Query of that statement alone, "embedded" when it is part of a
   * larger input (a multi-database cluster carries them out itself,
   * dbcommands.ts, and refuses the second form).
   */
  readonly databaseCommand: string | "embedded" | null;
  /** The input is one Query whose statements include COPY ... FROM STDIN. */
  readonly copyFromStdin: boolean;
  /** A statement pgts cannot run for this session (reported instead of running anything). */
  readonly reject: PgError | null;
  /**
   * The text names pg_stat_activity (or pg_stat_ssl, pg_stat_gssapi) or
   * pg_listening_channels: the engine passes the rows and the session's
   * channels with this exec (backends.ts).
   */
  readonly readsActivity: boolean;
  /** The text names an extension (CREATE EXTENSION, pg_available_extensions): extensions.ts. */
  readonly needsExtensions: boolean;
  /** Cursors this input declares WITH HOLD (as the session names them). */
  readonly declaredHoldCursors: readonly string[];
  /** The session's hold cursors this input closes by name. */
  readonly closedHoldCursors: readonly string[];
  /** The input has CLOSE ALL. */
  readonly closesAll: boolean;
  /** The edits of its one rewritten SQL text, for error positions (textedits.ts); else null. */
  readonly edits: TextEdits | null;
}

/**
 * What executing a named statement does again each time its Bind runs,
 * learnt from the text of its Parse (a client that prepared `LISTEN "c"`
 * executes it again with Bind alone, which carries no text).
 */
export interface StatementEffects {
  readonly listenOps: readonly ListenOp[];
  readonly settingsDirty: boolean;
  readonly customSettings: readonly string[];
  readonly rolesDirty: boolean;
  readonly databasesDirty: boolean;
  readonly readsActivity: boolean;
  /** The statement's text when it is one CREATE/ALTER/DROP DATABASE. */
  readonly databaseCommand: string | null;
}

interface Acc {
  settingsDirty: boolean;
  customSettings: string[];
  listenOps: ListenOp[];
  rolesDirty: boolean;
  databasesDirty: boolean;
  databaseCommand: string | "embedded" | null;
  /** The text of a prepared database command a Bind of this input executes. */
  boundDatabaseCommand: string | null;
  createsTempObject: boolean;
  createdStatements: string[];
  special: "discard all" | "deallocate all" | null;
  /**
   * `special` came from a statement that is not a lone Query: it stands only
   * if the input is an extended batch of that statement alone.
   */
  specialParsed: boolean;
  copyFromStdin: boolean;
  reject: PgError | null;
  readsActivity: boolean;
  needsExtensions: boolean;
  /** The session's WITH HOLD cursors, with those this input declares. */
  holdCursors: ReadonlySet<string>;
  declaredHoldCursors: string[];
  closedHoldCursors: string[];
  closesAll: boolean;
  /** The edits of the input's rewritten SQL text, while there is one (textedits.ts). */
  edits: TextEdits | null;
  /** How many of the input's texts were rewritten. */
  rewrittenTexts: number;
}

const NO_CURSORS: ReadonlySet<string> = new Set();

/** A hold cursor's name token, renamed with the session's prefix. */
function cursorName(tok: Token, prefix: string, name: string) {
  return { start: tok.start, end: tok.end, text: quoteIdent(engineName(prefix, name)) };
}

function aloneOnly(what: string): PgError {
  return new PgError(
    ERRCODE.FEATURE_NOT_SUPPORTED,
    `${what} must be sent as a query of its own`,
    {
      detail:
        "pgts runs every session on one PGlite backend and carries out this command for this session only.",
    },
  );
}

/**
 * DISCARD ALL and DEALLOCATE ALL, which pgts carries out for the session
 * alone: as a lone Query, or as the one statement of an extended batch
 * (psycopg 3 sends every command so), which planInput decides once it has
 * seen the whole input.
 */
function sessionCommand(acc: Acc, lone: boolean, kind: "discard all" | "deallocate all"): void {
  if (lone) acc.special = kind;
  else if (acc.special === null) {
    acc.special = kind;
    acc.specialParsed = true;
  } else acc.reject ??= aloneOnly(kind.toUpperCase());
}

/**
 * Looks at one statement; returns a replacement for its name token when it
 * names a prepared statement.
 */
function inspect(
  sql: string,
  st: Statement,
  prefix: string,
  acc: Acc,
  lone: boolean,
  user: string | undefined,
): { start: number; end: number; text: string } | null {
  const t = st.tokens;
  const w0 = t[0]?.kind === "word" ? t[0].text : "";
  const w1 = t[1]?.kind === "word" ? t[1].text : "";
  if (st.callsSetConfig) {
    acc.settingsDirty = true;
    for (const n of st.setConfigNames) if (n.includes(".")) acc.customSettings.push(n);
    // client_encoding however computed: the check hook in encoding.ts refuses it.
  }
  if (w0 === "copy" && /\bfrom\s+stdin\b/i.test(sql.slice(st.start, st.end))) {
    // The session feeds the COPY its data as it comes (copyfeed.ts), or
    // buffers it inline; either way the Query's answer must end with the
    // COPY, which only a lone Query allows.
    if (lone) acc.copyFromStdin = true;
    else acc.reject ??= aloneOnly("COPY FROM STDIN");
  }
  switch (w0) {
    case "set":
    case "reset": {
      acc.settingsDirty = true;
      // RESET SESSION AUTHORIZATION and SET SESSION AUTHORIZATION DEFAULT go
      // back to the role that authenticated: for a session, the one it logged
      // in as, not the engine's (whose reset the identity guard refuses).
      if (
        user !== undefined && w1 === "session" && t[2]?.text === "authorization" &&
        (w0 === "reset" ? t.length === 3 : t.length === 4 && t[3]?.text === "default")
      ) {
        return {
          start: t[0]!.start,
          end: t[t.length - 1]!.end,
          text: `SET SESSION AUTHORIZATION ${quoteIdent(user)}`,
        };
      }
      const i = w1 === "session" || w1 === "local" ? 2 : 1;
      const name = settingName(t, i);
      if (name !== null && name[0].includes(".")) acc.customSettings.push(name[0]);
      if (w0 === "set" && name !== null) {
        // SET client_encoding TO x, SET client_encoding = x, SET NAMES x
        let v = name[0] === "names" ? t[name[1]] : undefined;
        if (name[0] === "client_encoding") {
          const at = t[name[1]]?.text === "to" || t[name[1]]?.text === "=" ? name[1] + 1 : -1;
          v = at < 0 ? undefined : t[at];
        }
        const refused = v === undefined || v.kind === "punct"
          ? null
          : unsupportedClientEncoding(v.text);
        if (refused !== null) acc.reject ??= refused;
      }
      return null;
    }
    case "discard":
      acc.settingsDirty = true;
      if (w1 === "all") sessionCommand(acc, lone, "discard all");
      return null;
    case "listen":
    case "unlisten": {
      const ch = t[1]?.text === "*" ? "*" : identName(t[1]);
      if (ch !== null) acc.listenOps.push([w0, ch]);
      return null;
    }
    case "create":
    case "alter":
    case "drop": {
      let i = 1;
      if (t[i]?.text === "or" && t[i + 1]?.text === "replace") i += 2;
      if (t[i]?.text === "global" || t[i]?.text === "local") i++;
      const k = t[i]?.kind === "word" ? t[i]!.text : "";
      if (k === "role" || k === "user" || k === "group") acc.rolesDirty = true;
      if (k === "database") {
        acc.databasesDirty = true;
        acc.databaseCommand = lone ? sql.slice(st.start, st.end) : "embedded";
      }
      // ALTER SYSTEM writes the cluster's postgresql.auto.conf (altersystem.ts).
      if (w0 === "alter" && k === "system") {
        acc.databaseCommand = lone ? sql.slice(st.start, st.end) : "embedded";
      }
      if (w0 === "create" && (k === "temp" || k === "temporary")) acc.createsTempObject = true;
      return w0 === "create" ? prefixedName(CREATE_AS_EXECUTE, sql, st, prefix) : null;
    }
    case "explain":
      return prefixedName(EXPLAIN_EXECUTE, sql, st, prefix);
    case "comment":
      // A role's comment is the cluster's (pg_authid.ts).
      if (w1 === "on" && t[2]?.kind === "word" && t[2].text === "role") acc.rolesDirty = true;
      return null;
    case "grant":
    case "revoke":
      // GRANT role TO role changes pg_auth_members; GRANT … ON does not.
      // GRANT … ON DATABASE changes who may connect (postinit.ts).
      {
        const on = t.findIndex((x) => x.kind === "word" && x.text === "on");
        const what = t[on + 1]?.kind === "word" ? t[on + 1]!.text : "";
        // GRANT SET ON PARAMETER: pg_parameter_acl, copied with the roles (pg_authid.ts).
        if (on < 0 || what === "parameter") acc.rolesDirty = true;
        else if (what === "database") acc.databasesDirty = true;
      }
      return null;
    case "declare": {
      // DECLARE name [BINARY] [ASENSITIVE | INSENSITIVE] [[NO] SCROLL] CURSOR WITH HOLD FOR …
      const tok = t[1];
      const name = identName(tok);
      if (name === null || tok === undefined) return null;
      const text = sql.slice(st.start, st.end);
      if (/\bcursor\s+with\s+hold\s+for\b/i.test(text)) {
        acc.declaredHoldCursors.push(name);
        if (!acc.holdCursors.has(name)) acc.holdCursors = new Set([...acc.holdCursors, name]);
      }
      return acc.holdCursors.has(name) ? cursorName(tok, prefix, name) : null;
    }
    case "fetch":
    case "move": {
      // The cursor's name ends the statement, whatever direction comes first.
      if (t.length >= MAX_SCANNED_TOKENS || acc.holdCursors.size === 0) return null;
      const tok = t[t.length - 1];
      const name = identName(tok);
      if (name === null || tok === undefined || t.length < 2) return null;
      return acc.holdCursors.has(name) ? cursorName(tok, prefix, name) : null;
    }
    case "close": {
      if (t.length === 2 && t[1]?.kind === "word" && t[1].text === "all") {
        acc.closesAll = true;
        return null;
      }
      const tok = t[1];
      const name = identName(tok);
      if (name === null || tok === undefined || !acc.holdCursors.has(name)) return null;
      acc.closedHoldCursors.push(name);
      return cursorName(tok, prefix, name);
    }
    case "update":
    case "delete":
    case "with": {
      if (acc.holdCursors.size === 0) return null;
      // WHERE CURRENT OF name, past the tokens the scan keeps.
      return prefixedName(CURRENT_OF, sql, st, prefix, (name) => acc.holdCursors.has(name));
    }
    case "prepare":
    case "execute":
    case "deallocate": {
      // PREPARE TRANSACTION 'gid' (two-phase commit) names no statement.
      if (w0 === "prepare" && w1 === "transaction" && t[2]?.kind === "string") return null;
      let i = 1;
      if (w0 === "deallocate" && w1 === "prepare") i = 2;
      const tok = t[i];
      if (w0 === "deallocate" && tok?.kind === "word" && tok.text === "all") {
        sessionCommand(acc, lone, "deallocate all");
        return null;
      }
      const name = identName(tok);
      if (name === null || tok === undefined) return null;
      const onEngine = engineName(prefix, name);
      if (w0 === "prepare") acc.createdStatements.push(onEngine);
      return { start: tok.start, end: tok.end, text: quoteIdent(onEngine) };
    }
    default:
      return null;
  }
}

/** An identifier as SQL spells one: quoted, or a plain word. */
const IDENT = String.raw`(?:"(?:[^"]|"")+"|[a-z_\u0080-\uffff][a-z0-9_$\u0080-\uffff]*)`;
/** A statement's or cursor's name, captured. */
const NAME = `(${IDENT})`;
/** A name, qualified or not, in either spelling. */
const QUALIFIED = String.raw`(?:${IDENT}\s*\.\s*)*${IDENT}`;
/** `EXPLAIN [(options)] [ANALYZE] [VERBOSE] EXECUTE name`, the name's span captured. */
const EXPLAIN_EXECUTE = new RegExp(
  String.raw`^\s*explain\s*(?:\([^)]*\)\s*)?(?:(?:analy[sz]e|verbose)\s+)*execute\s+` + NAME,
  "di",
);
/**
 * `CREATE [GLOBAL|LOCAL] [TEMP|TEMPORARY|UNLOGGED] TABLE [IF NOT EXISTS]
 * name [(columns)] [USING method] [WITH (…)] [ON COMMIT …] [TABLESPACE t]
 * AS EXECUTE name`, the statement's name's span captured; anchored at the
 * start, so a function body that says the same is never matched.
 */
const CREATE_AS_EXECUTE = new RegExp(
  String.raw`^\s*create\s+(?:(?:global|local)\s+)?(?:(?:temp|temporary|unlogged)\s+)?table\s+` +
    String.raw`(?:if\s+not\s+exists\s+)?` + QUALIFIED + String.raw`\s*(?:\([^)]*\)\s*)?` +
    String.raw`(?:using\s+\S+\s+)?(?:with(?:out\s+oids)?\s*(?:\([^)]*\)\s*)?)?` +
    String
      .raw`(?:on\s+commit\s+(?:preserve\s+rows|delete\s+rows|drop)\s+)?(?:tablespace\s+\S+\s+)?` +
    String.raw`as\s+execute\s+` + NAME,
  "di",
);

/**
 * The name `re` captures in the statement (EXPLAIN EXECUTE's, CREATE TABLE
 * AS EXECUTE's, WHERE CURRENT OF's) as the session's own, or null when `re`
 * does not match or `ours` says the name is not one the session renames.
 */
function prefixedName(
  re: RegExp,
  sql: string,
  st: Statement,
  prefix: string,
  ours: (name: string) => boolean = () => true,
): { start: number; end: number; text: string } | null {
  const m = re.exec(sql.slice(st.start, st.end));
  const at = m?.indices?.[1];
  if (m === null || at === undefined) return null;
  const raw = m[1]!;
  const name = raw.startsWith('"') ? raw.slice(1, -1).replaceAll('""', '"') : raw.toLowerCase();
  if (!ours(name)) return null;
  return {
    start: st.start + at[0],
    end: st.start + at[1],
    text: quoteIdent(engineName(prefix, name)),
  };
}

/** `WHERE CURRENT OF name` ending a statement, the name's span captured. */
const CURRENT_OF = new RegExp(String.raw`\bcurrent\s+of\s+${NAME}\s*;?\s*$`, "di");

/** Words of statements that may name a hold cursor the session has. */
const CURSOR_USE = /fetch|move|current/i;

/** Scans SQL text; returns it with prepared-statement and hold cursor names prefixed. */
function rewriteSql(
  sql: string,
  prefix: string,
  acc: Acc,
  isQuery: boolean,
  user: string | undefined,
): string {
  if (!mightMatter(sql) && (acc.holdCursors.size === 0 || !CURSOR_USE.test(sql))) return sql;
  if (
    !acc.readsActivity &&
    /pg_stat_activity|pg_stat_ssl|pg_stat_gssapi|listening_channels/i.test(sql)
  ) {
    acc.readsActivity = true;
  }
  if (!acc.needsExtensions && /extension/i.test(sql)) acc.needsExtensions = true;
  const stmts = scanStatements(sql);
  const lone = isQuery && stmts.length === 1;
  let out = "";
  let at = 0;
  let edits: TextEdits | null = null;
  for (const st of stmts) {
    const r = inspect(sql, st, prefix, acc, lone, user);
    if (r !== null) {
      out += sql.slice(at, r.start) + r.text;
      at = r.end;
      (edits ??= new TextEdits(sql)).replaced(r.start, r.end, r.text);
    }
  }
  if (edits === null) return sql;
  acc.edits = ++acc.rewrittenTexts === 1 ? edits : null;
  return out + sql.slice(at);
}

function frameOf(type: number, body: Uint8Array[]): Uint8Array {
  const b = concat(body);
  const out = new Uint8Array(5 + b.length);
  out[0] = type;
  new DataView(out.buffer).setInt32(1, 4 + b.length);
  out.set(b, 5);
  return out;
}

function newAcc(): Acc {
  return {
    settingsDirty: false,
    customSettings: [],
    listenOps: [],
    rolesDirty: false,
    databasesDirty: false,
    databaseCommand: null,
    boundDatabaseCommand: null,
    createsTempObject: false,
    createdStatements: [],
    special: null,
    specialParsed: false,
    copyFromStdin: false,
    reject: null,
    readsActivity: false,
    needsExtensions: false,
    holdCursors: NO_CURSORS,
    declaredHoldCursors: [],
    closedHoldCursors: [],
    closesAll: false,
    edits: null,
    rewrittenTexts: 0,
  };
}

/** Adds what a statement does again when it is executed to `acc`. */
function addEffects(acc: Acc, e: StatementEffects): void {
  if (e.listenOps.length > 0) acc.listenOps.push(...e.listenOps);
  if (e.customSettings.length > 0) acc.customSettings.push(...e.customSettings);
  acc.settingsDirty ||= e.settingsDirty;
  acc.rolesDirty ||= e.rolesDirty;
  acc.databasesDirty ||= e.databasesDirty;
  acc.readsActivity ||= e.readsActivity;
  if (e.databaseCommand !== null) {
    acc.boundDatabaseCommand = e.databaseCommand;
    acc.databaseCommand ??= "embedded";
  }
}

/**
 * Renames and inspects a session's framed input. `frames` must be
 * `splitFrames(input)`. `effects`: the session's named statements that do
 * something pgts tracks (by engine name), kept up to date by the input's
 * Parse messages and applied again at their Binds.
 */
export function planInput(
  input: Uint8Array,
  frames: readonly Frame[],
  prefix: string,
  options: {
    user?: string;
    effects?: Map<string, StatementEffects>;
    /** The session's open WITH HOLD cursors (names as it spells them). */
    holdCursors?: ReadonlySet<string>;
  } = {},
): InputPlan {
  const acc = newAcc();
  if (options.holdCursors !== undefined) acc.holdCursors = options.holdCursors;
  const effects = options.effects;
  let parts: Uint8Array[] | null = null; // set once a message changes
  const outFrames: Frame[] = [];
  let outAt = 0;
  let unnamedParse: Uint8Array | null = null;
  let usesUnnamedFirst = false;
  let hasQuery = false;
  const parsedHere = new Set<string>();
  const emit = (i: number, replacement: Uint8Array | null) => {
    const f = frames[i]!;
    if (replacement !== null && parts === null) {
      parts = [];
      for (let j = 0; j < i; j++) parts.push(input.subarray(frames[j]!.start, frames[j]!.end));
    }
    const bytes = replacement ?? input.subarray(f.start, f.end);
    if (parts !== null) parts.push(bytes);
    outFrames.push({ type: f.type, start: outAt, end: outAt + bytes.length });
    outAt += bytes.length;
    return bytes;
  };
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i]!;
    const body = input.subarray(f.start + 5, f.end);
    switch (f.type) {
      case FE.Query: {
        hasQuery = true;
        const [sql] = readCString(body, 0);
        const sql2 = rewriteSql(sql, prefix, acc, frames.length === 1, options.user);
        emit(i, sql2 === sql ? null : frameOf(FE.Query, [cstring(sql2)]));
        break;
      }
      case FE.Parse: {
        const [name, afterName] = readCString(body, 0);
        const [sql, afterSql] = readCString(body, afterName);
        const beforeParse = snapshot(acc);
        const sql2 = rewriteSql(sql, prefix, acc, false, options.user);
        if (name === "") {
          const bytes = emit(
            i,
            sql2 === sql
              ? null
              : frameOf(FE.Parse, [cstring(""), cstring(sql2), body.subarray(afterSql)]),
          );
          unnamedParse = bytes.slice();
        } else {
          acc.createdStatements.push(engineName(prefix, name));
          parsedHere.add(name);
          if (effects !== undefined) {
            const e = effectsOf(sql, acc, { prefix, user: options.user }, beforeParse);
            if (e !== null) effects.set(prefix + name, e);
            else if (effects.size > 0) effects.delete(prefix + name);
          }
          emit(
            i,
            frameOf(FE.Parse, [
              cstring(engineName(prefix, name)),
              cstring(sql2),
              body.subarray(afterSql),
            ]),
          );
        }
        break;
      }
      case FE.Bind: {
        const [portal, afterPortal] = readCString(body, 0);
        const [stmt, afterStmt] = readCString(body, afterPortal);
        if (stmt === "") {
          if (unnamedParse === null) usesUnnamedFirst = true;
          emit(i, null);
        } else {
          if (effects !== undefined && effects.size > 0) {
            const e = effects.get(prefix + stmt);
            // The Parse in this same input counted them already.
            if (e !== undefined && !parsedHere.has(stmt)) addEffects(acc, e);
          }
          emit(
            i,
            frameOf(FE.Bind, [
              cstring(portal),
              cstring(engineName(prefix, stmt)),
              body.subarray(afterStmt),
            ]),
          );
        }
        break;
      }
      case FE.Describe:
      case FE.Close: {
        const kind = body[0];
        const [name] = readCString(body, 1);
        if (kind !== 0x53) emit(i, null); // not 'S', a statement: a portal keeps its name
        else if (name === "") {
          if (f.type === FE.Describe && unnamedParse === null) usesUnnamedFirst = true;
          emit(i, null);
        } else {
          emit(i, frameOf(f.type, [Uint8Array.of(kind), cstring(engineName(prefix, name))]));
        }
        break;
      }
      default:
        emit(i, null);
    }
  }
  // A database command alone in an extended batch (postgres.js, the HTTP
  // adapter send every statement so) is carried out as a lone Query's.
  // Parsed or described only, never executed: PGlite may do that itself.
  if (acc.databaseCommand === "embedded") {
    acc.databaseCommand = !frames.some((f) => f.type === FE.Execute || f.type === FE.Query)
      ? null
      : loneExtendedStatement(input, frames) ?? loneBound(frames, acc.boundDatabaseCommand) ??
        "embedded";
  }
  if (
    acc.specialParsed && (acc.special === null || loneExtendedStatement(input, frames) === null)
  ) {
    acc.reject ??= aloneOnly((acc.special ?? "DISCARD ALL").toUpperCase());
    acc.special = null;
  }
  // Built field by field: an object spread of `acc` costs more than the
  // rest of the plan for a one-statement input.
  return {
    bytes: parts === null ? input : concat(parts),
    frames: parts === null ? frames : outFrames,
    settingsDirty: acc.settingsDirty,
    customSettings: acc.customSettings,
    listenOps: acc.listenOps,
    rolesDirty: acc.rolesDirty,
    databasesDirty: acc.databasesDirty,
    databaseCommand: acc.databaseCommand,
    createsTempObject: acc.createsTempObject,
    createdStatements: acc.createdStatements,
    special: acc.special,
    copyFromStdin: acc.copyFromStdin,
    reject: acc.reject,
    readsActivity: acc.readsActivity,
    needsExtensions: acc.needsExtensions,
    declaredHoldCursors: acc.declaredHoldCursors,
    closedHoldCursors: acc.closedHoldCursors,
    closesAll: acc.closesAll,
    edits: acc.edits,
    unnamedParse,
    usesUnnamedFirst,
    hasQuery,
  };
}

/**
 * The text of an input that is one statement in one extended batch with no
 * parameters — Parse, [Describe,] Bind, [Describe,] Execute, Sync — or null.
 */
function loneExtendedStatement(input: Uint8Array, frames: readonly Frame[]): string | null {
  const types = String.fromCharCode(...frames.map((f) => f.type));
  if (!/^PD?BD?ES$/.test(types)) return null;
  const parse = frames[0]!;
  const body = input.subarray(parse.start + 5, parse.end);
  const [, afterName] = readCString(body, 0);
  const [sql, afterSql] = readCString(body, afterName);
  const paramTypes = (body[afterSql]! << 8) | body[afterSql + 1]!;
  if (paramTypes !== 0 || scanStatements(sql).length !== 1) return null;
  return sql;
}

/** A prepared database command executed alone: Bind, [Describe,] Execute, Sync. */
function loneBound(frames: readonly Frame[], sql: string | null): string | null {
  const types = String.fromCharCode(...frames.map((f) => f.type));
  return sql !== null && /^BD?ES$/.test(types) ? sql : null;
}

/** Where the accumulator stood before a Parse's text was scanned. */
function snapshot(acc: Acc): readonly [number, number, boolean, boolean, boolean, boolean] {
  return [
    acc.listenOps.length,
    acc.customSettings.length,
    acc.settingsDirty,
    acc.rolesDirty,
    acc.databasesDirty,
    acc.readsActivity,
  ];
}

/**
 * What one Parse's text added to `acc` (a flag that was set before counts
 * only if the text sets it again, so it is scanned on its own then); null
 * when it does nothing pgts tracks.
 */
function effectsOf(
  sql: string,
  acc: Acc,
  who: { prefix: string; user: string | undefined },
  before: ReturnType<typeof snapshot>,
): StatementEffects | null {
  const [listens, customs, settings, roles, dbs, activity] = before;
  let own: Acc | null = null;
  if (settings || roles || dbs || activity) {
    rewriteSql(sql, who.prefix, own = newAcc(), false, who.user);
  }
  const e: StatementEffects = {
    listenOps: acc.listenOps.slice(listens),
    customSettings: acc.customSettings.slice(customs),
    settingsDirty: own?.settingsDirty ?? acc.settingsDirty,
    rolesDirty: own?.rolesDirty ?? acc.rolesDirty,
    databasesDirty: own?.databasesDirty ?? acc.databasesDirty,
    readsActivity: own?.readsActivity ?? acc.readsActivity,
    databaseCommand: (own ?? acc).databaseCommand !== null && scanStatements(sql).length === 1
      ? sql
      : null,
  };
  return e.listenOps.length > 0 || e.settingsDirty || e.rolesDirty || e.databasesDirty ||
      e.readsActivity
    ? e
    : null;
}
