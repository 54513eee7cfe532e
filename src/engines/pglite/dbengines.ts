/**
 * The engine of a whole pgts cluster on PGlite: one PGlite engine per
 * database. PGlite's backend serves one database for its life, as a
 * PostgreSQL backend does, and two PGlite instances cannot share a data
 * directory, so every database is a PGlite cluster of its own
 * (pg_database.ts says where) with an engine of its own, opened when its
 * first client connects and closed when it has had none for
 * `idleTimeoutMs` ("postgres"'s stays open: it answers role lookups). Each
 * engine runs PGlite on a Worker thread of its own, so sessions of two
 * databases run at the same time on two CPUs.
 *
 * It owns the list of databases and carries out CREATE/ALTER/DROP DATABASE
 * (dbcommands.ts has the rules): a new database is a copy of its
 * template's cluster, taken after a CHECKPOINT while the template's engine
 * is held, or of its files when the template's engine is closed, the way
 * PostgreSQL's FILE_COPY strategy copies a template's directory. Every
 * change of the list is shown in the pg_database of every open engine
 * (and of the others when they open).
 *
 * Must never open a database's cluster twice, copy a cluster some session
 * writes to, or remove one whose engine is open. A lost backend in any
 * engine is the whole cluster's crash (`onBroken`), as in PostgreSQL.
 */

import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ENGINE_DIR } from "../../core/datadir.ts";
import { copyCluster, fsyncTree } from "./clustercopy.ts";
import { ereport, ERRCODE, PgError } from "../../core/elog.ts";
import type {
  Engine,
  EngineSession,
  ParameterStatusList,
  RoleInfo,
  SessionStartup,
} from "../../core/engine/types.ts";
import { openEngine, type OpenEngineOptions } from "./cluster.ts";
import { systemIdentifier } from "./controlfile.ts";
import { type DatabaseCluster, databaseCommand } from "./dbcommands.ts";
import type { EngineCluster, EngineRole, PgliteEngine } from "./engine.ts";
import { findClusterImage, unpackClusterImage } from "./image.ts";
import { DatabaseCatalog, type DatabaseEntry, mirrorSql } from "./pg_database.ts";
import { ROLES_DUMP_SQL, rolesSyncSql } from "./pg_authid.ts";
import type { PgliteSession } from "./session.ts";
import {
  databaseRecoverySettings,
  otherDatabasesTarget,
  RECOVERY_SETTINGS,
  recoveryUnreached,
} from "./recovery.ts";
import { quoteLiteral } from "./wire.ts";

export interface ClusterEngineOptions extends Omit<OpenEngineOptions, "database" | "cluster"> {
  /** How long a database's engine stays open without sessions (ms; 0: until shutdown); default 10 s. */
  readonly idleTimeoutMs?: number;
  /** archive_timeout (ms; 0: off): each open database's WAL segment is switched this often when written to. */
  readonly archiveTimeoutMs?: number;
}

interface Slot {
  readonly entry: DatabaseEntry;
  engine: PgliteEngine | null;
  /** Opening, closing, or a copy of its files in progress: wait for it first. */
  busy: Promise<unknown> | null;
  idle: ReturnType<typeof setTimeout> | null;
  /** Sessions being started on the engine: an idle close must not take it from under them. */
  starting: number;
}

const MAIN_OID = 5;
/** The directories of initdb's template1 and template0 inside a PGlite cluster. */
const INITDB_TEMPLATES = ["1", "4"];

export class ClusterEngine implements Engine, DatabaseCluster {
  readonly #dataDir: string;
  readonly #options: ClusterEngineOptions;
  readonly #catalog: DatabaseCatalog;
  readonly #slots = new Map<number, Slot>();
  readonly #main: PgliteEngine;
  readonly #hooks: EngineCluster;
  /** CREATE/ALTER/DROP DATABASE run one at a time. */
  #commands: Promise<unknown> = Promise.resolve();
  /** Copies of changed roles to every engine, one after another. */
  #rolesSync: Promise<void> = Promise.resolve();
  /** Bumped when a copy of roles starts. */
  #rolesVersion = 0;
  #closing = false;
  #archiveTimer: ReturnType<typeof setInterval> | null = null;

  private constructor(
    dataDir: string,
    options: ClusterEngineOptions,
    main: PgliteEngine,
    catalog: DatabaseCatalog,
    hooks: EngineCluster,
  ) {
    this.#dataDir = dataDir;
    this.#options = options;
    this.#main = main;
    this.#catalog = catalog;
    this.#hooks = hooks;
  }

  /** Opens the cluster in `dataDir` (a pgts data directory): "postgres"'s engine now, the others when used. */
  static async open(dataDir: string, options: ClusterEngineOptions = {}): Promise<ClusterEngine> {
    let self: ClusterEngine | null = null;
    /** Bumped at every session's start and end, in any database. */
    let sessionsVersion = 0;
    const hooks: EngineCluster = {
      databaseCommand: (s, sql) => self!.#databaseCommand(s, sql),
      sessionStarted: () => {
        sessionsVersion++;
      },
      sessionEnded: (engine) => {
        sessionsVersion++;
        if (self !== null) self.#sessionEnded(engine);
      },
      otherSessions: (engine) => self === null ? [] : self.#otherSessions(engine),
      sessionsVersion: () => sessionsVersion,
      rolesChanged: (engine) => {
        if (self !== null) self.#rolesChanged(engine);
      },
    };
    // An archive recovery of "postgres" is every database's (recovery.ts).
    const mainRecovers = existsSync(join(dataDir, ENGINE_DIR, "recovery.signal"));
    const main = await openEngine(join(dataDir, ENGINE_DIR), { ...options, cluster: hooks });
    try {
      if (mainRecovers) otherDatabasesTarget(dataDir, options.settings ?? {});
      else recoveryUnreached(dataDir, ENGINE_DIR); // a crash recovery's lines: not a target
      const owner = main.superuserName;
      const catalog = DatabaseCatalog.load(dataDir, { owner, served: main.database });
      self = new ClusterEngine(dataDir, options, main, catalog, hooks);
      const entry = catalog.list().find((d) => d.oid === MAIN_OID);
      if (entry === undefined) throw new Error('the cluster has no database "postgres"');
      self.#slots.set(MAIN_OID, { entry, engine: main, busy: null, idle: null, starting: 0 });
      await self.#mirror(main, entry);
      if (mainRecovers) await self.#recoverOthers();
      self.#startArchiveTimeout();
      return self;
    } catch (e) {
      await main.close();
      throw e;
    }
  }

  /** Why temporary objects are shared by all sessions, when they are (engine.ts); null when each session has its own. */
  get tempShared(): string | null {
    return this.#main.tempShared;
  }

  /** Why a lock wait on a prepared transaction's lock is not bounded, when it is not (engine.ts). */
  get lockWaitsUnbounded(): string | null {
    return this.#main.lockWaitsUnbounded;
  }

  // ---- Engine

  async lookupRole(name: string): Promise<RoleInfo | null> {
    // A role changed a moment ago (whose client may have its ReadyForQuery
    // already) may be on its way to "postgres"'s engine.
    await this.#settleRoles();
    return await this.#main.lookupRole(name);
  }

  async startSession(
    startup: SessionStartup,
  ): Promise<{ session: EngineSession; parameterStatus: ParameterStatusList }> {
    const entry = this.#catalog.get(startup.database);
    if (entry === undefined) {
      // "postgres"'s engine checks the role first, as InitPostgres does,
      // then finds no such database in its pg_database (the mirror).
      const { session } = await this.#main.startSession(startup);
      await session.close();
      throw new PgError(
        ERRCODE.INVALID_CATALOG_NAME,
        `database "${startup.database}" does not exist`,
        { severity: "FATAL" },
      );
    }
    if (!entry.allowConn) {
      throw new PgError(
        ERRCODE.OBJECT_NOT_IN_PREREQUISITE_STATE,
        `database "${entry.name}" is not currently accepting connections`,
        { severity: "FATAL" },
      );
    }
    const slot = this.#slotOf(entry);
    slot.starting++;
    try {
      return await this.#startOn(slot, startup);
    } finally {
      slot.starting--;
      if (slot.engine !== null) this.#sessionEnded(slot.engine);
    }
  }

  /** The sessions of every open engine but `engine`. */
  *#otherSessions(engine: PgliteEngine): Generator<PgliteSession> {
    for (const slot of this.#slots.values()) {
      if (slot.engine !== null && slot.engine !== engine) yield* slot.engine.sessions();
    }
  }

  async #startOn(
    slot: Slot,
    startup: SessionStartup,
  ): Promise<{ session: EngineSession; parameterStatus: ParameterStatusList }> {
    const entry = slot.entry;
    const engine = await this.#engineOf(slot);
    await this.#settleRoles();
    if (entry.connLimit >= 0 && engine.sessionCount >= entry.connLimit) {
      const role = this.#main.role(startup.user);
      if (role?.superuser !== true) {
        throw new PgError(
          ERRCODE.TOO_MANY_CONNECTIONS,
          `too many connections for database "${entry.name}"`,
          { severity: "FATAL" },
        );
      }
    }
    return engine.startSession(startup);
  }

  /**
   * After "postgres"'s archive recovery, every other database's, before
   * the server accepts connections (PostgreSQL recovers its one cluster
   * before it does): each engine is opened, which recovers it, and closed.
   * A database that cannot recover stops the start, as PostgreSQL's
   * startup process failing does.
   */
  async #recoverOthers(): Promise<void> {
    for (const entry of this.#catalog.list()) {
      if (entry.oid === MAIN_OID) continue;
      if (!existsSync(join(this.#dataDir, entry.dir, "recovery.signal"))) continue;
      const slot = this.#slotOf(entry);
      await this.#engineOf(slot);
      await this.#closeEngine(slot);
    }
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

  /**
   * archive_timeout, as PostgreSQL's checkpointer does it: every
   * archive_timeout the current segment of every open database is switched, so that a quiet server's last writes reach the
   * archive within that time. pg_switch_wal() does nothing when no WAL was
   * written since the last switch; a checkpoint's record counts as written
   * (PostgreSQL skips such "unimportant" records; pgts cannot tell them
   * apart), so an idle server archives one segment per checkpoint_timeout.
   * A switch that cannot have the engine within a second waits for the
   * next round.
   */
  #startArchiveTimeout(): void {
    const ms = this.#options.archiveTimeoutMs ?? 0;
    if (ms <= 0) return;
    this.#archiveTimer = setInterval(() => {
      if (this.#closing) return;
      for (const slot of this.#slots.values()) {
        if (slot.busy !== null || slot.engine === null) continue;
        slot.engine.runAsCluster(() => "select pg_catalog.pg_switch_wal()", { timeoutMs: 1000 })
          .catch(() => {});
      }
    }, ms);
    (this.#archiveTimer as { unref?: () => void }).unref?.();
  }

  async close(): Promise<void> {
    this.#closing = true;
    if (this.#archiveTimer !== null) clearInterval(this.#archiveTimer);
    await this.#commands.catch(() => {});
    const all = [...this.#slots.values()];
    for (const s of all) if (s.idle !== null) clearTimeout(s.idle);
    await Promise.all(all.map(async (s) => {
      await s.busy?.catch(() => {});
      await s.engine?.close();
      s.engine = null;
    }));
  }

  // ---- DatabaseCluster (dbcommands.ts)

  database(name: string): DatabaseEntry | undefined {
    return this.#catalog.get(name);
  }

  role(name: string): EngineRole | undefined {
    return this.#main.role(name);
  }

  async hasRole(member: string, role: string): Promise<boolean> {
    return await this.#main.queryAsCluster(
      `select pg_catalog.pg_has_role(${quoteLiteral(member)}, ${quoteLiteral(role)}, 'USAGE')`,
    ) === "t";
  }

  databaseOf(session: PgliteSession): DatabaseEntry {
    for (const s of this.#slots.values()) {
      if (s.engine !== null && s.engine.sessions().includes(session)) return s.entry;
    }
    throw new Error("a session of no database");
  }

  async otherSessions(db: DatabaseEntry, self: PgliteSession): Promise<number> {
    // As CountOtherDBBackends, sessions that are ending get up to 5 s to
    // go. PostgreSQL waits that long for any backend; here a session that
    // is not closing gets a moment only: a client that has just
    // disconnected (psql before dropdb) may not have reached the engine.
    const others = () => {
      const engine = this.#slots.get(db.oid)?.engine;
      return engine === null || engine === undefined
        ? []
        : engine.sessions().filter((s) => s !== self);
    };
    const start = Date.now();
    for (;;) {
      const left = others();
      const waited = Date.now() - start;
      if (left.length === 0 || waited >= 5000) return left.length;
      if (waited >= 300 && !left.some((s) => s.closing)) return left.length;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async create(name: string, template: DatabaseEntry, init: Partial<DatabaseEntry>): Promise<void> {
    const entry = this.#catalog.allocate(name, {
      owner: init.owner ?? template.owner,
      inner: template.inner,
      isTemplate: init.isTemplate ?? false,
      allowConn: init.allowConn ?? true,
      connLimit: init.connLimit ?? -1,
    });
    const to = join(this.#dataDir, entry.dir);
    rmSync(to, { recursive: true, force: true });
    const slot = this.#slotOf(template);
    await this.#materialize(slot);
    const copy = async (atCheckpoint: boolean) => {
      copyCluster(join(this.#dataDir, template.dir), to, atCheckpoint);
      // Durable before CREATE DATABASE is answered, as PostgreSQL's copy is.
      if (this.#options.settings?.["fsync"] !== "off") await fsyncTree(to);
    };
    try {
      await this.#exclusive(slot, async () => {
        if (slot.engine === null) return copy(false);
        // As FILE_COPY: a checkpoint puts every change on disk, and holding
        // the engine keeps anyone from writing until the copy is done.
        await slot.engine.runAsCluster(() => "CHECKPOINT", { during: () => copy(true) });
        // The copy's served row has the template's name as its cluster sees it now.
        entry.inner = slot.entry.inner;
      });
    } catch (e) {
      rmSync(to, { recursive: true, force: true });
      throw e;
    }
    this.#catalog.add(entry);
    await this.#mirrorAll();
  }

  async drop(db: DatabaseEntry, force: boolean): Promise<void> {
    if (db.oid === MAIN_OID) {
      // PostgreSQL can drop it; pgts keeps the cluster's roles in its engine.
      throw new PgError(
        ERRCODE.FEATURE_NOT_SUPPORTED,
        `cannot drop database "${db.name}"`,
        { detail: "pgts keeps the cluster's roles in the engine of this database." },
      );
    }
    const slot = this.#slotOf(db);
    if (force && slot.engine !== null) {
      slot.engine.terminateSessions(
        new PgError(ERRCODE.ADMIN_SHUTDOWN, "terminating connection due to administrator command", {
          severity: "FATAL",
        }),
      );
      // PostgreSQL waits up to 5 s for the terminated backends to go.
      const until = Date.now() + 5000;
      while (slot.engine.sessionCount > 0 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 10));
      }
      if (slot.engine.sessionCount > 0) {
        throw new PgError(
          ERRCODE.OBJECT_IN_USE,
          `database "${db.name}" is being accessed by other users`,
          { detail: `There are ${slot.engine.sessionCount} other sessions using the database.` },
        );
      }
    }
    await this.#closeEngine(slot);
    this.#catalog.remove(db.name);
    this.#slots.delete(db.oid);
    rmSync(join(this.#dataDir, db.dir), { recursive: true, force: true });
    await this.#mirrorAll();
  }

  async rename(db: DatabaseEntry, to: string): Promise<void> {
    // No session is connected. An open engine's served row is renamed by
    // the mirror; a closed one's by the mirror when it next opens (it finds
    // the row by its old name, `inner`).
    this.#catalog.rename(db, to);
    await this.#mirrorAll();
  }

  async update(db: DatabaseEntry, change: Partial<DatabaseEntry>): Promise<void> {
    Object.assign(db, change);
    this.#catalog.save();
    await this.#mirrorAll();
  }

  async runOn(db: DatabaseEntry, sql: string): Promise<void> {
    const slot = this.#slotOf(db);
    slot.starting++;
    try {
      await this.#engineOf(slot);
      await this.#onEngine(slot, (engine) => engine.runAsCluster(() => sql));
    } finally {
      slot.starting--;
      if (slot.engine !== null) this.#sessionEnded(slot.engine);
    }
  }

  // ---- internals

  #databaseCommand(session: PgliteSession, sql: string): Promise<Uint8Array[]> {
    const run = this.#commands.catch(() => {}).then(() => databaseCommand(this, session, sql));
    this.#commands = run;
    return run;
  }

  #slotOf(entry: DatabaseEntry): Slot {
    let slot = this.#slots.get(entry.oid);
    if (slot === undefined) {
      slot = { entry, engine: null, busy: null, idle: null, starting: 0 };
      this.#slots.set(entry.oid, slot);
    }
    return slot;
  }

  /** Runs `fn` when nothing else is done to the slot, and keeps others out meanwhile. */
  async #exclusive<T>(slot: Slot, fn: () => Promise<T>): Promise<T> {
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
  #onEngine(slot: Slot, fn: (engine: PgliteEngine) => Promise<void>): Promise<void> {
    return this.#exclusive(slot, async () => {
      if (slot.engine !== null) await fn(slot.engine);
    });
  }

  /** The database's engine, opened if it is not. */
  async #engineOf(slot: Slot): Promise<PgliteEngine> {
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
      await this.#exclusive(slot, async () => {
        this.#materializeNow(slot.entry);
        const engine = await this.#openDatabase(slot.entry);
        try {
          // The cluster's roles are "postgres"'s, which every change reaches.
          // A change copied while this engine opens may miss it: then it is
          // copied again below.
          version = this.#rolesVersion;
          await this.#mirror(engine, slot.entry, await this.#rolesOf(this.#main));
        } catch (e) {
          await engine.close();
          throw e;
        }
        slot.engine = engine;
      });
      if (version !== this.#rolesVersion) {
        await this.#rolesSync;
        const roles = await this.#rolesOf(this.#main);
        await this.#onEngine(slot, (e) => e.runAsCluster(() => rolesSyncSql(roles)));
      }
    }
  }

  /** A database whose cluster does not exist yet (initdb's template1 and template0) is made from the image. */
  #materialize(slot: Slot): Promise<void> {
    return this.#exclusive(slot, () => Promise.resolve(this.#materializeNow(slot.entry)));
  }

  #materializeNow(entry: DatabaseEntry): void {
    const dir = join(this.#dataDir, entry.dir);
    if (existsSync(join(dir, "PG_VERSION"))) return;
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

  /**
   * Shows the list in `engine`'s pg_database (the served row takes
   * `entry`'s name); with `roles`, the cluster's roles first.
   */
  async #mirror(engine: PgliteEngine, entry: DatabaseEntry, roles?: string): Promise<void> {
    const list = this.#catalog.list();
    await engine.runAsCluster(
      (oid) =>
        (roles !== undefined ? rolesSyncSql(roles) + ";\n" : "") + mirrorSql(list, entry, oid),
      { timeoutMs: Infinity },
    );
    if (entry.inner !== engine.database) {
      entry.inner = engine.database;
      this.#catalog.save();
    }
  }

  async #mirrorAll(): Promise<void> {
    await Promise.all(
      [...this.#slots.values()].map(async (s) => {
        if (s.engine !== null) await this.#onEngine(s, (e) => this.#mirror(e, s.entry));
      }),
    );
  }

  async #closeEngine(slot: Slot): Promise<void> {
    if (slot.idle !== null) {
      clearTimeout(slot.idle);
      slot.idle = null;
    }
    await this.#exclusive(slot, async () => {
      const engine = slot.engine;
      slot.engine = null;
      await engine?.close();
    });
  }

  async #rolesOf(engine: PgliteEngine): Promise<string> {
    return (await engine.queryAsCluster(ROLES_DUMP_SQL)) ?? "[[],[],[]]";
  }

  /** Roles may have changed in `source`: every other open engine gets its pg_authid. */
  #rolesChanged(source: PgliteEngine): void {
    const sync = async () => {
      this.#rolesVersion++;
      const dump = await this.#rolesOf(source);
      await Promise.all(
        [...this.#slots.values()].map((s) =>
          // An engine that is opening copies "postgres"'s roles itself.
          s.engine === null || s.engine === source || s.busy !== null ? undefined : this.#onEngine(
            s,
            (engine) => engine.runAsCluster(() => rolesSyncSql(dump), { timeoutMs: Infinity }),
          )
        ),
      );
    };
    this.#rolesSync = this.#rolesSync.then(sync).catch((e) => {
      ereport("LOG", "could not copy roles to every database", {
        category: "engine",
        detail: e instanceof Error ? e.message : String(e),
      });
    });
  }

  /** Waits for role changes that have committed somewhere to reach every engine. */
  async #settleRoles(): Promise<void> {
    await Promise.all([...this.#slots.values()].map((s) => s.engine?.settleCatalogs()));
    await this.#rolesSync;
  }

  /** A session ended: a database with none left is closed after idleTimeoutMs ("postgres" never). */
  #sessionEnded(engine: PgliteEngine): void {
    const idleMs = this.#options.idleTimeoutMs ?? 10_000;
    if (engine === this.#main || engine.sessionCount > 0 || this.#closing || idleMs <= 0) return;
    const slot = [...this.#slots.values()].find((s) => s.engine === engine);
    if (slot === undefined || slot.idle !== null) return;
    slot.idle = setTimeout(() => {
      slot.idle = null;
      // Checked again once nothing else is done to the slot: a session may
      // have started meanwhile.
      void this.#exclusive(slot, async () => {
        if (slot.engine !== engine || engine.sessionCount > 0 || slot.starting > 0) return;
        ereport(
          "DEBUG1",
          `closing the engine of database "${slot.entry.name}" after ${idleMs} ms without a session`,
          { category: "engine" },
        );
        slot.engine = null;
        await engine.close();
      }).catch(() => {});
    }, idleMs);
    (slot.idle as { unref?: () => void }).unref?.();
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
