/**
 * Engine guards: checks pgts puts inside PGlite's backend, where no spelling
 * of a statement can go around them. They are host functions placed in the
 * WebAssembly function table and reached the way PostgreSQL reaches an
 * extension's code: through a parameter's check hook, or a hook variable
 * PostgreSQL exports for extensions.
 *
 * The identity guard: PostgreSQL lets a backend change
 * `session_authorization` to another role only when the role it
 * authenticated as is a superuser. PGlite's one backend authenticated as
 * the bootstrap superuser, and pgts runs every client's session on it, so
 * left alone that check passes for everyone and any role that can log in
 * could make itself superuser — by `SET SESSION AUTHORIZATION`, `SET
 * session_authorization`, `set_config(…)` from SQL, a PL/pgSQL `EXECUTE` of
 * a built string, a function's SET clause. Every one of those spellings ends
 * in the parameter's check hook, so the guard sits there: it replaces the
 * hook in the `session_authorization` record (found with the exported
 * `find_option`) by a host function that runs the original check, then
 * refuses the change when the role asked for is not the session's own login
 * role and that role is not a superuser now (`superuser_arg`), with
 * PostgreSQL's error: 42501 `permission denied to set session authorization
 * "…"`. The paths that do not call a check hook are closed by flags
 * PostgreSQL already has: GUC_NO_RESET makes `RESET SESSION AUTHORIZATION`,
 * `SET … TO DEFAULT`, `set_config(…, NULL, …)` and function-level SET
 * clauses fail with 0A000 (the reset value of a single-user backend is no
 * one to become anyway). pgts's own work (switching the backend to a
 * session's settings) runs with no runner and passes unchecked; who runs is
 * set per exec by instance.ts on the thread that runs PGlite.
 *
 * The program guard: PGlite cannot start programs, and `COPY … FROM
 * PROGRAM` spins inside the engine for ever (no cancel reaches it), which
 * stops every session. A post_parse_analyze hook sees every statement after
 * parse analysis, however it was sent (a PL/pgSQL EXECUTE included), and
 * refuses COPY with PROGRAM before it runs: 0A000. So is COPY to or from
 * a file: the engine sees the host only at its own mount of the data
 * directory, so `COPY t TO '/tmp/t.csv'` succeeded into its in-memory file
 * system (gone at the next start) and a host file to read was "No such file".
 *
 * The tablespace guard: PGlite sees the host's files only inside the data
 * directory; every other absolute path is in its in-memory file system.
 * `CREATE TABLESPACE … LOCATION '/tmp'` succeeded there, its tables took
 * rows, and all of it was gone at the next start (`could not open file
 * "pg_tblspc/…"`), while a host directory that exists was "does not exist".
 * The same post_parse_analyze hook refuses a CREATE TABLESPACE with an
 * absolute location (0A000); in-place tablespaces (LOCATION '' with
 * allow_in_place_tablespaces), which live in the data directory, and
 * PostgreSQL's own error for a relative path are left as they are.
 *
 * The subscription guard: the engine's libpqwalreceiver cannot be loaded,
 * and after one failed load (CREATE SUBSCRIPTION's) every later library load
 * failed, `CREATE EXTENSION hstore` included, for every session until a
 * restart. The same hook refuses CREATE SUBSCRIPTION and a LOAD of that
 * library (0A000).
 *
 * The vacuum delay guard: a VACUUM or ANALYZE that naps for
 * vacuum_cost_delay then checks that the postmaster is alive through a pipe
 * PGlite does not have; the error ended the backend every session shares
 * (any table owner could do it). The parameter gets a check hook that
 * refuses any value but 0 (0A000), however it is set.
 *
 * The exit_on_error guard: with exit_on_error on, PostgreSQL turns any
 * error into FATAL, which in PGlite ends the one backend every session
 * shares (a crash of the cluster, for a division by zero). The parameter
 * has no check hook; the guard gives it one that refuses on (0A000), so a
 * session's SET, set_config or function SET clause cannot set it; the
 * server's configuration and startup options refuse it earlier
 * (src/core/guc/tables_postgres.ts).
 *
 * The guards must never let a check through while a session's exec runs as
 * someone else, and must fail to open (throw) rather than run unguarded when
 * PGlite's records do not look as expected.
 */

import { onUtilityStatement, parsedStatement, type WasmTools } from "./wasmtools.ts";

/** PostgreSQL's GUC flag that refuses RESET and function-level SET (guc.h). */
const GUC_NO_RESET = 0x0008;
/** PGC_BOOL, PGC_INT and PGC_STRING in `enum config_type`. */
const PGC_BOOL = 0;
const PGC_INT = 1;
const PGC_STRING = 3;
/** PGC_S_TEST: a value checked for ALTER ROLE/DATABASE … SET or CREATE FUNCTION, not applied. */
const PGC_S_TEST = 12;

/**
 * Offsets in wasm32 `struct config_generic` (utils/guc_tables.h), for every
 * module that reads a parameter's record (gucwatch.ts, resetvalues.ts,
 * customsettings.ts).
 */
export const GUC_NAME = 0;
export const GUC_FLAGS = 20;
export const GUC_VARTYPE = 24;
export const GUC_SOURCE = 32;
export const GUC_RESET_SOURCE = 36;
/** `nondef_link`: the record's node in guc.c's list of parameters whose source is not the default. */
export const GUC_NONDEF_LINK = 64;
export const GUC_SOURCEFILE = 84;
export const GUC_SOURCELINE = 88;

/** Longer than any parameter's name. */
const GUC_NAME_BUFFER = 128;

/**
 * Calls `each` for every one of `names` that has a configuration record
 * (guc.c's find_option; no placeholder is made), with the record and the
 * name as a C string in the instance's memory, valid during the call. The
 * names go through one buffer: this runs at every engine start.
 */
export function eachGucRecord(
  tools: WasmTools,
  names: Iterable<string>,
  each: (name: string, record: number, cName: number) => void,
): void {
  const ex = tools.ex as typeof tools.ex & { free(p: number): void };
  const encoder = new TextEncoder();
  const n = ex.malloc(GUC_NAME_BUFFER);
  try {
    for (const name of names) {
      const heap = new Uint8Array(tools.view().buffer, n, GUC_NAME_BUFFER);
      const { read, written } = encoder.encodeInto(name, heap.subarray(0, GUC_NAME_BUFFER - 1));
      if (read !== name.length) continue;
      heap[written] = 0;
      const r = ex.find_option(n, 0, 1, 0);
      if (r !== 0) each(name, r, n);
    }
  } finally {
    ex.free(n);
  }
}

/**
 * Offsets in wasm32 structures (utils/guc_tables.h, nodes/parsenodes.h,
 * nodes/pg_list.h). Each is checked against a record PostgreSQL made when
 * the guard is installed.
 */
const GUC_STRING_CHECK_HOOK = 100;
const COPY_IS_PROGRAM = 17;
const COPY_FILENAME = 20;
const TABLESPACE_NAME = 4;
const TABLESPACE_LOCATION = 12;
/** LoadStmt.filename. */
const LOAD_FILENAME = 4;

export interface IdentityGuard {
  /**
   * The login role (OID) of the session whose exec runs next, or null for
   * pgts's own work.
   */
  runAs(roleOid: number | null): void;
}

/** config_real's boot_val, min, max and check_hook (a double pointer, then doubles at 8-byte alignment). */
const GUC_REAL_BOOT = 96;
const GUC_REAL_MIN = 104;
const GUC_REAL_MAX = 112;
const GUC_REAL_CHECK_HOOK = 120;
/** PGC_REAL in `enum config_type`. */
const PGC_REAL = 2;

/** Installs every guard on an open PGlite instance (after its backend started). */
export function installEngineGuards(tools: WasmTools): IdentityGuard {
  installProgramGuard(tools);
  installExitOnErrorGuard(tools);
  installVacuumDelayGuard(tools);
  return installIdentityGuard(tools);
}

/**
 * Gives parameter `name`, whose record has no check hook of its own (at
 * `hookAt`, by its type), one that refuses with 0A000 `unsupported value
 * for parameter …` every value `refused` spells (null: allowed). `layout`
 * checks the rest of the record against what PostgreSQL made.
 */
function installRefusingCheckHook(tools: WasmTools, spec: {
  readonly name: string;
  readonly vartype: number;
  readonly hookAt: number;
  readonly layout?: (view: DataView, record: number) => boolean;
  readonly refused: (newval: number) => string | null;
  readonly hint: string;
}): void {
  const { name } = spec;
  const record = tools.ex.find_option(tools.cString(name), 0, 1, 0);
  const view = tools.view();
  if (
    record === 0 || tools.readCString(view.getUint32(record + GUC_NAME, true)) !== name ||
    view.getInt32(record + GUC_VARTYPE, true) !== spec.vartype ||
    view.getUint32(record + spec.hookAt, true) !== 0 ||
    !(spec.layout?.(view, record) ?? true)
  ) {
    throw new Error(`PGlite's ${name} record has an unknown layout`);
  }
  const hook = (newval: number): number => {
    const value = spec.refused(newval);
    if (value === null) return 1;
    tools.raise("0A000", `unsupported value for parameter "${name}": "${value}"`, undefined, {
      hint: spec.hint,
    });
    return 0;
  };
  view.setUint32(
    record + spec.hookAt,
    tools.addFunction(hook, { params: 3, result: true }),
    true,
  );
}

/**
 * vacuum_cost_delay's check hook: only 0 is allowed. A VACUUM or ANALYZE
 * that naps (vacuum_delay_point) then asks whether the postmaster is alive
 * through a pipe PGlite does not have: the error that follows ended the
 * backend every session shares. A nap would hold every session anyway.
 * (tables_postgres.ts refuses it in the server's configuration.)
 */
function installVacuumDelayGuard(tools: WasmTools): void {
  installRefusingCheckHook(tools, {
    name: "vacuum_cost_delay",
    vartype: PGC_REAL,
    hookAt: GUC_REAL_CHECK_HOOK,
    layout: (view, record) =>
      view.getFloat64(record + GUC_REAL_BOOT, true) === 0 &&
      view.getFloat64(record + GUC_REAL_MIN, true) === 0 &&
      view.getFloat64(record + GUC_REAL_MAX, true) === 100,
    refused: (newval) => {
      const value = tools.view().getFloat64(newval, true);
      return value === 0 ? null : `${value}ms`;
    },
    hint:
      "The engine's one backend serves every session: a cost-based vacuum delay would hold them all while it naps, and its nap ends the backend.",
  });
}

/**
 * exit_on_error's check hook (config_bool's, at the offset of
 * config_string's: a pointer, then a bool padded to four bytes): on is
 * refused.
 */
function installExitOnErrorGuard(tools: WasmTools): void {
  installRefusingCheckHook(tools, {
    name: "exit_on_error",
    vartype: PGC_BOOL,
    hookAt: GUC_STRING_CHECK_HOOK,
    refused: (newval) => tools.view().getUint8(newval) !== 0 ? "on" : null,
    hint:
      "Every session shares the engine's one backend: an error ending it would end every session.",
  });
}

type StringCheckHook = (newval: number, extra: number, source: number) => number;

/** wasm32 `struct config_int`: variable, boot_val, min, max, check_hook after config_generic. */
export const GUC_INT_VARIABLE = 92;
const GUC_INT_BOOT = 96;
const GUC_INT_MIN = 100;
const GUC_INT_MAX = 104;
const GUC_INT_CHECK_HOOK = 108;

export type IntCheckHook = (newval: number, extra: number, source: number) => number;

/**
 * An integer parameter's record (found with find_option, checked against
 * the boot value and bounds PostgreSQL gives it) and its check hook;
 * `replace` puts another hook in its place. Throws when the record is not
 * as expected.
 */
export function intParameter(
  tools: WasmTools,
  name: string,
  expected: { readonly boot: number; readonly min: number; readonly max: number },
): { record: number; original: IntCheckHook; replace: (hook: IntCheckHook) => void } {
  const record = tools.ex.find_option(tools.cString(name), 0, 1, 0);
  const view = tools.view();
  if (
    record === 0 || tools.readCString(view.getUint32(record + GUC_NAME, true)) !== name ||
    view.getInt32(record + GUC_VARTYPE, true) !== PGC_INT ||
    view.getInt32(record + GUC_INT_BOOT, true) !== expected.boot ||
    view.getInt32(record + GUC_INT_MIN, true) !== expected.min ||
    view.getInt32(record + GUC_INT_MAX, true) !== expected.max
  ) {
    throw new Error(`PGlite's ${name} record has an unknown layout`);
  }
  const original = tools.ex.__indirect_function_table.get(
    view.getUint32(record + GUC_INT_CHECK_HOOK, true),
  ) as IntCheckHook | null;
  if (typeof original !== "function") throw new Error(`PGlite's ${name} has no check hook`);
  const replace = (hook: IntCheckHook) =>
    tools.view().setUint32(
      record + GUC_INT_CHECK_HOOK,
      tools.addFunction(hook, { params: 3, result: true }),
      true,
    );
  return { record, original, replace };
}

/** A string parameter's record (found with find_option, checked) and its check hook. */
function stringParameter(
  tools: WasmTools,
  name: string,
): { record: number; original: StringCheckHook } {
  const ex = tools.ex;
  const record = ex.find_option(tools.cString(name), 0, 1, 0);
  if (record === 0) throw new Error(`PGlite has no ${name} parameter`);
  const view = tools.view();
  if (
    tools.readCString(view.getUint32(record + GUC_NAME, true)) !== name ||
    view.getInt32(record + GUC_VARTYPE, true) !== PGC_STRING
  ) {
    throw new Error(`PGlite's ${name} record has an unknown layout`);
  }
  const original = ex.__indirect_function_table.get(
    view.getUint32(record + GUC_STRING_CHECK_HOOK, true),
  ) as StringCheckHook | null;
  if (typeof original !== "function") {
    throw new Error(`PGlite's ${name} check hook is not a function`);
  }
  return { record, original };
}

/**
 * Wraps string parameter `name`'s check hook: PostgreSQL's own check runs
 * first (and may canonicalise the value); when it accepts, `check` sees the
 * value and may refuse it by raising (tools.raise). Every way of setting the
 * parameter goes through it.
 */
export function wrapCheckHook(
  tools: WasmTools,
  name: string,
  check: (value: string, source: number) => void,
): void {
  const { record, original } = stringParameter(tools, name);
  const hook = (newval: number, extra: number, source: number): number => {
    const ok = original(newval, extra, source);
    if (!ok) return ok;
    const p = tools.view().getUint32(newval, true);
    if (p !== 0) check(tools.readCString(p), source);
    return ok;
  };
  tools.view().setUint32(
    record + GUC_STRING_CHECK_HOOK,
    tools.addFunction(hook, { params: 3, result: true }),
    true,
  );
}

function installIdentityGuard(tools: WasmTools): IdentityGuard {
  const ex = tools.ex;
  const { record, original } = stringParameter(tools, "session_authorization");
  const view = tools.view();

  let runner: number | null = null;
  const check = (newval: number, extra: number, source: number): number => {
    const ok = original(newval, extra, source);
    if (!ok || runner === null || source === PGC_S_TEST) return ok;
    const v = tools.view();
    // role_auth_extra { Oid roleid; bool is_superuser; }, NULL for no value.
    const auth = v.getUint32(extra, true);
    if (auth === 0) return ok;
    const roleOid = v.getUint32(auth, true);
    if (roleOid === runner || ex.superuser_arg(runner) !== 0) return ok;
    const name = tools.readCString(v.getUint32(newval, true));
    tools.raise("42501", `permission denied to set session authorization "${name}"`);
    return 0;
  };

  const index = tools.addFunction(check, { params: 3, result: true });
  view.setUint32(record + GUC_STRING_CHECK_HOOK, index, true);
  view.setInt32(record + GUC_FLAGS, view.getInt32(record + GUC_FLAGS, true) | GUC_NO_RESET, true);

  return {
    runAs(roleOid) {
      runner = roleOid;
    },
  };
}

function installProgramGuard(tools: WasmTools): void {
  // Learn CopyStmt's node tag from PostgreSQL's own parser, and check the
  // offsets of is_program and filename against a COPY that has them.
  const parsed = (sql: string): number => parsedStatement(tools, sql);
  const withProgram = parsed("COPY pgts_probe FROM PROGRAM 'pgts_probe'");
  const withStdin = parsed("COPY pgts_probe FROM STDIN");
  const withLocation = parsed("CREATE TABLESPACE pgts_probe LOCATION '/pgts_probe'");
  const subscription = parsed(
    "CREATE SUBSCRIPTION pgts_probe CONNECTION 'pgts_probe' PUBLICATION pgts_probe",
  );
  const load = parsed("LOAD 'pgts_probe'");
  const v = tools.view();
  const copyTag = v.getUint32(withProgram, true);
  const tablespaceTag = v.getUint32(withLocation, true);
  const subscriptionTag = v.getUint32(subscription, true);
  const loadTag = v.getUint32(load, true);
  if (
    v.getUint32(withStdin, true) !== copyTag ||
    v.getUint8(withProgram + COPY_IS_PROGRAM) !== 1 ||
    v.getUint8(withStdin + COPY_IS_PROGRAM) !== 0 ||
    tools.readCString(v.getUint32(withProgram + COPY_FILENAME, true)) !== "pgts_probe"
  ) {
    throw new Error("PGlite's CopyStmt has an unknown layout");
  }
  if (
    tablespaceTag === copyTag ||
    tools.readCString(v.getUint32(withLocation + TABLESPACE_NAME, true)) !== "pgts_probe" ||
    tools.readCString(v.getUint32(withLocation + TABLESPACE_LOCATION, true)) !== "/pgts_probe"
  ) {
    throw new Error("PGlite's CreateTableSpaceStmt has an unknown layout");
  }
  if (
    new Set([copyTag, tablespaceTag, subscriptionTag, loadTag]).size !== 4 ||
    tools.readCString(v.getUint32(load + LOAD_FILENAME, true)) !== "pgts_probe"
  ) {
    throw new Error("PGlite's CreateSubscriptionStmt or LoadStmt has an unknown layout");
  }
  const walReceiverRefused = (): void =>
    tools.raise(
      "0A000",
      "logical replication subscriptions are not supported by the embedded engine",
      "The engine has no replication connections: its libpqwalreceiver cannot be loaded," +
        " and a failed load would leave every later extension load failing until a restart.",
    );

  onUtilityStatement(tools, (stmt) => {
    const view = tools.view();
    if (view.getUint32(stmt, true) === copyTag) {
      if (view.getUint8(stmt + COPY_IS_PROGRAM) !== 0) {
        tools.raise(
          "0A000",
          "COPY to or from an external program is not supported by the embedded engine",
        );
      }
      if (view.getUint32(stmt + COPY_FILENAME, true) !== 0) {
        tools.raise(
          "0A000",
          "COPY to or from a file is not supported by the embedded engine",
          "PGlite reaches the host's files only through its own path to the data directory:" +
            " a file named here would be written to memory and lost, or not found.",
          {
            hint:
              "Use COPY ... TO STDOUT or FROM STDIN (psql's \\copy) to copy through the client.",
          },
        );
      }
    } else if (view.getUint32(stmt, true) === subscriptionTag) {
      walReceiverRefused();
    } else if (view.getUint32(stmt, true) === loadTag) {
      const at = view.getUint32(stmt + LOAD_FILENAME, true);
      if (at !== 0 && /(^|\/)libpqwalreceiver(\.so)?$/.test(tools.readCString(at))) {
        walReceiverRefused();
      }
    } else if (view.getUint32(stmt, true) === tablespaceTag) {
      const at = view.getUint32(stmt + TABLESPACE_LOCATION, true);
      if (at !== 0 && tools.readCString(at).startsWith("/")) {
        tools.raise(
          "0A000",
          "tablespaces at a location are not supported by the embedded engine",
          "PGlite reaches the host's files only inside the data directory; a tablespace" +
            " elsewhere would be kept in memory and lost when the server stops.",
          {
            hint: "Use LOCATION '' with allow_in_place_tablespaces = on: an in-place" +
              " tablespace is kept inside the data directory.",
          },
        );
      }
    }
  });
}
