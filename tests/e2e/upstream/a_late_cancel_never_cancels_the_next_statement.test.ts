/**
 * A cancel pgts forwards to the upstream travels on a connection of its
 * own and acts on whatever the upstream backend runs when it lands. Here
 * every CancelRequest takes a second to reach PostgreSQL 15 (a proxy in
 * front of it holds them; everything else goes straight through), and the
 * statement it was meant for ends by itself before that. The upstream
 * connection must take no new statement until the cancel has landed:
 * neither the next client's in transaction mode (one upstream connection
 * for two clients) nor the same client's next statement on a connection
 * it keeps (session mode). Before, the late cancel cancelled that next
 * statement (57014), another client's included.
 */

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect, createServer, type Server, type Socket } from "node:net";
import { sendCancelRequest } from "../../helpers/pgts-sql.ts";
import { PgtsFront, UpstreamPostgres, useUpstreamServers } from "../../helpers/upstream.ts";

useUpstreamServers({ timeoutMs: 90_000 });

/**
 * How long the proxy holds a CancelRequest before passing it on: well after
 * the statement it was meant for ends (0.3 s), while the next ones (1.5 s)
 * would still run, and within the 2 s pgts waits for a cancel to land.
 */
const CANCEL_DELAY_MS = 1000;
/** PostgreSQL's CancelRequest code (the second word of the packet). */
const CANCEL_REQUEST_CODE = 80877102;

let upstream: UpstreamPostgres;
let proxy: Server;
let proxyPort = 0;
/** CancelRequests the proxy has passed on. */
let cancelsPassed = 0;

/** A TCP proxy to `port` that holds a connection's bytes for CANCEL_DELAY_MS when it starts with a CancelRequest. */
function startProxy(port: number): Promise<Server> {
  const server = createServer((client: Socket) => {
    const up = connect({ host: "127.0.0.1", port });
    let first = true;
    let held: Buffer[] | null = null;
    client.on("data", (chunk: Buffer) => {
      if (first) {
        first = false;
        if (chunk.length >= 8 && chunk.readInt32BE(4) === CANCEL_REQUEST_CODE) {
          held = [chunk];
          setTimeout(() => {
            for (const b of held!) up.write(b);
            held = null;
            cancelsPassed++;
          }, CANCEL_DELAY_MS);
          return;
        }
      }
      if (held !== null) held.push(chunk);
      else up.write(chunk);
    });
    up.on("data", (chunk: Buffer) => client.write(chunk));
    const close = () => {
      client.destroy();
      up.destroy();
    };
    client.on("close", () => {
      // A cancel's client may hang up before the held bytes went: they still go.
      if (held === null) up.end();
    });
    up.on("close", close);
    client.on("error", close);
    up.on("error", close);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

beforeAll(async () => {
  upstream = await UpstreamPostgres.start();
  proxy = await startProxy(upstream.port);
  proxyPort = (proxy.address() as { port: number }).port;
}, 90_000);

afterAll(() => {
  proxy?.close();
});

function viaProxy(): string {
  return upstream.url().replace(`:${upstream.port}/`, `:${proxyPort}/`);
}

type Keyed = { processID: number; secretKey: number };

for (const mode of ["transaction", "session"] as const) {
  describe(`pool_mode = ${mode}`, () => {
    test("a cancel that lands after its statement ended cancels nothing that came after it", async () => {
      const front = await PgtsFront.start(viaProxy(), {
        adapter: "inproc",
        settings: { pool_mode: mode, default_pool_size: mode === "transaction" ? "1" : "2" },
      });
      const a = await front.client();
      const b = await front.client();
      try {
        // Both on the one upstream connection (transaction mode), or each on its own.
        await a.query("select 1");
        await b.query("select 1");
        const passedBefore = cancelsPassed;
        const sleeping = a.query("select pg_sleep(0.3)").then(() => "done", (e) => e.code);
        await Bun.sleep(100);
        // As libpq's PQcancel: sent, and the connection's close awaited (node-postgres has none).
        const key = a as unknown as Keyed;
        await sendCancelRequest(front, key.processID, key.secretKey);
        // The statement ends by itself before the cancel reaches PostgreSQL.
        expect(await sleeping).toBe("done");
        expect(cancelsPassed).toBe(passedBefore);
        // The next statements, the other client's and this one's, run whole.
        const next = [
          b.query("select pg_sleep(1.5), 'b' as who"),
          a.query("select pg_sleep(1.5), 'a' as who"),
        ];
        const outcomes = await Promise.all(
          next.map((q) => q.then((r) => r.rows[0].who, (e) => e.code)),
        );
        expect(outcomes).toEqual(["b", "a"]);
        expect(cancelsPassed).toBe(passedBefore + 1);
      } finally {
        await a.end().catch(() => {});
        await b.end().catch(() => {});
      }
    });
  });
}
