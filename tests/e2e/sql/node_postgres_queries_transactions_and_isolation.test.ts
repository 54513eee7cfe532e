/**
 * node-postgres against a real pgts server: parameters of the common types
 * (extended protocol), an error followed by reuse of the same connection,
 * transactions and savepoints, LISTEN/NOTIFY between connections, and what
 * one session must not see of another (settings, statement names, an open
 * transaction).
 */

import { describe, expect, test } from "bun:test";
import pg from "pg";
import { pgClient, sharedServer, sleep, useSqlServers, waitFor } from "../../helpers/pgts-sql.ts";

useSqlServers();
const server = sharedServer();

describe("parameters", () => {
  test("values of the common types go in as parameters and come back equal", async () => {
    const c = await pgClient(server());
    const when = new Date("2024-03-05T06:07:08.123Z");
    const r = await c.query(
      `select $1::int4 as i4, $2::int8 as i8, $3::float8 as f8, $4::numeric as num,
              $5::text as txt, $6::bool as b, $7::timestamptz as ts, $8::date as d,
              $9::bytea as bin, $10::jsonb as j, $11::int4[] as arr, $12::uuid as u,
              $13::text as nul, $14::varchar as unicode`,
      [
        -2147483648,
        "9007199254740993",
        1.5e-300,
        "12345678901234567890.0123456789",
        'it\'s "quoted"\n\ttabbed',
        true,
        when,
        "2024-02-29",
        Buffer.from([0, 1, 2, 255]),
        JSON.stringify({ a: [1, 2, { b: null }] }),
        [1, 2, 3],
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        null,
        "żółw 🐢",
      ],
    );
    const row = r.rows[0];
    expect(row.i4).toBe(-2147483648);
    expect(row.i8).toBe("9007199254740993");
    expect(row.f8).toBe(1.5e-300);
    expect(row.num).toBe("12345678901234567890.0123456789");
    expect(row.txt).toBe('it\'s "quoted"\n\ttabbed');
    expect(row.b).toBe(true);
    expect((row.ts as Date).getTime()).toBe(when.getTime());
    expect(row.bin).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(row.j).toEqual({ a: [1, 2, { b: null }] });
    expect(row.arr).toEqual([1, 2, 3]);
    expect(row.u).toBe("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    expect(row.nul).toBeNull();
    expect(row.unicode).toBe("żółw 🐢");
    const d = await c.query("select $1::date::text as d", ["2024-02-29"]);
    expect(d.rows[0].d).toBe("2024-02-29");
  });

  test("a parameter of many megabytes, sent in one write with its Parse, goes through", async () => {
    const c = await pgClient(server());
    // The Bind is read in many chunks while the Parse runs: reading paused past 1 MiB, and the
    // wait for the rest of the message paused it again (the session hung from 2-8 MiB on).
    for (const mb of [8, 32]) {
      const value = Buffer.alloc(mb * 1024 * 1024, 7);
      const answered = c.query("select length($1::bytea) as n", [value]);
      const hung = new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`${mb} MiB: no answer in 20 s`)), 20_000)
      );
      expect((await Promise.race([answered, hung]) as pg.QueryResult).rows[0].n).toBe(value.length);
    }
    await c.end();
  });

  test("a named prepared statement runs many times with different values", async () => {
    const c = await pgClient(server());
    await c.query("create table squares (n int primary key, sq int)");
    for (let n = 1; n <= 20; n++) {
      await c.query({
        name: "put-square",
        text: "insert into squares values ($1, $2)",
        values: [n, n * n],
      });
    }
    const r = await c.query({
      name: "get-square",
      text: "select sq from squares where n = $1",
      values: [7],
    });
    expect(r.rows).toEqual([{ sq: 49 }]);
    const sum = await c.query("select sum(sq)::int as s from squares");
    expect(sum.rows[0].s).toBe(2870);
  });
});

describe("errors", () => {
  test("an error leaves the connection usable, with PostgreSQL's SQLSTATE and position", async () => {
    const c = await pgClient(server());
    const e1 = await c.query("select 1/0").catch((e) => e);
    expect(e1.code).toBe("22012");
    expect(e1.message).toBe("division by zero");
    const e2 = await c.query("selec 1").catch((e) => e);
    expect(e2.code).toBe("42601");
    expect(e2.position).toBe("1");
    const e3 = await c.query("select $1::int", ["x"]).catch((e) => e);
    expect(e3.code).toBe("22P02");
    const e4 = await c.query("select * from missing_table").catch((e) => e);
    expect(e4.code).toBe("42P01");
    expect((await c.query("select 42 as v")).rows).toEqual([{ v: 42 }]);
    expect(c.asyncErrors).toEqual([]);
  });

  test("an error's position counts in the client's text where pgts renamed a statement or cursor in it", async () => {
    // pgts runs `EXECUTE q(…)` as `EXECUTE "pgts<n>:q"(…)`; the positions
    // are PostgreSQL 15's for the same text (a character, not a byte, for é).
    const c = await pgClient(server());
    const position = (sql: string) =>
      c.query(sql).then(() => "ok", (e) => `${e.code} ${e.position}`);
    expect(await position("PREPARE q4(nonexistenttype) AS SELECT 1")).toBe("42704 12");
    expect(await position("PREPARE qb(int) AS SELECT $1; EXECUTE qb(1); EXECUTE qb('zz')"))
      .toBe("22P02 57");
    expect(await position("PREPARE qé(int) AS SELECT $1 + nosuchcol")).toBe("42703 32");
    expect(await position("EXECUTE qb(1, 'é'), nosuch")).toBe("42601 19");
    await c.query("BEGIN; DECLARE hc CURSOR WITH HOLD FOR SELECT 1; COMMIT");
    expect(await position("FETCH nosuch FROM hc")).toBe("42601 14");
    expect(await position("CLOSE hc; SELECT 'x' + 1")).toBe("22P02 18");
  });

  test("a unique violation names its constraint and the session goes on", async () => {
    const c = await pgClient(server());
    await c.query("create table uniq (k text primary key)");
    await c.query("insert into uniq values ('a')");
    const e = await c.query("insert into uniq values ($1)", ["a"]).catch((e) => e);
    expect(e.code).toBe("23505");
    expect(e.constraint).toBe("uniq_pkey");
    expect(e.detail).toBe("Key (k)=(a) already exists.");
    await c.query("insert into uniq values ($1)", ["b"]);
    expect((await c.query("select count(*)::int as n from uniq")).rows[0].n).toBe(2);
  });
});

describe("transactions", () => {
  test("commit keeps, rollback discards, an error aborts the block until ROLLBACK", async () => {
    const c = await pgClient(server());
    await c.query("create table tx (v int)");
    await c.query("begin");
    await c.query("insert into tx values (1)");
    await c.query("commit");
    await c.query("begin");
    await c.query("insert into tx values (2)");
    await c.query("rollback");
    await c.query("begin");
    await c.query("insert into tx values (3)");
    const e = await c.query("select 1/0").catch((e) => e);
    expect(e.code).toBe("22012");
    const aborted = await c.query("select 1").catch((e) => e);
    expect(aborted.code).toBe("25P02");
    expect(aborted.message).toBe(
      "current transaction is aborted, commands ignored until end of transaction block",
    );
    await c.query("rollback");
    expect((await c.query("select array_agg(v) as vs from tx")).rows[0].vs).toEqual([1]);
  });

  test("an error pgts raises itself aborts the block too, so that its COMMIT rolls back", async () => {
    const c = await pgClient(server());
    await c.query("create table tx_own (v int)");
    // Refused by the cluster (25001), by pgts's own rules (0A000), and in an extended batch.
    const refusals: Array<string | { name: string; text: string }> = [
      "create database never_made",
      "select 1; discard all",
      { name: "made_later", text: "create database never_made" },
    ];
    for (const refused of refusals) {
      await c.query("begin");
      await c.query("insert into tx_own values (1)");
      const e = await c.query(refused).catch((e) => e);
      expect(["25001", "0A000"]).toContain(e.code);
      const after = await c.query("insert into tx_own values (2)").catch((e) => e);
      expect(after.code).toBe("25P02");
      expect((await c.query("commit")).command).toBe("ROLLBACK");
    }
    expect((await c.query("select count(*)::int as n from tx_own")).rows[0].n).toBe(0);
    await c.end();
  });

  test("SET TRANSACTION may follow a SET in the block, before its first query", async () => {
    // pgts reads statement_timeout back after a SET in a block; with a
    // SELECT, that read took the transaction's first snapshot and the
    // client's SET TRANSACTION failed with 25001.
    const c = await pgClient(server());
    const one = async (sql: string) => Object.values((await c.query(sql)).rows[0] ?? {})[0];
    await c.query("BEGIN");
    await c.query("SET TRANSACTION READ ONLY");
    await c.query("SET TRANSACTION READ WRITE");
    expect(await one("SHOW transaction_read_only")).toBe("off");
    await c.query("COMMIT");
    await c.query("BEGIN");
    await c.query("SET LOCAL work_mem = '8MB'");
    await c.query("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE");
    expect(await one("SHOW transaction_isolation")).toBe("serializable");
    await c.query("COMMIT");
    // SET LOCAL statement_timeout still applies after it.
    await c.query("BEGIN");
    await c.query("SET LOCAL statement_timeout = '150ms'");
    await c.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    const e = await c.query("select pg_sleep(10)").catch((e) => e);
    expect(e.code).toBe("57014");
    await c.query("ROLLBACK");
  });

  test("savepoints: rolling back to one keeps the work before it", async () => {
    const c = await pgClient(server());
    await c.query("create table sp (v int)");
    await c.query("begin");
    await c.query("insert into sp values (1)");
    await c.query("savepoint a");
    await c.query("insert into sp values (2)");
    await c.query("savepoint b");
    await c.query("select 1/0").catch(() => {});
    await c.query("rollback to savepoint b");
    await c.query("insert into sp values (3)");
    await c.query("rollback to savepoint a");
    await c.query("insert into sp values (4)");
    await c.query("release savepoint a");
    await c.query("commit");
    const r = await c.query("select array_agg(v order by v) as vs from sp");
    expect(r.rows[0].vs).toEqual([1, 4]);
    const e = await c.query("rollback to savepoint nowhere").catch((e) => e);
    expect(e.code).toBe("25P01");
  });
});

describe("LISTEN/NOTIFY", () => {
  test("a notification reaches the listening connection with payload and sender pid", async () => {
    const listener = await pgClient(server());
    const sender = await pgClient(server());
    const bystander = await pgClient(server());
    const got: pg.Notification[] = [];
    const other: pg.Notification[] = [];
    listener.on("notification", (n) => got.push(n));
    bystander.on("notification", (n) => other.push(n));
    await listener.query("listen jobs");
    await bystander.query("listen other_channel");
    await sender.query("notify jobs, 'first'");
    await sender.query("select pg_notify('jobs', 'second')");
    // Inside a transaction: delivered at commit, not before.
    await sender.query("begin");
    await sender.query("notify jobs, 'third'");
    await sleep(200);
    expect(got.map((n) => n.payload)).toEqual(["first", "second"]);
    await sender.query("commit");
    await waitFor("three notifications", () => got.length === 3);
    expect(got.map((n) => n.payload)).toEqual(["first", "second", "third"]);
    expect(got.every((n) => n.channel === "jobs")).toBe(true);
    const senderPid = (sender as unknown as { processID: number }).processID;
    expect(got[0]!.processId).toBe(senderPid);
    expect(other).toEqual([]);
    await listener.query("unlisten jobs");
    await sender.query("notify jobs, 'unheard'");
    await sleep(200);
    expect(got.length).toBe(3);
  });
});

describe("two sessions stay apart", () => {
  test("SET in one session is not seen by another", async () => {
    const a = await pgClient(server());
    const b = await pgClient(server());
    const defaultPath = (await b.query("show search_path")).rows[0].search_path;
    expect(defaultPath).not.toBe("a_schema, public");
    await a.query("set search_path = a_schema, public");
    await a.query("set statement_timeout = '12s'");
    await a.query("set application_name = 'session-a'");
    const ra = await a.query("show search_path");
    const rb = await b.query("show search_path");
    expect(ra.rows[0].search_path).toBe("a_schema, public");
    expect(rb.rows[0].search_path).toBe(defaultPath);
    expect((await b.query("show statement_timeout")).rows[0].statement_timeout).toBe("0");
    expect((await a.query("show statement_timeout")).rows[0].statement_timeout).toBe("12s");
    expect((await b.query("show application_name")).rows[0].application_name).not.toBe(
      "session-a",
    );
  });

  test("a name in Unicode escapes is the session's own, and no text inside a string is renamed", async () => {
    const a = await pgClient(server());
    const b = await pgClient(server());
    await a.query(String.raw`prepare U&"p\0071" as select 'q' as v`);
    expect((await a.query("execute pq")).rows).toEqual([{ v: "q" }]);
    expect((await a.query(String.raw`execute U&"p!0071" UESCAPE '!'`)).rows).toEqual([{ v: "q" }]);
    expect((await b.query("execute pq").catch((e) => e)).code).toBe("26000");
    // With standard_conforming_strings off, \' does not end a string: what follows is in it.
    await a.query("set standard_conforming_strings = off");
    const text = (await a.query(String.raw`select 'a\'; execute pq; --' as s`)).rows[0].s;
    expect(text).toBe("a'; execute pq; --");
    await a.end();
    await b.end();
  });

  test("the same prepared statement name in two sessions means two statements", async () => {
    const a = await pgClient(server());
    const b = await pgClient(server());
    await a.query({ name: "q", text: "select 'from a' as v" });
    await b.query({ name: "q", text: "select 'from b' as v, 2 as extra" });
    expect((await a.query({ name: "q", text: "select 'from a' as v" })).rows).toEqual([
      { v: "from a" },
    ]);
    expect((await b.query({ name: "q", text: "select 'from b' as v, 2 as extra" })).rows)
      .toEqual([{ v: "from b", extra: 2 }]);
    await a.query("prepare p(int) as select $1 * 10 as v");
    const e = await b.query("execute p(1)").catch((e) => e);
    expect(e.code).toBe("26000");
    expect(e.message).toBe('prepared statement "p" does not exist');
    await b.query("prepare p(int) as select $1 + 1 as v");
    expect((await a.query("execute p(5)")).rows).toEqual([{ v: 50 }]);
    expect((await b.query("execute p(5)")).rows).toEqual([{ v: 6 }]);
    // EXPLAIN EXECUTE and CREATE TABLE AS EXECUTE name the session's own.
    const plan = async (c: typeof a, sql: string) =>
      (await c.query(sql)).rows.map((r: Record<string, string>) => r["QUERY PLAN"]);
    expect(await plan(a, "explain (costs off) execute p(1)")).toEqual(["Result"]);
    expect(
      await plan(
        b,
        'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, BUFFERS OFF) EXECUTE "p"(2)',
      ),
    )
      .toEqual(["Result (actual rows=1.00 loops=1)"]);
    await a.query("create temp table from_p as execute p(7)");
    await b.query("create temporary table if not exists from_p (w) as execute p(7)");
    expect((await a.query("select v from from_p")).rows).toEqual([{ v: 70 }]);
    expect((await b.query("select w from from_p")).rows).toEqual([{ w: 8 }]);
    // Explained too (PostgreSQL 18's regression tests select_into and write_parallel).
    expect(
      await plan(
        a,
        "EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF, TIMING OFF, BUFFERS OFF)\n  CREATE TABLE from_p2 (x) AS\n  EXECUTE p(3) WITH DATA",
      ),
    ).toEqual(["Result (actual rows=1.00 loops=1)"]);
    expect(await plan(b, "explain (costs off) create temp table from_p2 as execute p(4)"))
      .toEqual(["Result"]);
    expect((await a.query("select x from from_p2")).rows).toEqual([{ x: 30 }]);
    await a.query("drop table from_p2");
    const nosuch = await a.query("explain execute nosuch").catch((e) => e);
    expect([nosuch.code, nosuch.message]).toEqual([
      "26000",
      'prepared statement "nosuch" does not exist',
    ]);
  });

  test("while A has an open transaction, B's query waits and then sees only committed rows", async () => {
    const a = await pgClient(server());
    const b = await pgClient(server());
    await a.query("create table shared_rows (v int)");
    await a.query("begin");
    await a.query("insert into shared_rows values (1)");
    const started = Date.now();
    const bQuery = b.query("select count(*)::int as n from shared_rows");
    await sleep(300);
    await a.query("commit");
    const r = await bQuery;
    // B never saw A's uncommitted row: it ran after A's commit (one engine).
    expect(r.rows[0].n).toBe(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    await a.query("begin");
    await a.query("insert into shared_rows values (2)");
    await a.query("rollback");
    expect((await b.query("select count(*)::int as n from shared_rows")).rows[0].n).toBe(1);
  });

  test("a transaction held too long makes another session's query fail with 55P03, not hang", async () => {
    const a = await pgClient(server());
    const b = await pgClient(server());
    await b.query("set pgts.engine_wait_timeout = '300ms'");
    await a.query("begin");
    await a.query("select 1");
    const e = await b.query("select count(*) from pg_class").catch((e) => e);
    expect(e.code).toBe("55P03");
    expect(e.message).toContain("canceling statement due to engine wait timeout");
    await a.query("commit");
    expect((await b.query("select 3 as v")).rows).toEqual([{ v: 3 }]);
  });

  test("pgts.engine_wait_timeout = 0 waits as long as the other transaction runs, past the server's 5 s", async () => {
    const a = await pgClient(server());
    const b = await pgClient(server());
    await b.query("set pgts.engine_wait_timeout = 0");
    await a.query("begin");
    const holding = a.query("select pg_sleep(5.5)");
    await sleep(100);
    const waited = b.query("select 'waited' as v");
    await holding;
    await a.query("commit");
    expect((await waited).rows).toEqual([{ v: "waited" }]);
  });

  test("each waiting session times out after its own engine_wait_timeout, whoever waits before it", async () => {
    const a = await pgClient(server());
    const long = await pgClient(server());
    const short = await pgClient(server());
    await long.query("set pgts.engine_wait_timeout = '3s'");
    await short.query("set pgts.engine_wait_timeout = '200ms'");
    await a.query("begin");
    await a.query("select 1");
    // The 3 s wait comes first; the 200 ms one behind it still ends on time.
    const longWait = long.query("select 'long' as v").catch((e) => e);
    await sleep(50);
    const started = Date.now();
    const e = await short.query("select 'short' as v").catch((e) => e);
    const waited = Date.now() - started;
    expect(e.code).toBe("55P03");
    expect(waited).toBeGreaterThanOrEqual(150);
    expect(waited).toBeLessThan(2500);
    // The long wait is still waiting, and gets the engine once A commits.
    await a.query("commit");
    expect((await longWait).rows).toEqual([{ v: "long" }]);
    // A wait that was granted leaves no timeout behind for the next one.
    await a.query("begin");
    await a.query("select 1");
    const late = short.query("select 'again' as v");
    await sleep(50);
    await a.query("commit");
    expect((await late).rows).toEqual([{ v: "again" }]);
  });
});
