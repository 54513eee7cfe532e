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

// The HTTP adapter (SQL over HTTP, admin API), loaded on first use so that
// the command and the children it starts do not pay for it.
import type { HttpServerOptions, Served, ServeOptions } from "./src/http/mod.ts";
import type { HttpServer } from "./src/http/server.ts";
import { parseUpstreamUrl } from "./src/engines/upstream/url.ts";
export type {
  HttpEngineConfig,
  HttpServer,
  HttpServerOptions,
  HttpUpstreamConfig,
  Served,
  ServeOptions,
} from "./src/http/mod.ts";

/**
 * A `{ fetch }` handler for hosts that call one (`export default`, `deno
 * serve`, `Deno.serve(handler.fetch)`): the server starts on the first request.
 * `engine: "postgres://user:password@host:port/db"` puts it in front of a
 * real PostgreSQL (no file system needed); a malformed URL is a RangeError here.
 */
export function httpHandler(
  options: HttpServerOptions = {},
): { fetch(request: Request, info?: unknown): Promise<Response> } {
  const engine = options.engine;
  const url = typeof engine === "string"
    ? engine
    : engine !== undefined && "upstream" in engine
    ? engine.upstream
    : null;
  if (url !== null) parseUpstreamUrl(url);
  type Handler = { fetch(request: Request, info?: unknown): Promise<Response> };
  let handler: Promise<Handler> | undefined;
  return {
    fetch: async (request, info) =>
      await (await (handler ??= import("./src/http/mod.ts").then((m) => m.httpHandler(options))))
        .fetch(request, info),
  };
}

/** Starts the HTTP adapter and listens (Bun.serve or Deno.serve). */
export async function serveHttp(
  options: HttpServerOptions & ServeOptions = {},
): Promise<{ server: HttpServer; served: Served }> {
  return await (await import("./src/http/mod.ts")).serveHttp(options);
}

// The `pgts` command (`bun run mod.ts ...`, `deno run -A mod.ts ...`).
// A compiled binary starts its own children as `pgts --pgts-child`; such a
// process runs the child and exits by itself.
if (import.meta.main) {
  const { currentRuntime } = await import("./src/adapters/runtime.ts");
  if (!(await currentRuntime().runChildFromArgv())) {
    const { default: process } = await import("node:process");
    const { main } = await import("./src/cli/main.ts");
    // ExitPostmaster's counterpart for the command: whatever handles are
    // left (an engine's worker thread after an immediate shutdown), the
    // process ends with the command's status.
    process.exit(await main(process.argv.slice(2)));
  }
}
