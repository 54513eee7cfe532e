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
 * from a file, a role or a database) and calls PostgreSQL's otherwise.
 * What differs: a session that SET the name and then RESET it reads NULL
 * here where PostgreSQL reads `''` (its placeholder was made in that
 * session).
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

export function installUnsetPlaceholdersNull(tools: WasmTools): void {
  const ex = tools.ex;
  const table = ex.__indirect_function_table;
  const slot = builtinSlot(tools, F_CURRENT_SETTING_MISSING_OK);
  const original = table.get(slot) as (fcinfo: number) => number;
  if (typeof original !== "function") throw new Error("current_setting is not a function");
  table.set(
    slot,
    wasmFunctionOf((fcinfo: number): number => {
      if (argDatum(tools, fcinfo, 1) === 0) return original(fcinfo);
      const name = tools.pallocCString(textOfDatum(tools, argDatum(tools, fcinfo, 0)));
      const record = ex.find_option(name, 0, 1, 0);
      if (record !== 0) {
        const v = tools.view();
        if (
          (v.getInt32(record + GUC_FLAGS, true) & GUC_CUSTOM_PLACEHOLDER) !== 0 &&
          v.getInt32(record + GUC_SOURCE, true) === PGC_S_DEFAULT
        ) {
          v.setUint8(fcinfo + FCINFO_ISNULL, 1);
          return 0;
        }
      }
      return original(fcinfo);
    }),
  );
}
