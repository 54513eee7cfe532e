/**
 * A login's settings (its startup packet's parameters and `options -c`)
 * checked as PostgreSQL's process_startup_options checks them, before the
 * session starts: a parameter the engine does not know is 42704, one that
 * cannot be set at connection start is 55P02, a superuser's by another
 * role is 42501, a bad value is 22023 (PostgreSQL's messages). The caller
 * reports the error as FATAL, so the connection is refused instead of
 * failing at its first query.
 *
 * The table is the parameter table (tables.ts) restricted to what the
 * engine knows (pg_settings.ts): pgts's own parameters are not session
 * settings. Pure: no engine round trip, nothing cached per connection.
 */

import { ERRCODE, PgError } from "../elog.ts";
import { PG_SETTINGS } from "./pg_settings.ts";
import { PARAMETERS } from "./tables.ts";
import { type GucContext, type ParamDef, parseValue } from "./values.ts";

const CANT_CHANGE_RUNTIME_PARAM = "55P02";

/**
 * Settings the engine has that pg_settings does not list (PostgreSQL's
 * GUC_NO_SHOW_ALL), with their context; a startup option may name them.
 */
const UNLISTED: ReadonlyMap<string, GucContext> = new Map([
  ["role", "user"],
  ["session_authorization", "user"],
  ["seed", "user"],
  ["is_superuser", "internal"],
]);

let table: ReadonlyMap<string, ParamDef> | null = null;

/** The engine's parameters by lowercased name, as pgts defines them. */
function engineParameters(): ReadonlyMap<string, ParamDef> {
  if (table !== null) return table;
  const known = new Set(PG_SETTINGS.map((r) => r[0].toLowerCase()));
  const m = new Map<string, ParamDef>();
  for (const def of PARAMETERS) {
    const key = def.name.toLowerCase();
    if (known.has(key)) m.set(key, def);
  }
  return table = m;
}

function refuseContext(name: string, context: GucContext, superuser: boolean): PgError | null {
  switch (context) {
    case "internal":
      return new PgError(CANT_CHANGE_RUNTIME_PARAM, `parameter "${name}" cannot be changed`);
    case "postmaster":
      return new PgError(
        CANT_CHANGE_RUNTIME_PARAM,
        `parameter "${name}" cannot be changed without restarting the server`,
      );
    case "sighup":
      return new PgError(CANT_CHANGE_RUNTIME_PARAM, `parameter "${name}" cannot be changed now`);
    case "superuser-backend":
    case "superuser":
      return superuser ? null : new PgError(
        ERRCODE.INSUFFICIENT_PRIVILEGE,
        `permission denied to set parameter "${name}"`,
      );
    case "backend":
    case "user":
      return null;
    default: {
      const never: never = context;
      throw new TypeError(`Unknown context ${String(never)}`);
    }
  }
}

/**
 * Throws the error PostgreSQL would give for setting `name` to `value` at
 * connection start, by a superuser or not; returns when it may be set.
 * A custom (dotted) name is a placeholder and always may.
 */
export function checkStartupSetting(
  name: string,
  value: string,
  options: { superuser: boolean },
): void {
  const key = name.toLowerCase();
  if (key.includes(".")) return;
  const def = engineParameters().get(key);
  const context = def === undefined ? UNLISTED.get(key) : def.sessionContext ?? def.context;
  if (context === undefined) {
    throw new PgError(ERRCODE.UNDEFINED_OBJECT, `unrecognized configuration parameter "${name}"`);
  }
  const refused = refuseContext(def?.name ?? key, context, options.superuser);
  if (refused !== null) throw refused;
  if (def !== undefined) parseValue(def, value, { refuse: "session" });
}
