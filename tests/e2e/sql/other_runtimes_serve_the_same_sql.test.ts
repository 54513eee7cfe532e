/**
 * A smaller pass of the real-client suite against the in-process adapter
 * (`--adapter inproc`: backends and the engine in the postmaster's realm)
 * and against `deno run -A mod.ts start`: psql, node-postgres queries and
 * errors, COPY both ways, LISTEN/NOTIFY, cancel, a session the engine ends,
 * and a malformed message.
 */

import { beforeAll, describe, expect, test } from "bun:test";
import type pg from "pg";
import {
  cancelRequest,
  errorFields,
  message,
  pgClient,
  type PgtsServer,
  psql,
  RawConnection,
  sleep,
  type SqlServerOptions,
  startSqlServer,
  useSqlServers,
  waitFor,
} from "../../helpers/pgts-sql.ts";

useSqlServers({ timeoutMs: 90_000 });

const variants: Array<[string, SqlServerOptions]> = [
  ["--adapter inproc", { adapter: "inproc" }],
  ["deno run -A mod.ts start", { runtime: "deno", readyTimeoutMs: 60_000 }],
];

for (const [name, options] of variants) {
  describe(name, () => {
    let s: PgtsServer;
    beforeAll(async () => {
      s = await startSqlServer(options);
    }, 90_000);

    test("psql -c, COPY in and out", async () => {
      const r = await psql(s, [
        "-c",
        "create table smoke (n int, t text)",
        "-c",
        "copy smoke from stdin",
        "-c",
        "select count(*) from smoke",
      ], {
        stdin: "1\tone\n2\ttwo\n\\.\n",
      });
      expect(r.err).toBe("");
      expect(r.out.trim()).toBe("CREATE TABLE\nCOPY 2\n2");
      const out = await psql(s, ["-c", "copy (select * from smoke order by n) to stdout"]);
      expect(out.out).toBe("1\tone\n2\ttwo\n");
    });

    test("node-postgres: parameters, an error then reuse, a transaction with a savepoint", async () => {
      const c = await pgClient(s);
      const r = await c.query("select $1::int + 1 as n, $2::text as t, $3::jsonb as j", [
        41,
        "x",
        '{"a":1}',
      ]);
      expect(r.rows).toEqual([{ n: 42, t: "x", j: { a: 1 } }]);
      expect((await c.query("select 1/0").catch((e) => e)).code).toBe("22012");
      await c.query("begin");
      await c.query("insert into smoke values (3, 'three')");
      await c.query("savepoint s");
      await c.query("insert into smoke values (4, 'four')");
      await c.query("rollback to savepoint s");
      await c.query("commit");
      expect((await c.query("select max(n) as m from smoke")).rows).toEqual([{ m: 3 }]);
    });

    test("LISTEN/NOTIFY and a CancelRequest", async () => {
      const listener = await pgClient(s);
      const sender = await pgClient(s);
      const got: pg.Notification[] = [];
      listener.on("notification", (n) => got.push(n));
      await listener.query("listen smoke_ch");
      await sender.query("notify smoke_ch, 'hi'");
      await waitFor("the notification", () => got.length === 1);
      expect(got[0]!.payload).toBe("hi");

      const { processID, secretKey } = sender as unknown as {
        processID: number;
        secretKey: number;
      };
      const running = sender.query("select pg_sleep(20)").catch((e) => e);
      let settled = false;
      void running.finally(() => (settled = true));
      // Again until it lands: a cancel before the statement started cancels nothing.
      for (let i = 0; i < 30 && !settled; i++) {
        await Promise.race([running, sleep(400)]);
        const raw = await RawConnection.open(s);
        raw.send(cancelRequest(processID, secretKey));
        await raw.drain();
      }
      expect((await running).code).toBe("57014");
      expect((await sender.query("select 1 as v")).rows).toEqual([{ v: 1 }]);
    });

    test("idle_in_transaction_session_timeout ends the session and closes the connection", async () => {
      const c = await pgClient(s);
      const ended = new Promise<void>((resolve) => c.once("end", () => resolve()));
      await c.query("set idle_in_transaction_session_timeout = '200ms'");
      await c.query("begin");
      await Promise.race([ended, sleep(10_000)]);
      expect(c.asyncErrors.map((e) => (e as { code?: string }).code)).toContain("25P03");
      expect(await Promise.race([ended.then(() => "closed"), sleep(0).then(() => "open")])).toBe(
        "closed",
      );
    });

    test("an unknown message type gets FATAL 08P01; the server goes on", async () => {
      const raw = await RawConnection.open(s);
      await raw.startup();
      raw.send(message("x"));
      const got = await raw.drain();
      expect(got.map((m) => errorFields(m.body).C)).toEqual(["08P01"]);
      const c = await pgClient(s);
      expect((await c.query("select 'ok' as v")).rows).toEqual([{ v: "ok" }]);
    });
  });
}
