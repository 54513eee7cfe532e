/**
 * The settings the one backend carries, and the switch between sessions'
 * maps (the engine's side of settings.ts; switch.ts recovers a failed
 * switch).
 *
 * It owns what the backend carries now and for whom, the parameters that
 * are not session state, the bootstrap superuser the engine's own work
 * runs as, and the caches that make a switch between sessions started
 * alike an identity check: startup maps by user and parameters, those
 * maps as the backend spells them, their keys and ParameterStatus lists.
 *
 * It runs SQL only while the engine is held, through its host. It must
 * never let a map carry a session to a role it may not be, and never
 * believe a map the backend does not hold: after a failed switch it reads
 * back what the backend carries.
 */

import { ERRCODE, PgError } from "../../core/elog.ts";
import type { PgliteSession } from "./session.ts";
import {
  namesEngineChecked,
  packetSettingNames,
  parseSnapshot,
  type SettingsMap,
  snapshotSql,
  startupSettings,
  switchSql,
  withValues,
} from "./settings.ts";
import { lowerDefaults, recoverSwitch } from "./switch.ts";
import { fe, firstError, quoteIdent } from "./wire.ts";

/** What the switch needs of the engine; called only while the engine is held. */
export interface SettingsHost {
  /** Runs bytes as pgts's own work: the whole answer. */
  runRaw(bytes: Uint8Array): Promise<Uint8Array>;
  /** The rows of `sql`; throws its first error. */
  query(sql: string): Promise<Array<Array<string | null>>>;
  /** Ends what `s` left open; false when the backend could not be brought back to idle. */
  abortOpenWork(s: PgliteSession): Promise<boolean>;
  markBroken(reason: string): void;
  /** Whether role `name` is a superuser, as the engine last read pg_authid. */
  isSuperuser(name: string): boolean;
}

/** The parameters that are not session state (GUC_NO_RESET: they follow the transaction). */
const NO_RESET_SQL = "select lower(name) from pg_catalog.pg_settings" +
  " where 'NO_RESET' = any(pg_catalog.pg_settings_get_flags(name))";

/**
 * What the engine's own SQL runs with, whatever the last session set: the
 * backend keeps a session's settings until the next session's are put on,
 * and the engine's SQL runs as the bootstrap superuser in between. That SQL
 * names its tables and functions with pg_catalog but not its operators
 * (`oid >= 16384`), so a session's search_path naming a schema of its own
 * first had that schema's `=` run as the superuser; and its literals are
 * quoted for standard_conforming_strings = on.
 */
const OWN_WORK_SETTINGS: ReadonlyArray<readonly [string, string]> = [
  ["search_path", "pg_catalog, pg_temp"],
  ["standard_conforming_strings", "on"],
];

/** Distinct startup maps remembered at most (a bound, not a tuning knob). */
const STARTUP_SPELLED_MAX = 256;

export class BackendSettings {
  readonly #host: SettingsHost;
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
  /** The settings each startup map's packet named itself (packetSettingNames); the rest are defaults. */
  #packetNames = new WeakMap<SettingsMap, ReadonlySet<string>>();
  /** The role's and database's defaults each startup map was built with (roleDefaults). */
  #defaultsOf = new WeakMap<SettingsMap, ReadonlyArray<readonly [string, string]>>();
  /** Startup maps whose packet names a setting only the engine checks (namesEngineChecked). */
  #checkedAtLogin = new WeakSet<SettingsMap>();

  constructor(host: SettingsHost) {
    this.#host = host;
  }

  /**
   * What init reads, as statements of one Query (the engine batches them
   * with its other start-up reads): the parameters that are not session
   * state, the baseline without them, the bootstrap superuser; then the
   * backend's identity made the bootstrap superuser's (asBootstrapSuperuser).
   */
  static readonly INIT_SQL: readonly string[] = [
    NO_RESET_SQL,
    snapshotSql([], { query: NO_RESET_SQL }),
    "select session_user",
    // asBootstrapSuperuser's SET, in the same Query: the name is read there.
    "select pg_catalog.set_config('session_authorization', session_user, false)",
  ];

  /** Takes INIT_SQL's result sets: the baseline and the bootstrap superuser. Called once, before any session. */
  init(sets: ReadonlyArray<Array<Array<string | null>>>): void {
    const [noReset = [], baseline = [], user = []] = sets;
    this.#notSessionState = new Set(noReset.map((r) => r[0] ?? ""));
    this.#baseline = parseSnapshot(baseline);
    // Not the baseline's session_authorization: single-user PGlite leaves that ''.
    this.#superuser = user[0]?.[0] ?? this.#superuser;
    this.#current = this.#baseline;
    // OWN_WORK_SETTINGS are not put on here: the first asBootstrapSuperuser does.
    this.#noteBootstrapSuperuser([]);
  }

  /** The bootstrap superuser's name (initdb's -U). */
  get superuser(): string {
    return this.#superuser;
  }

  noteCustomSetting(name: string): void {
    this.#customNames.add(name);
  }

  /**
   * The startup map of a session of `user` with startup parameters
   * `params`; sessions started alike share one. `defaults`: the role's
   * ALTER ROLE/DATABASE … SET values (switch.ts), asked only for a new map.
   */
  startupMap(
    user: string,
    params: Readonly<Record<string, string>>,
    defaults: (user: string) => Array<[string, string]>,
  ): SettingsMap {
    const key = JSON.stringify([user, params]);
    let m = this.#startupMaps.get(key);
    if (m === undefined) {
      const stored = defaults(user);
      m = startupSettings(this.#baseline, {
        user,
        params,
        defaults: stored,
        exclude: this.#notSessionState,
        superuser: this.#host.isSuperuser(user),
      });
      if (this.#startupMaps.size >= STARTUP_SPELLED_MAX) this.#startupMaps.clear();
      this.#startupMaps.set(key, m);
      const names = packetSettingNames(params);
      this.#packetNames.set(m, names);
      this.#defaultsOf.set(m, stored);
      if (namesEngineChecked(names)) this.#checkedAtLogin.add(m);
      // Its custom settings (`-c app.tenant=7`, a role's `SET app.x`) are
      // read back as those a statement sets: else a map read back would
      // lose them, and the next session's switch would neither reset nor
      // restore them.
      for (const name of m.keys()) if (name.includes(".")) this.noteCustomSetting(name);
    }
    return m;
  }

  /**
   * Whether sessions with startup map `m` have it put on the backend at
   * login (switchTo, while the login waits), so that a value the engine
   * refuses refuses the login as in PostgreSQL: their packet names a
   * setting only the engine can check. Other logins cost no engine round trip.
   */
  checkedAtLogin(m: SettingsMap): boolean {
    return this.#checkedAtLogin.has(m);
  }

  /** A startup map as the backend spells it, when an earlier session with it read it back. */
  spelled(startup: SettingsMap): SettingsMap | undefined {
    return this.#startupSpelled.get(this.#keyOf(startup));
  }

  /** The catalogs are read again: role defaults may differ, so startup maps are made anew. */
  forgetStartupMaps(): void {
    this.#startupSpelled.clear();
    this.#startupMaps.clear();
  }

  /** A session ended: the backend's settings are no one's. */
  forget(s: PgliteSession): void {
    if (this.#appliedFor === s) this.#appliedFor = null;
  }

  /**
   * True when the backend carries `s`'s settings already: prepareFor has
   * nothing to do. Sessions started alike share one map (#startupMaps,
   * #startupSpelled), so for them this is an identity check.
   */
  carries(s: PgliteSession): boolean {
    return (this.#appliedFor === s && this.#appliedVersion === s.settingsVersion) ||
      this.#current === s.settings;
  }

  /**
   * Puts `to` on the backend for `s`. Returns warnings for `s` about
   * settings that could not be put back; throws (for `s` alone) when its
   * identity or a startup setting cannot be applied. Either way it knows
   * what the backend carries.
   */
  async switchTo(s: PgliteSession, to: SettingsMap): Promise<PgError[]> {
    const host = this.#host;
    // The switch is pgts's own work, which the identity guard lets become
    // anyone: a map must never carry a session to a role it may not be.
    const auth = to.get("session_authorization");
    if (auth !== undefined && auth !== s.user && !host.isSuperuser(s.user)) {
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
        failed = firstError(await host.runRaw(fe.query(sql))) !== null;
      } catch (e) {
        // PGlite itself threw: roll back, then learn what the backend carries.
        this.#appliedFor = null;
        if (!(await host.abortOpenWork(s))) {
          host.markBroken("could not roll back a settings switch");
        } else this.#current = await this.#snapshot().catch(() => this.#current);
        throw e;
      }
    }
    if (failed) {
      // Nothing of the one-Query switch took effect: go step by step, and
      // learn what the backend really carries.
      const r = await recoverSwitch({
        run: (q) => host.runRaw(fe.query(q)),
        from: this.#current,
        to,
        switch: how,
        snapshot: () => this.#snapshot(),
        pid: s.pid,
        startup: to === s.startupSettings,
        fromPacket: (name) => this.#packetNames.get(to)?.has(name) ?? true,
        lower: (name) => lowerDefaults(this.#defaultsOf.get(to) ?? [], name, to.get(name)),
        base: this.#baseline,
      });
      this.#current = r.carried;
      this.#appliedFor = null;
      if (r.fatal !== null) throw r.fatal;
      if (r.dropped.length > 0 && to === s.startupSettings) this.#dropDefaults(s, r.dropped);
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

  /**
   * `s`'s startup map with what its role's or database's defaults that did
   * not hold fell back to (`dropped`): RESET, RESET ALL and DISCARD ALL give
   * that then, as in PostgreSQL's session, which never took those values.
   * Sessions started alike keep the shared map: each login tries, and warns.
   */
  #dropDefaults(
    s: PgliteSession,
    dropped: ReadonlyArray<readonly [string, string | undefined]>,
  ): void {
    const from = s.startupSettings;
    const m = withValues(from, dropped);
    const packet = this.#packetNames.get(from);
    if (packet !== undefined) this.#packetNames.set(m, packet);
    const stored = this.#defaultsOf.get(from);
    if (stored !== undefined) this.#defaultsOf.set(m, stored);
    s.startupSettings = m;
    // Its reset values go to the backend again, with its next exec.
    s.resetValuesSent = false;
  }

  /**
   * At ReadyForQuery 'I' after an input that may have changed `s`'s
   * settings: its map is what the backend now carries (read back, or known
   * from an earlier session started alike).
   */
  async readBack(s: PgliteSession): Promise<void> {
    // A session's own custom names may read '' in its map (parseSnapshot):
    // its map is then not a startup map's spelling for others to share.
    const key = s.settingsFromStartup && s.customMade.size === 0
      ? this.#keyOf(s.startupSettings)
      : null;
    let m = key === null ? undefined : this.#startupSpelled.get(key);
    if (m === undefined) {
      m = await this.#snapshot(s.customMade);
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
    if (became !== undefined && became !== s.user && !this.#host.isSuperuser(s.user)) {
      s.terminate(
        new PgError(
          ERRCODE.INSUFFICIENT_PRIVILEGE,
          `permission denied to set session authorization "${became}"`,
          { severity: "FATAL" },
        ),
      );
    }
  }

  /**
   * Makes the backend's identity the bootstrap superuser's, with
   * OWN_WORK_SETTINGS, for the engine's own SQL (reads of pg_authid, the
   * copies of roles and databases, ALTER DATABASE … SET, temporary
   * schemas): the backend may still carry the identity and settings of the
   * session that last ran. The next owner is switched back to its own as
   * usual (#appliedFor is cleared). Only at ReadyForQuery 'I', where a SET
   * lasts.
   */
  async asBootstrapSuperuser(): Promise<void> {
    const boot = this.#superuser;
    const c = this.#current;
    if (
      c.get("session_authorization") === boot && c.get("role") === "none" &&
      OWN_WORK_SETTINGS.every(([name, value]) => c.get(name) === value)
    ) {
      return;
    }
    const sql = [
      `SET SESSION AUTHORIZATION ${quoteIdent(boot)}`,
      ...OWN_WORK_SETTINGS.map(([name, value]) => `SET ${name} = ${value}`),
    ].join("; ");
    const err = firstError(await this.#host.runRaw(fe.query(sql)));
    if (err !== null) {
      this.#current = await this.#snapshot().catch(() => this.#current);
      this.#appliedFor = null;
      throw new PgError(err.code, err.message);
    }
    this.#noteBootstrapSuperuser(OWN_WORK_SETTINGS);
  }

  /** The backend's identity was made the bootstrap superuser's, and `settings` put on. */
  #noteBootstrapSuperuser(settings: ReadonlyArray<readonly [string, string]>): void {
    const m = new Map(this.#current);
    m.set("session_authorization", this.#superuser);
    m.set("role", "none");
    for (const [name, value] of settings) m.set(name, value);
    this.#current = m;
    this.#appliedFor = null;
  }

  /** What the backend carries; `ownCustom`: the custom names of the session it carries. */
  async #snapshot(ownCustom?: ReadonlySet<string>): Promise<Map<string, string>> {
    return parseSnapshot(
      await this.#host.query(snapshotSql(this.#customNames, this.#notSessionState)),
      ownCustom,
    );
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
}

/** A startup map and the custom names a snapshot reads, as one string key. */
function settingsKey(m: SettingsMap, customNames: ReadonlySet<string>): string {
  const entries = [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([entries, [...customNames]]);
}

/**
 * What RESET gives a session back (resetvalues.ts): its startup map but
 * its identity, which RESET ALL leaves alone, and client_encoding, which
 * only UTF8 passes anyway.
 */
export function resetValuesOf(startup: SettingsMap): Array<[string, string]> {
  const values: Array<[string, string]> = [];
  for (const [name, value] of startup) {
    if (name !== "role" && name !== "session_authorization" && name !== "client_encoding") {
      values.push([name, value]);
    }
  }
  return values;
}
