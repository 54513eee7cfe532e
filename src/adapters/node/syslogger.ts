/**
 * The log collector child for Bun and Deno: `SysLoggerMain` is the ChildMain
 * the postmaster launches when logging_collector = on (entry
 * `SYSLOGGER_ENTRY`), with `SysLoggerParams` as its params. The loop itself
 * is in src/core/syslogger.ts; this file only supplies node:fs.
 */

import type { ChildEntry, ChildEnv, ChildMain } from "../../core/adapter.ts";
import { sysLoggerMain } from "../../core/syslogger.ts";
import { nodeLogFiles } from "./logfiles.ts";

export const SysLoggerMain: ChildMain = (env: ChildEnv) =>
  sysLoggerMain(env, { files: nodeLogFiles });

/** How to launch the collector: this module's `SysLoggerMain`. */
export const SYSLOGGER_ENTRY: ChildEntry = { module: import.meta.url, export: "SysLoggerMain" };
