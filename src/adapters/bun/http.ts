/**
 * Bun's face of the HTTP front end: `Bun.serve`, the client's address from
 * `server.requestIP`. Loaded only under Bun, by src/adapters/runtime.ts.
 */

import type { HttpHandler, HttpListenOptions, HttpServing } from "../../core/adapter.ts";

interface BunServer {
  readonly port: number;
  requestIP(req: Request): { address: string } | null;
  stop(closeActiveConnections?: boolean): Promise<void> | void;
}
interface BunServe {
  serve(options: {
    port: number;
    hostname: string;
    tls?: { cert: string; key: string };
    fetch(req: Request, server: BunServer): Promise<Response> | Response;
  }): BunServer;
}

export function serveHttp(handler: HttpHandler, options: HttpListenOptions): HttpServing {
  const bun = (globalThis as { Bun?: BunServe }).Bun!;
  const server = bun.serve({
    port: options.port,
    hostname: options.hostname,
    ...(options.tls === undefined ? {} : { tls: { ...options.tls } }),
    fetch: (req, s) => {
      const ip = s.requestIP(req)?.address;
      return handler(req, ip === undefined ? {} : { remoteAddress: ip });
    },
  });
  return {
    hostname: options.hostname,
    port: server.port,
    close: async () => void await server.stop(true),
  };
}
