/**
 * Serving the HTTP adapter's fetch handler on the runtime's own HTTP server,
 * picked by the one runtime check of src/adapters/runtime.ts: `Bun.serve`
 * under Bun, `Deno.serve` under Deno. A host that only calls a
 * `fetch(request)` handler (an edge function, `deno serve`) needs none of
 * this: it is given `{ fetch }` (see `httpHandler` in mod.ts).
 *
 * Each runtime hands over the client's address its own way; both end up in
 * the app's `HttpBindings.remoteAddress`, which pg_hba.conf is matched on.
 */

import { detectRuntime } from "../adapters/runtime.ts";
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

export interface Served {
  readonly hostname: string;
  readonly port: number;
  close(): Promise<void>;
}

interface BunServer {
  readonly port: number;
  requestIP(req: Request): { address: string } | null;
  stop(closeActiveConnections?: boolean): Promise<void> | void;
}
interface BunLike {
  serve(options: {
    port: number;
    hostname: string;
    tls?: { cert: string; key: string };
    fetch(req: Request, server: BunServer): Promise<Response> | Response;
  }): BunServer;
}
interface DenoHttpServer {
  readonly addr: { port: number };
  shutdown(): Promise<void>;
}
interface DenoLike {
  serve(
    options: { port: number; hostname: string; cert?: string; key?: string; onListen?: () => void },
    handler: (
      req: Request,
      info: { remoteAddr: { hostname: string } },
    ) => Promise<Response> | Response,
  ): DenoHttpServer;
}

/** Listens with the runtime's HTTP server and serves `handler` until `close()`. */
export function serve(handler: FetchHandler, options: ServeOptions = {}): Promise<Served> {
  const port = options.port ?? 0;
  const hostname = options.hostname ?? "127.0.0.1";
  let runtime;
  try {
    runtime = detectRuntime();
  } catch {
    throw new TypeError(
      "No HTTP server in this runtime: export `{ fetch }` for the host to call instead",
    );
  }
  const g = globalThis as { Bun?: BunLike; Deno?: DenoLike };
  switch (runtime) {
    case "bun": {
      const server = g.Bun!.serve({
        port,
        hostname,
        ...(options.tls === undefined ? {} : { tls: { ...options.tls } }),
        fetch: (req, s) => {
          const ip = s.requestIP(req)?.address;
          return handler(req, ip === undefined ? {} : { remoteAddress: ip });
        },
      });
      return Promise.resolve({
        hostname,
        port: server.port,
        close: async () => void await server.stop(true),
      });
    }
    case "deno": {
      const server = g.Deno!.serve(
        { port, hostname, ...(options.tls ?? {}), onListen: () => {} },
        (req, info) => handler(req, { remoteAddress: info.remoteAddr.hostname }),
      );
      return Promise.resolve({ hostname, port: server.addr.port, close: () => server.shutdown() });
    }
    default: {
      const never: never = runtime;
      throw new TypeError(`Unknown runtime ${String(never)}`);
    }
  }
}
