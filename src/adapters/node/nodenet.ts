/**
 * A NetAdapter on `node:net`, which both Bun and Deno implement. It is the
 * Deno NetAdapter (Deno's subprocess hand-off, `child.send(msg, socket)`,
 * needs node sockets) and an alternative under Bun (its IPC hand-off route).
 *
 * Connections are accepted paused (`pauseOnConnect`), so no byte is read
 * before whoever serves the connection, the postmaster or a child, resumes it.
 */

import net from "node:net";
import type {
  AcceptedConnection,
  ListenAddress,
  Listener,
  NetAdapter,
} from "../../core/adapter.ts";
import { nodeRemote, NodeSocketConnection } from "./nodeconn.ts";
import { removeStaleSocket, setSocketAccess, unlinkQuietly } from "./unixsocket.ts";

export class NodeSocketNetAdapter implements NetAdapter {
  async listen(
    address: ListenAddress,
    onConnection: (conn: AcceptedConnection) => void,
  ): Promise<Listener> {
    const unixPath = address.family === "unix" ? address.path : null;
    if (unixPath !== null) await removeStaleSocket(unixPath);
    const server = net.createServer({ pauseOnConnect: true }, (socket) => {
      onConnection(new NodeSocketConnection(socket, nodeRemote(socket, unixPath)));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      const ready = () => {
        server.off("error", reject);
        resolve();
      };
      if (address.family === "unix") server.listen(address.path, ready);
      else server.listen(address.port, address.host, ready);
    });
    if (address.family === "unix") {
      try {
        setSocketAccess(address.path, address);
      } catch (e) {
        server.close();
        unlinkQuietly(address.path);
        throw e;
      }
    }
    const bound = server.address();
    const real: ListenAddress = address.family === "tcp" && typeof bound === "object" && bound
      ? { family: "tcp", host: address.host, port: bound.port }
      : address;
    return {
      address: real,
      close() {
        // Stop accepting; connections already accepted belong to their
        // servers (children or the postmaster) and are not waited for.
        server.close();
        if (unixPath !== null) unlinkQuietly(unixPath);
        return Promise.resolve();
      },
    };
  }
}
