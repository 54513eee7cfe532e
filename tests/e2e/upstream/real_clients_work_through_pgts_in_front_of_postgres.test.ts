/**
 * The real-client suite against pgts in front of PostgreSQL 15
 * (`pgts start --engine postgres://...`): psql (statements, a script, COPY
 * both ways, a failed COPY), node-postgres (parameters, prepared
 * statements, errors, transactions, savepoints, LISTEN/NOTIFY, SET),
 * postgres.js (a pool under concurrency, transactions), and pgbench -i
 * and -T 3 -c 4 with no failed transaction. Each session is an upstream
 * session of its own, so everything is PostgreSQL's own behaviour.
 */

import { beforeAll, describe, expect, test } from "bun:test";
import pg from "pg";
import postgres from "postgres";
import {
  PG_BIN,
  PgtsFront,
  run,
  type RunResult,
  UpstreamPostgres,
  useUpstreamServers,
} from "../../helpers/upstream.ts";

useUpstreamServers({ timeoutMs: 90_000 });

let upstream: UpstreamPostgres;
let front: PgtsFront;
const clients: pg.Client[] = [];

beforeAll(async () => {
  upstream = await UpstreamPostgres.start({ auth: "scram-sha-256" });
  front = await PgtsFront.start(upstream.url());
}, 90_000);

function psql(args: string[], stdin?: string): Promise<RunResult> {
  return run([`${PG_BIN}/psql`, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", ...args], {
    env: front.env(),
    ...(stdin !== undefined ? { stdin } : {}),
  });
}

async function client(): Promise<pg.Client> {
  const c = await front.client({ connectionTimeoutMillis: 10_000 });
  clients.push(c);
  return c;
}

describe("psql", () => {
  test("-c runs on the upstream: its version, its pid, the URL's user", async () => {
    const r = await psql([
      "-c",
      "select split_part(version(), ' ', 2), current_user, pg_backend_pid() <> 0",
    ]);
    expect(r.err).toBe("");
    expect(r.out.trim()).toMatch(/^15\.\d+\|postgres\|t$/);
  });

  test("a script with DDL, a transaction and \\d", async () => {
    const s = await psql(
      [],
      [
        "create table items (id serial primary key, name text not null, price numeric(8,2));",
        "insert into items (name, price) values ('a', 1.50), ('b', 2.25);",
        "begin;",
        "update items set price = price * 2 where name = 'b';",
        "commit;",
        "select name, price from items order by id;",
        "\\pset tuples_only off",
        "\\d items",
      ].join("\n"),
    );
    expect(s.err).toBe("");
    expect(s.out).toContain("a|1.50\nb|4.50");
    expect(s.out).toContain('Table "public.items"');
  });

  test("an error has PostgreSQL's text and the next command works", async () => {
    const r = await psql(["-c", "select * from no_such_table"]);
    expect(r.code).toBe(1);
    expect(r.err).toContain('ERROR:  relation "no_such_table" does not exist');
    expect((await psql(["-c", "select 'still serving'"])).out.trim()).toBe("still serving");
  });

  test("COPY FROM STDIN loads 1000 rows and COPY TO STDOUT returns them", async () => {
    await psql(["-c", "create table copied (n int, t text)"]);
    const rows = Array.from({ length: 1000 }, (_, i) => `${i}\tline ${i}`);
    const load = await psql(["-c", "copy copied from stdin"], `${rows.join("\n")}\n\\.\n`);
    expect(load.err).toBe("");
    expect((await psql(["-c", "select count(*), sum(n) from copied"])).out.trim()).toBe(
      "1000|499500",
    );
    const out = await psql(["-c", "copy (select * from copied order by n) to stdout"]);
    const lines = out.out.trimEnd().split("\n");
    expect(lines.length).toBe(1000);
    expect(lines[999]).toBe("999\tline 999");
  });

  test("a bad row fails the COPY, and the same session goes on", async () => {
    const r = await psql(
      [
        "-v",
        "ON_ERROR_STOP=0",
        "-c",
        "create temp table t (n int)",
        "-c",
        "copy t from stdin",
        "-c",
        "select 'after'",
      ],
      "1\nnot a number\n\\.\n",
    );
    expect(r.err).toContain('invalid input syntax for type integer: "not a number"');
    expect(r.out).toContain("after");
  });
});

describe("node-postgres", () => {
  test("parameters of common types round-trip", async () => {
    const c = await client();
    const r = await c.query(
      "select $1::int as i, $2::text as t, $3::numeric as n, $4::bool as b, $5::jsonb as j, $6::int[] as a",
      [42, "hé", "1.5", true, { k: [1, 2] }, [1, 2, 3]],
    );
    expect(r.rows[0]).toEqual({
      i: 42,
      t: "hé",
      n: "1.5",
      b: true,
      j: { k: [1, 2] },
      a: [1, 2, 3],
    });
  });

  test("a named prepared statement runs many times", async () => {
    const c = await client();
    for (let i = 0; i < 20; i++) {
      const r = await c.query({ name: "sq", text: "select $1::int * $1::int as sq", values: [i] });
      expect(r.rows[0].sq).toBe(i * i);
    }
  });

  test("an error keeps its SQLSTATE and position; the connection goes on", async () => {
    const c = await client();
    const e = await c.query("select 1 +").catch((x) => x);
    expect(e.code).toBe("42601");
    expect(e.position).toBe("11");
    expect((await c.query("select 2 as v")).rows[0].v).toBe(2);
  });

  test("commit keeps, rollback discards, an error aborts the block until ROLLBACK", async () => {
    const c = await client();
    await c.query("create table tx (n int)");
    await c.query("begin");
    await c.query("insert into tx values (1)");
    await c.query("commit");
    await c.query("begin");
    await c.query("insert into tx values (2)");
    await c.query("rollback");
    await c.query("begin");
    const e = await c.query("select 1/0").catch((x) => x);
    expect(e.code).toBe("22012");
    const aborted = await c.query("select 1").catch((x) => x);
    expect(aborted.code).toBe("25P02");
    await c.query("rollback");
    await c.query("begin");
    await c.query("insert into tx values (3)");
    await c.query("savepoint s");
    await c.query("insert into tx values (4)");
    await c.query("rollback to savepoint s");
    await c.query("commit");
    expect((await c.query("select array_agg(n order by n) as a from tx")).rows[0].a).toEqual([
      1,
      3,
    ]);
  });

  test("NOTIFY in one session reaches LISTEN in another, with payload", async () => {
    const a = await client();
    const b = await client();
    await a.query("listen chan");
    const got = new Promise<pg.Notification>((resolve) => a.on("notification", resolve));
    await b.query("select pg_notify('chan', 'hello')");
    const n = await got;
    expect(n.channel).toBe("chan");
    expect(n.payload).toBe("hello");
  });

  test("SET in one session is not seen by another", async () => {
    const a = await client();
    const b = await client();
    await a.query("set work_mem = '7MB'");
    expect((await a.query("show work_mem")).rows[0].work_mem).toBe("7MB");
    expect((await b.query("show work_mem")).rows[0].work_mem).toBe("4MB");
  });

  test("a query in a transaction of A blocks B's update until A commits", async () => {
    const a = await client();
    const b = await client();
    await a.query("create table locked (n int); insert into locked values (0)");
    await a.query("begin");
    await a.query("update locked set n = n + 1");
    let done = false;
    const pending = b.query("update locked set n = n + 10").then(() => (done = true));
    await Bun.sleep(300);
    expect(done).toBe(false);
    await a.query("commit");
    await pending;
    expect((await b.query("select n from locked")).rows[0].n).toBe(11);
  });
});

describe("postgres.js", () => {
  test("a pool of 4 answers 200 concurrent queries, and concurrent transactions add up", async () => {
    const sql = postgres({
      host: front.host,
      port: front.port,
      user: "postgres",
      database: "postgres",
      max: 4,
      onnotice: () => {},
    });
    try {
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) => sql`select ${i}::int * 2 as v`),
      );
      results.forEach((r, i) => expect(r[0]?.v).toBe(i * 2));
      await sql`create table counter (n int)`;
      await sql`insert into counter values (0)`;
      await Promise.all(
        Array.from({ length: 40 }, () =>
          sql.begin(async (tx) => {
            await tx`update counter set n = n + 1`;
          })),
      );
      expect((await sql`select n from counter`)[0]?.n).toBe(40);
      const e = await sql.begin(async (tx) => {
        await tx`update counter set n = n + 100`;
        await tx`select 1/0`;
      }).catch((x) => x);
      expect(e.code).toBe("22012");
      expect((await sql`select n from counter`)[0]?.n).toBe(40);
    } finally {
      await sql.end();
    }
  });
});

describe("pgbench", () => {
  test("-i -s 1 initialises and -T 3 -c 4 runs with 0 failures", async () => {
    const init = await run([`${PG_BIN}/pgbench`, "-i", "-s", "1"], { env: front.env() });
    expect(init.code).toBe(0);
    await front.pgbench(["-T", "3", "-c", "4", "-j", "2"]);
  });
});

test("closing the clients ends their upstream sessions", async () => {
  await Promise.all(clients.splice(0).map((c) => c.end()));
  const r = await upstream.psql(
    "select count(*) from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()",
  );
  let n = Number(r.out.trim());
  for (let i = 0; i < 100 && n > 0; i++) {
    await Bun.sleep(50);
    n = Number((await upstream.psql(
      "select count(*) from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()",
    )).out.trim());
  }
  expect(n).toBe(0);
});
