/**
 * The start-up tracer: where `pgts start` spends its time until the first
 * query is answered. Off unless the server turns it on
 * (PGTS_STARTUP_TRACE=1, src/cli/start.ts); then each step logs one
 * LOG line "startup trace: T ms (+D) [THREAD] STEP", T from the process's
 * start and D since the step before on the same thread. Steps on another
 * thread (the engine's Worker) are timed there, as wall-clock instants,
 * and reported here when its answer arrives (`startupTraceAt`), so that
 * every line shares one origin: what waits on what shows as a step that
 * starts only after another thread's step ended.
 *
 * It decides nothing and must never cost anything when off: a step is one
 * test of a flag. Web-standard APIs only.
 */

import { ereport } from "./elog.ts";

/** The process's start as a wall-clock instant (ms since the epoch); null while off. */
let origin: number | null = null;
/** The last step's T, per thread. */
const last = new Map<string, number>();
/** True once the first answered query was traced: later queries are not. */
let done = false;

/** Turns the tracer on; `origin` is the process's start (ms since the epoch). */
export function enableStartupTrace(startedAt: number): void {
  origin = startedAt;
  last.clear();
  done = false;
}

/** Whether steps are traced (for a thread that must say so to its Worker). */
export function startupTraceEnabled(): boolean {
  return origin !== null && !done;
}

/** The current instant as the tracer counts it (ms since the epoch). */
export function traceClock(): number {
  return performance.timeOrigin + performance.now();
}

/** Logs a step that ends now. */
export function startupTrace(step: string): void {
  if (origin === null || done) return;
  startupTraceAt(step, traceClock());
}

/** Logs a step of `thread` that ended at `at` (ms since the epoch, as `traceClock`). */
export function startupTraceAt(step: string, at: number, thread = "main"): void {
  if (origin === null || done) return;
  const t = at - origin;
  const d = t - (last.get(thread) ?? 0);
  last.set(thread, t);
  ereport("LOG", `startup trace: ${t.toFixed(0)} ms (+${d.toFixed(0)}) [${thread}] ${step}`, {
    category: "postmaster",
  });
}

/** The last step: the first query answered. Nothing is traced after it. */
export function startupTraceEnd(step: string): void {
  startupTrace(step);
  done = true;
}
