/**
 * Serving the HTTP adapter's fetch handler on the runtime's own HTTP server
 * (`Bun.serve` under Bun, `Deno.serve` under Deno: src/adapters/bun/http.ts
 * and src/adapters/deno/http.ts, picked by src/adapters/runtime.ts, the one
 * place that branches on the runtime). A host that only calls a
 * `fetch(request)` handler (an edge function, `deno serve`) needs none of
 * this: it is given `{ fetch }` (see `httpHandler` in mod.ts).
 *
 * Each runtime hands over the client's address its own way; both end up in
 * the app's `HttpBindings.remoteAddress`, which pg_hba.conf is matched on.
 */

import type { HttpServing } from "../core/adapter.ts";
import { currentRuntime } from "../adapters/runtime.ts";
import type { HttpBindings } from "./app.ts";

export type FetchHandler = (
  request: Request,
  bindings: HttpBindings,
) => Promise<Response> | Response;

export interface ServeOptions {
  /** Default 0: the kernel picks. */
  readonly port?: number;
  /** Default "127.0.0.1". */
  readonly hostname?: string;
  /** Serve HTTPS with this certificate chain and key (PEM text); default plain HTTP. */
  readonly tls?: { readonly cert: string; readonly key: string };
}

export type Served = HttpServing;

/** Listens with the runtime's HTTP server and serves `handler` until `close()`. */
export async function serve(handler: FetchHandler, options: ServeOptions = {}): Promise<Served> {
  let serveHttp;
  try {
    serveHttp = await currentRuntime().serveHttp();
  } catch {
    throw new TypeError(
      "No HTTP server in this runtime: export `{ fetch }` for the host to call instead",
    );
  }
  return serveHttp(handler, {
    port: options.port ?? 0,
    hostname: options.hostname ?? "127.0.0.1",
    ...(options.tls === undefined ? {} : { tls: options.tls }),
  });
}
