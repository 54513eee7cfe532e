/**
 * The HTTP adapter in front of a real PostgreSQL (`engine: "postgres://..."`):
 * an edge function with pgts in front of a regional database. Nothing here
 * touches a file system; the engine is the upstream engine of
 * src/engines/upstream, dialled with the host's own TCP: Bun's sockets
 * under Bun, node:net under Deno, or the `connect` the caller passes (a host
 * with a socket API of its own).
 *
 * By default every request is its own upstream session (session mode): its
 * role lookup and its session each open an upstream connection, closed
 * when the request ends. With `pool` (`pool_mode = transaction` under
 * `pgts serve-http`) the requests share the transaction pool's connections
 * instead (src/engines/upstream/pool.ts): a request borrows one for each of
 * its transactions, and role lookups use two kept open. Either way a temp
 * table, a SET or a prepared statement lasts one request, as it does on
 * Neon's own HTTP endpoint.
 */

import type { Engine } from "../core/engine/types.ts";
import type { Connection } from "../core/adapter.ts";
import {
  parseUpstreamUrl,
  type PoolModes,
  type PoolSettings,
  type UpstreamAddress,
  type UpstreamConnect,
  UpstreamEngine,
  UpstreamPool,
  type UpstreamStartTls,
} from "../engines/upstream/mod.ts";
import { currentRuntime } from "../adapters/runtime.ts";
import type { AuthFileLookup } from "../engines/upstream/auth-file.ts";

/** An upstream PostgreSQL as the HTTP adapter's engine. */
export interface HttpUpstreamConfig {
  /** `postgres://user:password@host:port/db`: pgts's own credentials upstream. */
  readonly upstream: string;
  /** Dials the upstream; default: the runtime's TCP (Bun.connect, node:net). */
  readonly connect?: UpstreamConnect;
  /** Bounds connecting and the startup exchange; default 10 s. */
  readonly connectTimeoutMs?: number;
  /** Requests share a transaction pool with these settings (pgbouncer's); absent: a session each. */
  readonly pool?: Partial<PoolSettings>;
  /** With `pool`: each (database, user) pool's mode (default: transaction for all). */
  readonly poolModes?: PoolModes;
  /** pgbouncer's userlist (src/engines/upstream/auth-file.ts): secrets and upstream logins. */
  readonly authFile?: AuthFileLookup;
}

/** Dials with the runtime's own sockets; a host without them needs `connect`. */
export async function dialUpstream(address: UpstreamAddress): Promise<Connection> {
  let dial;
  try {
    dial = await currentRuntime().dialer();
  } catch {
    throw new TypeError(
      "No TCP client in this runtime: pass engine.connect to reach the upstream",
    );
  }
  return address.family === "tcp"
    ? await dial.connectTcp(address.host, address.port)
    : await dial.connectUnix(address.path);
}

/**
 * Checks the URL now, so that a wrong one is a RangeError when the handler
 * is made and not a 503 on the first request.
 */
export function checkUpstreamConfig(config: HttpUpstreamConfig): void {
  parseUpstreamUrl(config.upstream);
}

/** node:tls, loaded only by a connection whose sslmode asks for TLS. */
const startTls: UpstreamStartTls = async (raw, options) =>
  (await import("../adapters/node/tls.ts")).openSslClient(raw, options);

/** The engine; it opens no connection until a request asks for one. */
export function openUpstreamEngine(config: HttpUpstreamConfig): Engine {
  const common = {
    connect: config.connect ?? dialUpstream,
    startTls,
    ...(config.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: config.connectTimeoutMs }),
    ...(config.authFile === undefined ? {} : { authFile: config.authFile }),
  };
  if (config.pool !== undefined) {
    return new UpstreamPool(config.upstream, {
      ...common,
      settings: config.pool,
      ...(config.poolModes === undefined ? {} : { modes: config.poolModes }),
    });
  }
  return new UpstreamEngine(config.upstream, common);
}
