/**
 * A CancelRequest acts on the statement running when it arrives, as in
 * PostgreSQL: one that arrives after the statement finished (while pgts
 * does its own bookkeeping for the session, or when it is idle) must not
 * cancel the session's next statement, nor pgts's own work. postgres.js's
 * "Cancel piped query" and "Cancel queued query" saw a stray 57014 here.
 * Under the default server and --adapter inproc.
 */

import { describe, expect, test } from "bun:test";
import {
  pgClient,
  sendCancelRequest,
  sharedServer,
  useSqlServers,
} from "../../helpers/pgts-sql.ts";
import type { Adapter } from "../../helpers/pgts.ts";

useSqlServers({ timeoutMs: 90_000 });

for (const adapter of [undefined, "subprocess"] as Array<Adapter | undefined>) {
  describe(`${adapter ?? "default"} server`, () => {
    const server = sharedServer(adapter === undefined ? {} : { adapter });

    test("a cancel that arrives after its statement finished cancels nothing later", async () => {
      const s = server();
      const c = await pgClient(s);
      const { processID: pid, secretKey: key } = c as unknown as {
        processID: number;
        secretKey: number;
      };
      for (let i = 0; i < 15; i++) {
        // Role DDL makes pgts re-read the catalogs after the client has its
        // answer: the cancel lands in that bookkeeping, or after it.
        await c.query(`create role late_cancel_${i}`);
        await sendCancelRequest(s, pid, key);
        const r = await c.query("select $1::int as i", [i]);
        expect(r.rows).toEqual([{ i }]);
      }
      // An idle session's cancel is a no-op too.
      await sendCancelRequest(s, pid, key);
      expect((await c.query("select 'next' as v")).rows).toEqual([{ v: "next" }]);
      // And a cancel of a running statement still acts.
      const running = c.query("select pg_sleep(10)").then(() => null, (e) => e.code);
      await new Promise((r) => setTimeout(r, 300));
      await sendCancelRequest(s, pid, key);
      expect(await running).toBe("57014");
      expect(c.asyncErrors).toEqual([]);
      await c.end();
    });
  });
}

describe("postgres.js", () => {
  const server = sharedServer({});

  test("cancelling a piped query cancels it, and the query before it finishes", async () => {
    const postgres = (await import("postgres")).default;
    const s = server();
    const sql = postgres({
      host: s.host,
      port: s.port,
      user: "postgres",
      database: "postgres",
      max: 1,
    });
    try {
      await sql`select 1`;
      const last = sql`select pg_sleep(1) as first`.execute();
      const query = sql`select pg_sleep(2) as dig`;
      setTimeout(() => query.cancel(), 500);
      const error = await query.catch((x) => x);
      expect(error.code).toBe("57014");
      expect((await last)[0]).toEqual({ first: "" });
      expect(await sql`select 'after' as v`).toEqual([{ v: "after" }]);
    } finally {
      await sql.end();
    }
  });
});
