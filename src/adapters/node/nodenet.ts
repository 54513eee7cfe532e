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
  /**
   * Its servers on 0.0.0.0, by port: where IPV6_V6ONLY is not honoured
   * (Deno's node:net), a "::" on the same port takes over from one.
   */
  readonly #anyIPv4 = new Map<number, { server: net.Server }>();

  async listen(
    address: ListenAddress,
    onConnection: (conn: AcceptedConnection) => void,
  ): Promise<Listener> {
    const unixPath = address.family === "unix" ? address.path : null;
    if (unixPath !== null) await removeStaleSocket(unixPath);
    const serve = () =>
      net.createServer({ pauseOnConnect: true }, (socket) => {
        if (address.family === "tcp") {
          // TCP_NODELAY, as PostgreSQL sets it on every TCP client: an
          // answer may leave in more than one write (a subprocess backend
          // relays the engine child's frames as they come, its
          // ReadyForQuery last), and with Nagle's algorithm the last small
          // write waited for the client's delayed ACK, some 40 ms on Linux,
          // so that a terminated session's end reached its client before
          // pg_terminate_backend()'s answer. An option of the socket, not
          // of this process's descriptor: it holds in the child it is
          // handed to.
          socket.setNoDelay(true);
          // SO_KEEPALIVE, as PostgreSQL's, after tcp_keepalives_idle (else the system's).
          socket.setKeepAlive(true, address.keepAliveIdleMs ?? 0);
        }
        onConnection(new NodeSocketConnection(socket, nodeRemote(socket, unixPath)));
      });
    const holder = { server: serve() };
    if (address.family === "unix") await listenOn(holder.server, address.path);
    else {
      try {
        // As PostgreSQL sets IPV6_V6ONLY: "::" beside "0.0.0.0" on one port.
        await listenOn(holder.server, {
          host: address.host,
          port: address.port,
          ipv6Only: address.host.includes(":"),
        });
      } catch (e) {
        const v4 = address.host === "::" && (e as { code?: unknown }).code === "EADDRINUSE"
          ? this.#anyIPv4.get(address.port)
          : undefined;
        if (v4 === undefined) throw e;
        // One dual-stack socket serves both (its IPv4 clients' addresses
        // unmapped, nodeconn.ts), in the IPv4 listener's place too.
        await new Promise<void>((resolve) => v4.server.close(() => resolve()));
        holder.server = serve();
        await listenOn(holder.server, { host: "::", port: address.port });
        v4.server = holder.server;
      }
      if (address.host === "0.0.0.0") this.#anyIPv4.set(address.port, holder);
    }
    if (address.family === "unix") {
      try {
        setSocketAccess(address.path, address);
      } catch (e) {
        holder.server.close();
        unlinkQuietly(address.path);
        throw e;
      }
    }
    const bound = holder.server.address();
    const real: ListenAddress = address.family === "tcp" && typeof bound === "object" && bound
      ? { family: "tcp", host: address.host, port: bound.port }
      : address;
    return {
      address: real,
      close() {
        // Stop accepting; connections already accepted belong to their
        // servers (children or the postmaster) and are not waited for.
        if (holder.server.listening) holder.server.close();
        if (unixPath !== null) unlinkQuietly(unixPath);
        return Promise.resolve();
      },
    };
  }
}

function listenOn(server: net.Server, where: string | net.ListenOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const ready = () => {
      server.off("error", reject);
      resolve();
    };
    if (typeof where === "string") server.listen(where, ready);
    else server.listen(where, ready);
  });
}
