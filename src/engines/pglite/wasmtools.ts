/**
 * What pgts's host functions inside PGlite's backend are made with: the
 * instance's memory and strings, PostgreSQL's ereport reached from a host
 * function, host functions put in the WebAssembly function table, and the
 * few parse-tree readers the guards and hooks share (guard.ts, advisory.ts,
 * portalnames.ts, databasegrants.ts, customsettings.ts, …).
 */

/** elevel NOTICE, WARNING and ERROR (elog.h). */
const NOTICE = 18;
const WARNING = 19;
const ERROR = 21;
/** CMD_UTILITY in `enum CmdType`. */
const CMD_UTILITY = 6;

/** Offsets in wasm32 structures (nodes/parsenodes.h, nodes/pg_list.h, nodes/value.h). */
const QUERY_COMMAND_TYPE = 4;
const QUERY_UTILITY_STMT = 28;
const LIST_LENGTH = 4;
const LIST_ELEMENTS = 12;
/** String.sval (value.h): the address of its text. */
export const STRING_SVAL = 4;
const RAWSTMT_STMT = 4;

/** Decodes C strings read from the instance's memory (gucwatch.ts reads some after every change). */
const cStringDecoder = new TextDecoder();

/** The size of the buffer error messages are formatted from (errmsg copies it). */
const MESSAGE_BUFFER = 512;

export interface GuardExports {
  find_option(name: number, createPlaceholders: number, skipErrors: number, elevel: number): number;
  raw_parser(sql: number, mode: number): number;
  malloc(size: number): number;
  superuser_arg(roleOid: number): number;
  errstart(elevel: number, domain: number): number;
  errcode(sqlstate: number): number;
  errmsg(fmt: number, args: number): number;
  errdetail(fmt: number, args: number): number;
  errhint(fmt: number, args: number): number;
  errfinish(file: number, line: number, func: number): void;
  __indirect_function_table: WebAssembly.Table;
  post_parse_analyze_hook: WebAssembly.Global;
}

/** What the guards need of the instance: its memory, strings, errors, the function table. */
export class WasmTools {
  readonly ex: GuardExports;
  readonly #memory: WebAssembly.Memory;
  #view: DataView;
  readonly #message: number;
  readonly #detail: number;
  readonly #hint: number;
  readonly #file: number;

  constructor(instance: WebAssembly.Instance, memory: WebAssembly.Memory) {
    this.ex = instance.exports as unknown as GuardExports;
    this.#memory = memory;
    this.#view = new DataView(memory.buffer);
    for (
      const fn of [
        "find_option",
        "raw_parser",
        "malloc",
        "superuser_arg",
        "errstart",
        "errcode",
        "errmsg",
        "errdetail",
        "errhint",
        "errfinish",
      ] as const
    ) {
      if (typeof this.ex[fn] !== "function") throw new Error(`PGlite does not export ${fn}`);
    }
    if (!(this.ex.__indirect_function_table instanceof WebAssembly.Table)) {
      throw new Error("PGlite does not export its function table");
    }
    if (!(this.ex.post_parse_analyze_hook instanceof WebAssembly.Global)) {
      throw new Error("PGlite does not export post_parse_analyze_hook");
    }
    this.#message = this.ex.malloc(MESSAGE_BUFFER);
    this.#detail = this.ex.malloc(MESSAGE_BUFFER);
    this.#hint = this.ex.malloc(MESSAGE_BUFFER);
    this.#file = this.cString("wasmtools.ts");
  }

  /**
   * A view of the instance's memory. Kept while the memory does not grow
   * (growing replaces its buffer): the hooks read it on every statement.
   */
  view(): DataView {
    if (this.#view.buffer !== this.#memory.buffer) this.#view = new DataView(this.#memory.buffer);
    return this.#view;
  }

  /** The instance's memory as bytes (a new array after the memory grows). */
  bytes(): Uint8Array {
    return new Uint8Array(this.#memory.buffer);
  }

  /** A NUL-terminated copy of `s` in the instance's memory (never freed: for what lives as long). */
  cString(s: string): number {
    const bytes = new TextEncoder().encode(s);
    const p = this.ex.malloc(bytes.length + 1);
    const mem = new Uint8Array(this.#memory.buffer);
    mem.set(bytes, p);
    mem[p + bytes.length] = 0;
    return p;
  }

  /** A NUL-terminated copy of `s` palloc'd in the current memory context (freed with it). */
  pallocCString(s: string): number {
    const bytes = new TextEncoder().encode(s);
    const p = (this.ex as GuardExports & { palloc(size: number): number }).palloc(
      bytes.length + 1,
    );
    const mem = new Uint8Array(this.#memory.buffer);
    mem.set(bytes, p);
    mem[p + bytes.length] = 0;
    return p;
  }

  readCString(p: number): string {
    const mem = new Uint8Array(this.#memory.buffer);
    let end = p;
    while (mem[end] !== 0) end++;
    return cStringDecoder.decode(mem.subarray(p, end));
  }

  /**
   * ereport(ERROR) with `sqlstate` and `message` (and `detail`): errfinish
   * longjmps out of the host function that calls this, as a check hook's
   * own ereport would.
   */
  raise(
    sqlstate: string,
    message: string,
    detail?: string,
    more: { hint?: string; routine?: string } = {},
  ): void {
    this.#report(ERROR, sqlstate, message, detail, more);
  }

  /** ereport(WARNING): the client gets it, and the host function goes on. */
  warn(message: string): void {
    this.#report(WARNING, "01000", message, undefined);
  }

  /** ereport(NOTICE), as warn. */
  notice(message: string, detail?: string): void {
    this.#report(NOTICE, "00000", message, detail);
  }

  /** NUL-terminated names for errfinish's routine argument (the 'R' field), made once each. */
  #routines = new Map<string, number>();

  #report(
    elevel: number,
    sqlstate: string,
    message: string,
    detail: string | undefined,
    more: { hint?: string; routine?: string } = {},
  ): void {
    const { hint, routine } = more;
    let func = 0;
    if (routine !== undefined) {
      func = this.#routines.get(routine) ?? 0;
      if (func === 0) this.#routines.set(routine, func = this.cString(routine));
    }
    this.#format(this.#message, message);
    if (detail !== undefined) this.#format(this.#detail, detail);
    if (this.ex.errstart(elevel, 0)) {
      this.ex.errcode(packSqlstate(sqlstate));
      this.ex.errmsg(this.#message, 0);
      if (detail !== undefined) this.ex.errdetail(this.#detail, 0);
      if (hint !== undefined) {
        this.#format(this.#hint, hint);
        this.ex.errhint(this.#hint, 0);
      }
      this.ex.errfinish(this.#file, 0, func);
    }
  }

  /** `text` as a format string (with `%` escaped) in one of the message buffers. */
  #format(buffer: number, text: string): void {
    const bytes = new TextEncoder().encode(text.replaceAll("%", "%%"))
      .subarray(0, MESSAGE_BUFFER - 1);
    const mem = new Uint8Array(this.#memory.buffer);
    mem.set(bytes, buffer);
    mem[buffer + bytes.length] = 0;
  }

  /** Puts a host function in the function table; its index, for a hook pointer. */
  addFunction(
    fn: (...args: number[]) => number | void,
    type: { params: number | readonly WasmParam[]; result: boolean },
  ): number {
    const table = this.ex.__indirect_function_table;
    const index = table.grow(1);
    table.set(index, wasmFunction(fn, type));
    return index;
  }
}
/** The cells of a parse tree's List (pg_list.h; 0: NIL), each a node's address. */
export function listCells(tools: WasmTools, list: number): number[] {
  if (list === 0) return [];
  const view = tools.view();
  const n = view.getInt32(list + LIST_LENGTH, true);
  const cells = view.getUint32(list + LIST_ELEMENTS, true);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(view.getUint32(cells + 4 * i, true));
  return out;
}

/** A String node's text (value.h's sval). */
export function stringNodeValue(tools: WasmTools, node: number): string {
  return tools.readCString(tools.view().getUint32(node + STRING_SVAL, true));
}

/** The parse tree (a node of PostgreSQL's raw parser) of `sql`'s first statement. */
export function parsedStatement(tools: WasmTools, sql: string): number {
  const v = tools.view();
  const list = tools.ex.raw_parser(tools.cString(sql), 0);
  const raw = v.getUint32(v.getUint32(list + LIST_ELEMENTS, true), true);
  return v.getUint32(raw + RAWSTMT_STMT, true);
}

/**
 * Calls `fn` with each utility statement (its parse node) after parse
 * analysis, however it was sent (a PL/pgSQL EXECUTE included): a
 * post_parse_analyze hook, chained to the one installed before it, with
 * its ParseState. `fn` may raise (tools.raise) to refuse the statement.
 */
export function onUtilityStatement(
  tools: WasmTools,
  fn: (stmt: number, pstate: number) => void,
): void {
  const ex = tools.ex;
  const hookAddress = ex.post_parse_analyze_hook.value as number;
  const previous = tools.view().getUint32(hookAddress, true);
  const chained = previous === 0
    ? null
    : ex.__indirect_function_table.get(previous) as (a: number, b: number, c: number) => void;
  const hook = (pstate: number, query: number, jstate: number): void => {
    const view = tools.view();
    if (view.getInt32(query + QUERY_COMMAND_TYPE, true) === CMD_UTILITY) {
      const stmt = view.getUint32(query + QUERY_UTILITY_STMT, true);
      if (stmt !== 0) fn(stmt, pstate);
    }
    chained?.(pstate, query, jstate);
  };
  tools.view().setUint32(hookAddress, tools.addFunction(hook, { params: 3, result: false }), true);
}

/** PostgreSQL's MAKE_SQLSTATE: five characters packed six bits each. */
function packSqlstate(code: string): number {
  let v = 0;
  for (let i = 0; i < 5; i++) v |= ((code.charCodeAt(i) - 48) & 0x3f) << (6 * i);
  return v;
}

/** A WebAssembly value type of a host function's parameters. */
export type WasmParam = "i32" | "i64" | "f64";

/**
 * A host function as a WebAssembly function of type (i32 × params, or the
 * types listed) → i32 or nothing, so that it can stand in the function
 * table: a module that imports it and exports it again.
 */
export function wasmFunction(
  // deno-lint-ignore ban-types -- WebAssembly.Table.set takes a Function
  fn: Function,
  type: { params: number | readonly WasmParam[]; result: boolean },
  // deno-lint-ignore ban-types -- WebAssembly.Table.set takes a Function
): Function {
  const I32 = 0x7f;
  const I64 = 0x7e;
  const F64 = 0x7c;
  const params = typeof type.params === "number"
    ? Array<number>(type.params).fill(I32)
    : type.params.map((t) => (t === "f64" ? F64 : t === "i64" ? I64 : I32));
  const sig = [
    0x60,
    params.length,
    ...params,
    ...(type.result ? [1, I32] : [0]),
  ];
  const key = sig.join(",");
  let module = wrapperModules.get(key);
  if (module === undefined) wrapperModules.set(key, module = wrapperModule(sig));
  const f = new WebAssembly.Instance(module, { e: { f: fn } }).exports["f"];
  if (typeof f !== "function") throw new Error("could not make a WebAssembly function");
  return f;
}

/** One compiled wrapper module per function type: gucwatch.ts makes hundreds of one type. */
const wrapperModules = new Map<string, WebAssembly.Module>();

function wrapperModule(sig: readonly number[]): WebAssembly.Module {
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
    sig.length + 1,
    0x01,
    ...sig, // type section: one function type
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
  return new WebAssembly.Module(bytes);
}
