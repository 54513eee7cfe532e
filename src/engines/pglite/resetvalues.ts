/**
 * What RESET goes back to, per session. A PostgreSQL backend takes its
 * client's startup parameters and its role's and database's ALTER … SET
 * values as the parameters' reset values (set_config_option with source
 * PGC_S_CLIENT, PGC_S_USER…), so that RESET, RESET ALL, SET … TO DEFAULT
 * and the reset_val column of pg_settings give them back. PGlite has one
 * backend, whose reset values are the server's; pgts gives a session its
 * startup map as SET values (settings.ts), so a RESET went to the server's
 * value: asyncpg's pool, which ends every use of a connection with RESET
 * ALL, lost the search_path its `server_settings` asked for.
 *
 * So the backend's reset values are swapped per session: when the engine's
 * next exec is another session's, each parameter of the new session's map
 * is set from PGC_S_CLIENT (set_config_option makes that the reset value,
 * and the current value too unless the current one was SET), and each
 * parameter the previous session had and this one has not is set back to
 * the server's value with its own source. set_config_option refuses to
 * lower a reset value's source, so the record's `reset_source` is cleared
 * first, and a current value that was the previous session's reset value
 * is RESET to the new one. Sessions whose maps are alike (one key) cost a
 * string comparison.
 *
 * The server's values are taken when the instance opens, for every
 * parameter whose current value is its reset value then (GetConfigOption),
 * and kept up to date by reloads. Runs on the thread that runs PGlite, at
 * the start of an exec.
 */

import { PGC_POSTMASTER, setConfigOption } from "./configreload.ts";
import { eachGucRecord, GUC_NAME, GUC_RESET_SOURCE, GUC_SOURCE } from "./guard.ts";
import type { SettingFiles } from "./settingsource.ts";
import type { WasmTools } from "./wasmtools.ts";

export interface SessionResetValues {
  /** Session `pid`'s reset values, as its startup map has them; `superuser`: it logged in as one. */
  define(pid: number, values: readonly (readonly [string, string])[], superuser: boolean): void;
  /** Session `pid`'s exec runs next (null: pgts's own work, which leaves the backend as it is). */
  runAs(pid: number | null): void;
  /** The sessions `gone` takes ended (or their pid is another session's now): their values go. */
  dropSessions(gone: (pid: number) => boolean): void;
  /**
   * A reload set these parameters' server values (configreload.ts), those
   * `files` names from the file (settingsource.ts), the rest from the start
   * parameters.
   */
  reloaded(changes: readonly (readonly [string, string])[], files: SettingFiles): void;
}

/** guc.h's GucContext and GucSource values. */
const PGC_SUSET = 5;
const PGC_USERSET = 6;
const PGC_S_DEFAULT = 0;
const PGC_S_FILE = 3;
const PGC_S_ARGV = 4;
const PGC_S_CLIENT = 9;
const PGC_S_SESSION = 13;

interface ResetExports {
  GetConfigOption(name: number, missingOk: number, restrictPrivileged: number): number;
  /** eachGucRecord frees its name buffer with it. */
  free(p: number): void;
}

interface Server {
  readonly value: string;
  readonly source: number;
}

interface Defined {
  readonly values: ReadonlyMap<string, string>;
  readonly context: number;
  /** Equal for sessions whose reset values are the same. */
  readonly key: string;
}

const NONE: Defined = { values: new Map(), context: PGC_USERSET, key: "" };

/**
 * Installs the per-session reset values over the parameters `names`, or
 * returns why they cannot be (then RESET goes to the server's values).
 */
export function installSessionResetValues(
  tools: WasmTools,
  names: readonly string[],
): SessionResetValues | string {
  const ex = tools.ex as unknown as ResetExports & typeof tools.ex;
  for (const fn of ["GetConfigOption", "free"] as const) {
    if (typeof ex[fn] !== "function") return `PGlite does not export ${fn}`;
  }
  // setConfigOption throws without it; checked here, before any session.
  if (typeof (tools.ex as unknown as Record<string, unknown>)["set_config_option"] !== "function") {
    return "PGlite does not export set_config_option";
  }
  const records = new Map<string, number>();
  const server = new Map<string, Server>();
  const view = () => tools.view();
  eachGucRecord(tools, names.map((name) => name.toLowerCase()), (name, r, n) => {
    const v = view();
    const source = v.getInt32(r + GUC_SOURCE, true);
    const resetSource = v.getInt32(r + GUC_RESET_SOURCE, true);
    if (source < PGC_S_DEFAULT || source > PGC_S_ARGV || resetSource !== source) return;
    const p = ex.GetConfigOption(n, 1, 0);
    if (p === 0) return;
    records.set(name, r);
    server.set(name, { value: tools.readCString(p), source });
  });
  const check = records.get("search_path");
  if (
    check === undefined ||
    tools.readCString(view().getUint32(check + GUC_NAME, true)) !== "search_path"
  ) {
    return "PGlite's configuration records have an unknown layout";
  }
  // pgts starts PGlite with -c search_path=…: the check of the layout (a
  // value from postgresql.conf reads as the file's, settingsource.ts).
  const searchPath = server.get("search_path")?.source;
  if (searchPath !== PGC_S_ARGV && searchPath !== PGC_S_FILE) {
    return "search_path's record does not say it came from the start parameters";
  }

  const defined = new Map<number, Defined>();
  /** Parameters whose reset value is a session's now, with that value. */
  const overridden = new Map<string, string>();
  let shown = "";

  /**
   * set_config_option from `source`, the reset value's source cleared first
   * (set_config_option never lowers it itself). A current value's source is
   * never written here: PostgreSQL keeps a list of the parameters whose
   * source is not the default (set_guc_source), and RESET ALL walks it.
   */
  const set = (name: string, value: string, context: number, source: number): number => {
    view().setInt32(records.get(name)! + GUC_RESET_SOURCE, PGC_S_DEFAULT, true);
    return setConfigOption(tools, name, value, { context, source, reload: false });
  };

  /**
   * The server's reset value back. A current value that is a session's reset
   * value (from PGC_S_CLIENT) is then RESET, as the session's own RESET
   * would: the reset value and its source become the current ones
   * (set_config_option changes no current value from a source below its
   * own, and only a RESET takes a source back to the default).
   */
  const restore = (name: string): void => {
    const s = server.get(name)!;
    const client = view().getInt32(records.get(name)! + GUC_SOURCE, true) === PGC_S_CLIENT;
    set(name, s.value, PGC_POSTMASTER, s.source);
    if (client) {
      setConfigOption(tools, name, null, {
        context: PGC_POSTMASTER,
        source: PGC_S_SESSION,
        reload: false,
      });
    }
    overridden.delete(name);
  };

  return {
    define(pid, values, superuser) {
      const m = new Map<string, string>();
      for (const [name, value] of values) if (records.has(name)) m.set(name, value);
      const context = superuser ? PGC_SUSET : PGC_USERSET;
      const key = m.size === 0 ? "" : JSON.stringify([context, [...m]]);
      defined.set(pid, { values: m, context, key });
    },
    runAs(pid) {
      if (pid === null) return;
      const d = defined.get(pid) ?? NONE;
      if (d.key === shown) return;
      for (const name of [...overridden.keys()]) if (!d.values.has(name)) restore(name);
      for (const [name, value] of d.values) {
        if (overridden.get(name) === value) continue;
        // 0: refused (logged by the backend); -1: the reset value was set, the current one SET stays.
        if (set(name, value, d.context, PGC_S_CLIENT) !== 0) overridden.set(name, value);
        else restore(name);
      }
      shown = d.key;
    },
    dropSessions(gone) {
      for (const pid of defined.keys()) if (gone(pid)) defined.delete(pid);
    },
    reloaded(changes, files) {
      const fromFile = new Set(Object.keys(files).map((k) => k.toLowerCase()));
      for (const [name, value] of changes) {
        const lower = name.toLowerCase();
        const source = fromFile.has(lower) ? PGC_S_FILE : PGC_S_ARGV;
        if (server.has(lower)) server.set(lower, { value, source });
      }
    },
  };
}
