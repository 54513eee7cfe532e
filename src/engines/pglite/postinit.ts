/**
 * What a login is checked against and told, read from the engine's
 * catalogs (PostgreSQL's utils/init/postinit.c, InitPostgres): the roles
 * (pg_authid, and the inheriting grants of pg_auth_members), the databases
 * (pg_database), the ALTER ROLE/DATABASE … SET values (pg_db_role_setting),
 * the parameters fixed for the server's life, and what every login reports
 * in ParameterStatus.
 *
 * It keeps what it last read, so that a startup is checked without
 * waiting for the backend; the engine has it read again after a
 * transaction that may have changed roles or databases. It runs SQL only
 * through its host, while the engine is held.
 */

import { ERRCODE, PgError } from "../../core/elog.ts";
import type { ParameterStatusList, RoleInfo } from "../../core/engine/types.ts";
import { RoleGraph } from "./acl.ts";
import type { DatabaseShown } from "./pg_database.ts";
import { REPORTED_PARAMETERS } from "./paramstatus.ts";
import type { SettingsMap } from "./settings.ts";
import { ROLE_DEFAULTS_SQL, type RoleDefault, roleDefaults } from "./switch.ts";
import { quoteLiteral } from "./wire.ts";

/** A role as the engine knows it: with its OID, which the identity guard checks by. */
export interface EngineRole extends RoleInfo {
  readonly oid: number;
  readonly createdb: boolean;
  /** rolconnlimit: how many sessions the role may have in the cluster at once; -1: no limit. */
  readonly connLimit: number;
}

/** What the catalogs are read through; called only while the engine is held. */
export interface CatalogHost {
  /** The rows of each statement, run as one Query; throws the first error. */
  queries(sqls: readonly string[]): Promise<Array<Array<Array<string | null>>>>;
  /** Makes the backend's identity the bootstrap superuser's, who may read pg_authid. */
  asBootstrapSuperuser(): Promise<void>;
  /** Roles or databases are about to be read again: maps built from the old ones are stale. */
  catalogsChanging(): void;
}

const REPORTED_SQL =
  `select name, setting from pg_catalog.pg_settings where name in (${
    REPORTED_PARAMETERS.map(quoteLiteral).join(", ")
  })` +
  " union all select 'server_version', pg_catalog.current_setting('server_version')" +
  " union all select 'current_database', pg_catalog.current_database()";

// is_superuser is internal but follows the session's role.
const FIXED_SQL = "select name, pg_catalog.current_setting(name) from pg_catalog.pg_settings" +
  " where context = 'internal' and name not in ('is_superuser', 'in_hot_standby')";

/** The role defaults (ALTER ROLE/DATABASE … SET), the roles, their inheriting grants. */
const ROLES_SQL: readonly string[] = [
  ROLE_DEFAULTS_SQL,
  "select rolname, rolsuper, rolcanlogin, rolpassword, oid, rolcreatedb, rolconnlimit," +
  " pg_catalog.date_part('epoch', rolvaliduntil) * 1000 from pg_catalog.pg_authid",
  "select member, roleid from pg_catalog.pg_auth_members where inherit_option",
];

/**
 * Every database's name, and for the served one whether PUBLIC lacks
 * CONNECT on it (REVOKE CONNECT … FROM PUBLIC): then a login is checked
 * against its privileges (engine.ts), as PostgreSQL's CheckMyDatabase does;
 * and its privileges as text and its comment (the other databases' engines
 * show them); and each one's oid as this engine shows it (pg_stat_activity's
 * datid, answered without the engine: offengine.ts).
 */
const DATABASES_SQL = "select datname, datname = pg_catalog.current_database() and" +
  " not pg_catalog.has_database_privilege('public', oid, 'CONNECT')," +
  " datname = pg_catalog.current_database(), datacl::pg_catalog.text," +
  " pg_catalog.shobj_description(oid, 'pg_database')," +
  " (select rolname from pg_catalog.pg_authid where oid = datdba)," +
  " pg_catalog.array_to_json(datacl::pg_catalog.text[])::pg_catalog.text, oid" +
  " from pg_catalog.pg_database";

/**
 * pg_stat_activity's oid: a RowDescription names the view as its columns'
 * table (offengine.ts answers it so). CREATE OR REPLACE VIEW (activity.ts)
 * keeps it.
 */
const STAT_ACTIVITY_OID_SQL =
  "select 'pg_catalog.pg_stat_activity'::pg_catalog.regclass::pg_catalog.oid";

const DATABASE_NAME_SQL = "select pg_catalog.current_database()";

export class EngineCatalogs {
  readonly #host: CatalogHost;
  #roles = new Map<string, EngineRole>();
  /** The roles and their inheriting grants, read with #roles (acl.ts). */
  #roleGraph = new RoleGraph([], []);
  /** ALTER ROLE/DATABASE … SET values for this database (pg_db_role_setting). */
  #roleDefaults: RoleDefault[] = [];
  /** Parameters fixed for the server's life (context internal), by lowercased name: SHOW's answer. */
  #fixed = new Map<string, readonly [string, string]>();
  #databases = new Set<string>();
  /** PUBLIC has no CONNECT on the served database (DATABASES_SQL). */
  connectRestricted = false;
  /** The served database's privileges (its datacl as text; null: the defaults). */
  servedAcl: string | null = null;
  /** The served database's comment (COMMENT ON DATABASE; null: none). */
  servedComment: string | null = null;
  /** Each database's owner and privileges as this engine's pg_database shows them (dbregistry.ts). */
  databasesShown: ReadonlyMap<string, DatabaseShown> = new Map();
  /** Each database's oid as this engine's pg_database shows it (the served one's is its own). */
  databaseOids: ReadonlyMap<string, number> = new Map();
  /** pg_stat_activity's oid in this engine (null: not read). */
  statActivityOid: number | null = null;
  #database = "postgres";
  #reported = new Map<string, string>();
  /** ParameterStatus lists by startup map, then by role (superuser flag and name). */
  #statusLists = new WeakMap<SettingsMap, Map<string, ParameterStatusList>>();

  constructor(host: CatalogHost) {
    this.#host = host;
  }

  /**
   * What init reads, as statements of one Query (the engine batches them
   * with its other start-up reads): the reported and the fixed parameters,
   * then the roles and the databases. Read as the backend's own user, the
   * bootstrap superuser at start, who may read pg_authid.
   */
  static readonly INIT_SQL: readonly string[] = [
    REPORTED_SQL,
    FIXED_SQL,
    ...ROLES_SQL,
    DATABASES_SQL,
    STAT_ACTIVITY_OID_SQL,
  ];

  /** Takes INIT_SQL's result sets. Called once, before any session. */
  init(sets: ReadonlyArray<Array<Array<string | null>>>): void {
    const [reported = [], fixed = [], ...rest] = sets;
    for (const [n, v] of reported) {
      if (n != null && v != null) this.#reported.set(n, v);
    }
    this.#database = this.#reported.get("current_database") ?? "postgres";
    this.#reported.delete("current_database");
    for (const [n, v] of fixed) {
      if (n != null && v != null) this.#fixed.set(n.toLowerCase(), [n, v]);
    }
    this.#host.catalogsChanging();
    this.#takeRoles(rest.slice(0, ROLES_SQL.length));
    this.#takeDatabases(rest[ROLES_SQL.length] ?? []);
    const view = rest[ROLES_SQL.length + 1]?.[0]?.[0];
    this.statActivityOid = view == null ? null : Number(view);
  }

  /** The database this engine serves, as its backend names it. */
  get database(): string {
    return this.#database;
  }

  /** Roles and grants as last read, for checks made without the backend. */
  get roleGraph(): RoleGraph {
    return this.#roleGraph;
  }

  /** A role as last read (pg_authid), without waiting. */
  role(name: string): EngineRole | undefined {
    return this.#roles.get(name);
  }

  isSuperuser(name: string): boolean {
    return this.#roles.get(name)?.superuser === true;
  }

  hasDatabase(name: string): boolean {
    return this.#databases.has(name);
  }

  /** A parameter fixed at start (server_version_num...): its spelling and SHOW's value. */
  fixedSetting(name: string): readonly [string, string] | undefined {
    return this.#fixed.get(name.toLowerCase());
  }

  /** The ALTER ROLE/DATABASE … SET values a login of `user` gets, in the order to apply them. */
  defaultsFor(user: string): Array<[string, string]> {
    return roleDefaults(this.#roleDefaults, this.#roles.get(user));
  }

  /**
   * PostgreSQL's refusals of a login, in its order: the role, its LOGIN,
   * the database (which this engine must serve: PGlite's one backend is
   * bound to it).
   */
  checkLogin(user: string, database: string, role: EngineRole | undefined): EngineRole {
    const fatal = (code: string, message: string, detail?: string) =>
      new PgError(code, message, { severity: "FATAL", ...(detail ? { detail } : {}) });
    if (role === undefined) {
      throw fatal(ERRCODE.INVALID_AUTHORIZATION_SPECIFICATION, `role "${user}" does not exist`);
    }
    if (!role.canLogin) {
      throw fatal(
        ERRCODE.INVALID_AUTHORIZATION_SPECIFICATION,
        `role "${user}" is not permitted to log in`,
      );
    }
    if (!this.#databases.has(database)) {
      throw fatal(ERRCODE.INVALID_CATALOG_NAME, `database "${database}" does not exist`);
    }
    if (database !== this.#database) {
      throw fatal(
        ERRCODE.FEATURE_NOT_SUPPORTED,
        `cannot connect to database "${database}": this engine serves only database "${this.#database}"`,
        "PGlite runs a single backend bound to one database of its cluster; other databases exist in the catalog but cannot be opened.",
      );
    }
    return role;
  }

  /** What a session with these startup settings and role reports; one list per map and role. */
  parameterStatus(settings: SettingsMap, role: RoleInfo): ParameterStatusList {
    let byRole = this.#statusLists.get(settings);
    if (byRole === undefined) this.#statusLists.set(settings, byRole = new Map());
    const key = `${role.superuser ? "s" : "-"}${role.name}`;
    let list = byRole.get(key);
    if (list === undefined) {
      const status = new Map(this.#reported);
      status.set("session_authorization", role.name);
      status.set("is_superuser", role.superuser ? "on" : "off");
      for (const name of REPORTED_PARAMETERS) {
        const v = settings.get(name.toLowerCase());
        if (v !== undefined && name !== "session_authorization") status.set(name, v);
      }
      list = Object.freeze([...status].map((pair) => Object.freeze(pair)));
      byRole.set(key, list);
    }
    return list;
  }

  async refreshRoles(): Promise<void> {
    const host = this.#host;
    host.catalogsChanging();
    await host.asBootstrapSuperuser();
    this.#takeRoles(await host.queries(ROLES_SQL));
  }

  async refreshDatabases(): Promise<void> {
    const host = this.#host;
    host.catalogsChanging();
    // The session that changed them may be any role (REASSIGN OWNED, a
    // GRANT on a database): pg_authid is the superuser's to read.
    await host.asBootstrapSuperuser();
    const [defaults = [], databases = []] = await host.queries([ROLE_DEFAULTS_SQL, DATABASES_SQL]);
    this.#roleDefaults = defaults as RoleDefault[];
    this.#takeDatabases(databases);
  }

  /**
   * The roles, the databases and the served database's name (ALTER
   * DATABASE … RENAME) read again in one Query, for the cluster's own SQL
   * that may have changed any of them.
   */
  async refreshAll(): Promise<void> {
    const host = this.#host;
    host.catalogsChanging();
    await host.asBootstrapSuperuser();
    const sets = await host.queries([...ROLES_SQL, DATABASES_SQL, DATABASE_NAME_SQL]);
    this.#takeRoles(sets.slice(0, ROLES_SQL.length));
    this.#takeDatabases(sets[ROLES_SQL.length] ?? []);
    this.#database = sets[ROLES_SQL.length + 1]?.[0]?.[0] ?? this.#database;
  }

  /** ROLES_SQL's result sets: the role defaults, the roles, their inheriting grants. */
  #takeRoles(sets: ReadonlyArray<Array<Array<string | null>>>): void {
    const [defaults = [], rows = [], grants = []] = sets;
    this.#roleDefaults = defaults as RoleDefault[];
    this.#roles = new Map(
      rows.map(([name, sup, login, secret, oid, createdb, limit, validUntil]) => [name ?? "", {
        name: name ?? "",
        superuser: sup === "t",
        createdb: createdb === "t",
        canLogin: login === "t",
        secret: secret ?? null,
        oid: Number(oid),
        connLimit: limit == null ? -1 : Number(limit),
        validUntil: validUntil == null ? null : Number(validUntil),
      }]),
    );
    this.#roleGraph = new RoleGraph(
      this.#roles.values(),
      grants.map(([member, role]) => [Number(member), Number(role)] as const),
    );
  }

  #takeDatabases(rows: ReadonlyArray<Array<string | null>>): void {
    this.#databases = new Set(rows.map((r) => r[0] ?? ""));
    this.connectRestricted = rows.some((r) => r[1] === "t");
    const served = rows.find((r) => r[2] === "t");
    this.servedAcl = served?.[3] ?? null;
    this.servedComment = served?.[4] ?? null;
    this.databasesShown = new Map(
      rows.flatMap((r) =>
        r[0] == null ? [] : [[r[0], {
          owner: r[5] ?? null,
          items: r[6] == null ? null : JSON.parse(r[6]) as string[],
        }]]
      ),
    );
    this.databaseOids = new Map(
      rows.flatMap((r) => (r[0] == null || r[7] == null ? [] : [[r[0], Number(r[7])]])),
    );
  }
}
