/**
 * The engines of a cluster's databases, one per database, each in a slot:
 * opened when first needed (from the cluster image when the database has
 * no files yet, recovered from the archive when it has a recovery.signal),
 * closed when it has had no session for `idleTimeoutMs` ("postgres"'s
 * stays open: it answers role lookups). Every engine shows the cluster's
 * list of databases in its pg_database (the mirror) and the cluster's
 * roles, which are "postgres"'s: a change of roles in one engine is copied
 * to every other.
 *
 * Owns the slots and their order of work: whatever is done to a slot
 * (opening, closing, a copy of its files) runs alone (`exclusive`), so a
 * database's cluster is never opened twice and an idle close never ends an
 * engine under a session starting on it. What the list of databases is,
 * and CREATE/DROP DATABASE, are dbengines.ts's.
 */

import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ENGINE_DIR } from "../../core/datadir.ts";
import { ereport, ERRCODE, PgError } from "../../core/elog.ts";
import { openEngine, type OpenEngineOptions } from "./cluster.ts";
import type { EngineReload } from "./engineoptions.ts";
import { systemIdentifier } from "./controlfile.ts";
import type { EngineCluster, PgliteEngine } from "./engine.ts";
import { findClusterImage, unpackClusterImage } from "./image.ts";
import {
  type DatabaseCatalog,
  type DatabaseEntry,
  type DatabaseShown,
  mirrorSql,
  ownComment,
  servedAclChangeSql,
} from "./pg_database.ts";
import { ROLES_DUMP_SQL, rolesSyncSql } from "./pg_authid.ts";
import { DEPENDENTS_SQL, parseDependents } from "./pg_shdepend.ts";
import type { PgliteSession } from "./session.ts";
import { databaseRecoverySettings, RECOVERY_SETTINGS, recoveryUnreached } from "./recovery.ts";

export interface ClusterEngineOptions extends Omit<OpenEngineOptions, "database" | "cluster"> {
  /** How long a database's engine stays open without sessions (ms; 0: until shutdown); default 10 s. */
  readonly idleTimeoutMs?: number;
  /** archive_timeout (ms; 0: off): each open database's WAL segment is switched this often when written to. */
  readonly archiveTimeoutMs?: number;
}

/** One database's place in the registry. */
export interface Slot {
  readonly entry: DatabaseEntry;
  engine: PgliteEngine | null;
  /** Opening, closing, or a copy of its files in progress: wait for it first. */
  busy: Promise<unknown> | null;
  idle: ReturnType<typeof setTimeout> | null;
  /** Sessions being started on the engine: an idle close must not take it from under them. */
  starting: number;
  /**
   * Copies of the cluster's catalogs queued for this engine and not yet
   * made: changed roles (rolesChanged), a database's changed privileges
   * (privilegesChanged). Its sessions' next statements wait for them.
   */
  rolesDue?: Promise<void>;
}

/** The OID of "postgres", whose engine is opened with the cluster and never closed while it runs. */
export const MAIN_OID = 5;
/** How long a closing engine may take to count what depends on each role (#keepDependents). */
const KEEP_DEPENDENTS_MS = 2000;
/** The directories of initdb's template1 and template0 inside a PGlite cluster. */
const INITDB_TEMPLATES = ["1", "4"];

export class DatabaseEngines {
  readonly #dataDir: string;
  #options: ClusterEngineOptions;
  readonly #catalog: DatabaseCatalog;
  readonly #main: PgliteEngine;
  /** What every engine opened here is given to ask the cluster (engine.ts). */
  readonly #hooks: EngineCluster;
  readonly #slots = new Map<number, Slot>();
  /** Each engine's databases' owners and privileges as its pg_database showed them after its last mirror. */
  readonly #mirrored = new WeakMap<PgliteEngine, ReadonlyMap<string, DatabaseShown>>();
  /** Copies of changed roles to every engine, one after another. */
  #rolesSync: Promise<void> = Promise.resolve();
  /** Copies of roles queued or running in #rolesSync. */
  #rolesSyncing = 0;
  /** Bumped when a copy of roles starts. */
  #rolesVersion = 0;
  #closing = false;

  /** `main` is "postgres"'s engine, open already; `mainEntry` its row of the catalog. */
  constructor(
    dataDir: string,
    cluster: {
      options: ClusterEngineOptions;
      catalog: DatabaseCatalog;
      main: PgliteEngine;
      mainEntry: DatabaseEntry;
      hooks: EngineCluster;
    },
  ) {
    this.#dataDir = dataDir;
    this.#options = cluster.options;
    this.#catalog = cluster.catalog;
    this.#main = cluster.main;
    this.#hooks = cluster.hooks;
    this.#slots.set(MAIN_OID, {
      entry: cluster.mainEntry,
      engine: cluster.main,
      busy: null,
      idle: null,
      starting: 0,
    });
  }

  /** "postgres"'s engine. */
  get main(): PgliteEngine {
    return this.#main;
  }

  /**
   * A reload of the configuration: every open engine takes it, and every
   * engine opened from now on starts with it.
   */
  reloadSettings(reload: EngineReload): void {
    this.#options = {
      ...this.#options,
      settings: { ...this.#options.settings, ...Object.fromEntries(reload.settings) },
      settingFiles: reload.settingFiles,
      statementTimeoutMs: reload.statementTimeoutMs,
      lockTimeoutMs: reload.lockTimeoutMs,
      idleInTransactionSessionTimeoutMs: reload.idleInTransactionSessionTimeoutMs,
      idleSessionTimeoutMs: reload.idleSessionTimeoutMs,
      transactionTimeoutMs: reload.transactionTimeoutMs,
    };
    for (const slot of this.#slots.values()) slot.engine?.reloadSettings(reload);
  }

  /** Every slot, open or not. */
  slots(): IterableIterator<Slot> {
    return this.#slots.values();
  }

  /** The slot of `oid`, if it has one. */
  get(oid: number): Slot | undefined {
    return this.#slots.get(oid);
  }

  /** The database's slot, made if it has none. */
  slotOf(entry: DatabaseEntry): Slot {
    let slot = this.#slots.get(entry.oid);
    if (slot === undefined) {
      slot = { entry, engine: null, busy: null, idle: null, starting: 0 };
      this.#slots.set(entry.oid, slot);
    }
    return slot;
  }

  /** Forgets a dropped database's slot (its engine is closed). */
  forget(oid: number): void {
    this.#slots.delete(oid);
  }

  /** The sessions of every open engine but `engine`. */
  *otherSessions(engine: PgliteEngine): Generator<PgliteSession> {
    for (const slot of this.#slots.values()) {
      if (slot.engine !== null && slot.engine !== engine) yield* slot.engine.sessions();
    }
  }

  /** Runs `fn` when nothing else is done to the slot, and keeps others out meanwhile. */
  async exclusive<T>(slot: Slot, fn: () => Promise<T>): Promise<T> {
    while (slot.busy !== null) await slot.busy.catch(() => {});
    const p = fn();
    slot.busy = p;
    try {
      return await p;
    } finally {
      if (slot.busy === p) slot.busy = null;
    }
  }

  /**
   * Runs `fn` on the slot's engine, if it is open, while nothing else is
   * done to the slot: an idle close must not end the engine under it.
   */
  onEngine(slot: Slot, fn: (engine: PgliteEngine) => Promise<void>): Promise<void> {
    return this.exclusive(slot, async () => {
      if (slot.engine !== null) await fn(slot.engine);
    });
  }

  /** The database's engine, opened if it is not. */
  async engineOf(slot: Slot): Promise<PgliteEngine> {
    if (slot.idle !== null) {
      clearTimeout(slot.idle);
      slot.idle = null;
    }
    for (;;) {
      if (slot.busy === null && slot.engine !== null) return slot.engine;
      if (slot.busy !== null) {
        await slot.busy.catch(() => {});
        continue;
      }
      if (this.#closing) {
        throw new PgError(ERRCODE.CANNOT_CONNECT_NOW, "the database system is shutting down", {
          severity: "FATAL",
        });
      }
      let version = -1;
      await this.exclusive(slot, async () => {
        this.#materializeNow(slot.entry);
        const engine = await this.#openDatabase(slot.entry);
        try {
          // The cluster's roles are "postgres"'s, which every change reaches.
          // A change copied while this engine opens may miss it: then it is
          // copied again below.
          version = this.#rolesVersion;
          await this.mirror(engine, slot.entry, await this.#rolesOf(this.#main));
        } catch (e) {
          await engine.close();
          throw e;
        }
        slot.engine = engine;
        // What it has of each role may change from now on (pg_shdepend.ts).
        if (slot.entry.dependents !== undefined) {
          delete slot.entry.dependents;
          this.#catalog.save();
        }
      });
      if (version !== this.#rolesVersion) {
        await this.#rolesSync;
        const roles = await this.#rolesOf(this.#main);
        await this.onEngine(slot, (e) => e.runAsCluster(() => rolesSyncSql(roles)));
      }
      // Its own privileges are the truth (a list from before they were kept there).
      if (slot.engine !== null) void this.privilegesChanged(slot.engine);
    }
  }

  async closeEngine(slot: Slot): Promise<void> {
    if (slot.idle !== null) {
      clearTimeout(slot.idle);
      slot.idle = null;
    }
    await this.exclusive(slot, async () => {
      const engine = slot.engine;
      if (engine !== null) await this.#keepDependents(slot, engine);
      slot.engine = null;
      await engine?.close();
    });
  }

  /** Whether the database has files (one never opened has none: the cluster image is unpacked at its first open). */
  hasFiles(entry: DatabaseEntry): boolean {
    return existsSync(join(this.#dataDir, entry.dir, "PG_VERSION"));
  }

  /**
   * Before a database's engine closes: what its pg_shdepend has of each
   * role, kept in the list, so that DROP ROLE elsewhere need not open it
   * (dbengines.ts's dependentsElsewhere). Not for "postgres", always open.
   */
  async #keepDependents(slot: Slot, engine: PgliteEngine): Promise<void> {
    if (slot.entry.oid === MAIN_OID) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      // Bounded: a close (a shutdown's too) never waits long on an engine that cannot answer.
      const counts = await Promise.race([
        engine.queryAsCluster(DEPENDENTS_SQL),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error("no answer")), KEEP_DEPENDENTS_MS);
        }),
      ]);
      slot.entry.dependents = parseDependents(counts);
    } catch {
      // Not known: the next DROP ROLE elsewhere opens it to look.
      delete slot.entry.dependents;
    } finally {
      clearTimeout(timer);
    }
    this.#catalog.save();
  }

  /**
   * After "postgres"'s archive recovery, every other database's, before
   * the server accepts connections (PostgreSQL recovers its one cluster
   * before it does): each engine is opened, which recovers it, and closed.
   * A database that cannot recover stops the start, as PostgreSQL's
   * startup process failing does.
   */
  async recoverOthers(): Promise<void> {
    for (const entry of this.#catalog.list()) {
      if (entry.oid === MAIN_OID) continue;
      if (!existsSync(join(this.#dataDir, entry.dir, "recovery.signal"))) continue;
      const slot = this.slotOf(entry);
      await this.engineOf(slot);
      await this.closeEngine(slot);
    }
  }

  /** A database whose cluster does not exist yet (initdb's template1 and template0) is made from the image. */
  materialize(slot: Slot): Promise<void> {
    return this.exclusive(slot, () => Promise.resolve(this.#materializeNow(slot.entry)));
  }

  /**
   * Shows the list in `engine`'s pg_database (the served row takes
   * `entry`'s name); with `roles`, the cluster's roles first.
   */
  async mirror(engine: PgliteEngine, entry: DatabaseEntry, roles?: string): Promise<void> {
    const list = this.#catalog.list();
    await engine.runAsCluster(
      (oid) =>
        (roles !== undefined ? rolesSyncSql(roles) + ";\n" : "") + mirrorSql(list, entry, oid),
      { timeoutMs: Infinity },
    );
    // runAsCluster read the engine's catalogs again: its rows as mirrored.
    this.#mirrored.set(engine, engine.databasesShown);
    if (entry.inner !== engine.database || entry.fresh === true) {
      entry.inner = engine.database;
      delete entry.fresh;
      this.#catalog.save();
    }
  }

  /** The list changed: shown in every open engine's pg_database (but `except`'s). */
  async mirrorAll(except?: Slot): Promise<void> {
    await Promise.all(
      [...this.#slots.values()].map(async (s) => {
        if (s.engine !== null && s !== except) {
          await this.onEngine(s, (e) => this.mirror(e, s.entry));
        }
      }),
    );
  }

  /**
   * `source`'s database's privileges or comment may have changed: kept in
   * the list and shown in every other open engine's pg_database (and
   * pg_shdescription). Resolves once they are (logged, not raised, when an
   * engine could not take them).
   */
  async privilegesChanged(source: PgliteEngine): Promise<void> {
    // Due now, before the first await: the answer of the statement that
    // changed them has not gone yet, and a DROP ROLE in another database
    // right after it must see them (its dependencies), as in PostgreSQL.
    const arrived = this.#copiesDue(source);
    try {
      await this.#privilegesShown(source);
    } finally {
      arrived();
    }
  }

  async #privilegesShown(source: PgliteEngine): Promise<void> {
    await this.#othersChangedIn(source);
    const slot = this.#slotServing(source);
    if (slot === undefined) return;
    const comment = ownComment(slot.entry, source.servedComment);
    if ((slot.entry.acl ?? null) === source.servedAcl && slot.entry.comment === comment) return;
    slot.entry.acl = source.servedAcl;
    slot.entry.comment = comment;
    this.#catalog.save();
    await this.mirrorAll(slot).catch((e) => {
      ereport("LOG", "could not show a database's privileges in every database", {
        category: "engine",
        detail: e instanceof Error ? e.message : String(e),
      });
    });
  }

  /**
   * Other databases' rows `source`'s own SQL changed since its last
   * mirror: an owner (REASSIGN OWNED, which reassigns databases too; an
   * owner's ALTER ROLE … RENAME, which the list, keeping names, would not
   * see) or privileges (DROP OWNED, which revokes a role's privileges on
   * every database). Each change, not the row, is carried over: the list
   * takes a new owner only where it still has the one the mirror gave, and
   * the items removed and added go to the database's own engine (where its
   * privileges are kept), from which every engine shows them. So a row not
   * yet mirrored after another session's GRANT or ALTER DATABASE … OWNER
   * TO takes nothing back.
   */
  async #othersChangedIn(source: PgliteEngine): Promise<void> {
    const before = this.#mirrored.get(source);
    if (before === undefined) return;
    const now = source.databasesShown;
    const served = this.#slotServing(source);
    const aclChanges: Array<[DatabaseEntry, string[], string[]]> = [];
    let owners = false;
    for (const [name, shown] of now) {
      const was = before.get(name);
      const entry = this.#catalog.get(name);
      if (was === undefined || entry === undefined) continue;
      // Only over the owner the mirror gave it: another change meanwhile stands.
      if (shown.owner !== was.owner && shown.owner !== null && entry.owner === was.owner) {
        entry.owner = shown.owner;
        owners = true;
      }
      // The served row's privileges are its engine's own (privilegesChanged).
      if (entry === served?.entry) continue;
      const had = new Set(was.items ?? []);
      const has = new Set(shown.items ?? []);
      const removed = [...had].filter((x) => !has.has(x));
      const added = [...has].filter((x) => !had.has(x));
      if (removed.length > 0 || added.length > 0) aclChanges.push([entry, removed, added]);
    }
    this.#mirrored.set(source, new Map(now));
    if (!owners && aclChanges.length === 0) return;
    if (owners) this.#catalog.save();
    // A renamed owner is found by its new name once every engine has it.
    await this.#rolesSync;
    try {
      for (const [entry, removed, added] of aclChanges) {
        // Made on its own engine (opened if it is not), where its privileges
        // are kept, as a change: what else changed there meanwhile stays.
        const slot = this.slotOf(entry);
        await this.engineOf(slot);
        let ran: PgliteEngine | null = null;
        await this.onEngine(slot, async (e) => {
          await e.runAsCluster((oid) => servedAclChangeSql(oid, removed, added));
          ran = e;
        });
        if (ran !== null) await this.privilegesChanged(ran);
      }
      if (owners) await this.mirrorAll(served);
    } catch (e) {
      ereport("LOG", "could not show a database's new owner or privileges in every database", {
        category: "engine",
        detail: e instanceof Error ? e.message : String(e),
      });
    }
  }

  /** The slot whose open engine `engine` is. */
  #slotServing(engine: PgliteEngine): Slot | undefined {
    for (const s of this.#slots.values()) if (s.engine === engine) return s;
    return undefined;
  }

  /**
   * A promise of a copy from `source` on every other open (or opening)
   * engine's slot, chained to the copies already due there: the resolvers,
   * by slot.
   */
  #dueOn(source: PgliteEngine): Map<Slot, () => void> {
    const due = new Map<Slot, () => void>();
    for (const s of this.#slots.values()) {
      if ((s.engine === null && s.busy === null) || s.engine === source) continue;
      const arrived = new Promise<void>((resolve) => due.set(s, resolve));
      const before = s.rolesDue;
      const mine = (before === undefined ? arrived : Promise.all([before, arrived]).then(() => {}))
        .finally(() => {
          if (s.rolesDue === mine) delete s.rolesDue;
        });
      s.rolesDue = mine;
    }
    return due;
  }

  /** #dueOn, resolved all at once by the function returned. */
  #copiesDue(source: PgliteEngine): () => void {
    const due = this.#dueOn(source);
    return () => {
      for (const resolve of due.values()) resolve();
      due.clear();
    };
  }

  /** Roles may have changed in `source`: every other open engine gets its pg_authid. */
  rolesChanged(source: PgliteEngine): void {
    // Each engine to copy to has a promise of it now, before the copy is
    // queued: its sessions' next statements wait for it (rolesArriving).
    const due = this.#dueOn(source);
    const arrived = (s: Slot) => {
      due.get(s)?.();
      due.delete(s);
    };
    const sync = async () => {
      this.#rolesVersion++;
      const dump = await this.#rolesOf(source);
      await Promise.all(
        [...this.#slots.values()].map((s) =>
          // A busy slot is waited for, not skipped: one mirroring the list
          // of databases (a CREATE DATABASE just after the role's change)
          // kept the roles it had until the next change of roles. One that
          // was opening copied "postgres"'s roles itself, and gets them again.
          (s.engine === null && s.busy === null) || s.engine === source
            ? arrived(s)
            : this.onEngine(
              s,
              (engine) => engine.runAsCluster(() => rolesSyncSql(dump), { timeoutMs: Infinity }),
            ).finally(() => arrived(s))
        ),
      );
    };
    this.#rolesSyncing++;
    this.#rolesSync = this.#rolesSync.then(sync).catch((e) => {
      ereport("LOG", "could not copy roles to every database", {
        category: "engine",
        detail: e instanceof Error ? e.message : String(e),
      });
    }).finally(() => {
      this.#rolesSyncing--;
      for (const s of [...due.keys()]) arrived(s);
    });
  }

  /**
   * What `engine`'s next statement waits for: another engine reading back
   * roles a transaction changed (catalogsSettling, before it queues their
   * copy), and the copies queued for `engine`. Null, at the cost of a look
   * at each open engine, when there is nothing.
   */
  rolesArriving(engine: PgliteEngine): Promise<void> | null {
    let settling: PgliteEngine[] | null = null;
    let due: Promise<void> | undefined;
    for (const s of this.#slots.values()) {
      if (s.engine === engine) due = s.rolesDue;
      else if (s.engine?.catalogsSettling === true) (settling ??= []).push(s.engine);
    }
    if (settling === null && due === undefined) return null;
    return (async () => {
      if (settling !== null) await Promise.all(settling.map((e) => e.settleCatalogs()));
      // A copy those read-backs queued for this engine.
      await this.#slotServing(engine)?.rolesDue;
      await due;
    })();
  }

  /** Whether a copy of roles changed elsewhere is still to reach `engine`. */
  rolesDueTo(engine: PgliteEngine): boolean {
    return this.#slotServing(engine)?.rolesDue !== undefined;
  }

  /**
   * Waits for role changes that have committed somewhere to reach every
   * engine. Every login asks (twice): most find nothing to wait for, and
   * return without a promise per database.
   */
  async settleRoles(): Promise<void> {
    let settling = this.#rolesSyncing > 0;
    for (const s of this.#slots.values()) settling ||= s.engine?.catalogsSettling === true;
    if (!settling) return;
    await Promise.all([...this.#slots.values()].map((s) => s.engine?.settleCatalogs()));
    await this.#rolesSync;
  }

  /** A session ended: a database with none left is closed after idleTimeoutMs ("postgres" never). */
  sessionEnded(engine: PgliteEngine): void {
    const idleMs = this.#options.idleTimeoutMs ?? 10_000;
    if (engine === this.#main || engine.sessionCount > 0 || this.#closing || idleMs <= 0) return;
    const slot = this.#slotServing(engine);
    if (slot === undefined || slot.idle !== null) return;
    slot.idle = setTimeout(() => {
      slot.idle = null;
      // Checked again once nothing else is done to the slot: a session may
      // have started meanwhile.
      void this.exclusive(slot, async () => {
        if (slot.engine !== engine || engine.sessionCount > 0 || slot.starting > 0) return;
        ereport(
          "DEBUG1",
          `closing the engine of database "${slot.entry.name}" after ${idleMs} ms without a session`,
          { category: "engine" },
        );
        await this.#keepDependents(slot, engine);
        slot.engine = null;
        await engine.close();
      }).catch(() => {});
    }, idleMs);
    (slot.idle as { unref?: () => void }).unref?.();
  }

  /** Whether the cluster is shutting down: no engine opens. */
  get closing(): boolean {
    return this.#closing;
  }

  /**
   * Closes every engine once `pending` (the database commands under way)
   * and what is being done to each slot are over; none opens from now on.
   */
  async close(pending: Promise<unknown>): Promise<void> {
    this.#closing = true;
    await pending;
    const all = [...this.#slots.values()];
    for (const s of all) if (s.idle !== null) clearTimeout(s.idle);
    await Promise.all(all.map(async (s) => {
      await s.busy?.catch(() => {});
      if (s.engine !== null) await this.#keepDependents(s, s.engine);
      await s.engine?.close();
      s.engine = null;
    }));
  }

  /**
   * Opens the engine of a database other than "postgres": archived as
   * "postgres" is (the archiver reads every database's pg_wal), and, when
   * its cluster has a recovery.signal, recovered from the archive to the
   * target "postgres"'s recovery left there; once more to the end of its
   * archive when its WAL ends before that target (recovery.ts).
   */
  async #openDatabase(entry: DatabaseEntry): Promise<PgliteEngine> {
    const settings = this.#options.settings;
    const signal = join(this.#dataDir, entry.dir, "recovery.signal");
    const open = (unreached: boolean, database: string) => {
      const recovery = settings === undefined
        ? null
        : databaseRecoverySettings(this.#dataDir, entry.dir, { settings, unreached });
      return openEngine(join(this.#dataDir, entry.dir), {
        ...this.#options,
        ...(settings === undefined
          ? {}
          : { settings: { ...withoutRecovery(settings), ...recovery } }),
        database,
        cluster: this.#hooks,
      });
    };
    const openRecovered = async (unreached: boolean) => {
      try {
        return await open(unreached, entry.inner);
      } catch (e) {
        if (entry.inner === entry.name || existsSync(signal)) throw e;
        // The recovery ended, and replayed the mirror's renaming of the
        // served row (by then named for the database) past what the
        // backup's list says: the row is found by its new name.
        return await open(false, entry.name);
      }
    };
    try {
      return await openRecovered(false);
    } catch (e) {
      if (!recoveryUnreached(this.#dataDir, entry.dir)) throw e;
      ereport(
        "LOG",
        `database "${entry.name}" has no WAL after the recovery target; recovering it to the end of its archive`,
        { category: "engine" },
      );
      return await openRecovered(true);
    } finally {
      recoveryUnreached(this.#dataDir, entry.dir);
    }
  }

  #materializeNow(entry: DatabaseEntry): void {
    if (this.hasFiles(entry)) return;
    const dir = join(this.#dataDir, entry.dir);
    const image = findClusterImage();
    const main = join(this.#dataDir, ENGINE_DIR);
    if (image === null) {
      throw new PgError(
        ERRCODE.OBJECT_NOT_IN_PREREQUISITE_STATE,
        `database "${entry.name}" has no files and there is no cluster image to make them from`,
      );
    }
    rmSync(dir, { recursive: true, force: true });
    unpackClusterImage(image, dir, {
      systemIdentifier: systemIdentifier(readFileSync(join(main, "global", "pg_control"))),
    });
    // initdb's template1 and template0 inside the copy are never opened (the
    // copy serves its "postgres", and the mirror replaces their rows):
    // without them every copy of this cluster is 15 MB smaller.
    for (const oid of INITDB_TEMPLATES) rmSync(join(dir, "base", oid), { recursive: true });
  }

  async #rolesOf(engine: PgliteEngine): Promise<string> {
    return (await engine.queryAsCluster(ROLES_DUMP_SQL)) ?? "[[],[],[]]";
  }
}

/**
 * Engine settings without archive recovery's, which a database other than
 * "postgres" gets from its own recovery.signal (recovery.ts).
 */
function withoutRecovery(
  settings: Readonly<Record<string, string>>,
): Readonly<Record<string, string>> {
  const { hot_standby: _hs, ...rest } = settings;
  const kept: Record<string, string> = { ...rest };
  for (const name of RECOVERY_SETTINGS) delete kept[name];
  return kept;
}
