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
 * app.tenant = '7'` and COMMIT it reads `''`; a name a function sets counts
 * as the session's too (watchFunctionPlaceholders). A session's own
 * `''` (SET to it, or back at it after its RESET or SET LOCAL) stays in its
 * settings map (parseSnapshot, settings.ts), so the next session with
 * other settings gets the name RESET to PGC_S_DEFAULT and reads it as
 * never seen.
 */

import { argDatum, argIsNull, textOfDatum, wrapBuiltin } from "./backends.ts";
import { GUC_FLAGS, GUC_SOURCE } from "./guard.ts";
import { customSettingNames } from "./sqlscan.ts";
import { onUtilityStatement, parsedStatement, type WasmTools } from "./wasmtools.ts";

/** pg_proc OID of current_setting(text, bool) (show_config_by_name_missing_ok). */
const F_CURRENT_SETTING_MISSING_OK = 3294;
/** pg_proc OID of current_setting(text) (show_config_by_name). */
const F_CURRENT_SETTING = 2077;
/** pg_proc OID of set_config(text, text, bool) (set_config_by_name). */
const F_SET_CONFIG = 2078;
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
  #runningPid: number | null = null;
  /** The names set inside functions during this exec (watchFunctionPlaceholders). */
  #setInExec: string[] | null = null;
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
    this.#runningPid = pid;
    this.#running = pid === null ? undefined : this.#made.get(pid);
  }

  /**
   * The running session's statement set or reset `name` where its text
   * does not show it (a function body): the session made it, and the exec
   * reports it (takeSetInExec).
   */
  setByRunning(name: string): void {
    const pid = this.#runningPid;
    if (pid === null) return;
    const lower = name.toLowerCase();
    if (this.#running?.has(lower) !== true) {
      this.note(pid, [lower]);
      this.#running = this.#made.get(pid);
    }
    (this.#setInExec ??= []).push(lower);
  }

  /** The names setByRunning saw since the last call, or null. */
  takeSetInExec(): readonly string[] | null {
    const names = this.#setInExec;
    this.#setInExec = null;
    return names === null ? null : [...new Set(names)];
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

/** ProcessUtility's context for a statement the client sent itself (tcop/utility.h). */
const PROCESS_UTILITY_TOPLEVEL = 0;

/**
 * Sees a session set a custom setting inside a function, where the text
 * scan of its input (naming.ts) cannot: set_config() called anywhere
 * (its builtin wrapped, the name as called), and SET or RESET run by a
 * function (a ProcessUtility hook that reads the statement's text unless
 * the client sent it itself). Each name goes to setByRunning: the exec
 * then reports it (GucChange.custom), so that the session's settings map
 * is read back with it and the next session's switch resets or restores
 * it. Unseen, a `set_config('app.tenant', …)` in a PL/pgSQL function was
 * read by every later session, and lost by its own once another ran.
 */
export function watchFunctionPlaceholders(
  tools: WasmTools,
  placeholders: SessionPlaceholders,
): void {
  wrapBuiltin(tools, F_SET_CONFIG, (fcinfo, original) => {
    // set_config is not strict: a NULL name is the builtin's error to raise.
    if (placeholders.sessionRunning && !argIsNull(tools, fcinfo, 0)) {
      const text = textOfDatum(tools, argDatum(tools, fcinfo, 0));
      if (text.includes(".")) placeholders.setByRunning(text);
    }
    return original(fcinfo);
  });
  const ex = tools.ex as typeof tools.ex & {
    ProcessUtility_hook: WebAssembly.Global;
    standard_ProcessUtility: (...args: number[]) => void;
  };
  const hookAddress = ex.ProcessUtility_hook.value as number;
  const previous = tools.view().getUint32(hookAddress, true);
  const next = previous === 0
    ? ex.standard_ProcessUtility
    : ex.__indirect_function_table.get(previous) as (...args: number[]) => void;
  const hook = (
    pstmt: number,
    queryString: number,
    readOnlyTree: number,
    context: number,
    params: number,
    queryEnv: number,
    dest: number,
    qc: number,
  ): void => {
    if (placeholders.sessionRunning && context !== PROCESS_UTILITY_TOPLEVEL && queryString !== 0) {
      const text = tools.readCString(queryString);
      if (/set/i.test(text)) {
        for (const name of customSettingNames(text)) placeholders.setByRunning(name);
      }
    }
    next(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
  };
  tools.view().setUint32(hookAddress, tools.addFunction(hook, { params: 8, result: false }), true);
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
