/**
 * Outgoing Unix-socket connections through node:net (Bun and Deno both
 * provide it), as the core's `Connection`: backends dial the engine child
 * with it. Incoming sockets are the NetAdapters' business.
 */

import { createConnection } from "node:net";
import type { Connection } from "../../core/postmaster/launch.ts";
import { NodeSocketConnection } from "./nodeconn.ts";

export function connectUnix(path: string): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path });
    socket.once("error", reject);
    socket.once("connect", () => {
      socket.off("error", reject);
      socket.setNoDelay?.(true);
      resolve(new NodeSocketConnection(socket, { family: "unix", path }));
    });
  });
}
