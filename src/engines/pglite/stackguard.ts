/**
 * Deep recursion in the engine: a clean 54001 where it can be had, a crash
 * where it cannot.
 *
 * PostgreSQL bounds recursion with check_stack_depth(), which measures the
 * C stack against max_stack_depth. In WebAssembly that is Emscripten's
 * shadow stack (8 MB in PGlite), but every WASM call also takes a frame of
 * the JavaScript engine's own native stack, and that one is small: a Bun or
 * Deno Worker runs out at about 400 levels of PL/pgSQL recursion (some 10 kB
 * of native stack per level against 1 kB of shadow stack) and at 1,500–
 * 2,000 levels of a recursive SQL function (which takes under 200 bytes of
 * shadow stack per level). The overflow is a RangeError thrown through the
 * WASM frames; PGlite's main loop swallows every exception and goes on with
 * a backend whose memory contexts, error stack and locks were left in the
 * middle of a call: wrong answers (no rows), then "ERRORDATA_STACK_SIZE
 * exceeded" or an endless loop for every session.
 *
 * So, as PostgreSQL does on a platform with a small stack:
 * - max_stack_depth defaults to 256kB for the engine (PL/pgSQL recursion
 *   stops at about 170 levels with 54001 "stack depth limit exceeded");
 *   a superuser may set it higher, as in PostgreSQL, at the same risk.
 * - an overflow that check_stack_depth did not catch is what a SIGSEGV is to
 *   PostgreSQL: the backend is ended at once (nothing more runs in it) and
 *   the crash cycle recovers the cluster from its WAL.
 */

/** The engine's max_stack_depth unless the server's configuration names one. */
export const ENGINE_MAX_STACK_DEPTH = "256kB";

/** The functions of PGlite's Emscripten module its exec loop calls through the module object. */
type Module = Record<string, unknown>;

/**
 * Wraps PGlite's main-loop step so that a native stack overflow ends the
 * backend (`end`), and the exec that hit it stops instead of going on.
 * `ended()`: whether the backend has ended, for whatever reason.
 */
export function guardNativeStack(
  mod: Module,
  ended: () => boolean,
  end: (why: string) => void,
): void {
  const loopOnce = mod["_PostgresMainLoopOnce"];
  const stackRestore = mod["stackRestore"];
  if (typeof loopOnce !== "function" || typeof stackRestore !== "function") {
    throw new Error("PGlite's module has no _PostgresMainLoopOnce/stackRestore to guard");
  }
  mod["_PostgresMainLoopOnce"] = (...args: unknown[]) => {
    try {
      return loopOnce(...args);
    } catch (e) {
      if (e instanceof RangeError) end(`native stack overflow: ${e.message}`);
      throw e;
    }
  };
  // PGlite's loop catches whatever a step throws, restores the shadow stack
  // and takes the next step. Once the backend has ended, the restore throws
  // instead: the exec leaves the loop and reports the end.
  mod["stackRestore"] = (...args: unknown[]) => {
    const r = stackRestore(...args);
    if (ended()) throw new Error("the engine's backend has ended");
    return r;
  };
  // The exec's closing steps would run in the dead backend.
  for (const name of ["_PostgresSendReadyForQueryIfNecessary", "_pgl_pq_flush"]) {
    const f = mod[name];
    if (typeof f === "function") {
      mod[name] = (...args: unknown[]) => (ended() ? undefined : f(...args));
    }
  }
}
