/**
 * A session's share of the one backend's state: what a PostgreSQL backend
 * keeps in its globals (utils/init/globals.c, and the statics of
 * prepare.c, portalmem.c, guc.c, async.c, namespace.c) and pgts keeps per
 * session, since every session runs on the same backend: its identity and
 * statement-name prefix, its prepared statements and WITH HOLD cursors, its
 * settings map, its LISTEN channels, its unnamed statement, its temporary
 * namespaces, whether it is in backup mode, whether it holds the engine;
 * and what its last input may have changed, which the engine reads back at
 * the transaction's end (engine.ts afterTransaction).
 *
 * `SessionGlobals` is the part of a session (session.ts's PgliteSession
 * extends it) that the engine reads and writes. It runs nothing: its
 * methods note what a planned input (naming.ts) will change, and put the
 * session's unnamed statement back before an input that needs it.
 */

import type { PgError } from "../../core/elog.ts";
import { BE } from "../../core/protocol/constants.ts";
import type { InputPlan, StatementEffects } from "./naming.ts";
import type { ListenOp, WrittenText } from "./statementtext.ts";
import type { SettingsMap } from "./settings.ts";
import { lastBackupCall } from "./sqlscan.ts";
import { NO_TEMP, type TempPair } from "./tempnamespace.ts";
import { concat, fe } from "./wire.ts";
import { sessionPrefix } from "./enginenames.ts";

/** Who a session is, and the settings it starts with. */
export interface GlobalsInit {
  readonly id: number;
  readonly pid: number;
  readonly user: string;
  readonly userOid: number;
  readonly settings: SettingsMap;
  /** The startup map as the backend spells it, when the engine knows it already. */
  readonly spelled?: SettingsMap;
}

/** How many PREPARE and DECLARE texts a session keeps for the views. */
const WRITTEN_TEXTS_KEPT = 256;
/** The longest query string (in UTF-16 units) kept so. */
const WRITTEN_TEXT_MAX = 32 * 1024;

export class SessionGlobals {
  readonly pid: number;
  readonly id: number;
  readonly user: string;
  /** The login role's OID: who the identity guard (guard.ts) lets this session be. */
  readonly userOid: number;
  /** Prefix of this session's statement names on the engine. */
  readonly prefix: string;
  readonly listens = new Set<string>();
  /** Engine names of this session's prepared statements. */
  readonly statements = new Set<string>();
  /** Those of them that LISTEN, SET... again when executed (naming.ts). */
  readonly statementEffects = new Map<string, StatementEffects>();
  /**
   * Cursors the session declared WITH HOLD and has not closed, as it names
   * them (the engine has them prefixed; naming.ts). Closed when it ends.
   */
  readonly holdCursors = new Set<string>();
  /**
   * The texts of its latest SQL PREPAREs and DECLAREs WITH HOLD, by engine
   * name and the text the engine got (statementtext.ts), for
   * pg_prepared_statements and pg_cursors (activity.ts), which show the
   * one whose engine text is the statement's: a PREPARE that failed as a
   * duplicate does not replace the text of the one that stands. The most
   * recent WRITTEN_TEXTS_KEPT of at most WRITTEN_TEXT_MAX characters; a
   * statement not among them shows the engine's text with the name put
   * back.
   */
  readonly writtenTexts = new Map<string, WrittenText>();
  /** The settings the backend must carry while this session runs (settings.ts). */
  settings: SettingsMap;
  settingsVersion = 0;
  settingsDirty = true;
  /**
   * Whether the only reason for `settingsDirty` is the start: the backend
   * then carries the startup map as the server spells it, which the engine
   * may know from an earlier session with the same map (backendsettings.ts).
   */
  settingsFromStartup = true;
  /**
   * What the session started with (settings.ts startupSettings). Replaced
   * once its role's defaults that no longer hold are known, by the same map
   * without them (backendsettings.ts).
   */
  startupSettings: SettingsMap;
  /**
   * WARNINGs of a login whose settings were put on at login (its role's
   * defaults that no longer hold, backendsettings.ts checkedAtLogin): they
   * go to the client with its first answer, as when the switch is then.
   */
  loginWarnings: PgError[] = [];
  rolesDirty = false;
  databasesDirty = false;
  pendingListen: ListenOp[] = [];
  pendingListenSpoiled = false;
  unnamedParse: Uint8Array | null = null;
  /**
   * Whether its unnamed statement, and which of its portals, run a COPY …
   * FROM STDIN, as of the inputs it sent the engine (naming.ts): an Execute
   * of one is fed the client's data (copyfrom.ts). A portal is forgotten
   * when bound again to something else, and all of them when the session's
   * transaction ends (session.ts), as PostgreSQL drops them then.
   */
  readonly copyIn = { unnamed: false, portals: new Set<string>() };
  owns = false;
  /**
   * The session's last word on backup mode was pg_backup_start: if it ends
   * so, the engine ends the backup (engine.ts endSession), as PostgreSQL
   * aborts a backup whose session ended; here the backend lives on and
   * would refuse every later pg_backup_start.
   */
  backupStarted = false;
  /**
   * A DISCARD SEQUENCES or DISCARD ALL answered by pgts (discard.ts): its
   * next exec has the backend forget its currval/lastval values (sequences.ts).
   */
  sequencesDiscarded = false;
  /** Its reset values went to the backend with an exec (resetvalues.ts). */
  resetValuesSent = false;
  /** The custom placeholders (`app.tenant`) its statements SET or RESET (customsettings.ts). */
  readonly customMade = new Set<string>();
  /** Those of them not yet sent to the backend with an exec. */
  customUnsent: string[] = [];
  /** This session's temporary namespaces (tempnamespace.ts); none until PostgreSQL makes them. */
  temp: TempPair = NO_TEMP;
  /** The backend just made `temp`, still named pg_temp_N: the engine renames it (tempschemas.ts). */
  tempUnnamed = false;

  constructor(init: GlobalsInit) {
    this.id = init.id;
    this.pid = init.pid;
    this.user = init.user;
    this.userOid = init.userOid;
    this.prefix = sessionPrefix(init.id);
    this.settings = init.settings;
    this.startupSettings = init.settings;
    if (init.spelled !== undefined) {
      this.settings = init.spelled;
      this.settingsDirty = false;
      this.settingsFromStartup = false;
    }
  }

  /** Whether the input starts or stops a backup (its last mention wins). */
  noteBackup(input: Uint8Array): void {
    const call = lastBackupCall(input);
    if (call !== null) this.backupStarted = call === "start";
  }

  /** The WITH HOLD cursors the input declares and closes (before it runs: CLOSE ALL's check). */
  noteHoldCursors(plan: InputPlan): void {
    for (const n of plan.declaredHoldCursors) this.holdCursors.add(n);
    for (const n of plan.closedHoldCursors) this.holdCursors.delete(n);
    if (plan.closesAll) this.holdCursors.clear();
  }

  /**
   * What the input, about to run on the engine, may change: read back at
   * the transaction's end. The custom placeholders it sets are the
   * session's own from now on (customsettings.ts), and the engine's.
   */
  noteInput(plan: InputPlan, engine: { noteCustomSetting(name: string): void }): void {
    this.noteCustomMade(plan.customSettings, engine, false);
    for (const n of plan.createdStatements) this.statements.add(n);
    for (const t of plan.writtenTexts) {
      if (t.original.length > WRITTEN_TEXT_MAX) continue;
      const key = `${t.engine}\0${t.rewritten}`;
      this.writtenTexts.delete(key);
      if (this.writtenTexts.size >= WRITTEN_TEXTS_KEPT) {
        this.writtenTexts.delete(this.writtenTexts.keys().next().value!);
      }
      this.writtenTexts.set(key, t);
    }
    if (plan.settingsDirty) {
      this.settingsDirty = true;
      this.settingsFromStartup = false;
    }
    if (plan.rolesDirty) this.rolesDirty = true;
    if (plan.databasesDirty) this.databasesDirty = true;
    // Savepoints matter only around a LISTEN or UNLISTEN not yet applied:
    // one that started before them is one that started before everything
    // noted (notify.ts).
    if (
      plan.listenOps.length > 0 &&
      (this.pendingListen.length > 0 ||
        plan.listenOps.some(([op]) => op === "listen" || op === "unlisten"))
    ) {
      this.pendingListen.push(...plan.listenOps);
    }
  }
  /**
   * Custom settings the session set or reset: the engine reads them back
   * with settings maps from now on, and they are the session's own
   * (customsettings.ts); unless `onEngine` (a function set them there, and
   * the engine's thread noted them) they go to the engine with the next exec.
   */
  noteCustomMade(
    names: readonly string[],
    engine: { noteCustomSetting(name: string): void },
    onEngine: boolean,
  ): void {
    for (const n of names) {
      engine.noteCustomSetting(n);
      if (this.customMade.has(n)) continue;
      this.customMade.add(n);
      if (!onEngine) this.customUnsent.push(n);
    }
  }

  /** What the input's Parse or Query does to the unnamed statement: it is now this text, or none. */
  noteUnnamed(plan: InputPlan): void {
    if (plan.unnamedParse !== null) {
      this.unnamedParse = plan.unnamedParse;
      this.copyIn.unnamed = plan.unnamedCopyIn;
    } else if (plan.hasQuery) {
      this.unnamedParse = null;
      this.copyIn.unnamed = false;
    }
    if (plan.boundPortals !== null) {
      for (const [portal, copy] of plan.boundPortals) {
        if (copy) this.copyIn.portals.add(portal);
        else this.copyIn.portals.delete(portal);
      }
    }
  }

  /**
   * The bytes to run for a planned input, and which answer of theirs to
   * drop first (0: none). The unnamed statement lives in the one backend
   * until the next Parse of it or the next simple Query, by any session.
   * If this input binds it before parsing it and another session has
   * replaced it since, this session's is put back (or none, so the Bind
   * fails as it should). Notes what the input does to it, and whose the
   * backend's is then.
   */
  withOwnUnnamed(
    plan: InputPlan,
    engine: { unnamedOwner: SessionGlobals | null },
  ): { bytes: Uint8Array; drop: number } {
    let bytes = plan.bytes;
    let drop = 0;
    if (plan.usesUnnamedFirst && engine.unnamedOwner !== this) {
      bytes = concat([this.unnamedParse ?? fe.close("S", ""), bytes]);
      drop = this.unnamedParse !== null ? BE.ParseComplete : BE.CloseComplete;
    }
    this.noteUnnamed(plan);
    engine.unnamedOwner = plan.unnamedParse !== null || plan.usesUnnamedFirst
      ? this
      : plan.hasQuery
      ? null
      : engine.unnamedOwner;
    return { bytes, drop };
  }
}
