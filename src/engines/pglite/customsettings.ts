/**
 * A custom setting (`app.tenant`) that the running session has not set is
 * a name its backend never saw, as in PostgreSQL: `current_setting(name,
 * true)` answers NULL, `current_setting(name)` and `SHOW name` fail with
 * 42704 `unrecognized configuration parameter`. In the one backend, a
 * placeholder another session made stays, at its reset value `''`: an
 * application's `current_setting('app.tenant', true)::int` failed with
 * 22P02 once any other session had set it.
 *
 * The two builtins' C functions are replaced, in the function table slots
 * their fmgr entries point at, and SHOW is checked after parse analysis.
 * They answer so for a placeholder whose value comes from nowhere (its
 * source is PGC_S_DEFAULT: not SET, not from a file, a role or a database)
 * unless the running session made it itself: a statement of its own SET or
 * RESET the name (`SessionPlaceholders`, from the text scan, naming.ts);
 * PostgreSQL's backend keeps a placeholder once made, so after `SET LOCAL
 * app.tenant = '7'` and COMMIT it reads `''`. What differs: a placeholder
 * set only inside a function body (never in a statement's text) reads as
 * never seen once reset, where PostgreSQL reads `''`. A session's own
 * `''` (SET to it, or back at it after its RESET or SET LOCAL) stays in its
 * settings map (parseSnapshot, settings.ts), so the next session with
 * other settings gets the name RESET to PGC_S_DEFAULT and reads it as
 * never seen.
 */

import { argDatum, textOfDatum, wrapBuiltin } from "./backends.ts";
import { GUC_FLAGS, GUC_SOURCE } from "./guard.ts";
import { onUtilityStatement, parsedStatement, type WasmTools } from "./wasmtools.ts";

/** pg_proc OID of current_setting(text, bool) (show_config_by_name_missing_ok). */
const F_CURRENT_SETTING_MISSING_OK = 3294;
/** pg_proc OID of current_setting(text) (show_config_by_name). */
const F_CURRENT_SETTING = 2077;
/** VariableShowStmt.name, after its NodeTag. */
const SHOW_NAME = 4;
/** guc.h's GUC_CUSTOM_PLACEHOLDER, in PostgreSQL 16's numbering and later. */
const GUC_CUSTOM_PLACEHOLDER = 0x0200;
const PGC_S_DEFAULT = 0;
/** FunctionCallInfoBaseData.isnull. */
const FCINFO_ISNULL = 16;

/** Per session (pid), the custom placeholders its statements made; on the engine's thread. */
export class SessionPlaceholders {
  readonly #made = new Map<number, Set<string>>();
  #running: Set<string> | undefined = undefined;
  /** Whether a session's statement runs (not pgts's own work). */
  sessionRunning = false;

  /** Session `pid` SET or RESET these names. */
  note(pid: number, names: readonly string[]): void {
    let set = this.#made.get(pid);
    if (set === undefined) this.#made.set(pid, set = new Set());
    for (const n of names) set.add(n.toLowerCase());
  }

  /** The session running from now (null: pgts's own work). */
  runAs(pid: number | null): void {
    this.sessionRunning = pid !== null;
    this.#running = pid === null ? undefined : this.#made.get(pid);
  }

  /** Whether the running session made the placeholder `name`. */
  madeByRunning(name: string): boolean {
    return this.#running?.has(name.toLowerCase()) === true;
  }

  /** Forgets the sessions `gone` takes (they ended, or their pid is another session's now). */
  dropSessions(gone: (pid: number) => boolean): void {
    for (const pid of this.#made.keys()) if (gone(pid)) this.#made.delete(pid);
  }
}

export function installUnseenPlaceholders(
  tools: WasmTools,
  placeholders: SessionPlaceholders,
): void {
  const ex = tools.ex;
  /**
   * Whether `name` is a placeholder the running session has not seen: made
   * by another session, its value from nowhere (PGC_S_DEFAULT), and not
   * made by this one's statements. pgts's own work sees every placeholder.
   */
  const unseen = (name: string): boolean => {
    if (!placeholders.sessionRunning || !name.includes(".")) return false;
    const record = ex.find_option(tools.pallocCString(name), 0, 1, 0);
    if (record === 0) return false;
    const v = tools.view();
    return (v.getInt32(record + GUC_FLAGS, true) & GUC_CUSTOM_PLACEHOLDER) !== 0 &&
      v.getInt32(record + GUC_SOURCE, true) === PGC_S_DEFAULT &&
      !placeholders.madeByRunning(name);
  };
  const unrecognized = (name: string): never =>
    tools.raise("42704", `unrecognized configuration parameter "${name}"`) as never;
  // current_setting(name, true): NULL, as for a name never seen.
  wrapBuiltin(tools, F_CURRENT_SETTING_MISSING_OK, (fcinfo, original) => {
    if (argDatum(tools, fcinfo, 1) === 0) return original(fcinfo);
    if (unseen(textOfDatum(tools, argDatum(tools, fcinfo, 0)))) {
      tools.view().setUint8(fcinfo + FCINFO_ISNULL, 1);
      return 0;
    }
    return original(fcinfo);
  });
  // current_setting(name): PostgreSQL's 42704, as for a name never seen.
  wrapBuiltin(tools, F_CURRENT_SETTING, (fcinfo, original) => {
    const name = textOfDatum(tools, argDatum(tools, fcinfo, 0));
    if (unseen(name)) unrecognized(name);
    return original(fcinfo);
  });
  // SHOW name: the same.
  const show = parsedStatement(tools, "SHOW pgts_probe.x");
  const showTag = tools.view().getUint32(show, true);
  const nameAt = tools.view().getUint32(show + SHOW_NAME, true);
  if (nameAt === 0 || tools.readCString(nameAt) !== "pgts_probe.x") {
    throw new Error("PGlite's VariableShowStmt has an unknown layout");
  }
  onUtilityStatement(tools, (stmt) => {
    const v = tools.view();
    if (v.getUint32(stmt, true) !== showTag) return;
    const at = v.getUint32(stmt + SHOW_NAME, true);
    if (at === 0) return;
    const name = tools.readCString(at);
    if (unseen(name)) unrecognized(name);
  });
}
