/**
 * The child side of background workers: `backgroundWorkerMain`, the entry
 * every worker is launched through (PostgreSQL's BackgroundWorkerMain), and
 * `registerDynamicBackgroundWorker` for a backend or worker that starts
 * workers at run time.
 *
 * `backgroundWorkerMain` installs the default signal handling PostgreSQL
 * gives a worker (SIGTERM: FATAL "terminating background worker ... due to
 * administrator command" and exit 1; SIGQUIT: exit 2 at once), then imports
 * the worker's module and runs its exported function with a
 * `BackgroundWorkerEnv`. A handler the worker registers for a signal
 * replaces the default one. It must stay light: it is imported in every
 * worker, before the worker's own code.
 */

import { ereport } from "../elog.ts";
import {
  type BackgroundWorkerHandle,
  type BackgroundWorkerSpec,
  type BgwHandleStatus,
  makeBackgroundWorkerHandle,
} from "./bgworker.ts";
import { CATCHABLE_SIGNALS } from "./backendtype.ts";
import type { CatchableSignal, ChildEnv, ChildMain } from "../adapter.ts";
import { PostmasterLink } from "./pmsignal.ts";

/** PostgreSQL's MyBgworkerEntry: what a worker knows about itself. */
export interface BgWorkerEntry {
  readonly name: string;
  readonly type: string;
  readonly flags: number;
  readonly mainArg: unknown;
  readonly extra: Uint8Array;
}

/** What a worker's main receives: its ChildEnv plus its registration. */
export interface BackgroundWorkerEnv extends ChildEnv {
  readonly worker: BgWorkerEntry;
  /** The parameters the postmaster gives every child (`childParams`). */
  readonly shared: unknown;
}

/** A worker's entry point (bgw_function_name). */
export type BackgroundWorkerMain = (
  env: BackgroundWorkerEnv,
) => Promise<number | void> | number | void;

/** The `params` the postmaster passes a worker. */
export interface BgWorkerParams {
  readonly bgworker: BackgroundWorkerSpec;
  readonly shared: unknown;
}

function isBgWorkerParams(p: unknown): p is BgWorkerParams {
  return typeof p === "object" && p !== null && "bgworker" in p;
}

/** BackgroundWorkerMain: the entry the postmaster launches every worker through. */
export const backgroundWorkerMain: ChildMain = async (env) => {
  if (!isBgWorkerParams(env.params)) {
    throw new TypeError("backgroundWorkerMain started without background worker parameters");
  }
  const spec = env.params.bgworker;
  const entry: BgWorkerEntry = {
    name: spec.name,
    type: spec.type ?? spec.name,
    flags: spec.flags,
    mainArg: spec.mainArg,
    extra: spec.extra ?? new Uint8Array(0),
  };

  let exitWith: (code: number) => void = () => {};
  const exitRequested = new Promise<number>((resolve) => (exitWith = resolve));
  const overrides = new Map<CatchableSignal, () => void>();
  const defaults: Partial<Record<CatchableSignal, () => void>> = {
    // bgworker_die
    SIGTERM: () => {
      ereport(
        "FATAL",
        `terminating background worker "${spec.name}" due to administrator command`,
        {
          code: "57P01",
          category: "bgworker",
        },
      );
      exitWith(1);
    },
    // Shared state may be corrupt: leave at once, without cleanup.
    SIGQUIT: () => exitWith(2),
  };
  for (const sig of CATCHABLE_SIGNALS) {
    env.onSignal(sig, () => (overrides.get(sig) ?? defaults[sig])?.());
  }

  const workerEnv: BackgroundWorkerEnv = {
    pid: env.pid,
    kind: env.kind,
    name: env.name,
    params: env.params,
    client: env.client,
    abort: env.abort,
    worker: entry,
    shared: env.params.shared,
    onSignal: (sig, handler) => void overrides.set(sig, handler),
    post: (m) => env.post(m),
    get onMessage() {
      return env.onMessage;
    },
    set onMessage(h) {
      env.onMessage = h;
    },
  };

  const mod = (await import(spec.entry.module)) as Record<string, unknown>;
  const fn = mod[spec.entry.export];
  if (typeof fn !== "function") {
    ereport(
      "FATAL",
      `could not find function "${spec.entry.export}" in file "${spec.entry.module}"`,
      { code: "42883", category: "bgworker" },
    );
    return 1;
  }
  const result = await Promise.race([
    Promise.resolve((fn as BackgroundWorkerMain)(workerEnv)),
    exitRequested,
  ]);
  return typeof result === "number" ? result : 0;
};

/**
 * RegisterDynamicBackgroundWorker, from a child: asks the postmaster to
 * register the worker and returns its handle, or null when every
 * registration is in use. `notifyPid` defaults to the caller, so the handle's
 * waits are woken by notices instead of polling.
 */
export async function registerDynamicBackgroundWorker(
  link: PostmasterLink,
  worker: BackgroundWorkerSpec,
): Promise<BackgroundWorkerHandle | null> {
  const spec = { ...worker, notifyPid: worker.notifyPid ?? link.env.pid };
  const id = await link.request({ op: "register-bgworker", worker: spec });
  if (typeof id !== "number") return null;
  const died = new Promise<void>((resolve) => {
    if (link.env.abort.aborted) resolve();
    link.env.abort.addEventListener("abort", () => resolve(), { once: true });
  });
  return makeBackgroundWorkerHandle(id, {
    status: async (h) =>
      (await link.request({ op: "bgworker-status", handle: h })) as {
        status: BgwHandleStatus;
        pid: number;
      },
    terminate: async (h) => {
      await link.request({ op: "terminate-bgworker", handle: h });
    },
    subscribe: (h, fn) => link.onBgworkerNotify((handle) => handle === h && fn()),
    died,
  });
}
