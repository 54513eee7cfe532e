/**
 * A reload of the server's configuration, inside the backend. PGlite's
 * Postgres reads the settings pgts passes once, as start parameters
 * (`Guc.engineSettings`); a PostgreSQL backend takes a changed
 * postgresql.conf at every SIGHUP, and every session that has not set the
 * parameter itself sees the new value (SHOW, RESET, the behaviour). Here
 * the engine child, at its SIGHUP, hands the changed values to its engines
 * with their next exec (`reloadSettings`), and they are applied before the
 * exec runs, as the configuration file's would be: with the start
 * parameters' own source, so that each becomes the parameter's reset value
 * and the current value wherever no session SET it.
 *
 * Only parameters a reload may change reach here (not postmaster ones:
 * the engine keeps what it started with, and pgts logs that a restart is
 * needed). A value the backend refuses is logged by it, not raised: this
 * runs outside any statement.
 */

import type { WasmTools } from "./wasmtools.ts";

/** guc.h's GucContext, GucSource and GucAction values, and elog.h's LOG. */
export const PGC_POSTMASTER = 1;
const PGC_SIGHUP = 2;
const PGC_S_ARGV = 4;
export const PGC_S_OVERRIDE = 10;
const GUC_ACTION_SET = 0;
const LOG = 15;

interface ConfigExports {
  set_config_option(
    name: number,
    value: number,
    context: number,
    source: number,
    action: number,
    changeVal: number,
    elevel: number,
    isReload: number,
  ): number;
  free(p: number): void;
}

/**
 * guc.c's set_config_option for `name` = `value` (a value as
 * postgresql.conf spells it; null: RESET, the reset value with its
 * source) in `context` from `source`; a refusal is
 * logged by the backend at LOG, not raised. Its result: > 0 set, 0 refused,
 * < 0 left to a source of higher priority. Throws when PGlite does not
 * export it.
 */
export function setConfigOption(
  tools: WasmTools,
  name: string,
  value: string | null,
  { context, source, reload }: { context: number; source: number; reload: boolean },
): number {
  const ex = tools.ex as unknown as ConfigExports & typeof tools.ex;
  if (typeof ex.set_config_option !== "function") {
    throw new Error("PGlite does not export set_config_option");
  }
  const n = tools.cString(name);
  const v = value === null ? 0 : tools.cString(value);
  try {
    return ex.set_config_option(n, v, context, source, GUC_ACTION_SET, 1, LOG, reload ? 1 : 0);
  } finally {
    if (v !== 0) ex.free(v);
    ex.free(n);
  }
}

/** Applies `changes` (name, value as postgresql.conf spells it) as a reload of the file would. */
export function applyConfigReload(
  tools: WasmTools,
  changes: readonly (readonly [string, string])[],
): void {
  for (const [name, value] of changes) {
    setConfigOption(tools, name, value, { context: PGC_SIGHUP, source: PGC_S_ARGV, reload: true });
  }
}
