/**
 * Built-in mains for auxiliary children the caller did not provide. The
 * postmaster always runs a startup process, because PM_RUN is defined as
 * "the startup process exited 0"; without recovery work to do (the engine's
 * first phase is its own recovery), the default one has nothing to do.
 */

import type { ChildEntry, ChildMain } from "../adapter.ts";

/** A startup process with nothing to recover: exits 0 at once. */
export const trivialStartupMain: ChildMain = () => 0;

export const TRIVIAL_STARTUP_ENTRY: ChildEntry = {
  module: new URL("./auxmains.ts", import.meta.url).href,
  export: "trivialStartupMain",
};

export const BGWORKER_MAIN_ENTRY: ChildEntry = {
  module: new URL("./bgworker_main.ts", import.meta.url).href,
  export: "backgroundWorkerMain",
};
