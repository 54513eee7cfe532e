/**
 * pgts: PostgreSQL's process architecture as a TypeScript runtime for Bun and
 * Deno. This module is the public surface; internals are not exported here.
 *
 * @module
 */

export { ERRCODE, PgError } from "./src/core/elog.ts";
export type { ErrorFields, Severity } from "./src/core/elog.ts";

export { ConfigFileError, Guc } from "./src/core/guc/mod.ts";
export type { GucSnapshot, ReloadResult } from "./src/core/guc/mod.ts";
export { configureLogging } from "./src/core/log.ts";
export type { LineSink, LogSettings } from "./src/core/log.ts";
export * from "./src/core/mcxt/mod.ts";

// The `pgts` command (`bun run mod.ts ...`, `deno run -A mod.ts ...`).
// A compiled binary starts its own children as `pgts --pgts-child`; such a
// process runs the child and exits by itself.
if (import.meta.main) {
  const { runChildFromArgv } = await import("./src/adapters/runtime.ts");
  if (!(await runChildFromArgv())) {
    const { default: process } = await import("node:process");
    const { main } = await import("./src/cli/main.ts");
    // ExitPostmaster's counterpart for the command: whatever handles are
    // left (an engine's worker thread after an immediate shutdown), the
    // process ends with the command's status.
    process.exit(await main(process.argv.slice(2)));
  }
}
