/**
 * Deep recursion in the engine: a clean 54001 where it can be had, a crash
 * where it cannot. And an error raised while the engine reports an error:
 * reported as PostgreSQL reports it.
 *
 * PostgreSQL bounds recursion with check_stack_depth(), which measures the
 * C stack against max_stack_depth. In WebAssembly that is Emscripten's
 * shadow stack (8 MB in PGlite), but every WASM call also takes a frame of
 * the JavaScript engine's own native stack, and that one is small and fixed
 * for a Worker (Bun's cannot be made larger: neither `ulimit -s`,
 * BUN_JSC_maxPerThreadStackUsage nor a Worker option moves it). A Bun or
 * Deno Worker runs out at about 400 levels of PL/pgSQL recursion (some 10
 * kB of native stack per level against 1 kB of shadow stack); a recursive
 * SQL function takes under 100 bytes of shadow stack a level and its native
 * frames more or less by how the JIT compiled them (it ran out before 128kB
 * of shadow stack in one run, not in another), and a JSON literal nested
 * 5,000 deep (`'[[[…'::jsonb`, a few dozen bytes of shadow stack a level)
 * ran out on a warm engine where a fresh one reached its 54001 at 8,000
 * (under Deno, PostgreSQL 18's regression tests json and jsonb, 10,000
 * deep with max_stack_depth 100kB, ran out; jsondepth.ts now measures JSON
 * before it is parsed, and querydepth.ts counts nested queries). The
 * overflow is a RangeError thrown through the WASM frames; PGlite's main
 * loop swallows every exception and goes on with a backend whose memory
 * contexts, error stack and locks were left in the middle of a call: wrong
 * answers (no rows), then "ERRORDATA_STACK_SIZE exceeded" or an endless
 * loop for every session. Handling the RangeError as an ERROR that reached the main loop's
 * handler (the error made with errstart, PGlite's own longjmp status
 * thrown) answered 54001 and served on, but the PG_CATCH blocks the
 * RangeError had skipped left state behind, and the session's close ended
 * the backend with "ERRORDATA_STACK_SIZE exceeded" a few statements later.
 *
 * So, as PostgreSQL does on a platform with a small stack:
 * - max_stack_depth defaults to 256kB for the engine (PL/pgSQL recursion
 *   stops at about 170 levels with 54001 "stack depth limit exceeded");
 *   a superuser may set it higher, as in PostgreSQL, at the same risk.
 * - an overflow that check_stack_depth did not catch is what a SIGSEGV is to
 *   PostgreSQL: the backend is ended at once (nothing more runs in it) and
 *   the crash cycle recovers the cluster from its WAL.
 *
 * The handler: PostgreSQL's error handler in PostgresMain is the target of
 * every ERROR, one raised while it reports an error included (the error's
 * text has a character the client's encoding lacks: the conversion's
 * 22P05), which then runs the handler again for that error. PGlite's
 * longjmp to its main loop is an exit() with status POSTGRES_MAIN_LONGJMP
 * that its exec loop catches around each step, then calling the handler
 * (`_PostgresMainLongJmp`) outside that `try`: such an ERROR left the exec
 * as an exit() and ended the backend every session shares. The wrapper
 * runs the handler again, as PostgreSQL's jump back to its sigsetjmp does;
 * a handler that fails MAX_HANDLER_RUNS times over ends the backend.
 */

/** The engine's max_stack_depth unless the server's configuration names one. */
export const ENGINE_MAX_STACK_DEPTH = "256kB";

/** The functions of PGlite's Emscripten module its exec loop calls through the module object. */
type Module = Record<string, unknown>;

/** PostgreSQL runs its handler again for an error in it; the bound on how often here. */
const MAX_HANDLER_RUNS = 8;

/**
 * Wraps PGlite's main-loop step so that a native stack overflow ends the
 * backend (`end`), and the exec that hit it stops instead of going on; and
 * its error handler, so that an ERROR in it runs it again. `ended()`:
 * whether the backend has ended, for whatever reason. `mainLongjmp`: the
 * exit status of PGlite's longjmp to its main loop (POSTGRES_MAIN_LONGJMP).
 */
export function guardNativeStack(
  mod: Module,
  ended: () => boolean,
  end: (why: string) => void,
  mainLongjmp: number,
): void {
  const loopOnce = mod["_PostgresMainLoopOnce"];
  const handler = mod["_PostgresMainLongJmp"];
  const stackSave = mod["stackSave"];
  const stackRestore = mod["stackRestore"];
  if (
    typeof loopOnce !== "function" || typeof handler !== "function" ||
    typeof stackSave !== "function" || typeof stackRestore !== "function"
  ) {
    throw new Error(
      "PGlite's module has no _PostgresMainLoopOnce/_PostgresMainLongJmp/stackSave/stackRestore to guard",
    );
  }
  if (!Number.isInteger(mainLongjmp)) throw new Error("PGlite has no POSTGRES_MAIN_LONGJMP status");
  const isMainLongjmp = (e: unknown) => (e as { status?: unknown } | null)?.status === mainLongjmp;
  mod["_PostgresMainLoopOnce"] = (...args: unknown[]) => {
    try {
      return loopOnce(...args);
    } catch (e) {
      if (e instanceof RangeError) end(`native stack overflow: ${e.message}`);
      throw e;
    }
  };
  mod["_PostgresMainLongJmp"] = (...args: unknown[]) => {
    for (let run = 1;; run++) {
      const sp = stackSave();
      try {
        return handler(...args);
      } catch (e) {
        if (!isMainLongjmp(e) || run >= MAX_HANDLER_RUNS || ended()) throw e;
        stackRestore(sp);
      }
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
