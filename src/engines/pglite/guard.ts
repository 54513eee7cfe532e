/**
 * The identity guard: PostgreSQL's own rule for SET SESSION AUTHORIZATION,
 * applied to each pgts session instead of to the engine's one login.
 *
 * PostgreSQL lets a backend change `session_authorization` to another role
 * only when the role it authenticated as is a superuser. PGlite's one
 * backend authenticated as the bootstrap superuser, and pgts runs every
 * client's session on it, so left alone that check passes for everyone and
 * any role that can log in could make itself superuser — by `SET SESSION
 * AUTHORIZATION`, `SET session_authorization`, `set_config(…)` from SQL, a
 * PL/pgSQL `EXECUTE` of a built string, a function's SET clause. Every one
 * of those spellings ends in the parameter's check hook, so the guard sits
 * there: it replaces the hook in the `session_authorization` record (found
 * with the exported `find_option`) by a host function that runs the
 * original check, then refuses the change when the role asked for is not
 * the session's own login role and that role is not a superuser now
 * (`superuser_arg`), with PostgreSQL's error: 42501 `permission denied to
 * set session authorization "…"`. The paths that do not call a check hook
 * are closed by flags PostgreSQL already has: GUC_NO_RESET makes `RESET
 * SESSION AUTHORIZATION`, `SET … TO DEFAULT`, `set_config(…, NULL, …)` and
 * function-level SET clauses fail with 0A000 (the reset value of a
 * single-user backend is no one to become anyway).
 *
 * pgts's own work (switching the backend to a session's settings) runs with
 * no runner and passes unchecked. Who runs is set per exec by instance.ts
 * on the thread that runs PGlite.
 *
 * It must never let a check through while a session's exec runs as someone
 * else, and must fail to open (throw) rather than run unguarded when the
 * record does not look as expected.
 */

/** PostgreSQL's GUC flag that refuses RESET and function-level SET (guc.h). */
const GUC_NO_RESET = 0x0008;
/** PGC_STRING in `enum config_type`. */
const PGC_STRING = 3;
/** PGC_S_TEST: a value checked for ALTER ROLE/DATABASE … SET or CREATE FUNCTION, not applied. */
const PGC_S_TEST = 12;
/** elevel ERROR (elog.h). */
const ERROR = 21;

/**
 * Offsets in wasm32 `struct config_generic` / `struct config_string`
 * (utils/guc_tables.h): name, flags, vartype, check_hook. Checked against
 * the record's name and type when the guard is installed.
 */
const OFF_NAME = 0;
const OFF_FLAGS = 20;
const OFF_VARTYPE = 24;
const OFF_CHECK_HOOK = 100;

/** The size of the buffer the error message is formatted from (errmsg copies it). */
const MESSAGE_BUFFER = 512;

export interface IdentityGuard {
  /**
   * The login role (OID) of the session whose exec runs next, or null for
   * pgts's own work.
   */
  runAs(roleOid: number | null): void;
}

interface GuardExports {
  find_option(name: number, createPlaceholders: number, skipErrors: number, elevel: number): number;
  malloc(size: number): number;
  superuser_arg(roleOid: number): number;
  errstart(elevel: number, domain: number): number;
  errcode(sqlstate: number): number;
  errmsg(fmt: number, args: number): number;
  errfinish(file: number, line: number, func: number): void;
  __indirect_function_table: WebAssembly.Table;
}

/** Installs the guard on an open PGlite instance (after its backend started). */
export function installIdentityGuard(
  instance: WebAssembly.Instance,
  memory: WebAssembly.Memory,
): IdentityGuard {
  const ex = instance.exports as unknown as GuardExports;
  for (
    const fn of [
      "find_option",
      "malloc",
      "superuser_arg",
      "errstart",
      "errcode",
      "errmsg",
      "errfinish",
    ] as const
  ) {
    if (typeof ex[fn] !== "function") throw new Error(`PGlite does not export ${fn}`);
  }
  const table = ex.__indirect_function_table;
  if (!(table instanceof WebAssembly.Table)) {
    throw new Error("PGlite does not export its function table");
  }
  const u8 = () => new Uint8Array(memory.buffer);
  const dv = () => new DataView(memory.buffer);
  const cString = (s: string, size?: number): number => {
    const bytes = new TextEncoder().encode(s);
    const p = ex.malloc(size ?? bytes.length + 1);
    u8().set(bytes, p);
    u8()[p + bytes.length] = 0;
    return p;
  };
  const readCString = (p: number): string => {
    const mem = u8();
    let end = p;
    while (mem[end] !== 0) end++;
    return new TextDecoder().decode(mem.subarray(p, end));
  };

  const record = ex.find_option(cString("session_authorization"), 0, 1, 0);
  if (record === 0) throw new Error("PGlite has no session_authorization parameter");
  const view = dv();
  if (
    readCString(view.getUint32(record + OFF_NAME, true)) !== "session_authorization" ||
    view.getInt32(record + OFF_VARTYPE, true) !== PGC_STRING
  ) {
    throw new Error("PGlite's session_authorization record has an unknown layout");
  }
  const originalIndex = view.getUint32(record + OFF_CHECK_HOOK, true);
  const original = table.get(originalIndex) as
    | ((newval: number, extra: number, source: number) => number)
    | null;
  if (typeof original !== "function") {
    throw new Error("PGlite's session_authorization check hook is not a function");
  }

  const message = ex.malloc(MESSAGE_BUFFER);
  const file = cString("guard.ts");
  const func = cString("check_session_authorization");
  let runner: number | null = null;

  const check = (newval: number, extra: number, source: number): number => {
    const ok = original(newval, extra, source);
    if (!ok || runner === null || source === PGC_S_TEST) return ok;
    const v = dv();
    // role_auth_extra { Oid roleid; bool is_superuser; }, NULL for no value.
    const auth = v.getUint32(extra, true);
    if (auth === 0) return ok;
    const roleOid = v.getUint32(auth, true);
    if (roleOid === runner || ex.superuser_arg(runner) !== 0) return ok;
    const name = readCString(v.getUint32(newval, true)).replaceAll("%", "%%");
    const text = new TextEncoder().encode(
      `permission denied to set session authorization "${name}"`,
    ).subarray(0, MESSAGE_BUFFER - 1);
    u8().set(text, message);
    u8()[message + text.length] = 0;
    // ereport(ERROR): errfinish longjmps out of this call, as the original
    // check hook's own ereport would.
    if (ex.errstart(ERROR, 0)) {
      ex.errcode(sqlstate("42501"));
      ex.errmsg(message, 0);
      ex.errfinish(file, 0, func);
    }
    return 0;
  };

  const index = table.grow(1);
  table.set(index, wasmFunction(check));
  const v = dv();
  v.setUint32(record + OFF_CHECK_HOOK, index, true);
  v.setInt32(record + OFF_FLAGS, v.getInt32(record + OFF_FLAGS, true) | GUC_NO_RESET, true);

  return {
    runAs(roleOid) {
      runner = roleOid;
    },
  };
}

/** PostgreSQL's MAKE_SQLSTATE: five characters packed six bits each. */
function sqlstate(code: string): number {
  let v = 0;
  for (let i = 0; i < 5; i++) v |= ((code.charCodeAt(i) - 48) & 0x3f) << (6 * i);
  return v;
}

/**
 * A host function as a WebAssembly function of type (i32, i32, i32) → i32,
 * the type of a string parameter's check hook, so that it can stand in the
 * function table: a module that imports it and exports it again.
 */
// deno-lint-ignore ban-types -- WebAssembly.Table.set takes a Function
function wasmFunction(fn: (a: number, b: number, c: number) => number): Function {
  const bytes = new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00, // magic, version
    0x01,
    0x08,
    0x01,
    0x60,
    0x03,
    0x7f,
    0x7f,
    0x7f,
    0x01,
    0x7f, // type: (i32 i32 i32) -> i32
    0x02,
    0x07,
    0x01,
    0x01,
    0x65,
    0x01,
    0x66,
    0x00,
    0x00, // import "e" "f" func 0
    0x07,
    0x05,
    0x01,
    0x01,
    0x66,
    0x00,
    0x00, // export "f" func 0
  ]);
  const module = new WebAssembly.Module(bytes);
  const f = new WebAssembly.Instance(module, { e: { f: fn } }).exports["f"];
  if (typeof f !== "function") throw new Error("could not make a WebAssembly function");
  return f;
}
