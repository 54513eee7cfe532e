/**
 * When a settings switch fails, and the settings a new session starts with.
 *
 * The engine moves the backend from one session's settings to another's
 * in one Query (settings.ts `switchSql`); one Query is one implicit
 * transaction, so when a statement of it fails nothing of it took effect.
 * `recoverSwitch` then goes step by step (`switchSteps`), each statement on
 * its own, puts a parameter's reset value where RESET is refused, and reads
 * back what the backend really carries, so the engine never believes a map
 * the backend does not hold. What could not be applied concerns the session
 * being switched to and no other: it gets a WARNING per setting, or, when
 * its identity or a setting of its startup packet cannot be applied, an
 * error (which ends it, as PostgreSQL refuses such a login).
 *
 * Also here: the ALTER ROLE/DATABASE … SET values (pg_db_role_setting) a
 * PostgreSQL backend applies at login; PGlite applied them once, for its
 * own login, so pgts puts them in each new session's startup map.
 *
 * Runs no SQL of its own accord: the engine passes `run` and `snapshot`.
 */

import { ereport, ERRCODE, PgError } from "../../core/elog.ts";
import type { RoleInfo } from "../../core/engine/types.ts";
import { type SettingsMap, type SwitchOptions, switchSteps, valueStep } from "./settings.ts";
import { firstError, quoteLiteral } from "./wire.ts";

export interface RecoveredSwitch {
  /** What the backend carries now (read back from it). */
  readonly carried: Map<string, string>;
  /** For the session switched to: settings of its that could not be applied. */
  readonly warnings: PgError[];
  /** Set when the session switched to cannot run at all (identity, startup setting). */
  readonly fatal: PgError | null;
  /**
   * The role's or database's defaults of its startup map that did not hold,
   * each with the value the backend has instead (undefined: the reset
   * value), as the session must from now on (settings.ts withValues).
   */
  readonly dropped: Array<readonly [string, string | undefined]>;
}

/** Applies `from` → `to` one statement at a time; see the module header. */
export async function recoverSwitch(options: {
  run: (sql: string) => Promise<Uint8Array>;
  from: SettingsMap;
  to: SettingsMap;
  switch: SwitchOptions;
  snapshot: () => Promise<Map<string, string>>;
  /** The pid of the session switched to, for the server log. */
  pid: number;
  /** `to` is a startup map the backend never carried: a failure is the login's. */
  startup: boolean;
  /**
   * Whether setting `name` of that startup map is one its login's startup
   * packet asked for. A role's or database's default (pg_db_role_setting)
   * that fails is a WARNING instead, as PostgreSQL applies those at login.
   */
  fromPacket: (name: string) => boolean;
  /**
   * The values that defaults of lower precedence give setting `name` under
   * the one `to` has, highest first (lowerDefaults): when that one fails,
   * each is tried in turn, then `base`'s value.
   */
  lower: (name: string) => readonly string[];
  /** The engine's defaults the startup map was built on. */
  base: SettingsMap;
}): Promise<RecoveredSwitch> {
  const warnings: PgError[] = [];
  const dropped: Array<readonly [string, string | undefined]> = [];
  let fatal: PgError | null = null;
  for (const step of switchSteps(options.from, options.to, options.switch)) {
    let err = firstError(await options.run(step.sql));
    if (err !== null && step.kind === "reset") {
      // GUC_NO_RESET and the like: the reset value, set instead.
      err = firstError(
        await options.run(
          "select pg_catalog.set_config(name, reset_val, false) from pg_catalog.pg_settings" +
            ` where lower(name) = ${quoteLiteral(step.name)}`,
        ),
      );
    }
    if (err === null) continue;
    logFailure(options.pid, step.sql, err);
    // A default of its role or database (ALTER ROLE … SET) that no longer
    // holds (the text search configuration it names was dropped, a role it
    // may no longer become): PostgreSQL warns and the login goes on with
    // what the next source gives (ALTER DATABASE … SET under ALTER ROLE …
    // SET, then the server's). The backend may still have the last
    // session's value, or its reset value (resetvalues.ts): that is put on.
    const roleDefault = options.startup && step.kind !== "reset" &&
      step.name !== "session_authorization" && !options.fromPacket(step.name);
    if (roleDefault) {
      warnings.push(asWarning(err));
      dropped.push([step.name, await fallBack(step.name, options, warnings)]);
      continue;
    }
    if (step.kind === "identity" || (step.kind === "set" && options.startup)) {
      // Never run a session's input as anyone else, and refuse a bad
      // startup setting as PostgreSQL refuses the login.
      fatal = new PgError(err.code, err.message, fieldsOf(err));
      break;
    }
    warnings.push(
      new PgError(
        ERRCODE.WARNING,
        step.kind === "reset"
          ? `parameter "${step.name}" could not be reset for this session`
          : `parameter "${step.name}" of this session could not be restored`,
        {
          severity: "WARNING",
          detail: `${err.message} (SQLSTATE ${err.code})`,
          hint:
            "pgts runs every session on one PGlite backend and puts each session's settings back when it runs; this session continues with the value the backend has.",
        },
      ),
    );
  }
  return { carried: await options.snapshot(), warnings, fatal, dropped };
}

type EngineError = NonNullable<ReturnType<typeof firstError>>;

function fieldsOf(err: EngineError): { detail?: string; hint?: string } {
  return {
    ...(err.detail !== undefined ? { detail: err.detail } : {}),
    ...(err.hint !== undefined ? { hint: err.hint } : {}),
  };
}

/** A default's failure as PostgreSQL reports it at login (ApplySetting's WARNING). */
function asWarning(err: EngineError): PgError {
  return new PgError(err.code, err.message, { ...fieldsOf(err), severity: "WARNING" });
}

function logFailure(pid: number, sql: string, err: EngineError): void {
  ereport("LOG", `settings switch for process ${pid} failed at: ${sql}`, {
    category: "engine",
    detail: `${err.message} (SQLSTATE ${err.code})`,
  });
}

/**
 * Puts on what setting `name` has when its default failed: the first of
 * the lower defaults that holds (a WARNING for each that does not, as
 * PostgreSQL's), else `base`'s value or the reset value. Returns it.
 */
async function fallBack(
  name: string,
  options: {
    run: (sql: string) => Promise<Uint8Array>;
    lower: (name: string) => readonly string[];
    base: SettingsMap;
    pid: number;
  },
  warnings: PgError[],
): Promise<string | undefined> {
  for (const value of options.lower(name)) {
    const err = firstError(await options.run(valueStep(name, value).sql));
    if (err === null) return value;
    warnings.push(asWarning(err));
  }
  const value = options.base.get(name);
  const step = valueStep(name, value);
  const err = firstError(await options.run(step.sql));
  if (err !== null) logFailure(options.pid, step.sql, err);
  return value;
}

/** One pg_db_role_setting entry: role name ('' for all roles), precedence, "name=value". */
export type RoleDefault = [string, string, string];

/**
 * pg_db_role_setting for the current database, lowest precedence first
 * (PostgreSQL: database and role < database < role < role in database), with
 * the parameter's context ('' for a custom one).
 */
export const ROLE_DEFAULTS_SQL = "select coalesce(r.rolname, ''), x.cfg, coalesce(p.context, '')" +
  " from pg_catalog.pg_db_role_setting s" +
  " left join pg_catalog.pg_roles r on r.oid = s.setrole" +
  " cross join lateral pg_catalog.unnest(s.setconfig) with ordinality x(cfg, n)" +
  " left join pg_catalog.pg_settings p on lower(p.name) = lower(split_part(x.cfg, '=', 1))" +
  " where s.setdatabase in (0, (select oid from pg_catalog.pg_database" +
  " where datname = pg_catalog.current_database()))" +
  // A dropped role's rows of this database (DROP ROLE ran on another engine): its, not everyone's.
  " and (s.setrole = 0 or r.oid is not null)" +
  " order by (s.setrole <> 0)::int * 2 + (s.setdatabase <> 0)::int, x.n";

/**
 * The values `defaults` (roleDefaults, lowest precedence first) give setting
 * `name` below `value`, the one that failed: highest precedence first.
 */
export function lowerDefaults(
  defaults: ReadonlyArray<readonly [string, string]>,
  name: string,
  value: string | undefined,
): string[] {
  const values = defaults.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
  const at = value === undefined ? -1 : values.lastIndexOf(value);
  return values.slice(0, Math.max(at, 0)).reverse();
}

/**
 * The (name, value) pairs a login of `role` gets from pg_db_role_setting,
 * in the order to apply them. Superuser-only parameters are left out for an
 * ordinary role: pgts applies startup settings as the connecting role, which
 * may not set them (PostgreSQL applies these with the authority of the
 * superuser who stored them).
 */
export function roleDefaults(
  rows: readonly RoleDefault[],
  role: RoleInfo | undefined,
): Array<[string, string]> {
  if (role === undefined) return [];
  const out: Array<[string, string]> = [];
  for (const [who, cfg, context] of rows) {
    if (who !== "" && who !== role.name) continue;
    if (context !== "user" && context !== "" && !role.superuser) continue;
    const eq = cfg.indexOf("=");
    if (eq > 0) out.push([cfg.slice(0, eq), cfg.slice(eq + 1)]);
  }
  return out;
}
