/**
 * Deep recursion in the engine: PostgreSQL's 54001 wherever it can be
 * raised, a crash where it cannot. And an error raised while the engine
 * reports an error: reported as PostgreSQL reports it.
 *
 * PostgreSQL bounds recursion with check_stack_depth(), which measures the
 * C stack against max_stack_depth. In WebAssembly that is Emscripten's
 * shadow stack (8 MB in PGlite), but every WASM call also takes a frame of
 * the JavaScript engine's own native stack, and that one is small and fixed
 * for a Worker (Bun's cannot be made larger: neither `ulimit -s`,
 * BUN_JSC_maxPerThreadStackUsage nor a Worker option moves it; Deno's is
 * about 1 MB). A Bun Worker runs out at about 400 levels of PL/pgSQL
 * recursion (some 10 kB of native stack per level against 1 kB of shadow
 * stack), a Deno Worker at 170–200 on an engine just started; a recursive
 * SQL function takes under 100 bytes of shadow stack a level, a JSON
 * literal, a long `1+1+…` or a nested regular expression a few dozen, and
 * their native frames more or less by how the JIT compiled them (a JSON
 * value 5,000 deep ran out on a warm engine where a fresh one reached its
 * 54001 at 8,000; jsondepth.ts now measures JSON before it is parsed, and
 * querydepth.ts counts nested queries). The overflow is a RangeError thrown
 * through the WASM frames; PGlite's main loop swallows every exception and
 * goes on with a backend whose memory contexts, error stack and locks were
 * left in the middle of a call: wrong answers (no rows), then
 * "ERRORDATA_STACK_SIZE exceeded" or an endless loop for every session.
 * Handling every overflow as an ERROR that reached the main loop's handler
 * (the error made with errstart, PGlite's own longjmp status thrown)
 * answered 54001 and served on, but the PG_CATCH blocks the RangeError had
 * skipped left state behind, and the session's close ended the backend
 * with "ERRORDATA_STACK_SIZE exceeded" a few statements later.
 *
 * So:
 * - max_stack_depth defaults to 256kB for the engine under Bun and 128kB
 *   under Deno (PL/pgSQL recursion stops at about 170 and 90 levels with
 *   54001 "stack depth limit exceeded"), and that is also the most it may
 *   be set to (installStackDepthLimit): as PostgreSQL refuses a value its
 *   platform's stack does not hold ("must not exceed …kB"), since a
 *   superuser's higher value let PL/pgSQL recursion run the native stack
 *   out past where the 54001 below can be raised (Bun at 512kB, Deno at
 *   224kB and at its former 256kB default: a function whose every level
 *   loops over a query calling the next; src/core/guc/tables_postgres.ts).
 * - an overflow that check_stack_depth did not catch is raised as that same
 *   54001 at the innermost frame that can catch an error (guardInvokes
 *   below): the statement fails, its transaction aborts, the session and
 *   the others go on. Where that cannot be done (no stack left to raise it
 *   even there, or inside a critical section), it is what a SIGSEGV is to
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

import { ENGINE_MAX_STACK_DEPTH_KB } from "../../core/guc/tables_postgres.ts";
import { intParameter } from "./guard.ts";
import type { WasmTools } from "./wasmtools.ts";

/** The engine's max_stack_depth unless the server's configuration names one. */
export const ENGINE_MAX_STACK_DEPTH = `${ENGINE_MAX_STACK_DEPTH_KB}kB`;

/**
 * Bounds max_stack_depth by ENGINE_MAX_STACK_DEPTH_KB, as PostgreSQL's own
 * check bounds it by the platform's stack (here the shadow stack's 8 MB,
 * whose check runs for the values within the bound): a larger value fails
 * the check with PostgreSQL's detail, so that however it is set (SET,
 * set_config, a function's SET clause, ALTER ROLE … SET) the client gets
 * 22023 `invalid value for parameter "max_stack_depth": N` and
 * `"max_stack_depth" must not exceed 256kB.`, at the level PostgreSQL
 * reports a failed check.
 */
export function installStackDepthLimit(
  tools: WasmTools,
  limitKb = ENGINE_MAX_STACK_DEPTH_KB,
): void {
  const ex = tools.ex as typeof tools.ex & {
    GUC_check_errdetail_string?: WebAssembly.Global;
  };
  const { original, replace } = intParameter(tools, "max_stack_depth", {
    boot: 100,
    min: 100,
    max: 2097151,
  });
  const detail = ex.GUC_check_errdetail_string;
  if (!(detail instanceof WebAssembly.Global)) {
    throw new Error("PGlite does not export GUC_check_errdetail_string");
  }
  const detailAt = detail.value as number;
  replace((newval, extra, source) => {
    if (tools.view().getInt32(newval, true) <= limitKb) return original(newval, extra, source);
    // GUC_check_errdetail: a string in the current memory context.
    tools.view().setUint32(
      detailAt,
      tools.pallocCString(`"max_stack_depth" must not exceed ${limitKb}kB.`),
      true,
    );
    return 0;
  });
}

/** The functions of PGlite's Emscripten module its exec loop calls through the module object. */
type Module = Record<string, unknown>;

/** PostgreSQL runs its handler again for an error in it; the bound on how often here. */
const MAX_HANDLER_RUNS = 8;

/**
 * Wraps PGlite's main-loop step so that a native stack overflow that
 * reached its top is raised as 54001 there (`overflows`, see guardInvokes),
 * and one that cannot be, or any other JavaScript error, ends the backend
 * (`end`) and the exec that hit it stops instead of going on; and its error
 * handler, so that an ERROR in it runs it again. `ended()`: whether the
 * backend has ended, for whatever reason. `mainLongjmp`: the exit status of
 * PGlite's longjmp to its main loop (POSTGRES_MAIN_LONGJMP).
 */
export function guardNativeStack(
  mod: Module,
  ended: () => boolean,
  end: (why: string) => void,
  mainLongjmp: number,
  overflows: NativeOverflows,
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
    // Where an error raised at this step's top goes: PostgresMain's handler.
    const guard = overflows.stepBegins();
    const jump = guard?.exceptionStack() ?? 0;
    const context = guard?.contextStack() ?? 0;
    const sp = stackSave() as number;
    try {
      return loopOnce(...args);
    } catch (e) {
      // An overflow that no frame with a sigsetjmp saw is raised from the
      // step's top: it passed no PG_CATCH. What the raise throws (PGlite's
      // longjmp to its main loop) goes on to PGlite's loop, as an ERROR's.
      let thrown = e;
      try {
        if (guard !== null) thrown = guard.raiseFrom(e, jump, context, sp);
      } catch (again) {
        thrown = again;
      }
      // A JavaScript error (a longjmp or an exit is none) passed every
      // PG_CATCH on its way here, and PGlite's loop would go on after it.
      if (thrown instanceof RangeError) end(`native stack overflow: ${thrown.message}`);
      else if (thrown instanceof Error) end(`${thrown.name}: ${thrown.message}`);
      throw thrown;
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

/** What raising an overflow as an ERROR needs of the instance's exports. */
interface OverflowExports {
  emscripten_stack_get_current(): number;
  _emscripten_stack_restore(sp: number): void;
  FlushErrorState(): void;
  error_context_stack: WebAssembly.Global;
  PG_exception_stack: WebAssembly.Global;
  CritSectionCount: WebAssembly.Global;
  __heap_base: WebAssembly.Global;
}

/** The engine's overflow guard, once its instance's tools exist (guardInvokes). */
export interface NativeOverflows {
  /** The guard, null until the instance's tools exist. */
  guard(): OverflowGuard | null;
  /** A main-loop step begins: no `invoke_*` in progress, no overflow on its way out. */
  stepBegins(): OverflowGuard | null;
}

/** No guard: every overflow ends the backend. */
export const NO_OVERFLOWS: NativeOverflows = { guard: () => null, stepBegins: () => null };

/** PGlite's shadow stack: the 8 MB below `__heap_base`. */
const SHADOW_STACK_SIZE = 8 * 1024 * 1024;

/**
 * Raises a native stack overflow as PostgreSQL's 54001 from the innermost
 * frame that can catch an error, as if the function that frame called had
 * raised it at its first line: a call made from a function with a sigsetjmp
 * (PG_TRY's), or else the top of PGlite's main-loop step (guardNativeStack),
 * where PostgresMain's handler takes it.
 *
 * Emscripten builds PGlite's setjmp/longjmp on JavaScript exceptions: a
 * function that calls sigsetjmp makes its calls through `invoke_*` imports
 * (and the like made for its extensions' libraries), which catch a longjmp
 * (`e instanceof EmscriptenEH`), restore the shadow stack and return, and
 * the function then looks at where the longjmp goes. Any other exception,
 * the RangeError of an exhausted native stack among them, they pass on,
 * past every PG_CATCH. So EmscriptenEH answers `instanceof` for an overflow
 * too, the first time an `invoke_*` asks (the innermost): it raises 54001
 * there (errstart … errfinish, through `raise`), and the longjmp that makes
 * is the one the `invoke_*` hands on: the PG_CATCH blocks run, the
 * transaction aborts, the session goes on. (A raise that goes to
 * PostgresMain's handler is PGlite's exit to its main loop, thrown on.)
 * The check costs nothing on any call that does not throw.
 *
 * The frames the overflow unwound are gone, and what they pointed
 * PostgreSQL at with them: their ErrorContextCallbacks lie in the part of
 * the shadow stack below the `invoke_*`'s (restored before it asks), which
 * the raise's own frames reuse, and are taken off error_context_stack; an
 * error in progress (one the overflow cut short) is flushed.
 * PG_exception_stack is the innermost sigsetjmp's, the caller's or further
 * out: no frame the overflow unwound had one (its calls would have been
 * `invoke_*`s). If errfinish's context callbacks run out of stack too, the
 * error is raised again without them (no CONTEXT lines). An overflow that
 * cannot be raised where it is first caught (no stack left for the raise
 * even there, or inside a critical section, where errstart would make it a
 * PANIC) goes on to end the backend, and no frame further out raises it:
 * that would skip the PG_CATCH blocks of the frames between. Any other
 * JavaScript error is left to end the backend at the main loop.
 *
 * An overflow is a call that did not begin, as a callee's ERROR at its first
 * line: what the caller had half-changed is what such an ERROR would leave
 * (changes to shared pages are made inside critical sections).
 */
export function guardInvokes(
  env: Record<string, unknown>,
  tools: () => WasmTools | null,
): NativeOverflows {
  let guard: OverflowGuard | null = null;
  const overflows: NativeOverflows = {
    guard: () => {
      if (guard === null) {
        const t = tools();
        if (t !== null) guard = new OverflowGuard(t);
      }
      return guard;
    },
    stepBegins: () => overflows.guard()?.stepBegins() ?? null,
  };
  // EmscriptenEH, the class of what an `invoke_*` catches: the base of what
  // the glue's _emscripten_throw_longjmp throws.
  const throwLongjmp = env["_emscripten_throw_longjmp"];
  let longjmp: unknown = null;
  if (typeof throwLongjmp === "function") {
    try {
      throwLongjmp();
    } catch (e) {
      longjmp = e;
    }
  }
  const longjmpClass = longjmp === null ? null : Object.getPrototypeOf(longjmp);
  const eh = longjmpClass === null ? null : Object.getPrototypeOf(longjmpClass)?.constructor;
  // A glue without one (longjmp made otherwise): no overflow is raised, not
  // even at the step's top, which could not tell whether it passed a
  // PG_CATCH; every one ends the backend, as before (tests/e2e/hostile/
  // deep_recursion… would fail).
  if (typeof eh !== "function" || eh === Object) return NO_OVERFLOWS;
  const ordinary = (v: unknown) => Function.prototype[Symbol.hasInstance].call(eh, v);
  Object.defineProperty(eh, Symbol.hasInstance, {
    value: (v: unknown) =>
      ordinary(v) ||
      (v instanceof RangeError && (guard ?? overflows.guard())?.caughtByInvoke(v) === true),
  });
  return overflows;
}

/** The message of this runtime's RangeError for an exhausted native stack. */
function overflowMessage(): string {
  const deeper = (n: number): number => deeper(n + 1) + 1;
  try {
    deeper(0);
  } catch (e) {
    if (e instanceof RangeError) return e.message;
  }
  throw new Error("no RangeError for an exhausted stack");
}

class OverflowGuard {
  readonly #tools: WasmTools;
  readonly #ex: OverflowExports;
  readonly #exceptionStack: number;
  readonly #contextStack: number;
  readonly #critSectionCount: number;
  /** The shadow stack's lowest address. */
  readonly #stackLow: number;
  /** A native stack overflow's RangeError message in this runtime. */
  readonly #overflowMessage = overflowMessage();
  /**
   * A JavaScript error (an overflow that could not be raised among them)
   * is on its way out of this step: every frame passes it on, to end the
   * backend.
   */
  #passingOn = false;

  constructor(tools: WasmTools) {
    this.#tools = tools;
    this.#ex = tools.ex as unknown as OverflowExports;
    for (
      const g of [
        "error_context_stack",
        "PG_exception_stack",
        "CritSectionCount",
        "__heap_base",
      ] as const
    ) {
      if (!(this.#ex[g] instanceof WebAssembly.Global)) {
        throw new Error(`PGlite does not export ${g}`);
      }
    }
    for (
      const f of [
        "emscripten_stack_get_current",
        "_emscripten_stack_restore",
        "FlushErrorState",
      ] as const
    ) {
      if (typeof this.#ex[f] !== "function") throw new Error(`PGlite does not export ${f}`);
    }
    this.#exceptionStack = this.#ex.PG_exception_stack.value as number;
    this.#contextStack = this.#ex.error_context_stack.value as number;
    this.#critSectionCount = this.#ex.CritSectionCount.value as number;
    this.#stackLow = (this.#ex.__heap_base.value as number) - SHADOW_STACK_SIZE;
  }

  /** Whether address `p` lies in the shadow stack below `sp`: in a frame that is gone. */
  #gone(p: number, sp: number): boolean {
    return p >= this.#stackLow && p < sp;
  }

  stepBegins(): this {
    this.#passingOn = false;
    return this;
  }

  /**
   * Whether the overflow `e`, caught by an `invoke_*` (the shadow stack
   * restored to its caller's), was raised as 54001: its longjmp (Emscripten's
   * `__THREW__` set) is then the `invoke_*`'s to hand on. Throws what the
   * raise threw if it is no longjmp (PGlite's exit to its main loop).
   */
  caughtByInvoke(e: RangeError): boolean {
    if (this.#passingOn) return false;
    // Until it is raised: whatever throws in here (there may be next to no
    // stack left for a call), it is passed on.
    this.#passingOn = true;
    if (e.message !== this.#overflowMessage) {
      this.#passingOn = false;
      return false;
    }
    const sp = this.stackPointer();
    const jump = this.exceptionStack();
    if (this.#gone(jump, sp)) return false;
    const view = this.#tools.view();
    let context = this.contextStack();
    // ErrorContextCallback.previous
    while (this.#gone(context, sp)) context = view.getUint32(context, true);
    const thrown = this.raise(jump, context, sp);
    if (thrown === null) return false;
    this.#passingOn = false;
    if ((thrown as object | null)?.constructor?.name === "EmscriptenSjLj") return true;
    throw thrown;
  }

  /** PG_exception_stack: the sigsetjmp an ERROR raised now goes to. */
  exceptionStack(): number {
    return this.#tools.view().getUint32(this.#exceptionStack, true);
  }

  /** error_context_stack: the context callbacks an ERROR raised now calls. */
  contextStack(): number {
    return this.#tools.view().getUint32(this.#contextStack, true);
  }

  stackPointer(): number {
    return this.#ex.emscripten_stack_get_current();
  }

  /**
   * The overflow `e` raised as 54001 from shadow stack pointer `sp`, with
   * `jump` and `context` as PG_exception_stack and error_context_stack:
   * what the raise threw (a longjmp, PGlite's exit to its main loop). Throws
   * `e` if it is no overflow or cannot be raised.
   */
  raiseFrom(e: unknown, jump: number, context: number, sp: number): unknown {
    if (this.#passingOn) throw e;
    // Until it is raised: whatever throws in here, it is passed on.
    this.#passingOn = true;
    // A longjmp or an exit (no JavaScript error) goes on as it is.
    if (!(e instanceof Error)) {
      this.#passingOn = false;
      throw e;
    }
    if (!(e instanceof RangeError) || e.message !== this.#overflowMessage) throw e;
    // A sigsetjmp below `sp` still current: the overflow unwound its frame
    // (an `invoke_*` that could not even ask): its PG_CATCH was skipped.
    if (this.#gone(this.exceptionStack(), sp)) throw e;
    const thrown = this.raise(jump, context, sp);
    if (thrown === null) throw e;
    this.#passingOn = false;
    return thrown;
  }

  /**
   * 54001 raised from shadow stack pointer `sp`, with `jump` and `context`
   * as PG_exception_stack and error_context_stack: what the raise threw (a
   * longjmp, PGlite's exit to its main loop), or null if it could not be
   * raised (no stack left for it, or in a critical section).
   */
  raise(jump: number, context: number, sp: number): unknown {
    const ex = this.#ex;
    if (this.#tools.view().getInt32(this.#critSectionCount, true) !== 0) return null;
    for (const callbacks of [context, 0]) {
      ex._emscripten_stack_restore(sp);
      const view = this.#tools.view();
      view.setUint32(this.#exceptionStack, jump, true);
      view.setUint32(this.#contextStack, callbacks, true);
      try {
        ex.FlushErrorState();
        this.#tools.raise("54001", "stack depth limit exceeded", undefined, {
          hint:
            "The embedded engine's native stack ran out before max_stack_depth was reached: the statement nests too deeply.",
        });
      } catch (thrown) {
        ex._emscripten_stack_restore(sp);
        if (!(thrown instanceof RangeError)) return thrown;
      }
    }
    return null;
  }
}
