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
if (import.meta.main) {
  const { default: process } = await import("node:process");
  const { main } = await import("./src/cli/main.ts");
  process.exitCode = await main(process.argv.slice(2));
}
