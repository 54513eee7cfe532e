/**
 * LISTEN, UNLISTEN and LISTEN again on one connection delivers the
 * notifications sent after the second LISTEN, as PostgreSQL does
 * (postgres.js's "listen after unlisten" lost them). postgres.js and
 * node-postgres, under the default server and --adapter inproc.
 */

import { afterAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { pgClient, sharedServer, sleep, useSqlServers } from "../../helpers/pgts-sql.ts";
import type { Adapter } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });
const pools: postgres.Sql[] = [];
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end({ timeout: 1 }).catch(() => {})));
});

for (const adapter of [undefined, "subprocess"] as Array<Adapter | undefined>) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("postgres.js: listen, unlisten, listen again gets the later notifications", async () => {
      const s = server();
      const sql = postgres({
        host: s.host,
        port: s.port,
        user: "postgres",
        database: "postgres",
        onnotice: () => {},
        connect_timeout: 10,
      });
      pools.push(sql);
      const channel = "listen_after_unlisten";
      const result: string[] = [];
      const { unlisten } = await sql.listen(channel, (x) => result.push(x));
      await sql.notify(channel, "a");
      await sleep(100);
      await unlisten();
      await sql.notify(channel, "b");
      await sleep(100);
      await sql.listen(channel, (x) => result.push(x));
      await sql.notify(channel, "c");
      await sleep(100);
      expect(result.join("")).toBe("ac");
    });

    test("node-postgres: one connection listens, unlistens and listens again", async () => {
      const s = server();
      const l = await pgClient(s);
      const n = await pgClient(s);
      const got: string[] = [];
      l.on("notification", (m) => got.push(m.payload ?? ""));
      await l.query("listen again_ch");
      await n.query("notify again_ch, 'a'");
      await sleep(100);
      await l.query("unlisten again_ch");
      await n.query("notify again_ch, 'b'");
      await sleep(100);
      await l.query("listen again_ch");
      await n.query("notify again_ch, 'c'");
      await l.query("select 1");
      await sleep(100);
      // And the listener's own notification.
      await l.query("notify again_ch, 'd'");
      await sleep(100);
      expect(got.join("")).toBe("acd");
      await l.end();
      await n.end();
    });
  });
}
