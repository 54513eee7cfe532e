/**
 * Session settings on a shared backend. Each session has a map of the
 * settings it changed (name lowercased → value as the server prints it):
 * startup-packet parameters, `options -c`, and what it SET since. The
 * engine's backend carries one session's map at a time; when ownership
 * moves to a session with a different map, `switchSql` moves the backend
 * from one to the other: RESET what only the old one had, set_config the
 * rest. The cost is paid only when two maps differ, and a map is re-read
 * (`snapshotSql`) only after input that may have changed it (naming.ts).
 *
 * role and session_authorization are always in the map: SET ROLE is session
 * state that pg_settings does not show. Custom (dotted) settings are listed
 * by name because pg_settings does not show placeholders either.
 *
 * Never touches the engine itself: it only writes SQL for the caller to run.
 */

import { quoteIdent, quoteLiteral } from "./wire.ts";

export type SettingsMap = ReadonlyMap<string, string>;

/** Startup parameters that are not settings. */
const NOT_SETTINGS = new Set(["user", "database", "options", "replication"]);

/** SQL returning (name, value) rows for a session's snapshot. */
export function snapshotSql(customNames: Iterable<string>): string {
  let sql = "select lower(name), setting from pg_catalog.pg_settings where source = 'session'" +
    " union all select 'role', pg_catalog.current_setting('role')" +
    " union all select 'session_authorization', pg_catalog.current_setting('session_authorization')";
  for (const n of customNames) {
    sql += ` union all select ${quoteLiteral(n)}, pg_catalog.current_setting(${
      quoteLiteral(n)
    }, true)`;
  }
  return sql;
}

/** The rows of `snapshotSql` as a map; unset custom settings are left out. */
export function parseSnapshot(rows: Array<Array<string | null>>): Map<string, string> {
  const m = new Map<string, string>();
  for (const [name, value] of rows) {
    if (name == null || value == null) continue;
    if (name.includes(".") && value === "") continue;
    m.set(name, value);
  }
  return m;
}

/** RESET for a possibly dotted setting name. */
function resetSql(name: string): string {
  return `RESET ${name.split(".").map(quoteIdent).join(".")}`;
}

/**
 * SQL moving the backend from settings `from` to `to`, or null when they
 * are the same. session_authorization goes first (it resets the role),
 * then role, then the rest.
 */
export function switchSql(from: SettingsMap, to: SettingsMap): string | null {
  const stmts: string[] = [];
  for (const name of from.keys()) {
    if (!to.has(name) && name !== "role" && name !== "session_authorization") {
      stmts.push(resetSql(name));
    }
  }
  const sets: string[] = [];
  const set = (name: string, value: string) =>
    sets.push(`pg_catalog.set_config(${quoteLiteral(name)}, ${quoteLiteral(value)}, false)`);
  const auth = to.get("session_authorization");
  if (auth !== undefined && from.get("session_authorization") !== auth) {
    stmts.push(`SET SESSION AUTHORIZATION ${quoteIdent(auth)}`);
  }
  const role = to.get("role");
  if (
    role !== undefined &&
    (from.get("role") !== role || from.get("session_authorization") !== auth)
  ) {
    stmts.push(role === "none" ? "SET ROLE NONE" : `SET ROLE ${quoteIdent(role)}`);
  }
  for (const [name, value] of to) {
    if (name === "role" || name === "session_authorization") continue;
    if (from.get(name) !== value) set(name, value);
  }
  if (sets.length > 0) stmts.push(`SELECT ${sets.join(", ")}`);
  return stmts.length === 0 ? null : stmts.join("; ");
}

/**
 * A session's first map: the engine's defaults, its user, then the startup
 * packet's settings and `options` (`-c name=value`, `--name=value`).
 */
export function startupSettings(
  base: SettingsMap,
  options: { user: string; params: Readonly<Record<string, string>> },
): Map<string, string> {
  const m = new Map(base);
  m.set("session_authorization", options.user);
  m.set("role", "none");
  for (const [k, v] of Object.entries(options.params)) {
    if (!NOT_SETTINGS.has(k.toLowerCase())) m.set(k.toLowerCase(), v);
  }
  const opts = options.params["options"];
  if (opts !== undefined) {
    for (const [k, v] of parseOptions(opts)) m.set(k.toLowerCase().replaceAll("-", "_"), v);
  }
  return m;
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
