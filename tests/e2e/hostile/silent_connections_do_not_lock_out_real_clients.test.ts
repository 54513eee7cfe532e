/**
 * A flood of connections that never log in: 200 sockets that send nothing
 * or half a startup packet. As in PostgreSQL, they do not take the
 * connections a real client needs (max_connections is checked after
 * authentication), psql logs in while they are open, and each is closed
 * within authentication_timeout + 1 s of connecting; afterwards the
 * server's processes and memory come back to where they were. Under every
 * adapter.
 */

import { describe, expect, test } from "bun:test";
import { connect, type Socket } from "node:net";
import {
  psql,
  sleep,
  startSqlServer,
  startupPacket,
  useSqlServers,
  waitFor,
} from "../../helpers/pgts-sql.ts";
import { processUsage } from "../../helpers/fuzz.ts";
import { TEST_RUNTIME } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 120_000 });

const FLOOD = 200;
const TIMEOUT_S = 2;

/** Opens a socket; resolves with the ms from connect to the server's close. */
function silentSocket(
  port: number,
  half: boolean,
): Promise<{ socket: Socket; closedAfter: Promise<number> }> {
  return new Promise((resolve, reject) => {
    // From before the connect: the server cannot have accepted it earlier.
    const t0 = performance.now();
    const s = connect({ host: "127.0.0.1", port }, () => {
      s.off("error", reject);
      s.on("error", () => {});
      if (half) s.write(startupPacket().subarray(0, 12));
      const closedAfter = new Promise<number>((r) =>
        s.on("close", () => r(performance.now() - t0))
      );
      resolve({ socket: s, closedAfter });
    });
    s.once("error", reject);
  });
}

for (const adapter of [undefined, "worker", "subprocess"] as const) {
  // Not under Deno's subprocess adapter: there the postmaster cannot read a
  // socket before handing it to a forked backend (Deno's node:net does not
  // hand over a socket it has read from intact), so each silent socket is a
  // Deno process starting, and psql times out behind 200 of them. README
  // "What differs under Deno" says so.
  const forksPerSocket = adapter === "subprocess" && TEST_RUNTIME === "deno";
  describe(`${adapter ?? "default"} adapter`, () => {
    test.skipIf(forksPerSocket)(
      `${FLOOD} silent sockets: psql logs in meanwhile, they close within authentication_timeout + 1 s, usage returns`,
      async () => {
        const server = await startSqlServer({
          perTest: true,
          ...(adapter !== undefined ? { adapter } : {}),
          settings: { authentication_timeout: `${TIMEOUT_S}s` },
        });
        for (let i = 0; i < 3; i++) expect((await psql(server, ["-c", "select 1"])).code).toBe(0);
        await sleep(1000);
        const before = processUsage(server.pid);
        const sockets = await Promise.all(
          Array.from({ length: FLOOD }, (_, i) => silentSocket(server.port, i % 2 === 1)),
        );
        try {
          // While they are all open, a real client logs in and is served.
          const t0 = performance.now();
          const r = await psql(server, ["-c", "select 'served'"]);
          const served = performance.now() - t0;
          expect(r.err).toBe("");
          expect(r.out.trim()).toBe("served");
          const closes = await Promise.all(sockets.map((s) => s.closedAfter));
          const latest = Math.max(...closes);
          console.log(
            `${adapter ?? "default"}: closed after ${Math.min(...closes).toFixed(0)}–${
              latest.toFixed(0)
            } ms, psql served in ${served.toFixed(0)} ms; usage before ${JSON.stringify(before)}`,
          );
          expect(Math.min(...closes)).toBeGreaterThanOrEqual(TIMEOUT_S * 1000 - 100);
          expect(latest).toBeLessThan(TIMEOUT_S * 1000 + 1000);
        } finally {
          for (const s of sockets) s.socket.destroy();
        }
        // Processes and memory come back to the baseline.
        const after = await waitFor("usage to come back near the baseline", () => {
          const u = processUsage(server.pid);
          return u.processes <= before.processes && u.rssMiB <= before.rssMiB * 1.1 + 16 && u;
        }, {
          timeoutMs: 10_000,
          detail: () => JSON.stringify({ before, now: processUsage(server.pid) }),
        });
        console.log(`${adapter ?? "default"}: usage after ${JSON.stringify(after)}`);
        const last = await psql(server, ["-c", "select 1"]);
        expect([last.out.trim(), last.err]).toEqual(["1", ""]);
      },
    );
  });
}
