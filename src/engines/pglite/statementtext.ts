/**
 * One SQL text of a session's input, looked at statement by statement (the
 * scan behind naming.ts's planInput): its prepared-statement and WITH HOLD
 * cursor names prefixed with the session's, and what it does to session
 * state (settings, LISTEN/UNLISTEN, role and database DDL, temporary
 * objects, DISCARD ALL) gathered in the input's accumulator.
 */

import { ERRCODE, PgError } from "../../core/elog.ts";
import {
  identName,
  MAX_SCANNED_TOKENS,
  mightMatter,
  scanStatements,
  setStatementName,
  type Statement,
  type Token,
} from "./sqlscan.ts";
import { unsupportedClientEncoding } from "./settings.ts";
import { engineName, keptName } from "./enginenames.ts";
import { TextEdits } from "./textedits.ts";
import { quoteIdent } from "./wire.ts";

/**
 * A LISTEN or UNLISTEN of the input, or a savepoint's start or end around
 * them (notify.ts applies those of a transaction that committed, as
 * PostgreSQL applies the ones its savepoints kept).
 */
export type ListenOp = readonly [
  "listen" | "unlisten" | "savepoint" | "release" | "rollback to",
  string,
];

export interface Acc {
  settingsDirty: boolean;
  customSettings: string[];
  listenOps: ListenOp[];
  rolesDirty: boolean;
  /**
   * The roles a DROP ROLE (USER, GROUP) of the text names, as the engine
   * resolves them: the cluster looks for what depends on them in the other
   * databases first (dependencies.ts).
   */
  droppedRoles: string[];
  databasesDirty: boolean;
  databaseCommand: string | "embedded" | null;
  /** The text of a prepared database command a Bind of this input executes. */
  boundDatabaseCommand: string | null;
  /**
   * A GRANT or REVOKE … ON DATABASE: its text when it is a lone Query,
   * "embedded" otherwise (naming.ts then finds it alone in an extended batch,
   * or not). Carried out by the cluster when it names another database.
   */
  databaseGrant: string | "embedded" | null;
  /** The text of a prepared GRANT or REVOKE … ON DATABASE a Bind of this input executes. */
  boundDatabaseGrant: string | null;
  createsTempObject: boolean;
  createdStatements: string[];
  special: "discard all" | "deallocate all" | null;
  /**
   * `special` came from a statement that is not a lone Query: it stands only
   * if the input is an extended batch of that statement alone.
   */
  specialParsed: boolean;
  copyFromStdin: boolean;
  /**
   * A COPY FROM STDIN beside other statements of a lone Query: fed as a
   * lone one is, each COPY of the Query in turn (copyfrom.ts); refused
   * where the engine runs inline (session.ts).
   */
  copyAmongOthers: boolean;
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
  /**
   * In a lone Query: the statements (their order in it, from 0) whose
   * CommandComplete tag is RESET, though what runs is a SET pgts wrote.
   */
  resetTags: number[];
  /** A Parse's text was one RESET SESSION AUTHORIZATION (its tag: RESET, naming.ts). */
  parsedReset: boolean;
  /** A Parse's text was a COPY … FROM STDIN: a Bind and Execute of it start a COPY (naming.ts). */
  parsedCopyIn: boolean;
  /**
   * The statements the text's SQL EXECUTEs (as the session names them),
   * each with whether it is the lone statement of a lone Query: naming.ts
   * learns from the session's statements whether one starts a COPY FROM
   * STDIN (a statement parsed as one may be executed so).
   */
  executedNames: Array<readonly [string, boolean]>;
  /**
   * Names past 63 bytes that pgts renamed (as written, as kept): the engine
   * never sees them long, so PostgreSQL's NOTICE about each is the session's
   * to send (session.ts).
   */
  truncatedNames: Array<readonly [string, string]>;
  /**
   * The statements and WITH HOLD cursors this input's PREPARE and DECLARE
   * make (engine names), each with the text the client sent and the one the
   * engine gets: pg_prepared_statements and pg_cursors show the client's.
   */
  writtenTexts: WrittenText[];
}

/** A PREPARE's or DECLARE's text as the client sent it, and as the engine keeps it. */
export interface WrittenText {
  readonly engine: string;
  readonly original: string;
  rewritten: string;
}

export const NO_CURSORS: ReadonlySet<string> = new Set();

/**
 * A name (a prepared statement's, a cursor's, a LISTEN channel's) as
 * PostgreSQL's scanner keeps it, its first 63 bytes: `declare <64 bytes>a`
 * and `close <64 bytes>b` name one cursor.
 */
function scannedName(tok: Token | undefined): string | null {
  const name = identName(tok);
  return name === null ? null : keptName(name);
}

/** A statement in a DO block's body that may change roles (case "do"). */
const ROLE_STATEMENT_IN_BODY = /\b(?:(?:create|alter|drop)\s+(?:role|user|group)|grant|revoke)\b/i;

/** A DO statement's body: its string (dollar-quoted or not); null when it has none. */
function doBody(sql: string, t: readonly Token[]): string | null {
  const body = t.find((x) => x.kind === "string");
  if (body === undefined) return null;
  const tag = /^\$[A-Za-z_0-9]*\$/.exec(sql.slice(body.start, body.start + 64))?.[0];
  return tag === undefined ? body.text : sql.slice(body.start + tag.length, body.end - tag.length);
}

/** The DROP ROLE (USER, GROUP) statements of a PL/pgSQL body, wherever in a statement they start. */
function noteDroppedRolesIn(body: string, acc: Acc): void {
  for (const inner of scanStatements(body)) {
    const k = inner.tokens;
    for (let i = 0; i + 1 < k.length; i++) {
      const kind = k[i + 1]!;
      if (
        k[i]!.kind === "word" && k[i]!.text === "drop" && kind.kind === "word" &&
        (kind.text === "role" || kind.text === "user" || kind.text === "group")
      ) {
        noteDroppedRoles(k, i + 2, acc);
        break;
      }
    }
  }
}

/** DROP ROLE [IF EXISTS] name [, …] from tokens[at] on: the names, in `acc.droppedRoles`. */
function noteDroppedRoles(t: readonly Token[], at: number, acc: Acc): void {
  let i = at;
  if (t[i]?.text === "if" && t[i + 1]?.text === "exists") i += 2;
  for (;;) {
    const name = scannedName(t[i]);
    if (name === null) return;
    acc.droppedRoles.push(name);
    if (t[i + 1]?.kind !== "punct" || t[i + 1]!.text !== ",") return;
    i += 2;
  }
}

/** A hold cursor's name token, renamed with the session's prefix (and that engine name). */
function cursorName(tok: Token, prefix: string, name: string, acc: Acc) {
  noteTruncation(acc, identName(tok), name);
  const engine = engineName(prefix, name);
  return { start: tok.start, end: tok.end, text: quoteIdent(engine), engine };
}

/** A renamed name that PostgreSQL's scanner truncated: its NOTICE is the session's to send. */
function noteTruncation(acc: Acc, written: string | null, kept: string): void {
  if (written !== null && written !== kept) acc.truncatedNames.push([written, kept]);
}

export function aloneOnly(what: string): PgError {
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
 * An extended batch whose Execute of a COPY … FROM STDIN is not its one
 * statement, or is followed by more than Sync and Flush: PostgreSQL reads
 * the messages after that Execute as the COPY's data (another message is
 * its FATAL "protocol synchronization was lost"); pgts feeds the COPY the
 * client's data itself, and so runs it only alone.
 */
export function copyNotAlone(): PgError {
  return new PgError(
    ERRCODE.FEATURE_NOT_SUPPORTED,
    "COPY FROM STDIN must be the only statement its extended-protocol batch executes",
    {
      detail:
        "pgts feeds the COPY the client's data as it comes; only Sync or Flush may follow its Execute.",
    },
  );
}

/** An Execute of a COPY … FROM STDIN where the engine runs on the server's own thread. */
export function inlineExtendedCopy(): PgError {
  return new PgError(
    ERRCODE.FEATURE_NOT_SUPPORTED,
    "COPY FROM STDIN through the extended query protocol needs engine_placement = worker",
    {
      detail:
        "With engine_placement = inline the engine cannot wait for the COPY's data; send COPY ... FROM STDIN as a simple Query.",
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
 * Whether a COPY statement's text reads from the client: FROM STDIN, or
 * FROM STDOUT, which PostgreSQL's grammar takes for the same (either word
 * names the client, whichever way the COPY goes), as its scanner reads it
 * (a comment may stand between the two words). Inside parentheses too: a
 * COPY (query) TO whose query reads a table named stdin is fed for
 * nothing, harmlessly.
 */
function readsStdin(text: string): boolean {
  if (!/std(?:in|out)/i.test(text)) return false;
  const tokens = scanStatements(text, Infinity)[0]?.tokens ?? [];
  return tokens.some((t, i) => {
    const next = tokens[i + 1];
    return t.kind === "word" && t.text === "from" && next?.kind === "word" &&
      (next.text === "stdin" || next.text === "stdout");
  });
}

/**
 * The Query's text as pgts carries out its one statement `st` itself
 * (dbcommands.ts): what precedes the statement blanked, a character for a
 * character, so that an error's position is the client's, and what
 * follows it (its semicolon) kept, which PostgreSQL reports a statement
 * cut short at.
 */
function aloneInText(sql: string, st: Statement): string {
  return sql.slice(0, st.start).replace(/./gsu, " ") + sql.slice(st.start);
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
  isQuery: boolean,
  user: string | undefined,
): { start: number; end: number; text: string; resetTag?: true } | null {
  const t = st.tokens;
  const w0 = t[0]?.kind === "word" ? t[0].text : "";
  const w1 = t[1]?.kind === "word" ? t[1].text : "";
  if (st.callsSetConfig) {
    acc.settingsDirty = true;
    for (const n of st.setConfigNames) if (n.includes(".")) acc.customSettings.push(n);
    // client_encoding however computed: the check hook in encoding.ts refuses it.
  }
  if (w0 === "copy" && readsStdin(sql.slice(st.start, st.end))) {
    // The session feeds the COPY its data as it comes (copyfeed.ts), each
    // COPY of a Query in turn, or buffers it inline (a lone one only). A
    // Parse's COPY starts where it is executed (naming.ts).
    if (isQuery) {
      acc.copyFromStdin = true;
      if (!lone) acc.copyAmongOthers = true;
    } else acc.parsedCopyIn = true;
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
          // PostgreSQL's tag for the RESET spelling (SET … DEFAULT's is SET).
          ...(w0 === "reset" ? { resetTag: true as const } : {}),
        };
      }
      const name = setStatementName(t);
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
      const ch = t[1]?.text === "*" ? "*" : scannedName(t[1]);
      if (ch !== null) acc.listenOps.push([w0, ch]);
      return null;
    }
    case "savepoint":
    case "release":
    case "rollback": {
      // SAVEPOINT name, RELEASE [SAVEPOINT] name, ROLLBACK [WORK|TRANSACTION] TO [SAVEPOINT] name.
      let i = 1;
      if (w0 === "rollback") {
        if (w1 === "work" || w1 === "transaction") i++;
        if (t[i]?.text !== "to") return null;
        i++;
      }
      if (w0 !== "savepoint" && t[i]?.kind === "word" && t[i]!.text === "savepoint") i++;
      const name = scannedName(t[i]);
      if (name !== null) acc.listenOps.push([w0 === "rollback" ? "rollback to" : w0, name]);
      return null;
    }
    case "create":
    case "alter":
    case "drop": {
      let i = 1;
      if (t[i]?.text === "or" && t[i + 1]?.text === "replace") i += 2;
      if (t[i]?.text === "global" || t[i]?.text === "local") i++;
      const k = t[i]?.kind === "word" ? t[i]!.text : "";
      if (k === "role" || k === "user" || k === "group") {
        acc.rolesDirty = true;
        if (w0 === "drop") noteDroppedRoles(t, i + 1, acc);
      }
      // DROP OWNED revokes the role's privileges on every database (dbregistry.ts).
      if (w0 === "drop" && k === "owned") acc.databasesDirty = true;
      // ALTER ROLE … IN DATABASE d SET: d's engine keeps the value (dbcommands.ts).
      if (w0 === "alter" && t[3]?.text === "in" && t[4]?.text === "database") {
        acc.databaseGrant = lone && acc.databaseGrant === null
          ? sql.slice(st.start, st.end)
          : "embedded";
      }
      if (k === "database") {
        acc.databasesDirty = true;
        acc.databaseCommand = lone ? aloneInText(sql, st) : "embedded";
      }
      // ALTER SYSTEM writes the cluster's postgresql.auto.conf (altersystem.ts).
      if (w0 === "alter" && k === "system") {
        acc.databaseCommand = lone ? aloneInText(sql, st) : "embedded";
      }
      if (w0 === "create" && (k === "temp" || k === "temporary")) acc.createsTempObject = true;
      return w0 === "create" ? prefixedName(CREATE_AS_EXECUTE, sql, st, prefix, acc) : null;
    }
    case "explain":
      return prefixedName(EXPLAIN_EXECUTE, sql, st, prefix, acc) ??
        prefixedName(EXPLAIN_CREATE_AS_EXECUTE, sql, st, prefix, acc);
    case "reassign":
      // REASSIGN OWNED gives away databases too: their owners are the cluster's (dbregistry.ts).
      if (w1 === "owned") acc.databasesDirty = true;
      return null;
    case "comment":
      if (w1 !== "on" || t[2]?.kind !== "word") return null;
      // A role's comment is the cluster's (pg_authid.ts).
      if (t[2].text === "role") acc.rolesDirty = true;
      // A database's is its own engine's, which the others show (pg_database.ts), as its privileges.
      if (t[2].text === "database") {
        acc.databasesDirty = true;
        acc.databaseGrant = lone && acc.databaseGrant === null
          ? sql.slice(st.start, st.end)
          : "embedded";
      }
      return null;
    case "do":
      // A DO block that may change roles (migrations make roles this way,
      // to skip one that exists) takes the cluster's turn for them as a
      // role statement does (rolesturn.ts); its change is seen either way.
      // Its DROP ROLEs of names written out are looked up in the other
      // databases as a client's are (pg_shdepend.ts).
      if (ROLE_STATEMENT_IN_BODY.test(sql.slice(st.start, st.end))) {
        acc.rolesDirty = true;
        const body = doBody(sql, t);
        if (body !== null) noteDroppedRolesIn(body, acc);
      }
      return null;
    case "grant":
    case "revoke":
      // GRANT role TO role changes pg_auth_members; GRANT … ON does not.
      // GRANT … ON DATABASE changes who may connect (postinit.ts).
      {
        // A long privilege list puts ON past the first tokens: scanned whole then.
        const all = t.length < MAX_SCANNED_TOKENS
          ? t
          : scanStatements(sql.slice(st.start, st.end), Infinity)[0]?.tokens ?? t;
        const on = all.findIndex((x) => x.kind === "word" && x.text === "on");
        const what = all[on + 1]?.kind === "word" ? all[on + 1]!.text : "";
        // GRANT SET ON PARAMETER: pg_parameter_acl, copied with the roles (pg_authid.ts).
        if (on < 0 || what === "parameter") acc.rolesDirty = true;
        else if (what === "database") {
          acc.databasesDirty = true;
          acc.databaseGrant = lone && acc.databaseGrant === null
            ? sql.slice(st.start, st.end)
            : "embedded";
        }
      }
      return null;
    case "declare": {
      // DECLARE name [BINARY] [ASENSITIVE | INSENSITIVE] [[NO] SCROLL] CURSOR WITH HOLD FOR …
      const tok = t[1];
      const name = scannedName(tok);
      if (name === null || tok === undefined) return null;
      const text = sql.slice(st.start, st.end);
      if (/\bcursor\s+with\s+hold\s+for\b/i.test(text)) {
        acc.declaredHoldCursors.push(name);
        if (!acc.holdCursors.has(name)) acc.holdCursors = new Set([...acc.holdCursors, name]);
      }
      if (!acc.holdCursors.has(name)) return null;
      const renamed = cursorName(tok, prefix, name, acc);
      acc.writtenTexts.push({ engine: renamed.engine, original: sql, rewritten: "" });
      return renamed;
    }
    case "fetch":
    case "move": {
      // The cursor's name ends the statement, whatever direction comes first
      // (`FETCH FORWARD 2000 FROM c`, Django's iterator(): past the first
      // tokens the scan keeps, each digit one of them, so scanned whole).
      if (acc.holdCursors.size === 0) return null;
      const all = t.length < MAX_SCANNED_TOKENS
        ? t
        : scanStatements(sql, Infinity).find((x) => x.start === st.start)?.tokens ?? t;
      const tok = all[all.length - 1];
      const name = scannedName(tok);
      if (name === null || tok === undefined || all.length < 2) return null;
      return acc.holdCursors.has(name) ? cursorName(tok, prefix, name, acc) : null;
    }
    case "close": {
      if (t.length === 2 && t[1]?.kind === "word" && t[1].text === "all") {
        acc.closesAll = true;
        return null;
      }
      const tok = t[1];
      const name = scannedName(tok);
      if (name === null || tok === undefined || !acc.holdCursors.has(name)) return null;
      acc.closedHoldCursors.push(name);
      return cursorName(tok, prefix, name, acc);
    }
    case "update":
    case "delete":
    case "with": {
      if (acc.holdCursors.size === 0) return null;
      // WHERE CURRENT OF name, past the tokens the scan keeps.
      return prefixedName(CURRENT_OF, sql, st, prefix, acc, (name) => acc.holdCursors.has(name));
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
      const name = scannedName(tok);
      if (name === null || tok === undefined) return null;
      noteTruncation(acc, identName(tok), name);
      const onEngine = engineName(prefix, name);
      if (w0 === "execute") acc.executedNames.push([name, lone]);
      if (w0 === "prepare") {
        acc.createdStatements.push(onEngine);
        acc.writtenTexts.push({ engine: onEngine, original: sql, rewritten: "" });
      }
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
/** `EXPLAIN [(options)] [ANALYZE] [VERBOSE] `, before the statement it explains. */
const EXPLAIN = String.raw`explain\s*(?:\([^)]*\)\s*)?(?:(?:analy[sz]e|verbose)\s+)*`;
/** `EXPLAIN [(options)] [ANALYZE] [VERBOSE] EXECUTE name`, the name's span captured. */
const EXPLAIN_EXECUTE = new RegExp(
  String.raw`^\s*` + EXPLAIN + String.raw`execute\s+` + NAME,
  "di",
);
/**
 * `CREATE [GLOBAL|LOCAL] [TEMP|TEMPORARY|UNLOGGED] TABLE [IF NOT EXISTS]
 * name [(columns)] [USING method] [WITH (…)] [ON COMMIT …] [TABLESPACE t]
 * AS EXECUTE name`, the statement's name captured.
 */
const CREATE_AS =
  String.raw`create\s+(?:(?:global|local)\s+)?(?:(?:temp|temporary|unlogged)\s+)?table\s+` +
  String.raw`(?:if\s+not\s+exists\s+)?` + QUALIFIED + String.raw`\s*(?:\([^)]*\)\s*)?` +
  String.raw`(?:using\s+\S+\s+)?(?:with(?:out\s+oids)?\s*(?:\([^)]*\)\s*)?)?` +
  String.raw`(?:on\s+commit\s+(?:preserve\s+rows|delete\s+rows|drop)\s+)?(?:tablespace\s+\S+\s+)?` +
  String.raw`as\s+execute\s+` + NAME;
/**
 * CREATE_AS as a statement, the name's span captured; anchored at the
 * start, so a function body that says the same is never matched.
 */
const CREATE_AS_EXECUTE = new RegExp(String.raw`^\s*` + CREATE_AS, "di");
/** The same, explained: `EXPLAIN [(options)] [ANALYZE] [VERBOSE] CREATE … TABLE … AS EXECUTE name`. */
const EXPLAIN_CREATE_AS_EXECUTE = new RegExp(String.raw`^\s*` + EXPLAIN + CREATE_AS, "di");

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
  acc: Acc,
  ours: (name: string) => boolean = () => true,
): { start: number; end: number; text: string } | null {
  const m = re.exec(sql.slice(st.start, st.end));
  const at = m?.indices?.[1];
  if (m === null || at === undefined) return null;
  const raw = m[1]!;
  const written = raw.startsWith('"') ? raw.slice(1, -1).replaceAll('""', '"') : raw.toLowerCase();
  const name = keptName(written);
  if (!ours(name)) return null;
  noteTruncation(acc, written, name);
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
export function rewriteSql(
  sql: string,
  prefix: string,
  acc: Acc,
  isQuery: boolean,
  user: string | undefined,
): string {
  if (!mightMatter(sql) && (acc.holdCursors.size === 0 || !CURSOR_USE.test(sql))) return sql;
  if (
    !acc.readsActivity &&
    /pg_stat_activity|pg_stat_ssl|pg_stat_gssapi|listening_channels|pg_stat_database|numbackends|prepared_statement|pg_cursor/i
      .test(sql)
  ) {
    acc.readsActivity = true;
  }
  if (!acc.needsExtensions && /extension/i.test(sql)) acc.needsExtensions = true;
  const stmts = scanStatements(sql);
  const lone = isQuery && stmts.length === 1;
  const written = acc.writtenTexts.length;
  let out = "";
  let at = 0;
  let edits: TextEdits | null = null;
  for (const [i, st] of stmts.entries()) {
    const r = inspect(sql, st, prefix, acc, lone, isQuery, user);
    if (r !== null) {
      if (r.resetTag === true) {
        if (isQuery) acc.resetTags.push(i);
        else if (stmts.length === 1) acc.parsedReset = true;
      }
      out += sql.slice(at, r.start) + r.text;
      at = r.end;
      (edits ??= new TextEdits(sql)).replaced(r.start, r.end, r.text);
    }
  }
  if (edits === null) return sql;
  acc.edits = ++acc.rewrittenTexts === 1 ? edits : null;
  const text = out + sql.slice(at);
  for (let i = written; i < acc.writtenTexts.length; i++) acc.writtenTexts[i]!.rewritten = text;
  return text;
}

/** The database an `ALTER DATABASE name SET|RESET …` statement names; null for any other. */
export function setsDatabase(sql: string): string | null {
  const [st, more] = scanStatements(sql);
  if (st === undefined || more !== undefined) return null;
  const t = st.tokens;
  if (t[0]?.text !== "alter" || t[1]?.text !== "database") return null;
  const verb = t[3]?.kind === "word" ? t[3].text : "";
  // SET TABLESPACE moves files: the cluster's to refuse.
  if (verb === "reset" || (verb === "set" && t[4]?.text !== "tablespace")) return identName(t[2]);
  return null;
}

/**
 * An `ALTER ROLE|USER name|ALL IN DATABASE d SET|RESET …`'s parts: the text
 * up to DATABASE, the database it names (as the server folds it) and the
 * text after it; null when `sql` is not one such statement.
 */
export function roleInDatabase(sql: string): { head: string; name: string; tail: string } | null {
  const [st, more] = scanStatements(sql, Infinity);
  if (st === undefined || more !== undefined) return null;
  const t = st.tokens;
  if (t[0]?.text !== "alter" || (t[1]?.text !== "role" && t[1]?.text !== "user")) return null;
  if (t[3]?.text !== "in" || t[4]?.text !== "database") return null;
  const name = identName(t[5]);
  const verb = t[6]?.kind === "word" ? t[6].text : "";
  if (name === null || (verb !== "set" && verb !== "reset")) return null;
  return { head: sql.slice(st.start, t[4]!.end), name, tail: sql.slice(t[5]!.end, st.end) };
}

/**
 * The databases a statement that runs on their engines names (see
 * dbcommands.ts): GRANT, REVOKE or COMMENT … ON DATABASE, or ALTER ROLE …
 * IN DATABASE; null for any other.
 */
export function databasesNamed(sql: string): string[] | null {
  const on = onDatabases(sql);
  if (on !== null) return on.names;
  const role = roleInDatabase(sql);
  return role === null ? null : [role.name];
}

/**
 * A GRANT or REVOKE … ON DATABASE's or a COMMENT ON DATABASE's parts: the
 * text up to DATABASE, the databases it names (as the server folds them),
 * and the text after them (TO or FROM …, IS …); null when `sql` is not one
 * statement of those kinds.
 */
export function onDatabases(
  sql: string,
): { head: string; names: string[]; tail: string } | null {
  const [st, more] = scanStatements(sql, Infinity);
  if (st === undefined || more !== undefined) return null;
  const t = st.tokens;
  const verb = t[0]?.kind === "word" ? t[0].text : "";
  if (verb !== "grant" && verb !== "revoke" && verb !== "comment") return null;
  let i = t.findIndex((x, k) =>
    x.text === "on" && x.kind === "word" && t[k + 1]?.text === "database"
  );
  if (i < 0) return null;
  i += 2;
  const head = sql.slice(0, t[i - 1]!.end);
  const names: string[] = [];
  for (;;) {
    const name = identName(t[i]);
    if (name === null) return null;
    names.push(name);
    if (t[i + 1]?.text !== ",") break;
    i += 2;
  }
  return { head, names, tail: sql.slice(t[i]!.end, st.end) };
}
