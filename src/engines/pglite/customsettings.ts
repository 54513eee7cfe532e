/**
 * `current_setting(name, true)` of a custom setting (`app.tenant`) that the
 * running session has not set answers NULL, as a PostgreSQL backend that
 * never saw the name does. In the one backend, a placeholder another
 * session made stays, at its reset value `''`, so an application's
 * `current_setting('app.tenant', true)::int` (or `::json`) failed with
 * 22P02 once any other session had set it.
 *
 * The builtin's C function is replaced, in the function table slot its
 * fmgr entry points at, by one that answers NULL for a placeholder whose
 * value comes from nowhere (its source is PGC_S_DEFAULT: not SET, not
 * from a file, a role or a database) and calls PostgreSQL's otherwise,
 * unless the running session made that placeholder itself: a statement of
 * its own SET or RESET the name (`SessionPlaceholders`, from the text
 * scan, naming.ts), and PostgreSQL's backend keeps a placeholder once made,
 * so after `SET LOCAL app.tenant = '7'` and COMMIT it reads `''`. What
 * differs: a placeholder set only inside a function body (never in a
 * statement's text) and then reset reads NULL where PostgreSQL reads `''`,
 * and one another session SET to `''` reads `''` (an empty custom value is
 * not switched between sessions: settings.ts) where PostgreSQL reads NULL.
 */

import { argDatum, builtinSlot, textOfDatum, wasmFunctionOf } from "./backends.ts";
import { GUC_FLAGS, GUC_SOURCE, type WasmTools } from "./guard.ts";

/** pg_proc OID of current_setting(text, bool) (show_config_by_name_missing_ok). */
const F_CURRENT_SETTING_MISSING_OK = 3294;
/** guc.h's GUC_CUSTOM_PLACEHOLDER, in PostgreSQL 16's numbering and later. */
const GUC_CUSTOM_PLACEHOLDER = 0x0200;
const PGC_S_DEFAULT = 0;
/** FunctionCallInfoBaseData.isnull. */
const FCINFO_ISNULL = 16;

/** Per session (pid), the custom placeholders its statements made; on the engine's thread. */
export class SessionPlaceholders {
  readonly #made = new Map<number, Set<string>>();
  #running: Set<string> | undefined = undefined;

  /** Session `pid` SET or RESET these names. */
  note(pid: number, names: readonly string[]): void {
    let set = this.#made.get(pid);
    if (set === undefined) this.#made.set(pid, set = new Set());
    for (const n of names) set.add(n.toLowerCase());
  }

  /** The session running from now (null: pgts's own work). */
  runAs(pid: number | null): void {
    this.#running = pid === null ? undefined : this.#made.get(pid);
  }

  /** Whether the running session made the placeholder `name`. */
  madeByRunning(name: string): boolean {
    return this.#running?.has(name.toLowerCase()) === true;
  }

  /** Forgets every session not in `pids` (they ended). */
  keepOnly(pids: Iterable<number>): void {
    const keep = new Set(pids);
    for (const pid of this.#made.keys()) if (!keep.has(pid)) this.#made.delete(pid);
  }
}

export function installUnsetPlaceholdersNull(
  tools: WasmTools,
  placeholders: SessionPlaceholders,
): void {
  const ex = tools.ex;
  const table = ex.__indirect_function_table;
  const slot = builtinSlot(tools, F_CURRENT_SETTING_MISSING_OK);
  const original = table.get(slot) as (fcinfo: number) => number;
  if (typeof original !== "function") throw new Error("current_setting is not a function");
  table.set(
    slot,
    wasmFunctionOf((fcinfo: number): number => {
      if (argDatum(tools, fcinfo, 1) === 0) return original(fcinfo);
      const text = textOfDatum(tools, argDatum(tools, fcinfo, 0));
      const name = tools.pallocCString(text);
      const record = ex.find_option(name, 0, 1, 0);
      if (record !== 0) {
        const v = tools.view();
        if (
          (v.getInt32(record + GUC_FLAGS, true) & GUC_CUSTOM_PLACEHOLDER) !== 0 &&
          v.getInt32(record + GUC_SOURCE, true) === PGC_S_DEFAULT &&
          !placeholders.madeByRunning(text)
        ) {
          v.setUint8(fcinfo + FCINFO_ISNULL, 1);
          return 0;
        }
      }
      return original(fcinfo);
    }),
  );
}
