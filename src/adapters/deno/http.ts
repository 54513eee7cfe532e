/**
 * Deno's face of the HTTP front end: `Deno.serve`, the client's address from
 * the handler's `remoteAddr`. Loaded only under Deno, by
 * src/adapters/runtime.ts.
 */

import type { HttpHandler, HttpListenOptions, HttpServing } from "../../core/adapter.ts";

interface DenoHttpServer {
  readonly addr: { port: number };
  shutdown(): Promise<void>;
}
interface DenoServe {
  serve(
    options: { port: number; hostname: string; cert?: string; key?: string; onListen?: () => void },
    handler: (
      req: Request,
      info: { remoteAddr: { hostname: string } },
    ) => Promise<Response> | Response,
  ): DenoHttpServer;
}

export function serveHttp(handler: HttpHandler, options: HttpListenOptions): HttpServing {
  const deno = (globalThis as { Deno?: DenoServe }).Deno!;
  const server = deno.serve(
    {
      port: options.port,
      hostname: options.hostname,
      ...(options.tls ?? {}),
      onListen: () => {},
    },
    (req, info) => handler(req, { remoteAddress: info.remoteAddr.hostname }),
  );
  return {
    hostname: options.hostname,
    port: server.addr.port,
    close: () => server.shutdown(),
  };
}
