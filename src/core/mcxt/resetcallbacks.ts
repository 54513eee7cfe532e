/**
 * Running a memory context's reset callbacks (PostgreSQL's
 * MemoryContextCallResetCallbacks), what happens when they fail, and the
 * callback that disposes a resource a context owns.
 *
 * One reset or delete runs the callbacks of a whole subtree; a callback that
 * throws must not keep the others from running, or the resources they own
 * would leak. So every callback runs, what they throw is collected in a
 * `CallbackSink` and thrown once at the end (one error as is, several as an
 * AggregateError), and the promises of asynchronous disposal are kept: awaited
 * by `Symbol.asyncDispose`, reported as a WARNING when they reject after a
 * synchronous reset. Nothing here touches a context's memory.
 */

import { ereport } from "../elog.ts";

/** A reset callback; a returned promise is awaited by async disposal only. */
export type ResetCallback = () => void | PromiseLike<void>;

/** What the callbacks of one reset or delete threw and returned. */
export interface CallbackSink {
  readonly errors: unknown[];
  readonly promises: PromiseLike<void>[];
  /** The context the reset or delete began at, for the WARNING. */
  readonly name: string;
}

export function newSink(name: string): CallbackSink {
  return { errors: [], promises: [], name };
}

/**
 * Runs `callbacks` newest first, emptying the list. Each is popped before it
 * is called, so a callback that throws is not run again.
 */
export function runResetCallbacks(callbacks: ResetCallback[], sink: CallbackSink): void {
  while (callbacks.length > 0) {
    const callback = callbacks.pop() as ResetCallback;
    try {
      const result = callback();
      if (isThenable(result)) sink.promises.push(result);
    } catch (e) {
      sink.errors.push(e);
    }
  }
}

/**
 * The reset callback that disposes `resource` (MemoryContext.own): its
 * `Symbol.dispose`, else its `Symbol.asyncDispose`.
 */
export function disposerOf(resource: Disposable | AsyncDisposable): ResetCallback {
  const sync = (resource as Partial<Disposable>)[Symbol.dispose];
  const async = (resource as Partial<AsyncDisposable>)[Symbol.asyncDispose];
  if (typeof sync === "function") return () => sync.call(resource);
  if (typeof async === "function") return () => async.call(resource);
  throw new TypeError(
    "Cannot own resource: it has neither Symbol.dispose nor Symbol.asyncDispose",
  );
}

/** Throws what the callbacks threw; reports rejections of sync-disposed async work. */
export function finishSync(sink: CallbackSink): void {
  for (const p of sink.promises) {
    Promise.resolve(p).catch((e: unknown) => reportAsyncFailure(sink.name, e));
  }
  throwCollected(sink.errors);
}

export function throwCollected(errors: unknown[]): void {
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) {
    throw new AggregateError(errors, "Reset callbacks of a memory context failed");
  }
}

function reportAsyncFailure(name: string, e: unknown): void {
  ereport("WARNING", `could not release a resource owned by memory context "${name}"`, {
    detail: e instanceof Error ? e.message : String(e),
  });
}

function isThenable(v: unknown): v is PromiseLike<void> {
  return typeof v === "object" && v !== null &&
    typeof (v as { then?: unknown }).then === "function";
}
