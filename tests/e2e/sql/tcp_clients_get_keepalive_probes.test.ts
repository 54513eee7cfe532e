/**
 * Every TCP client connection gets SO_KEEPALIVE, as PostgreSQL's
 * StreamConnection sets it, so that a client that vanished without a FIN
 * (a machine gone, a NAT that forgot the flow) is found dead and its
 * session ended instead of held for ever; tcp_keepalives_idle sets the
 * idle time before the first probe. Read from the kernel's own table
 * (/proc/net/tcp: timer 2 is the keepalive timer, its expiry in clock
 * ticks), under the default server. Deno cannot set the idle time
 * (Deno.TcpConn.setKeepAlive takes none): there it is the system's.
 */

import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { pgClient, startSqlServer, useSqlServers } from "../../helpers/pgts-sql.ts";
import { TEST_RUNTIME } from "../../helpers/pgts.ts";

useSqlServers();

/** The server side of the connection from client port `clientPort` to `port`: its timer and ticks. */
function serverSideTimer(
  port: number,
  clientPort: number,
): { timer: number; ticks: number } | null {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, "0");
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 6) continue;
      if (f[1]!.endsWith(`:${hex(port)}`) && f[2]!.endsWith(`:${hex(clientPort)}`)) {
        const [timer, when] = f[5]!.split(":");
        return { timer: parseInt(timer!, 16), ticks: parseInt(when!, 16) };
      }
    }
  }
  return null;
}

async function keepaliveOf(settings: Record<string, string | number>) {
  const s = await startSqlServer({ settings });
  const c = await pgClient(s);
  try {
    const local = await c.query("select inet_client_port() as p");
    // Once the answer is acknowledged, the keepalive timer is the one that runs.
    let seen = serverSideTimer(s.port, local.rows[0].p as number);
    for (let i = 0; i < 40 && seen?.timer !== 2; i++) {
      await new Promise((r) => setTimeout(r, 50));
      seen = serverSideTimer(s.port, local.rows[0].p as number);
    }
    return seen;
  } finally {
    await c.end();
    await s.stop();
  }
}

test("a TCP client's connection has the keepalive timer, after tcp_keepalives_idle (under Deno the system's idle time)", async () => {
  const seen = await keepaliveOf({ tcp_keepalives_idle: 30 });
  expect(seen?.timer).toBe(2);
  if (TEST_RUNTIME === "deno") return;
  expect(seen!.ticks).toBeGreaterThan(20 * 100);
  expect(seen!.ticks).toBeLessThanOrEqual(30 * 100);
});
