/**
 * The PGlite engine: one PGlite backend shared by many isolated sessions.
 *
 * It owns the executor (the only path to PGlite), the scheduler (who may use
 * it), and the state of the backend that sessions share and must not see of
 * each other: whose settings the backend carries, who last parsed the
 * unnamed statement, which channels it listens to; plus the role and
 * database catalogs that startups are checked against without waiting for
 * the backend. Sessions (session.ts) call in here for everything that runs
 * SQL of the engine's own: switching settings, snapshots after a
 * transaction, rolling back, cleaning up after a closed session.
 *
 * It must never run SQL while a session owns the backend unless on that
 * session's behalf, never leave one session's settings or statements in
 * force for another, and never let a PGlite failure wedge the queue: a
 * failed exec ends that request; a backend that cannot be rolled back ends
 * every session with a FATAL and refuses new ones.
 */

import { ERRCODE, PgError } from "../../core/elog.ts";
import type {
  Engine,
  EngineSession,
  ParameterStatusList,
  RoleInfo,
  SessionStartup,
} from "../../core/engine/types.ts";
import { MessageWriter, writeCommandComplete } from "../../core/protocol/mod.ts";
import type { ExecOptions, ExecResult, RawExecutor } from "./executor.ts";
import type { TempPair } from "./tempnamespace.ts";
import { TempSchemas } from "./tempschemas.ts";
import { ListenRegistry } from "./notify.ts";
import type { ActivityRow, BackendEntry, BackendSignal } from "./backends.ts";
import { STAT_ACTIVITY_SQL } from "./activity.ts";
import { STAT_ARCHIVER_INSTALLED_SQL, STAT_ARCHIVER_SQL } from "./pgstat_archiver.ts";
import { RoleGraph } from "./acl.ts";
import { EngineScheduler, type Holder } from "./scheduler.ts";
import { PgliteSession, type SessionEngine } from "./session.ts";
import {
  parseSnapshot,
  type SettingsMap,
  snapshotSql,
  startupSettings,
  switchSql,
} from "./settings.ts";
import { recoverSwitch, ROLE_DEFAULTS_SQL, type RoleDefault, roleDefaults } from "./switch.ts";
import {
  concat,
  dataRows,
  fe,
  firstError,
  noticeResponse,
  quoteIdent,
  quoteLiteral,
  readInt32,
  readyForQuery,
} from "./wire.ts";

export interface EngineOptions {
  /** Longest wait for the engine before 55P03 (pgts.engine_wait_timeout); default 5000 ms. */
  readonly engineWaitTimeoutMs?: number;
  /**
   * pgts.engine_hold_timeout: a session holding the engine idle while another
   * waits for it is ended after this long (FATAL 25P03); default 2000 ms, 0 never.
   */
  readonly engineHoldTimeoutMs?: number;
  /** idle_in_transaction_session_timeout unless a session sets its own; default 0 (off), as in PostgreSQL. */
  readonly idleInTransactionSessionTimeoutMs?: number;
  /**
   * Called once when the backend is lost (markBroken): a PANIC, or a state
   * pgts cannot roll back. The engine child exits then, and the postmaster's
   * crash cycle reopens the cluster, which replays the WAL.
   */
  readonly onBroken?: (reason: string) => void;
  /**
   * Set when the engine serves one database of a multi-database cluster
   * (dbengines.ts): CREATE, ALTER and DROP DATABASE are the cluster's to
   * carry out, and it learns when a session ends.
   */
  readonly cluster?: EngineCluster;
}

/** What an engine of a multi-database cluster asks of the cluster. */
export interface EngineCluster {
  /**
   * Carries out one CREATE/ALTER/DROP DATABASE statement for `session`,
   * which does not hold the engine; resolves with the answer's messages up
   * to (not including) ReadyForQuery, or rejects with the PgError to send.
   */
  databaseCommand(session: PgliteSession, sql: string): Promise<Uint8Array[]>;
  /** A session of this engine started. */
  sessionStarted(engine: PgliteEngine): void;
  /** A session of this engine ended. */
  sessionEnded(engine: PgliteEngine): void;
  /**
   * The sessions of the cluster's other databases. PostgreSQL's procarray
   * spans databases: pg_cancel_backend and pg_terminate_backend in one
   * database reach a backend of any other.
   */
  otherSessions(engine: PgliteEngine): Iterable<PgliteSession>;
  /** Bumped whenever a session of any database starts or ends. */
  sessionsVersion(): number;
  /** A transaction of this engine may have changed roles (pg_authid, pg_auth_members): show them everywhere. */
  rolesChanged(engine: PgliteEngine): void;
}

/** Settings the server reports in ParameterStatus (GUC_REPORT), in PostgreSQL's spelling. */
const REPORTED = [
  "application_name",
  "client_encoding",
  "DateStyle",
  "default_transaction_read_only",
  "in_hot_standby",
  "integer_datetimes",
  "IntervalStyle",
  "is_superuser",
  "scram_iterations",
  "search_path",
  "server_encoding",
  "server_version",
  "session_authorization",
  "standard_conforming_strings",
  "TimeZone",
];

function internalHolder(): Holder {
  return { pid: 0, activity: () => "doing the engine's own work" };
}

export class PgliteEngine implements Engine, SessionEngine {
  readonly scheduler = new EngineScheduler();
  readonly executor: RawExecutor;
  readonly listeners = new ListenRegistry();
  readonly options: {
    engineWaitTimeoutMs: number;
    engineHoldTimeoutMs: number;
    idleInTransactionSessionTimeoutMs: number;
  };
  readonly cluster: EngineCluster | null;
  /** The session whose unnamed statement the backend holds, if known. */
  unnamedOwner: PgliteSession | null = null;

  #sessions = new Set<PgliteSession>();
  #nextId = 1;
  #baseline: SettingsMap = new Map();
  /** The settings the backend carries now, and for whom. */
  #current: SettingsMap = new Map();
  #appliedFor: PgliteSession | null = null;
  #appliedVersion = -1;
  #customNames = new Set<string>();
  /** Parameters that are not session state (GUC_NO_RESET: they follow the transaction). */
  #notSessionState: ReadonlySet<string> = new Set();
  /** The role settings switches reset as: the backend's own (bootstrap superuser). */
  #superuser = "postgres";
  /** ALTER ROLE/DATABASE … SET values for this database (pg_db_role_setting). */
  #roleDefaults: RoleDefault[] = [];
  /**
   * Startup maps (by settingsKey) as the backend spells them once set:
   * what the pg_settings read after a session's first transaction returned,
   * when nothing but the start had changed its settings. Every new session
   * with the same startup packet (a pool, pgbench -C) is then spared that
   * read. Emptied when the catalogs are re-read.
   */
  #startupSpelled = new Map<string, SettingsMap>();
  /**
   * Startup maps by user and startup parameters: sessions started alike
   * share one (immutable) map, so building it (a copy of several hundred
   * settings) and keying it are done once, and switching between such
   * sessions is an identity check.
   */
  #startupMaps = new Map<string, SettingsMap>();
  /** settingsKey per map, with the number of custom names it was computed for. */
  #keys = new WeakMap<SettingsMap, { names: number; key: string }>();
  /** ParameterStatus lists by startup map, then by role (superuser flag and name). */
  #statusLists = new WeakMap<SettingsMap, Map<string, ParameterStatusList>>();
  #roles = new Map<string, EngineRole>();
  /** The roles and their inheriting grants, read with #roles (acl.ts). */
  #roleGraph = new RoleGraph([], []);
  /** Parameters fixed for the server's life (context internal), by lowercased name: SHOW's answer. */
  #fixed = new Map<string, readonly [string, string]>();
  #databases = new Set<string>();
  #database = "postgres";
  #reported = new Map<string, string>();
  #broken: PgError | null = null;
  readonly #onBroken: ((reason: string) => void) | undefined;
  #closing: Promise<void> | null = null;
  #jobs = new Set<Promise<void>>();
  /** Bumped when a session starts or ends; the sessions go to the backend with the next exec. */
  #backendsVersion = 0;
  #backendsSent = -1;
  /** The shipped extension bundles are in the engine's file system (extensions.ts). */
  #extensionsLoaded = false;
  /** Per-session temporary schemas: whose the backend has, their SQL (tempschemas.ts). */
  readonly #temp: TempSchemas;

  constructor(executor: RawExecutor, options: EngineOptions = {}) {
    this.executor = executor;
    this.options = {
      engineWaitTimeoutMs: options.engineWaitTimeoutMs ?? 5000,
      engineHoldTimeoutMs: options.engineHoldTimeoutMs ?? 2000,
      idleInTransactionSessionTimeoutMs: options.idleInTransactionSessionTimeoutMs ?? 0,
    };
    this.#onBroken = options.onBroken;
    this.cluster = options.cluster ?? null;
    executor.onSignals = (signals) => this.signalBackends(signals);
    this.#temp = new TempSchemas({
      runRaw: (bytes, temp) => this.runRaw(bytes, undefined, temp),
      query: (sql) => this.#query(sql),
      asBootstrapSuperuser: () => this.#asBootstrapSuperuser(),
    }, executor.tempShared);
    // A failed fdatasync of the WAL (group commit defers it): the PANIC.
    executor.onWalFailure = (message) => this.markBroken(`PANIC: ${message}`);
    if (
      !(this.options.engineWaitTimeoutMs > 0 && Number.isFinite(this.options.engineWaitTimeoutMs))
    ) {
      throw new RangeError("engineWaitTimeoutMs must be a positive finite number of milliseconds");
    }
  }

  /** Reads what startups are checked against. Called once, before any session. */
  async init(): Promise<void> {
    await this.#withEngine(async () => {
      this.#notSessionState = new Set(
        (await this.#query(
          "select lower(name) from pg_catalog.pg_settings" +
            " where 'NO_RESET' = any(pg_catalog.pg_settings_get_flags(name))",
        )).map((r) => r[0] ?? ""),
      );
      this.#baseline = parseSnapshot(await this.#query(snapshotSql([], this.#notSessionState)));
      // Not the baseline's session_authorization: single-user PGlite leaves that ''.
      this.#superuser = (await this.#query("select session_user"))[0]?.[0] ?? this.#superuser;
      this.#current = this.#baseline;
      const names = REPORTED.map(quoteLiteral).join(", ");
      for (
        const [n, v] of await this.#query(
          `select name, setting from pg_catalog.pg_settings where name in (${names})` +
            " union all select 'server_version', pg_catalog.current_setting('server_version')" +
            " union all select 'current_database', pg_catalog.current_database()",
        )
      ) {
        if (n != null && v != null) this.#reported.set(n, v);
      }
      this.#database = this.#reported.get("current_database") ?? "postgres";
      this.#reported.delete("current_database");
      // is_superuser is internal but follows the session's role.
      for (
        const [n, v] of await this.#query(
          "select name, pg_catalog.current_setting(name) from pg_catalog.pg_settings" +
            " where context = 'internal' and name not in ('is_superuser', 'in_hot_standby')",
        )
      ) {
        if (n != null && v != null) this.#fixed.set(n.toLowerCase(), [n, v]);
      }
      await this.#refreshRoles();
      await this.#refreshDatabases();
      await this.#installStatActivity();
      await this.#installStatArchiver();
      await this.#temp.dropLeftovers();
      // An extension created before this start needs its files (its library) again.
      const [created] = await this.#query(
        "select exists (select from pg_catalog.pg_extension where extname <> 'plpgsql')",
      );
      if (created?.[0] === "t") {
        this.#extensionsLoaded = true;
        await this.executor.exec(fe.sync(), () => {}, { loadExtensions: true });
      }
    }, Infinity);
  }

  /** True once per engine: the first input that names an extension loads the bundles. */
  loadExtensionsFor(needed: boolean): boolean {
    if (!needed || this.#extensionsLoaded) return false;
    this.#extensionsLoaded = true;
    return true;
  }

  /**
   * Makes pg_stat_activity read pgts's sessions (activity.ts), once per
   * cluster. A cluster that refuses the DDL keeps PGlite's view.
   */
  async #installStatActivity(): Promise<void> {
    const [row] = await this.#query(
      "select pg_catalog.pg_get_viewdef('pg_catalog.pg_stat_activity'::pg_catalog.regclass)" +
        " like '%pgts_stat_get_activity%'" +
        " and pg_catalog.pg_get_viewdef('pg_catalog.pg_prepared_statements'::pg_catalog.regclass)" +
        " like '%pgts_statement_prefix%'" +
        // Rows of every database (b.datname) since pgts served several.
        " and pg_catalog.pg_get_functiondef(" +
        "pg_catalog.to_regproc('pg_catalog.pgts_stat_get_activity')::pg_catalog.oid)" +
        " like '%b.datname%'",
    );
    if (row?.[0] === "t") return;
    await this.runRaw(fe.query(STAT_ACTIVITY_SQL));
  }

  /**
   * Makes pg_stat_archiver read pgts's archiver (pgstat_archiver.ts), once
   * per cluster.
   */
  async #installStatArchiver(): Promise<void> {
    const [row] = await this.#query(STAT_ARCHIVER_INSTALLED_SQL);
    if (row?.[0] === "t") return;
    await this.runRaw(fe.query(STAT_ARCHIVER_SQL));
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
    return this.#sessions.size;
  }

  /** The database this engine serves, as its backend names it. */
  get database(): string {
    return this.#database;
  }

  /** The sessions, for the cluster's checks of who uses the database. */
  sessions(): PgliteSession[] {
    return [...this.#sessions];
  }

  /** Roles and grants as the engine last read them, for checks made without the backend. */
  get roleGraph(): RoleGraph {
    return this.#roleGraph;
  }

  /** A parameter fixed at start (server_version_num...): its spelling and SHOW's value. */
  fixedSetting(name: string): readonly [string, string] | undefined {
    return this.#fixed.get(name.toLowerCase());
  }

  /** The session `pid` of any database of the cluster. */
  clusterSession(pid: number): PgliteSession | undefined {
    for (const s of this.#sessions) if (s.pid === pid) return s;
    for (const s of this.cluster?.otherSessions(this) ?? []) if (s.pid === pid) return s;
    return undefined;
  }

  /** A role as the engine last read it (pg_authid), without waiting. */
  role(name: string): EngineRole | undefined {
    return this.#roles.get(name);
  }

  /**
   * Runs SQL of the cluster's own as the bootstrap superuser, once the
   * backend is free (waiting no longer than `timeoutMs`), then reads the
   * role and database catalogs again: pg_database's mirror (pg_database.ts),
   * ALTER DATABASE … SET, a CHECKPOINT. `sql` gets the served database's
   * oid. `during` runs while the engine is still held (a copy of the
   * cluster's files after a CHECKPOINT). Throws the first error.
   */
  async runAsCluster(
    sql: (servedOid: number) => string,
    options: { timeoutMs?: number; during?: () => Promise<void> | void } = {},
  ): Promise<void> {
    this.#checkOpen();
    await this.#withEngine(async () => {
      await this.#asBootstrapSuperuser();
      const [row] = await this.#query(
        "select oid from pg_catalog.pg_database where datname = pg_catalog.current_database()",
      );
      const text = sql(Number(row?.[0] ?? 5));
      if (text !== "") {
        await this.#query(text).catch(async (e) => {
          await this.runRaw(fe.query("ROLLBACK")).catch(() => {});
          throw e;
        });
      }
      await options.during?.();
      await this.#refreshRoles();
      await this.#refreshDatabases();
      this.#database = (await this.#query("select pg_catalog.current_database()"))[0]?.[0] ??
        this.#database;
    }, options.timeoutMs ?? this.options.engineWaitTimeoutMs);
  }

  /**
   * A session whose role or database DDL (ALTER ROLE ... SET) has
   * committed, and whose client may already have its ReadyForQuery, is
   * reading the catalogs back: a login after that commit waits for it.
   */
  async settleCatalogs(): Promise<void> {
    if (this.catalogsSettling) {
      await this.#withEngine(() => Promise.resolve(), this.options.engineWaitTimeoutMs)
        .catch(() => {});
    }
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
    return await this.#withEngine(async () => {
      await this.#asBootstrapSuperuser();
      return (await this.#query(sql))[0]?.[0] ?? null;
    }, this.options.engineWaitTimeoutMs);
  }

  /** The bootstrap superuser's name (initdb's -U). */
  get superuserName(): string {
    return this.#superuser;
  }

  /** Ends every session with `reason` (DROP DATABASE … WITH (FORCE)). */
  terminateSessions(reason: PgError): void {
    for (const s of this.#sessions) s.terminate(reason);
  }

  async lookupRole(name: string): Promise<EngineRole | null> {
    this.#checkOpen();
    const hit = this.#roles.get(name);
    if (hit !== undefined) return hit;
    // A role created by a path the scan cannot see (a function): look again.
    await this.#withEngine(() => this.#refreshRoles(), this.options.engineWaitTimeoutMs)
      .catch(() => {});
    return this.#roles.get(name) ?? null;
  }

  async startSession(
    startup: SessionStartup,
  ): Promise<{ session: EngineSession; parameterStatus: ParameterStatusList }> {
    this.#checkOpen();
    const fatal = (code: string, message: string, detail?: string) =>
      new PgError(code, message, { severity: "FATAL", ...(detail ? { detail } : {}) });
    // The client may connect as a role another session created a moment
    // ago: its ReadyForQuery can arrive before the catalogs are re-read.
    const role = this.#roles.get(startup.user) ?? await this.lookupRole(startup.user) ?? undefined;
    if (!this.#databases.has(startup.database)) {
      await this.#withEngine(() => this.#refreshDatabases(), this.options.engineWaitTimeoutMs)
        .catch(() => {});
    }
    if (role === undefined) {
      throw fatal(
        ERRCODE.INVALID_AUTHORIZATION_SPECIFICATION,
        `role "${startup.user}" does not exist`,
      );
    }
    if (!role.canLogin) {
      throw fatal(
        ERRCODE.INVALID_AUTHORIZATION_SPECIFICATION,
        `role "${startup.user}" is not permitted to log in`,
      );
    }
    if (!this.#databases.has(startup.database)) {
      throw fatal(ERRCODE.INVALID_CATALOG_NAME, `database "${startup.database}" does not exist`);
    }
    if (startup.database !== this.#database) {
      throw fatal(
        ERRCODE.FEATURE_NOT_SUPPORTED,
        `cannot connect to database "${startup.database}": this engine serves only database "${this.#database}"`,
        "PGlite runs a single backend bound to one database of its cluster; other databases exist in the catalog but cannot be opened.",
      );
    }
    await this.settleCatalogs();
    // A login is an answer too: it may rest on a role whose commit is not
    // on disk yet (group commit, groupcommit.ts).
    const wal = this.executor.wal;
    if (wal.behind) await wal.waitFor(wal.requested);
    const settings = this.#startupMap(startup.user, startup.params);
    const spelled = this.#startupSpelled.get(this.#keyOf(settings));
    const session = new PgliteSession(this, {
      id: this.#nextId++,
      pid: startup.pid,
      user: startup.user,
      userOid: role.oid,
      settings,
      ...(spelled !== undefined ? { spelled } : {}),
      ...(startup.client !== undefined ? { client: startup.client } : {}),
    });
    this.#sessions.add(session);
    this.#backendsVersion++;
    this.cluster?.sessionStarted(this);
    this.listeners.add(session);
    return { session, parameterStatus: this.#parameterStatus(settings, role) };
  }

  /** What a session with these startup settings and role reports; one list per map and role. */
  #parameterStatus(settings: SettingsMap, role: RoleInfo): ParameterStatusList {
    let byRole = this.#statusLists.get(settings);
    if (byRole === undefined) this.#statusLists.set(settings, byRole = new Map());
    const key = `${role.superuser ? "s" : "-"}${role.name}`;
    let list = byRole.get(key);
    if (list === undefined) {
      const status = new Map(this.#reported);
      status.set("session_authorization", role.name);
      status.set("is_superuser", role.superuser ? "on" : "off");
      for (const name of REPORTED) {
        const v = settings.get(name.toLowerCase());
        if (v !== undefined && name !== "session_authorization") status.set(name, v);
      }
      list = Object.freeze([...status].map((pair) => Object.freeze(pair)));
      byRole.set(key, list);
    }
    return list;
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
    for (const s of this.#sessions) s.terminate(reason);
    await Promise.all([...this.#sessions].map((s) => s.close().catch(() => {})));
    this.scheduler.close(reason);
    await Promise.all([...this.#jobs]);
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
    this.#customNames.add(name);
  }

  /**
   * True when the backend carries `s`'s settings already: prepareFor has
   * nothing to do. Sessions started alike share one map (#startupMaps,
   * #startupSpelled), so for them this is an identity check.
   */
  carriesSettingsOf(s: PgliteSession): boolean {
    return (this.#appliedFor === s && this.#appliedVersion === s.settingsVersion) ||
      this.#current === s.settings;
  }

  /**
   * Puts `s`'s settings on the backend if another session's are there.
   * Returns warnings for `s` about settings that could not be put back;
   * throws (for `s` alone) when its identity or a startup setting cannot
   * be applied. Either way the engine knows what the backend carries.
   */
  prepareFor(s: PgliteSession): Promise<PgError[]> {
    if (this.carriesSettingsOf(s)) return Promise.resolve([]);
    return this.#switchTo(s, s.settings);
  }

  async #switchTo(s: PgliteSession, to: SettingsMap): Promise<PgError[]> {
    // The switch is pgts's own work, which the identity guard lets become
    // anyone: a map must never carry a session to a role it may not be.
    const auth = to.get("session_authorization");
    if (auth !== undefined && auth !== s.user && this.#roles.get(s.user)?.superuser !== true) {
      throw new PgError(
        ERRCODE.INSUFFICIENT_PRIVILEGE,
        `permission denied to set session authorization "${auth}"`,
        { severity: "FATAL" },
      );
    }
    let warnings: PgError[] = [];
    // A startup map is checked as the connecting user; a map read back
    // from the backend holds what the session set itself.
    const how = {
      superuser: this.#superuser,
      valuesAs: to === s.startupSettings ? "user" : "superuser",
    } as const;
    const sql = switchSql(this.#current, to, how);
    let failed = false;
    if (sql !== null) {
      try {
        failed = firstError(await this.runRaw(fe.query(sql))) !== null;
      } catch (e) {
        // PGlite itself threw: roll back, then learn what the backend carries.
        this.#appliedFor = null;
        if (!(await this.abortOpenWork(s))) {
          this.markBroken("could not roll back a settings switch");
        } else this.#current = await this.#snapshot().catch(() => this.#current);
        throw e;
      }
    }
    if (failed) {
      // Nothing of the one-Query switch took effect: go step by step, and
      // learn what the backend really carries.
      const r = await recoverSwitch({
        run: (q) => this.runRaw(fe.query(q)),
        from: this.#current,
        to,
        switch: how,
        snapshot: () => this.#snapshot(),
        pid: s.pid,
        startup: to === s.startupSettings,
      });
      this.#current = r.carried;
      this.#appliedFor = null;
      if (r.fatal !== null) throw r.fatal;
      to = r.carried;
      warnings = r.warnings;
    }
    if (s.settings !== to) {
      s.settings = to;
      s.settingsVersion++;
    }
    this.#setApplied(s, to);
    return warnings;
  }

  async #snapshot(): Promise<Map<string, string>> {
    return parseSnapshot(
      await this.#query(snapshotSql(this.#customNames, this.#notSessionState)),
    );
  }

  /** False when afterTransaction would only clear `pendingListenSpoiled` (most statements). */
  hasWorkAfterTransaction(s: PgliteSession): boolean {
    return s.settingsDirty || s.pendingListen.length > 0 || s.rolesDirty || s.databasesDirty ||
      s.tempUnnamed;
  }

  /** Bookkeeping at ReadyForQuery 'I': settings snapshot, LISTEN, catalogs; only what the input may have changed. */
  async afterTransaction(s: PgliteSession): Promise<void> {
    if (s.settingsDirty) {
      const key = s.settingsFromStartup ? this.#keyOf(s.startupSettings) : null;
      let m = key === null ? undefined : this.#startupSpelled.get(key);
      if (m === undefined) {
        m = await this.#snapshot();
        if (key !== null) {
          if (this.#startupSpelled.size >= STARTUP_SPELLED_MAX) this.#startupSpelled.clear();
          this.#startupSpelled.set(key, m);
        }
      }
      s.settings = m;
      s.settingsVersion++;
      s.settingsDirty = false;
      s.settingsFromStartup = false;
      this.#setApplied(s, m);
      // The identity guard (guard.ts) refuses these changes before they
      // happen; this is the check behind it. The backend's map is known, so
      // the next owner is switched away from it whatever it holds.
      const became = m.get("session_authorization");
      if (
        became !== undefined && became !== s.user && this.#roles.get(s.user)?.superuser !== true
      ) {
        s.terminate(
          new PgError(
            ERRCODE.INSUFFICIENT_PRIVILEGE,
            `permission denied to set session authorization "${became}"`,
            { severity: "FATAL" },
          ),
        );
      }
    }
    if (s.pendingListen.length > 0) {
      if (!s.pendingListenSpoiled) this.listeners.apply(s, s.pendingListen);
      s.pendingListen = [];
      await this.#reconcileListens();
    }
    s.pendingListenSpoiled = false;
    if (s.rolesDirty) {
      await this.#refreshRoles();
      s.rolesDirty = false;
      this.cluster?.rolesChanged(this);
    }
    if (s.databasesDirty) {
      await this.#refreshDatabases();
      s.databasesDirty = false;
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
  ): Promise<void> {
    options = this.#temp.beforeExec(options, s, temp);
    let result: ExecResult;
    try {
      result = await this.executor.exec(bytes, onData, options);
    } catch (e) {
      this.#temp.execFailed();
      throw e;
    }
    this.#temp.afterExec(options, result);
  }

  /** DEALLOCATE ALL and DISCARD ALL, for this session's state only. */
  async runSpecial(
    s: PgliteSession,
    kind: "discard all" | "deallocate all",
    out: (b: Uint8Array) => void,
  ): Promise<boolean> {
    await this.#closeStatements(s);
    if (kind === "discard all") {
      await this.#closeHoldCursors(s);
      s.unnamedParse = null;
      const warnings = await this.#switchTo(s, s.startupSettings);
      if (warnings.length > 0) out(concat(warnings.map(noticeResponse)));
      s.settingsDirty = true;
      s.settingsFromStartup = false;
      s.listens.clear();
      s.pendingListen = [];
      await this.#reconcileListens();
      await this.runRaw(fe.query("DISCARD PLANS"));
      if (s.temp[0] !== 0) await this.runRaw(fe.query("DISCARD TEMP"), s);
    }
    const tag = kind === "discard all" ? "DISCARD ALL" : "DEALLOCATE ALL";
    out(concat([
      MessageWriter.encode((w) => writeCommandComplete(w, tag)),
      readyForQuery(s.transactionStatus),
    ]));
    return true;
  }

  /**
   * Ends whatever `s` left open on the backend: a COPY, an unsynced batch
   * (its implicit transaction is aborted, not committed) and a transaction
   * block. False when the backend could not be brought back to idle.
   */
  async abortOpenWork(s: PgliteSession): Promise<boolean> {
    try {
      const out = await this.runRaw(concat([
        fe.copyFail("connection ended"),
        fe.execute("pgts: abort the unsynced batch"),
        fe.sync(),
        fe.query("ROLLBACK"),
      ]));
      s.resetStatus();
      return lastStatus(out) === "I";
    } catch {
      return false;
    }
  }

  /** A closed session: roll back, drop its statements and channels, give the backend back. */
  async endSession(s: PgliteSession): Promise<void> {
    if (this.#sessions.delete(s)) this.cluster?.sessionEnded(this);
    this.#backendsVersion++;
    this.listeners.remove(s);
    if (this.unnamedOwner === s) this.unnamedOwner = null;
    if (this.#appliedFor === s) this.#appliedFor = null;
    if (this.#broken !== null) return;
    const cleanup = async () => {
      await this.#closeStatements(s);
      await this.#closeHoldCursors(s);
      if (s.listens.size > 0) {
        s.listens.clear();
        await this.#reconcileListens();
      }
      await this.#temp.drop(s);
      if (s.backupStarted) {
        // Its backup ends with it (PostgreSQL's do_pg_abort_backup); the
        // error of a backup already stopped is of no interest.
        s.backupStarted = false;
        await this.#asBootstrapSuperuser();
        await this.runRaw(fe.query("select pg_catalog.pg_backup_stop(false)"));
      }
    };
    if (s.owns) {
      try {
        if (!(await this.abortOpenWork(s))) this.markBroken("could not roll back a closed session");
        else await cleanup();
      } finally {
        s.owns = false;
        this.scheduler.release(s);
      }
    } else if (
      s.statements.size > 0 || s.holdCursors.size > 0 || s.listens.size > 0 || s.temp[0] !== 0 ||
      s.backupStarted
    ) {
      // Not urgent: done when the backend is next free, never holding up the caller.
      const job = this.#withEngine(cleanup, Infinity).catch(() => {});
      this.#jobs.add(job);
      void job.finally(() => this.#jobs.delete(job));
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
    for (const s of this.#sessions) s.terminate(this.#broken);
    this.scheduler.close(this.#broken);
    this.#onBroken?.(reason);
  }

  // ---- internals

  #startupMap(user: string, params: Readonly<Record<string, string>>): SettingsMap {
    const key = JSON.stringify([user, params]);
    let m = this.#startupMaps.get(key);
    if (m === undefined) {
      m = startupSettings(this.#baseline, {
        user,
        params,
        defaults: roleDefaults(this.#roleDefaults, this.#roles.get(user)),
        exclude: this.#notSessionState,
      });
      if (this.#startupMaps.size >= STARTUP_SPELLED_MAX) this.#startupMaps.clear();
      this.#startupMaps.set(key, m);
    }
    return m;
  }

  #keyOf(m: SettingsMap): string {
    const known = this.#keys.get(m);
    if (known !== undefined && known.names === this.#customNames.size) return known.key;
    const key = settingsKey(m, this.#customNames);
    this.#keys.set(m, { names: this.#customNames.size, key });
    return key;
  }

  #setApplied(s: PgliteSession, m: SettingsMap): void {
    this.#current = m;
    this.#appliedFor = s;
    this.#appliedVersion = s.settingsVersion;
  }

  async #withEngine<T>(fn: () => Promise<T>, timeoutMs: number): Promise<T> {
    const h = internalHolder();
    await this.scheduler.acquire(h, { timeoutMs });
    try {
      return await fn();
    } finally {
      this.scheduler.release(h);
    }
  }

  /**
   * Runs bytes for the engine's own purposes (the caller owns the backend);
   * the whole answer. `as`: the session whose input the bytes are, checked
   * as its login role (guard.ts) and seen as its pid (backends.ts).
   */
  async runRaw(bytes: Uint8Array, as?: PgliteSession, temp?: TempPair): Promise<Uint8Array> {
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
  backendsForExec(): BackendEntry[] | undefined {
    const version = this.cluster?.sessionsVersion() ?? this.#backendsVersion;
    if (this.#backendsSent === version) return undefined;
    this.#backendsSent = version;
    return [...this.#sessions, ...(this.cluster?.otherSessions(this) ?? [])].map((s) => ({
      pid: s.pid,
      roleOid: s.userOid,
      statementPrefix: s.prefix,
    }));
  }

  /** pg_stat_activity's rows: every session of every database, as it is now. */
  activityRows(): ActivityRow[] {
    const rows = this.ownActivityRows();
    for (const s of this.cluster?.otherSessions(this) ?? []) rows.push(s.activityRow());
    return rows;
  }

  /** pg_stat_activity's rows of this database's sessions. */
  ownActivityRows(): ActivityRow[] {
    return [...this.#sessions].map((s) => s.activityRow());
  }

  /** Signals sent with pg_cancel_backend or pg_terminate_backend (checked by the caller). */
  signalBackends(signals: readonly BackendSignal[]): void {
    const all = [...this.#sessions, ...(this.cluster?.otherSessions(this) ?? [])];
    for (const [pid, kind] of signals) {
      for (const s of all) {
        if (s.pid !== pid) continue;
        if (kind === "cancel") s.cancel();
        else {
          s.terminate(
            new PgError(
              ERRCODE.ADMIN_SHUTDOWN,
              "terminating connection due to administrator command",
              { severity: "FATAL" },
            ),
          );
        }
      }
    }
  }

  async #query(sql: string): Promise<Array<Array<string | null>>> {
    const out = await this.runRaw(fe.query(sql));
    const err = firstError(out);
    if (err !== null) throw new PgError(err.code, err.message);
    return dataRows(out);
  }

  /** How many WITH HOLD cursors the other sessions of this engine have open. */
  holdCursorsOfOthers(s: PgliteSession): number {
    let n = 0;
    for (const o of this.#sessions) if (o !== s) n += o.holdCursors.size;
    return n;
  }

  /**
   * Closes `s`'s WITH HOLD cursors (its end, DISCARD ALL), one Query each:
   * one that a rollback already took away is an error nobody sees.
   */
  async #closeHoldCursors(s: PgliteSession): Promise<void> {
    if (s.holdCursors.size === 0) return;
    const msgs = [...s.holdCursors].map((n) => fe.query(`CLOSE ${quoteIdent(s.prefix + n)}`));
    s.holdCursors.clear();
    await this.runRaw(concat(msgs));
  }

  async #closeStatements(s: PgliteSession): Promise<void> {
    s.statementEffects.clear();
    if (s.statements.size === 0) return;
    const msgs = [...s.statements].map((n) => fe.close("S", n));
    s.statements.clear();
    await this.runRaw(concat([...msgs, fe.sync()]));
  }

  async #reconcileListens(): Promise<void> {
    const actual = (await this.#query("select pg_catalog.pg_listening_channels()"))
      .map((r) => r[0] ?? "");
    const sql = this.listeners.reconcileSql(actual);
    if (sql !== null) await this.runRaw(fe.query(sql));
  }

  async #refreshRoles(): Promise<void> {
    this.#startupSpelled.clear();
    this.#startupMaps.clear();
    await this.#asBootstrapSuperuser();
    this.#roleDefaults = (await this.#query(ROLE_DEFAULTS_SQL)) as RoleDefault[];
    const rows = await this.#query(
      "select rolname, rolsuper, rolcanlogin, rolpassword, oid, rolcreatedb from pg_catalog.pg_authid",
    );
    this.#roles = new Map(rows.map(([name, sup, login, secret, oid, createdb]) => [name ?? "", {
      name: name ?? "",
      superuser: sup === "t",
      createdb: createdb === "t",
      canLogin: login === "t",
      secret: secret ?? null,
      oid: Number(oid),
    }]));
    const grants = await this.#query(
      "select member, roleid from pg_catalog.pg_auth_members where inherit_option",
    );
    this.#roleGraph = new RoleGraph(
      this.#roles.values(),
      grants.map(([member, role]) => [Number(member), Number(role)] as const),
    );
  }

  /**
   * Makes the backend's identity the bootstrap superuser's, for the engine's
   * own reads of pg_authid: the backend may still carry the identity of the
   * session that last ran (which may not read it). The next owner is
   * switched back to its own identity as usual (#appliedFor is cleared).
   * Only at ReadyForQuery 'I', where a SET SESSION AUTHORIZATION lasts.
   */
  async #asBootstrapSuperuser(): Promise<void> {
    const boot = this.#superuser;
    if (
      this.#current.get("session_authorization") === boot && this.#current.get("role") === "none"
    ) {
      return;
    }
    const err = firstError(
      await this.runRaw(fe.query(`SET SESSION AUTHORIZATION ${quoteIdent(boot)}`)),
    );
    if (err !== null) throw new PgError(err.code, err.message);
    const m = new Map(this.#current);
    m.set("session_authorization", boot);
    m.set("role", "none");
    this.#current = m;
    this.#appliedFor = null;
  }

  async #refreshDatabases(): Promise<void> {
    this.#startupSpelled.clear();
    this.#startupMaps.clear();
    this.#roleDefaults = (await this.#query(ROLE_DEFAULTS_SQL)) as RoleDefault[];
    const rows = await this.#query("select datname from pg_catalog.pg_database");
    this.#databases = new Set(rows.map((r) => r[0] ?? ""));
  }
}

/** A role as the engine knows it: with its OID, which the identity guard checks by. */
export interface EngineRole extends RoleInfo {
  readonly oid: number;
  readonly createdb: boolean;
}

/** Distinct startup maps remembered at most (a bound, not a tuning knob). */
const STARTUP_SPELLED_MAX = 256;

/** A startup map and the custom names a snapshot reads, as one string key. */
function settingsKey(m: SettingsMap, customNames: ReadonlySet<string>): string {
  const entries = [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([entries, [...customNames]]);
}

/** Status byte of the last ReadyForQuery in a backend byte stream. */
function lastStatus(buf: Uint8Array): string | null {
  let at = 0;
  let status: string | null = null;
  while (at + 5 <= buf.length) {
    const len = readInt32(buf, at + 1);
    if (buf[at] === 0x5a) status = String.fromCharCode(buf[at + 5]!);
    at += 1 + len;
  }
  return status;
}
