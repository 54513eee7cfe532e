/**
 * Auxiliary and worker mains for postmaster tests: an engine that reports
 * ready and finishes on SIGUSR2, a checkpointer, a startup process that can
 * be slowed down, and background workers that sleep or exit with a code.
 */

import type { BackgroundWorkerMain } from "../../src/core/postmaster/bgworker_main.ts";
import type { ChildEnv, ChildMain, Signal } from "../../src/core/adapter.ts";
import { PostmasterLink } from "../../src/core/postmaster/pmsignal.ts";

type Catchable = Exclude<Signal, "SIGKILL">;

/** Resolves with the exit code the first mapped signal asks for; other signals are ignored. */
function exitOn(env: ChildEnv, codes: Partial<Record<Catchable, number>>): Promise<number> {
  return new Promise((resolve) => {
    const all: Catchable[] = ["SIGHUP", "SIGINT", "SIGTERM", "SIGQUIT", "SIGUSR1", "SIGUSR2"];
    for (const sig of all) {
      const code = codes[sig];
      env.onSignal(sig, () => code !== undefined && resolve(code));
    }
  });
}

function shared(env: ChildEnv): Record<string, unknown> {
  const p = env.params as { shared?: unknown } | null;
  return (typeof p?.shared === "object" && p.shared !== null ? p.shared : {}) as Record<
    string,
    unknown
  >;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The engine: ready after a moment; SIGUSR2 closes it cleanly (exit 0), SIGQUIT exits 2. */
export const testEngineMain: ChildMain = async (env) => {
  const link = new PostmasterLink(env);
  const exit = exitOn(env, { SIGUSR2: 0, SIGQUIT: 2 });
  await sleep(Number(shared(env).engineDelayMs ?? 1));
  link.sendSignal("engine-ready");
  return await exit;
};

/** The checkpointer: SIGUSR2 after the shutdown checkpoint (exit 0), SIGQUIT exits 2. */
export const testCheckpointerMain: ChildMain = (env) => exitOn(env, { SIGUSR2: 0, SIGQUIT: 2 });

/** A startup process that reports recovery and takes `startupDelayMs` over it. */
export const testStartupMain: ChildMain = async (env) => {
  const link = new PostmasterLink(env);
  const exit = exitOn(env, { SIGTERM: 1, SIGQUIT: 2 });
  link.sendSignal("recovery-started");
  const delay = Number(shared(env).startupDelayMs ?? 0);
  return await Promise.race([sleep(delay).then(() => 0), exit]);
};

/** A worker that runs until told to stop (SIGTERM: FATAL, exit 1 by default). */
export const sleepingWorker: BackgroundWorkerMain = (env) =>
  new Promise<number>((resolve) => {
    env.abort.addEventListener("abort", () => resolve(0), { once: true });
  });

/** A worker that exits with `mainArg.code` after `mainArg.delayMs`. */
export const exitingWorker: BackgroundWorkerMain = async (env) => {
  const arg = (env.worker.mainArg ?? {}) as { code?: number; delayMs?: number };
  await sleep(arg.delayMs ?? 0);
  return arg.code ?? 0;
};

/** A child that ignores every signal it can, so only SIGKILL ends it. */
export const stubbornMain: ChildMain = (env) =>
  new Promise<number>((resolve) => {
    for (const sig of ["SIGHUP", "SIGINT", "SIGTERM", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const) {
      env.onSignal(sig, () => {});
    }
    env.abort.addEventListener("abort", () => resolve(0), { once: true });
  });
