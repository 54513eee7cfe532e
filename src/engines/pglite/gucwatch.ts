/**
 * Which settings an exec changed, seen from inside the backend, whatever
 * spelled the change: SET, RESET, a `set_config` in a function body, a
 * function's SET clause, a ROLLBACK that undid a SET, SET ROLE.
 *
 * Every change of a parameter's value in PostgreSQL passes through the
 * parameter's assign hook (`set_config_option`, the end of a transaction or
 * subtransaction putting a value back, RESET ALL). So each parameter's
 * record gets a host function there (found with the exported
 * `find_option`) that remembers, the first time the parameter is assigned
 * during an exec, its value before (the variable still holds it while the
 * hook runs), and then calls PostgreSQL's own hook if it has one. At the
 * exec's end, only the parameters assigned are compared with their value
 * now: a function whose SET clause put search_path back on the way out
 * changed nothing. An exec that assigns nothing costs one length test.
 *
 * What it gives the engine above: that session state changed (the settings
 * map must be read back: backendsettings.ts), and, when a GUC_REPORT
 * parameter changed, the values of all of them as SHOW prints them, for
 * the ParameterStatus messages PGlite never sends (paramstatus.ts).
 *
 * Not watched: the transaction's own parameters (GUC_NO_RESET:
 * transaction_isolation and the like, which follow the transaction, not
 * the session) and custom `a.b` placeholders, which PostgreSQL creates
 * after this is installed (the text scan notes those: naming.ts).
 *
 * Runs on the thread that runs PGlite; calls only PostgreSQL functions
 * that neither allocate nor raise (find_option, GetConfigOption, a show
 * hook), and fails to install (throws) when a record does not look as
 * expected.
 */

import { REPORTED_PARAMETERS } from "./paramstatus.ts";
import { GUC_FLAGS, GUC_NAME, GUC_VARTYPE } from "./guard.ts";
import type { WasmParam, WasmTools } from "./wasmtools.ts";

/** What an exec changed of the settings. */
export interface GucChange {
  /**
   * Every GUC_REPORT parameter's value after the exec, as SHOW prints it,
   * when one of them changed (or on the first exec watched); else null.
   */
  readonly reported: ReadonlyArray<readonly [string, string]> | null;
  /** Custom settings a function of the session's set or reset (customsettings.ts), if any. */
  readonly custom?: readonly string[];
}

/** guc.h's flags. */
const GUC_NO_RESET = 0x0008;
const GUC_REPORT = 0x0040;
/** `enum config_type`: PGC_BOOL, PGC_INT, PGC_REAL, PGC_STRING, PGC_ENUM. */
const PGC_REAL = 2;
const PGC_ENUM = 4;
/**
 * Offsets of assign_hook and show_hook in config_bool, config_int,
 * config_real, config_string and config_enum (wasm32: a double is 8-byte
 * aligned), by vartype. Checked at install against parameters whose hooks
 * PostgreSQL sets.
 */
const ASSIGN_HOOK = [104, 112, 124, 104, 108] as const;
const SHOW_HOOK = [108, 116, 128, 108, 112] as const;

/** Parameters not listed in pg_settings (GUC_NO_SHOW_ALL) that are session state. */
const UNLISTED = ["role", "is_superuser", "session_authorization"];

interface GucExports {
  GetConfigOption(name: number, missingOk: number, restrictPrivileged: number): number;
}

/** The watch of one backend. */
export class GucWatch {
  readonly #tools: WasmTools;
  readonly #get: GucExports["GetConfigOption"];
  /** Per watched parameter: its name in the instance's memory, and its show hook (0: none). */
  readonly #namePtrs: number[] = [];
  readonly #showHooks: number[] = [];
  /** The watched parameters that are GUC_REPORT, and their names as ParameterStatus spells them. */
  readonly #reported: number[] = [];
  readonly #reportedNames: string[] = [];
  /** The parameters assigned during this exec (indexes), and each one's value before. */
  #assigned: number[] = [];
  #before: string[] = [];
  readonly #seen: Uint8Array;
  /** No exec watched yet: the first reports the values whatever it changed. */
  #first = true;

  /** Installs the hooks on `names` (pg_settings' list) and the parameters pg_settings does not show. */
  constructor(tools: WasmTools, names: readonly string[]) {
    this.#tools = tools;
    const get = (tools.ex as unknown as Partial<GucExports>).GetConfigOption;
    if (typeof get !== "function") throw new Error("PGlite does not export GetConfigOption");
    this.#get = get;
    const all = [...new Set([...names, ...UNLISTED, ...REPORTED_PARAMETERS])];
    this.#seen = new Uint8Array(all.length);
    const table = tools.ex.__indirect_function_table;
    const hookAt = (record: number, offsets: readonly number[], type: number) => {
      const at = offsets[type];
      if (at === undefined) throw new Error(`PGlite's parameter type ${type} is unknown`);
      return record + at;
    };
    // The layout, checked on parameters whose hooks PostgreSQL sets: a
    // wrong offset would call into the wrong slot of the table.
    for (
      const [name, offsets] of [
        ["application_name", ASSIGN_HOOK],
        ["checkpoint_completion_target", ASSIGN_HOOK],
        ["TimeZone", SHOW_HOOK],
      ] as const
    ) {
      const record = tools.ex.find_option(tools.cString(name), 0, 1, 0);
      const type = record === 0 ? -1 : tools.view().getInt32(record + GUC_VARTYPE, true);
      const index = record === 0 ? 0 : tools.view().getUint32(hookAt(record, offsets, type), true);
      if (index === 0 || typeof table.get(index) !== "function") {
        throw new Error(`PGlite's ${name} record has an unknown layout`);
      }
    }
    for (const name of all) {
      const namePtr = tools.cString(name);
      const record = tools.ex.find_option(namePtr, 0, 1, 0);
      if (record === 0) continue;
      const view = tools.view();
      const type = view.getInt32(record + GUC_VARTYPE, true);
      if (type < 0 || type > PGC_ENUM) {
        throw new Error(`PGlite's ${name} record has an unknown layout`);
      }
      const flags = view.getInt32(record + GUC_FLAGS, true);
      // guard.ts gives session_authorization GUC_NO_RESET; it is session state.
      if ((flags & GUC_NO_RESET) !== 0 && name !== "session_authorization") continue;
      const i = this.#namePtrs.length;
      this.#namePtrs.push(namePtr);
      this.#showHooks.push(view.getUint32(hookAt(record, SHOW_HOOK, type), true));
      if ((flags & GUC_REPORT) !== 0) {
        this.#reported.push(i);
        this.#reportedNames.push(tools.readCString(view.getUint32(record + GUC_NAME, true)));
      }
      const assignAt = hookAt(record, ASSIGN_HOOK, type);
      const index = view.getUint32(assignAt, true);
      const original = index === 0
        ? null
        : table.get(index) as ((value: number, extra: number) => void) | null;
      const hook = (value: number, extra: number): void => {
        if (this.#seen[i] === 0) {
          this.#seen[i] = 1;
          this.#assigned.push(i);
          this.#before.push(this.#raw(i));
        }
        original?.(value, extra);
      };
      const params: WasmParam[] = [type === PGC_REAL ? "f64" : "i32", "i32"];
      tools.view().setUint32(assignAt, tools.addFunction(hook, { params, result: false }), true);
    }
  }

  /**
   * At an exec's end: what it changed, or null when it changed no setting
   * (the common case costs a length test). Forgets the exec's assignments.
   */
  end(): GucChange | null {
    const assigned = this.#assigned;
    if (assigned.length === 0 && !this.#first) return null;
    let changed = this.#first;
    let reported = this.#first;
    for (let k = 0; k < assigned.length; k++) {
      const i = assigned[k]!;
      this.#seen[i] = 0;
      if (this.#raw(i) !== this.#before[k]) {
        changed = true;
        if (!reported && this.#reported.includes(i)) reported = true;
      }
    }
    this.#assigned = [];
    this.#before = [];
    this.#first = false;
    if (!changed) return null;
    return { reported: reported ? this.#reportedValues() : null };
  }

  /** A parameter's value as GetConfigOption gives it (no show hook): enough to see a change. */
  #raw(i: number): string {
    const p = this.#get(this.#namePtrs[i]!, 1, 0);
    return p === 0 ? "" : this.#tools.readCString(p);
  }

  /** The GUC_REPORT parameters' values as SHOW prints them (TimeZone's show hook, say). */
  #reportedValues(): Array<[string, string]> {
    const table = this.#tools.ex.__indirect_function_table;
    return this.#reported.map((i, k) => {
      const show = this.#showHooks[i]!;
      if (show === 0) return [this.#reportedNames[k]!, this.#raw(i)];
      const p = (table.get(show) as () => number)();
      return [this.#reportedNames[k]!, p === 0 ? "" : this.#tools.readCString(p)];
    });
  }
}
