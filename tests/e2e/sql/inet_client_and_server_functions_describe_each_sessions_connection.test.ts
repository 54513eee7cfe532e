/**
 * inet_client_addr(), inet_client_port(), inet_server_addr() and
 * inet_server_port() answer as PostgreSQL does: over TCP the session's own
 * client address and port and the server's end of its connection, each
 * session its own (the engine's one backend serves them all); over a Unix
 * socket NULL, all four.
 */

import { describe, expect, test } from "bun:test";
import pg from "pg";
import { pgClient, pgConfig, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import type { PgtsServer } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

const QUERY =
  "select host(inet_client_addr()) as client_addr, inet_client_port() as client_port, " +
  "host(inet_server_addr()) as server_addr, inet_server_port() as server_port";

describe("the inet_client_* and inet_server_* functions", () => {
  const server = sharedServer();

  test("over TCP: each session's own client port, the server's address and port", async () => {
    const a = await pgClient(server());
    const b = await pgClient(server());
    // node-postgres's socket: the client's end of each connection.
    const portOf = (c: typeof a) =>
      (c as unknown as { connection: { stream: { localPort: number } } }).connection.stream
        .localPort;
    for (const [c, other] of [[a, b], [b, a], [a, b]] as const) {
      const r = (await c.query(QUERY)).rows[0];
      expect(r).toEqual({
        client_addr: "127.0.0.1",
        client_port: portOf(c),
        server_addr: "127.0.0.1",
        server_port: server().port,
      });
      expect(r.client_port).not.toBe(portOf(other));
    }
  });

  test("over the Unix socket: NULL, all four", async () => {
    const c = await pgClient(server(), { unix: true });
    expect((await c.query(QUERY)).rows[0]).toEqual({
      client_addr: null,
      client_port: null,
      server_addr: null,
      server_port: null,
    });
    // And a TCP session after it has its own again.
    const t = await pgClient(server());
    expect((await t.query(QUERY)).rows[0].client_addr).toBe("127.0.0.1");
  });
});

describe("inet_server_addr() is the connection's own end, whatever the listener is bound to", () => {
  const both = sharedServer({ settings: { listen_addresses: "::1, 127.0.0.1" } });
  const any = sharedServer({ settings: { listen_addresses: "*" } });

  async function ask(server: () => PgtsServer, host: string) {
    const c = new pg.Client({ ...pgConfig(server()), host });
    await c.connect();
    try {
      return (await c.query(QUERY)).rows[0];
    } finally {
      await c.end();
    }
  }

  test("listening on ::1 and 127.0.0.1: each listener's address", async () => {
    expect(await ask(both, "::1")).toMatchObject({
      client_addr: "::1",
      server_addr: "::1",
      server_port: both().port,
    });
    expect(await ask(both, "127.0.0.1")).toMatchObject({
      client_addr: "127.0.0.1",
      server_addr: "127.0.0.1",
      server_port: both().port,
    });
  });

  test("listening on *: the address the client dialled", async () => {
    expect(await ask(any, "127.0.0.1")).toMatchObject({
      server_addr: "127.0.0.1",
      server_port: any().port,
    });
    expect(await ask(any, "::1")).toMatchObject({ server_addr: "::1", server_port: any().port });
  });
});
