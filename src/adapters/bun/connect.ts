/**
 * Outgoing connections with Bun's own sockets (`Bun.connect`), as the
 * core's `Connection`: the upstream engine dials PostgreSQL with them under
 * Bun. node:net works too, but under Bun it runs every chunk through
 * Node's stream machinery, which a relay pays on each round trip.
 */

import type { Connection, RemoteAddress } from "../../core/adapter.ts";
import type { BunSocket, BunSocketHandler } from "./bun.d.ts";
import { bunApi, BunSocketConnection } from "./net.ts";

interface SocketData {
  conn: BunSocketConnection | null;
}

type Dial =
  & ({ hostname: string; port: number } | { unix: string })
  & { socket: BunSocketHandler<SocketData> };

function dial(options: Omit<Dial, "socket">, remote: RemoteAddress): Promise<Connection> {
  return new Promise((resolve, reject) => {
    let conn: BunSocketConnection | null = null;
    const socket: BunSocketHandler<SocketData> = {
      open(s) {
        s.pause();
        conn = new BunSocketConnection(s, remote);
        s.data = { conn };
      },
      data(s, chunk) {
        s.data.conn?.received(chunk);
      },
      drain(s) {
        s.data.conn?.flush();
      },
      close(s) {
        s.data?.conn?.closed();
      },
      error() {
        // "close" follows; that is what a Connection reports.
      },
      connectError(_s: BunSocket<SocketData>, error: Error) {
        reject(dialError(error, remote));
      },
    } as BunSocketHandler<SocketData>;
    const connect = bunApi().connect as unknown as (o: Dial) => Promise<BunSocket<SocketData>>;
    connect({ ...options, socket } as Dial).then(() => {
      if (conn === null) reject(new Error("connection closed before it opened"));
      else resolve(conn);
    }, (e) => reject(dialError(e, remote)));
  });
}

/** node:net's wording ("connect ECONNREFUSED 127.0.0.1:5432"), which users know. */
function dialError(e: unknown, remote: RemoteAddress): Error {
  const code = (e as { code?: unknown })?.code;
  if (typeof code !== "string") return e instanceof Error ? e : new Error(String(e));
  const where = remote.family === "tcp" ? `${remote.address}:${remote.port}` : remote.path;
  return new Error(`connect ${code} ${where}`);
}

export function connectTcp(host: string, port: number): Promise<Connection> {
  return dial({ hostname: host, port }, { family: "tcp", address: host, port });
}

export function connectUnix(path: string): Promise<Connection> {
  return dial({ unix: path }, { family: "unix", path });
}
