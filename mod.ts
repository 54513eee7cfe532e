/**
 * pgts: PostgreSQL's process architecture as a TypeScript runtime for Bun and
 * Deno. This module is the public surface; internals are not exported here.
 *
 * @module
 */

export { ERRCODE, PgError } from "./src/core/elog.ts";
export type { ErrorFields, Severity } from "./src/core/elog.ts";
