/**
 * The JSON depth guard: a JSON value nested deeper than the engine's
 * native stack can parse is refused with PostgreSQL's 54001 before the
 * parse, instead of ending the backend every session shares.
 *
 * PostgreSQL's JSON parser recurses once per level of nesting and checks
 * the stack at each (check_stack_depth), so a value nested too deep is
 * 54001 "stack depth limit exceeded". In PGlite that check measures only
 * the WebAssembly shadow stack, a few dozen bytes a level here, while each
 * level also takes some hundreds of bytes of the JavaScript engine's
 * native stack: `'[[[…]]]'::jsonb` nested 5,000 deep ran out of it on a
 * warm engine under Bun (under Deno, 10,000 with max_stack_depth 100kB, the
 * json and jsonb regression tests of PostgreSQL 18), which ends the
 * backend (stackguard.ts) and resets every session of the cluster. Any
 * role that can cast a string to json did that.
 *
 * So the input functions of json and jsonb (json_in, jsonb_in and the
 * binary json_recv, jsonb_recv: every cast, literal, COPY and parameter of
 * those types goes through them) are wrapped in their function table slots
 * (backends.ts wrapBuiltin) by a function that measures the text's nesting
 * first, in one pass that skips strings and stops at a NUL (where the
 * parser stops too), and raises 54001 past MAX_JSON_DEPTH; a binary text
 * shorter than MAX_JSON_DEPTH bytes cannot nest that deep and is not read.
 * PostgreSQL's own limit, from its 2MB stack, is tens of thousands of
 * levels. 1,000 leaves the native stack room for the statement around the
 * parse: 2,000 parsed alone under Bun and Deno, but a 2,000-deep object
 * cast inside 150 levels of PL/pgSQL recursion once ran Bun's out (most
 * such casts got check_stack_depth's own 54001). JSON parsed from a text
 * by other paths (the IS JSON predicate, JSON_QUERY on a text argument) is
 * not measured.
 */

import { argDatum, wrapBuiltin } from "./backends.ts";
import type { WasmTools } from "./wasmtools.ts";

/** The deepest nesting of arrays and objects the guard lets the parser see. */
export const MAX_JSON_DEPTH = 1000;

/** pg_proc OIDs of the input functions (pg_proc.dat). */
const F_JSON_IN = 321;
const F_JSON_RECV = 323;
const F_JSONB_RECV = 3805;
const F_JSONB_IN = 3806;

/** StringInfoData's fields on wasm32 (lib/stringinfo.h): data, len, maxlen, cursor. */
const STRINGINFO_DATA = 0;
const STRINGINFO_LEN = 4;
const STRINGINFO_CURSOR = 12;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/**
 * Whether the JSON text in `m` from `start` to `end` (or to a NUL before
 * it: a C string's end) nests arrays and objects deeper than `max` (outside
 * its strings). Malformed text is measured as far as it goes; the parser
 * reports what is wrong with it.
 */
export function nestsDeeperThan(m: Uint8Array, start: number, end: number, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = start; i < end; i++) {
    const b = m[i]!;
    if (b === 0) return false;
    if (inString) {
      if (b === BACKSLASH) i++;
      else if (b === QUOTE) inString = false;
    } else if (b === QUOTE) inString = true;
    else if (b === OPEN_BRACKET || b === OPEN_BRACE) {
      if (++depth > max) return true;
    } else if (b === CLOSE_BRACKET || b === CLOSE_BRACE) depth--;
  }
  return false;
}

/** Wraps the four input functions of json and jsonb in the guard. */
export function installJsonDepthGuard(tools: WasmTools): void {
  const refuse = () =>
    tools.raise("54001", "stack depth limit exceeded", undefined, {
      hint:
        `The embedded engine parses JSON nested at most ${MAX_JSON_DEPTH} deep: deeper, its native stack would run out before max_stack_depth is reached.`,
    });
  for (const oid of [F_JSON_IN, F_JSONB_IN]) {
    wrapBuiltin(tools, oid, (fcinfo, builtin) => {
      // A C string: measured up to its NUL, in the same pass.
      const m = tools.bytes();
      if (nestsDeeperThan(m, argDatum(tools, fcinfo, 0), m.length, MAX_JSON_DEPTH)) refuse();
      return builtin(fcinfo);
    });
  }
  for (const oid of [F_JSON_RECV, F_JSONB_RECV]) {
    wrapBuiltin(tools, oid, (fcinfo, builtin) => {
      const buf = argDatum(tools, fcinfo, 0);
      const v = tools.view();
      const data = v.getUint32(buf + STRINGINFO_DATA, true);
      const start = data + v.getInt32(buf + STRINGINFO_CURSOR, true);
      const end = data + v.getInt32(buf + STRINGINFO_LEN, true);
      if (
        end - start > MAX_JSON_DEPTH &&
        nestsDeeperThan(tools.bytes(), start, end, MAX_JSON_DEPTH)
      ) {
        refuse();
      }
      return builtin(fcinfo);
    });
  }
}
