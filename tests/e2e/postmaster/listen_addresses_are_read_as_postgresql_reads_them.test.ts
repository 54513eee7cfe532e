/**
 * listen_addresses as PostgreSQL's postmaster reads it: `*` is every IPv4
 * and every IPv6 address (0.0.0.0 and ::), a host name is every address it
 * resolves to (localhost included), and a name that does not resolve is
 * logged and skipped while the other addresses serve.
 */

import { expect, test } from "bun:test";
import { lookup } from "node:dns/promises";
import pg from "pg";
import { startPgts, usePgtsServers } from "../../helpers/pgts.ts";

usePgtsServers();

async function selectOne(host: string, port: number): Promise<unknown> {
  const c = new pg.Client({ host, port, user: "postgres", database: "postgres" });
  await c.connect();
  try {
    return (await c.query("select host(inet_server_addr()) as addr")).rows[0].addr;
  } finally {
    await c.end();
  }
}

test("* listens on 0.0.0.0 and on ::, each logged as PostgreSQL logs it", async () => {
  const server = await startPgts({ settings: { listen_addresses: "*" } });
  expect(server.log).toContain(`LOG:  listening on IPv4 address "0.0.0.0", port ${server.port}`);
  expect(server.log).toContain(`LOG:  listening on IPv6 address "::", port ${server.port}`);
  expect(await selectOne("127.0.0.1", server.port)).toBe("127.0.0.1");
  expect(await selectOne("::1", server.port)).toBe("::1");
});

test("a host name listens on every address it resolves to", async () => {
  const addresses = [...new Set((await lookup("localhost", { all: true })).map((a) => a.address))];
  const server = await startPgts({ settings: { listen_addresses: "localhost" } });
  for (const a of addresses) {
    const family = a.includes(":") ? "IPv6" : "IPv4";
    expect(server.log).toContain(
      `LOG:  listening on ${family} address "${a}", port ${server.port}`,
    );
    expect(await selectOne(a, server.port)).toBe(a);
  }
  expect(server.log.match(/listening on IPv/g)).toHaveLength(addresses.length);
});

test("a name that does not resolve is logged and skipped; the other addresses serve", async () => {
  const server = await startPgts({
    settings: { listen_addresses: "no-such-host.invalid, 127.0.0.1" },
  });
  expect(server.log).toContain(
    `LOG:  could not translate host name "no-such-host.invalid", service "${server.port}" to address: Name or service not known`,
  );
  expect(server.log).toContain(
    `WARNING:  could not create listen socket for "no-such-host.invalid"`,
  );
  expect(server.log).toContain(`LOG:  listening on IPv4 address "127.0.0.1", port ${server.port}`);
  expect(await selectOne("127.0.0.1", server.port)).toBe("127.0.0.1");
});
