/**
 * The engine of a whole pgts cluster on PGlite: one PGlite engine per
 * database. PGlite's backend serves one database for its life, as a
 * PostgreSQL backend does, and two PGlite instances cannot share a data
 * directory, so every database is a PGlite cluster of its own
 * (pg_database.ts says where) with an engine of its own, opened when its
 * first client connects and closed when it has had none for
 * `idleTimeoutMs` ("postgres"'s stays open: it answers role lookups;
 * dbregistry.ts keeps them). Each engine runs PGlite on a Worker thread of
 * its own, so sessions of two databases run at the same time on two CPUs.
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

import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ENGINE_DIR } from "../../core/datadir.ts";
import { copyCluster, fsyncTree } from "./clustercopy.ts";
import { ERRCODE, isPgError, PgError } from "../../core/elog.ts";
import type {
  Engine,
  EngineSession,
  ParameterStatusList,
  RoleInfo,
  SessionStartup,
} from "../../core/engine/types.ts";
import { openEngine } from "./cluster.ts";
import { type DatabaseCluster, databaseCommand, withPosition } from "./dbcommands.ts";
import { alterSystem, isAlterSystem } from "./altersystem.ts";
import type { EngineCluster, EngineRole, PgliteEngine } from "./engine.ts";
import { DatabaseCatalog, type DatabaseEntry } from "./pg_database.ts";
import { DEPENDENTS_SQL, parseDependents, type RoleDependents } from "./pg_shdepend.ts";
import { RolesTurn } from "./rolesturn.ts";
import { boundedWait } from "./scheduler.ts";
import { idleInTransactionTimeout } from "./timeout.ts";
import type { PgliteSession } from "./session.ts";
import { otherDatabasesTarget, recoveryUnreached } from "./recovery.ts";
import { quoteIdent, quoteLiteral } from "./wire.ts";
import { startupTrace } from "../../core/starttrace.ts";
import { type ClusterEngineOptions, DatabaseEngines, MAIN_OID, type Slot } from "./dbregistry.ts";
import type { EngineReload } from "./engineoptions.ts";

export type { ClusterEngineOptions } from "./dbregistry.ts";

export class ClusterEngine implements Engine, DatabaseCluster {
  readonly #dataDir: string;
  readonly #options: ClusterEngineOptions;
  readonly #catalog: DatabaseCatalog;
  readonly #engines: DatabaseEngines;
  readonly #main: PgliteEngine;
  /** CREATE/ALTER/DROP DATABASE run one at a time. */
  #commands: Promise<unknown> = Promise.resolve();
  #archiveTimer: ReturnType<typeof setInterval> | null = null;
  /** One transaction at a time changes roles (rolesturn.ts). */
  readonly #rolesTurn = new RolesTurn<PgliteSession>();
  /** Sessions that have held the turn: it is given up when they close. */
  readonly #rolesTurnWatched = new WeakSet<PgliteSession>();

  private constructor(
    dataDir: string,
    cluster: { options: ClusterEngineOptions; catalog: DatabaseCatalog; engines: DatabaseEngines },
  ) {
    this.#dataDir = dataDir;
    this.#options = cluster.options;
    this.#catalog = cluster.catalog;
    this.#engines = cluster.engines;
    this.#main = cluster.engines.main;
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
        if (self !== null) self.#engines.sessionEnded(engine);
      },
      otherSessions: (engine) => self === null ? [] : self.#engines.otherSessions(engine),
      sessionsVersion: () => sessionsVersion,
      rolesChanged: (engine) => {
        if (self !== null) self.#engines.rolesChanged(engine);
      },
      rolesArriving: (engine) => self === null ? null : self.#engines.rolesArriving(engine),
      privilegesChanged: (engine) => {
        if (self !== null) void self.#engines.privilegesChanged(engine);
      },
      dependentsElsewhere: (engine, roles) =>
        self === null ? Promise.resolve([]) : self.#dependentsElsewhere(engine, roles),
      takeRolesTurn: (engine, session, holdsEngine) =>
        self === null ? Promise.resolve(null) : self.#takeRolesTurn(engine, session, holdsEngine),
      rolesTurnDone: (session) => {
        if (self !== null) self.#rolesTurn.done(session);
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
      const entry = catalog.list().find((d) => d.oid === MAIN_OID);
      if (entry === undefined) throw new Error('the cluster has no database "postgres"');
      const engines = new DatabaseEngines(dataDir, {
        options,
        catalog,
        main,
        mainEntry: entry,
        hooks,
      });
      self = new ClusterEngine(dataDir, { options, catalog, engines });
      startupTrace("pg_database.json loaded");
      await engines.mirror(main, entry);
      // Its own privileges and comment are the truth (a list from before they were kept there).
      void engines.privilegesChanged(main);
      startupTrace("pg_database mirrored");
      if (mainRecovers) await engines.recoverOthers();
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
    await this.#engines.settleRoles();
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
    const slot = this.#engines.slotOf(entry);
    slot.starting++;
    try {
      return await this.#startOn(slot, startup);
    } finally {
      slot.starting--;
      if (slot.engine !== null) this.#engines.sessionEnded(slot.engine);
    }
  }

  async #startOn(
    slot: Slot,
    startup: SessionStartup,
  ): Promise<{ session: EngineSession; parameterStatus: ParameterStatusList }> {
    const entry = slot.entry;
    const engine = await this.#engines.engineOf(slot);
    await this.#engines.settleRoles();
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
      if (this.#engines.closing) return;
      for (const slot of this.#engines.slots()) {
        if (slot.busy !== null || slot.engine === null) continue;
        slot.engine.runAsCluster(() => "select pg_catalog.pg_switch_wal()", { timeoutMs: 1000 })
          .catch(() => {});
      }
    }, ms);
    (this.#archiveTimer as { unref?: () => void }).unref?.();
  }

  async close(): Promise<void> {
    if (this.#archiveTimer !== null) clearInterval(this.#archiveTimer);
    await this.#engines.close(this.#commands.catch(() => {}));
  }

  // ---- DatabaseCluster (dbcommands.ts)

  /** A reload of the configuration (the engine child's SIGHUP), for every database's engine. */
  reloadSettings(reload: EngineReload): void {
    this.#engines.reloadSettings(reload);
  }

  get dataDir(): string {
    return this.#dataDir;
  }

  database(name: string): DatabaseEntry | undefined {
    return this.#catalog.get(name);
  }

  role(name: string): EngineRole | undefined {
    return this.#main.role(name);
  }

  async hasRole(
    member: string,
    role: string,
    privilege: "USAGE" | "SET" = "USAGE",
  ): Promise<boolean> {
    return await this.#main.queryAsCluster(
      `select pg_catalog.pg_has_role(${quoteLiteral(member)}, ${
        quoteLiteral(role)
      }, '${privilege}')`,
    ) === "t";
  }

  databaseOf(session: PgliteSession): DatabaseEntry {
    for (const s of this.#engines.slots()) {
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
      const engine = this.#engines.get(db.oid)?.engine;
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
    entry.fresh = true;
    const to = join(this.#dataDir, entry.dir);
    rmSync(to, { recursive: true, force: true });
    const slot = this.#engines.slotOf(template);
    await this.#engines.materialize(slot);
    const copy = async (atCheckpoint: boolean) => {
      copyCluster(join(this.#dataDir, template.dir), to, atCheckpoint);
      // Durable before CREATE DATABASE is answered, as PostgreSQL's copy is.
      if (this.#options.settings?.["fsync"] !== "off") await fsyncTree(to);
    };
    try {
      await this.#engines.exclusive(slot, async () => {
        if (slot.engine === null) {
          // Its pg_shdepend is the template's (pg_shdepend.ts), as PostgreSQL copies a template's.
          if (template.dependents !== undefined) entry.dependents = template.dependents;
          return copy(false);
        }
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
    await this.#engines.mirrorAll();
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
    const slot = this.#engines.slotOf(db);
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
    await this.#engines.closeEngine(slot);
    this.#catalog.remove(db.name);
    this.#engines.forget(db.oid);
    rmSync(join(this.#dataDir, db.dir), { recursive: true, force: true });
    await this.#engines.mirrorAll();
  }

  async rename(db: DatabaseEntry, to: string): Promise<void> {
    // No session is connected. An open engine's served row is renamed by
    // the mirror; a closed one's by the mirror when it next opens (it finds
    // the row by its old name, `inner`).
    this.#catalog.rename(db, to);
    await this.#engines.mirrorAll();
  }

  async update(db: DatabaseEntry, change: Partial<DatabaseEntry>): Promise<void> {
    Object.assign(db, change);
    this.#catalog.save();
    await this.#engines.mirrorAll();
  }

  /**
   * Runs a client's `sql` (one statement a transaction block allows) on
   * `db`'s engine as role `as` (SET LOCAL ROLE: PostgreSQL's own checks of
   * the statement, a superuser-only parameter's among them, are that
   * role's), READ WRITE: the backend still carries the settings of the
   * session that ran there last, whose default_transaction_read_only may be
   * on. On lines of their own, so that a `--` comment ending `sql` cannot
   * hide the COMMIT. Returns the WARNINGs (NoticeResponses) it raised.
   */
  async runOn(
    db: DatabaseEntry,
    sql: string,
    as: string,
    options: { position?: boolean } = {},
  ): Promise<Uint8Array[]> {
    const engines = this.#engines;
    const slot = engines.slotOf(db);
    slot.starting++;
    const notices: Uint8Array[] = [];
    try {
      await engines.engineOf(slot);
      // A role the statement names may have been made a moment ago elsewhere.
      await engines.settleRoles();
      const head = `BEGIN READ WRITE;\nSET LOCAL ROLE ${quoteIdent(as)};\n`;
      const text = `${head}${sql}\n;\nCOMMIT`;
      let ran: PgliteEngine | null = null;
      await engines.onEngine(slot, async (engine) => {
        await engine.runAsCluster(() => text, {
          notices: (m) => notices.push(m),
          ...(options.position === true ? { position: true } : {}),
        }).catch((e) => {
          throw isPgError(e) ? positionIn(e, head, sql) : e;
        });
        ran = engine;
      });
      // A GRANT or REVOKE: the other engines show the new privileges once
      // each is free (not awaited: a long statement in another database
      // must not hold up the answer).
      if (ran !== null) void engines.privilegesChanged(ran);
      return notices;
    } finally {
      slot.starting--;
      if (slot.engine !== null) engines.sessionEnded(slot.engine);
    }
  }

  // ---- internals

  /**
   * EngineCluster's takeRolesTurn: the turn (rolesturn.ts), then the copies
   * of earlier changes on `engine`, both within engine_wait_timeout. A
   * session that holds its engine in a block cannot take those copies:
   * PostgreSQL's concurrent-update failure, to be retried.
   */
  async #takeRolesTurn(
    engine: PgliteEngine,
    session: PgliteSession,
    holdsEngine: boolean,
  ): Promise<PgError | null> {
    const turn = this.#rolesTurn;
    const had = turn.holder === session;
    const waitMs = engine.options.engineWaitTimeoutMs;
    const start = performance.now();
    if (!had) {
      const holder = turn.holder;
      const hold = holder === null ? undefined : this.#endIdleRolesHolder(engine, session);
      const taken = await turn.take(session, waitMs);
      clearTimeout(hold);
      if (!taken) return rolesTurnTimeout(turn.holder ?? holder, waitMs);
      // However its session ends (a crash cycle too), the turn goes on.
      if (!this.#rolesTurnWatched.has(session)) {
        this.#rolesTurnWatched.add(session);
        void session.whenClosed().then(() => turn.done(session));
      }
    }
    const refuse = (e: PgError) => {
      if (!had) turn.done(session);
      return e;
    };
    if (!this.#engines.rolesDueTo(engine)) return null;
    if (holdsEngine) return refuse(rolesChangedMeanwhile());
    const arriving = this.#engines.rolesArriving(engine);
    const left = waitMs - (performance.now() - start);
    if (arriving !== null && left > 0) await boundedWait(arriving, left);
    return this.#engines.rolesDueTo(engine) ? refuse(rolesTurnTimeout(null, waitMs)) : null;
  }

  /**
   * While `waiter` waits for the turn to change roles: once its holder has
   * sat idle in a transaction block for pgts.engine_hold_timeout, it is
   * ended as an idle holder of an engine is (25P03, timeout.ts), and the
   * turn goes on. PostgreSQL's would hold only the rows it changed.
   */
  #endIdleRolesHolder(
    engine: PgliteEngine,
    waiter: PgliteSession,
  ): ReturnType<typeof setTimeout> | undefined {
    const ms = engine.options.engineHoldTimeoutMs;
    if (!(ms > 0)) return undefined;
    return setTimeout(() => {
      const h = this.#rolesTurn.holder;
      if (h === null || h === waiter || !h.idle || h.transactionStatus === "I") return;
      h.terminate(idleInTransactionTimeout({
        detail: `The session held the cluster's turn to change roles idle for ${ms} ms ` +
          "while a role statement waited for it.",
        hint: 'End transactions promptly, or raise "pgts.engine_hold_timeout".',
      }));
    }, ms);
  }

  /**
   * The other databases' pg_shdepend counts for `roles` (EngineCluster's
   * dependentsElsewhere): a closed database's as its engine left them in
   * the list; an open one's, or one not known, read from its engine, which
   * is opened for it and closes again after engine_idle_timeout; a database
   * never opened has no files and nothing of any role's.
   */
  async #dependentsElsewhere(
    engine: PgliteEngine,
    roles: readonly number[],
  ): Promise<Array<readonly [string, RoleDependents]>> {
    const found: Array<readonly [string, RoleDependents]> = [];
    for (const entry of this.#catalog.list()) {
      const slot = this.#engines.slotOf(entry);
      if (slot.engine === engine) continue;
      let counts = slot.engine === null && slot.busy === null ? entry.dependents : undefined;
      if (counts === undefined && !this.#engines.hasFiles(entry)) continue;
      for (let tries = 0; counts === undefined && tries < 3; tries++) {
        const open = await this.#engines.engineOf(slot);
        await this.#engines.onEngine(slot, async (e) => {
          counts = parseDependents(await e.queryAsCluster(DEPENDENTS_SQL));
        });
        this.#engines.sessionEnded(open);
      }
      if (counts !== undefined && roles.some((oid) => (counts![String(oid)] ?? 0) > 0)) {
        found.push([entry.name, counts]);
      }
    }
    return found;
  }

  #databaseCommand(session: PgliteSession, sql: string): Promise<Uint8Array[]> {
    const run = this.#commands.catch(() => {}).then(async () => {
      // The roles it names are looked up in "postgres"'s engine, where a
      // role made a moment ago in another database may still be on its way
      // (CREATE ROLE r, then ALTER DATABASE d OWNER TO r: 42704 "role does
      // not exist" seven times in eight from a third database).
      await this.#engines.settleRoles();
      return isAlterSystem(sql)
        ? [alterSystem(this, session, sql)]
        : await databaseCommand(this, session, sql);
    });
    this.#commands = run;
    return run;
  }
}

/** A role statement that waited engine_wait_timeout for the turn (or its copies). */
function rolesTurnTimeout(holder: PgliteSession | null, waitMs: number): PgError {
  const by = holder === null ? "" : `: roles are being changed by process ${holder.pid}`;
  return new PgError(
    ERRCODE.LOCK_NOT_AVAILABLE,
    `canceling statement due to engine wait timeout${by}`,
    {
      detail: holder === null
        ? `Roles changed in another database had not reached this one after ${waitMs} ms.`
        : `One transaction at a time changes roles in the cluster; process ${holder.pid}'s ` +
          `has not ended, and this statement waited ${waitMs} ms for it.`,
      hint: 'End the transaction on the other connection, or raise "pgts.engine_wait_timeout".',
    },
  );
}

/** A role statement in a block begun before another database's role change committed. */
function rolesChangedMeanwhile(): PgError {
  return new PgError(
    ERRCODE.SERIALIZATION_FAILURE,
    "could not serialize access due to concurrent update",
    {
      detail: "A transaction in another database changed roles while this transaction was open.",
      hint: "Roll back, and run the transaction again.",
    },
  );
}

/**
 * An error of `sql` run after `head` (runOn): its position made `sql`'s,
 * none when it is in `head`; a syntax error at the semicolon runOn closes
 * `sql` with is `sql`'s end of input, as PostgreSQL reports a statement
 * cut short.
 */
function positionIn(e: PgError, head: string, sql: string): PgError {
  const position = e.fields.position;
  if (position === undefined) return e;
  const at = position - [...head].length;
  const length = [...sql].length;
  if (at <= 0) return withPosition(e, null);
  if (at <= length) return withPosition(e, at);
  const cutShort = e.code === ERRCODE.SYNTAX_ERROR && e.message === 'syntax error at or near ";"';
  return withPosition(e, length + 1, cutShort ? "syntax error at end of input" : e.message);
}
