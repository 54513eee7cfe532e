/**
 * CREATE DATABASE, DROP DATABASE and ALTER DATABASE for a multi-database
 * cluster: PostgreSQL's commands/dbcommands.c, carried out on the
 * cluster's databases (dbengines.ts) instead of one engine's backend.
 *
 * This module parses the statement (just the grammar of these three, with
 * PostgreSQL's 42601 at the first word it does not expect) and checks
 * PostgreSQL's rules in PostgreSQL's order and words: privileges (42501),
 * existence (3D000, 42P04), other sessions (55006 with its DETAIL). What
 * it does to files and engines is the `DatabaseCluster`'s.
 */

import { ERRCODE, isPgError, PgError } from "../../core/elog.ts";
import { MessageWriter, writeCommandComplete } from "../../core/protocol/mod.ts";
import type { EngineRole } from "./engine.ts";
import type { DatabaseEntry } from "./pg_database.ts";
import { currentUserOf, sessionUserOf } from "./offengine.ts";
import type { PgliteSession } from "./session.ts";
import { noticeResponse, quoteIdent, quoteLiteral } from "./wire.ts";
import { onDatabases, roleInDatabase } from "./statementtext.ts";

/** What the commands need of the cluster (dbengines.ts). */
export interface DatabaseCluster {
  /** The pgts data directory (ALTER SYSTEM writes its postgresql.auto.conf). */
  readonly dataDir: string;
  database(name: string): DatabaseEntry | undefined;
  /** The role as the cluster knows it now. */
  role(name: string): EngineRole | undefined;
  /** Whether `member` has the privileges of `role` (pg_has_role … 'USAGE'). */
  hasRole(member: string, role: string, privilege?: "USAGE" | "SET"): Promise<boolean>;
  /** The database `session` is connected to. */
  databaseOf(session: PgliteSession): DatabaseEntry;
  /** How many sessions other than `self` are connected to `db`, once those ending have gone (up to 5 s). */
  otherSessions(db: DatabaseEntry, self: PgliteSession): Promise<number>;
  create(name: string, template: DatabaseEntry, init: Partial<DatabaseEntry>): Promise<void>;
  drop(db: DatabaseEntry, force: boolean): Promise<void>;
  rename(db: DatabaseEntry, to: string): Promise<void>;
  /** Changes owner, IS_TEMPLATE, ALLOW_CONNECTIONS, CONNECTION LIMIT, and shows it everywhere. */
  update(db: DatabaseEntry, change: Partial<DatabaseEntry>): Promise<void>;
  /**
   * Runs `sql` (ALTER DATABASE … SET/RESET, GRANT or REVOKE on `db`) on
   * `db`'s own engine as role `as`; resolves with the NoticeResponses it raised.
   * An error keeps its position in `sql` with `position` (else none).
   */
  runOn(
    db: DatabaseEntry,
    sql: string,
    as: string,
    options?: { position?: boolean },
  ): Promise<Uint8Array[]>;
}

interface Tok {
  readonly text: string; // lowercased for words
  readonly raw: string;
  readonly kind: "word" | "ident" | "string" | "number" | "punct";
  readonly start: number;
  readonly end: number;
}

function tokenize(sql: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === "-" && sql[i + 1] === "-") {
      while (i < sql.length && sql[i] !== "\n") i++;
    } else if (c === "/" && sql[i + 1] === "*") {
      const e = sql.indexOf("*/", i + 2);
      i = e < 0 ? sql.length : e + 2;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      let v = "";
      while (j < sql.length) {
        if (sql[j] === c) {
          if (sql[j + 1] === c) {
            v += c;
            j += 2;
            continue;
          }
          break;
        }
        v += sql[j++];
      }
      out.push({ text: v, raw: v, kind: c === '"' ? "ident" : "string", start: i, end: j + 1 });
      i = j + 1;
    } else if (/[A-Za-z_\u0080-\uffff]/.test(c)) {
      let j = i + 1;
      while (j < sql.length && /[A-Za-z0-9_$\u0080-\uffff]/.test(sql[j]!)) j++;
      const raw = sql.slice(i, j);
      out.push({ text: raw.toLowerCase(), raw, kind: "word", start: i, end: j });
      i = j;
    } else if (/[0-9-]/.test(c)) {
      let j = i + 1;
      while (j < sql.length && /[0-9.]/.test(sql[j]!)) j++;
      const raw = sql.slice(i, j);
      out.push({ text: raw, raw, kind: "number", start: i, end: j });
      i = j;
    } else {
      out.push({ text: c, raw: c, kind: "punct", start: i, end: i + 1 });
      i++;
    }
  }
  return out;
}

export class Parser {
  #t: Tok[];
  #i = 0;
  /** The first of the statement's closing semicolons: what a statement cut short is reported at. */
  #semicolon: Tok | null = null;
  constructor(readonly sql: string) {
    const t = tokenize(sql);
    while (t.length > 0 && t[t.length - 1]!.text === ";") this.#semicolon = t.pop()!;
    this.#t = t;
  }
  /**
   * PostgreSQL's 42601 at `at`, or at the end of the statement, with the
   * position a client shows it at (psql's `LINE 1: …` and its caret).
   */
  syntaxError(at: Tok | null): PgError {
    const t = at ?? this.#semicolon;
    return syntaxError(t, this.position(t));
  }
  /** `t`'s 1-based character position in the statement (its end: past the last character). */
  position(t: Tok | null): number {
    return [...this.sql.slice(0, t === null ? this.sql.length : t.start)].length + 1;
  }
  peek(k = 0): Tok | undefined {
    return this.#t[this.#i + k];
  }
  atEnd(): boolean {
    return this.#i >= this.#t.length;
  }
  next(): Tok {
    const t = this.#t[this.#i];
    if (t === undefined) throw this.syntaxError(null);
    this.#i++;
    return t;
  }
  accept(word: string): boolean {
    const t = this.peek();
    if (t?.kind === "word" && t.text === word) {
      this.#i++;
      return true;
    }
    return false;
  }
  expect(word: string): void {
    if (!this.accept(word)) throw this.syntaxError(this.peek() ?? null);
  }
  /** An identifier: a word (folded to lower case) or a quoted name. */
  name(): string {
    const t = this.next();
    if (t.kind === "word") return t.text;
    if (t.kind === "ident") return t.raw;
    throw this.syntaxError(t);
  }
  /** An option's value: a name, a string or a number, as its text. */
  value(): Tok {
    const t = this.next();
    if (t.kind === "punct") throw this.syntaxError(t);
    return t;
  }
  /**
   * One `name [=] value` of a CREATE/ALTER DATABASE option list, with
   * CONNECTION LIMIT spelled `connection_limit`, and the name's position.
   */
  option(): [string, Tok, number] {
    const at = this.position(this.peek() ?? null);
    let option = this.name();
    if (option === "connection") {
      this.expect("limit");
      option = "connection_limit";
    }
    if (this.peek()?.text === "=") this.next();
    return [option, this.value(), at];
  }
  /**
   * `e`, an error of a statement made of pgts's own `headLength`
   * characters and then this statement's text after `t` (rest()), with its
   * position made this statement's; none when it is in pgts's part.
   */
  positionAfter(e: PgError, t: Tok, headLength: number): PgError {
    const position = e.fields.position;
    if (position === undefined) return e;
    return withPosition(
      e,
      position <= headLength ? null : [...this.sql.slice(0, t.end)].length + position - headLength,
    );
  }
  /** The text from the current token on. */
  rest(): string {
    const t = this.#t[this.#i - 1];
    return this.sql.slice(t === undefined ? 0 : t.end);
  }
  end(): void {
    if (!this.atEnd()) throw this.syntaxError(this.peek()!);
  }
}

/** `e` at `position` (null: none), its message `message`; the rest as it was. */
export function withPosition(e: PgError, position: number | null, message = e.message): PgError {
  const { position: _was, ...fields } = e.fields;
  return new PgError(e.code, message, {
    ...fields,
    severity: e.severity,
    ...(position === null ? {} : { position }),
  });
}

export function syntaxError(at: Tok | null, position?: number): PgError {
  return new PgError(
    ERRCODE.SYNTAX_ERROR,
    at === null ? "syntax error at end of input" : `syntax error at or near "${at.raw}"`,
    position === undefined ? {} : { position },
  );
}

export function commandComplete(tag: string): Uint8Array {
  return MessageWriter.encode((w) => writeCommandComplete(w, tag));
}

function ownerDenied(db: DatabaseEntry): PgError {
  return new PgError(ERRCODE.INSUFFICIENT_PRIVILEGE, `must be owner of database ${db.name}`);
}

/**
 * Who runs a command: the current user (`name`, whose privileges count, as
 * PostgreSQL checks GetUserId()) and the session user, as the session's
 * settings map shows them after SET ROLE or SET SESSION AUTHORIZATION.
 */
interface Me {
  readonly name: string;
  readonly session: string;
  readonly superuser: boolean;
  readonly createdb: boolean;
}

function currentUser(cluster: DatabaseCluster, session: PgliteSession): Me {
  const name = currentUserOf(session);
  const entry = cluster.role(name);
  return {
    name,
    session: sessionUserOf(session),
    superuser: entry?.superuser === true,
    createdb: entry?.createdb === true,
  };
}

/** object_ownercheck: a superuser, or a role with the privileges of the owner. */
async function ownsDatabase(cluster: DatabaseCluster, me: Me, db: DatabaseEntry): Promise<boolean> {
  return me.superuser || db.owner === me.name || await cluster.hasRole(me.name, db.owner);
}

/** check_can_set_role: a superuser, or a role that may SET ROLE to `role`. */
async function checkCanSetRole(cluster: DatabaseCluster, me: Me, role: string): Promise<void> {
  if (me.superuser || role === me.name || await cluster.hasRole(me.name, role, "SET")) return;
  throw new PgError(ERRCODE.INSUFFICIENT_PRIVILEGE, `must be able to SET ROLE "${role}"`);
}

/** PostgreSQL's errdetail_busy_db. */
export function busyDetail(others: number): string {
  return others === 1
    ? "There is 1 other session using the database."
    : `There are ${others} other sessions using the database.`;
}

function noSuchDatabase(name: string): PgError {
  return new PgError(ERRCODE.INVALID_CATALOG_NAME, `database "${name}" does not exist`);
}

function bool(t: Tok): boolean {
  const v = t.text.toLowerCase();
  if (["true", "on", "1", "yes", "t", "y"].includes(v)) return true;
  if (["false", "off", "0", "no", "f", "n"].includes(v)) return false;
  throw new PgError(ERRCODE.SYNTAX_ERROR, `invalid boolean value "${t.raw}"`);
}

function int(t: Tok, what: string): number {
  const n = Number(t.text);
  if (!Number.isInteger(n)) {
    throw new PgError(ERRCODE.SYNTAX_ERROR, `${what} requires an integer value`);
  }
  return n;
}

/** Encodings and locales: the template's are the only ones PGlite can give a database. */
function checkEncoding(t: Tok): void {
  const v = t.text.toLowerCase().replace(/[-_]/g, "");
  if (v === "utf8" || v === "unicode" || v === "default" || v === "6") return;
  throw new PgError(ERRCODE.FEATURE_NOT_SUPPORTED, `encoding "${t.raw}" is not supported`, {
    detail: "Every database of a pgts cluster on PGlite is encoded in UTF8.",
  });
}

function checkLocale(option: string, t: Tok): void {
  const v = t.text.toLowerCase();
  if (["c", "c.utf8", "c.utf-8", "posix", "default", ""].includes(v)) return;
  throw new PgError(
    ERRCODE.FEATURE_NOT_SUPPORTED,
    `${option.toUpperCase()} "${t.raw}" is not supported`,
    { detail: "Every database of a pgts cluster on PGlite has the template's locale (C)." },
  );
}

/** Carries out one CREATE/ALTER/DROP DATABASE for `session`; the answer's messages before ReadyForQuery. */
export async function databaseCommand(
  cluster: DatabaseCluster,
  session: PgliteSession,
  sql: string,
): Promise<Uint8Array[]> {
  const p = new Parser(sql);
  const verb = p.name();
  const me = currentUser(cluster, session);
  if (verb === "grant" || verb === "revoke" || verb === "comment") {
    return await onDatabasesEngines(cluster, sql, me, verb.toUpperCase());
  }
  const roleIn = roleInDatabase(sql);
  if (roleIn !== null) {
    // ALTER ROLE … IN DATABASE d SET: the value is d's (pg_db_role_setting
    // rows of a database are in its engine, which applies them at login).
    const db = cluster.database(roleIn.name);
    if (db === undefined) throw noSuchDatabase(roleIn.name);
    // SET … FROM CURRENT: the session's value, not what the engine carries.
    const set = /^\s*set\s+([\s\S]*)$/i.exec(roleIn.tail);
    const answer = await cluster.runOn(
      db,
      (set === null ? "" : fromCurrentPrelude(session, set[1]!)) +
        `${roleIn.head} ${quoteIdent(db.name)}${roleIn.tail}`,
      me.name,
    );
    return [...answer, commandComplete("ALTER ROLE")];
  }
  p.expect("database");
  switch (verb) {
    case "create":
      return [await createDatabase(cluster, session, p, me)];
    case "drop":
      return await dropDatabase(cluster, session, p, me);
    case "alter":
      return [await alterDatabase(cluster, session, p, me)];
    default:
      throw p.syntaxError(null);
  }
}

/**
 * GRANT or REVOKE on databases, or COMMENT ON DATABASE, some another's
 * than the session's: each database's privileges and comment are in its
 * own engine's catalog, so the statement runs there, once per database, as
 * the session's role (PostgreSQL's checks of who may grant what, and of
 * who owns a database, are that engine's); the others show them from the
 * cluster's list (pg_database.ts).
 */
async function onDatabasesEngines(
  cluster: DatabaseCluster,
  sql: string,
  me: Me,
  tag: string,
): Promise<Uint8Array[]> {
  const parts = onDatabases(sql);
  if (parts === null) throw syntaxError(null);
  const dbs = parts.names.map((name) => {
    const db = cluster.database(name);
    if (db === undefined) throw noSuchDatabase(name);
    return db;
  });
  // Its WARNINGs ("no privileges were granted for …") as the engine raised them.
  const answer: Uint8Array[] = [];
  for (const db of dbs) {
    answer.push(
      ...await cluster.runOn(db, `${parts.head} ${quoteIdent(db.name)}${parts.tail}`, me.name),
    );
  }
  answer.push(commandComplete(tag));
  return answer;
}

/** Why CREATE DATABASE takes no ICU locale: what a database's collation can be instead. */
const ICU_DATABASE_DETAIL =
  "A database's default collation here is C (libc or builtin); ICU collations can be created in it (CREATE COLLATION ... (provider = icu, locale = 'und')).";

async function createDatabase(
  cluster: DatabaseCluster,
  session: PgliteSession,
  p: Parser,
  me: Me,
): Promise<Uint8Array> {
  const name = p.name();
  p.accept("with");
  let owner: string | null = null;
  let templateName = "template1";
  const init: Partial<DatabaseEntry> = {};
  while (!p.atEnd()) {
    const [option, v, at] = p.option();
    const isDefault = v.kind === "word" && v.text === "default";
    switch (option) {
      case "owner":
        owner = isDefault ? null : v.kind === "word" ? v.text : v.raw;
        break;
      case "template":
        templateName = isDefault ? "template1" : v.kind === "word" ? v.text : v.raw;
        break;
      case "encoding":
        checkEncoding(v);
        break;
      case "locale":
      case "lc_collate":
      case "lc_ctype":
      case "builtin_locale":
        if (!isDefault) checkLocale(option, v);
        break;
      case "locale_provider":
        if (!isDefault && v.text.toLowerCase() !== "libc" && v.text.toLowerCase() !== "builtin") {
          throw new PgError(
            ERRCODE.FEATURE_NOT_SUPPORTED,
            `locale provider "${v.raw}" is not supported for a database`,
            { detail: ICU_DATABASE_DETAIL },
          );
        }
        break;
      case "icu_locale":
      case "icu_rules":
        throw new PgError(
          ERRCODE.FEATURE_NOT_SUPPORTED,
          "an ICU locale is not supported for a database",
          { detail: ICU_DATABASE_DETAIL },
        );
      case "tablespace":
        if (!isDefault && v.text !== "pg_default") {
          throw new PgError(ERRCODE.UNDEFINED_OBJECT, `tablespace "${v.raw}" does not exist`);
        }
        break;
      case "strategy":
      case "collation_version":
      case "oid":
        break;
      case "allow_connections":
        if (!isDefault) init.allowConn = bool(v);
        break;
      case "connection_limit":
        if (!isDefault) init.connLimit = int(v, "CONNECTION LIMIT");
        break;
      case "is_template":
        if (!isDefault) init.isTemplate = bool(v);
        break;
      default:
        throw new PgError(ERRCODE.SYNTAX_ERROR, `option "${option}" not recognized`, {
          position: at,
        });
    }
  }
  // createdb()'s order: privilege, template, owner, name, template in use.
  if (!me.superuser && !me.createdb) {
    throw new PgError(ERRCODE.INSUFFICIENT_PRIVILEGE, "permission denied to create database");
  }
  const template = cluster.database(templateName);
  if (template === undefined) {
    throw new PgError(
      ERRCODE.INVALID_CATALOG_NAME,
      `template database "${templateName}" does not exist`,
    );
  }
  if (!template.isTemplate && !(await ownsDatabase(cluster, me, template))) {
    throw new PgError(
      ERRCODE.INSUFFICIENT_PRIVILEGE,
      `permission denied to copy database "${templateName}"`,
    );
  }
  const ownerName = owner ?? me.name;
  if (cluster.role(ownerName) === undefined) {
    throw new PgError(ERRCODE.UNDEFINED_OBJECT, `role "${ownerName}" does not exist`);
  }
  await checkCanSetRole(cluster, me, ownerName);
  if (cluster.database(name) !== undefined) {
    throw new PgError(ERRCODE.DUPLICATE_DATABASE, `database "${name}" already exists`);
  }
  const others = await cluster.otherSessions(template, session);
  if (others > 0) {
    throw new PgError(
      ERRCODE.OBJECT_IN_USE,
      `source database "${templateName}" is being accessed by other users`,
      { detail: busyDetail(others) },
    );
  }
  await cluster.create(name, template, { ...init, owner: ownerName });
  return commandComplete("CREATE DATABASE");
}

async function dropDatabase(
  cluster: DatabaseCluster,
  session: PgliteSession,
  p: Parser,
  me: Me,
): Promise<Uint8Array[]> {
  let ifExists = false;
  if (p.accept("if")) {
    p.expect("exists");
    ifExists = true;
  }
  const name = p.name();
  let force = false;
  if (!p.atEnd()) {
    p.accept("with");
    const open = p.next();
    if (open.text !== "(") throw p.syntaxError(open);
    for (;;) {
      // FORCE is the only option PostgreSQL's grammar has.
      const o = p.peek() ?? null;
      if (o?.kind !== "word" || o.text !== "force") throw p.syntaxError(o);
      p.next();
      force = true;
      const t = p.next();
      if (t.text === ")") break;
      if (t.text !== ",") throw p.syntaxError(t);
    }
    p.end();
  }
  const db = cluster.database(name);
  if (db === undefined) {
    if (!ifExists) throw noSuchDatabase(name);
    return [
      noticeResponse(
        new PgError(
          ERRCODE.SUCCESSFUL_COMPLETION,
          `database "${name}" does not exist, skipping`,
          { severity: "NOTICE" },
        ),
      ),
      commandComplete("DROP DATABASE"),
    ];
  }
  if (!(await ownsDatabase(cluster, me, db))) throw ownerDenied(db);
  if (db.isTemplate) {
    throw new PgError(ERRCODE.WRONG_OBJECT_TYPE, "cannot drop a template database");
  }
  if (cluster.databaseOf(session) === db) {
    throw new PgError(ERRCODE.OBJECT_IN_USE, "cannot drop the currently open database");
  }
  const others = force ? 0 : await cluster.otherSessions(db, session);
  if (others > 0) {
    throw new PgError(
      ERRCODE.OBJECT_IN_USE,
      `database "${name}" is being accessed by other users`,
      { detail: busyDetail(others) },
    );
  }
  await cluster.drop(db, force);
  return [commandComplete("DROP DATABASE")];
}

/** `name FROM CURRENT`, the whole of what follows ALTER DATABASE … SET; the name captured. */
const FROM_CURRENT =
  /^\s*((?:"(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)(?:\s*\.\s*(?:"(?:[^"]|"")+"|[a-z_][a-z0-9_$]*))*)\s+from\s+current\s*;?\s*$/i;

/**
 * For `ALTER DATABASE … SET name FROM CURRENT`: the statement runs on the
 * database's engine as pgts's own work, whose backend carries own work's
 * search_path and the settings of whichever session ran there last, so
 * FROM CURRENT would store one of those. The session's value is put in
 * place first, for the statement's transaction: the one its settings map
 * holds, or else the server's (its reset value).
 */
function fromCurrentPrelude(session: PgliteSession, rest: string): string {
  const m = FROM_CURRENT.exec(rest);
  if (m === null) return "";
  const name = m[1]!.split(/\s*\.\s*/).map((part) =>
    part.startsWith('"') ? part.slice(1, -1).replaceAll('""', '"') : part.toLowerCase()
  ).join(".");
  const value = session.settings.get(name.toLowerCase());
  return value === undefined
    ? `SET LOCAL ${m[1]} TO DEFAULT;\n`
    : `SELECT pg_catalog.set_config(${quoteLiteral(name)}, ${quoteLiteral(value)}, true);\n`;
}

async function alterDatabase(
  cluster: DatabaseCluster,
  session: PgliteSession,
  p: Parser,
  me: Me,
): Promise<Uint8Array> {
  const name = p.name();
  const db = cluster.database(name);
  const done = commandComplete("ALTER DATABASE");
  if (p.accept("rename")) {
    p.expect("to");
    const to = p.name();
    p.end();
    if (db === undefined) throw noSuchDatabase(name);
    if (cluster.database(to) !== undefined) {
      throw new PgError(ERRCODE.DUPLICATE_DATABASE, `database "${to}" already exists`);
    }
    if (!(await ownsDatabase(cluster, me, db))) throw ownerDenied(db);
    if (!me.superuser && !me.createdb) {
      throw new PgError(ERRCODE.INSUFFICIENT_PRIVILEGE, "permission denied to rename database");
    }
    if (cluster.databaseOf(session) === db) {
      throw new PgError(ERRCODE.FEATURE_NOT_SUPPORTED, "current database cannot be renamed");
    }
    const others = await cluster.otherSessions(db, session);
    if (others > 0) {
      throw new PgError(
        ERRCODE.OBJECT_IN_USE,
        `database "${name}" is being accessed by other users`,
        { detail: busyDetail(others) },
      );
    }
    await cluster.rename(db, to);
    return commandComplete("ALTER DATABASE");
  }
  if (db === undefined) throw noSuchDatabase(name);
  if (p.accept("owner")) {
    p.expect("to");
    let owner = p.name();
    p.end();
    if (owner === "current_user" || owner === "current_role") owner = me.name;
    else if (owner === "session_user") owner = me.session;
    if (cluster.role(owner) === undefined) {
      throw new PgError(ERRCODE.UNDEFINED_OBJECT, `role "${owner}" does not exist`);
    }
    if (!me.superuser) {
      if (!(await ownsDatabase(cluster, me, db))) throw ownerDenied(db);
      await checkCanSetRole(cluster, me, owner);
      if (!me.createdb) {
        throw new PgError(
          ERRCODE.INSUFFICIENT_PRIVILEGE,
          "permission denied to change owner of database",
        );
      }
    }
    // On its own engine first: PostgreSQL's ALTER DATABASE … OWNER TO also
    // hands the old owner's privileges (datacl) to the new one.
    await cluster.runOn(
      db,
      `ALTER DATABASE ${quoteIdent(db.name)} OWNER TO ${quoteIdent(owner)}`,
      me.name,
    );
    await cluster.update(db, { owner });
    return done;
  }
  if (!(await ownsDatabase(cluster, me, db))) throw ownerDenied(db);
  const t = p.peek();
  if (t?.kind === "word" && (t.text === "set" || t.text === "reset")) {
    if (t.text === "set" && p.peek(1)?.text === "tablespace") {
      throw new PgError(ERRCODE.FEATURE_NOT_SUPPORTED, "tablespaces are not supported");
    }
    p.next();
    const rest = p.rest();
    const head = `${t.text === "set" ? fromCurrentPrelude(session, rest) : ""}` +
      `ALTER DATABASE ${quoteIdent(db.name)} ${t.raw} `;
    await cluster.runOn(db, head + rest, me.name, { position: true }).catch((e) => {
      throw isPgError(e) ? p.positionAfter(e, t, [...head].length) : e;
    });
    return done;
  }
  if (t?.kind === "word" && t.text === "refresh") return done;
  // ALTER DATABASE name [WITH] option [...]
  p.accept("with");
  const change: Partial<DatabaseEntry> = {};
  while (!p.atEnd()) {
    const [option, v, at] = p.option();
    if (option === "allow_connections") change.allowConn = bool(v);
    else if (option === "connection_limit") change.connLimit = int(v, "CONNECTION LIMIT");
    else if (option === "is_template") change.isTemplate = bool(v);
    else {
      throw new PgError(ERRCODE.SYNTAX_ERROR, `option "${option}" not recognized`, {
        position: at,
      });
    }
  }
  if (change.allowConn === false && cluster.databaseOf(session) === db) {
    throw new PgError(
      ERRCODE.INVALID_PARAMETER_VALUE,
      "cannot disallow connections for current database",
    );
  }
  await cluster.update(db, change);
  return done;
}
