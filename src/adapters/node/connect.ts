/**
 * Outgoing connections through node:net (Bun and Deno both provide it), as
 * the core's `Connection`: backends dial the engine child over a Unix
 * socket, and the upstream engine dials PostgreSQL over TCP or a Unix
 * socket. Incoming sockets are the NetAdapters' business.
 */

import { createConnection, type NetConnectOpts } from "node:net";
import type { Connection, RemoteAddress } from "../../core/adapter.ts";
import { NodeSocketConnection } from "./nodeconn.ts";

function dial(options: NetConnectOpts, remote: RemoteAddress): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(options);
    socket.once("error", reject);
    socket.once("connect", () => {
      socket.off("error", reject);
      socket.setNoDelay?.(true);
      resolve(new NodeSocketConnection(socket, remote));
    });
  });
}

export function connectUnix(path: string): Promise<Connection> {
  return dial({ path }, { family: "unix", path });
}

export function connectTcp(host: string, port: number): Promise<Connection> {
  return dial({ host, port }, { family: "tcp", address: host, port });
}
