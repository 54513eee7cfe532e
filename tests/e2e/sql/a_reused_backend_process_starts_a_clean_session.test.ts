/**
 * Under `--adapter subprocess` a pooled backend process serves one client
 * after another under one pid, and under `--adapter worker` a pooled Worker
 * does. The engine's per-session tables are kept by pid, and the next client
 * inherited the last one's: its session-level advisory locks (the new client
 * could unlock them, and a third client found the key taken) and its
 * currval(). In PostgreSQL every connection starts clean; so does each
 * session on a reused backend process or Worker now: nor does it keep the
 * last one's settings or LISTENs.
 */

import { describe, expect, test } from "bun:test";
import type { Notification } from "pg";
import { pgClient, sharedServer, useSqlServers } from "../../helpers/pgts-sql.ts";

useSqlServers();

// Under either runtime (PGTS_TEST_RUNTIME): Bun's spawned and Deno's forked backends are
// both pooled (backend_pool_size), and so are the Workers of either runtime.
for (const adapter of ["subprocess", "worker"] as const) {
  describe(`--adapter ${adapter}`, () => {
    // One backend started ahead: the one a client leaves comes back to the next client soon.
    const server = sharedServer({ adapter, settings: { backend_pool_size: "1" } });

    test("the next client of a backend holds none of the last one's advisory locks, currval, settings or LISTENs", async () => {
      const first = await pgClient(server());
      const pid = first.processID;
      await first.query("create sequence reused_seq");
      expect((await first.query("select nextval('reused_seq')::int as n")).rows).toEqual([{
        n: 1,
      }]);
      await first.query("select pg_advisory_lock(99)");
      await first.query("set work_mem = '1234kB'");
      await first.query("listen reused_channel");
      await first.end();

      // The pool hands the same backend to the next client.
      let next = await pgClient(server());
      for (let i = 0; i < 50 && next.processID !== pid; i++) {
        await next.end();
        await Bun.sleep(50);
        next = await pgClient(server());
      }
      expect(next.processID).toBe(pid);
      const notices: string[] = [];
      next.on("notice", (n) => notices.push(n.message ?? ""));
      const heard: Notification[] = [];
      next.on("notification", (n) => heard.push(n));
      // Not its lock: false, with PostgreSQL's WARNING.
      expect((await next.query("select pg_advisory_unlock(99) as u")).rows).toEqual([{ u: false }]);
      const e = await next.query("select currval('reused_seq')").catch((x) => x);
      expect(e.code).toBe("55000");
      expect((await next.query("show work_mem")).rows).toEqual([{ work_mem: "4MB" }]);
      // And the key is free for anyone; the channel has no listener.
      const other = await pgClient(server());
      expect((await other.query("select pg_try_advisory_lock(99) as t")).rows).toEqual([{
        t: true,
      }]);
      await other.query("notify reused_channel, 'hello'");
      await next.query("select 1");
      await Bun.sleep(100);
      await next.query("select 1");
      expect(heard).toEqual([]);
      expect(notices).toEqual(["you don't own a lock of type ExclusiveLock"]);
      await next.end();
      await other.end();
    });
  });
}
