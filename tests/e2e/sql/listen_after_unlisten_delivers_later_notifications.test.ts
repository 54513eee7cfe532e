/**
 * LISTEN, UNLISTEN and LISTEN again on one connection delivers the
 * notifications sent after the second LISTEN, as PostgreSQL does
 * (postgres.js's "listen after unlisten" lost them), and pg_listening_channels()
 * lists only the session's own channels; a NOTIFY in the transaction of
 * the sender's own LISTEN reaches the sender. postgres.js and
 * node-postgres, under the default server and --adapter inproc.
 */

import { afterAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { pgClient, sharedServer, sleep, useSqlServers } from "../../helpers/pgts-sql.ts";
import { type Adapter, passAdapters } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });
const pools: postgres.Sql[] = [];
afterAll(async () => {
  await Promise.all(pools.map((p) => p.end({ timeout: 1 }).catch(() => {})));
});

for (const adapter of passAdapters([undefined, "subprocess"] as Array<Adapter | undefined>)) {
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

    test("a LISTEN in a block is kept as its savepoints keep it, and dropped with a rollback", async () => {
      const s = server();
      const l = await pgClient(s);
      const channels = async () =>
        (await l.query("select array_agg(c order by c) as cs from pg_listening_channels() c"))
          .rows[0].cs ?? [];
      // Before a savepoint that an error rolled back to: kept.
      await l.query("begin");
      await l.query("listen sp_before");
      await l.query("savepoint s");
      await l.query("select 1/0").catch(() => {});
      await l.query("rollback to savepoint s");
      await l.query("commit");
      expect(await channels()).toEqual(["sp_before"]);
      // Inside a savepoint rolled back to: dropped; inside one released: kept.
      await l.query("begin; savepoint a; listen sp_undone; rollback to a; commit");
      await l.query("begin; savepoint b; listen sp_released; release b; commit");
      expect(await channels()).toEqual(["sp_before", "sp_released"]);
      // In a block rolled back, or ended by the COMMIT of an aborted block: dropped.
      await l.query("begin; listen sp_rolled_back; rollback");
      await l.query("begin");
      await l.query("listen sp_aborted");
      await l.query("select 1/0").catch(() => {});
      expect((await l.query("commit")).command).toBe("ROLLBACK");
      expect(await channels()).toEqual(["sp_before", "sp_released"]);
      // And the kept ones are delivered.
      const got: string[] = [];
      l.on("notification", (m) => got.push(m.channel));
      const n = await pgClient(s);
      await n.query("notify sp_before; notify sp_released; notify sp_undone");
      await l.query("select 1");
      await sleep(100);
      expect(got.sort()).toEqual(["sp_before", "sp_released"]);
      await l.end();
      await n.end();
    });

    test("a NOTIFY in the transaction of the sender's own LISTEN reaches the sender at its commit", async () => {
      const s = server();
      const l = await pgClient(s);
      const got: string[] = [];
      l.on("notification", (m) => got.push(`${m.channel}:${m.payload ?? ""}`));
      // DBD::Pg's suite: LISTEN and NOTIFY in one block (AutoCommit off).
      await l.query("begin");
      await l.query("listen own_block");
      await l.query("notify own_block, 'a'");
      await l.query("commit");
      // One Query, one implicit transaction.
      await l.query("listen own_query; notify own_query, 'b'");
      // UNLISTEN before the NOTIFY in the same block: nothing, as in PostgreSQL.
      await l.query("begin");
      await l.query("unlisten own_block");
      await l.query("notify own_block, 'c'");
      await l.query("commit");
      // Rolled back: no LISTEN, no NOTIFY.
      await l.query("begin");
      await l.query("listen own_rolled_back");
      await l.query("notify own_rolled_back, 'd'");
      await l.query("rollback");
      await l.query("select 1");
      await sleep(100);
      expect(got).toEqual(["own_block:a", "own_query:b"]);
      await l.end();
    });

    test("pg_listening_channels() lists the session's own channels, not the backend's union", async () => {
      const s = server();
      const a = await pgClient(s);
      const b = await pgClient(s);
      const channels = async (c: typeof a, sql = "select pg_listening_channels() as c") =>
        (await c.query(sql)).rows.map((r) => r.c);
      await a.query("listen lc_a1");
      await a.query("listen lc_shared");
      await b.query("listen lc_shared");
      await b.query("listen lc_b1");
      // PostgreSQL's are each backend's; here one backend listens to all four.
      expect((await channels(a)).sort()).toEqual(["lc_a1", "lc_shared"]);
      expect(await channels(b, "select c from pg_listening_channels() c order by 1"))
        .toEqual(["lc_b1", "lc_shared"]);
      await b.query("begin");
      await b.query("listen lc_b2");
      expect((await channels(b)).sort()).toEqual(["lc_b1", "lc_shared"]); // not before COMMIT
      await b.query("commit");
      expect((await channels(b)).sort()).toEqual(["lc_b1", "lc_b2", "lc_shared"]);
      await a.query("discard all");
      expect(await channels(a)).toEqual([]);
      expect((await channels(b)).sort()).toEqual(["lc_b1", "lc_b2", "lc_shared"]);
      // B's notifications still reach it after A's channels went.
      const got: string[] = [];
      b.on("notification", (m) => got.push(`${m.channel}:${m.payload}`));
      await a.query("notify lc_shared, 'x'");
      await sleep(100);
      await b.query("select 1");
      expect(got).toEqual(["lc_shared:x"]);
      await a.end();
      await b.end();
    });
  });
}
