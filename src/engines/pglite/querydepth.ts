/**
 * The query depth guard: queries nested in queries (a SQL function that
 * calls itself, a trigger that fires itself) are refused with PostgreSQL's
 * 54001 past MAX_QUERY_DEPTH levels, before their recursion runs the
 * engine's native stack out.
 *
 * PostgreSQL stops such recursion with check_stack_depth, which in PGlite
 * measures only the WebAssembly shadow stack: a recursive SQL function
 * takes under 100 bytes of it a level and some 2 kB of the JavaScript
 * engine's native stack, which ran out at 1,500–2,500 levels under Bun and
 * between 1,500 and 2,000 under Deno, before max_stack_depth's 256kB. That
 * ended the backend every session shares (stackguard.ts): PostgreSQL 18's
 * regression test infinite_recurse (`CREATE FUNCTION f() … AS 'select
 * f()'`) reset the cluster. Every level runs its query through
 * ExecutorRun, so an ExecutorRun_hook counts how deep the executions in
 * progress nest (the count goes back down however a level ends: an error's
 * longjmp passes through the hook's frame as an exception) and raises
 * 54001 past MAX_QUERY_DEPTH; the rest runs PostgreSQL's own ExecutorRun
 * (or the hook before it). PL/pgSQL's simple expressions run without the
 * executor and are not counted: their recursion takes 1 kB of shadow stack
 * a level, and check_stack_depth stops it first.
 */

import type { WasmTools } from "./wasmtools.ts";

/** The deepest nesting of query executions: the top level's and 599 within it. */
export const MAX_QUERY_DEPTH = 600;

interface ExecutorExports {
  ExecutorRun_hook: WebAssembly.Global;
  standard_ExecutorRun: (queryDesc: number, direction: number, count: bigint) => void;
}

/** Installs the guard as PGlite's ExecutorRun_hook, chained to any hook before it. */
export function installQueryDepthGuard(tools: WasmTools): void {
  const ex = tools.ex as unknown as typeof tools.ex & ExecutorExports;
  if (!(ex.ExecutorRun_hook instanceof WebAssembly.Global)) {
    throw new Error("PGlite does not export ExecutorRun_hook");
  }
  if (typeof ex.standard_ExecutorRun !== "function" || ex.standard_ExecutorRun.length !== 3) {
    throw new Error("PGlite's standard_ExecutorRun is not (QueryDesc *, ScanDirection, uint64)");
  }
  const hookAddress = ex.ExecutorRun_hook.value as number;
  const previous = tools.view().getUint32(hookAddress, true);
  const run = previous === 0
    ? ex.standard_ExecutorRun
    : ex.__indirect_function_table.get(previous) as ExecutorExports["standard_ExecutorRun"];
  let depth = 0;
  const hook = (queryDesc: number, direction: number, count: bigint): void => {
    if (depth >= MAX_QUERY_DEPTH) {
      tools.raise("54001", "stack depth limit exceeded", undefined, {
        hint:
          `The embedded engine runs queries nested at most ${MAX_QUERY_DEPTH} deep (a function that calls itself): deeper, its native stack would run out before max_stack_depth is reached.`,
      });
    }
    depth++;
    try {
      run(queryDesc, direction, count);
    } finally {
      depth--;
    }
  };
  // The count arrives as a BigInt (an i64 parameter).
  const index = tools.addFunction(hook as unknown as (...args: number[]) => void, {
    params: ["i32", "i32", "i64"],
    result: false,
  });
  tools.view().setUint32(hookAddress, index, true);
}
