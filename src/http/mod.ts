/**
 * The HTTP adapter: pgts where each HTTP request is one backend run,
 * admitted and supervised by the postmaster core. It speaks Neon's
 * SQL-over-HTTP protocol on `POST /sql` (so `@neondatabase/serverless`'s
 * `neon()` works against it unchanged), has a token-guarded admin API under
 * `/admin`, and a psql admin console as the virtual database `pgts`.
 *
 * Three ways to run it, one app:
 *
 * ```ts
 * // Bun or Deno, listening:
 * const { server, served } = await serveHttp({ port: 8080, engine: { dataDir: "memory://" } });
 * // A host that calls fetch (an edge function, `deno serve`):
 * export default httpHandler({ engine: { dataDir: "memory://" } });
 * // The same in front of a real PostgreSQL, with no file system:
 * export default httpHandler({ engine: "postgres://pgts:secret@db.internal:5432/app" });
 * // In-process (tests): (await HttpServer.start()).app.request("/sql", ...)
 * ```
 *
 * @module
 */

import { serve, type Served, type ServeOptions } from "./serve.ts";
import { engineConfig, HttpServer, type HttpServerOptions } from "./server.ts";

export { DEFAULT_HBA, DEFAULT_MAX_BODY_BYTES, HttpServer } from "./server.ts";
export type { HttpEngineConfig, HttpServerOptions } from "./server.ts";
export type { HttpUpstreamConfig } from "./upstream.ts";
export { serve } from "./serve.ts";
export type { FetchHandler, Served, ServeOptions } from "./serve.ts";
export type { HttpBindings } from "./app.ts";
export type { ActivityRow, AdminSource, AdminStatus, StopMode } from "./admin.ts";
export { ADMIN_DATABASE, withAdminConsole } from "./console.ts";

/**
 * A `{ fetch }` object for hosts that take a handler (`export default`,
 * `Deno.serve(handler.fetch)`): the server starts on the first request (the
 * cold start) and serves every later one. A malformed upstream URL is a
 * RangeError here, not a 503 later.
 */
export function httpHandler(
  options: HttpServerOptions = {},
): { fetch(request: Request, info?: unknown): Promise<Response> } {
  engineConfig(options.engine);
  let started: Promise<HttpServer> | null = null;
  return {
    async fetch(request: Request, info?: unknown): Promise<Response> {
      started ??= HttpServer.start(options);
      let server: HttpServer;
      try {
        server = await started;
      } catch (e) {
        started = null; // the next request tries again
        return Response.json({
          message: `the server could not start: ${e instanceof Error ? e.message : String(e)}`,
          code: "57P03",
        }, { status: 503 });
      }
      // Deno.serve passes the client's address as info.remoteAddr; other
      // hosts pass their own objects (or nothing), and the address is unknown.
      const remote = (info as { remoteAddr?: { hostname?: unknown } } | undefined)?.remoteAddr;
      return await server.fetch(
        request,
        typeof remote?.hostname === "string" ? { remoteAddress: remote.hostname } : {},
      );
    },
  };
}

/** Starts a server and listens on the runtime's HTTP server (Bun.serve or Deno.serve). */
export async function serveHttp(
  options: HttpServerOptions & ServeOptions = {},
): Promise<{ server: HttpServer; served: Served }> {
  const server = await HttpServer.start(options);
  try {
    const served = await serve(server.fetch, options);
    void server.exited.then(() => served.close().catch(() => {}));
    return { server, served };
  } catch (e) {
    await server.stop("immediate");
    throw e;
  }
}
