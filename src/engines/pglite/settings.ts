/**
 * Session settings on a shared backend. Each session has a map of the
 * settings it changed (name lowercased → value as the server prints it):
 * startup-packet parameters, `options -c`, and what it SET since. The
 * engine's backend carries one session's map at a time; when ownership
 * moves to a session with a different map, `switchSql` moves the backend
 * from one to the other: RESET what only the old one had, set_config the
 * rest (`switchSteps` gives the same statements one by one, for the engine
 * to recover with when the one-Query switch fails). The cost is paid only
 * when two maps differ, and a map is re-read (`snapshotSql`) only after
 * input that may have changed it (naming.ts).
 *
 * role and session_authorization are always in the map: SET ROLE is session
 * state that pg_settings does not show. Custom (dotted) settings are listed
 * by name because pg_settings does not show placeholders either.
 *
 * Never touches the engine itself: it only writes SQL for the caller to run.
 */

import { ERRCODE, isPgError, PgError } from "../../core/elog.ts";
import { checkStartupSetting } from "../../core/guc/startupoptions.ts";
import { quoteIdent, quoteLiteral } from "./wire.ts";
import { CONVERTED_ENCODINGS, convertible, ENCODING_NAMES, encodingId } from "./conversions.ts";

export type SettingsMap = ReadonlyMap<string, string>;

/** Startup parameters that are not settings. */
const NOT_SETTINGS = new Set(["user", "database", "options", "replication"]);

/**
 * SQL returning (name, value) rows for a session's snapshot. `exclude`
 * lists (lowercased) parameters that are not session state: PostgreSQL's
 * GUC_NO_RESET ones (transaction_isolation, transaction_read_only,
 * transaction_deferrable) follow the transaction, and pg_settings shows
 * them with source "session" once a SET TRANSACTION touched them. It may
 * be a query giving them instead, where they are read in the same Query.
 */
export function snapshotSql(
  customNames: Iterable<string>,
  exclude: Iterable<string> | { readonly query: string } = [],
): string {
  const skip = "query" in exclude ? exclude.query : [...exclude].map(quoteLiteral).join(", ");
  let sql = "select lower(name), setting from pg_catalog.pg_settings where source = 'session'" +
    (skip === "" ? "" : ` and lower(name) not in (${skip})`) +
    " union all select 'role', pg_catalog.current_setting('role')" +
    " union all select 'session_authorization', pg_catalog.current_setting('session_authorization')";
  for (const n of customNames) {
    sql += ` union all select ${quoteLiteral(n)}, pg_catalog.current_setting(${
      quoteLiteral(n)
    }, true)`;
  }
  return sql;
}

/**
 * The rows of `snapshotSql` as a map. A custom setting reading `''` is left
 * out (a placeholder at its reset value reads so too) unless it is one of
 * `ownCustom`, the names the session itself made: its `''` is then its own,
 * and the next session with other settings has it RESET, so that there it
 * reads as never seen (customsettings.ts).
 */
export function parseSnapshot(
  rows: Array<Array<string | null>>,
  ownCustom: ReadonlySet<string> = NO_NAMES,
): Map<string, string> {
  const m = new Map<string, string>();
  for (const [name, value] of rows) {
    if (name == null || value == null) continue;
    if (name.includes(".") && value === "" && !ownCustom.has(name)) continue;
    m.set(name, value);
  }
  return m;
}

const NO_NAMES: ReadonlySet<string> = new Set();

/** RESET for a possibly dotted setting name. */
function resetSql(name: string): string {
  return `RESET ${name.split(".").map(quoteIdent).join(".")}`;
}

/** set_config of one setting for the session (not the transaction). */
function setConfigCall(name: string, value: string): string {
  return `pg_catalog.set_config(${quoteLiteral(name)}, ${quoteLiteral(value)}, false)`;
}

/** One step of a switch: a statement that can run on its own. */
export interface SwitchStep {
  readonly kind: "reset" | "identity" | "set";
  /** The setting it changes ("session_authorization" or "role" for identity steps). */
  readonly name: string;
  readonly sql: string;
}

/** How `switchSteps` sets the new session's values. */
export interface SwitchOptions {
  /** The engine's own role (the bootstrap superuser). */
  readonly superuser: string;
  /**
   * "user" (the default): as the new session's user, for a map the backend
   * never carried (a startup map: checked as at a PostgreSQL login).
   * "superuser": for a map read back from the backend, whose values the
   * session set itself, possibly before a SET SESSION AUTHORIZATION.
   */
  readonly valuesAs?: "user" | "superuser";
}

/**
 * The statements moving the backend from settings `from` to `to`, in the
 * order that lets each of them pass PostgreSQL's permission checks:
 *
 * 1. what only `from` had is RESET as the engine's superuser (a
 *    superuser-only setting that `from` set before a SET ROLE to an
 *    ordinary role could not be RESET as that role);
 * 2. `to`'s values are set, as `valuesAs` says;
 * 3. SET SESSION AUTHORIZATION to `to`'s user (before 2 when the values
 *    are set as that user; it also resets the role);
 * 4. SET ROLE.
 */
export function switchSteps(
  from: SettingsMap,
  to: SettingsMap,
  options: SwitchOptions,
): SwitchStep[] {
  const { superuser } = options;
  const asSuperuser = options.valuesAs === "superuser";
  const steps: SwitchStep[] = [];
  const fromAuth = from.get("session_authorization");
  const toAuth = to.get("session_authorization") ?? fromAuth;
  const toRole = to.get("role") ?? "none";
  let auth = fromAuth;
  let role = from.get("role") ?? "none";
  const setAuth = (user: string) => {
    steps.push({
      kind: "identity",
      name: "session_authorization",
      sql: `SET SESSION AUTHORIZATION ${quoteIdent(user)}`,
    });
    auth = user;
    role = "none";
  };
  const resets = [...from.keys()].filter((n) => !to.has(n) && !IDENTITY.has(n));
  const sets = [...to].filter(([n, v]) => !IDENTITY.has(n) && from.get(n) !== v);
  if (
    (resets.length > 0 || (asSuperuser && sets.length > 0)) &&
    (auth !== superuser || role !== "none")
  ) {
    setAuth(superuser);
  }
  for (const name of resets) steps.push({ kind: "reset", name, sql: resetSql(name) });
  if (!asSuperuser && toAuth !== undefined && toAuth !== auth) setAuth(toAuth);
  for (const [name, value] of sets) {
    steps.push({ kind: "set", name, sql: `SELECT ${setConfigCall(name, value)}` });
  }
  if (toAuth !== undefined && toAuth !== auth) setAuth(toAuth);
  if (toRole !== role) {
    steps.push({
      kind: "identity",
      name: "role",
      sql: toRole === "none" ? "SET ROLE NONE" : `SET ROLE ${quoteIdent(toRole)}`,
    });
  }
  return steps;
}

const IDENTITY = new Set(["role", "session_authorization"]);

/** The step giving setting `name` `value`, or its reset value (undefined). */
export function valueStep(name: string, value: string | undefined): SwitchStep {
  return value === undefined
    ? { kind: "reset", name, sql: resetSql(name) }
    : { kind: "set", name, sql: `SELECT ${setConfigCall(name, value)}` };
}

/** `startup` with `values` instead: each setting that value, or none (undefined). */
export function withValues(
  startup: SettingsMap,
  values: Iterable<readonly [string, string | undefined]>,
): Map<string, string> {
  const m = new Map(startup);
  for (const [name, value] of values) {
    if (value === undefined) m.delete(name);
    else m.set(name, value);
  }
  return m;
}

/**
 * `switchSteps` as one Query string (the set_config calls of step 3 in one
 * SELECT), or null when the maps are the same. One Query is one implicit
 * transaction: when any step fails, none of them took effect.
 */
export function switchSql(
  from: SettingsMap,
  to: SettingsMap,
  options: SwitchOptions,
): string | null {
  const steps = switchSteps(from, to, options);
  if (steps.length === 0) return null;
  const out: string[] = [];
  let sets: string[] = [];
  const flush = () => {
    if (sets.length > 0) out.push(`SELECT ${sets.join(", ")}`);
    sets = [];
  };
  for (const st of steps) {
    if (st.kind === "set") sets.push(st.sql.slice("SELECT ".length));
    else {
      flush();
      out.push(st.sql);
    }
  }
  flush();
  return out.join("; ");
}

/**
 * A session's first map: the engine's defaults, its user, then the startup
 * packet's settings and `options` (`-c name=value`, `--name=value`). Each
 * of the packet's settings is checked as PostgreSQL checks it at login
 * (checkStartupSetting): one that cannot be set is FATAL, before the
 * session starts.
 */
export function startupSettings(
  base: SettingsMap,
  options: {
    user: string;
    params: Readonly<Record<string, string>>;
    /** ALTER ROLE/DATABASE … SET values for this user, applied before the packet's own. */
    defaults?: ReadonlyArray<readonly [string, string]>;
    /** Parameters that are not session state (see snapshotSql); left out. */
    exclude?: ReadonlySet<string>;
    /** Whether the user is a superuser, for the superuser-only parameters of the packet. */
    superuser?: boolean;
  },
): Map<string, string> {
  const m = new Map(base);
  const put = (k: string, v: string) => {
    if (!options.exclude?.has(k)) m.set(k, v);
  };
  const check = (k: string, v: string) => {
    // client_encoding: the check below, which says why PGlite refuses it.
    if (k.toLowerCase() === "client_encoding") return;
    try {
      checkStartupSetting(k, v, { superuser: options.superuser === true });
    } catch (e) {
      if (!isPgError(e)) throw e;
      throw new PgError(e.code, e.message, { ...e.fields, severity: "FATAL" });
    }
  };
  m.set("session_authorization", options.user);
  m.set("role", "none");
  for (const [k, v] of options.defaults ?? []) put(k.toLowerCase(), v);
  // The `options` switches first, then the packet's own parameters, which
  // win over them, as in PostgreSQL (postinit.c): lib/pq sends
  // client_encoding=UTF8 beside whatever `options` says.
  const opts = options.params["options"];
  if (opts !== undefined) {
    for (const [k, v] of parseOptions(opts)) {
      const name = k.replaceAll("-", "_");
      check(name, v);
      put(name.toLowerCase(), v);
    }
  }
  for (const [k, v] of Object.entries(options.params)) {
    if (NOT_SETTINGS.has(k.toLowerCase())) continue;
    check(k, v);
    put(k.toLowerCase(), v);
  }
  const encoding = m.get("client_encoding");
  const refused = encoding === undefined ? null : unsupportedClientEncoding(encoding);
  if (refused !== null) {
    throw new PgError(refused.code, refused.message, { ...refused.fields, severity: "FATAL" });
  }
  // As PostgreSQL's check hook spells it, for SHOW and the ParameterStatus
  // (`utf-8` and `unicode` are UTF8, `eucjp` is EUC_JP).
  const id = encoding === undefined ? -1 : encodingId(encoding);
  if (id >= 0) m.set("client_encoding", ENCODING_NAMES[id]!);
  // The session starts as the role that logged in, whatever a default or
  // the packet says: the switch runs as pgts, which the identity guard
  // (guard.ts) does not check, so a "session_authorization" here would let
  // any role start as another.
  m.set("session_authorization", options.user);
  return m;
}

/**
 * The error for a client_encoding the engine cannot serve, or null: an
 * encoding conversions.ts converts (or UTF8, SQL_ASCII, which need none).
 * EUC_TW, EUC_JIS_2004, SHIFT_JIS_2004, JOHAB and MULE_INTERNAL it does
 * not: PostgreSQL's own answer when a conversion does not exist is this
 * error; a name no encoding has gets PostgreSQL's 22023.
 */
export function unsupportedClientEncoding(value: string): PgError | null {
  if (value.toLowerCase() === "default") return null;
  const id = encodingId(value);
  if (id >= 0 && convertible(id)) return null;
  const message = `invalid value for parameter "client_encoding": "${value}"`;
  if (id < 0) return new PgError(ERRCODE.INVALID_PARAMETER_VALUE, message);
  return new PgError(ERRCODE.FEATURE_NOT_SUPPORTED, message, {
    detail: `Conversion between ${ENCODING_NAMES[id]} and UTF8 is not supported.`,
    hint: CONVERTED_ENCODINGS,
  });
}

/**
 * The settings a startup packet itself names (its `options` switches and
 * its own parameters), as startupSettings keys them: what the login asked
 * for, as against its role's and database's defaults (pg_db_role_setting).
 */
export function packetSettingNames(params: Readonly<Record<string, string>>): Set<string> {
  const names = new Set<string>();
  const opts = params["options"];
  if (opts !== undefined) {
    for (const [k] of parseOptions(opts)) names.add(k.replaceAll("-", "_").toLowerCase());
  }
  for (const k of Object.keys(params)) {
    if (!NOT_SETTINGS.has(k.toLowerCase())) names.add(k.toLowerCase());
  }
  return names;
}

/**
 * Settings whose value PostgreSQL checks against the catalogs when a login
 * sets them, which checkStartupSetting cannot: a tablespace, a text search
 * configuration or a table access method that does not exist, a role the
 * user may not become. PostgreSQL refuses such a login (FATAL), so a packet
 * naming one has its settings put on the backend before the login ends.
 * Not temp_tablespaces: PostgreSQL skips a name that does not exist there.
 */
const ENGINE_CHECKED = new Set([
  "default_tablespace",
  "default_text_search_config",
  "default_table_access_method",
  "role",
]);

/** Whether a packet naming these settings (packetSettingNames) names one only the engine checks. */
export function namesEngineChecked(names: ReadonlySet<string>): boolean {
  for (const name of names) if (ENGINE_CHECKED.has(name)) return true;
  return false;
}

/** The `-c name=value` pairs of a startup `options` string (backslash escapes spaces). */
export function parseOptions(options: string): Array<[string, string]> {
  const words: string[] = [];
  let cur = "";
  let inWord = false;
  for (let i = 0; i < options.length; i++) {
    const c = options[i]!;
    if (c === "\\" && i + 1 < options.length) {
      cur += options[++i];
      inWord = true;
    } else if (c === " " || c === "\t" || c === "\n") {
      if (inWord) words.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  const out: Array<[string, string]> = [];
  for (let i = 0; i < words.length; i++) {
    let w = words[i]!;
    if (w === "-c" && i + 1 < words.length) w = words[++i]!;
    else if (w.startsWith("-c")) w = w.slice(2);
    else if (w.startsWith("--")) w = w.slice(2);
    else continue;
    const eq = w.indexOf("=");
    if (eq > 0) out.push([w.slice(0, eq), w.slice(eq + 1)]);
  }
  return out;
}

const UNITS_MS: Record<string, number> = {
  us: 0.001,
  ms: 1,
  s: 1000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** A duration setting in ms ("5s", "250", "1min"); null when it does not parse. */
export function parseDurationMs(value: string | undefined): number | null {
  if (value === undefined) return null;
  const m = /^\s*(-?\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  if (m === null) return null;
  const unit = m[2]!.toLowerCase();
  const factor = unit === "" ? 1 : UNITS_MS[unit];
  if (factor === undefined) return null;
  return Number(m[1]) * factor;
}
