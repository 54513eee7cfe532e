/**
 * The PGlite engine: one PGlite backend shared by many isolated sessions.
 *
 * It owns the executor (the only path to PGlite), the scheduler (who may use
 * it), and the state of the backend that sessions share and must not see of
 * each other: whose settings the backend carries (backendsettings.ts), who
 * last parsed the unnamed statement, which channels it listens to
 * (notify.ts), whose temporary schemas it has (tempschemas.ts); plus the
 * sessions (procarray.ts) and the role and database catalogs that startups
 * are checked against without waiting for the backend (postinit.ts).
 * Sessions (session.ts, through sessionengine.ts) call in here for
 * everything that runs SQL of the engine's own (ownwork.ts): switching
 * settings, snapshots after a transaction, rolling back and cleaning up
 * after a closed session (discard.ts).
 *
 * It must never run SQL while a session owns the backend unless on that
 * session's behalf, never leave one session's settings or statements in
 * force for another, and never let a PGlite failure wedge the queue: a
 * failed exec ends that request; a backend that cannot be rolled back ends
 * every session with a FATAL and refuses new ones.
 */

import { ERRCODE, PgError } from "../../core/elog.ts";
import { asFatal } from "./answers.ts";
import type {
  Engine,
  EngineSession,
  ParameterStatusList,
  SessionStartup,
} from "../../core/engine/types.ts";
import type { RoleGraph } from "./acl.ts";
import { BackendSettings, resetValuesOf } from "./backendsettings.ts";
import type { ActivityRow, BackendSignal, BackendsUpdate, StatActivityView } from "./backends.ts";
import type {
  EngineCluster as Cluster,
  EngineOptions as Options,
  EngineReload,
} from "./engineoptions.ts";
import { ExecNotRun, type ExecOptions, type ExecResult, type RawExecutor } from "./executor.ts";
import { ListenRegistry } from "./notify.ts";
import { EngineCatalogs, type EngineRole } from "./postinit.ts";
import type { DatabaseShown } from "./pg_database.ts";
import { dropRoleElsewhere } from "./pg_shdepend.ts";
import { ProcArray } from "./procarray.ts";
import { EngineScheduler } from "./scheduler.ts";
import { PgliteSession } from "./session.ts";
import type { SessionEngine } from "./sessionengine.ts";
import type { SettingFiles } from "./settingsource.ts";
import type { TempPair } from "./tempnamespace.ts";
import { TempSchemas } from "./tempschemas.ts";
import {
  abortOpenWork,
  closeSession,
  discard,
  type DiscardHost,
  leftOnBackend,
  reconcileListens,
} from "./discard.ts";
import { concat, fe } from "./wire.ts";
import { OwnWork } from "./ownwork.ts";

export type { EngineRole } from "./postinit.ts";

/** What a PgliteEngine is opened with (engineoptions.ts). */
export type EngineOptions = Options<PgliteEngine>;
/** What a PgliteEngine of a multi-database cluster asks of the cluster (engineoptions.ts). */
export type EngineCluster = Cluster<PgliteEngine>;

export class PgliteEngine implements Engine, SessionEngine<PgliteSession> {
  readonly scheduler = new EngineScheduler();
  readonly executor: RawExecutor;
  readonly listeners = new ListenRegistry();
  readonly options: {
    engineWaitTimeoutMs: number;
    engineHoldTimeoutMs: number;
    idleInTransactionSessionTimeoutMs: number;
    idleSessionTimeoutMs: number;
    transactionTimeoutMs: number;
    statementTimeoutMs: number;
    lockTimeoutMs: number;
  };
  readonly cluster: EngineCluster | null;
  /** The session whose unnamed statement the backend holds, if known. */
  unnamedOwner: PgliteSession | null = null;
  /**
   * The GUC_REPORT parameters' values on the backend, as of the end of the
   * last exec that changed one (gucwatch.ts): a new list each time, which
   * each session compares once with what its client was told
   * (paramstatus.ts).
   */
  reportedValues: ParameterStatusList | null = null;

  /** This database's sessions, and the cluster's others (procarray.ts). */
  readonly #procs: ProcArray;
  /** What the backend's settings are, and the switch between sessions' (backendsettings.ts). */
  readonly #settings: BackendSettings;
  /** Roles, databases, fixed and reported parameters as last read (postinit.ts). */
  readonly #catalogs: EngineCatalogs;
  readonly #defaultsFor: (user: string) => Array<[string, string]>;
  #nextId = 1;
  #broken: PgError | null = null;
  readonly #onBroken: ((reason: string) => void) | undefined;
  readonly #onReloadConf: (() => void) | undefined;
  /** Settings a reload changed, not yet applied in the backend: they go with the next exec. */
  #reloadPending: Map<string, string> | null = null;
  /** With #reloadPending: the settings pgts's files set now (settingsource.ts). */
  #reloadFiles: SettingFiles = {};
  #closing: Promise<void> | null = null;
  /** The shipped extension bundles are in the engine's file system (extensions.ts). */
  #extensionsLoaded = false;
  /** The engine's own SQL, its holder, the served database's oid, its background jobs (ownwork.ts). */
  readonly #own: OwnWork;
  /** Per-session temporary schemas: whose the backend has, their SQL (tempschemas.ts). */
  readonly #temp: TempSchemas;
  /** What discard.ts's statements, cursors, channels and rollbacks run through. */
  readonly #discardHost: DiscardHost;

  constructor(executor: RawExecutor, options: EngineOptions = {}) {
    this.executor = executor;
    this.options = {
      // 0 waits for ever, as the setting says.
      engineWaitTimeoutMs: options.engineWaitTimeoutMs === 0
        ? Infinity
        : options.engineWaitTimeoutMs ?? 5000,
      engineHoldTimeoutMs: options.engineHoldTimeoutMs ?? 2000,
      idleInTransactionSessionTimeoutMs: options.idleInTransactionSessionTimeoutMs ?? 0,
      idleSessionTimeoutMs: options.idleSessionTimeoutMs ?? 0,
      transactionTimeoutMs: options.transactionTimeoutMs ?? 0,
      statementTimeoutMs: options.statementTimeoutMs ?? 0,
      lockTimeoutMs: options.lockTimeoutMs ?? 0,
    };
    this.#onBroken = options.onBroken;
    this.#onReloadConf = options.onReloadConf;
    const cluster = this.cluster = options.cluster ?? null;
    this.#procs = new ProcArray(
      cluster === null ? null : {
        sessions: () => cluster.otherSessions(this),
        version: () => cluster.sessionsVersion(),
      },
    );
    this.#own = new OwnWork({
      scheduler: this.scheduler,
      runRaw: (bytes) => this.runRaw(bytes),
      asBootstrapSuperuser: () => this.#settings.asBootstrapSuperuser(),
      refreshCatalogs: () => this.#catalogs.refreshAll(),
      waitTimeoutMs: this.options.engineWaitTimeoutMs,
    });
    const query = (sql: string) => this.#own.query(sql);
    this.#settings = new BackendSettings({
      runRaw: (bytes) => this.runRaw(bytes),
      query,
      abortOpenWork: (s) => this.abortOpenWork(s),
      markBroken: (reason) => this.markBroken(reason),
      isSuperuser: (name) => this.#catalogs.isSuperuser(name),
    });
    this.#catalogs = new EngineCatalogs({
      queries: (sqls) => this.#own.queries(sqls),
      asBootstrapSuperuser: () => this.#settings.asBootstrapSuperuser(),
      catalogsChanging: () => this.#settings.forgetStartupMaps(),
    });
    this.#defaultsFor = (user) => this.#catalogs.defaultsFor(user);
    this.#discardHost = {
      runRaw: (bytes, as) => this.runRaw(bytes, as),
      query,
      listeners: this.listeners,
      resetSettings: (s) => this.#settings.switchTo(s, s.startupSettings),
      dropTemp: (s) => this.#temp.drop(s),
      asBootstrapSuperuser: () => this.#settings.asBootstrapSuperuser(),
    };
    executor.onSignals = (signals) => this.signalBackends(signals);
    // The pipeline (executor.ts, scheduler.ts): a session's exec that runs
    // may hand the engine to the next waiter at once; its end says whether
    // that stands.
    executor.onRunning = (owner) => {
      if (owner !== undefined) this.scheduler.handOver(owner as PgliteSession);
    };
    executor.contended = () => this.scheduler.waiting > 0;
    executor.onExecEnd = (owner, endedIdle) => {
      if (owner !== undefined) this.scheduler.settleHandOver(owner as PgliteSession, endedIdle);
    };
    executor.onSettingsChanged = (change) => {
      if (change.reported !== null) this.reportedValues = change.reported;
    };
    this.#temp = new TempSchemas({
      runRaw: (bytes, temp) => this.runRaw(bytes, undefined, temp),
      query,
      asBootstrapSuperuser: () => this.#settings.asBootstrapSuperuser(),
    }, executor.tempShared);
    // A failed fdatasync of the WAL (group commit defers it): the PANIC.
    executor.onWalFailure = (message) => this.markBroken(`PANIC: ${message}`);
    if (!(this.options.engineWaitTimeoutMs > 0)) {
      throw new RangeError(
        "engineWaitTimeoutMs must be a positive number of milliseconds, or 0 (no bound)",
      );
    }
  }

  /**
   * Reads what startups are checked against, and puts right what the data
   * directory needs (views, leftovers, extensions' files): ownwork.ts's
   * init. Called once, before any session.
   */
  async init(): Promise<void> {
    await this.#own.init({
      settings: this.#settings,
      catalogs: this.#catalogs,
      temp: this.#temp,
      loadExtensions: async () => {
        this.#extensionsLoaded = true;
        await this.executor.exec(fe.sync(), () => {}, { loadExtensions: true });
      },
    });
  }

  /** True once per engine: the first input that names an extension loads the bundles. */
  loadExtensionsFor(needed: boolean): boolean {
    if (!needed || this.#extensionsLoaded) return false;
    this.#extensionsLoaded = true;
    return true;
  }

  /**
   * Why temporary objects are shared by every session (tempnamespace.ts),
   * or null when each session has its own.
   */
  get tempShared(): string | null {
    return this.executor.tempShared;
  }

  /**
   * Why a statement waiting for a prepared transaction's lock would hold
   * the engine for ever (lockwait.ts), when prepared transactions are on;
   * null when such a wait is bounded, or cannot happen (set by openEngine).
   */
  lockWaitsUnbounded: string | null = null;

  get sessionCount(): number {
    return this.#procs.size;
  }

  /** The database this engine serves, as its backend names it. */
  get database(): string {
    return this.#catalogs.database;
  }

  /** The sessions of the role `oid` (its login role) in every database of the cluster. */
  #roleSessions(oid: number): number {
    let n = 0;
    for (const s of this.#procs) if (s.userOid === oid) n++;
    for (const s of this.cluster?.otherSessions(this) ?? []) if (s.userOid === oid) n++;
    return n;
  }

  /** The sessions, for the cluster's checks of who uses the database. */
  sessions(): PgliteSession[] {
    return [...this.#procs];
  }

  /** Roles and grants as the engine last read them, for checks made without the backend. */
  get roleGraph(): RoleGraph {
    return this.#catalogs.roleGraph;
  }

  /** A parameter fixed at start (server_version_num...): its spelling and SHOW's value. */
  fixedSetting(name: string): readonly [string, string] | undefined {
    return this.#catalogs.fixedSetting(name);
  }

  /**
   * What pg_stat_activity's RowDescription and datid show in this engine:
   * the view's oid, and each database's oid by name, as last read.
   */
  get statActivityView(): StatActivityView | null {
    const oid = this.#catalogs.statActivityOid;
    return oid === null ? null : { oid, databaseOids: this.#catalogs.databaseOids };
  }

  /** The session `pid` of any database of the cluster. */
  clusterSession(pid: number): PgliteSession | undefined {
    return this.#procs.find(pid);
  }

  /** A role as the engine last read it (pg_authid), without waiting. */
  role(name: string): EngineRole | undefined {
    return this.#catalogs.role(name);
  }

  /** SQL of the cluster's own, as the bootstrap superuser (ownwork.ts's runAsCluster). */
  async runAsCluster(
    sql: (servedOid: number) => string,
    options: Parameters<OwnWork["runAsCluster"]>[1] = {},
  ): Promise<void> {
    this.#checkOpen();
    await this.#own.runAsCluster(sql, options);
  }

  /**
   * A session whose role or database DDL (ALTER ROLE ... SET) has
   * committed, and whose client may already have its ReadyForQuery, is
   * reading the catalogs back: a login after that commit waits for it.
   */
  async settleCatalogs(): Promise<void> {
    if (this.catalogsSettling) {
      await this.#own.withEngine(() => Promise.resolve(), this.options.engineWaitTimeoutMs)
        .catch(() => {});
    }
  }

  /** The cluster's turn to change roles for `s` (rolesturn.ts); the error to answer, or null. */
  takeRolesTurn(s: PgliteSession, holdsEngine: boolean): Promise<PgError | null> {
    return this.cluster?.takeRolesTurn(this, s, holdsEngine) ?? Promise.resolve(null);
  }

  /** `s`'s transaction ended: the turn to change roles, if it had it, goes on. */
  rolesTurnDone(s: PgliteSession): void {
    this.cluster?.rolesTurnDone(s);
  }

  /** A DROP ROLE of `roles` refused for what depends on them in another database (pg_shdepend.ts). */
  async dropRoleRefusal(roles: readonly string[], ownLines: boolean): Promise<PgError | null> {
    const cluster = this.cluster;
    if (cluster === null) return null;
    return await dropRoleElsewhere(this, roles, {
      ownLines,
      elsewhere: (oids) => cluster.dependentsElsewhere(this, oids),
    });
  }

  /** Roles changed in another database of the cluster, on their way to this engine; null: none. */
  rolesArriving(): Promise<void> | null {
    return this.cluster?.rolesArriving(this) ?? null;
  }

  /** The engine's holder has committed role or database DDL and the engine is reading it back. */
  get catalogsSettling(): boolean {
    const owner = this.scheduler.owner;
    return owner instanceof PgliteSession && owner.transactionStatus === "I" &&
      (owner.rolesDirty || owner.databasesDirty);
  }

  /** The first column of the first row of `sql`, run as the bootstrap superuser when the backend is free. */
  async queryAsCluster(sql: string): Promise<string | null> {
    this.#checkOpen();
    return await this.#own.queryAsCluster(sql);
  }

  /** The served database's privileges as its engine last read them (datacl as text; null: the defaults). */
  get servedAcl(): string | null {
    return this.#catalogs.servedAcl;
  }

  /** The served database's comment as its engine last read it (null: none). */
  get servedComment(): string | null {
    return this.#catalogs.servedComment;
  }

  /** Each database's owner and privileges as this engine's pg_database shows them, as last read. */
  get databasesShown(): ReadonlyMap<string, DatabaseShown> {
    return this.#catalogs.databasesShown;
  }

  /** The bootstrap superuser's name (initdb's -U). */
  get superuserName(): string {
    return this.#settings.superuser;
  }

  /** Ends every session with `reason` (DROP DATABASE … WITH (FORCE)). */
  terminateSessions(reason: PgError): void {
    this.#procs.terminateAll(reason);
  }

  async lookupRole(name: string): Promise<EngineRole | null> {
    this.#checkOpen();
    let role = this.#catalogs.role(name);
    if (role === undefined) {
      // A role created by a path the scan cannot see (a function): look again.
      await this.#own.withEngine(
        () => this.#catalogs.refreshRoles(),
        this.options.engineWaitTimeoutMs,
      )
        .catch(() => {});
      role = this.#catalogs.role(name);
    }
    if (role === undefined) return null;
    const reserved = this.roleGraph.byName("pg_use_reserved_connections");
    return reserved !== undefined && this.roleGraph.hasPrivsOfRole(role.oid, reserved.oid)
      ? { ...role, useReservedConnections: true }
      : role;
  }

  async startSession(
    startup: SessionStartup,
  ): Promise<{ session: EngineSession; parameterStatus: ParameterStatusList }> {
    this.#checkOpen();
    const catalogs = this.#catalogs;
    // The client may connect as a role another session created a moment
    // ago: its ReadyForQuery can arrive before the catalogs are re-read.
    const found = catalogs.role(startup.user) ?? await this.lookupRole(startup.user) ?? undefined;
    if (!catalogs.hasDatabase(startup.database)) {
      await this.#own.withEngine(
        () => catalogs.refreshDatabases(),
        this.options.engineWaitTimeoutMs,
      )
        .catch(() => {});
    }
    const role = catalogs.checkLogin(startup.user, startup.database, found);
    // The role's CONNECTION LIMIT counts its sessions in every database
    // (PostgreSQL's CountUserBackends, in InitializeSessionUserId).
    if (role.connLimit >= 0 && !role.superuser && this.#roleSessions(role.oid) >= role.connLimit) {
      throw new PgError(
        ERRCODE.TOO_MANY_CONNECTIONS,
        `too many connections for role "${role.name}"`,
        { severity: "FATAL" },
      );
    }
    await this.settleCatalogs();
    if (catalogs.connectRestricted && !role.superuser) {
      const may = await this.queryAsCluster(
        `select pg_catalog.has_database_privilege(${role.oid}, pg_catalog.current_database(),` +
          " 'CONNECT')",
      );
      if (may !== "t") {
        throw new PgError(
          ERRCODE.INSUFFICIENT_PRIVILEGE,
          `permission denied for database "${startup.database}"`,
          { severity: "FATAL", detail: "User does not have CONNECT privilege." },
        );
      }
    }
    // A login is an answer too: it may rest on a role whose commit is not
    // on disk yet (group commit, groupcommit.ts).
    const wal = this.executor.wal;
    if (wal.behind) await wal.waitFor(wal.requested);
    const settings = this.#settings.startupMap(startup.user, startup.params, this.#defaultsFor);
    const atLogin = this.#settings.checkedAtLogin(settings);
    // Put on at login, the map is read back from the backend at the first
    // ReadyForQuery (its spelling is cached then, with no round trip).
    const spelled = atLogin ? undefined : this.#settings.spelled(settings);
    const parameterStatus = catalogs.parameterStatus(settings, role);
    const session = new PgliteSession(this, {
      id: this.#nextId++,
      pid: startup.pid,
      user: startup.user,
      userOid: role.oid,
      settings,
      parameterStatus,
      ...(spelled !== undefined ? { spelled } : {}),
      ...(startup.client !== undefined ? { client: startup.client } : {}),
      ...(startup.ssl !== undefined ? { ssl: startup.ssl } : {}),
    });
    if (atLogin) {
      try {
        session.loginWarnings = await this.#settingsAtLogin(session);
      } catch (e) {
        await session.close().catch(() => {});
        throw e;
      }
    }
    this.#procs.add(session);
    this.cluster?.sessionStarted(this);
    this.listeners.add(session);
    return { session, parameterStatus };
  }

  /**
   * Puts a new session's startup map on the backend before its login ends:
   * a setting of its packet that the engine refuses refuses the login, as
   * PostgreSQL's process_startup_options does. Its warnings are returned.
   */
  async #settingsAtLogin(s: PgliteSession): Promise<PgError[]> {
    try {
      return await this.#own.withEngine(
        () => this.#settings.switchTo(s, s.settings),
        this.options.engineWaitTimeoutMs,
      );
    } catch (e) {
      throw asFatal(e);
    }
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const reason = new PgError(
      ERRCODE.ADMIN_SHUTDOWN,
      "terminating connection due to administrator command",
      { severity: "FATAL" },
    );
    this.#procs.terminateAll(reason);
    await Promise.all([...this.#procs].map((s) => s.close().catch(() => {})));
    this.scheduler.close(reason);
    await this.#own.drain();
    await this.executor.close();
  }

  #checkOpen(): void {
    if (this.#broken !== null) throw this.#broken;
    if (this.#closing !== null) {
      throw new PgError(ERRCODE.CANNOT_CONNECT_NOW, "the database system is shutting down", {
        severity: "FATAL",
      });
    }
  }

  // ---- called by sessions, always while the calling session owns the backend

  noteCustomSetting(name: string): void {
    this.#settings.noteCustomSetting(name);
  }

  /**
   * True when the backend carries `s`'s settings already and its login left
   * no warnings to send: prepareFor has nothing to do.
   */
  carriesSettingsOf(s: PgliteSession): boolean {
    return s.loginWarnings.length === 0 && this.#settings.carries(s);
  }

  /**
   * Puts `s`'s settings on the backend if another session's are there.
   * Returns warnings for `s` about settings that could not be put back;
   * throws (for `s` alone) when its identity or a startup setting cannot
   * be applied. Either way the engine knows what the backend carries.
   * The warnings of a login that put its settings on (loginWarnings) come
   * first, once.
   */
  async prepareFor(s: PgliteSession): Promise<PgError[]> {
    const login = s.loginWarnings;
    s.loginWarnings = [];
    if (this.#settings.carries(s)) return login;
    return [...login, ...await this.#settings.switchTo(s, s.settings)];
  }

  /** False when afterTransaction would only clear `pendingListenSpoiled` (most statements). */
  hasWorkAfterTransaction(s: PgliteSession): boolean {
    return s.settingsDirty || s.pendingListen.length > 0 || s.rolesDirty || s.databasesDirty ||
      s.tempUnnamed;
  }

  /** Bookkeeping at ReadyForQuery 'I': settings snapshot, LISTEN, catalogs; only what the input may have changed. */
  async afterTransaction(s: PgliteSession): Promise<void> {
    if (s.settingsDirty) await this.#settings.readBack(s);
    if (s.pendingListen.length > 0) {
      if (!s.pendingListenSpoiled) this.listeners.apply(s, s.pendingListen);
      s.pendingListen = [];
      await reconcileListens(this.#discardHost);
    }
    s.pendingListenSpoiled = false;
    if (s.rolesDirty) {
      await this.#catalogs.refreshRoles();
      s.rolesDirty = false;
      this.cluster?.rolesChanged(this);
      // Its copy is due everywhere now: the next role statement waits for it.
      this.cluster?.rolesTurnDone(s);
      // A role renamed, or REASSIGN OWNED: the databases' owners as this engine shows them.
      if (this.cluster !== null) s.databasesDirty = true;
    }
    if (s.databasesDirty) {
      await this.#catalogs.refreshDatabases();
      s.databasesDirty = false;
      this.cluster?.privilegesChanged(this);
    }
    if (s.tempUnnamed) await this.#temp.name(s);
  }

  /**
   * Runs bytes on the backend (the caller owns it) for session `s`, with
   * its temporary namespaces, or for pgts's own work (`s` undefined), with
   * the backend's or `temp`; then learns what the backend has.
   */
  async exec(
    bytes: Uint8Array,
    onData: (chunk: Uint8Array) => void | Promise<void>,
    options: ExecOptions,
    s?: PgliteSession,
    temp?: TempPair,
  ): Promise<ExecResult> {
    // A conditional exec of a session the engine was taken back from (its
    // handing-over exec did not end idle, scheduler.ts) does not start.
    if (options.conditional === true && s !== undefined && this.scheduler.owner !== s) {
      if (options.backends !== undefined) this.#procs.resend();
      throw new ExecNotRun();
    }
    // pgts's own work (a settings read, say) may run a simple Query, which
    // drops the backend's unnamed statement: whichever session's it was, a
    // Bind of it is preceded by that session's Parse again (globals.ts).
    if (s === undefined) this.unnamedOwner = null;
    options = this.#temp.beforeExec(options, s, temp);
    const discarded = s?.sequencesDiscarded === true;
    if (discarded) options = { ...options, discardSequences: true };
    const resets = s !== undefined && !s.resetValuesSent;
    if (resets) {
      // None (a login with no startup parameters): the server's, as for a session never defined.
      const values = resetValuesOf(s.startupSettings);
      if (values.length > 0) {
        options = {
          ...options,
          resetValues: values,
          resetAsSuperuser: this.#catalogs.isSuperuser(s.user),
        };
      }
    }
    const made = s !== undefined && s.customUnsent.length > 0 ? s.customUnsent : null;
    if (made !== null) options = { ...options, customMade: made };
    const owner = this.#temp.owner;
    const reload = this.#reloadPending;
    if (reload !== null) {
      this.#reloadPending = null;
      options = { ...options, reloadSettings: [...reload], reloadFiles: this.#reloadFiles };
    }
    let result: ExecResult;
    try {
      result = await this.executor.exec(bytes, onData, options);
    } catch (e) {
      // Not run: the reload goes with the next exec (newer values win).
      if (reload !== null && e instanceof ExecNotRun) {
        this.#reloadPending = new Map([...reload, ...(this.#reloadPending ?? [])]);
      }
      this.#temp.execFailed();
      // The sessions it carried may not have reached the backend: the next exec takes them all.
      if (options.backends !== undefined) this.#procs.resend();
      throw e;
    }
    this.#temp.afterExec(result, owner);
    if (discarded) s!.sequencesDiscarded = false;
    if (resets) s!.resetValuesSent = true;
    if (made !== null && s!.customUnsent === made) s!.customUnsent = [];
    return result;
  }

  /** DEALLOCATE ALL and DISCARD ALL, for this session's state only (discard.ts). */
  async runSpecial(
    s: PgliteSession,
    kind: "discard all" | "deallocate all",
    out: (b: Uint8Array) => void,
  ): Promise<boolean> {
    await discard(this.#discardHost, s, { kind, out });
    return true;
  }

  /**
   * Ends whatever `s` left open on the backend (discard.ts). False when the
   * backend could not be brought back to idle.
   */
  abortOpenWork(s: PgliteSession): Promise<boolean> {
    return abortOpenWork(this.#discardHost, s);
  }

  /** A closed session: roll back, drop its statements and channels, give the backend back. */
  async endSession(s: PgliteSession): Promise<void> {
    if (this.#procs.remove(s)) this.cluster?.sessionEnded(this);
    this.cluster?.rolesTurnDone(s);
    this.listeners.remove(s);
    if (this.unnamedOwner === s) this.unnamedOwner = null;
    this.#settings.forget(s);
    if (this.#broken !== null) return;
    const host = this.#discardHost;
    if (s.owns) {
      try {
        if (!(await this.abortOpenWork(s))) this.markBroken("could not roll back a closed session");
        else await closeSession(host, s);
      } finally {
        s.owns = false;
        this.scheduler.release(s);
      }
    } else if (leftOnBackend(s)) {
      // Not urgent: done when the backend is next free, never holding up the caller.
      this.#own.later(() => closeSession(host, s));
    }
  }

  /** The backend is in an unknown state: end every session and refuse new ones. */
  markBroken(reason: string): void {
    if (this.#broken !== null) return;
    this.#broken = new PgError(
      ERRCODE.CRASH_SHUTDOWN,
      "terminating connection because the engine failed",
      { severity: "FATAL", detail: reason },
    );
    this.#procs.terminateAll(this.#broken);
    this.scheduler.close(this.#broken);
    this.#onBroken?.(reason);
  }

  // ---- internals

  /**
   * Runs bytes for the engine's own purposes (the caller owns the backend);
   * the whole answer. `as`: the session whose input the bytes are, checked
   * as its login role (guard.ts) and seen as its pid (backends.ts).
   */
  async runRaw(
    bytes: Uint8Array,
    as?: PgliteSession,
    temp?: TempPair,
    more: { clockAtMs?: number } = {},
  ): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    const backends = this.backendsForExec();
    await this.exec(
      bytes,
      (c) => {
        parts.push(c);
      },
      as === undefined ? (backends === undefined ? {} : { backends }) : {
        runAs: as.userOid,
        pid: as.pid,
        ...(backends === undefined ? {} : { backends }),
        ...more,
      },
      as,
      temp,
    );
    return parts.length === 0 ? new Uint8Array(0) : concat(parts);
  }

  /**
   * The sessions as the signal functions check them (this database's and,
   * in a cluster of several, every other's), when they changed since the
   * last exec.
   */
  backendsForExec(): BackendsUpdate | undefined {
    return this.#procs.forExec();
  }

  /** pg_stat_activity's rows: every session of every database, as it is now. */
  activityRows(): ActivityRow[] {
    return this.#procs.activityRows();
  }

  /** pg_stat_activity's rows of this database's sessions. */
  ownActivityRows(): ActivityRow[] {
    return this.#procs.ownActivityRows();
  }

  /**
   * A reload of the configuration (the engine child's SIGHUP): the backend
   * takes the changed values before its next exec, whoever's it is, and
   * the session defaults pgts enforces change now.
   */
  reloadSettings(reload: EngineReload): void {
    this.options.statementTimeoutMs = reload.statementTimeoutMs;
    this.options.lockTimeoutMs = reload.lockTimeoutMs;
    this.options.idleInTransactionSessionTimeoutMs = reload.idleInTransactionSessionTimeoutMs;
    this.options.idleSessionTimeoutMs = reload.idleSessionTimeoutMs;
    this.options.transactionTimeoutMs = reload.transactionTimeoutMs;
    // Even with no value changed: a file's line may have (settingsource.ts).
    this.#reloadFiles = reload.settingFiles;
    this.#reloadPending = new Map([...(this.#reloadPending ?? []), ...reload.settings]);
  }

  /** Signals sent with pg_cancel_backend or pg_terminate_backend (checked by the caller). */
  signalBackends(signals: readonly BackendSignal[]): void {
    if (signals.some(([, kind]) => kind === "reload")) this.#onReloadConf?.();
    this.#procs.signal(signals);
  }

  /** How many WITH HOLD cursors the other sessions of this engine have open. */
  holdCursorsOfOthers(s: PgliteSession): number {
    return this.#procs.holdCursorsOfOthers(s);
  }
}
