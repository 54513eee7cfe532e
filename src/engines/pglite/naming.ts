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
 * WHERE CURRENT OF; the protocol's Bind, Describe, Execute and Close of a
 * portal) until it closes it. Other cursor names (a transaction's
 * own, a PL/pgSQL refcursor's) are left alone.
 *
 * The same pass records what the engine layer must act on after the input
 * ran: settings that may have changed, LISTEN/UNLISTEN, role and database
 * DDL, temporary tables, unnamed-statement use. It never changes SQL beyond
 * swapping a statement name token, and never drops a message.
 */

import type { PgError } from "../../core/elog.ts";
import { FE } from "../../core/protocol/constants.ts";
import { mayAnswerOffEngine, scanStatements } from "./sqlscan.ts";
import { engineName } from "./enginenames.ts";
import {
  type Acc,
  aloneOnly,
  copyNotAlone,
  type ListenOp,
  NO_CURSORS,
  rewriteSql,
  type WrittenText,
} from "./statementtext.ts";
import type { TextEdits } from "./textedits.ts";
import { concat, cstring, type Frame, readCString } from "./wire.ts";

export interface InputPlan {
  /** What the engine runs: the input, with statement names prefixed. */
  readonly bytes: Uint8Array;
  readonly frames: readonly Frame[];
  readonly settingsDirty: boolean;
  /** Custom (dotted) setting names the input sets, e.g. "app.tenant". */
  readonly customSettings: readonly string[];
  readonly listenOps: readonly ListenOp[];
  readonly rolesDirty: boolean;
  /** The roles its DROP ROLE statements name, in order, when it executes any (statementtext.ts). */
  readonly droppedRoles: readonly string[];
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
  /** A Query's or Parse's text is one offengine.ts may answer (mayAnswerOffEngine). */
  readonly offEngine: boolean;
  /** The input is one Query that is exactly DISCARD ALL or DEALLOCATE ALL. */
  readonly special: "discard all" | "deallocate all" | null;
  /**
   * CREATE, ALTER or DROP DATABASE: the statement's text when the input is
   * one Query of that statement alone, "embedded" when it is part of a
   * larger input (a multi-database cluster carries them out itself,
   * dbcommands.ts, and refuses the second form).
   */
  readonly databaseCommand: string | "embedded" | null;
  /**
   * A GRANT or REVOKE … ON DATABASE alone in the input (a Query, or one
   * extended batch, or a Bind of one prepared before): its text, for the
   * cluster to carry out where it names another database; else null.
   */
  readonly databaseGrant: string | null;
  /**
   * The input starts a COPY … FROM STDIN: it is one Query whose statements
   * include one, or an extended batch whose one Execute runs one
   * (`extendedCopy`), followed by nothing but Sync and Flush.
   */
  readonly copyFromStdin: boolean;
  /** A COPY FROM STDIN of a lone Query is not its one statement (statementtext.ts). */
  readonly copyAmongOthers: boolean;
  /** The COPY FROM STDIN the input starts is an Execute's. */
  readonly extendedCopy: boolean;
  /** Whether the unnamed statement this input parses (`unnamedParse`) is a COPY FROM STDIN. */
  readonly unnamedCopyIn: boolean;
  /**
   * The portals this input binds that run a COPY FROM STDIN, or that the
   * session noted as one and this input binds again (false), else null.
   */
  readonly boundPortals: ReadonlyMap<string, boolean> | null;
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
  /**
   * The answer's CommandCompletes (from 0) that say RESET: RESET SESSION
   * AUTHORIZATION, run as the SET of the session's own role. A lone
   * Query's statements, or the one Execute of an extended input (its
   * statement parsed in the input or before, by name).
   */
  readonly resetTags: readonly number[];
  /**
   * Names past 63 bytes pgts renamed (as written, as PostgreSQL keeps
   * them), for the NOTICE PostgreSQL's scanner sends about each.
   */
  readonly truncatedNames: ReadonlyArray<readonly [string, string]>;
  /** The texts of the statements and hold cursors its PREPARE and DECLARE make (statementtext.ts). */
  readonly writtenTexts: readonly WrittenText[];
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
  readonly droppedRoles: readonly string[];
  readonly databasesDirty: boolean;
  readonly readsActivity: boolean;
  /** The statement's text when it is one CREATE/ALTER/DROP DATABASE. */
  readonly databaseCommand: string | null;
  /** The statement's text when it is one GRANT or REVOKE … ON DATABASE. */
  readonly databaseGrant: string | null;
  /** The statement is RESET SESSION AUTHORIZATION: its tag is RESET. */
  readonly resetTag: boolean;
  /** The statement is a COPY … FROM STDIN: executed, it reads the client's data. */
  readonly copyIn: boolean;
}

/**
 * The session's statements and portals that run a COPY … FROM STDIN, as of
 * the inputs it has sent the engine: its unnamed statement, and the portals
 * bound to one (an Execute in a later input starts the COPY).
 */
export interface CopyInStatements {
  readonly unnamed: boolean;
  readonly portals: ReadonlySet<string>;
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
    droppedRoles: [],
    databasesDirty: false,
    databaseCommand: null,
    boundDatabaseCommand: null,
    databaseGrant: null,
    boundDatabaseGrant: null,
    createsTempObject: false,
    createdStatements: [],
    special: null,
    specialParsed: false,
    copyFromStdin: false,
    copyAmongOthers: false,
    reject: null,
    readsActivity: false,
    needsExtensions: false,
    holdCursors: NO_CURSORS,
    declaredHoldCursors: [],
    closedHoldCursors: [],
    closesAll: false,
    edits: null,
    rewrittenTexts: 0,
    resetTags: [],
    parsedReset: false,
    parsedCopyIn: false,
    executedNames: [],
    truncatedNames: [],
    writtenTexts: [],
  };
}

/** Adds what a statement does again when it is executed to `acc`. */
function addEffects(acc: Acc, e: StatementEffects): void {
  if (e.listenOps.length > 0) acc.listenOps.push(...e.listenOps);
  if (e.customSettings.length > 0) acc.customSettings.push(...e.customSettings);
  acc.settingsDirty ||= e.settingsDirty;
  acc.rolesDirty ||= e.rolesDirty;
  if (e.droppedRoles.length > 0) acc.droppedRoles.push(...e.droppedRoles);
  acc.databasesDirty ||= e.databasesDirty;
  acc.readsActivity ||= e.readsActivity;
  if (e.databaseCommand !== null) {
    acc.boundDatabaseCommand = e.databaseCommand;
    acc.databaseCommand ??= "embedded";
  }
  if (e.databaseGrant !== null) {
    acc.boundDatabaseGrant = e.databaseGrant;
    acc.databaseGrant = "embedded";
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
    /** What of the session's statements and portals runs a COPY FROM STDIN. */
    copyIn?: CopyInStatements;
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
  let offEngine = false;
  // RESET SESSION AUTHORIZATION in the extended protocol: whether the
  // unnamed statement parsed here is one, the portals bound here that run
  // one (none in almost every input), and whether the input's Executes
  // (when it has one) do.
  let unnamedReset = false;
  let resetPortals: Set<string> | null = null;
  let executes = 0;
  let executesReset = false;
  // COPY FROM STDIN in the extended protocol: whether the unnamed
  // statement parsed here is one, the portals bound here, the frame of the
  // Execute that runs one, and how many do.
  let unnamedCopy = false;
  let boundPortals: Map<string, boolean> | null = null;
  let copyExecute = -1;
  let copyExecutes = 0;
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
        offEngine ||= mayAnswerOffEngine(sql);
        acc.parsedCopyIn = false;
        const sql2 = rewriteSql(sql, prefix, acc, frames.length === 1, options.user);
        executesCopy(acc, prefix, effects, frames.length === 1 ? "lone query" : "query");
        // A Query's COPY FROM STDIN that is not the input's lone Query is
        // scanned as a Parse's: it may not run with the others.
        if (acc.parsedCopyIn) acc.reject ??= aloneOnly("COPY FROM STDIN");
        emit(i, sql2 === sql ? null : frameOf(FE.Query, [cstring(sql2)]));
        break;
      }
      case FE.Parse: {
        const [name, afterName] = readCString(body, 0);
        const [sql, afterSql] = readCString(body, afterName);
        offEngine ||= mayAnswerOffEngine(sql);
        const beforeParse = snapshot(acc);
        acc.parsedReset = false;
        acc.parsedCopyIn = false;
        const sql2 = rewriteSql(sql, prefix, acc, false, options.user);
        const isReset = acc.parsedReset;
        const isCopy = executesCopy(acc, prefix, effects, null) || acc.parsedCopyIn;
        if (name === "") {
          unnamedReset = isReset;
          unnamedCopy = isCopy;
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
            const e = effectsOf(sql, acc, { prefix, user: options.user }, beforeParse, {
              resetTag: isReset,
              copyIn: isCopy,
            });
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
        let runsReset: boolean;
        let runsCopy: boolean;
        if (stmt === "") {
          runsReset = unnamedReset;
          runsCopy = unnamedParse !== null ? unnamedCopy : options.copyIn?.unnamed === true;
          if (unnamedParse === null) usesUnnamedFirst = true;
          const named = portalName(portal, prefix, acc);
          emit(
            i,
            named === portal
              ? null
              : frameOf(FE.Bind, [cstring(named), body.subarray(afterPortal)]),
          );
        } else {
          const e = effects !== undefined && effects.size > 0
            ? effects.get(prefix + stmt)
            : undefined;
          // The Parse in this same input counted them already.
          if (e !== undefined && !parsedHere.has(stmt)) addEffects(acc, e);
          runsReset = e?.resetTag === true;
          runsCopy = e?.copyIn === true;
          emit(
            i,
            frameOf(FE.Bind, [
              cstring(portalName(portal, prefix, acc)),
              cstring(engineName(prefix, stmt)),
              body.subarray(afterStmt),
            ]),
          );
        }
        if (runsReset) (resetPortals ??= new Set()).add(portal);
        else resetPortals?.delete(portal);
        // Noted only where it concerns a COPY (one now, or one before).
        if (runsCopy || boundPortals?.has(portal) || options.copyIn?.portals.has(portal)) {
          (boundPortals ??= new Map()).set(portal, runsCopy);
        }
        break;
      }
      case FE.Describe:
      case FE.Close: {
        const kind = body[0];
        const [name] = readCString(body, 1);
        if (kind !== 0x53) {
          // A portal keeps its name, but for a cursor the session declared
          // WITH HOLD (psycopg describes its server cursors so).
          if (!acc.holdCursors.has(name)) emit(i, null);
          else {
            if (f.type === FE.Close) acc.closedHoldCursors.push(name);
            emit(i, frameOf(f.type, [body.subarray(0, 1), cstring(engineName(prefix, name))]));
          }
        } else if (name === "") {
          if (f.type === FE.Describe && unnamedParse === null) usesUnnamedFirst = true;
          emit(i, null);
        } else {
          emit(i, frameOf(f.type, [Uint8Array.of(kind), cstring(engineName(prefix, name))]));
        }
        break;
      }
      case FE.Execute: {
        executes++;
        const checks = resetPortals !== null || boundPortals !== null ||
          options.copyIn?.portals.size || acc.holdCursors.size > 0;
        const [portal, afterPortal] = checks ? readCString(body, 0) : ["", 0];
        if (resetPortals !== null || boundPortals !== null || options.copyIn?.portals.size) {
          executesReset = resetPortals !== null && resetPortals.has(portal);
          if (boundPortals?.get(portal) ?? options.copyIn?.portals.has(portal) === true) {
            copyExecutes++;
            copyExecute = i;
          }
        } else executesReset = false;
        const named = portalName(portal, prefix, acc);
        emit(
          i,
          named === portal
            ? null
            : frameOf(FE.Execute, [cstring(named), body.subarray(afterPortal)]),
        );
        break;
      }
      default:
        emit(i, null);
    }
  }
  // One Execute, so its CommandComplete is the answer's first (no Query
  // before it; with more, an error skips some and the count would not say
  // which complete is whose).
  if (executes === 1 && executesReset && !hasQuery) acc.resetTags.push(0);
  // An Execute of a COPY FROM STDIN reads the client's next messages as
  // its data: a fed COPY (copyfrom.ts) must be the input's one statement,
  // and what follows it can only be a Sync or a Flush (the session sends
  // the data after it as the COPY's).
  const extendedCopy = copyExecutes > 0;
  if (
    extendedCopy && (copyExecutes > 1 || executes > 1 || hasQuery ||
      frames.slice(copyExecute + 1).some((f) => f.type !== FE.Sync && f.type !== FE.Flush))
  ) {
    acc.reject ??= copyNotAlone();
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
  // The same for a GRANT or REVOKE on a database.
  const databaseGrant = acc.databaseGrant === null
    ? null
    : acc.databaseGrant !== "embedded"
    ? (frames.length === 1 ? acc.databaseGrant : null)
    : loneExtendedStatement(input, frames) ?? loneBound(frames, acc.boundDatabaseGrant);
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
    droppedRoles: acc.droppedRoles.length > 0 &&
        frames.some((f) => f.type === FE.Query || f.type === FE.Execute)
      ? acc.droppedRoles
      : NO_ROLES,
    databasesDirty: acc.databasesDirty,
    databaseCommand: acc.databaseCommand,
    databaseGrant,
    createsTempObject: acc.createsTempObject,
    createdStatements: acc.createdStatements,
    special: acc.special,
    copyFromStdin: acc.copyFromStdin || extendedCopy,
    copyAmongOthers: acc.copyAmongOthers,
    extendedCopy,
    unnamedCopyIn: unnamedCopy,
    boundPortals,
    reject: acc.reject,
    readsActivity: acc.readsActivity,
    needsExtensions: acc.needsExtensions,
    declaredHoldCursors: acc.declaredHoldCursors,
    closedHoldCursors: acc.closedHoldCursors,
    closesAll: acc.closesAll,
    edits: acc.edits,
    resetTags: acc.resetTags,
    truncatedNames: acc.truncatedNames,
    writtenTexts: acc.writtenTexts,
    unnamedParse,
    usesUnnamedFirst,
    hasQuery,
    offEngine,
  };
}

/** A portal's name as the engine has it: a hold cursor's is the session's. */
function portalName(portal: string, prefix: string, acc: Acc): string {
  return portal !== "" && acc.holdCursors.has(portal) ? engineName(prefix, portal) : portal;
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
function snapshot(
  acc: Acc,
): readonly [number, number, boolean, boolean, boolean, boolean, number] {
  return [
    acc.listenOps.length,
    acc.customSettings.length,
    acc.settingsDirty,
    acc.rolesDirty,
    acc.databasesDirty,
    acc.readsActivity,
    acc.droppedRoles.length,
  ];
}

const NO_ROLES: readonly string[] = [];

/**
 * Whether a text just scanned EXECUTEs a statement of the session's that
 * is a COPY FROM STDIN: in a lone Query it is that Query's COPY (fed as
 * any, beside other statements too), in a Query pipelined with other
 * messages it is refused, as a COPY FROM STDIN there is; a Parse of it
 * (`query` null) makes a statement that is one.
 */
function executesCopy(
  acc: Acc,
  prefix: string,
  effects: Map<string, StatementEffects> | undefined,
  query: "lone query" | "query" | null,
): boolean {
  if (acc.executedNames.length === 0) return false;
  let copy = false;
  for (const [name, lone] of acc.executedNames) {
    if (effects?.get(prefix + name)?.copyIn !== true) continue;
    copy = true;
    if (query === "lone query") {
      acc.copyFromStdin = true;
      if (!lone) acc.copyAmongOthers = true;
    } else if (query === "query") acc.reject ??= aloneOnly("COPY FROM STDIN");
  }
  acc.executedNames = [];
  return copy;
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
  { resetTag, copyIn }: { resetTag: boolean; copyIn: boolean },
): StatementEffects | null {
  const [listens, customs, settings, roles, dbs, activity, dropped] = before;
  let own: Acc | null = null;
  if (settings || roles || dbs || activity) {
    rewriteSql(sql, who.prefix, own = newAcc(), false, who.user);
  }
  const e: StatementEffects = {
    listenOps: acc.listenOps.slice(listens),
    customSettings: acc.customSettings.slice(customs),
    settingsDirty: own?.settingsDirty ?? acc.settingsDirty,
    rolesDirty: own?.rolesDirty ?? acc.rolesDirty,
    droppedRoles: acc.droppedRoles.slice(dropped),
    databasesDirty: own?.databasesDirty ?? acc.databasesDirty,
    readsActivity: own?.readsActivity ?? acc.readsActivity,
    databaseCommand: (own ?? acc).databaseCommand !== null && scanStatements(sql).length === 1
      ? sql
      : null,
    databaseGrant: (own ?? acc).databaseGrant !== null && scanStatements(sql).length === 1
      ? sql
      : null,
    resetTag,
    copyIn,
  };
  return e.listenOps.length > 0 || e.settingsDirty || e.rolesDirty || e.databasesDirty ||
      e.readsActivity || e.resetTag || e.copyIn
    ? e
    : null;
}
