/** A background worker for the admin tests: runs until SIGTERM. */

import type { BackgroundWorkerMain } from "../../src/core/postmaster/mod.ts";

export const sleeperMain: BackgroundWorkerMain = (env) =>
  new Promise<number>((resolve) => env.onSignal("SIGTERM", () => resolve(0)));
